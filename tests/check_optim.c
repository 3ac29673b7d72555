/* check_optim.c: Adam and SGD against updates worked by hand, Muon's
 * Newton-Schulz map against the SVD (singular values in Jordan's band,
 * singular vectors kept), Muon's step against its formula, schedules,
 * clipping, state reset, config checks, and a least-squares problem that
 * every optimizer must solve. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "helpers.h"
#include "superpose/optim.h"

static const double PI = 3.14159265358979323846;
static const double NS_A = 3.4445, NS_B = -4.7750, NS_C = 2.0315;

static sp_param param(const char *name, float *w, float *g, size_t rows, size_t cols, int decay)
{
    sp_param p = {.name = name, .w = w, .g = g, .n = rows * cols, .decay = decay,
                  .rows = rows, .cols = cols};
    return p;
}

static sp_optim_cfg adam_cfg(double lr)
{
    sp_optim_cfg c = {.name = "adam", .lr = lr, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    return c;
}

static sp_optim_cfg sgd_cfg(double lr, double mu, int nesterov)
{
    sp_optim_cfg c = {.name = "sgd", .lr = lr, .momentum = mu, .nesterov = nesterov};
    return c;
}

static sp_optim_cfg muon_cfg(double lr, double muon_lr)
{
    sp_optim_cfg c = {.name = "muon", .lr = lr, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                      .muon_lr = muon_lr, .muon_momentum = 0.95, .ns_steps = 5};
    return c;
}

static void gauss(gsl_rng *rng, float *x, size_t n)
{
    for (size_t k = 0; k < n; k++)
        x[k] = (float)gsl_ran_gaussian(rng, 1.0);
}

/* The quintic's scalar map, 5 steps: what NS does to one normalised
 * singular value x. */
static double ns_scalar(double x)
{
    for (int i = 0; i < 5; i++)
        x = NS_A * x + NS_B * x * x * x + NS_C * x * x * x * x * x;
    return x;
}

/* ------------------------------------------------------------------ Adam */

/* Kingma & Ba 2015, Alg. 1, lr 0.1, b1 0.9, b2 0.999, eps 1e-8, gradients
 * 2 then -1 on w0 = 1:
 *  t=1: m = 0.2, v = 0.004, mhat = 2, vhat = 4 -> w = 1 - 0.1 * 2/2 = 0.9
 *  t=2: m = 0.18 - 0.1 = 0.08, v = 0.003996 + 0.001 = 0.004996,
 *       mhat = 0.08/0.19 = 0.421053, vhat = 0.004996/0.001999 = 2.499250
 *       w = 0.9 - 0.1 * 0.421053 / 1.580902 = 0.873366
 * AdamW with wd 0.1 subtracts lr * wd * w_old as well:
 *  t=1: w = 1 - 0.1 - 0.01 = 0.89
 *  t=2: w = 0.89 - 0.1 * 0.266337 - 0.01 * 0.89 = 0.854466 */
START_TEST(test_adam_by_hand)
{
    float w = 1, g = 2;
    sp_param p = param("w", &w, &g, 1, 1, 1);
    sp_optim_cfg oc = adam_cfg(0.1); /* decay "", warmup 0, clip 0, as tms.c */
    sp_optim *o = sp_optim_alloc(&oc, &p, 1, 1000);
    ck_assert_ptr_nonnull(o);
    ck_assert_double_eq_tol(sp_optim_lr(o), 0.1, 1e-15);
    ck_assert_double_eq_tol(sp_optim_step(o), 2.0, 1e-12);
    ck_assert_double_eq_tol(w, 0.9, 1e-6);
    g = -1;
    sp_optim_step(o);
    ck_assert_double_eq_tol(w, 0.873366, 2e-6);
    sp_optim_free(o);

    /* AdamW; a parameter with decay = 0 (a bias) is not decayed */
    float wb = 1, gb = 2;
    sp_param ps[2] = {param("w", &w, &g, 1, 1, 1), param("b", &wb, &gb, 1, 1, 0)};
    w = 1, g = 2;
    oc.weight_decay = 0.1;
    o = sp_optim_alloc(&oc, ps, 2, 1000);
    sp_optim_step(o);
    ck_assert_double_eq_tol(w, 0.89, 1e-6);
    ck_assert_double_eq_tol(wb, 0.9, 1e-6);
    g = -1, gb = -1;
    sp_optim_step(o);
    ck_assert_double_eq_tol(w, 0.854466, 2e-6);
    ck_assert_double_eq_tol(wb, 0.873366, 2e-6);
    sp_optim_free(o);

    /* zero gradient: only the decay moves w, by lr * wd * w */
    w = 1, g = 0;
    oc.weight_decay = 0.5;
    o = sp_optim_alloc(&oc, &p, 1, 1000);
    sp_optim_step(o);
    ck_assert_double_eq_tol(w, 0.95, 1e-7);
    sp_optim_free(o);
}
END_TEST

/* ------------------------------------------------------------------- SGD */

/* f(w) = w^2 (g = 2 w), w0 = 1, lr 0.1, three steps:
 *  plain:             0.8, 0.64, 0.512
 *  momentum 0.5:      v = 2, 2.6, 2.38;  w = 0.8, 0.54, 0.302
 *  Nesterov 0.5:      v = 2, 2.4, 2.08;  d = g + mu v = 3, 2.6, 1.92;
 *                     w = 0.7, 0.44, 0.248
 *  plain, wd 0.5:     g' = 2.5 w: 0.75, 0.5625, 0.421875 */
static void sgd_three_steps(sp_optim_cfg oc, const double want[3])
{
    float w = 1, g;
    sp_param p = param("w", &w, &g, 1, 1, 1);
    sp_optim *o = sp_optim_alloc(&oc, &p, 1, 100);
    ck_assert_ptr_nonnull(o);
    for (int t = 0; t < 3; t++) {
        g = 2 * w;
        ck_assert_double_eq_tol(sp_optim_step(o), fabs(2.0 * (t ? want[t - 1] : 1.0)), 1e-6);
        ck_assert_msg(fabs(w - want[t]) < 1e-6, "step %d: w = %.9g, want %.9g", t + 1, w,
                      want[t]);
    }
    sp_optim_free(o);
}

START_TEST(test_sgd_by_hand)
{
    sgd_three_steps(sgd_cfg(0.1, 0, 0), (const double[]){0.8, 0.64, 0.512});
    sgd_three_steps(sgd_cfg(0.1, 0, 1), (const double[]){0.8, 0.64, 0.512});
    sgd_three_steps(sgd_cfg(0.1, 0.5, 0), (const double[]){0.8, 0.54, 0.302});
    sgd_three_steps(sgd_cfg(0.1, 0.5, 1), (const double[]){0.7, 0.44, 0.248});
    sp_optim_cfg wd = sgd_cfg(0.1, 0, 0);
    wd.weight_decay = 0.5;
    sgd_three_steps(wd, (const double[]){0.75, 0.5625, 0.421875});

    /* decay = 0: weight decay does not apply */
    float w = 1, g = 2;
    sp_param p = param("b", &w, &g, 1, 1, 0);
    sp_optim *o = sp_optim_alloc(&wd, &p, 1, 100);
    sp_optim_step(o);
    ck_assert_double_eq_tol(w, 0.8, 1e-7);
    sp_optim_free(o);
}
END_TEST

/* ---------------------------------------------------------- Newton-Schulz */

/* x (r x c, row-major) = U diag(S) V^T, U (r x p), V (c x p), p = min(r, c),
 * in double with GSL's Golub-Reinsch SVD (gsl_linalg_SV_decomp wants
 * M >= N, so wide matrices are decomposed transposed). */
typedef struct {
    gsl_matrix *U, *V;
    gsl_vector *S;
} svd_t;

static svd_t svd_of(const float *x, size_t r, size_t c)
{
    const int tr = r < c;
    const size_t M = tr ? c : r, N = tr ? r : c;
    gsl_matrix *A = gsl_matrix_alloc(M, N), *V = gsl_matrix_alloc(N, N);
    gsl_vector *S = gsl_vector_alloc(N), *work = gsl_vector_alloc(N);
    for (size_t i = 0; i < r; i++)
        for (size_t j = 0; j < c; j++)
            gsl_matrix_set(A, tr ? j : i, tr ? i : j, x[i * c + j]);
    gsl_linalg_SV_decomp(A, V, S, work);
    gsl_vector_free(work);
    /* x^T = A S V^T  =>  x = V S A^T */
    svd_t d = {tr ? V : A, tr ? A : V, S};
    return d;
}

static void svd_free(svd_t d)
{
    gsl_matrix_free(d.U);
    gsl_matrix_free(d.V);
    gsl_vector_free(d.S);
}

/* The band. The singular values of X0 = G / ||G||_F are x = s / ||G||_F in
 * (0, 1]; NS maps each by the scalar quintic iterated 5 times (the
 * iteration is an odd matrix polynomial, so it keeps U and V). Tabulating
 * that map on a log grid: it is >= 0.68 for every x >= 1.5e-3 and its
 * maximum over (0, 1] is 1.2024 (at x = 0.0041); on [1.5e-3, 1] it spans
 * [0.680, 1.2024] ([0.6818, 1.2024] from x = 3e-3 up), Jordan's "roughly
 * [0.7, 1.2]". We assert [0.6, 1.25]: the exact band plus float32 slack.
 * Only inputs with a singular value below 1.5e-3 ||G||_F (near-singular
 * square matrices: 5 steps grow x by at most 3.4445^5 = 487) may leave it;
 * rectangular Gaussian matrices never come near (smallest x ~ 0.1 for
 * 64 x 16, 0.013 for 48 x 40). Beyond the band, each singular pair of G is
 * checked: out v_k = f(x_k) u_k, direction (cosine > 0.999) and length
 * (|u_k' out v_k - f(x_k)| < 1e-4; measured 1.4e-6, float32). */
#define BAND_LO 0.6
#define BAND_HI 1.25
#define X_MIN 1.5e-3

START_TEST(test_ns_band_and_vectors)
{
    static const size_t shapes[][2] = {{64, 16}, {16, 64}, {32, 32}, {48, 40}, {100, 3}};
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    double lo = 1e9, hi = 0;
    for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
        const size_t r = shapes[sh][0], c = shapes[sh][1], n = r * c, p = r < c ? r : c;
        float *g = malloc(n * sizeof *g), *out = malloc(n * sizeof *out);
        float *ws = malloc(sp_muon_ws_size(r, c) * sizeof *ws);
        for (unsigned seed = 1; seed <= 6; seed++) {
            gsl_rng_set(rng, 1000 * sh + seed);
            gauss(rng, g, n);
            sp_muon_orthogonalise(g, r, c, 5, out, ws);
            svd_t in = svd_of(g, r, c), so = svd_of(out, r, c);
            double fro = 0;
            for (size_t k = 0; k < n; k++)
                fro += (double)g[k] * g[k];
            fro = sqrt(fro) + 1e-7;
            size_t n_small = 0, n_out = 0;
            for (size_t k = 0; k < p; k++) {
                const double x = gsl_vector_get(in.S, k) / fro;
                n_small += x < X_MIN;
                const double s = gsl_vector_get(so.S, k);
                n_out += s < BAND_LO || s > BAND_HI;
                /* out v_k = f(x_k) u_k: direction and length */
                double y2 = 0, proj = 0;
                for (size_t i = 0; i < r; i++) {
                    double y = 0;
                    for (size_t j = 0; j < c; j++)
                        y += out[i * c + j] * gsl_matrix_get(in.V, j, k);
                    y2 += y * y;
                    proj += y * gsl_matrix_get(in.U, i, k);
                }
                ck_assert_msg(proj / sqrt(y2) > 0.999, "%zux%zu seed %u: cos(out v_%zu, u_%zu) = %g",
                              r, c, seed, k, k, proj / sqrt(y2));
                ck_assert_msg(fabs(proj - ns_scalar(x)) < 1e-4,
                              "%zux%zu seed %u: u_%zu' out v_%zu = %g, quintic map of %g: %g", r,
                              c, seed, k, k, proj, x, ns_scalar(x));
                if (x >= X_MIN) {
                    ck_assert_msg(proj > BAND_LO && proj < BAND_HI,
                                  "%zux%zu seed %u: singular value %g of x = %g outside band", r,
                                  c, seed, proj, x);
                    lo = fmin(lo, proj);
                    hi = fmax(hi, proj);
                }
            }
            ck_assert_msg(n_out <= n_small, "%zux%zu seed %u: %zu singular values outside [%g, %g]",
                          r, c, seed, n_out, BAND_LO, BAND_HI);
            if (r != c)
                ck_assert_uint_eq(n_small, 0);
            svd_free(in);
            svd_free(so);
        }
        free(ws);
        free(out);
        free(g);
    }
    /* measured over these 30 matrices (x >= 1.5e-3): [0.6818, 1.2018] */
    ck_assert_msg(lo > 0.68 && hi < 1.21, "band [%g, %g]", lo, hi);
    gsl_rng_free(rng);
}
END_TEST

/* An orthonormal Q (r x c) has every singular value 1, normalised to
 * 1/sqrt(min(r, c)): NS returns f Q with f the scalar map of that value
 * (0.7145 for 1/4), inside the band. Also: the transposed path (rows > cols)
 * agrees with the direct one on the transposed input. */
START_TEST(test_ns_orthogonal_input)
{
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 7);
    const size_t R = 32, C = 16;
    gsl_matrix *A = gsl_matrix_alloc(R, C), *Q = gsl_matrix_alloc(R, R),
               *Rm = gsl_matrix_alloc(R, C);
    gsl_vector *tau = gsl_vector_alloc(C);
    for (size_t i = 0; i < R; i++)
        for (size_t j = 0; j < C; j++)
            gsl_matrix_set(A, i, j, gsl_ran_gaussian(rng, 1.0));
    gsl_linalg_QR_decomp(A, tau);
    gsl_linalg_QR_unpack(A, tau, Q, Rm);

    float *q = malloc(R * R * sizeof *q), *qt = malloc(R * C * sizeof *qt);
    float *out = malloc(R * R * sizeof *out), *out_t = malloc(R * C * sizeof *out_t);
    float *ws = malloc(sp_muon_ws_size(R, R) * sizeof *ws);
    /* tall 32 x 16 (first 16 columns), wide 16 x 32 (its transpose), square 32 x 32 */
    for (int shape = 0; shape < 3; shape++) {
        const size_t r = shape == 1 ? C : R, c = shape == 0 ? C : R, p = r < c ? r : c;
        for (size_t i = 0; i < r; i++)
            for (size_t j = 0; j < c; j++)
                q[i * c + j] = (float)(shape == 1 ? gsl_matrix_get(Q, j, i) : gsl_matrix_get(Q, i, j));
        sp_muon_orthogonalise(q, r, c, 5, out, ws);
        const double f = ns_scalar(1 / sqrt((double)p));
        ck_assert(f > BAND_LO && f < BAND_HI);
        double err = 0;
        for (size_t k = 0; k < r * c; k++)
            err = fmax(err, fabs(out[k] - f * q[k]));
        ck_assert_msg(err < 1e-4, "shape %d: max |NS(Q) - %g Q| = %g", shape, f, err);
    }

    /* transposed path: NS(g)^T == NS(g^T) */
    gauss(rng, q, R * C);
    for (size_t i = 0; i < R; i++)
        for (size_t j = 0; j < C; j++)
            qt[j * R + i] = q[i * C + j];
    sp_muon_orthogonalise(q, R, C, 5, out, ws);
    sp_muon_orthogonalise(qt, C, R, 5, out_t, ws);
    for (size_t i = 0; i < R; i++)
        for (size_t j = 0; j < C; j++)
            ck_assert_float_eq_tol(out[i * C + j], out_t[j * R + i], 1e-5);

    free(ws);
    free(out_t);
    free(out);
    free(qt);
    free(q);
    gsl_vector_free(tau);
    gsl_matrix_free(Rm);
    gsl_matrix_free(Q);
    gsl_matrix_free(A);
    gsl_rng_free(rng);
}
END_TEST

/* ------------------------------------------------------------- Muon step */

/* Two steps, warm-up 2 (multipliers 0.5 then 1) and weight decay 0.1:
 *   W1 = W0 - lr1 s NS(1.95 G1) - lr1 wd W0,    lr1 = 0.5 muon_lr
 *   W2 = W1 - lr2 s NS(G2 + 0.95 (0.95 G1 + G2)) - lr2 wd W1
 * with s = sqrt(max(1, rows/cols)), for a tall (8 x 4, s = sqrt 2) and a
 * wide (4 x 8, s = 1) matrix; a bias row (1 x 4, no decay) and a column
 * (4 x 1, decay) follow AdamW at lr with the same schedule. */
START_TEST(test_muon_step)
{
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 3);
    enum { NP = 4 };
    const size_t shape[NP][2] = {{8, 4}, {4, 8}, {1, 4}, {4, 1}};
    float w[NP][32], g[NP][32], w_ref[NP][32], g_ref[NP][32], g1[NP][32];
    sp_param ps[NP], ps_ref[2];
    for (int k = 0; k < NP; k++) {
        const size_t n = shape[k][0] * shape[k][1];
        gauss(rng, w[k], n);
        memcpy(w_ref[k], w[k], n * sizeof(float));
        ps[k] = param("p", w[k], g[k], shape[k][0], shape[k][1], k != 2);
    }
    ps_ref[0] = param("b", w_ref[2], g_ref[2], 1, 4, 0);
    ps_ref[1] = param("c", w_ref[3], g_ref[3], 4, 1, 1);

    sp_optim_cfg mc = muon_cfg(0.01, 0.02);
    mc.warmup = 2;
    mc.weight_decay = 0.1;
    sp_optim_cfg ac = adam_cfg(0.01);
    ac.warmup = 2;
    ac.weight_decay = 0.1;
    sp_optim *o = sp_optim_alloc(&mc, ps, NP, 100);
    sp_optim *ref = sp_optim_alloc(&ac, ps_ref, 2, 100);
    ck_assert_ptr_nonnull(o);
    ck_assert_ptr_nonnull(ref);

    float u[32], ns[32], ws[256];
    ck_assert_uint_le(sp_muon_ws_size(8, 4), 256);
    for (int t = 1; t <= 2; t++) {
        float before[NP][32];
        for (int k = 0; k < NP; k++) {
            const size_t n = shape[k][0] * shape[k][1];
            gauss(rng, g[k], n);
            memcpy(g_ref[k], g[k], n * sizeof(float));
            memcpy(before[k], w[k], n * sizeof(float));
            if (t == 1)
                memcpy(g1[k], g[k], n * sizeof(float));
        }
        const double lr = 0.02 * (t == 1 ? 0.5 : 1.0);
        sp_optim_step(o);
        sp_optim_step(ref);
        for (int k = 0; k < 2; k++) {
            const size_t r = shape[k][0], c = shape[k][1], n = r * c;
            for (size_t i = 0; i < n; i++)
                u[i] = t == 1 ? 1.95f * g[k][i] : g[k][i] + 0.95f * (0.95f * g1[k][i] + g[k][i]);
            sp_muon_orthogonalise(u, r, c, 5, ns, ws);
            const double s = r > c ? sqrt((double)r / (double)c) : 1.0;
            for (size_t i = 0; i < n; i++) {
                const double want = before[k][i] - lr * s * ns[i] - lr * 0.1 * before[k][i];
                ck_assert_msg(fabs(w[k][i] - want) < 1e-6, "step %d param %d [%zu]: %.9g want %.9g",
                              t, k, i, w[k][i], want);
            }
        }
        for (int k = 2; k < NP; k++)
            for (size_t i = 0; i < 4; i++)
                ck_assert_float_eq_tol(w[k][i], w_ref[k][i], 1e-7);
    }
    sp_optim_free(ref);
    sp_optim_free(o);
    gsl_rng_free(rng);
}
END_TEST

/* -------------------------------------------------------------- schedules */

/* lr 1, T = 100, warm-up 10: t = 0 -> 0.1, t = 1 -> 0.2, t >= 9 -> 1.
 * Decay from decay_start 0.6 (t0 = 60, window 40), u = (t - 60)/40:
 *   t    u      linear  cosine (1 + cos(pi u))/2
 *   60   0      1       1
 *   70   0.25   0.75    0.853553
 *   80   0.5    0.5     0.5
 *   99   0.975  0.025   0.001541
 *   100  1      0       0 */
static void advance(sp_optim *o, long *t, long to)
{
    for (; *t < to; (*t)++)
        sp_optim_step(o);
}

START_TEST(test_schedules)
{
    float w = 0, g = 0;
    sp_param p = param("w", &w, &g, 1, 1, 0);
    sp_optim_cfg c = sgd_cfg(1.0, 0, 0);
    c.warmup = 10;
    sp_optim *o = sp_optim_alloc(&c, &p, 1, 100);
    long t = 0;
    ck_assert_double_eq_tol(sp_optim_lr(o), 0.1, 1e-12);
    advance(o, &t, 1);
    ck_assert_double_eq_tol(sp_optim_lr(o), 0.2, 1e-12);
    advance(o, &t, 9);
    ck_assert_double_eq_tol(sp_optim_lr(o), 1.0, 1e-12);
    advance(o, &t, 10);
    ck_assert_double_eq_tol(sp_optim_lr(o), 1.0, 1e-12);
    advance(o, &t, 99);
    ck_assert_double_eq_tol(sp_optim_lr(o), 1.0, 1e-12); /* decay "": none */
    sp_optim_free(o);

    static const long ts[] = {60, 70, 80, 99, 100};
    static const double lin[] = {1, 0.75, 0.5, 0.025, 0};
    const double cosv[] = {1, 0.5 * (1 + cos(PI / 4)), 0.5, 0.5 * (1 + cos(0.975 * PI)), 0};
    ck_assert_double_eq_tol(cosv[1], 0.853553, 1e-6);
    ck_assert_double_eq_tol(cosv[3], 0.001541, 1e-6);
    for (int kind = 0; kind < 2; kind++) {
        c.warmup = 0;
        c.decay_start = 0.6;
        strcpy(c.decay, kind ? "cosine" : "linear");
        o = sp_optim_alloc(&c, &p, 1, 100);
        t = 0;
        advance(o, &t, 59);
        ck_assert_double_eq_tol(sp_optim_lr(o), 1.0, 1e-12);
        for (int k = 0; k < 5; k++) {
            advance(o, &t, ts[k]);
            ck_assert_msg(fabs(sp_optim_lr(o) - (kind ? cosv[k] : lin[k])) < 1e-12,
                          "%s t = %ld: lr %.17g", c.decay, t, sp_optim_lr(o));
        }
        sp_optim_free(o);
    }

    /* the step uses the reported lr: SGD with g = 1 moves w by lr_t; also
     * warm-up and decay multiply (warm-up 4, linear from t = 0 over 8) */
    c.warmup = 4;
    c.decay_start = 0;
    strcpy(c.decay, "linear");
    c.lr = 0.5;
    o = sp_optim_alloc(&c, &p, 1, 8);
    for (t = 0; t < 8; t++) {
        const double want = 0.5 * fmin(1.0, (t + 1) / 4.0) * (1 - t / 8.0);
        ck_assert_double_eq_tol(sp_optim_lr(o), want, 1e-12);
        w = 0, g = 1;
        sp_optim_step(o);
        ck_assert_double_eq_tol(w, -want, 1e-7);
    }
    sp_optim_free(o);
}
END_TEST

/* -------------------------------------------------------------- clipping */

/* Gradients (6, 0, 0) and (0, 8, 0, 0): global norm 10. With clip 1 the
 * step equals an unclipped step on the gradients times 0.1, the gradients
 * are scaled in place, and the norm returned is the one before clipping. */
START_TEST(test_clip)
{
    float a[3] = {1, 2, 3}, b[4] = {4, 5, 6, 7}, ga[3] = {6, 0, 0}, gb[4] = {0, 8, 0, 0};
    float a2[3] = {1, 2, 3}, b2[4] = {4, 5, 6, 7}, ga2[3] = {0.6f, 0, 0}, gb2[4] = {0, 0.8f, 0, 0};
    sp_param p1[2] = {param("a", a, ga, 1, 3, 1), param("b", b, gb, 2, 2, 1)};
    sp_param p2[2] = {param("a", a2, ga2, 1, 3, 1), param("b", b2, gb2, 2, 2, 1)};
    sp_optim_cfg c = sgd_cfg(0.1, 0.9, 1);
    sp_optim *o2 = sp_optim_alloc(&c, p2, 2, 10);
    c.clip = 1;
    sp_optim *o1 = sp_optim_alloc(&c, p1, 2, 10);
    ck_assert_double_eq_tol(sp_optim_step(o1), 10.0, 1e-6);
    ck_assert_double_eq_tol(sp_optim_step(o2), 1.0, 1e-6);
    ck_assert_float_eq_tol(ga[0], 0.6f, 1e-7);
    ck_assert_float_eq_tol(gb[1], 0.8f, 1e-7);
    for (int i = 0; i < 3; i++)
        ck_assert_float_eq_tol(a[i], a2[i], 1e-7);
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq_tol(b[i], b2[i], 1e-7);
    ck_assert_float_eq_tol(a[0], 1 - 0.1f * 0.6f * 1.9f, 1e-7); /* Nesterov: g + 0.9 g */

    /* below the threshold nothing changes; returns the norm */
    ga[0] = 0.3f, gb[1] = 0.4f;
    ck_assert_double_eq_tol(sp_optim_step(o1), 0.5, 1e-6);
    ck_assert_float_eq(ga[0], 0.3f);
    sp_optim_free(o1);
    sp_optim_free(o2);
}
END_TEST

/* ------------------------------------------------------------- row masks */

/* A row mask (sp_rowmask) promises that the unmarked rows of a gradient
 * are zero; the optimizer then skips reading them. The promise kept, every
 * weight must come out in the same bits as without the mask, step after
 * step (moments carried over the rows' idle steps), and the norm returned
 * must be the same double (Adam does not even read those rows). The norm is also checked against a sum in long
 * double (it is summed in another order: within 1e-12). Adam with weight
 * decay and clipping (which then needs the norm before the update), and
 * SGD with momentum; 40 x 24 with a different ~1/4 of the rows nonzero
 * each step. */
START_TEST(test_row_mask_same_bits)
{
    enum { R = 40, C = 24, N = R * C, T = 12 };
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 71);
    for (int variant = 0; variant < 3; variant++) {
        float w1[N], w2[N], g1[N], g2[N], b1[C], b2[C], gb1[C], gb2[C];
        unsigned char live[R];
        sp_rowmask mask = {live, 1};
        for (int i = 0; i < N; i++)
            w1[i] = w2[i] = (float)gsl_ran_gaussian(rng, 1.0);
        for (int i = 0; i < C; i++)
            b1[i] = b2[i] = (float)gsl_ran_gaussian(rng, 1.0);
        sp_param p1[2] = {param("W", w1, g1, R, C, 1), param("b", b1, gb1, 1, C, 0)};
        sp_param p2[2] = {param("W", w2, g2, R, C, 1), param("b", b2, gb2, 1, C, 0)};
        p2[0].live = &mask;
        sp_optim_cfg c = variant == 2 ? sgd_cfg(0.05, 0.9, 1) : adam_cfg(0.01);
        c.weight_decay = 0.1;
        if (variant == 1)
            c.clip = 0.5;
        sp_optim *o1 = sp_optim_alloc(&c, p1, 2, T);
        sp_optim *o2 = sp_optim_alloc(&c, p2, 2, T);
        for (int t = 0; t < T; t++) {
            long double ref = 0;
            for (int r = 0; r < R; r++) {
                live[r] = gsl_rng_uniform(rng) < 0.25;
                for (int j = 0; j < C; j++) {
                    float v = live[r] ? (float)gsl_ran_gaussian(rng, 1.0) : 0.0f;
                    g1[r * C + j] = g2[r * C + j] = v;
                    ref += (long double)v * v;
                }
            }
            for (int j = 0; j < C; j++) {
                gb1[j] = gb2[j] = (float)gsl_ran_gaussian(rng, 1.0);
                ref += (long double)gb1[j] * gb1[j];
            }
            /* Adam reads no masked-out row: a stale value there is not seen */
            if (!live[3] && variant < 2)
                g2[3 * C] = 1e30f;
            double n1 = sp_optim_step(o1), n2 = sp_optim_step(o2);
            ck_assert_msg(n1 == n2, "variant %d step %d: norm %.17g with mask, %.17g without",
                          variant, t, n2, n1);
            ck_assert_double_eq_tol(n1, sqrtl(ref), 1e-12 * n1);
            ck_assert_msg(!memcmp(w1, w2, sizeof w1) && !memcmp(b1, b2, sizeof b1),
                          "variant %d step %d: weights differ with the mask", variant, t);
        }
        sp_optim_free(o1);
        sp_optim_free(o2);
    }
    gsl_rng_free(rng);
}
END_TEST

/* A weight that stops receiving gradients: its moments decay by b1 and b2
 * each step. Unflushed, the first moment would stick at the smallest
 * subnormal float after ~900 steps (0.9 x 2^-149 rounds back to 2^-149)
 * and every later step would do subnormal arithmetic (about 20x slower on
 * x86). Adam flushes moments below 1e-30 to 0: over 1500 idle steps
 * (with and without a row mask) no moment is ever subnormal, m reaches
 * exactly 0 when b1^k m0 falls below 1e-30 (k = ln(1e-30 / 0.1) / ln 0.9
 * = 633.6; the float product crosses at 633-635), and before that the
 * moments equal b1^k m0 and b2^k v0 computed step by step in float. */
START_TEST(test_adam_moments_flush)
{
    enum { R = 4, C = 8, N = R * C };
    for (int masked = 0; masked < 2; masked++) {
        float w[N], g[N];
        unsigned char live[R] = {0};
        sp_rowmask mask = {live, 0};
        for (int i = 0; i < N; i++)
            w[i] = 0.1f * (float)(i + 1), g[i] = 1.0f;
        sp_param p = param("W", w, g, R, C, 1);
        if (masked)
            p.live = &mask;
        sp_optim_cfg c = adam_cfg(1e-3);
        sp_optim *o = sp_optim_alloc(&c, &p, 1, 2000);
        sp_optim_step(o); /* m = 0.1, v = 0.001 */
        for (int i = 0; i < N; i++)
            g[i] = 0.0f;
        mask.valid = masked;
        float mref = sp_optim_moment(o, 0, 0)[0], vref = sp_optim_moment(o, 0, 1)[0];
        ck_assert_float_eq_tol(mref, 0.1f, 1e-6f);
        ck_assert_float_eq_tol(vref, 0.001f, 1e-7f);
        long zero_at = -1, ref_at = -1;
        for (long k = 1; k <= 1500; k++) {
            sp_optim_step(o);
            const float *m = sp_optim_moment(o, 0, 0), *v = sp_optim_moment(o, 0, 1);
            mref = 0.9f * mref, vref = 0.999f * vref;
            if (ref_at < 0 && mref < 1e-30f)
                ref_at = k;
            for (int i = 0; i < N; i++) {
                ck_assert_msg(fpclassify(m[i]) != FP_SUBNORMAL && fpclassify(v[i]) != FP_SUBNORMAL,
                              "step %ld: subnormal moment m %g v %g", k, m[i], v[i]);
                if (mref >= 1e-30f)
                    ck_assert_msg(m[i] == mref, "step %ld: m %g, want %g", k, m[i], mref);
                ck_assert(v[i] == vref);
            }
            if (zero_at < 0 && m[0] == 0)
                zero_at = k;
        }
        ck_assert_int_eq(zero_at, ref_at);
        ck_assert(zero_at >= 633 && zero_at <= 635);
        sp_optim_free(o);
    }
}
END_TEST

/* Idle rows: two Adam optimizers over the same unit-norm rows, one told by
 * its row mask which rows have a gradient (it skips the idle ones and
 * catches their v up later), one not (it updates every row every step).
 * Rows 3-5 stop getting gradients at step 50, their m reaches 0 near step
 * 690, row 4's moments are partly reset at step 900, rows 3 and 5 fire
 * again from step 1200. w, m and v must be the same bits throughout. */
START_TEST(test_idle_rows_same_bits)
{
    enum { R = 6, C = 37, N = R * C };
    float w[2][N], g[2][N];
    unsigned char live[R];
    sp_rowmask mask = {live, 1};
    sp_optim *o[2];
    sp_param p[2];
    for (int q = 0; q < 2; q++) {
        for (int i = 0; i < N; i++)
            w[q][i] = sinf(0.37f * (float)i) + 0.01f;
        p[q] = param("W", w[q], g[q], R, C, 0);
        p[q].unit_rows = 1;
        p[q].live = q == 0 ? &mask : NULL;
        sp_optim_cfg c = adam_cfg(1e-2);
        o[q] = sp_optim_alloc(&c, &p[q], 1, 2000);
    }
    for (long t = 1; t <= 1400; t++) {
        for (int r = 0; r < R; r++)
            live[r] = r < 3 || t <= 50 || (t > 1200 && r != 4);
        for (int q = 0; q < 2; q++)
            for (int i = 0; i < N; i++)
                g[q][i] = live[i / C] ? cosf(0.1f * (float)(t * 7 + i)) : (q ? 0.0f : NAN);
        if (t == 900)
            for (int q = 0; q < 2; q++)
                sp_optim_reset(o[q], 0, 4 * C + 5, 10);
        for (int q = 0; q < 2; q++)
            sp_optim_step(o[q]);
        ck_assert_msg(memcmp(w[0], w[1], sizeof w[0]) == 0, "step %ld: w differs", t);
        if (t == 1200)
            ck_assert_uint_eq(sp_optim_idle_rows(o[0], 0), 3);
    }
    ck_assert_uint_eq(sp_optim_idle_rows(o[0], 0), 1);
    /* without a mask, row 4 is marked idle after each update but never skipped */
    ck_assert_uint_eq(sp_optim_idle_rows(o[1], 0), 1);
    for (int k = 0; k < 2; k++)
        ck_assert(memcmp(sp_optim_moment(o[0], 0, k), sp_optim_moment(o[1], 0, k),
                         N * sizeof(float)) == 0);
    /* row 4's v is still decaying (not yet 0) and its m is 0 */
    const float *v = sp_optim_moment(o[0], 0, 1), *m = sp_optim_moment(o[0], 0, 0);
    ck_assert(v[4 * C] > 0 && m[4 * C] == 0);
    sp_optim_free(o[0]);
    sp_optim_free(o[1]);
}
END_TEST

/* ----------------------------------------------------------------- reset */

/* SGD, momentum 0.9, lr 0.1, g = 1 everywhere: after two steps v = 1.9;
 * reset [2, 4) of 6; the third step moves the reset entries by 0.1 (a first
 * step) and the others by 0.1 * (0.9 * 1.9 + 1) = 0.271. */
START_TEST(test_reset_sgd)
{
    float w[6] = {0}, g[6];
    sp_param p = param("w", w, g, 2, 3, 1);
    sp_optim_cfg c = sgd_cfg(0.1, 0.9, 0);
    sp_optim *o = sp_optim_alloc(&c, &p, 1, 10);
    for (int t = 0; t < 2; t++) {
        for (int i = 0; i < 6; i++)
            g[i] = 1;
        sp_optim_step(o);
    }
    sp_optim_reset(o, 0, 2, 2);
    float before[6];
    memcpy(before, w, sizeof w);
    for (int i = 0; i < 6; i++)
        g[i] = 1;
    sp_optim_step(o);
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq_tol(before[i] - w[i], (i == 2 || i == 3) ? 0.1f : 0.271f, 1e-6);
    /* out of range: ignored */
    sp_optim_reset(o, 1, 0, 1);
    sp_optim_reset(o, 0, 5, 2);
    sp_optim_free(o);
}
END_TEST

/* Adam and Muon: a reset entry has the state of an entry whose gradient
 * was 0 until now. Optimizer A sees gradients G for 3 steps and then has
 * [lo, hi) reset; optimizer B sees the same gradients except 0 on [lo, hi).
 * Their states then agree exactly when the reset zeroed [lo, hi) and
 * nothing else (Adam is elementwise, so other entries have equal
 * histories; an untouched [lo, hi) would keep A's history), so the fourth
 * step agrees on every entry. Adam's bias correction uses the global t, so
 * this (not a fresh optimizer) is what "a first step" means for Adam. For
 * Muon the reset covers row 1 of a 4 x 3 matrix (entries [3, 6)): its
 * momentum buffer is row-major like W. A bias (1 x 3, entry 1 reset) goes
 * through Adam in both. */
static void reset_equivalence(sp_optim_cfg c)
{
    enum { R = 4, C = 3, N = R * C, LO = 3, HI = 6 };
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 11);
    float wa[N], wb[N], ga[N], gb[N], ba[C], bb[C], gba[C], gbb[C];
    gauss(rng, wa, N);
    memcpy(wb, wa, sizeof wa);
    gauss(rng, ba, C);
    memcpy(bb, ba, sizeof ba);
    sp_param pa[2] = {param("W", wa, ga, R, C, 1), param("b", ba, gba, 1, C, 0)};
    sp_param pb[2] = {param("W", wb, gb, R, C, 1), param("b", bb, gbb, 1, C, 0)};
    sp_optim *oa = sp_optim_alloc(&c, pa, 2, 100), *ob = sp_optim_alloc(&c, pb, 2, 100);
    for (int t = 0; t < 3; t++) {
        gauss(rng, ga, N);
        memcpy(gb, ga, sizeof ga);
        for (int i = LO; i < HI; i++)
            gb[i] = 0;
        gauss(rng, gba, C);
        memcpy(gbb, gba, sizeof gba);
        gbb[1] = 0;
        sp_optim_step(oa);
        sp_optim_step(ob);
    }
    sp_optim_reset(oa, 0, LO, HI - LO);
    sp_optim_reset(oa, 1, 1, 1);
    float da[N], db[N], dba[C], dbb[C];
    memcpy(da, wa, sizeof wa);
    memcpy(db, wb, sizeof wb);
    memcpy(dba, ba, sizeof ba);
    memcpy(dbb, bb, sizeof bb);
    gauss(rng, ga, N);
    memcpy(gb, ga, sizeof ga);
    gauss(rng, gba, C);
    memcpy(gbb, gba, sizeof gba);
    sp_optim_step(oa);
    sp_optim_step(ob);
    for (int i = 0; i < N; i++) {
        da[i] -= wa[i], db[i] -= wb[i];
        ck_assert_msg(fabsf(da[i] - db[i]) < 1e-6, "%s W[%d]: step %g vs %g", c.name, i, da[i],
                      db[i]);
    }
    for (int i = 0; i < C; i++)
        ck_assert_float_eq_tol(dba[i] - ba[i], dbb[i] - bb[i], 1e-7);
    sp_optim_free(oa);
    sp_optim_free(ob);
    gsl_rng_free(rng);
}

START_TEST(test_reset_adam_muon)
{
    reset_equivalence(adam_cfg(0.01));
    reset_equivalence(muon_cfg(0.01, 0.02));

    /* Muon, whole matrix reset: the next step is a fresh optimizer's first */
    float w1[12], w2[12], g[12];
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 5);
    gauss(rng, w1, 12);
    sp_param p1 = param("W", w1, g, 4, 3, 1), p2 = param("W", w2, g, 4, 3, 1);
    sp_optim_cfg c = muon_cfg(0.01, 0.02);
    sp_optim *o1 = sp_optim_alloc(&c, &p1, 1, 100), *o2 = sp_optim_alloc(&c, &p2, 1, 100);
    for (int t = 0; t < 3; t++) {
        gauss(rng, g, 12);
        sp_optim_step(o1);
    }
    sp_optim_reset(o1, 0, 0, 12);
    memcpy(w2, w1, sizeof w1);
    gauss(rng, g, 12);
    sp_optim_step(o1);
    sp_optim_step(o2);
    for (int i = 0; i < 12; i++)
        ck_assert_float_eq_tol(w1[i], w2[i], 1e-7);
    sp_optim_free(o1);
    sp_optim_free(o2);
    gsl_rng_free(rng);
}
END_TEST

/* ----------------------------------------------------------------- check */

static void expect_bad(const sp_optim_cfg *c, const char *key, const char *value)
{
    const char *msg = sp_optim_check(c);
    ck_assert_msg(msg != NULL, "%s = %s accepted", key, value);
    ck_assert_msg(strstr(msg, key) != NULL, "message '%s' lacks %s", msg, key);
    ck_assert_msg(strstr(msg, value) != NULL, "message '%s' lacks value %s", msg, value);
}

START_TEST(test_check)
{
    sp_optim_cfg good = muon_cfg(1e-3, 0.02);
    good.momentum = 0.9;
    good.warmup = 100;
    strcpy(good.decay, "cosine");
    good.decay_start = 0.8;
    good.clip = 1;
    ck_assert_ptr_null(sp_optim_check(&good));
    sp_optim_cfg c = adam_cfg(1e-3); /* tms.c's: decay "", muon fields 0 */
    ck_assert_ptr_null(sp_optim_check(&c));
    strcpy(c.decay, "none");
    ck_assert_ptr_null(sp_optim_check(&c));
    strcpy(c.decay, "linear");
    ck_assert_ptr_null(sp_optim_check(&c));
    c = sgd_cfg(0.1, 0, 0); /* eps is Adam's: not needed for sgd */
    ck_assert_ptr_null(sp_optim_check(&c));

    c = good;
    strcpy(c.name, "rmsprop");
    ck_assert_str_eq(sp_optim_check(&c),
                     "train.optimizer = 'rmsprop': unknown optimizer; allowed: sgd, adam, muon");
    strcpy(c.name, "");
    expect_bad(&c, "train.optimizer", "''");
#define BAD(field, v, key, str)                                                                    \
    do {                                                                                           \
        c = good;                                                                                  \
        c.field = v;                                                                               \
        expect_bad(&c, key, str);                                                                  \
    } while (0)
    BAD(lr, 0, "train.lr", "0");
    BAD(lr, -1, "train.lr", "-1");
    BAD(lr, NAN, "train.lr", "nan");
    BAD(lr, INFINITY, "train.lr", "inf");
    BAD(beta1, 1, "train.beta1", "1");
    BAD(beta1, -0.1, "train.beta1", "-0.1");
    BAD(beta2, 1, "train.beta2", "1");
    BAD(beta2, NAN, "train.beta2", "nan");
    BAD(eps, 0, "train.eps", "0");
    BAD(eps, -1e-8, "train.eps", "-1e-08");
    BAD(weight_decay, -0.5, "train.weight_decay", "-0.5");
    BAD(weight_decay, NAN, "train.weight_decay", "nan");
    BAD(momentum, 1, "train.momentum", "1");
    BAD(momentum, -0.5, "train.momentum", "-0.5");
    BAD(muon_lr, 0, "train.muon_lr", "0");
    BAD(muon_lr, INFINITY, "train.muon_lr", "inf");
    BAD(muon_momentum, 1, "train.muon_momentum", "1");
    BAD(muon_momentum, -0.1, "train.muon_momentum", "-0.1");
    BAD(ns_steps, 0, "train.ns_steps", "0");
    BAD(ns_steps, 51, "train.ns_steps", "51");
    BAD(warmup, -1, "train.lr_warmup", "-1");
    BAD(decay_start, 1, "train.decay_start", "1");
    BAD(decay_start, -0.1, "train.decay_start", "-0.1");
    BAD(clip, -1, "train.clip", "-1");
    BAD(clip, INFINITY, "train.clip", "inf");
    BAD(clip, NAN, "train.clip", "nan");
#undef BAD
    c = good;
    strcpy(c.decay, "step");
    expect_bad(&c, "train.lr_decay", "'step'");
    /* the allowed values are named */
    const char *msg = sp_optim_check(&c);
    ck_assert(strstr(msg, "none") && strstr(msg, "linear") && strstr(msg, "cosine"));
    c = good;
    c.ns_steps = 0;
    ck_assert(strstr(sp_optim_check(&c), "[1, 50]") != NULL);
}
END_TEST

/* ---------------------------------------------------------- least squares */

/* min_{W, b} L = ||A W + 1 b^T - Y||_F^2 / N, A (N x D) Gaussian,
 * Y = A W* + 1 b*^T with W* (D x K) and b* Gaussian, from W = 0, b = 0;
 * dL/dW = 2 A^T R / N, dL/db = 2 1^T R / N. The problem is consistent
 * (L* = 0) and well conditioned (N = 64 >> D = 16); each optimizer must cut
 * the loss 100-fold. Muon's orthogonalised steps do not shrink with the
 * gradient, so it (like SGD with momentum) needs the decay schedule to
 * settle; W is tall (16 x 8), taking Muon's transposed path. */
enum { LS_N = 64, LS_D = 16, LS_K = 8 };

static double ls_loss_grad(const float *A, const float *Y, const float *W, const float *b,
                           float *gW, float *gb)
{
    double loss = 0;
    float R[LS_N * LS_K];
    for (int i = 0; i < LS_N; i++)
        for (int k = 0; k < LS_K; k++) {
            double s = b[k] - Y[i * LS_K + k];
            for (int j = 0; j < LS_D; j++)
                s += (double)A[i * LS_D + j] * W[j * LS_K + k];
            R[i * LS_K + k] = (float)s;
            loss += s * s;
        }
    for (int j = 0; j < LS_D; j++)
        for (int k = 0; k < LS_K; k++) {
            double s = 0;
            for (int i = 0; i < LS_N; i++)
                s += (double)A[i * LS_D + j] * R[i * LS_K + k];
            gW[j * LS_K + k] = (float)(2 * s / LS_N);
        }
    for (int k = 0; k < LS_K; k++) {
        double s = 0;
        for (int i = 0; i < LS_N; i++)
            s += R[i * LS_K + k];
        gb[k] = (float)(2 * s / LS_N);
    }
    return loss / LS_N;
}

static double ls_solve(sp_optim_cfg c, long steps)
{
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 17);
    float A[LS_N * LS_D], Y[LS_N * LS_K], Ws[LS_D * LS_K], bs[LS_K];
    float W[LS_D * LS_K] = {0}, b[LS_K] = {0}, gW[LS_D * LS_K], gb[LS_K];
    gauss(rng, A, LS_N * LS_D);
    gauss(rng, Ws, LS_D * LS_K);
    gauss(rng, bs, LS_K);
    for (int i = 0; i < LS_N; i++)
        for (int k = 0; k < LS_K; k++) {
            double s = bs[k];
            for (int j = 0; j < LS_D; j++)
                s += (double)A[i * LS_D + j] * Ws[j * LS_K + k];
            Y[i * LS_K + k] = (float)s;
        }
    sp_param ps[2] = {param("W", W, gW, LS_D, LS_K, 1), param("b", b, gb, 1, LS_K, 0)};
    sp_optim *o = sp_optim_alloc(&c, ps, 2, steps);
    const double l0 = ls_loss_grad(A, Y, W, b, gW, gb);
    for (long t = 0; t < steps; t++) {
        ls_loss_grad(A, Y, W, b, gW, gb);
        sp_optim_step(o);
    }
    const double l1 = ls_loss_grad(A, Y, W, b, gW, gb);
    sp_optim_free(o);
    gsl_rng_free(rng);
    return l1 / l0;
}

START_TEST(test_least_squares)
{
    sp_optim_cfg c = adam_cfg(0.05);
    strcpy(c.decay, "cosine");
    c.decay_start = 0.5;
    double r = ls_solve(c, 1000);
    ck_assert_msg(r < 1e-2, "adam: loss ratio %g", r);

    c = muon_cfg(0.05, 0.05);
    strcpy(c.decay, "cosine");
    c.decay_start = 0.5;
    r = ls_solve(c, 1000);
    ck_assert_msg(r < 1e-2, "muon: loss ratio %g", r);

    c = sgd_cfg(0.01, 0.9, 1);
    c.clip = 10;
    r = ls_solve(c, 1000);
    ck_assert_msg(r < 1e-2, "sgd: loss ratio %g", r);
}
END_TEST

Suite *make_optim_suite(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("hand");
    tcase_add_test(tc, test_adam_by_hand);
    tcase_add_test(tc, test_sgd_by_hand);
    tcase_add_test(tc, test_schedules);
    tcase_add_test(tc, test_clip);
    tcase_add_test(tc, test_row_mask_same_bits);
    tcase_add_test(tc, test_adam_moments_flush);
    tcase_add_test(tc, test_idle_rows_same_bits);
    tcase_add_test(tc, test_reset_sgd);
    tcase_add_test(tc, test_check);
    suite_add_tcase(s, tc);
    tc = tcase_create("muon");
    tcase_add_test(tc, test_ns_band_and_vectors);
    tcase_add_test(tc, test_ns_orthogonal_input);
    tcase_add_test(tc, test_muon_step);
    tcase_add_test(tc, test_reset_adam_muon);
    suite_add_tcase(s, tc);
    tc = tcase_create("solve");
    tcase_add_test(tc, test_least_squares);
    suite_add_tcase(s, tc);
    return s;
}
