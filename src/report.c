/* report.c: an experiment's figures, drawn from its results store.
 *
 * A heatmap cell (x_i, y_j) is the mean of the metric over the stored runs
 * of the sweep with those two values (other axes, such as seeds, are
 * averaged; diverged runs are left out; a cell with no run is "n/a").
 * mmcs_next: for a run with dictionary size m along the sweep's size axis
 * (model.ratio or model.latents), the MMCS of its decoder against the
 * decoder of the run at the next larger size with everything else equal
 * (Sharkey et al. 2022: falls once the smaller dictionary exceeds G). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "superpose/figure.h"
#include "superpose/metrics.h"
#include "superpose/npy.h"
#include "superpose/runner.h"
#include "superpose/store.h"

static int size_axis(const sp_experiment *ex)
{
    int a = sp_experiment_axis(ex, "model.ratio");
    return a >= 0 ? a : sp_experiment_axis(ex, "model.latents");
}

static const sp_run_record *find_run(const sp_run_list *runs, const char *key)
{
    size_t lo = 0, hi = runs->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(runs->runs[mid].key, key);
        if (c == 0)
            return &runs->runs[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static gsl_matrix_float *load_decoder(const char *out, const char *key)
{
    char path[1300];
    snprintf(path, sizeof path, "%s/artifacts/%s/decoder.npy", out, key);
    float *data = NULL;
    size_t r = 0, c = 0;
    sp_err e;
    if (sp_npy_read_f32(path, &data, &r, &c, &e) != 0)
        return NULL;
    if (c == 0) { /* a 1-D array is not a dictionary */
        free(data);
        return NULL;
    }
    gsl_matrix_float *m = gsl_matrix_float_alloc(r, c);
    if (m)
        memcpy(m->data, data, r * c * sizeof *data);
    free(data);
    return m;
}

static double mmcs_next(const sp_experiment *ex, const char *out, const sp_run_list *runs,
                        const size_t *coords, const char *key)
{
    int sa = size_axis(ex);
    if (sa < 0 || coords[sa] + 1 >= ex->axes[sa].n)
        return NAN;
    /* index of the partner run: same coordinates, next size */
    size_t idx = 0;
    for (size_t a = 0; a < ex->n_axes; a++)
        idx = idx * ex->axes[a].n + (coords[a] + ((int)a == sa ? 1 : 0));
    sp_run_cfg cfg;
    if (sp_experiment_run_cfg(ex, idx, &cfg, NULL, NULL) != 0)
        return NAN;
    char key2[17];
    sp_config_key(&cfg, key2);
    const sp_run_record *r1 = find_run(runs, key), *r2 = find_run(runs, key2);
    if (!r1 || !r2 || strcmp(r1->status, "ok") || strcmp(r2->status, "ok"))
        return NAN;
    gsl_matrix_float *small = load_decoder(out, key), *large = load_decoder(out, key2);
    double v = small && large ? sp_metric_mmcs(small, large, NULL) : NAN;
    gsl_matrix_float_free(small);
    gsl_matrix_float_free(large);
    return v;
}

static int plot_heatmap(const sp_experiment *ex, const sp_figspec *f, const char *out,
                        const char *figdir, const sp_run_list *runs, sp_err *err)
{
    int ix = sp_experiment_axis(ex, f->x), iy = sp_experiment_axis(ex, f->y);
    if (ix < 0 || iy < 0)
        return sp_err_set(err, "figure %s: axes %s / %s are not swept", f->name, f->x, f->y);
    if (!strcmp(f->metric, "mmcs_next") && size_axis(ex) < 0)
        return sp_err_set(err, "figure %s: mmcs_next needs a model.ratio or model.latents axis",
                          f->name);
    size_t nx = ex->axes[ix].n, ny = ex->axes[iy].n, total = sp_experiment_n_runs(ex);
    double *sum = calloc(nx * ny, sizeof *sum), *z = calloc(nx * ny, sizeof *z);
    size_t *cnt = calloc(nx * ny, sizeof *cnt), missing = 0;
    if (!sum || !z || !cnt) {
        free(sum);
        free(z);
        free(cnt);
        return sp_err_set(err, "out of memory");
    }
    for (size_t i = 0; i < total; i++) {
        sp_run_cfg cfg;
        size_t coords[SP_MAX_AXES];
        if (sp_experiment_run_cfg(ex, i, &cfg, coords, NULL) != 0)
            continue;
        char key[17];
        sp_config_key(&cfg, key);
        const sp_run_record *r = find_run(runs, key);
        if (!r) {
            missing++;
            continue;
        }
        double v = !strcmp(f->metric, "mmcs_next") ? mmcs_next(ex, out, runs, coords, key)
                                                   : sp_run_metric(r, f->metric);
        if (!isfinite(v))
            continue;
        if (isfinite(f->cap) && v > f->cap)
            v = f->cap;
        size_t c = coords[iy] * nx + coords[ix];
        sum[c] += v;
        cnt[c]++;
    }
    for (size_t c = 0; c < nx * ny; c++)
        z[c] = cnt[c] ? sum[c] / (double)cnt[c] : NAN;
    const char *xt[SP_MAX_AXIS_VALUES], *yt[SP_MAX_AXIS_VALUES];
    for (size_t i = 0; i < nx; i++)
        xt[i] = ex->axes[ix].labels[i];
    for (size_t i = 0; i < ny; i++)
        yt[i] = ex->axes[iy].labels[i];
    char title[300], header[1500], cblabel[96];
    if (f->title[0])
        snprintf(title, sizeof title, "%s", f->title);
    else
        snprintf(title, sizeof title, "%s: %s", ex->name, f->metric);
    snprintf(cblabel, sizeof cblabel, "%s%s", f->metric, isfinite(f->cap) ? " (capped)" : "");
    char *canon = sp_config_canonical(&ex->base);
    snprintf(header, sizeof header,
             "experiment %s, preset %s, file %s\nmetric %s: mean over stored runs per cell; "
             "%zu of %zu runs missing from the store\nbase configuration (swept keys vary): %s",
             ex->name, ex->preset[0] ? ex->preset : "none", ex->path, f->metric, missing, total,
             canon ? canon : "");
    free(canon);
    for (char *p = header; *p; p++) /* one configuration entry per header line */
        if (*p == '\n' && p[1] == '\0')
            *p = '\0';
    sp_heatmap h = {
        .name = f->name,
        .title = title,
        .xlabel = ex->axes[ix].name,
        .ylabel = ex->axes[iy].name,
        .cblabel = cblabel,
        .nx = nx,
        .ny = ny,
        .xtics = xt,
        .ytics = yt,
        .z = z,
        .zmin = f->zmin,
        .zmax = f->zmax,
        .label_cells = 1,
        .label_fmt = f->format[0] ? f->format : "%.2f",
        .header = header,
    };
    int rc = sp_figure_heatmap(figdir, &h, err);
    if (rc == 0)
        printf("figure %s/%s.png (%zu x %zu cells, %zu of %zu runs stored)\n", figdir, f->name,
               nx, ny, total - missing, total);
    free(sum);
    free(z);
    free(cnt);
    return rc;
}

int sp_sweep_plot(const sp_experiment *ex, const char *out_dir, sp_err *err)
{
    char out[1024], db[1100], figdir[1200];
    sp_sweep_out_dir(ex, out_dir, out, sizeof out);
    snprintf(db, sizeof db, "%s/results.db", out);
    if (ex->preset_is_default || !ex->preset[0])
        snprintf(figdir, sizeof figdir, "%s/figures", out);
    else
        snprintf(figdir, sizeof figdir, "%s/figures-%s", out, ex->preset);
    if (sp_mkdirs(figdir, err) != 0)
        return -1;
    sp_store *st = sp_store_open(db, err);
    if (!st)
        return -1;
    sp_run_list runs = {0};
    int rc = sp_store_list(st, &runs, err);
    sp_store_close(st);
    for (size_t i = 0; rc == 0 && i < ex->n_figs; i++)
        rc = plot_heatmap(ex, &ex->figs[i], out, figdir, &runs, err);
    sp_run_list_free(&runs);
    return rc;
}
