/* check_solve.c: sparse coding on a fixed dictionary (solve.c). Known
 * answers: OMP recovers every k-sparse code of identity + Hadamard (mutual
 * coherence 1/8 < 1/(2k-1) for k <= 4, Tropp 2004) exactly; on an
 * orthonormal basis MP, OMP and GP keep the k largest (positive)
 * projections; ISTA and MFISTA reach the optimum of a double-precision
 * coordinate-descent reference and satisfy the LASSO's KKT conditions;
 * non-negative GP matches a double-precision reference on an instance where
 * its step cap is hit; refit equals least squares by Householder QR (GSL,
 * double); scale fits equal their normal equations solved in double.
 * Monotonicity of every trace, the Gram and GEMM paths against each other,
 * atom-norm invariance, the sign constraint and bad input. Seeds are fixed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_blas.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "helpers.h"
#include "superpose/solve.h"

/* ------------------------------------------------------------- helpers */

static gsl_rng *rng_seeded(unsigned long seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, seed);
    return r;
}

/* Rows of Gaussian direction and norm in [lo, hi). */
static gsl_matrix_float *random_dict(size_t m, size_t d, double lo, double hi, gsl_rng *r)
{
    gsl_matrix_float *D = gsl_matrix_float_alloc(m, d);
    for (size_t i = 0; i < m; i++) {
        double n2 = 0, g[4096];
        for (size_t q = 0; q < d; q++) {
            g[q] = gsl_ran_gaussian(r, 1.0);
            n2 += g[q] * g[q];
        }
        double s = (lo + (hi - lo) * gsl_rng_uniform(r)) / sqrt(n2);
        for (size_t q = 0; q < d; q++)
            gsl_matrix_float_set(D, i, q, (float)(g[q] * s));
    }
    return D;
}

static gsl_matrix_float *random_x(size_t B, size_t d, gsl_rng *r)
{
    gsl_matrix_float *X = gsl_matrix_float_alloc(B, d);
    for (size_t i = 0; i < B * d; i++)
        X->data[i] = (float)gsl_ran_gaussian(r, 1.0);
    return X;
}

static sp_solver *solver(const gsl_matrix_float *D, const float *b, size_t B)
{
    sp_err err = {{0}};
    sp_solver *S = sp_solver_alloc(D, b, B, &err);
    ck_assert_msg(S != NULL, "sp_solver_alloc: %s", err.msg);
    return S;
}

static sp_solve_cfg cfg_of(int kind, int nonneg, size_t k, double lambda, int gram)
{
    sp_solve_cfg c = {.kind = kind,
                      .nonneg = nonneg,
                      .k = k,
                      .lambda = lambda,
                      .max_iter = 500,
                      .tol = 1e-6,
                      .use_gram = gram,
                      .trace = NULL};
    return c;
}

static void solve_ok(sp_solver *S, const sp_solve_cfg *c, const gsl_matrix_float *X,
                     const size_t *kvec, gsl_matrix_float *A, sp_solve_stats *st)
{
    sp_err err = {{0}};
    int rc = sp_solve(S, c, X, kvec, 0, A, st, &err);
    ck_assert_msg(rc == 0, "sp_solve(%s): %s", sp_solver_names[c->kind], err.msg);
}

/* 1/2 ||x_b - b - a_b D||^2 in double. */
static double energy(const gsl_matrix_float *D, const float *bias, const gsl_matrix_float *X,
                     const gsl_matrix_float *A, size_t b)
{
    double e = 0;
    for (size_t q = 0; q < D->size2; q++) {
        double r = gsl_matrix_float_get(X, b, q) - (bias ? bias[q] : 0);
        for (size_t i = 0; i < D->size1; i++)
            r -= (double)gsl_matrix_float_get(A, b, i) * gsl_matrix_float_get(D, i, q);
        e += r * r;
    }
    return 0.5 * e;
}

/* Unit atoms of D in double (m x d). */
static double *unit_rows(const gsl_matrix_float *D)
{
    size_t m = D->size1, d = D->size2;
    double *U = malloc(m * d * sizeof *U);
    for (size_t i = 0; i < m; i++) {
        double n2 = 0;
        for (size_t q = 0; q < d; q++)
            n2 += (double)gsl_matrix_float_get(D, i, q) * gsl_matrix_float_get(D, i, q);
        for (size_t q = 0; q < d; q++)
            U[i * d + q] = n2 > 0 ? gsl_matrix_float_get(D, i, q) / sqrt(n2) : 0;
    }
    return U;
}

static double row_norm(const gsl_matrix_float *D, size_t i)
{
    double n2 = 0;
    for (size_t q = 0; q < D->size2; q++)
        n2 += (double)gsl_matrix_float_get(D, i, q) * gsl_matrix_float_get(D, i, q);
    return sqrt(n2);
}

/* ------------------------------------------------------ names, objective */

START_TEST(test_names_and_objective)
{
    for (int k = 0; k < SP_N_SOLVERS; k++)
        ck_assert_int_eq(sp_solver_find(sp_solver_names[k]), k);
    ck_assert_int_eq(sp_solver_find("lars"), -1);
    ck_assert_int_eq(sp_solver_find("OMP"), -1);

    /* D = diag(2, 1), b = (1, 0), x = (3, 2), a = (0.5, 1):
     * r = (3-1-1, 2-0-1) = (1, 1), 1/2||r||^2 = 1; L1 of the unit-atom codes
     * 2*0.5 + 1*1 = 2; lambda = 0.5: F = 2. */
    gsl_matrix_float *D = gsl_matrix_float_calloc(2, 2), *X = gsl_matrix_float_alloc(1, 2);
    gsl_matrix_float *A = gsl_matrix_float_alloc(1, 2);
    gsl_matrix_float_set(D, 0, 0, 2);
    gsl_matrix_float_set(D, 1, 1, 1);
    float b[2] = {1, 0};
    gsl_matrix_float_set(X, 0, 0, 3);
    gsl_matrix_float_set(X, 0, 1, 2);
    gsl_matrix_float_set(A, 0, 0, 0.5f);
    gsl_matrix_float_set(A, 0, 1, 1);
    sp_solver *S = solver(D, b, 1);
    ck_assert_double_eq_tol(sp_solve_objective(S, 0.5, X, A), 2.0, 1e-12);
    ck_assert_double_eq_tol(sp_solve_objective(S, 0, X, A), 1.0, 1e-12);
    sp_solver_free(S);
    gsl_matrix_float_free(A);
    gsl_matrix_float_free(X);
    gsl_matrix_float_free(D);
}
END_TEST

START_TEST(test_lipschitz)
{
    /* Unit atoms e1, e2, (e1 + e2)/sqrt2 (given with norms 3, 0.5, 2):
     * D~^T D~ = [[1.5, .5], [.5, 1.5]], eigenvalues 2 and 1. */
    gsl_matrix_float *D = gsl_matrix_float_calloc(3, 2);
    gsl_matrix_float_set(D, 0, 0, 3);
    gsl_matrix_float_set(D, 1, 1, 0.5f);
    gsl_matrix_float_set(D, 2, 0, (float)sqrt(2.0));
    gsl_matrix_float_set(D, 2, 1, (float)sqrt(2.0));
    sp_solver *S = solver(D, NULL, 1);
    ck_assert_double_eq_tol(sp_solver_lipschitz(S), 2.0, 2e-6);
    sp_solver_free(S);
    gsl_matrix_float_free(D);

    /* Random 50 x 20 against the largest singular value from GSL's SVD in double. */
    gsl_rng *r = rng_seeded(11);
    D = random_dict(50, 20, 0.3, 3, r);
    double *U = unit_rows(D);
    gsl_matrix *A = gsl_matrix_alloc(50, 20), *V = gsl_matrix_alloc(20, 20);
    gsl_vector *sv = gsl_vector_alloc(20), *work = gsl_vector_alloc(20);
    memcpy(A->data, U, 50 * 20 * sizeof(double));
    gsl_linalg_SV_decomp(A, V, sv, work);
    double s2 = gsl_vector_get(sv, 0) * gsl_vector_get(sv, 0);
    S = solver(D, NULL, 4);
    ck_assert_double_le(fabs(sp_solver_lipschitz(S) - s2), 1e-6 * s2);
    /* refresh after D changes: doubling D changes nothing (unit atoms) */
    gsl_matrix_float_scale(D, 2.0);
    sp_solver_refresh(S);
    ck_assert_double_le(fabs(sp_solver_lipschitz(S) - s2), 1e-6 * s2);
    sp_solver_free(S);
    gsl_vector_free(work);
    gsl_vector_free(sv);
    gsl_matrix_free(V);
    gsl_matrix_free(A);
    free(U);
    gsl_matrix_float_free(D);
    gsl_rng_free(r);
}
END_TEST

/* ------------------------------------------------- OMP exact recovery */

/* Identity and the Sylvester-Hadamard basis / 8 in d = 64 (m = 128). */
static gsl_matrix_float *identity_hadamard(void)
{
    gsl_matrix_float *D = gsl_matrix_float_calloc(128, 64);
    for (size_t i = 0; i < 64; i++) {
        gsl_matrix_float_set(D, i, i, 1);
        for (size_t q = 0; q < 64; q++)
            gsl_matrix_float_set(D, 64 + i, q, (__builtin_popcountl(i & q) & 1) ? -0.125f : 0.125f);
    }
    return D;
}

START_TEST(test_omp_exact_recovery)
{
    gsl_matrix_float *D = identity_hadamard();
    double *U = unit_rows(D), mu = 0;
    for (size_t i = 0; i < 128; i++)
        for (size_t j = i + 1; j < 128; j++) {
            double c = 0;
            for (size_t q = 0; q < 64; q++)
                c += U[i * 64 + q] * U[j * 64 + q];
            mu = fmax(mu, fabs(c));
        }
    free(U);
    ck_assert_double_eq_tol(mu, 0.125, 1e-9);
    const size_t kmax = 4;
    ck_assert_double_lt(mu, 1.0 / (2.0 * kmax - 1)); /* Tropp 2004: exact recovery for k <= 4 */

    const size_t B = 150;
    gsl_rng *r = rng_seeded(5);
    sp_solver *S = solver(D, NULL, B);
    gsl_matrix_float *X = gsl_matrix_float_alloc(B, 64), *A = gsl_matrix_float_alloc(B, 128);
    gsl_matrix_float *T = gsl_matrix_float_alloc(B, 128);
    size_t kvec[150];
    double worst = 0;
    for (int nonneg = 0; nonneg <= 1; nonneg++) {
        for (int rep = 0; rep < 3; rep++) {
            gsl_matrix_float_set_zero(T);
            for (size_t b = 0; b < B; b++) {
                kvec[b] = b < 4 ? b + 1 : gsl_rng_uniform_int(r, kmax + 1); /* 0..4 */
                for (size_t n = 0; n < kvec[b];) {
                    size_t i = gsl_rng_uniform_int(r, 128);
                    if (gsl_matrix_float_get(T, b, i) != 0)
                        continue;
                    double v = 0.5 + 1.5 * gsl_rng_uniform(r);
                    if (!nonneg && gsl_rng_uniform(r) < 0.5)
                        v = -v;
                    gsl_matrix_float_set(T, b, i, (float)v);
                    n++;
                }
            }
            gsl_blas_sgemm(CblasNoTrans, CblasNoTrans, 1.0f, T, D, 0.0f, X);
            for (int gram = 0; gram <= 1; gram++) {
                sp_solve_cfg c = cfg_of(SP_SOLVE_OMP, nonneg, 0, 0, gram);
                /* per-sample kvec, and the same K for all with cfg.k on the k = 4 rows */
                solve_ok(S, &c, X, kvec, A, NULL);
                for (size_t b = 0; b < B; b++)
                    for (size_t i = 0; i < 128; i++) {
                        double t = gsl_matrix_float_get(T, b, i), a = gsl_matrix_float_get(A, b, i);
                        ck_assert_msg((t != 0) == (a != 0),
                                      "omp nonneg=%d gram=%d sample %zu atom %zu: %g vs %g", nonneg,
                                      gram, b, i, a, t);
                        worst = fmax(worst, fabs(a - t));
                    }
            }
        }
    }
    ck_assert_double_le(worst, 1e-5);
    /* cfg.k for every sample: rows with 4 true atoms, K = 4 */
    gsl_matrix_float_set_zero(T);
    for (size_t b = 0; b < B; b++)
        for (size_t n = 0; n < 4;) {
            size_t i = gsl_rng_uniform_int(r, 128);
            if (gsl_matrix_float_get(T, b, i) != 0)
                continue;
            gsl_matrix_float_set(T, b, i, (float)(gsl_rng_uniform(r) < 0.5 ? -1 : 1));
            n++;
        }
    gsl_blas_sgemm(CblasNoTrans, CblasNoTrans, 1.0f, T, D, 0.0f, X);
    sp_solve_cfg c = cfg_of(SP_SOLVE_OMP, 0, 4, 0, -1);
    solve_ok(S, &c, X, NULL, A, NULL);
    for (size_t i = 0; i < B * 128; i++)
        ck_assert_double_le(fabs(A->data[i] - T->data[i]), 1e-5);
    sp_solver_free(S);
    gsl_matrix_float_free(T);
    gsl_matrix_float_free(A);
    gsl_matrix_float_free(X);
    gsl_matrix_float_free(D);
    gsl_rng_free(r);
}
END_TEST

/* ------------------------------------------------ orthonormal dictionary */

START_TEST(test_orthonormal_topk)
{
    const size_t d = 32, B = 20, K = 5;
    gsl_rng *r = rng_seeded(17);
    gsl_matrix *Q = gsl_matrix_alloc(d, d), *R = gsl_matrix_alloc(d, d),
               *M = gsl_matrix_alloc(d, d);
    gsl_vector *tau = gsl_vector_alloc(d);
    for (size_t i = 0; i < d * d; i++)
        M->data[i] = gsl_ran_gaussian(r, 1.0);
    gsl_linalg_QR_decomp(M, tau);
    gsl_linalg_QR_unpack(M, tau, Q, R);
    gsl_matrix_float *D = gsl_matrix_float_alloc(d, d);
    for (size_t i = 0; i < d; i++)
        for (size_t q = 0; q < d; q++)
            gsl_matrix_float_set(D, i, q, (float)gsl_matrix_get(Q, q, i)); /* rows: Q's columns */
    gsl_matrix_float *X = random_x(B, d, r), *A = gsl_matrix_float_alloc(B, d);
    sp_solver *S = solver(D, NULL, B);
    double worst = 0;
    for (int nonneg = 0; nonneg <= 1; nonneg++) {
        /* expected: c = x Q, the K largest |c| (nonneg: largest c > 0) */
        double E[20][32];
        for (size_t b = 0; b < B; b++) {
            double c[32];
            int used[32] = {0};
            for (size_t i = 0; i < d; i++) {
                c[i] = 0;
                for (size_t q = 0; q < d; q++)
                    c[i] += gsl_matrix_get(Q, q, i) * gsl_matrix_float_get(X, b, q);
                E[b][i] = 0;
            }
            for (size_t k = 0; k < K; k++) {
                int best = -1;
                for (size_t i = 0; i < d; i++) {
                    double v = nonneg ? c[i] : fabs(c[i]);
                    if (!used[i] && v > 0 && (best < 0 || v > (nonneg ? c[best] : fabs(c[best]))))
                        best = (int)i;
                }
                if (best < 0)
                    break;
                used[best] = 1;
                E[b][best] = c[best];
            }
        }
        const int kinds[3] = {SP_SOLVE_MP, SP_SOLVE_OMP, SP_SOLVE_GP};
        for (int kk = 0; kk < 3; kk++)
            for (int gram = 0; gram <= 1; gram++) {
                sp_solve_cfg c = cfg_of(kinds[kk], nonneg, K, 0, gram);
                solve_ok(S, &c, X, NULL, A, NULL);
                for (size_t b = 0; b < B; b++)
                    for (size_t i = 0; i < d; i++) {
                        double a = gsl_matrix_float_get(A, b, i);
                        ck_assert_msg((a != 0) == (E[b][i] != 0), "%s nonneg=%d gram=%d (%zu,%zu)",
                                      sp_solver_names[kinds[kk]], nonneg, gram, b, i);
                        worst = fmax(worst, fabs(a - E[b][i]));
                    }
            }
    }
    ck_assert_double_le(worst, 1e-5);
    sp_solver_free(S);
    gsl_matrix_float_free(A);
    gsl_matrix_float_free(X);
    gsl_matrix_float_free(D);
    gsl_vector_free(tau);
    gsl_matrix_free(M);
    gsl_matrix_free(R);
    gsl_matrix_free(Q);
    gsl_rng_free(r);
}
END_TEST

/* ------------------------------------------- pursuit residual traces */

/* Runs a pursuit with K = 1..T; the residual of the K-atom codes (double,
 * from the codes) never increases with K (one run's first K steps are the
 * K-atom run), and the trace of the T run equals these residuals. */
static void check_pursuit_trace(int kind, int nonneg, int gram, unsigned long seed)
{
    const size_t m = 40, d = 20, B = 10, T = 15;
    gsl_rng *r = rng_seeded(seed);
    gsl_matrix_float *D = random_dict(m, d, 0.5, 2, r), *X = random_x(B, d, r);
    gsl_matrix_float *A = gsl_matrix_float_alloc(B, m);
    float bias[20];
    for (size_t q = 0; q < d; q++)
        bias[q] = (float)(0.3 * gsl_ran_gaussian(r, 1.0));
    sp_solver *S = solver(D, bias, B);
    double prev[10], tr[15], e[15], x2 = 0;
    for (size_t b = 0; b < B; b++) {
        prev[b] = INFINITY;
        for (size_t q = 0; q < d; q++) {
            double v = gsl_matrix_float_get(X, b, q) - bias[q];
            x2 += 0.5 * v * v;
        }
    }
    for (size_t K = 1; K <= T; K++) {
        sp_solve_cfg c = cfg_of(kind, nonneg, K, 0, gram);
        c.trace = tr;
        sp_solve_stats st;
        solve_ok(S, &c, X, NULL, A, &st);
        e[K - 1] = 0;
        for (size_t b = 0; b < B; b++) {
            double eb = energy(D, bias, X, A, b);
            ck_assert_msg(eb <= prev[b] + 1e-6 * x2,
                          "%s nonneg=%d gram=%d K=%zu sample %zu: %.9g > %.9g",
                          sp_solver_names[kind], nonneg, gram, K, b, eb, prev[b]);
            prev[b] = eb;
            e[K - 1] += eb;
        }
        ck_assert_double_le(fabs(st.objective - e[K - 1]), 1e-5 * x2);
    }
    for (size_t t = 0; t < T; t++) {
        ck_assert_double_le(fabs(tr[t] - e[t]), 1e-5 * x2);
        if (t > 0) /* the Gram path's energies decrease by construction */
            ck_assert_double_le(tr[t], tr[t - 1] + (gram ? 0 : 1e-6 * x2));
    }
    ck_assert_double_lt(tr[T - 1], 0.5 * x2);
    sp_solver_free(S);
    gsl_matrix_float_free(A);
    gsl_matrix_float_free(X);
    gsl_matrix_float_free(D);
    gsl_rng_free(r);
}

START_TEST(test_pursuit_traces)
{
    const int kinds[3] = {SP_SOLVE_MP, SP_SOLVE_OMP, SP_SOLVE_GP};
    for (int k = 0; k < 3; k++)
        for (int nonneg = 0; nonneg <= 1; nonneg++)
            for (int gram = 0; gram <= 1; gram++)
                check_pursuit_trace(kinds[k], nonneg, gram,
                                    100 + (unsigned long)(k * 4 + nonneg * 2 + gram));
}
END_TEST

/* Non-negative GP in double, the rule of solve.h: returns the number of
 * capped steps. U: (m, d) unit atoms. */
static int ref_gp_nonneg(const double *U, size_t m, size_t d, const double *x, size_t K, double *a)
{
    double r[64], g[64], u[64];
    int in[64] = {0}, capped = 0;
    memcpy(r, x, d * sizeof *r);
    memset(a, 0, m * sizeof *a);
    double x2 = 0;
    for (size_t q = 0; q < d; q++)
        x2 += x[q] * x[q];
    for (size_t t = 0; t < K; t++) {
        double c[64];
        int best = -1;
        for (size_t i = 0; i < m; i++) {
            c[i] = 0;
            for (size_t q = 0; q < d; q++)
                c[i] += U[i * d + q] * r[q];
            if (c[i] > 1e-5 * sqrt(x2) && (best < 0 || c[i] > c[best]))
                best = (int)i;
        }
        if (best < 0)
            break;
        in[best] = 1;
        double gg = 0, uu = 0;
        memset(u, 0, d * sizeof *u);
        for (size_t i = 0; i < m; i++) {
            g[i] = in[i] && !(a[i] <= 0 && c[i] < 0) ? c[i] : 0;
            gg += g[i] * g[i];
            for (size_t q = 0; q < d; q++)
                u[q] += g[i] * U[i * d + q];
        }
        for (size_t q = 0; q < d; q++)
            uu += u[q] * u[q];
        double mu = gg / uu;
        int ic = -1;
        for (size_t i = 0; i < m; i++)
            if (g[i] < 0 && a[i] / -g[i] < mu) {
                mu = a[i] / -g[i];
                ic = (int)i;
            }
        capped += ic >= 0;
        for (size_t i = 0; i < m; i++)
            a[i] = fmax(0, a[i] + mu * g[i]);
        if (ic >= 0)
            a[ic] = 0;
        for (size_t q = 0; q < d; q++)
            r[q] -= mu * u[q];
    }
    return capped;
}

START_TEST(test_gp_nonneg_cap)
{
    /* Search fixed seeds for an input where the reference caps a step (a
     * coordinate would go negative), then compare. */
    const size_t m = 12, d = 6, K = 10;
    int found = 0;
    for (unsigned long seed = 1; seed < 200 && !found; seed++) {
        gsl_rng *r = rng_seeded(seed);
        gsl_matrix_float *D = random_dict(m, d, 1, 1, r), *X = random_x(1, d, r);
        double *U = unit_rows(D), x[6], a[12];
        for (size_t q = 0; q < d; q++)
            x[q] = gsl_matrix_float_get(X, 0, q);
        int capped = ref_gp_nonneg(U, m, d, x, K, a);
        if (capped > 0) {
            found = 1;
            gsl_matrix_float *A = gsl_matrix_float_alloc(1, m);
            sp_solver *S = solver(D, NULL, 1);
            for (int gram = 0; gram <= 1; gram++) {
                double tr[10];
                sp_solve_cfg c = cfg_of(SP_SOLVE_GP, 1, K, 0, gram);
                c.trace = tr;
                solve_ok(S, &c, X, NULL, A, NULL);
                for (size_t i = 0; i < m; i++) {
                    double ai = gsl_matrix_float_get(A, 0, i) * row_norm(D, i);
                    ck_assert_double_ge(gsl_matrix_float_get(A, 0, i), 0);
                    ck_assert_msg(fabs(ai - a[i]) <= 1e-4, "seed %lu gram %d atom %zu: %g vs %g",
                                  seed, gram, i, ai, a[i]);
                }
                for (size_t t = 1; t < K; t++)
                    ck_assert_double_le(tr[t], tr[t - 1] + (gram ? 0 : 1e-6));
            }
            sp_solver_free(S);
            gsl_matrix_float_free(A);
        }
        free(U);
        gsl_matrix_float_free(X);
        gsl_matrix_float_free(D);
        gsl_rng_free(r);
    }
    ck_assert_msg(found, "no seed made non-negative GP cap a step");
}
END_TEST

/* --------------------------------------- Gram and GEMM paths, same codes */

START_TEST(test_gram_vs_gemm)
{
    const size_t m = 96, d = 40, B = 24;
    gsl_rng *r = rng_seeded(23);
    gsl_matrix_float *D = random_dict(m, d, 0.5, 2, r), *X = random_x(B, d, r);
    gsl_matrix_float *A0 = gsl_matrix_float_alloc(B, m), *A1 = gsl_matrix_float_alloc(B, m);
    float bias[40];
    for (size_t q = 0; q < d; q++)
        bias[q] = (float)(0.2 * gsl_ran_gaussian(r, 1.0));
    sp_solver *S = solver(D, bias, B);
    size_t kvec[24];
    for (size_t b = 0; b < B; b++)
        kvec[b] = b % 13;
    for (int kind = 0; kind < SP_N_SOLVERS; kind++)
        for (int nonneg = 0; nonneg <= 1; nonneg++) {
            /* ista/fista: 100 iterations of the same map on both paths */
            sp_solve_cfg c = cfg_of(kind, nonneg, 12, 2.0, 0);
            c.max_iter = 100;
            c.tol = 0;
            const size_t *kv = kind == SP_SOLVE_OMP ? kvec : NULL;
            sp_solve_stats s0, s1;
            solve_ok(S, &c, X, kv, A0, &s0);
            c.use_gram = 1;
            solve_ok(S, &c, X, kv, A1, &s1);
            if (kind <= SP_SOLVE_GP)
                ck_assert_int_eq(s0.iters, s1.iters);
            ck_assert_double_le(fabs(s0.objective - s1.objective), 1e-6 * s0.objective);
            double worst = 0, amax = 0;
            for (size_t i = 0; i < B * m; i++) {
                if (kind <= SP_SOLVE_GP)
                    ck_assert_msg((A0->data[i] != 0) == (A1->data[i] != 0),
                                  "%s nonneg=%d: supports differ at %zu", sp_solver_names[kind],
                                  nonneg, i);
                worst = fmax(worst, fabs(A0->data[i] - A1->data[i]));
                amax = fmax(amax, fabs(A0->data[i]));
            }
            ck_assert_msg(worst <= 2e-5 * amax, "%s nonneg=%d: |gram - gemm| = %g of %g",
                          sp_solver_names[kind], nonneg, worst, amax);
        }
    sp_solver_free(S);
    gsl_matrix_float_free(A1);
    gsl_matrix_float_free(A0);
    gsl_matrix_float_free(X);
    gsl_matrix_float_free(D);
    gsl_rng_free(r);
}
END_TEST

/* --------------------------------------------------- ISTA and MFISTA */

/* Cyclic coordinate descent on the LASSO in the unit-atom codes, in double,
 * until no coordinate moves by more than 1e-14. U: (m, d), x~: (d). */
static void cd_lasso(const double *U, size_t m, size_t d, const double *x, double lambda,
                     int nonneg, double *a)
{
    double *G = malloc(m * m * sizeof *G), *g = malloc(m * sizeof *g);
    for (size_t i = 0; i < m; i++) {
        g[i] = 0;
        for (size_t q = 0; q < d; q++)
            g[i] += U[i * d + q] * x[q];
        for (size_t j = 0; j < m; j++) {
            G[i * m + j] = 0;
            for (size_t q = 0; q < d; q++)
                G[i * m + j] += U[i * d + q] * U[j * d + q];
        }
        a[i] = 0;
    }
    for (int sweep = 0; sweep < 200000; sweep++) {
        double moved = 0;
        for (size_t i = 0; i < m; i++) {
            double v = a[i] * G[i * m + i] + g[i], n;
            if (v > lambda)
                n = (v - lambda) / G[i * m + i];
            else if (!nonneg && v < -lambda)
                n = (v + lambda) / G[i * m + i];
            else
                n = 0;
            double delta = n - a[i];
            if (delta == 0)
                continue;
            a[i] = n;
            for (size_t j = 0; j < m; j++)
                g[j] -= delta * G[j * m + i];
            moved = fmax(moved, fabs(delta));
        }
        if (moved < 1e-14)
            break;
    }
    free(g);
    free(G);
}

static double lasso_value(const double *U, size_t m, size_t d, const double *x, double lambda,
                          const double *a)
{
    double f = 0;
    for (size_t q = 0; q < d; q++) {
        double r = x[q];
        for (size_t i = 0; i < m; i++)
            r -= a[i] * U[i * d + q];
        f += 0.5 * r * r;
    }
    for (size_t i = 0; i < m; i++)
        f += lambda * fabs(a[i]);
    return f;
}

static void check_prox(int kind, int nonneg, int gram)
{
    const size_t m = 48, d = 32, B = 6;
    const double lambda = 1.0;
    gsl_rng *r = rng_seeded(31 + (unsigned long)(kind * 4 + nonneg * 2 + gram));
    gsl_matrix_float *D = random_dict(m, d, 0.5, 2, r), *X = random_x(B, d, r);
    gsl_matrix_float *A = gsl_matrix_float_alloc(B, m);
    sp_solver *S = solver(D, NULL, B);
    double *U = unit_rows(D);

    /* total F never increases (MFISTA: exactly; ISTA: up to float rounding) */
    double tr[4000];
    for (int t = 0; t < 4000; t++)
        tr[t] = -1;
    sp_solve_cfg c = cfg_of(kind, nonneg, 0, lambda, gram);
    c.max_iter = 4000;
    c.tol = 1e-12;
    c.trace = tr;
    sp_solve_stats st;
    solve_ok(S, &c, X, NULL, A, &st);
    ck_assert_int_ge(st.iters, 2);
    ck_assert_int_lt(st.iters, 4000);      /* stopped on tol */
    ck_assert_double_eq(tr[st.iters], -1); /* past the last iteration: untouched */
    for (int t = 1; t < st.iters; t++)
        ck_assert_msg(tr[t] <= tr[t - 1] + (kind == SP_SOLVE_FISTA ? 0 : 1e-6 * tr[0]),
                      "%s nonneg=%d gram=%d: F went up at %d: %.12g > %.12g", sp_solver_names[kind],
                      nonneg, gram, t, tr[t], tr[t - 1]);
    ck_assert_double_le(fabs(st.objective - tr[st.iters - 1]), 0);
    ck_assert_double_le(fabs(st.objective - sp_solve_objective(S, lambda, X, A)),
                        1e-5 * st.objective);

    /* optimum of the coordinate-descent reference, and KKT */
    double worst_f = 0, worst_a = 0, worst_kkt = 0;
    for (size_t b = 0; b < B; b++) {
        double x[32], a[48], ar[48];
        for (size_t q = 0; q < d; q++)
            x[q] = gsl_matrix_float_get(X, b, q);
        cd_lasso(U, m, d, x, lambda, nonneg, ar);
        for (size_t i = 0; i < m; i++) {
            a[i] = gsl_matrix_float_get(A, b, i) * row_norm(D, i);
            if (nonneg)
                ck_assert_double_ge(a[i], 0);
            worst_a = fmax(worst_a, fabs(a[i] - ar[i]));
        }
        double fr = lasso_value(U, m, d, x, lambda, ar), fs = lasso_value(U, m, d, x, lambda, a);
        worst_f = fmax(worst_f, (fs - fr) / fr);
        /* KKT, g = D~ (x~ - a D~): a_i != 0: g_i = lambda sign(a_i);
         * a_i = 0: |g_i| <= lambda (nonneg: g_i <= lambda) */
        for (size_t i = 0; i < m; i++) {
            double gi = 0;
            for (size_t q = 0; q < d; q++) {
                double rq = x[q];
                for (size_t j = 0; j < m; j++)
                    rq -= a[j] * U[j * d + q];
                gi += U[i * d + q] * rq;
            }
            double v = a[i] != 0 ? fabs(gi - (a[i] > 0 ? lambda : -lambda))
                                 : (nonneg ? gi - lambda : fabs(gi) - lambda);
            worst_kkt = fmax(worst_kkt, v);
        }
    }
    ck_assert_msg(worst_f <= 1e-8, "%s nonneg=%d gram=%d: F above the optimum by %g (relative)",
                  sp_solver_names[kind], nonneg, gram, worst_f);
    ck_assert_msg(worst_a <= 3e-4, "%s nonneg=%d gram=%d: codes off by %g", sp_solver_names[kind],
                  nonneg, gram, worst_a);
    ck_assert_msg(worst_kkt <= 1e-4 * lambda, "%s nonneg=%d gram=%d: KKT violated by %g",
                  sp_solver_names[kind], nonneg, gram, worst_kkt);

    /* per sample: F of the codes after T iterations never increases with T */
    if (kind == SP_SOLVE_FISTA) {
        double prev[6];
        for (int T = 1; T <= 40; T++) {
            c.max_iter = T;
            c.tol = 0;
            c.trace = NULL;
            solve_ok(S, &c, X, NULL, A, NULL);
            for (size_t b = 0; b < B; b++) {
                gsl_matrix_float_const_view xb = gsl_matrix_float_const_submatrix(X, b, 0, 1, d);
                gsl_matrix_float_const_view ab = gsl_matrix_float_const_submatrix(A, b, 0, 1, m);
                double f = sp_solve_objective(S, lambda, &xb.matrix, &ab.matrix);
                if (T > 1)
                    ck_assert_msg(f <= prev[b] * (1 + 1e-6),
                                  "fista sample %zu: F(%d) = %.9g > %.9g", b, T, f, prev[b]);
                prev[b] = f;
            }
        }
    }
    free(U);
    sp_solver_free(S);
    gsl_matrix_float_free(A);
    gsl_matrix_float_free(X);
    gsl_matrix_float_free(D);
    gsl_rng_free(r);
}

START_TEST(test_fista_optimum)
{
    for (int nonneg = 0; nonneg <= 1; nonneg++)
        for (int gram = 0; gram <= 1; gram++)
            check_prox(SP_SOLVE_FISTA, nonneg, gram);
}
END_TEST

START_TEST(test_ista_optimum)
{
    for (int nonneg = 0; nonneg <= 1; nonneg++)
        for (int gram = 0; gram <= 1; gram++)
            check_prox(SP_SOLVE_ISTA, nonneg, gram);
}
END_TEST

START_TEST(test_warm_start)
{
    /* FISTA warm-started from its solution at a nearby lambda reaches the
     * cold-start solution in fewer iterations. */
    const size_t m = 30, d = 16, B = 8;
    gsl_rng *r = rng_seeded(41);
    gsl_matrix_float *D = random_dict(m, d, 0.5, 2, r), *X = random_x(B, d, r);
    gsl_matrix_float *A = gsl_matrix_float_alloc(B, m), *W = gsl_matrix_float_alloc(B, m);
    sp_solver *S = solver(D, NULL, B);
    sp_solve_cfg c = cfg_of(SP_SOLVE_FISTA, 1, 0, 1.0, -1);
    c.tol = 1e-10;
    c.max_iter = 5000;
    sp_solve_stats st0, st1;
    solve_ok(S, &c, X, NULL, A, &st0);
    c.lambda = 1.1;
    solve_ok(S, &c, X, NULL, W, NULL);
    c.lambda = 1.0;
    sp_err err;
    ck_assert_int_eq(sp_solve(S, &c, X, NULL, 1, W, &st1, &err), 0);
    ck_assert_int_lt(st1.iters, st0.iters);
    ck_assert_double_le(fabs(st1.objective - st0.objective), 1e-6 * st0.objective);
    for (size_t i = 0; i < B * m; i++)
        ck_assert_double_le(fabs(W->data[i] - A->data[i]), 1e-4);
    sp_solver_free(S);
    gsl_matrix_float_free(W);
    gsl_matrix_float_free(A);
    gsl_matrix_float_free(X);
    gsl_matrix_float_free(D);
    gsl_rng_free(r);
}
END_TEST

/* ----------------------------------------------------- signs and norms */

START_TEST(test_nonneg_never_negative)
{
    for (unsigned long seed = 0; seed < 4; seed++) {
        gsl_rng *r = rng_seeded(50 + seed);
        size_t m = 20 + 30 * seed, d = 10 + 8 * seed, B = 64;
        gsl_matrix_float *D = random_dict(m, d, 0.2, 3, r), *X = random_x(B, d, r);
        gsl_matrix_float *A = gsl_matrix_float_alloc(B, m);
        sp_solver *S = solver(D, NULL, B);
        for (int kind = 0; kind < SP_N_SOLVERS; kind++)
            for (int gram = 0; gram <= 1; gram++) {
                sp_solve_cfg c = cfg_of(kind, 1, d, 0.05, gram);
                solve_ok(S, &c, X, NULL, A, NULL);
                size_t pos = 0;
                for (size_t i = 0; i < B * m; i++) {
                    ck_assert_msg(A->data[i] >= 0 && isfinite(A->data[i]), "%s gram=%d: %g",
                                  sp_solver_names[kind], gram, A->data[i]);
                    pos += A->data[i] > 0;
                }
                ck_assert_uint_gt(pos, B); /* and not trivially zero */
            }
        sp_solver_free(S);
        gsl_matrix_float_free(A);
        gsl_matrix_float_free(X);
        gsl_matrix_float_free(D);
        gsl_rng_free(r);
    }
}
END_TEST

START_TEST(test_atom_norms)
{
    /* Rows scaled by s_i > 0: codes scale by 1/s_i, reconstructions agree.
     * A zero atom is never used. */
    const size_t m = 30, d = 16, B = 12;
    gsl_rng *r = rng_seeded(61);
    gsl_matrix_float *D = random_dict(m, d, 1, 1, r), *D2 = gsl_matrix_float_alloc(m, d);
    gsl_matrix_float *X = random_x(B, d, r);
    gsl_matrix_float *A1 = gsl_matrix_float_alloc(B, m), *A2 = gsl_matrix_float_alloc(B, m);
    gsl_matrix_float *R1 = gsl_matrix_float_alloc(B, d), *R2 = gsl_matrix_float_alloc(B, d);
    for (size_t q = 0; q < d; q++)
        gsl_matrix_float_set(D, 7, q, 0); /* atom 7 is zero in both */
    double s[30];
    for (size_t i = 0; i < m; i++) {
        s[i] = exp(gsl_ran_flat(r, log(0.2), log(5)));
        for (size_t q = 0; q < d; q++)
            gsl_matrix_float_set(D2, i, q, (float)(gsl_matrix_float_get(D, i, q) * s[i]));
    }
    sp_solver *S1 = solver(D, NULL, B), *S2 = solver(D2, NULL, B);
    for (int kind = 0; kind < SP_N_SOLVERS; kind++)
        for (int nonneg = 0; nonneg <= 1; nonneg++) {
            sp_solve_cfg c = cfg_of(kind, nonneg, 8, 0.5, -1);
            c.tol = 1e-10;
            c.max_iter = 5000;
            solve_ok(S1, &c, X, NULL, A1, NULL);
            solve_ok(S2, &c, X, NULL, A2, NULL);
            double worst = 0, amax = 0;
            for (size_t b = 0; b < B; b++) {
                ck_assert_float_eq(gsl_matrix_float_get(A1, b, 7), 0);
                ck_assert_float_eq(gsl_matrix_float_get(A2, b, 7), 0);
                for (size_t i = 0; i < m; i++) {
                    double a1 = gsl_matrix_float_get(A1, b, i), a2 = gsl_matrix_float_get(A2, b, i);
                    worst = fmax(worst, fabs(a2 * s[i] - a1));
                    amax = fmax(amax, fabs(a1));
                }
            }
            ck_assert_msg(worst <= 2e-5 * amax, "%s nonneg=%d: %g", sp_solver_names[kind], nonneg,
                          worst);
            gsl_blas_sgemm(CblasNoTrans, CblasNoTrans, 1.0f, A1, D, 0.0f, R1);
            gsl_blas_sgemm(CblasNoTrans, CblasNoTrans, 1.0f, A2, D2, 0.0f, R2);
            for (size_t i = 0; i < B * d; i++)
                ck_assert_double_le(fabs(R1->data[i] - R2->data[i]), 1e-4);
        }
    sp_solver_free(S2);
    sp_solver_free(S1);
    gsl_matrix_float_free(R2);
    gsl_matrix_float_free(R1);
    gsl_matrix_float_free(A2);
    gsl_matrix_float_free(A1);
    gsl_matrix_float_free(X);
    gsl_matrix_float_free(D2);
    gsl_matrix_float_free(D);
    gsl_rng_free(r);
}
END_TEST

/* ----------------------------------------------------------------- refit */

START_TEST(test_refit)
{
    const size_t m = 40, d = 24, B = 12;
    gsl_rng *r = rng_seeded(71);
    gsl_matrix_float *D = random_dict(m, d, 0.5, 2, r), *X = random_x(B, d, r);
    gsl_matrix_float *A = gsl_matrix_float_calloc(B, m), *O = gsl_matrix_float_alloc(B, m);
    float bias[24];
    for (size_t q = 0; q < d; q++)
        bias[q] = (float)(0.5 * gsl_ran_gaussian(r, 1.0));
    const size_t sizes[12] = {0, 1, 3, 5, 8, 12, 2, 6, 10, 4, 30, 40}; /* the last two > d */
    for (size_t b = 0; b < B; b++)
        for (size_t n = 0; n < sizes[b];) {
            size_t i = gsl_rng_uniform_int(r, m);
            if (gsl_matrix_float_get(A, b, i) != 0)
                continue;
            gsl_matrix_float_set(A, b, i, (float)gsl_ran_gaussian(r, 1.0) + 0.01f);
            n++;
        }
    sp_solver *S = solver(D, bias, B);
    sp_err err;
    double *U = unit_rows(D);

    /* signed: least squares on the support by Householder QR in double */
    ck_assert_int_eq(sp_solve_refit(S, X, A, 0, O, &err), 0);
    double worst = 0, worst_orth = 0, worst_def = 0;
    for (size_t b = 0; b < B; b++) {
        size_t s = 0, idx[40];
        for (size_t i = 0; i < m; i++) {
            if (gsl_matrix_float_get(A, b, i) != 0)
                idx[s++] = i;
            else
                ck_assert_float_eq(gsl_matrix_float_get(O, b, i), 0);
        }
        double x[24], res[24];
        for (size_t q = 0; q < d; q++)
            x[q] = gsl_matrix_float_get(X, b, q) - bias[q];
        if (s > 0 && s <= d) {
            gsl_matrix *M = gsl_matrix_alloc(d, s);
            gsl_vector *tau = gsl_vector_alloc(s), *sol = gsl_vector_alloc(s);
            gsl_vector *resid = gsl_vector_alloc(d);
            gsl_vector_view xv = gsl_vector_view_array(x, d);
            for (size_t k = 0; k < s; k++)
                for (size_t q = 0; q < d; q++)
                    gsl_matrix_set(M, q, k, gsl_matrix_float_get(D, idx[k], q));
            gsl_linalg_QR_decomp(M, tau);
            gsl_linalg_QR_lssolve(M, tau, &xv.vector, sol, resid);
            for (size_t k = 0; k < s; k++) {
                double e = fabs(gsl_matrix_float_get(O, b, idx[k]) - gsl_vector_get(sol, k));
                worst = fmax(worst, e / fmax(1, fabs(gsl_vector_get(sol, k))));
            }
            gsl_vector_free(resid);
            gsl_vector_free(sol);
            gsl_vector_free(tau);
            gsl_matrix_free(M);
        }
        /* every case, the rank-deficient ones included: r orthogonal to the support */
        double xn = 0;
        for (size_t q = 0; q < d; q++) {
            res[q] = x[q];
            xn += x[q] * x[q];
            for (size_t i = 0; i < m; i++)
                res[q] -= (double)gsl_matrix_float_get(O, b, i) * gsl_matrix_float_get(D, i, q);
        }
        for (size_t k = 0; k < s; k++) {
            double w = 0;
            for (size_t q = 0; q < d; q++)
                w += U[idx[k] * d + q] * res[q];
            if (s <= d)
                worst_orth = fmax(worst_orth, fabs(w) / sqrt(xn));
            else
                worst_def = fmax(worst_def, fabs(w) / sqrt(xn));
        }
    }
    ck_assert_msg(worst <= 1e-5, "refit vs QR: %g", worst);
    ck_assert_msg(worst_orth <= 1e-6, "refit residual not orthogonal to the support: %g",
                  worst_orth);
    /* more atoms than dimensions: a basic solution from the first
     * independent atoms (a square, less well-conditioned Gram in float) */
    ck_assert_msg(worst_def <= 1e-3, "rank-deficient refit: residual %g", worst_def);

    /* non-negative, in place: KKT of NNLS on the support */
    gsl_matrix_float_memcpy(O, A);
    ck_assert_int_eq(sp_solve_refit(S, X, O, 1, O, &err), 0);
    size_t zeros = 0, pos = 0;
    double worst_kkt = 0;
    for (size_t b = 0; b < B; b++) {
        double res[24], xn = 0;
        for (size_t q = 0; q < d; q++) {
            res[q] = gsl_matrix_float_get(X, b, q) - bias[q];
            xn += res[q] * res[q];
            for (size_t i = 0; i < m; i++)
                res[q] -= (double)gsl_matrix_float_get(O, b, i) * gsl_matrix_float_get(D, i, q);
        }
        for (size_t i = 0; i < m; i++) {
            double o = gsl_matrix_float_get(O, b, i);
            ck_assert_double_ge(o, 0);
            if (gsl_matrix_float_get(A, b, i) == 0) {
                ck_assert_float_eq(o, 0);
                continue;
            }
            double w = 0;
            for (size_t q = 0; q < d; q++)
                w += U[i * d + q] * res[q];
            worst_kkt = fmax(worst_kkt, (o > 0 ? fabs(w) : w) / sqrt(xn));
            zeros += o == 0;
            pos += o > 0;
        }
    }
    ck_assert_msg(worst_kkt <= 1e-6, "NNLS KKT violated by %g", worst_kkt);
    ck_assert_uint_gt(zeros, 10); /* the constraint was active */
    ck_assert_uint_gt(pos, 10);
    free(U);
    sp_solver_free(S);

    /* the GEMM path (m > SP_SOLVE_GRAM_MAX) equals the Gram path of the
     * sub-dictionary holding the support */
    gsl_matrix_float *Db = random_dict(SP_SOLVE_GRAM_MAX + 1, d, 0.5, 2, r);
    gsl_matrix_float_view Dsub = gsl_matrix_float_submatrix(Db, 0, 0, m, d);
    gsl_matrix_float *Ab = gsl_matrix_float_calloc(B, SP_SOLVE_GRAM_MAX + 1);
    gsl_matrix_float *Ob = gsl_matrix_float_alloc(B, SP_SOLVE_GRAM_MAX + 1);
    for (size_t b = 0; b < B; b++)
        for (size_t i = 0; i < m; i++)
            gsl_matrix_float_set(Ab, b, i, b < 10 ? gsl_matrix_float_get(A, b, i) : 0);
    sp_solver *Sb = solver(Db, bias, B), *Ss = solver(&Dsub.matrix, bias, B);
    for (int nonneg = 0; nonneg <= 1; nonneg++) {
        gsl_matrix_float_view As = gsl_matrix_float_submatrix(Ab, 0, 0, B, m);
        ck_assert_int_eq(sp_solve_refit(Sb, X, Ab, nonneg, Ob, &err), 0);
        ck_assert_int_eq(sp_solve_refit(Ss, X, &As.matrix, nonneg, O, &err), 0);
        for (size_t b = 0; b < B; b++) {
            for (size_t i = 0; i < m; i++)
                ck_assert_double_le(
                    fabs(gsl_matrix_float_get(Ob, b, i) - gsl_matrix_float_get(O, b, i)),
                    1e-4 * fmax(1, fabs(gsl_matrix_float_get(O, b, i))));
            for (size_t i = m; i < Ob->size2; i++)
                ck_assert_float_eq(gsl_matrix_float_get(Ob, b, i), 0);
        }
    }
    sp_solver_free(Ss);
    sp_solver_free(Sb);
    gsl_matrix_float_free(Ob);
    gsl_matrix_float_free(Ab);
    gsl_matrix_float_free(Db);
    gsl_matrix_float_free(O);
    gsl_matrix_float_free(A);
    gsl_matrix_float_free(X);
    gsl_matrix_float_free(D);
    gsl_rng_free(r);
}
END_TEST

/* ------------------------------------------------------------ scale fits */

START_TEST(test_scale_fit)
{
    const size_t m = 20, d = 12, B = 15;
    gsl_rng *r = rng_seeded(81);
    gsl_matrix_float *D = random_dict(m, d, 0.5, 2, r);
    gsl_matrix_float *X[2], *A[2];
    float bias[12];
    for (size_t q = 0; q < d; q++)
        bias[q] = (float)(0.3 * gsl_ran_gaussian(r, 1.0));
    for (int k = 0; k < 2; k++) {
        X[k] = random_x(B, d, r);
        A[k] = gsl_matrix_float_calloc(B, m);
        for (size_t b = 0; b < B; b++)
            for (size_t i = 0; i + 1 < m; i++) /* latent m-1 never fires */
                if (gsl_rng_uniform(r) < 0.3)
                    gsl_matrix_float_set(A[k], b, i, (float)gsl_rng_uniform(r));
    }
    /* reference sums in double */
    double num = 0, den = 0, Mr[20][20] = {{0}}, v[20] = {0};
    for (int k = 0; k < 2; k++)
        for (size_t b = 0; b < B; b++) {
            double rec[12] = {0}, xt[12];
            for (size_t q = 0; q < d; q++) {
                xt[q] = gsl_matrix_float_get(X[k], b, q) - bias[q];
                for (size_t i = 0; i < m; i++)
                    rec[q] +=
                        (double)gsl_matrix_float_get(A[k], b, i) * gsl_matrix_float_get(D, i, q);
                num += xt[q] * rec[q];
                den += rec[q] * rec[q];
            }
            for (size_t j = 0; j < m; j++) {
                double aj = gsl_matrix_float_get(A[k], b, j), xd = 0;
                for (size_t q = 0; q < d; q++)
                    xd += xt[q] * gsl_matrix_float_get(D, j, q);
                v[j] += aj * xd;
                for (size_t l = 0; l < m; l++) {
                    double dd = 0;
                    for (size_t q = 0; q < d; q++)
                        dd += (double)gsl_matrix_float_get(D, j, q) * gsl_matrix_float_get(D, l, q);
                    Mr[j][l] += aj * gsl_matrix_float_get(A[k], b, l) * dd;
                }
            }
        }
    sp_err err;
    float s1;
    sp_scale_fit *F = sp_scale_fit_alloc(D, bias, 0, B);
    ck_assert_ptr_nonnull(F);
    for (int k = 0; k < 2; k++)
        sp_scale_fit_add(F, X[k], A[k]);
    ck_assert_int_eq(sp_scale_fit_finish(F, &s1, &err), 0);
    ck_assert_double_le(fabs(s1 - num / den), 1e-6 * fabs(num / den));
    sp_scale_fit_free(F);

    /* per latent: Cholesky (GSL, double) of the fired block with the ridge */
    size_t nf = m - 1;
    gsl_matrix *M = gsl_matrix_alloc(nf, nf);
    gsl_vector *sol = gsl_vector_alloc(nf), *rhs = gsl_vector_alloc(nf);
    double tr = 0;
    for (size_t j = 0; j < nf; j++)
        tr += Mr[j][j];
    for (size_t j = 0; j < nf; j++) {
        gsl_vector_set(rhs, j, v[j]);
        for (size_t l = 0; l < nf; l++)
            gsl_matrix_set(M, j, l, Mr[j][l] + (j == l ? 1e-6 * tr / (double)nf : 0));
    }
    gsl_linalg_cholesky_decomp1(M);
    gsl_linalg_cholesky_solve(M, rhs, sol);
    float s[20];
    F = sp_scale_fit_alloc(D, bias, 1, B);
    ck_assert_ptr_nonnull(F);
    for (int k = 0; k < 2; k++)
        sp_scale_fit_add(F, X[k], A[k]);
    ck_assert_int_eq(sp_scale_fit_finish(F, s, &err), 0);
    for (size_t j = 0; j < nf; j++)
        ck_assert_double_le(fabs(s[j] - gsl_vector_get(sol, j)),
                            1e-5 * fmax(1, fabs(gsl_vector_get(sol, j))));
    ck_assert_float_eq(s[m - 1], 1.0f);
    ck_assert_int_eq(sp_scale_fit_finish(F, s, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "twice"));
    sp_scale_fit_free(F);

    /* a bad shape is reported at finish */
    F = sp_scale_fit_alloc(D, bias, 0, B);
    gsl_matrix_float *W = gsl_matrix_float_calloc(B, m + 1);
    sp_scale_fit_add(F, X[0], W);
    ck_assert_int_eq(sp_scale_fit_finish(F, &s1, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "expected B x 12 and B x 20"));
    sp_scale_fit_free(F);
    gsl_matrix_float_free(W);

    gsl_vector_free(rhs);
    gsl_vector_free(sol);
    gsl_matrix_free(M);
    for (int k = 0; k < 2; k++) {
        gsl_matrix_float_free(A[k]);
        gsl_matrix_float_free(X[k]);
    }
    gsl_matrix_float_free(D);
    gsl_rng_free(r);
}
END_TEST

/* --------------------------------------------------------- matched lambda */

START_TEST(test_match_lambda)
{
    const size_t m = 64, d = 32, B = 64;
    gsl_rng *r = rng_seeded(91);
    gsl_matrix_float *D = random_dict(m, d, 1, 1, r), *X = gsl_matrix_float_calloc(B, d);
    gsl_matrix_float *A = gsl_matrix_float_alloc(B, m);
    for (size_t b = 0; b < B; b++) {
        for (int n = 0; n < 5; n++) {
            size_t i = gsl_rng_uniform_int(r, m);
            double v = gsl_rng_uniform(r) + 0.2;
            for (size_t q = 0; q < d; q++)
                gsl_matrix_float_set(X, b, q,
                                     gsl_matrix_float_get(X, b, q) +
                                         (float)(v * gsl_matrix_float_get(D, i, q)));
        }
        for (size_t q = 0; q < d; q++)
            gsl_matrix_float_set(X, b, q,
                                 gsl_matrix_float_get(X, b, q) + (float)gsl_ran_gaussian(r, 0.01));
    }
    sp_solver *S = solver(D, NULL, B);
    sp_err err;
    const struct {
        int kind, nonneg;
        double target;
    } cases[3] = {{SP_SOLVE_FISTA, 0, 5}, {SP_SOLVE_FISTA, 1, 8}, {SP_SOLVE_ISTA, 1, 3}};
    for (int k = 0; k < 3; k++) {
        sp_solve_cfg c = cfg_of(cases[k].kind, cases[k].nonneg, 0, 123, -1);
        double lam = sp_solve_match_lambda(S, &c, X, cases[k].target, A, &err);
        ck_assert_msg(isfinite(lam) && lam > 0, "%s", err.msg);
        size_t nnz = 0;
        for (size_t i = 0; i < B * m; i++)
            nnz += A->data[i] != 0;
        double l0 = (double)nnz / (double)B;
        ck_assert_msg(fabs(l0 - cases[k].target) <= 0.02 * cases[k].target,
                      "case %d: L0 %g for target %g at lambda %g", k, l0, cases[k].target, lam);
        /* deterministic */
        ck_assert_double_eq(sp_solve_match_lambda(S, &c, X, cases[k].target, A, &err), lam);
    }
    sp_solve_cfg c = cfg_of(SP_SOLVE_OMP, 0, 4, 0, -1);
    ck_assert(isnan(sp_solve_match_lambda(S, &c, X, 5, A, &err)));
    ck_assert_ptr_nonnull(strstr(err.msg, "only ista and fista"));
    c.kind = SP_SOLVE_FISTA;
    ck_assert(isnan(sp_solve_match_lambda(S, &c, X, 0, A, &err)));
    ck_assert_ptr_nonnull(strstr(err.msg, "target L0 = 0"));
    sp_solver_free(S);
    gsl_matrix_float_free(A);
    gsl_matrix_float_free(X);
    gsl_matrix_float_free(D);
    gsl_rng_free(r);
}
END_TEST

/* -------------------------------------------------------------- bad input */

START_TEST(test_bad_input)
{
    const size_t m = 10, d = 4, B = 8;
    gsl_rng *r = rng_seeded(3);
    gsl_matrix_float *D = random_dict(m, d, 1, 1, r), *X = random_x(B, d, r);
    gsl_matrix_float *A = gsl_matrix_float_alloc(B, m);
    sp_solver *S = solver(D, NULL, B);
    sp_err err;
    sp_solve_cfg c = cfg_of(SP_SOLVE_OMP, 0, 11, 0, -1);
    ck_assert_int_eq(sp_solve(S, &c, X, NULL, 0, A, NULL, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "k = 11 atoms > m = 10"));
    size_t kvec[8] = {1, 2, 3, 12, 0, 0, 0, 0};
    c.k = 2;
    ck_assert_int_eq(sp_solve(S, &c, X, kvec, 0, A, NULL, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "kvec[3] = 12 atoms > m = 10"));
    kvec[3] = 10; /* K = m is allowed */
    ck_assert_int_eq(sp_solve(S, &c, X, kvec, 0, A, NULL, &err), 0);

    gsl_matrix_float *X9 = random_x(B + 1, d, r), *A9 = gsl_matrix_float_alloc(B + 1, m);
    ck_assert_int_eq(sp_solve(S, &c, X9, NULL, 0, A9, NULL, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "batch of 9 samples > max_batch = 8"));
    gsl_matrix_float *X5 = random_x(B, d + 1, r), *A11 = gsl_matrix_float_alloc(B, m + 1);
    ck_assert_int_eq(sp_solve(S, &c, X5, NULL, 0, A, NULL, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "X has 5 columns, the dictionary has d = 4"));
    ck_assert_int_eq(sp_solve(S, &c, X, NULL, 0, A11, NULL, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "A is 8 x 11, expected 8 x 10"));
    ck_assert_int_eq(sp_solve_refit(S, X, A11, 0, A, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "A_in is 8 x 11"));

    for (int kind = 0; kind < SP_N_SOLVERS; kind++) {
        c = cfg_of(kind, 0, 2, 0.1, -1);
        gsl_matrix_float_set(X, 3, 2, NAN);
        ck_assert_int_eq(sp_solve(S, &c, X, NULL, 0, A, NULL, &err), -1);
        ck_assert_ptr_nonnull(strstr(err.msg, "sample 3 has a non-finite value"));
        gsl_matrix_float_set(X, 3, 2, 0);
        gsl_matrix_float_set(X, 1, 0, -INFINITY);
        ck_assert_int_eq(sp_solve(S, &c, X, NULL, 0, A, NULL, &err), -1);
        ck_assert_ptr_nonnull(strstr(err.msg, "sample 1 has a non-finite value"));
        gsl_matrix_float_set(X, 1, 0, 0);
    }
    gsl_matrix_float_set(X, 5, 1, INFINITY);
    ck_assert_int_eq(sp_solve_refit(S, X, A, 1, A, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "sample 5 has a non-finite value"));
    gsl_matrix_float_set(X, 5, 1, 0);

    c = cfg_of(SP_SOLVE_FISTA, 0, 0, -1, -1);
    ck_assert_int_eq(sp_solve(S, &c, X, NULL, 0, A, NULL, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "lambda = -1"));
    c = cfg_of(SP_SOLVE_ISTA, 0, 0, 0.1, -1);
    c.max_iter = 0;
    ck_assert_int_eq(sp_solve(S, &c, X, NULL, 0, A, NULL, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "max_iter = 0"));
    c = cfg_of(7, 0, 1, 0, -1);
    ck_assert_int_eq(sp_solve(S, &c, X, NULL, 0, A, NULL, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "solver kind 7"));
    c = cfg_of(SP_SOLVE_MP, 0, 1, 0, 2);
    ck_assert_int_eq(sp_solve(S, &c, X, NULL, 0, A, NULL, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "use_gram = 2"));

    /* a non-finite atom, after refresh */
    gsl_matrix_float_set(D, 4, 1, NAN);
    sp_solver_refresh(S);
    c = cfg_of(SP_SOLVE_OMP, 0, 2, 0, -1);
    ck_assert_int_eq(sp_solve(S, &c, X, NULL, 0, A, NULL, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "the dictionary has a non-finite value"));
    ck_assert_int_eq(sp_solve_refit(S, X, A, 0, A, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "the dictionary has a non-finite value"));
    gsl_matrix_float_set(D, 4, 1, 0.5f);
    sp_solver_refresh(S);
    ck_assert_int_eq(sp_solve(S, &c, X, NULL, 0, A, NULL, &err), 0);

    /* no Gram matrix above SP_SOLVE_GRAM_MAX atoms */
    gsl_matrix_float *Dbig = random_dict(SP_SOLVE_GRAM_MAX + 1, 2, 1, 1, r);
    gsl_matrix_float *Xb = random_x(2, 2, r),
                     *Ab = gsl_matrix_float_alloc(2, SP_SOLVE_GRAM_MAX + 1);
    sp_solver *Sb = solver(Dbig, NULL, 2);
    c = cfg_of(SP_SOLVE_MP, 0, 1, 0, 1);
    ck_assert_int_eq(sp_solve(Sb, &c, Xb, NULL, 0, Ab, NULL, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "use_gram = 1 but m = 4097"));
    c.use_gram = -1;
    ck_assert_int_eq(sp_solve(Sb, &c, Xb, NULL, 0, Ab, NULL, &err), 0);
    sp_solver_free(Sb);

    gsl_matrix_float *E = gsl_matrix_float_alloc(1, 1);
    gsl_matrix_float_view E0 = gsl_matrix_float_submatrix(E, 0, 0, 1, 1);
    E0.matrix.size1 = 0;
    ck_assert_ptr_null(sp_solver_alloc(&E0.matrix, NULL, 4, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "empty"));
    ck_assert_ptr_null(sp_solver_alloc(D, NULL, 0, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "max_batch = 0"));
    sp_solver_free(NULL);
    sp_scale_fit_free(NULL);

    gsl_matrix_float_free(E);
    gsl_matrix_float_free(Ab);
    gsl_matrix_float_free(Xb);
    gsl_matrix_float_free(Dbig);
    gsl_matrix_float_free(A11);
    gsl_matrix_float_free(X5);
    gsl_matrix_float_free(A9);
    gsl_matrix_float_free(X9);
    sp_solver_free(S);
    gsl_matrix_float_free(A);
    gsl_matrix_float_free(X);
    gsl_matrix_float_free(D);
    gsl_rng_free(r);
}
END_TEST

START_TEST(test_zero_input_and_large_k)
{
    /* x = b gives the zero code; K = m on d < m stops at the rank with a
     * (numerically) zero residual. */
    const size_t m = 24, d = 8, B = 3;
    gsl_rng *r = rng_seeded(97);
    gsl_matrix_float *D = random_dict(m, d, 0.5, 2, r), *X = random_x(B, d, r);
    gsl_matrix_float *A = gsl_matrix_float_alloc(B, m);
    float bias[8];
    for (size_t q = 0; q < d; q++)
        bias[q] = gsl_matrix_float_get(X, 0, q);
    sp_solver *S = solver(D, bias, B);
    for (int kind = 0; kind < SP_N_SOLVERS; kind++)
        for (int nonneg = 0; nonneg <= 1; nonneg++) {
            sp_solve_cfg c = cfg_of(kind, nonneg, m, 0.01, -1);
            c.max_iter = 5000;
            c.tol = 1e-10;
            solve_ok(S, &c, X, NULL, A, NULL);
            for (size_t i = 0; i < m; i++)
                ck_assert_float_eq(gsl_matrix_float_get(A, 0, i), 0);
            if (kind == SP_SOLVE_OMP && !nonneg)
                for (size_t b = 1; b < B; b++) {
                    size_t nnz = 0;
                    for (size_t i = 0; i < m; i++)
                        nnz += gsl_matrix_float_get(A, b, i) != 0;
                    ck_assert_uint_le(nnz, d);
                    ck_assert_double_le(energy(D, bias, X, A, b), 1e-9);
                }
        }
    sp_solver_free(S);
    gsl_matrix_float_free(A);
    gsl_matrix_float_free(X);
    gsl_matrix_float_free(D);
    gsl_rng_free(r);
}
END_TEST

Suite *make_solve_suite(void)
{
    Suite *s = suite_create("solve");
    TCase *tc = tcase_create("solve");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_names_and_objective);
    tcase_add_test(tc, test_lipschitz);
    tcase_add_test(tc, test_omp_exact_recovery);
    tcase_add_test(tc, test_orthonormal_topk);
    tcase_add_test(tc, test_pursuit_traces);
    tcase_add_test(tc, test_gp_nonneg_cap);
    tcase_add_test(tc, test_gram_vs_gemm);
    tcase_add_test(tc, test_fista_optimum);
    tcase_add_test(tc, test_ista_optimum);
    tcase_add_test(tc, test_warm_start);
    tcase_add_test(tc, test_nonneg_never_negative);
    tcase_add_test(tc, test_atom_norms);
    tcase_add_test(tc, test_refit);
    tcase_add_test(tc, test_scale_fit);
    tcase_add_test(tc, test_match_lambda);
    tcase_add_test(tc, test_bad_input);
    tcase_add_test(tc, test_zero_input_and_large_k);
    suite_add_tcase(s, tc);
    return s;
}
