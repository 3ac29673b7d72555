/* check_penalty.c: sparsity penalties: finite-difference gradients of every
 * penalty, values worked out by hand, warm-up, p-annealing and its
 * continuity rescale, config validation. */
#include "helpers.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "superpose/penalty.h"

static sp_penalty_cfg cfg_of(const char *name)
{
    sp_penalty_cfg c = {.coef = 0.7, .per_latent = 0, .scale = 0.8, .p = 0.5, .p_end = 0.5,
                        .anneal_start = 0.2, .eps = 0.1, .c = 4, .warmup = 0};
    snprintf(c.name, sizeof c.name, "%s", name);
    return c;
}

/* Deterministic values in [lo, hi] (golden-ratio sequence). */
static void fill(float *x, size_t n, float lo, float hi, double seed)
{
    double u = seed;
    for (size_t k = 0; k < n; k++) {
        u += 0.6180339887498949;
        u -= floor(u);
        x[k] = lo + (hi - lo) * (float)u;
    }
}

/* ---- 1. finite differences for every penalty ---- */

enum { FB = 4, FM = 7, FLD = 9, FT = 100, FMID = 60 };

static const char *const fd_names[] = {"l1", "cauchy", "lp", "log", "tanh", "l1_dnorm", "panneal"};

/* Tolerance, in units of phi (value and gradient share the factor coef s/B).
 * Rounding: the penalty sums float32 phi's in double, so moving one entry by
 * +-h changes only that entry's phi, whose float rounding is ~6e-8 of |phi|
 * (|phi| <= 3 here): over the step 2h = 1e-2 that is <= 4e-5, against a
 * largest |phi'| between 0.9 and 3.3 depending on the penalty: <= 5e-5.
 * Truncation: central differences are off by h^2/6 |phi'''|. The steepest
 * case is tanh(c a n) with c n <= 6 and c a n >= 0.8, where
 * |phi'''| <= 6^3 * 0.67 = 144: 4.2e-6 * 144 = 6e-4 against a largest phi'
 * of ~1.3, i.e. 4.5e-4; log (eps = 0.1) is next: 2/(eps + a)^3 <= 74
 * against 1/(eps + a) = 3.3, i.e. 1e-4. Measured worst: 3.9e-4 (tanh),
 * <= 1e-4 for the others (h = 1e-2 gave 1.6e-3 for tanh, hence 5e-3).
 * A wrong factor or a missing term gives errors of order 1. The step is
 * the float difference actually applied, so rounding x +- h does not count. */
#define FD_H 5e-3f
#define FD_TOL 1e-3

static sp_penalty *fd_alloc(const char *name, sp_penalty_cfg *c, const float *F,
                            const float *dn)
{
    *c = cfg_of(name);
    c->per_latent = strcmp(name, "cauchy") == 0 || strcmp(name, "log") == 0 ||
                    strcmp(name, "l1_dnorm") == 0;
    sp_penalty *P = sp_penalty_alloc(c, FT);
    ck_assert_ptr_nonnull(P);
    if (strcmp(name, "panneal") == 0) {
        /* p moves from 1 to 0.75: the rescale happens here, then p stays */
        sp_penalty_set_step(P, 0);
        sp_penalty_eval(P, F, FB, FM, FLD, dn, NULL, NULL);
        sp_penalty_set_step(P, FMID);
        ck_assert_double_eq_tol(sp_penalty_p(P), 0.75, 1e-15);
        sp_penalty_eval(P, F, FB, FM, FLD, dn, NULL, NULL);
        ck_assert(sp_penalty_coef(P) != c->coef);
    }
    return P;
}

static double maxabs(const float *x, size_t n, size_t stride, size_t cols)
{
    double mx = 0;
    for (size_t k = 0; k < n; k++)
        if (k % stride < cols)
            mx = fmax(mx, fabs((double)x[k]));
    return mx;
}

START_TEST(test_fd_gradients)
{
    const char *name = fd_names[_i];
    float F[FB * FLD], dn[FM], dF[FB * FLD], dd[FM];
    fill(F, FB * FLD, 0.2f, 2.0f, 0.1 * _i);
    fill(dn, FM, 0.5f, 1.5f, 0.37);
    sp_penalty_cfg c = cfg_of(name);
    const float *dnp = sp_penalty_uses_dnorm(&c) ? dn : NULL;
    sp_penalty *P0 = fd_alloc(name, &c, F, dnp);
    for (size_t k = 0; k < FB * FLD; k++)
        dF[k] = 0;
    for (size_t i = 0; i < FM; i++)
        dd[i] = 0;
    double coef = sp_penalty_coef(P0);
    sp_penalty_eval(P0, F, FB, FM, FLD, dnp, dF, dd);
    ck_assert_double_eq(sp_penalty_coef(P0), coef); /* same p: no rescale */
    for (size_t b = 0; b < FB; b++)
        for (size_t i = FM; i < FLD; i++)
            ck_assert(dF[b * FLD + i] == 0.0f); /* padding untouched */

    double gmax = maxabs(dF, FB * FLD, FLD, FM);
    ck_assert(gmax > 0);
    for (size_t b = 0; b < FB; b++)
        for (size_t i = 0; i < FM; i++) {
            size_t k = b * FLD + i;
            float x = F[k], xp = x + FD_H, xm = x - FD_H;
            F[k] = xp;
            double vp = sp_penalty_eval(P0, F, FB, FM, FLD, dnp, NULL, NULL);
            F[k] = xm;
            double vm = sp_penalty_eval(P0, F, FB, FM, FLD, dnp, NULL, NULL);
            F[k] = x;
            double fd = (vp - vm) / ((double)xp - (double)xm);
            ck_assert_msg(fabs(fd - dF[k]) <= FD_TOL * gmax,
                          "%s: dP/dF[%zu][%zu] = %.9g, finite difference %.9g", name, b, i,
                          (double)dF[k], fd);
        }
    if (dnp) {
        double dmax = maxabs(dd, FM, FM, FM);
        ck_assert(dmax > 0);
        for (size_t i = 0; i < FM; i++) {
            float x = dn[i], xp = x + FD_H, xm = x - FD_H;
            dn[i] = xp;
            double vp = sp_penalty_eval(P0, F, FB, FM, FLD, dn, NULL, NULL);
            dn[i] = xm;
            double vm = sp_penalty_eval(P0, F, FB, FM, FLD, dn, NULL, NULL);
            dn[i] = x;
            double fd = (vp - vm) / ((double)xp - (double)xm);
            ck_assert_msg(fabs(fd - dd[i]) <= FD_TOL * dmax,
                          "%s: dP/dn[%zu] = %.9g, finite difference %.9g", name, i,
                          (double)dd[i], fd);
        }
    } else {
        for (size_t i = 0; i < FM; i++)
            ck_assert(dd[i] == 0.0f); /* nothing added for other penalties */
    }
    sp_penalty_free(P0);
}
END_TEST

/* ---- 2. values by hand ---- */

START_TEST(test_l1_by_hand)
{
    /* 2 x 2 with row stride 3; coef 0.5: P = 0.5 * (1 + 2 + 0.5 + 0) / 2 */
    sp_penalty_cfg c = cfg_of("l1");
    c.coef = 0.5;
    sp_penalty *P = sp_penalty_alloc(&c, 10);
    ck_assert_ptr_nonnull(P);
    const float F[6] = {1, -2, 99, 0.5f, 0, 99};
    float dF[6] = {1, 1, 1, 1, 1, 1};
    double v = sp_penalty_eval(P, F, 2, 2, 3, NULL, dF, NULL);
    ck_assert_double_eq_tol(v, 0.875, 1e-15);
    /* gradient coef / B * sign, added to what was there; zero at a = 0 */
    const float want[6] = {1.25f, 0.75f, 1, 1.25f, 1, 1};
    for (int k = 0; k < 6; k++)
        ck_assert_float_eq(dF[k], want[k]);
    ck_assert_double_eq(sp_penalty_p(P), 1);
    sp_penalty_free(P);
}
END_TEST

START_TEST(test_per_latent)
{
    float F[12], g1[12] = {0}, g2[12] = {0};
    fill(F, 12, -1, 2, 0.3);
    sp_penalty_cfg c = cfg_of("cauchy");
    sp_penalty *A = sp_penalty_alloc(&c, 10);
    c.per_latent = 1;
    sp_penalty *Bp = sp_penalty_alloc(&c, 10);
    double va = sp_penalty_eval(A, F, 2, 6, 6, NULL, g1, NULL);
    double vb = sp_penalty_eval(Bp, F, 2, 6, 6, NULL, g2, NULL);
    ck_assert(va > 0);
    ck_assert_double_eq_tol(vb, va / 6, 1e-12 * va);
    for (int k = 0; k < 12; k++)
        ck_assert_float_eq_tol(g2[k], g1[k] / 6, 1e-6f * fabsf(g1[k]));
    sp_penalty_free(A);
    sp_penalty_free(Bp);
}
END_TEST

START_TEST(test_cauchy_lp_log_by_hand)
{
    /* cauchy at a = s: log 2, gradient 2s / (2 s^2) = 1/s, sign carried */
    sp_penalty_cfg c = cfg_of("cauchy");
    c.coef = 1;
    c.scale = 2;
    sp_penalty *P = sp_penalty_alloc(&c, 10);
    float F[2] = {2, -2}, dF[2] = {0, 0};
    ck_assert_double_eq_tol(sp_penalty_eval(P, F, 1, 1, 1, NULL, dF, NULL), log(2), 1e-7);
    ck_assert_double_eq_tol(sp_penalty_eval(P, F + 1, 1, 1, 1, NULL, dF + 1, NULL), log(2), 1e-7);
    ck_assert_float_eq_tol(dF[0], 0.5f, 1e-7f);
    ck_assert_float_eq_tol(dF[1], -0.5f, 1e-7f);
    float z = 0, dz = 0;
    ck_assert_double_eq(sp_penalty_eval(P, &z, 1, 1, 1, NULL, &dz, NULL), 0);
    ck_assert_float_eq(dz, 0); /* Cauchy's gradient vanishes at 0 */
    sp_penalty_free(P);

    /* lp: exactly 0 at a = 0 with the one-sided gradient p eps^(p-1);
     * at a = 1 - eps: 1 - eps^p */
    c = cfg_of("lp");
    c.coef = 1;
    c.p = 0.5;
    c.eps = 0.01;
    P = sp_penalty_alloc(&c, 10);
    ck_assert_double_eq(sp_penalty_p(P), 0.5);
    float Z[6] = {0}, dZ[6] = {0};
    ck_assert(sp_penalty_eval(P, Z, 2, 3, 3, NULL, dZ, NULL) == 0.0);
    for (int k = 0; k < 6; k++)
        ck_assert_float_eq_tol(dZ[k], 0.5f * 10.0f / 2, 1e-5f); /* p eps^(p-1) / B */
    float a[2] = {0.99f, -0.99f}, da[2] = {0, 0};
    ck_assert_double_eq_tol(sp_penalty_eval(P, a, 1, 2, 2, NULL, da, NULL), 2 * (1 - 0.1), 1e-6);
    ck_assert_float_eq_tol(da[0], 0.5f, 1e-6f); /* p (a + eps)^(p-1) = p at a + eps = 1 */
    ck_assert_float_eq_tol(da[1], -0.5f, 1e-6f);
    sp_penalty_free(P);

    /* log at a = eps (e - 1): phi = 1, phi' = 1 / (e eps) */
    c = cfg_of("log");
    c.coef = 3;
    c.eps = 0.2;
    P = sp_penalty_alloc(&c, 10);
    float L = (float)(0.2 * (exp(1.0) - 1)), dL = 0;
    ck_assert_double_eq_tol(sp_penalty_eval(P, &L, 1, 1, 1, NULL, &dL, NULL), 3, 1e-6);
    ck_assert_float_eq_tol(dL, (float)(3 / (exp(1.0) * 0.2)), 1e-5f);
    sp_penalty_free(P);
}
END_TEST

START_TEST(test_dnorm_by_hand)
{
    /* tanh(c a n) with c = 4, a = 0.25, n = 2: tanh(2); d/dn = c a sech^2(2) */
    sp_penalty_cfg c = cfg_of("tanh");
    c.coef = 1;
    sp_penalty *P = sp_penalty_alloc(&c, 10);
    float a = 0.25f, n = 2, da = 0, dn = 0;
    double t = tanh(2.0), s2 = 1 - t * t;
    ck_assert_double_eq_tol(sp_penalty_eval(P, &a, 1, 1, 1, &n, &da, &dn), t, 1e-6);
    ck_assert_float_eq_tol(da, (float)(4 * 2 * s2), 1e-5f);
    ck_assert_float_eq_tol(dn, (float)(4 * 0.25 * s2), 1e-5f);
    /* dnorm NULL reads as unit norms */
    float one = 1, g1 = 0, g2 = 0;
    double v1 = sp_penalty_eval(P, &a, 1, 1, 1, &one, &g1, NULL);
    double v2 = sp_penalty_eval(P, &a, 1, 1, 1, NULL, &g2, NULL);
    ck_assert_double_eq(v1, v2);
    ck_assert_float_eq(g1, g2);
    sp_penalty_free(P);

    /* l1_dnorm over m = 300 latents (more than one column block of ddnorm):
     * P = coef / B sum a n, dP/dn_i = coef / B sum_b a_bi, dP/df = coef/B n sign */
    enum { B = 3, M = 300 };
    static float F[B * M], dF[B * M], dnv[M], dd[M];
    fill(F, B * M, -1, 2, 0.5);
    fill(dnv, M, 0.5f, 1.5f, 0.2);
    for (int i = 0; i < M; i++)
        dd[i] = 1; /* added to */
    c = cfg_of("l1_dnorm");
    c.coef = 0.3;
    P = sp_penalty_alloc(&c, 10);
    double want = 0;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < M; i++)
            want += fabs((double)F[b * M + i]) * dnv[i];
    want *= 0.3 / B;
    double v = sp_penalty_eval(P, F, B, M, M, dnv, dF, dd);
    ck_assert_double_eq_tol(v, want, 1e-6 * want); /* float32 products */
    for (int i = 0; i < M; i++) {
        double s = 0;
        for (int b = 0; b < B; b++) {
            float x = F[b * M + i];
            s += fabs((double)x);
            double g = 0.3 / B * dnv[i] * (x > 0 ? 1 : x < 0 ? -1 : 0);
            ck_assert_double_eq_tol(dF[b * M + i], g, 1e-6);
        }
        ck_assert_double_eq_tol(dd[i], 1 + 0.3 / B * s, 1e-6);
    }
    sp_penalty_free(P);
}
END_TEST

START_TEST(test_l0_none_inert)
{
    const char *nm[2] = {"l0", "none"};
    for (int k = 0; k < 2; k++) {
        sp_penalty_cfg c = cfg_of(nm[k]);
        sp_penalty *P = sp_penalty_alloc(&c, 10);
        ck_assert_ptr_nonnull(P);
        float F[4] = {1, 2, 3, 4}, dF[4] = {5, 6, 7, 8}, dn[2] = {1, 1}, dd[2] = {9, 9};
        ck_assert(sp_penalty_eval(P, F, 2, 2, 2, dn, dF, dd) == 0.0);
        for (int i = 0; i < 4; i++)
            ck_assert_float_eq(dF[i], (float)(5 + i));
        ck_assert_float_eq(dd[0], 9);
        ck_assert_float_eq(dd[1], 9);
        ck_assert_double_eq(sp_penalty_coef(P), 0.7);
        sp_penalty_free(P);
    }
}
END_TEST

START_TEST(test_flags)
{
    ck_assert_str_eq(sp_penalty_names(), "l1, cauchy, lp, log, tanh, l1_dnorm, panneal, l0, none");
    const char *all[] = {"l1", "cauchy", "lp", "log", "tanh", "l1_dnorm", "panneal", "l0", "none"};
    for (int k = 0; k < 9; k++) {
        sp_penalty_cfg c = cfg_of(all[k]);
        ck_assert_ptr_null(sp_penalty_check(&c));
        ck_assert_int_eq(sp_penalty_uses_dnorm(&c), k == 4 || k == 5);
        ck_assert_int_eq(sp_penalty_is_activation(&c), k < 7);
        sp_penalty *P = sp_penalty_alloc(&c, 10);
        ck_assert_ptr_nonnull(P);
        ck_assert_double_eq(sp_penalty_p(P), k == 2 ? 0.5 : 1);
        sp_penalty_free(P);
    }
    sp_penalty_free(NULL);
}
END_TEST

/* ---- 3. warm-up ---- */

START_TEST(test_warmup)
{
    const char *all[] = {"l1", "cauchy", "lp", "log", "tanh", "l1_dnorm", "panneal", "l0", "none"};
    for (int k = 0; k < 9; k++) {
        sp_penalty_cfg c = cfg_of(all[k]);
        c.coef = 0.5;
        c.warmup = 4;
        sp_penalty *P = sp_penalty_alloc(&c, 1000); /* panneal: p = 1 until t = 200 */
        sp_penalty_set_step(P, 0);
        ck_assert_double_eq_tol(sp_penalty_coef(P), 0.125, 1e-15);
        sp_penalty_set_step(P, 1);
        ck_assert_double_eq_tol(sp_penalty_coef(P), 0.25, 1e-15);
        sp_penalty_set_step(P, 3);
        ck_assert_double_eq(sp_penalty_coef(P), 0.5);
        sp_penalty_set_step(P, 150);
        ck_assert_double_eq(sp_penalty_coef(P), 0.5);
        sp_penalty_free(P);
    }
    /* the evaluated penalty uses the warmed-up coefficient; warmup 0 and 1: none */
    sp_penalty_cfg c = cfg_of("l1");
    c.coef = 1;
    c.warmup = 10;
    sp_penalty *P = sp_penalty_alloc(&c, 100);
    sp_penalty_set_step(P, 1);
    float a = 2, g = 0;
    ck_assert_double_eq_tol(sp_penalty_eval(P, &a, 1, 1, 1, NULL, &g, NULL), 0.4, 1e-15);
    ck_assert_float_eq_tol(g, 0.2f, 1e-7f);
    sp_penalty_free(P);
    for (long w = 0; w <= 1; w++) {
        c.warmup = w;
        P = sp_penalty_alloc(&c, 100);
        sp_penalty_set_step(P, 0);
        ck_assert_double_eq(sp_penalty_coef(P), 1);
        sp_penalty_free(P);
    }
}
END_TEST

/* ---- 4. p-annealing ---- */

START_TEST(test_anneal_schedule)
{
    /* T = 100, anneal_start 0.2: t0 = 20; p_end 0.5:
     * p = 1 + (0.5 - 1) (t - 20) / 80 */
    sp_penalty_cfg c = cfg_of("panneal");
    sp_penalty *P = sp_penalty_alloc(&c, 100);
    const long t[] = {0, 10, 20, 60, 80, 99, 100, 150};
    const double p[] = {1, 1, 1, 0.75, 0.625, 0.50625, 0.5, 0.5};
    for (int k = 0; k < 8; k++) {
        sp_penalty_set_step(P, t[k]);
        ck_assert_double_eq_tol(sp_penalty_p(P), p[k], 1e-15);
    }
    sp_penalty_free(P);
}
END_TEST

static double lp_sum_d(const float *F, size_t n, double p, double eps)
{
    double s = 0;
    for (size_t k = 0; k < n; k++)
        s += pow(fabs((double)F[k]) + eps, p) - pow(eps, p);
    return s;
}

START_TEST(test_anneal_continuity)
{
    enum { B = 4, M = 7 };
    float F[B * M];
    fill(F, B * M, 0, 1.5f, 0.9);
    F[3] = 0;
    F[10] = 0.01f;
    sp_penalty_cfg c = cfg_of("panneal");
    c.per_latent = 1;
    sp_penalty *P = sp_penalty_alloc(&c, 100);

    sp_penalty_set_step(P, 20); /* p = 1 */
    double v0 = sp_penalty_eval(P, F, B, M, M, NULL, NULL, NULL);
    double c0 = sp_penalty_coef(P);
    ck_assert_double_eq(c0, c.coef);
    ck_assert(v0 > 0);

    /* (step t, p) pairs: a big jump 1 -> 0.75, one step 0.75 -> 0.74375, and
     * to the end 0.74375 -> 0.5 */
    const long ts[] = {60, 61, 100};
    const double ps[] = {0.75, 0.74375, 0.5};
    double pprev = 1, vprev = v0, cprev = c0;
    for (int k = 0; k < 3; k++) {
        sp_penalty_set_step(P, ts[k]);
        ck_assert_double_eq_tol(sp_penalty_p(P), ps[k], 1e-15);
        double v = sp_penalty_eval(P, F, B, M, M, NULL, NULL, NULL);
        double cnow = sp_penalty_coef(P);
        double ratio = lp_sum_d(F, B * M, pprev, c.eps) / lp_sum_d(F, B * M, ps[k], c.eps);
        ck_assert_msg(fabs(v - vprev) <= 1e-6 * vprev, "step %ld: %.17g then %.17g", ts[k],
                      vprev, v);
        ck_assert_msg(fabs(cnow / cprev - ratio) <= 1e-6 * ratio,
                      "step %ld: coef ratio %.17g, sums ratio %.17g", ts[k], cnow / cprev, ratio);
        /* same p again: no further rescale */
        double v2 = sp_penalty_eval(P, F, B, M, M, NULL, NULL, NULL);
        ck_assert_double_eq(sp_penalty_coef(P), cnow);
        ck_assert_double_eq(v2, v);
        pprev = ps[k];
        vprev = v;
        cprev = cnow;
    }
    ck_assert(cprev != c0);
    sp_penalty_free(P);
}
END_TEST

/* ---- 5. config check ---- */

enum field { F_COEF, F_WARMUP, F_SCALE, F_P, F_P_END, F_START, F_EPS, F_C };

static void set_field(sp_penalty_cfg *c, enum field f, double v)
{
    switch (f) {
    case F_COEF: c->coef = v; break;
    case F_WARMUP: c->warmup = (long)v; break;
    case F_SCALE: c->scale = v; break;
    case F_P: c->p = v; break;
    case F_P_END: c->p_end = v; break;
    case F_START: c->anneal_start = v; break;
    case F_EPS: c->eps = v; break;
    case F_C: c->c = v; break;
    }
}

START_TEST(test_check)
{
    static const struct {
        const char *pen;
        enum field f;
        double v;
        const char *key;
    } bad[] = {
        {"l1", F_COEF, -0.1, "train.coef"},           {"lp", F_COEF, NAN, "train.coef"},
        {"l0", F_COEF, INFINITY, "train.coef"},       {"l1", F_WARMUP, -1, "train.coef_warmup"},
        {"l0", F_WARMUP, -5, "train.coef_warmup"},    {"cauchy", F_SCALE, 0, "train.scale"},
        {"cauchy", F_SCALE, -1, "train.scale"},       {"cauchy", F_SCALE, NAN, "train.scale"},
        {"lp", F_P, 0, "train.p"},                    {"lp", F_P, 1.5, "train.p"},
        {"lp", F_P, -0.5, "train.p"},                 {"lp", F_P, NAN, "train.p"},
        {"panneal", F_P_END, 0, "train.p_end"},       {"panneal", F_P_END, 1.01, "train.p_end"},
        {"panneal", F_START, -0.1, "train.anneal_start"},
        {"panneal", F_START, 1, "train.anneal_start"},
        {"lp", F_EPS, 0, "train.pen_eps"},            {"log", F_EPS, -1, "train.pen_eps"},
        {"panneal", F_EPS, INFINITY, "train.pen_eps"}, {"log", F_EPS, NAN, "train.pen_eps"},
        {"tanh", F_C, 0, "train.tanh_c"},             {"tanh", F_C, -4, "train.tanh_c"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        sp_penalty_cfg c = cfg_of(bad[k].pen);
        set_field(&c, bad[k].f, bad[k].v);
        const char *msg = sp_penalty_check(&c);
        ck_assert_msg(msg != NULL, "%s: %s = %g accepted", bad[k].pen, bad[k].key, bad[k].v);
        char key[40];
        snprintf(key, sizeof key, "%s = ", bad[k].key);
        ck_assert_msg(strstr(msg, key) == msg, "message '%s' does not name %s", msg, bad[k].key);
        ck_assert_ptr_null(sp_penalty_alloc(&c, 10));
    }
    sp_penalty_cfg c = cfg_of("lp");
    c.p = 1.5;
    ck_assert_str_eq(sp_penalty_check(&c), "train.p = 1.5: must be in (0, 1] (the Lp exponent)");

    /* edges that are allowed */
    c = cfg_of("lp");
    c.p = 1;
    c.coef = 0;
    c.warmup = 0;
    ck_assert_ptr_null(sp_penalty_check(&c));
    c = cfg_of("panneal");
    c.p_end = 1;
    c.anneal_start = 0;
    ck_assert_ptr_null(sp_penalty_check(&c));
    /* keys of other penalties are not looked at */
    c = cfg_of("l1");
    c.p = 7;
    c.eps = 0;
    c.scale = 0;
    c.c = 0;
    c.p_end = 0;
    c.anneal_start = 2;
    ck_assert_ptr_null(sp_penalty_check(&c));

    c = cfg_of("l2");
    const char *msg = sp_penalty_check(&c);
    ck_assert_ptr_nonnull(msg);
    ck_assert_ptr_nonnull(strstr(msg, "train.penalty = l2"));
    ck_assert_ptr_nonnull(strstr(msg, sp_penalty_names()));
    ck_assert_ptr_null(sp_penalty_alloc(&c, 10));
}
END_TEST

Suite *make_penalty_suite(void)
{
    Suite *s = suite_create("penalty");
    TCase *tc = tcase_create("gradients");
    tcase_add_loop_test(tc, test_fd_gradients, 0, (int)(sizeof fd_names / sizeof fd_names[0]));
    suite_add_tcase(s, tc);
    tc = tcase_create("values");
    tcase_add_test(tc, test_l1_by_hand);
    tcase_add_test(tc, test_per_latent);
    tcase_add_test(tc, test_cauchy_lp_log_by_hand);
    tcase_add_test(tc, test_dnorm_by_hand);
    tcase_add_test(tc, test_l0_none_inert);
    tcase_add_test(tc, test_flags);
    suite_add_tcase(s, tc);
    tc = tcase_create("schedules");
    tcase_add_test(tc, test_warmup);
    tcase_add_test(tc, test_anneal_schedule);
    tcase_add_test(tc, test_anneal_continuity);
    suite_add_tcase(s, tc);
    tc = tcase_create("check");
    tcase_add_test(tc, test_check);
    suite_add_tcase(s, tc);
    return s;
}
