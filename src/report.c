/* report.c: an experiment's figures, drawn from its results store.
 *
 * A heatmap cell (x_i, y_j) is the mean of the metric over the stored runs
 * of the sweep with those two values (other axes, such as seeds, are
 * averaged; diverged runs are left out; a cell with no run is "n/a").
 * mmcs_next: for a run with dictionary size m along the sweep's size axis
 * (model.ratio or model.latents), the MMCS of its decoder against the
 * decoder of the run at the next larger size with everything else equal
 * (Sharkey et al. 2022: falls once the smaller dictionary exceeds G).
 * hedging_next: for the same pair, how far the narrow dictionary's atoms
 * moved into the span of the new atoms of the wider one (Chanin et al.
 * 2025): the wide atoms matched one-to-one (Hungarian on |cos|) to the
 * narrow ones come first, then sp_metric_hedging's share is divided by its
 * random baseline (rank of the new atoms / d): 1 is what random motion
 * gives, above 1 the old latents hedge towards the new ones.
 * lines: a metric against a numeric sweep axis, one curve per value of a
 * series axis (mean over the other axes). dims: D* and D_i of toy models
 * (Elhage et al. 2022). columns, rates, cofiring: one figure per stored
 * run, drawn from its artifacts (W.npy, rates.npy, cofire.npy). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "superpose/figure.h"
#include "superpose/metrics.h"
#include "superpose/npy.h"
#include "superpose/recovery.h"
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

/* Every run of the sweep in sweep order, its key hashed once for all
 * figures: coordinates, stored record (NULL when not stored), and the
 * indices of the runs stored with status ok. */
typedef struct {
    size_t total, missing, n_ok;
    size_t shown;       /* runs the figure considers (total, or those its where keeps) */
    char (*key)[17];
    size_t (*coords)[SP_MAX_AXES];
    const sp_run_record **rec;
    size_t *ok;
} run_set;

static void run_set_free(run_set *rs)
{
    free(rs->ok);
    free(rs->rec);
    free(rs->coords);
    free(rs->key);
}

/* Counts the runs a figure shows (those meeting f's where conditions, all
 * when f is NULL), the missing ones and the ok ones; rec[i] of every other
 * run is set to NULL. */
static void run_set_count(run_set *rs, const sp_figspec *f)
{
    rs->shown = rs->missing = rs->n_ok = 0;
    for (size_t i = 0; i < rs->total; i++) {
        int keep = 1;
        for (size_t w = 0; f && w < f->n_where && keep; w++)
            keep = rs->coords[i][f->where_axis[w]] == f->where_value[w];
        if (!keep) {
            rs->rec[i] = NULL;
            continue;
        }
        rs->shown++;
        if (!rs->rec[i])
            rs->missing++;
        else if (!strcmp(rs->rec[i]->status, "ok"))
            rs->ok[rs->n_ok++] = i;
    }
}

static int run_set_load(const sp_experiment *ex, const sp_run_list *runs, run_set *rs,
                        sp_err *err)
{
    memset(rs, 0, sizeof *rs);
    rs->total = sp_experiment_n_runs(ex);
    rs->key = calloc(rs->total, sizeof *rs->key);
    rs->coords = calloc(rs->total, sizeof *rs->coords);
    rs->rec = calloc(rs->total, sizeof *rs->rec);
    rs->ok = calloc(rs->total, sizeof *rs->ok);
    if (!rs->key || !rs->coords || !rs->rec || !rs->ok) {
        run_set_free(rs);
        return sp_err_set(err, "out of memory for %zu runs", rs->total);
    }
    for (size_t i = 0; i < rs->total; i++) {
        sp_run_cfg cfg;
        if (sp_experiment_run_cfg(ex, i, &cfg, rs->coords[i], NULL) != 0)
            continue;
        sp_config_key(&cfg, rs->key[i]);
        rs->rec[i] = find_run(runs, rs->key[i]);
    }
    run_set_count(rs, NULL);
    return 0;
}

/* The runs a figure's `where` conditions keep: a copy of rs (same sweep
 * indexing) in which every other run is absent and not counted. */
static int run_set_where(const sp_experiment *ex, const sp_figspec *f, const run_set *rs,
                         run_set *out, sp_err *err)
{
    *out = *rs;
    out->rec = malloc(rs->total * sizeof *out->rec);
    out->ok = malloc(rs->total * sizeof *out->ok);
    if (!out->rec || !out->ok) {
        free(out->rec);
        free(out->ok);
        return sp_err_set(err, "out of memory");
    }
    memcpy(out->rec, rs->rec, rs->total * sizeof *out->rec);
    run_set_count(out, f);
    return 0;
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

/* hedging_next of a narrow and a wide decoder (see the header). */
static double hedging_of(const gsl_matrix_float *narrow, const gsl_matrix_float *wide)
{
    size_t w = narrow->size1, w2 = wide->size1, d = narrow->size2;
    if (w2 <= w || wide->size2 != d)
        return NAN;
    double *cost = malloc(w * w2 * sizeof *cost);
    long *to = malloc(w * sizeof *to);
    unsigned char *used = calloc(w2, 1);
    gsl_matrix_float *re = gsl_matrix_float_alloc(w2, d);
    double v = NAN;
    if (cost && to && used && re) {
        for (size_t i = 0; i < w; i++)
            for (size_t j = 0; j < w2; j++) {
                cost[i * w2 + j] = -fabs(sp_cos(gsl_matrix_float_const_ptr(narrow, i, 0),
                                                gsl_matrix_float_const_ptr(wide, j, 0), d));
            }
        if (!isnan(sp_hungarian(cost, w, w2, to))) {
            size_t k = 0;
            for (size_t i = 0; i < w; i++) {
                gsl_vector_float_const_view row = gsl_matrix_float_const_row(wide, (size_t)to[i]);
                gsl_matrix_float_set_row(re, k++, &row.vector);
                used[to[i]] = 1;
            }
            for (size_t j = 0; j < w2; j++)
                if (!used[j]) {
                    gsl_vector_float_const_view row = gsl_matrix_float_const_row(wide, j);
                    gsl_matrix_float_set_row(re, k++, &row.vector);
                }
            double base;
            double share = sp_metric_hedging(narrow, re, &base);
            v = base > 0 ? share / base : NAN;
        }
    }
    gsl_matrix_float_free(re);
    free(used);
    free(to);
    free(cost);
    return v;
}

/* mmcs_next or hedging_next of a run (NaN when it has no next size). */
static double next_metric(const sp_experiment *ex, const char *out, const run_set *rs,
                          size_t run, int hedging)
{
    const size_t *coords = rs->coords[run];
    int sa = size_axis(ex);
    if (sa < 0 || coords[sa] + 1 >= ex->axes[sa].n)
        return NAN;
    /* index of the partner run: same coordinates, next size */
    size_t idx = 0;
    for (size_t a = 0; a < ex->n_axes; a++)
        idx = idx * ex->axes[a].n + (coords[a] + ((int)a == sa ? 1 : 0));
    const sp_run_record *r1 = rs->rec[run], *r2 = rs->rec[idx];
    if (!r1 || !r2 || strcmp(r1->status, "ok") || strcmp(r2->status, "ok"))
        return NAN;
    gsl_matrix_float *small = load_decoder(out, rs->key[run]);
    gsl_matrix_float *large = load_decoder(out, rs->key[idx]);
    double v = !small || !large ? NAN
               : hedging        ? hedging_of(small, large)
                                : sp_metric_mmcs(small, large, NULL);
    gsl_matrix_float_free(small);
    gsl_matrix_float_free(large);
    return v;
}

static int is_next(const char *metric)
{
    return !strcmp(metric, "mmcs_next") || !strcmp(metric, "hedging_next");
}

/* A stored metric of run i, or a metric between it and its next size. */
static double metric_of(const sp_experiment *ex, const char *out, const run_set *rs, size_t i,
                        const char *metric)
{
    if (is_next(metric))
        return next_metric(ex, out, rs, i, !strcmp(metric, "hedging_next"));
    return sp_run_metric(rs->rec[i], metric);
}

static int plot_heatmap(const sp_experiment *ex, const sp_figspec *f, const char *out,
                        const char *figdir, const run_set *rs, sp_err *err)
{
    int ix = sp_experiment_axis(ex, f->x), iy = sp_experiment_axis(ex, f->y);
    if (ix < 0 || iy < 0)
        return sp_err_set(err, "figure %s: axes %s / %s are not swept", f->name, f->x, f->y);
    if (is_next(f->metric) && size_axis(ex) < 0)
        return sp_err_set(err, "figure %s: %s needs a model.ratio or model.latents axis",
                          f->name, f->metric);
    size_t nx = ex->axes[ix].n, ny = ex->axes[iy].n, total = rs->shown, missing = rs->missing;
    double *sum = calloc(nx * ny, sizeof *sum), *z = calloc(nx * ny, sizeof *z);
    size_t *cnt = calloc(nx * ny, sizeof *cnt);
    if (!sum || !z || !cnt) {
        free(sum);
        free(z);
        free(cnt);
        return sp_err_set(err, "out of memory");
    }
    for (size_t i = 0; i < rs->total; i++) {
        const sp_run_record *r = rs->rec[i];
        const size_t *coords = rs->coords[i];
        if (!r)
            continue;
        double v = metric_of(ex, out, rs, i, f->metric);
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

/* Loads a float32 artifact of a run; NULL if absent or unreadable. */
static float *load_art(const char *out, const char *key, const char *file, size_t *rows,
                       size_t *cols)
{
    char path[1300];
    snprintf(path, sizeof path, "%s/artifacts/%s/%s", out, key, file);
    float *data = NULL;
    sp_err e;
    if (sp_npy_read_f32(path, &data, rows, cols, &e) != 0)
        return NULL;
    return data;
}

/* "data.p=0.05, train.seed=1": the swept values of a run. */
static void run_label(const sp_experiment *ex, const size_t *coords, char *buf, size_t len)
{
    buf[0] = '\0';
    for (size_t a = 0; a < ex->n_axes; a++)
        snprintf(buf + strlen(buf), len - strlen(buf), "%s%s = %s", a ? ", " : "",
                 ex->axes[a].name, ex->axes[a].labels[coords[a]]);
}

static void fig_header(const sp_experiment *ex, const char *what, char *buf, size_t len)
{
    char *canon = sp_config_canonical(&ex->base);
    snprintf(buf, len, "experiment %s, preset %s, file %s\n%s\nbase configuration (swept keys "
                       "vary): %s",
             ex->name, ex->preset[0] ? ex->preset : "none", ex->path, what, canon ? canon : "");
    free(canon);
    size_t l = strlen(buf);
    while (l && buf[l - 1] == '\n')
        buf[--l] = '\0';
}

static double axis_value(const sp_experiment *ex, int a, size_t k, int inverse)
{
    double v = strtod(ex->axes[a].values[k], NULL);
    return inverse ? 1.0 / v : v;
}

/* kind = lines: the metric against a numeric axis, one curve per value of
 * the series axis, each point the mean over the other axes' runs. */
static int plot_lines(const sp_experiment *ex, const sp_figspec *f, const char *out,
                      const run_set *rs, const char *figdir, sp_err *err)
{
    if (is_next(f->metric) && size_axis(ex) < 0)
        return sp_err_set(err, "figure %s: %s needs a model.ratio or model.latents axis",
                          f->name, f->metric);
    int ix = sp_experiment_axis(ex, f->x), is = f->series[0] ? sp_experiment_axis(ex, f->series)
                                                             : -1;
    if (ix < 0)
        return sp_err_set(err, "figure %s: %s is not swept", f->name, f->x);
    size_t nx = ex->axes[ix].n, ns = is >= 0 ? ex->axes[is].n : 1;
    size_t total = rs->shown, missing = rs->missing;
    double *sum = calloc(nx * ns, sizeof *sum), *xs = calloc(nx * ns, sizeof *xs),
           *ys = calloc(nx * ns, sizeof *ys);
    size_t *cnt = calloc(nx * ns, sizeof *cnt);
    sp_series *ser = calloc(ns, sizeof *ser);
    char(*titles)[64] = calloc(ns, sizeof *titles);
    int rc = -1;
    if (!sum || !xs || !ys || !cnt || !ser || !titles) {
        sp_err_set(err, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < rs->total; i++) {
        const sp_run_record *r = rs->rec[i];
        const size_t *c = rs->coords[i];
        if (!r)
            continue;
        double v = metric_of(ex, out, rs, i, f->metric);
        if (!isfinite(v) || (f->logy && v <= 0))
            continue;
        size_t cell = (is >= 0 ? c[is] : 0) * nx + c[ix];
        sum[cell] += v;
        cnt[cell]++;
    }
    for (size_t s = 0; s < ns; s++) {
        for (size_t k = 0; k < nx; k++) {
            xs[s * nx + k] = axis_value(ex, ix, k, f->xinverse);
            ys[s * nx + k] = cnt[s * nx + k] ? sum[s * nx + k] / (double)cnt[s * nx + k] : NAN;
        }
        if (is >= 0)
            snprintf(titles[s], sizeof titles[s], "%s = %s", ex->axes[is].name,
                     ex->axes[is].labels[s]);
        ser[s] = (sp_series){.title = is >= 0 ? titles[s] : NULL, .n = nx, .x = xs + s * nx,
                             .y = ys + s * nx,
                             .style = f->points ? SP_STYLE_MARKERS : SP_STYLE_LINESPOINTS};
    }
    char title[300], header[1500], what[200];
    snprintf(title, sizeof title, "%s", f->title[0] ? f->title : f->metric);
    snprintf(what, sizeof what, "metric %s: mean over stored runs per point; %zu of %zu runs "
                                "missing", f->metric, missing, total);
    fig_header(ex, what, header, sizeof header);
    sp_lines L = {.name = f->name, .title = title,
                  .xlabel = f->xlabel[0] ? f->xlabel : f->x,
                  .ylabel = f->ylabel[0] ? f->ylabel : f->metric,
                  .logx = f->logx, .logy = f->logy,
                  .xmin = NAN, .xmax = NAN, .ymin = f->ymin, .ymax = f->ymax,
                  .series = ser, .n_series = ns, .header = header};
    rc = sp_figure_lines(figdir, &L, err);
    if (rc == 0)
        printf("figure %s/%s.png (%zu curves, %zu of %zu runs stored)\n", figdir, f->name, ns,
               total - missing, total);
out:
    free(titles);
    free(ser);
    free(cnt);
    free(ys);
    free(xs);
    free(sum);
    return rc;
}

static int is_seed_axis(const sp_experiment *ex, size_t a)
{
    return !strcmp(ex->axes[a].name, "train.seed") || !strcmp(ex->axes[a].name, "data.seed");
}

/* A metric of the run, or a numeric option it was run with. */
static double run_value(const sp_run_record *r, const char *name)
{
    double v = sp_run_metric(r, name);
    if (isnan(v) && strchr(name, '.')) {
        const char *p = sp_run_param(r, name);
        v = p ? strtod(p, NULL) : NAN;
    }
    return v;
}

static int cmp_xy(const void *a, const void *b)
{
    const double *p = a, *q = b;
    return (p[0] > q[0]) - (p[0] < q[0]);
}

/* kind = frontier: metric y against metric x, one curve per value of the
 * series axis; runs that differ only in their seeds are averaged into one
 * point, and each curve is drawn in order of x. */
static int plot_frontier(const sp_experiment *ex, const sp_figspec *f, const run_set *rs,
                         const char *figdir, sp_err *err)
{
    int is = f->series[0] ? sp_experiment_axis(ex, f->series) : -1;
    size_t ns = is >= 0 ? ex->axes[is].n : 1, total = rs->shown;
    /* point index: the coordinates on every axis but the series and seeds */
    size_t np = 1, stride[SP_MAX_AXES];
    for (size_t a = ex->n_axes; a-- > 0;) {
        stride[a] = 0;
        if ((int)a == is || is_seed_axis(ex, a))
            continue;
        stride[a] = np;
        np *= ex->axes[a].n;
    }
    double *sx = calloc(ns * np, sizeof *sx), *sy = calloc(ns * np, sizeof *sy);
    double *xy = calloc(2 * ns * np, sizeof *xy), *xs = calloc(ns * np, sizeof *xs),
           *ys = calloc(ns * np, sizeof *ys);
    size_t *cnt = calloc(ns * np, sizeof *cnt), off_log = 0;
    sp_series *ser = calloc(ns, sizeof *ser);
    char(*titles)[64] = calloc(ns, sizeof *titles);
    int rc = -1;
    if (!sx || !sy || !xy || !xs || !ys || !cnt || !ser || !titles) {
        sp_err_set(err, "out of memory");
        goto out;
    }
    for (size_t k = 0; k < rs->n_ok; k++) {
        size_t r = rs->ok[k];
        double x = run_value(rs->rec[r], f->x), y = run_value(rs->rec[r], f->y);
        if (!isfinite(x) || !isfinite(y))
            continue;
        if ((f->logx && x <= 0) || (f->logy && y <= 0)) {
            off_log++; /* e.g. a collapsed run at L0 = 0 */
            continue;
        }
        size_t pt = 0;
        for (size_t a = 0; a < ex->n_axes; a++)
            pt += stride[a] * rs->coords[r][a];
        size_t cell = (is >= 0 ? rs->coords[r][is] : 0) * np + pt;
        sx[cell] += x, sy[cell] += y, cnt[cell]++;
    }
    size_t curves = 0;
    for (size_t s = 0; s < ns; s++) {
        size_t n = 0;
        for (size_t p = 0; p < np; p++) {
            size_t cell = s * np + p;
            if (!cnt[cell])
                continue;
            xy[2 * (s * np + n)] = sx[cell] / (double)cnt[cell];
            xy[2 * (s * np + n) + 1] = sy[cell] / (double)cnt[cell];
            n++;
        }
        qsort(xy + 2 * s * np, n, 2 * sizeof(double), cmp_xy);
        for (size_t q = 0; q < n; q++) {
            xs[s * np + q] = xy[2 * (s * np + q)];
            ys[s * np + q] = xy[2 * (s * np + q) + 1];
        }
        if (is >= 0)
            snprintf(titles[s], sizeof titles[s], "%s", ex->axes[is].labels[s]);
        ser[s] = (sp_series){.title = is >= 0 ? titles[s] : NULL, .n = n, .x = xs + s * np,
                             .y = ys + s * np,
                             .style = f->points ? SP_STYLE_MARKERS : SP_STYLE_LINESPOINTS};
        curves += n > 0;
    }
    char title[300], header[1500], what[300];
    snprintf(title, sizeof title, "%s", f->title[0] ? f->title : f->y);
    snprintf(what, sizeof what, "frontier %s against %s: one point per setting, mean over "
                                "seeds; %zu of %zu runs missing; %zu runs at values <= 0 left "
                                "off the log axis", f->y, f->x, rs->missing, total, off_log);
    fig_header(ex, what, header, sizeof header);
    sp_lines L = {.name = f->name, .title = title,
                  .xlabel = f->xlabel[0] ? f->xlabel : f->x,
                  .ylabel = f->ylabel[0] ? f->ylabel : f->y,
                  .logx = f->logx, .logy = f->logy,
                  .xmin = NAN, .xmax = NAN, .ymin = f->ymin, .ymax = f->ymax,
                  .series = ser, .n_series = ns, .header = header};
    rc = sp_figure_lines(figdir, &L, err);
    if (rc == 0)
        printf("figure %s/%s.png (%zu curves, %zu of %zu runs stored%s)\n", figdir, f->name,
               curves, total - rs->missing, total,
               off_log ? "; some runs at values <= 0 left off the log axis" : "");
out:
    free(titles);
    free(ser);
    free(cnt);
    free(ys);
    free(xs);
    free(xy);
    free(sy);
    free(sx);
    return rc;
}

/* kind = curves: a training curve (metrics.curve_every) against the step,
 * one curve per value of the series axis (or pair of axes), the mean over
 * the runs that share it. */
static int plot_curves(const sp_experiment *ex, const sp_figspec *f, const char *db,
                       const run_set *rs, const char *figdir, sp_err *err)
{
    int a1, a2;
    sp_experiment_series(ex, f->series, &a1, &a2);
    size_t n1 = a1 >= 0 ? ex->axes[a1].n : 1, n2 = a2 >= 0 ? ex->axes[a2].n : 1, ns = n1 * n2;
    sp_store *st = sp_store_open(db, err);
    if (!st)
        return -1;
    size_t cap = 0;
    double *x = NULL, *y = NULL;
    size_t *cnt = NULL, *len = calloc(ns, sizeof *len);
    sp_series *ser = calloc(ns, sizeof *ser);
    char(*titles)[96] = calloc(ns, sizeof *titles);
    int rc = -1;
    if (!len || !ser || !titles) {
        sp_err_set(err, "out of memory");
        goto out;
    }
    for (size_t k = 0; k < rs->n_ok; k++) {
        size_t r = rs->ok[k];
        long *step;
        double *val;
        size_t n;
        if (sp_store_curve(st, rs->key[r], f->metric, &step, &val, &n, err) != 0)
            goto out;
        if (n > cap) {
            size_t nc = n;
            double *nx = realloc(x, ns * nc * sizeof *x), *ny = nx ? realloc(y, ns * nc * sizeof *y) : NULL;
            size_t *nn = ny ? realloc(cnt, ns * nc * sizeof *cnt) : NULL;
            if (nx)
                x = nx;
            if (ny)
                y = ny;
            if (nn)
                cnt = nn;
            if (!nx || !ny || !nn) {
                free(step);
                free(val);
                sp_err_set(err, "out of memory");
                goto out;
            }
            /* re-lay the series already summed from stride cap to stride nc */
            for (size_t s = ns; s-- > 0;)
                for (size_t q = cap; q-- > 0;) {
                    x[s * nc + q] = x[s * cap + q];
                    y[s * nc + q] = y[s * cap + q];
                    cnt[s * nc + q] = cnt[s * cap + q];
                }
            for (size_t s = 0; s < ns; s++)
                for (size_t q = cap; q < nc; q++)
                    x[s * nc + q] = y[s * nc + q] = 0, cnt[s * nc + q] = 0;
            cap = nc;
        }
        size_t s = (a1 >= 0 ? rs->coords[r][a1] : 0) * n2 + (a2 >= 0 ? rs->coords[r][a2] : 0);
        for (size_t q = 0; q < n; q++) {
            if (!isfinite(val[q]))
                continue;
            x[s * cap + q] = (double)step[q];
            y[s * cap + q] += val[q];
            cnt[s * cap + q]++;
        }
        if (n > len[s])
            len[s] = n;
        free(step);
        free(val);
    }
    size_t curves = 0;
    for (size_t s = 0; s < ns; s++) {
        size_t n = 0;
        for (size_t q = 0; q < len[s]; q++)
            if (cnt[s * cap + q]) {
                x[s * cap + n] = x[s * cap + q];
                y[s * cap + n] = y[s * cap + q] / (double)cnt[s * cap + q];
                n++;
            }
        size_t i1 = s / n2, i2 = s % n2;
        snprintf(titles[s], sizeof titles[s], "%s%s%s", a1 >= 0 ? ex->axes[a1].labels[i1] : "",
                 a2 >= 0 ? ", " : "", a2 >= 0 ? ex->axes[a2].labels[i2] : "");
        ser[s] = (sp_series){.title = a1 >= 0 ? titles[s] : NULL, .n = n,
                             .x = x ? x + s * cap : NULL, .y = y ? y + s * cap : NULL,
                             .style = SP_STYLE_LINES};
        curves += n > 0;
    }
    char title[300], header[1500], what[300];
    snprintf(title, sizeof title, "%s", f->title[0] ? f->title : f->metric);
    snprintf(what, sizeof what, "training curve %s against the step, mean over the runs of "
                                "each curve (series %s); %zu of %zu runs missing", f->metric,
             f->series[0] ? f->series : "none", rs->missing, rs->shown);
    fig_header(ex, what, header, sizeof header);
    sp_lines L = {.name = f->name, .title = title,
                  .xlabel = f->xlabel[0] ? f->xlabel : "step",
                  .ylabel = f->ylabel[0] ? f->ylabel : f->metric,
                  .logx = f->logx, .logy = f->logy,
                  .xmin = NAN, .xmax = NAN, .ymin = f->ymin, .ymax = f->ymax,
                  .series = ser, .n_series = ns, .header = header};
    rc = sp_figure_lines(figdir, &L, err);
    if (rc == 0)
        printf("figure %s/%s.png (%zu curves, %zu of %zu runs stored)\n", figdir, f->name,
               curves, rs->shown - rs->missing, rs->shown);
out:
    sp_store_close(st);
    free(titles);
    free(ser);
    free(len);
    free(cnt);
    free(y);
    free(x);
    return rc;
}

/* kind = dims (Elhage et al. 2022, geometry of superposition): D* of every
 * stored toy model as a line and every D_i as points, against the x axis,
 * with the fractions 1, 3/4, 2/3, 1/2, 2/5, 3/8 as reference lines. */
static int plot_dims(const sp_experiment *ex, const sp_figspec *f, const char *out,
                     const run_set *rs, const char *figdir, sp_err *err)
{
    int ix = sp_experiment_axis(ex, f->x);
    if (ix < 0)
        return sp_err_set(err, "figure %s: %s is not swept", f->name, f->x);
    size_t total = rs->shown, n = rs->n_ok, cap = 0, nd = 0, ns = 0;
    double *dx = NULL, *dy = NULL, *sx = calloc(n + 1, sizeof *sx), *sy = calloc(n + 1, sizeof *sy);
    int rc = -1;
    if (!sx || !sy) {
        sp_err_set(err, "out of memory");
        goto out;
    }
    for (size_t k = 0; k < n; k++) {
        size_t r = rs->ok[k];
        double x = axis_value(ex, ix, rs->coords[r][ix], f->xinverse);
        sx[ns] = x;
        sy[ns++] = sp_run_metric(rs->rec[r], "dstar");
        size_t rows, cols;
        float *Di = load_art(out, rs->key[r], "dims.npy", &rows, &cols);
        if (!Di)
            continue;
        if (nd + rows > cap) {
            cap = 2 * (nd + rows);
            double *a = realloc(dx, cap * sizeof *a), *b = a ? realloc(dy, cap * sizeof *b) : NULL;
            if (a)
                dx = a;
            if (b)
                dy = b;
            if (!a || !b) {
                free(Di);
                sp_err_set(err, "out of memory");
                goto out;
            }
        }
        for (size_t i = 0; i < rows; i++) {
            dx[nd] = x;
            dy[nd++] = Di[i];
        }
        free(Di);
    }
    /* the D* line in x order */
    for (size_t i = 1; i < ns; i++)
        for (size_t j = i; j > 0 && sx[j - 1] > sx[j]; j--) {
            double t = sx[j];
            sx[j] = sx[j - 1];
            sx[j - 1] = t;
            t = sy[j];
            sy[j] = sy[j - 1];
            sy[j - 1] = t;
        }
    static const double fr[] = {1, 0.75, 2.0 / 3, 0.5, 0.4, 0.375};
    static const char *const frl[] = {"1", "3/4", "2/3", "1/2", "2/5", "3/8"};
    sp_series ser[2] = {
        {.title = "D_i of each feature", .n = nd, .x = dx, .y = dy, .style = SP_STYLE_POINTS},
        {.title = "D* = m / ||W||_F^2", .n = ns, .x = sx, .y = sy, .style = SP_STYLE_LINESPOINTS},
    };
    char title[300], header[1500], what[200];
    snprintf(title, sizeof title, "%s", f->title[0] ? f->title : "dimensions per feature");
    snprintf(what, sizeof what, "D* (metric dstar) and D_i (artifact dims.npy) of %zu of %zu "
                                "runs", n, total);
    fig_header(ex, what, header, sizeof header);
    sp_lines L = {.name = f->name, .title = title,
                  .xlabel = f->xlabel[0] ? f->xlabel : (f->xinverse ? "1 / x" : f->x),
                  .ylabel = f->ylabel[0] ? f->ylabel : "dimensions per feature",
                  .logx = 1, .logy = 0, .xmin = NAN, .xmax = NAN,
                  .ymin = isfinite(f->ymin) ? f->ymin : 0, .ymax = isfinite(f->ymax) ? f->ymax : 1.1,
                  .series = ser, .n_series = 2, .hlines = fr, .hline_labels = frl, .n_hlines = 6,
                  .header = header};
    rc = sp_figure_lines(figdir, &L, err);
    if (rc == 0)
        printf("figure %s/%s.png (%zu models, %zu D_i points)\n", figdir, f->name, ns, nd);
out:
    free(sy);
    free(sx);
    free(dy);
    free(dx);
    return rc;
}

/* kind = columns: the columns of every stored toy model's W (2 x n) as
 * arrows, one panel per run (Elhage et al. 2022, the pentagon). */
static int plot_columns(const sp_experiment *ex, const sp_figspec *f, const char *out,
                        const run_set *rs, const char *figdir, sp_err *err)
{
    size_t n = rs->n_ok < 64 ? rs->n_ok : 64, ncol = 0;
    char(*ptitles)[200] = calloc(n + 1, sizeof *ptitles);
    const char **pt = calloc(n + 1, sizeof *pt);
    double *x = NULL, *y = NULL;
    int rc = -1;
    if (!ptitles || !pt) {
        sp_err_set(err, "out of memory");
        goto out;
    }
    for (size_t r = 0; r < n; r++) {
        const char *key = rs->key[rs->ok[r]];
        size_t rows = 0, cols = 0;
        float *W = load_art(out, key, "W.npy", &rows, &cols);
        if (!W || rows != 2 || (ncol && cols != ncol)) {
            free(W);
            sp_err_set(err, "figure %s: run %s has no 2 x n W.npy (columns needs "
                            "data.generator = tms, data.d = 2, one data.n)", f->name, key);
            goto out;
        }
        if (!ncol) {
            ncol = cols;
            x = calloc(n * ncol, sizeof *x);
            y = calloc(n * ncol, sizeof *y);
            if (!x || !y) {
                free(W);
                sp_err_set(err, "out of memory");
                goto out;
            }
        }
        for (size_t i = 0; i < ncol; i++) {
            x[r * ncol + i] = W[i];
            y[r * ncol + i] = W[ncol + i];
        }
        free(W);
        run_label(ex, rs->coords[rs->ok[r]], ptitles[r], sizeof ptitles[r]);
        pt[r] = ptitles[r];
    }
    if (!n) {
        printf("figure %s: no stored runs yet\n", f->name);
        rc = 0;
        goto out;
    }
    char header[1500];
    fig_header(ex, "columns W_i of each toy model (artifact W.npy): x = W[0,i], y = W[1,i]; "
                   "one panel per run",
               header, sizeof header);
    sp_vectors v = {.name = f->name, .title = f->title[0] ? f->title : f->name, .n = ncol,
                    .x = x, .y = y, .labels = NULL, .header = header, .panels = n,
                    .panel_titles = pt};
    rc = sp_figure_vectors(figdir, &v, err);
    if (rc == 0)
        printf("figure %s/%s.png (%zu panels)\n", figdir, f->name, n);
out:
    free(y);
    free(x);
    free(pt);
    free(ptitles);
    return rc;
}

/* kinds rates, cofiring: one figure per stored run (NAME.png for
 * a single run, NAME-<index>.png otherwise), from the run's artifacts. */
typedef struct {
    size_t latent, match;
    double cos;
} latent_order;

static int cmp_latent_order(const void *a, const void *b)
{
    const latent_order *x = a, *y = b;
    if (x->match != y->match)
        return x->match < y->match ? -1 : 1;
    if (x->cos != y->cos)
        return x->cos > y->cos ? -1 : 1;
    return x->latent < y->latent ? -1 : (x->latent > y->latent);
}

/* kind = cosmatrix: per stored run, the cosines of every latent's decoder
 * row (left block) and encoder row (right block) with every truth feature,
 * latents ordered by their best-matched feature (so a clean dictionary is
 * a diagonal): the standard picture of absorption (Chanin et al. 2024). */
static int plot_cosmatrix(const sp_experiment *ex, const sp_figspec *f, const char *out,
                          const run_set *rs, const char *figdir, sp_err *err)
{
    size_t n_runs = rs->n_ok;
    int rc = 0;
    if (!n_runs)
        printf("figure %s: no stored runs yet\n", f->name);
    for (size_t r = 0; rc == 0 && r < n_runs; r++) {
        const char *key = rs->key[rs->ok[r]];
        size_t m = 0, d = 0, me = 0, de = 0, nt = 0, dt = 0;
        float *D = load_art(out, key, "decoder.npy", &m, &d);
        float *E = load_art(out, key, "encoder.npy", &me, &de);
        float *G = load_art(out, key, "truth.npy", &nt, &dt);
        double *z = NULL;
        latent_order *ord = NULL;
        char(*xl)[16] = NULL, (*yl)[16] = NULL;
        const char **xt = NULL, **yt = NULL;
        if (!D || !G || d != dt || d == 0 || m == 0 || nt == 0) {
            rc = sp_err_set(err, "figure %s: run %s has no decoder.npy and truth.npy of the "
                                 "same width", f->name, key);
            goto next;
        }
        if (m > 256 || nt > 256) {
            rc = sp_err_set(err, "figure %s: %zu latents x %zu features is too many to draw "
                                 "cell by cell (at most 256 each)", f->name, m, nt);
            goto next;
        }
        int enc = E && me == m && de == d;
        size_t nx = enc ? 2 * nt : nt;
        z = malloc(nx * m * sizeof *z);
        ord = malloc(m * sizeof *ord);
        xl = calloc(nx, sizeof *xl);
        yl = calloc(m, sizeof *yl);
        xt = calloc(nx, sizeof *xt);
        yt = calloc(m, sizeof *yt);
        if (!z || !ord || !xl || !yl || !xt || !yt) {
            rc = sp_err_set(err, "out of memory");
            goto next;
        }
        for (size_t i = 0; i < m; i++) {
            ord[i] = (latent_order){i, 0, -2};
            for (size_t t = 0; t < nt; t++) {
                double c = sp_cos(D + i * d, G + t * d, d);
                if (c > ord[i].cos)
                    ord[i].match = t, ord[i].cos = c;
            }
        }
        qsort(ord, m, sizeof *ord, cmp_latent_order);
        /* the heatmap's first row is drawn at the bottom: the best match of
         * feature 0 goes to the top, so a clean dictionary is the diagonal
         * from top left to bottom right */
        for (size_t k = 0; k < m; k++) {
            size_t i = ord[k].latent, y = m - 1 - k;
            snprintf(yl[y], sizeof yl[y], "L%zu", i);
            yt[y] = yl[y];
            for (size_t t = 0; t < nt; t++) {
                z[y * nx + t] = sp_cos(D + i * d, G + t * d, d);
                if (enc)
                    z[y * nx + nt + t] = sp_cos(E + i * d, G + t * d, d);
            }
        }
        for (size_t t = 0; t < nt; t++) {
            snprintf(xl[t], sizeof xl[t], "d:f%zu", t);
            xt[t] = xl[t];
            if (enc) {
                snprintf(xl[nt + t], sizeof xl[nt + t], "e:f%zu", t);
                xt[nt + t] = xl[nt + t];
            }
        }
        char name[96], label[400], title[600], header[1500];
        if (n_runs == 1)
            snprintf(name, sizeof name, "%s", f->name);
        else
            snprintf(name, sizeof name, "%s-%zu", f->name, r + 1);
        run_label(ex, rs->coords[rs->ok[r]], label, sizeof label);
        snprintf(title, sizeof title, "%s%s%s", f->title[0] ? f->title : f->name,
                 label[0] ? "\n" : "", label);
        fig_header(ex, enc ? "cos(decoder row, truth) in columns d:f*, then cos(encoder row, "
                             "truth) in columns e:f*; latents (rows) ordered by best match"
                           : "cos(decoder row, truth); latents ordered by best match",
                   header, sizeof header);
        sp_heatmap h = {.name = name, .title = title,
                        .xlabel = enc ? "truth feature (d: decoder, e: encoder)" : "truth feature",
                        .ylabel = "latent", .cblabel = "cos", .nx = nx, .ny = m,
                        .xtics = xt, .ytics = yt, .z = z,
                        .zmin = isfinite(f->zmin) ? f->zmin : -1,
                        .zmax = isfinite(f->zmax) ? f->zmax : 1, .label_cells = 1,
                        .label_fmt = f->format[0] ? f->format : "%.2f", .header = header};
        rc = sp_figure_heatmap(figdir, &h, err);
        if (rc == 0)
            printf("figure %s/%s.png (%zu latents x %zu features)\n", figdir, name, m, nt);
    next:
        free(yt);
        free(xt);
        free(yl);
        free(xl);
        free(ord);
        free(z);
        free(G);
        free(E);
        free(D);
    }
    return rc;
}

static int plot_per_run(const sp_experiment *ex, const sp_figspec *f, const char *out,
                        const run_set *rs, const char *figdir, sp_err *err)
{
    size_t n = rs->n_ok;
    int rc = 0;
    for (size_t r = 0; rc == 0 && r < n; r++) {
        const char *key = rs->key[rs->ok[r]];
        char name[96], label[400], title[600], header[1500];
        if (n == 1)
            snprintf(name, sizeof name, "%s", f->name);
        else
            snprintf(name, sizeof name, "%s-%zu", f->name, r + 1);
        run_label(ex, rs->coords[rs->ok[r]], label, sizeof label);
        snprintf(title, sizeof title, "%s%s%s", f->title[0] ? f->title : f->name,
                 label[0] ? "\n" : "", label);
        size_t rows = 0, cols = 0;
        {
            float *R = load_art(out, key, "rates.npy", &rows, &cols);
            if (!R || rows != 2) {
                free(R);
                rc = sp_err_set(err, "figure %s: run %s has no rates.npy (kinds rates and "
                                     "cofiring need train.learner = none)", f->name, key);
                break;
            }
            size_t nt = cols;
            char(*lab)[16] = calloc(nt, sizeof *lab);
            const char **labp = calloc(nt, sizeof *labp);
            double *vals = calloc(2 * nt, sizeof *vals);
            if (!lab || !labp || !vals) {
                rc = sp_err_set(err, "out of memory");
            } else if (!strcmp(f->kind, "rates")) {
                for (size_t i = 0; i < nt; i++) {
                    snprintf(lab[i], sizeof lab[i], "%zu", i);
                    labp[i] = lab[i];
                    vals[i] = R[i];
                    vals[nt + i] = R[nt + i];
                }
                static const char *const sl[] = {"expected (from the law)", "measured"};
                fig_header(ex, "firing rate per truth feature (artifact rates.npy): row 1 "
                               "expected, row 2 measured on metrics.eval_samples samples",
                           header, sizeof header);
                sp_bars b = {.name = name, .title = title, .xlabel = "feature",
                             .ylabel = "P(feature active)", .n_groups = nt,
                             .group_labels = labp, .n_series = 2, .series_labels = sl,
                             .values = vals, .logy = 0, .header = header};
                rc = sp_figure_bars(figdir, &b, err);
            } else {
                size_t cr, cc;
                float *C = load_art(out, key, "cofire.npy", &cr, &cc);
                double *z = C && cr == nt && cc == nt ? malloc(nt * nt * sizeof *z) : NULL;
                if (!z) {
                    rc = sp_err_set(err, "figure %s: run %s has no %zu x %zu cofire.npy",
                                    f->name, key, nt, nt);
                } else {
                    for (size_t i = 0; i < nt; i++) {
                        snprintf(lab[i], sizeof lab[i], "%zu", i);
                        labp[i] = lab[i];
                        for (size_t j = 0; j < nt; j++) /* row i: P(j | i) */
                            z[i * nt + j] = C[i * nt + i] > 0 ? C[i * nt + j] / C[i * nt + i]
                                                              : NAN;
                    }
                    fig_header(ex, "P(column feature active | row feature active) from the "
                                   "joint rates of artifact cofire.npy",
                               header, sizeof header);
                    sp_heatmap h = {.name = name, .title = title,
                                    .xlabel = "feature j (active?)",
                                    .ylabel = "feature i (given active)",
                                    .cblabel = "P(j | i)", .nx = nt, .ny = nt, .xtics = labp,
                                    .ytics = labp, .z = z, .zmin = 0, .zmax = 1,
                                    .label_cells = nt <= 24, .label_fmt = "%.2f",
                                    .header = header};
                    rc = sp_figure_heatmap(figdir, &h, err);
                }
                free(z);
                free(C);
            }
            free(vals);
            free(labp);
            free(lab);
            free(R);
        }
        if (rc == 0)
            printf("figure %s/%s.png\n", figdir, name);
    }
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
    run_set rs = {0};
    int rc = sp_store_list(st, &runs, err);
    sp_store_close(st);
    if (rc == 0)
        rc = run_set_load(ex, &runs, &rs, err);
    for (size_t i = 0; rc == 0 && i < ex->n_figs; i++) {
        const sp_figspec *f = &ex->figs[i];
        run_set kept, *fs = &rs;
        if (f->n_where > 0) {
            if ((rc = run_set_where(ex, f, &rs, &kept, err)) != 0)
                break;
            fs = &kept;
        }
        if (!strcmp(f->kind, "heatmap"))
            rc = plot_heatmap(ex, f, out, figdir, fs, err);
        else if (!strcmp(f->kind, "lines"))
            rc = plot_lines(ex, f, out, fs, figdir, err);
        else if (!strcmp(f->kind, "frontier"))
            rc = plot_frontier(ex, f, fs, figdir, err);
        else if (!strcmp(f->kind, "curves"))
            rc = plot_curves(ex, f, db, fs, figdir, err);
        else if (!strcmp(f->kind, "dims"))
            rc = plot_dims(ex, f, out, fs, figdir, err);
        else if (!strcmp(f->kind, "columns"))
            rc = plot_columns(ex, f, out, fs, figdir, err);
        else if (!strcmp(f->kind, "cosmatrix"))
            rc = plot_cosmatrix(ex, f, out, fs, figdir, err);
        else
            rc = plot_per_run(ex, f, out, fs, figdir, err);
        if (fs == &kept) {
            free(kept.rec);
            free(kept.ok);
        }
    }
    run_set_free(&rs);
    sp_run_list_free(&runs);
    return rc;
}
