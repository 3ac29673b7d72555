/* eval.c: `superpose eval`, every metric of metrics.h and recovery.h that
 * the given arrays allow, for a dictionary trained here or elsewhere (an
 * SAE decoder saved from PyTorch as .npy, atoms as rows) against a known
 * truth. Everything is read and validated before anything is computed. */
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_blas.h>

#include "superpose/geometry.h"
#include "superpose/metrics.h"
#include "superpose/npy.h"
#include "superpose/recovery.h"
#include "superpose/sae.h"
#include "superpose/util.h"

int sp_cli_eval(int argc, char **argv);

static const char *usage_eval =
    "usage: superpose eval --dict D.npy --truth G.npy [options]\n"
    "\n"
    "Scores a dictionary D (atoms x d, one atom per row, any norms) against the\n"
    "true feature directions G (features x d), and, given inputs and codes, the\n"
    "codes and reconstructions. Prints every metric the arrays allow. Arrays are\n"
    "float32 or float64 .npy files in C order.\n"
    "\n"
    "  -D, --dict FILE          dictionary (decoder rows), atoms x d\n"
    "  -G, --truth FILE         truth directions, features x d\n"
    "  -E, --encoder FILE       encoder rows, atoms x d: codes f = ReLU(X E^T + b_e)\n"
    "                           (needs --data; an SAE that subtracts b_d first:\n"
    "                           pass b_e - E b_d as --encoder-bias)\n"
    "      --encoder-bias FILE  b_e, atoms values (default 0)\n"
    "  -Z, --codes-latent FILE  codes computed elsewhere (e.g. by superpose encode),\n"
    "                           samples x atoms, instead of --encoder (needs --data)\n"
    "  -X, --data FILE          inputs, samples x d, reconstructed as f D + b_d\n"
    "  -b, --decoder-bias FILE  b_d, d values (default 0; needs --data)\n"
    "  -A, --codes FILE         true codes of the inputs, samples x features\n"
    "                           (codes.npy of superpose gen; needs latent codes)\n"
    "  -t, --tau T              cosine above which an atom counts for a feature's\n"
    "                           split count, in [0, 1) (default 0.5)\n"
    "      --json               one JSON object {\"metric\": value, ...}, NaN as null\n";

/* One input array and where it came from. */
typedef struct {
    const char *path;
    float *a;
    size_t rows, cols; /* cols == 0: 1-D */
} arr;

/* One printed metric. */
typedef struct {
    const char *name;
    double value;
    int integer;
    const char *meaning;
} metric;

static int load(const char *path, arr *x)
{
    sp_err err;
    x->path = path;
    if (!path)
        return 0;
    if (sp_npy_read_f32(path, &x->a, &x->rows, &x->cols, &err) != 0) {
        fprintf(stderr, "superpose: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static void shape_str(const arr *x, char *buf, size_t len)
{
    if (x->cols == 0)
        snprintf(buf, len, "(%zu,)", x->rows);
    else
        snprintf(buf, len, "(%zu, %zu)", x->rows, x->cols);
}

/* A 2-D array with at least one row; what describes it ("the dictionary
 * must be ... (atoms x d)"). */
static int need_2d(const arr *x, const char *what, const char *dims)
{
    if (x->cols != 0 && x->rows != 0)
        return 0;
    char sh[64];
    shape_str(x, sh, sizeof sh);
    fprintf(stderr, "superpose: %s: %s must be a 2-D array (%s) with at least one row; its "
                    "shape is %s\n", x->path, what, dims, sh);
    return -1;
}

/* A vector of n values: shape (n,) or (1, n). */
static int need_vector(const arr *x, const char *what, size_t n, const char *nname)
{
    if ((x->cols == 0 && x->rows == n) || (x->rows == 1 && x->cols == n))
        return 0;
    char sh[64];
    shape_str(x, sh, sizeof sh);
    fprintf(stderr, "superpose: %s: %s must hold %s = %zu values; its shape is %s\n", x->path,
            what, nname, n, sh);
    return -1;
}

static int need_finite(const arr *x)
{
    if (!x->path)
        return 0;
    size_t cols = x->cols ? x->cols : x->rows, rows = x->cols ? x->rows : 1;
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++)
            if (!isfinite(x->a[i * cols + j])) {
                if (x->cols)
                    fprintf(stderr, "superpose: %s: row %zu, column %zu is %g: every entry "
                                    "must be finite\n", x->path, i, j, x->a[i * cols + j]);
                else
                    fprintf(stderr, "superpose: %s: entry %zu is %g: every entry must be "
                                    "finite\n", x->path, j, x->a[j]);
                return -1;
            }
    return 0;
}

/* Largest |cos| between two distinct rows of a; NaN when a has fewer than
 * two rows (sp_geom_max_cos gives 0 there). */
static double max_abs_cos(const gsl_matrix_float *a)
{
    return a->size1 < 2 ? NAN : sp_geom_max_cos(a);
}

static void print_table(const metric *mt, size_t n)
{
    printf("%-18s %12s  %s\n", "metric", "value", "meaning");
    for (size_t i = 0; i < n; i++) {
        char v[64];
        if (isnan(mt[i].value))
            snprintf(v, sizeof v, "n/a");
        else if (mt[i].integer)
            snprintf(v, sizeof v, "%.0f", mt[i].value);
        else
            snprintf(v, sizeof v, "%.6g", mt[i].value);
        printf("%-18s %12s  %s\n", mt[i].name, v, mt[i].meaning);
    }
}

static void print_json(const metric *mt, size_t n)
{
    putchar('{');
    for (size_t i = 0; i < n; i++) {
        printf("%s\"%s\": ", i ? ", " : "", mt[i].name);
        if (!isfinite(mt[i].value))
            fputs("null", stdout);
        else if (mt[i].integer)
            printf("%.0f", mt[i].value);
        else
            printf("%.9g", mt[i].value);
    }
    puts("}");
}

int sp_cli_eval(int argc, char **argv)
{
    enum { OPT_EBIAS = 256, OPT_JSON };
    static const struct option longopts[] = {
        {"dict", required_argument, 0, 'D'},
        {"truth", required_argument, 0, 'G'},
        {"encoder", required_argument, 0, 'E'},
        {"encoder-bias", required_argument, 0, OPT_EBIAS},
        {"codes-latent", required_argument, 0, 'Z'},
        {"data", required_argument, 0, 'X'},
        {"decoder-bias", required_argument, 0, 'b'},
        {"codes", required_argument, 0, 'A'},
        {"tau", required_argument, 0, 't'},
        {"json", no_argument, 0, OPT_JSON},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *dp = NULL, *gp = NULL, *ep = NULL, *bep = NULL, *zp = NULL, *xp = NULL,
               *bdp = NULL, *ap = NULL;
    double tau = 0.5;
    int json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "D:G:E:Z:X:b:A:t:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'D': dp = optarg; break;
        case 'G': gp = optarg; break;
        case 'E': ep = optarg; break;
        case OPT_EBIAS: bep = optarg; break;
        case 'Z': zp = optarg; break;
        case 'X': xp = optarg; break;
        case 'b': bdp = optarg; break;
        case 'A': ap = optarg; break;
        case 't': {
            char *end;
            tau = strtod(optarg, &end);
            if (*optarg == '\0' || *end || !(tau >= 0 && tau < 1)) {
                fprintf(stderr, "superpose: --tau '%s': must be a number in [0, 1)\n", optarg);
                return 2;
            }
            break;
        }
        case OPT_JSON: json = 1; break;
        case 'h': fputs(usage_eval, stdout); return 0;
        default: fputs(usage_eval, stderr); return 2;
        }
    }
    if (optind != argc || !dp || !gp) {
        if (optind != argc)
            fprintf(stderr, "superpose: eval takes no positional argument ('%s')\n",
                    argv[optind]);
        else
            fprintf(stderr, "superpose: eval needs --dict and --truth\n");
        fputs(usage_eval, stderr);
        return 2;
    }
    const char *need = NULL;
    if (ep && zp)
        need = "--encoder and --codes-latent are two sources of the same codes: give one";
    else if (ep && !xp)
        need = "--encoder needs --data (the inputs to encode)";
    else if (zp && !xp)
        need = "--codes-latent needs --data (the inputs the codes reconstruct)";
    else if (bep && !ep)
        need = "--encoder-bias needs --encoder";
    else if (xp && !ep && !zp)
        need = "--data needs --encoder or --codes-latent (the codes of the inputs)";
    else if (bdp && !xp)
        need = "--decoder-bias needs --data (it only enters the reconstruction)";
    else if (ap && !ep && !zp)
        need = "--codes (the true codes) needs latent codes to score: --encoder and --data, "
               "or --codes-latent and --data";
    if (need) {
        fprintf(stderr, "superpose: %s\n", need);
        return 2;
    }

    arr D = {0}, G = {0}, E = {0}, BE = {0}, Z = {0}, X = {0}, BD = {0}, A = {0};
    gsl_matrix_float *F = NULL, *xh = NULL;
    size_t *match = NULL, *row = NULL;
    uint32_t *idx = NULL;
    float *val = NULL;
    double *dnorm = NULL;
    uint8_t *y = NULL;
    sp_recon_acc *racc = NULL;
    sp_support_acc *sacc = NULL;
    sp_firing_acc *facc = NULL;
    int rc = 2;

    /* ---- read and validate everything */
    if (load(dp, &D) || load(gp, &G) || load(ep, &E) || load(bep, &BE) || load(zp, &Z) ||
        load(xp, &X) || load(bdp, &BD) || load(ap, &A))
        goto out;
    if (need_2d(&D, "the dictionary", "atoms x d") || need_2d(&G, "the truth", "features x d"))
        goto out;
    size_t m = D.rows, d = D.cols, n = G.rows, N = 0;
    if (G.cols != d) {
        fprintf(stderr, "superpose: %s has rows of %zu values but the atoms of %s have d = %zu\n",
                gp, G.cols, dp, d);
        goto out;
    }
    if (ep) {
        if (need_2d(&E, "the encoder", "atoms x d"))
            goto out;
        if (E.rows != m || E.cols != d) {
            fprintf(stderr, "superpose: %s: the encoder must be atoms x d = (%zu, %zu) like "
                            "%s; its shape is (%zu, %zu)%s\n", ep, m, d, dp, E.rows, E.cols,
                    E.rows == d && E.cols == m ? " (a PyTorch W_enc of shape d x atoms: save "
                                                 "its transpose)" : "");
            goto out;
        }
        if (bep && need_vector(&BE, "the encoder bias", m, "atoms"))
            goto out;
    }
    if (xp) {
        if (need_2d(&X, "the data", "samples x d"))
            goto out;
        if (X.cols != d) {
            fprintf(stderr, "superpose: %s has rows of %zu values but the atoms of %s have "
                            "d = %zu\n", xp, X.cols, dp, d);
            goto out;
        }
        N = X.rows;
        if (bdp && need_vector(&BD, "the decoder bias", d, "d"))
            goto out;
    }
    if (zp) {
        if (need_2d(&Z, "the latent codes", "samples x atoms"))
            goto out;
        if (Z.rows != N || Z.cols != m) {
            fprintf(stderr, "superpose: %s: the latent codes must be samples x atoms = (%zu, "
                            "%zu) (the rows of %s, the atoms of %s); its shape is (%zu, %zu)\n",
                    zp, N, m, xp, dp, Z.rows, Z.cols);
            goto out;
        }
    }
    if (ap) {
        if (need_2d(&A, "the true codes", "samples x features"))
            goto out;
        if (A.rows != N || A.cols != n) {
            fprintf(stderr, "superpose: %s: the true codes must be samples x features = (%zu, "
                            "%zu) (the rows of %s, the features of %s); its shape is (%zu, "
                            "%zu)\n", ap, N, n, xp, gp, A.rows, A.cols);
            goto out;
        }
        if (n > UINT32_MAX) {
            fprintf(stderr, "superpose: %s: more than 2^32 features\n", gp);
            goto out;
        }
    }
    if (need_finite(&D) || need_finite(&G) || need_finite(&E) || need_finite(&BE) ||
        need_finite(&Z) || need_finite(&X) || need_finite(&BD) || need_finite(&A))
        goto out;

    /* ---- compute */
    rc = 1;
    metric mt[40];
    size_t nm = 0;
#define PUT(nam, v, integ, mean) mt[nm++] = (metric){nam, (v), integ, mean}
    gsl_matrix_float_view dv = gsl_matrix_float_view_array(D.a, m, d);
    gsl_matrix_float_view gv = gsl_matrix_float_view_array(G.a, n, d);
    PUT("atoms", (double)m, 1, "dictionary rows m");
    PUT("truth_features", (double)n, 1, "truth rows n");
    PUT("d", (double)d, 1, "input dimension");
    PUT("mmcs", sp_metric_mmcs(&gv.matrix, &dv.matrix, NULL), 0,
        "higher is better: mean over features of the best cos with an atom");
    PUT("mmcs_rev", sp_metric_mmcs(&dv.matrix, &gv.matrix, NULL), 0,
        "higher is better: mean over atoms of the best cos with a feature");
    PUT("mcc", sp_metric_mcc(&dv.matrix, &gv.matrix, NULL), 0,
        "higher is better: mean |cos| of the one-to-one (Hungarian) matching");
    PUT("uniqueness", sp_metric_uniqueness(&dv.matrix, &gv.matrix), 0,
        "higher is better: distinct best-matched features / atoms");
    PUT("tau", tau, 0, "the split threshold (--tau)");
    PUT("split", sp_metric_split_count(&dv.matrix, &gv.matrix, tau, NULL), 0,
        "1 is clean: mean atoms per feature with cos > tau");
    PUT("max_cos_dict", max_abs_cos(&dv.matrix), 0,
        "largest |cos| between two distinct atoms");
    PUT("max_cos_truth", max_abs_cos(&gv.matrix), 0,
        "largest |cos| between two truth features (describes the data)");

    if (xp) {
        gsl_matrix_float_view xv = gsl_matrix_float_view_array(X.a, N, d);
        if (m > SIZE_MAX / sizeof(float) / N || !(F = gsl_matrix_float_alloc(N, m))) {
            fprintf(stderr, "superpose: out of memory for %zu x %zu codes\n", N, m);
            goto out;
        }
        if (zp) {
            memcpy(F->data, Z.a, N * m * sizeof(float));
        } else {
            gsl_matrix_float_view ev = gsl_matrix_float_view_array(E.a, m, d);
            gsl_blas_sgemm(CblasNoTrans, CblasTrans, 1.0f, &xv.matrix, &ev.matrix, 0.0f, F);
            for (size_t b = 0; b < N; b++) {
                float *fr = gsl_matrix_float_ptr(F, b, 0);
                for (size_t i = 0; i < m; i++) {
                    float v = fr[i] + (BE.a ? BE.a[i] : 0.0f);
                    fr[i] = v > 0 ? v : 0.0f;
                }
            }
        }
        const size_t block = 4096;
        size_t B = N < block ? N : block;
        if (!(xh = gsl_matrix_float_alloc(B, d)) || !(racc = sp_recon_acc_alloc(d, m))) {
            fprintf(stderr, "superpose: out of memory\n");
            goto out;
        }
        for (size_t s0 = 0; s0 < N; s0 += B) {
            size_t k = N - s0 < B ? N - s0 : B;
            gsl_matrix_float_view fb = gsl_matrix_float_submatrix(F, s0, 0, k, m);
            gsl_matrix_float_view xb = gsl_matrix_float_submatrix(&xv.matrix, s0, 0, k, d);
            gsl_matrix_float_view hb = gsl_matrix_float_submatrix(xh, 0, 0, k, d);
            sp_decode_affine(&dv.matrix, BD.a, &fb.matrix, &hb.matrix);
            sp_recon_acc_add(racc, &xb.matrix, &hb.matrix, &fb.matrix);
        }
        sp_recon_stats st;
        sp_recon_acc_finish(racc, &st);
        PUT("samples", (double)N, 1, "rows of the data");
        PUT("l0", st.l0, 0, "mean nonzero codes per sample");
        PUT("dead", (double)st.dead, 1, "lower is better: atoms that never fired");
        PUT("mse", st.mse, 0, "lower is better: |x_hat - x|^2 / (N d), x_hat = f D + b_d");
        PUT("fve", st.fve, 0, "higher is better: 1 - SSE / SST (about the mean)");
    }

    if (ap) {
        size_t nnz = 0;
        for (size_t i = 0; i < N * n; i++)
            nnz += A.a[i] != 0;
        match = malloc(m * sizeof *match);
        dnorm = malloc(m * sizeof *dnorm);
        row = malloc((N + 1) * sizeof *row);
        idx = malloc((nnz ? nnz : 1) * sizeof *idx);
        val = malloc((nnz ? nnz : 1) * sizeof *val);
        y = malloc(N);
        if (!match || !dnorm || !row || !idx || !val || !y ||
            sp_metric_best_match(&dv.matrix, &gv.matrix, match, NULL) != 0) {
            fprintf(stderr, "superpose: out of memory\n");
            goto out;
        }
        for (size_t i = 0; i < m; i++) {
            double s = 0;
            for (size_t j = 0; j < d; j++)
                s += (double)D.a[i * d + j] * D.a[i * d + j];
            dnorm[i] = sqrt(s);
        }
        size_t q = 0;
        for (size_t b = 0; b < N; b++) {
            row[b] = q;
            for (size_t t = 0; t < n; t++)
                if (A.a[b * n + t] != 0) {
                    idx[q] = (uint32_t)t;
                    val[q++] = A.a[b * n + t];
                }
        }
        row[N] = q;
        if (!(sacc = sp_support_acc_alloc(match, m, n)) ||
            !(facc = sp_firing_acc_alloc(match, dnorm, m, n))) {
            fprintf(stderr, "superpose: out of memory\n");
            goto out;
        }
        sp_support_acc_add(sacc, F, row, idx);
        sp_firing_acc_add(facc, F, row, idx, val);
        double p, r, f1;
        sp_support_acc_finish(sacc, &p, &r, &f1);
        sp_firing_stats fs;
        sp_firing_acc_finish(facc, &fs, NULL);
        /* k-sparse probing (Chanin et al.'s gain of 0.03, up to 10 latents) of
         * each feature that fires; features that fire in every sample, or
         * that no latent is more active on, have no probe (count 0) */
        size_t fired = 0, probed = 0, kept = 0, max_k = m < 10 ? m : 10;
        double f1sum = 0;
        for (size_t t = 0; t < n; t++) {
            size_t on = 0;
            for (size_t b = 0; b < N; b++)
                on += (y[b] = A.a[b * n + t] != 0);
            if (!on)
                continue;
            fired++;
            double bf = NAN;
            size_t k = sp_metric_probe_count(F->data, N, m, y, 0.03, max_k, &bf);
            if (k > 0) {
                kept += k;
                f1sum += bf;
                probed++;
            }
        }
        PUT("precision", p, 0, "higher is better: active codes whose matched feature is on");
        PUT("recall", r, 0, "higher is better: active features with an active matched atom");
        PUT("f1", f1, 0, "higher is better: 2 P R / (P + R) of the support");
        PUT("firing_precision", fs.precision, 0,
            "higher is better: mean over atoms of P(feature on | atom on)");
        PUT("firing_recall", fs.recall, 0,
            "higher is better: mean over atoms of P(atom on | feature on)");
        PUT("firing_f1", fs.f1, 0, "higher is better: mean per-atom F1 of firing");
        PUT("shrinkage", fs.shrinkage, 0, "1 is none: mean f ||d|| / true code, both on");
        PUT("features_on", (double)fired, 1, "truth features active in some sample");
        PUT("probed", (double)probed, 1, "of those, features with a k-sparse probe");
        PUT("probe_count", probed ? (double)kept / (double)probed : NAN, 0,
            "1 is clean: mean latents a probe keeps per probed feature");
        PUT("probe_f1", probed ? f1sum / (double)probed : NAN, 0,
            "higher is better: mean F1 of those probes");
    }
#undef PUT
    if (json)
        print_json(mt, nm);
    else
        print_table(mt, nm);
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    sp_firing_acc_free(facc);
    sp_support_acc_free(sacc);
    sp_recon_acc_free(racc);
    free(y);
    free(dnorm);
    free(val);
    free(idx);
    free(row);
    free(match);
    gsl_matrix_float_free(xh);
    gsl_matrix_float_free(F);
    free(A.a);
    free(BD.a);
    free(X.a);
    free(Z.a);
    free(BE.a);
    free(E.a);
    free(G.a);
    free(D.a);
    return rc;
}
