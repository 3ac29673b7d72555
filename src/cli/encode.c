/* encode.c: `superpose encode`, the sparse solvers of solve.h on any
 * dictionary saved as .npy (e.g. an SAE decoder trained elsewhere). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "superpose/metrics.h"
#include "superpose/npy.h"
#include "superpose/sae.h"
#include "superpose/solve.h"
#include "superpose/util.h"

int sp_cli_encode(int argc, char **argv);

static const char *usage_encode =
    "usage: superpose encode --dict D.npy --data X.npy -o Z.npy [options]\n"
    "\n"
    "Sparse codes Z (samples x atoms) of the rows of X (samples x d) on the\n"
    "dictionary D (atoms x d, one atom per row, any norms), so that\n"
    "X ~ Z D + b. Arrays are float32 or float64 .npy files in C order.\n"
    "\n"
    "  -D, --dict FILE     dictionary, atoms x d\n"
    "  -X, --data FILE     inputs, samples x d\n"
    "  -o, --out FILE      where to write the codes (float32, samples x atoms)\n"
    "  -s, --solver NAME   mp, omp, gp (default), ista or fista\n"
    "  -k, --l0 K          pursuits: atoms per sample; ista/fista without\n"
    "                      --lambda: lambda bisected to a mean L0 of K\n"
    "  -l, --lambda L      ista/fista: L1 coefficient of\n"
    "                      1/2 |x - z D - b|^2 + L |z|_1\n"
    "  -b, --bias FILE     decoder bias b (d values; default 0)\n"
    "      --signed        allow negative codes (default: non-negative)\n"
    "      --iters N       ista/fista: iteration cap (default 500)\n"
    "      --tol T         ista/fista: relative objective decrease to stop (1e-6)\n"
    "      --batch N       samples solved together (default 256)\n";

/* Index of the first row of a (rows x cols) holding a non-finite value, or -1. */
static long first_nonfinite(const float *a, size_t rows, size_t cols, size_t *col)
{
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++)
            if (!isfinite(a[i * cols + j])) {
                *col = j;
                return (long)i;
            }
    return -1;
}

static int parse_long(const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end || v < lo || v > hi) {
        fprintf(stderr, "superpose: %s '%s': must be an integer in [%ld, %ld]\n", opt, s, lo,
                hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_real(const char *opt, const char *s, double lo, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end || !isfinite(v) || v < lo) {
        fprintf(stderr, "superpose: %s '%s': must be a finite number >= %g\n", opt, s, lo);
        return -1;
    }
    *out = v;
    return 0;
}

int sp_cli_encode(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"dict", required_argument, 0, 'D'},  {"data", required_argument, 0, 'X'},
        {"out", required_argument, 0, 'o'},   {"solver", required_argument, 0, 's'},
        {"l0", required_argument, 0, 'k'},    {"lambda", required_argument, 0, 'l'},
        {"bias", required_argument, 0, 'b'},  {"signed", no_argument, 0, 'S'},
        {"iters", required_argument, 0, 'I'}, {"tol", required_argument, 0, 'T'},
        {"batch", required_argument, 0, 'B'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *dpath = NULL, *xpath = NULL, *opath = NULL, *bpath = NULL, *solver = "gp";
    long k = 0, iters = 500, batch = 256;
    double lambda = NAN, tol = 1e-6;
    int nonneg = 1, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "D:X:o:s:k:l:b:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'D': dpath = optarg; break;
        case 'X': xpath = optarg; break;
        case 'o': opath = optarg; break;
        case 's': solver = optarg; break;
        case 'k':
            if (parse_long("--l0", optarg, 1, 1L << 30, &k) != 0)
                return 2;
            break;
        case 'l':
            if (parse_real("--lambda", optarg, 0, &lambda) != 0)
                return 2;
            break;
        case 'b': bpath = optarg; break;
        case 'S': nonneg = 0; break;
        case 'I':
            if (parse_long("--iters", optarg, 1, 100000000, &iters) != 0)
                return 2;
            break;
        case 'T':
            if (parse_real("--tol", optarg, 0, &tol) != 0 || tol >= 1) {
                fprintf(stderr, "superpose: --tol must be in [0, 1)\n");
                return 2;
            }
            break;
        case 'B':
            if (parse_long("--batch", optarg, 1, 1 << 20, &batch) != 0)
                return 2;
            break;
        case 'h': fputs(usage_encode, stdout); return 0;
        default: fputs(usage_encode, stderr); return 2;
        }
    }
    if (optind != argc || !dpath || !xpath || !opath) {
        fprintf(stderr, "superpose: encode needs --dict, --data and --out\n%s", usage_encode);
        return 2;
    }
    int kind = sp_solver_find(solver);
    if (kind < 0) {
        fprintf(stderr, "superpose: --solver '%s': must be one of: mp, omp, gp, ista, fista\n",
                solver);
        return 2;
    }
    int lasso = kind == SP_SOLVE_ISTA || kind == SP_SOLVE_FISTA;
    if (!lasso && k == 0) {
        fprintf(stderr, "superpose: --solver %s needs --l0 K (atoms per sample)\n", solver);
        return 2;
    }
    if (!lasso && !isnan(lambda)) {
        fprintf(stderr, "superpose: --lambda applies to ista and fista, not to --solver %s\n",
                solver);
        return 2;
    }
    if (lasso && isnan(lambda) && k == 0) {
        fprintf(stderr, "superpose: --solver %s needs --lambda L, or --l0 K to choose lambda "
                        "for a mean L0 of K\n", solver);
        return 2;
    }

    sp_err err;
    float *D = NULL, *X = NULL, *bias = NULL, *Z = NULL;
    size_t m, d, N, dx, nb, cb;
    gsl_matrix_float *xb = NULL, *zb = NULL, *hb = NULL;
    sp_recon_acc *acc = NULL;
    sp_solver *S = NULL;
    int rc = 2;
    if (sp_npy_read_f32(dpath, &D, &m, &d, &err) != 0 ||
        sp_npy_read_f32(xpath, &X, &N, &dx, &err) != 0) {
        fprintf(stderr, "superpose: %s\n", err.msg);
        goto out;
    }
    if (d == 0 || m == 0) {
        fprintf(stderr, "superpose: %s: the dictionary must be a 2-D array (atoms x d) with at "
                        "least one atom; its shape is (%zu%s)\n", dpath, m, d ? ", ..." : ",");
        goto out;
    }
    if (dx == 0 || N == 0) {
        fprintf(stderr, "superpose: %s: the data must be a 2-D array (samples x d) with at least "
                        "one sample; its shape is (%zu%s)\n", xpath, N, dx ? ", ..." : ",");
        goto out;
    }
    if (dx != d) {
        fprintf(stderr, "superpose: %s has rows of %zu values but the atoms of %s have d = %zu\n",
                xpath, dx, dpath, d);
        goto out;
    }
    if (!lasso && (size_t)k > m) {
        fprintf(stderr, "superpose: --l0 %ld is more than the %zu atoms of %s\n", k, m, dpath);
        goto out;
    }
    size_t col;
    long bad = first_nonfinite(D, m, d, &col);
    if (bad >= 0) {
        fprintf(stderr, "superpose: %s: atom %ld has a non-finite value (column %zu)\n", dpath,
                bad, col);
        goto out;
    }
    if ((bad = first_nonfinite(X, N, d, &col)) >= 0) {
        fprintf(stderr, "superpose: %s: sample %ld has a non-finite value (column %zu)\n", xpath,
                bad, col);
        goto out;
    }
    if (bpath) {
        if (sp_npy_read_f32(bpath, &bias, &nb, &cb, &err) != 0) {
            fprintf(stderr, "superpose: %s\n", err.msg);
            goto out;
        }
        if (nb * (cb ? cb : 1) != d || (cb && nb != 1)) {
            fprintf(stderr, "superpose: %s: the bias must hold d = %zu values; its shape is "
                            "(%zu%s%zu)\n", bpath, d, nb, cb ? ", " : ",", cb);
            goto out;
        }
        if ((bad = first_nonfinite(bias, 1, d, &col)) >= 0) {
            fprintf(stderr, "superpose: %s: entry %zu is not finite\n", bpath, col);
            goto out;
        }
    }
    rc = 1;
    size_t B = (size_t)batch < N ? (size_t)batch : N;
    gsl_matrix_float_view dv = gsl_matrix_float_view_array(D, m, d);
    Z = malloc(N * m * sizeof *Z);
    xb = gsl_matrix_float_alloc(B, d);
    zb = gsl_matrix_float_alloc(B, m);
    if (!Z || !xb || !zb) {
        fprintf(stderr, "superpose: out of memory for %zu x %zu codes\n", N, m);
        goto out;
    }
    if (!(S = sp_solver_alloc(&dv.matrix, bias, B, &err))) {
        fprintf(stderr, "superpose: %s\n", err.msg);
        goto out;
    }
    sp_solve_cfg sc = {.kind = kind, .nonneg = nonneg, .k = (size_t)k,
                       .lambda = isnan(lambda) ? 0 : lambda, .max_iter = (int)iters, .tol = tol,
                       .use_gram = -1};
    double t0 = sp_now();
    if (lasso && isnan(lambda)) {
        gsl_matrix_float_view xv = gsl_matrix_float_view_array(X, B, d);
        sc.lambda = sp_solve_match_lambda(S, &sc, &xv.matrix, (double)k, zb, &err);
        if (isnan(sc.lambda)) {
            fprintf(stderr, "superpose: %s\n", err.msg);
            goto out;
        }
        printf("lambda = %.6g gives a mean L0 of %ld on the first %zu samples\n", sc.lambda, k, B);
    }
    if (!(acc = sp_recon_acc_alloc(d, m)) || !(hb = gsl_matrix_float_alloc(B, d))) {
        fprintf(stderr, "superpose: out of memory\n");
        goto out;
    }
    for (size_t s0 = 0; s0 < N; s0 += B) {
        size_t n = N - s0 < B ? N - s0 : B;
        gsl_matrix_float_view xv = gsl_matrix_float_submatrix(xb, 0, 0, n, d);
        gsl_matrix_float_view zv = gsl_matrix_float_submatrix(zb, 0, 0, n, m);
        gsl_matrix_float_view hv = gsl_matrix_float_submatrix(hb, 0, 0, n, d);
        memcpy(xb->data, X + s0 * d, n * d * sizeof(float));
        if (sp_solve(S, &sc, &xv.matrix, NULL, 0, &zv.matrix, NULL, &err) != 0) {
            fprintf(stderr, "superpose: samples %zu..%zu: %s\n", s0, s0 + n - 1, err.msg);
            goto out;
        }
        memcpy(Z + s0 * m, zb->data, n * m * sizeof(float));
        sp_decode_affine(&dv.matrix, bias, &zv.matrix, &hv.matrix);
        sp_recon_acc_add(acc, &xv.matrix, &hv.matrix, &zv.matrix);
        if (isatty(2) && N > B)
            fprintf(stderr, "\r\033[Kencoded %zu/%zu", s0 + n, N);
    }
    if (isatty(2) && N > B)
        fprintf(stderr, "\r\033[K");
    double el = sp_now() - t0;
    sp_recon_stats st;
    sp_recon_acc_finish(acc, &st);
    if (sp_npy_write_f32(opath, Z, N, m, &err) != 0) {
        fprintf(stderr, "superpose: %s\n", err.msg);
        goto out;
    }
    printf("wrote %s: %zu x %zu codes (%s%s), mean L0 %.3f, MSE %.6g, FVE %.4f, %.2fs "
           "(%.0f samples/s)\n",
           opath, N, m, nonneg ? "non-negative " : "", solver, st.l0, st.mse, st.fve, el,
           el > 0 ? (double)N / el : 0.0);
    rc = 0;
out:
    sp_recon_acc_free(acc);
    gsl_matrix_float_free(hb);
    sp_solver_free(S);
    gsl_matrix_float_free(zb);
    gsl_matrix_float_free(xb);
    free(Z);
    free(bias);
    free(X);
    free(D);
    return rc;
}
