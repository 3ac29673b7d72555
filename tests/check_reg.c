/* check_reg.c: regularisers and resampling (reg.c). Orthogonality on
 * cases solved by hand (orthonormal rows, 60-degree pairs, three lines at
 * 120 degrees), its gradient against finite differences of an independent
 * double-precision O(m^2 d) reference and against that reference's own
 * analytic gradient (quotient rule, not the projection form of reg.c),
 * with more rows than one block; the pre-activation spread by hand and by
 * finite differences; resampling through a fake learner whose reinit
 * records its calls, with a statistical check of the loss^2 rates stated
 * in standard errors. Seeds are fixed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_randist.h>

#include "helpers.h"
#include "superpose/sae.h"

/* ------------------------------------------------------------- helpers */

static gsl_rng *rng_seeded(unsigned long seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, seed);
    return r;
}

/* Rows of random norm in [0.5, 2.5) and Gaussian direction. */
static gsl_matrix_float *random_rows(size_t m, size_t d, gsl_rng *r)
{
    gsl_matrix_float *W = gsl_matrix_float_alloc(m, d);
    for (size_t i = 0; i < m; i++) {
        double s = 0.5 + 2 * gsl_rng_uniform(r);
        for (size_t q = 0; q < d; q++)
            gsl_matrix_float_set(W, i, q, (float)(s * gsl_ran_gaussian(r, 1.0)));
    }
    return W;
}

static double orth_value(const gsl_matrix_float *W, double lambda, gsl_matrix_float *gW)
{
    float *ws = malloc(sp_reg_orth_ws_size(W->size1, W->size2) * sizeof *ws);
    ck_assert_ptr_nonnull(ws);
    double r = sp_reg_orth(W, lambda, gW, ws);
    free(ws);
    return r;
}

/* lambda sum_{i != j} cos^2(w_i, w_j) in double, straight from the
 * definition; zero rows have cos 0. W: (m, d) row-major doubles. */
static double orth_ref(const double *W, size_t m, size_t d, double lambda)
{
    double s = 0;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < m; j++) {
            if (i == j)
                continue;
            double ab = 0, aa = 0, bb = 0;
            for (size_t q = 0; q < d; q++) {
                ab += W[i * d + q] * W[j * d + q];
                aa += W[i * d + q] * W[i * d + q];
                bb += W[j * d + q] * W[j * d + q];
            }
            if (aa > 0 && bb > 0)
                s += ab * ab / (aa * bb);
        }
    return lambda * s;
}

/* Its gradient by the quotient rule: c = a / (n_i n_j),
 * dc/dw_i = w_j / (n_i n_j) - a w_i / (n_i^3 n_j), and each unordered pair
 * appears twice in the sum, so dR/dw_i = 4 lambda sum_j c dc/dw_i. */
static void orth_ref_grad(const double *W, size_t m, size_t d, double lambda, double *g)
{
    memset(g, 0, m * d * sizeof *g);
    for (size_t i = 0; i < m; i++) {
        double ni = 0;
        for (size_t q = 0; q < d; q++)
            ni += W[i * d + q] * W[i * d + q];
        ni = sqrt(ni);
        if (ni == 0)
            continue;
        for (size_t j = 0; j < m; j++) {
            if (j == i)
                continue;
            double nj = 0, a = 0;
            for (size_t q = 0; q < d; q++) {
                nj += W[j * d + q] * W[j * d + q];
                a += W[i * d + q] * W[j * d + q];
            }
            nj = sqrt(nj);
            if (nj == 0)
                continue;
            double c = a / (ni * nj);
            for (size_t q = 0; q < d; q++)
                g[i * d + q] += 4 * lambda * c *
                                (W[j * d + q] / (ni * nj) - a * W[i * d + q] / (ni * ni * ni * nj));
        }
    }
}

static double *to_double(const gsl_matrix_float *W)
{
    size_t m = W->size1, d = W->size2;
    double *D = malloc(m * d * sizeof *D);
    for (size_t i = 0; i < m; i++)
        for (size_t q = 0; q < d; q++)
            D[i * d + q] = gsl_matrix_float_get(W, i, q);
    return D;
}

static double max_abs_f(const gsl_matrix_float *A)
{
    double mx = 0;
    for (size_t i = 0; i < A->size1; i++)
        for (size_t q = 0; q < A->size2; q++)
            mx = fmax(mx, fabs(gsl_matrix_float_get(A, i, q)));
    return mx;
}

/* ------------------------------------------------------- orthogonality */

START_TEST(test_orth_by_hand)
{
    const double lambda = 0.3;
    /* Orthonormal directions with norms 1, 2 and 0.5: cos 0 everywhere. */
    gsl_matrix_float *W = gsl_matrix_float_calloc(3, 3);
    gsl_matrix_float_set(W, 0, 0, 1);
    gsl_matrix_float_set(W, 1, 1, 2);
    gsl_matrix_float_set(W, 2, 2, 0.5f);
    gsl_matrix_float *g = gsl_matrix_float_calloc(3, 3);
    ck_assert_double_eq_tol(orth_value(W, lambda, g), 0, 1e-12);
    ck_assert_double_eq_tol(max_abs_f(g), 0, 1e-12);
    gsl_matrix_float_free(g);
    gsl_matrix_float_free(W);

    /* Two rows at 60 degrees (norms 1 and 3): cos^2 = 1/4, twice. */
    W = gsl_matrix_float_alloc(2, 2);
    gsl_matrix_float_set(W, 0, 0, 1);
    gsl_matrix_float_set(W, 0, 1, 0);
    gsl_matrix_float_set(W, 1, 0, (float)(3 * 0.5));
    gsl_matrix_float_set(W, 1, 1, (float)(3 * sqrt(3) / 2));
    ck_assert_double_eq_tol(orth_value(W, lambda, NULL), 2 * lambda * 0.25, 1e-6);
    gsl_matrix_float_free(W);

    /* Three lines in the plane at 120 degrees: cos^2 = 1/4 for 6 ordered pairs. */
    W = gsl_matrix_float_alloc(3, 2);
    const double cx[3] = {1, -0.5, -0.5}, cy[3] = {0, sqrt(3) / 2, -sqrt(3) / 2};
    for (size_t i = 0; i < 3; i++) {
        gsl_matrix_float_set(W, i, 0, (float)((double)(i + 1) * cx[i]));
        gsl_matrix_float_set(W, i, 1, (float)((double)(i + 1) * cy[i]));
    }
    ck_assert_double_eq_tol(orth_value(W, lambda, NULL), 6 * 0.25 * lambda, 1e-6);
    /* Each unit direction is a critical point up to scale: the tangent
     * gradient is 4 lambda sum_j c_ij (u_j - c_ij u_i) / |w_i|, and the two
     * partners of u_i sum to -u_i, so it vanishes. */
    g = gsl_matrix_float_calloc(3, 2);
    orth_value(W, lambda, g);
    ck_assert_double_eq_tol(max_abs_f(g), 0, 1e-6);
    gsl_matrix_float_free(g);
    gsl_matrix_float_free(W);
}
END_TEST

/* The double reference checked against finite differences of itself, then
 * sp_reg_orth's gradient against both. */
START_TEST(test_orth_fd_reference)
{
    const size_t m = 7, d = 5;
    const double lambda = 0.7, h = 1e-3;
    gsl_rng *r = rng_seeded(11);
    gsl_matrix_float *W = random_rows(m, d, r);
    double *D = to_double(W), *gref = malloc(m * d * sizeof *gref);
    orth_ref_grad(D, m, d, lambda, gref);
    gsl_matrix_float *g = gsl_matrix_float_calloc(m, d);
    double val = orth_value(W, lambda, g);
    ck_assert_double_eq_tol(val, orth_ref(D, m, d, lambda), 1e-5 * val);

    double gmax = max_abs_f(g), err_fd = 0, err_ref = 0;
    ck_assert(gmax > 0.1);
    for (size_t k = 0; k < m * d; k++) {
        double w0 = D[k];
        D[k] = w0 + h;
        double fp = orth_ref(D, m, d, lambda);
        D[k] = w0 - h;
        double fm = orth_ref(D, m, d, lambda);
        D[k] = w0;
        double fd = (fp - fm) / (2 * h);
        err_fd = fmax(err_fd, fabs(fd - g->data[k]));
        err_ref = fmax(err_ref, fabs(fd - gref[k]));
    }
    /* Central differences: O(h^2) = 1e-6 truncation, far below 1e-3. */
    ck_assert_msg(err_ref < 1e-3 * gmax, "reference grad vs FD: %g (max %g)", err_ref, gmax);
    ck_assert_msg(err_fd < 1e-3 * gmax, "sp_reg_orth grad vs FD: %g (max %g)", err_fd, gmax);
    free(gref);
    free(D);
    gsl_matrix_float_free(g);
    gsl_matrix_float_free(W);
    gsl_rng_free(r);
}
END_TEST

/* Finite differences of sp_reg_orth itself, all in float. Each float C_ij
 * (a d = 5 term dot product of unit rows) errs by up to ~d 2^-24 = 3e-7,
 * so R = lambda sum of 42 C_ij^2 (|C_ij| ~ 0.3) errs by up to
 * ~0.7 * 42 * 2 * 0.3 * 3e-7 = 5e-6. With h = 1e-2 the difference quotient
 * then errs by up to 5e-6 / 2e-2 = 2.5e-4, plus an O(h^2) = 1e-4 scale
 * truncation error; the largest entry is ~1, so 2e-3 of it holds with a
 * margin of four on that worst case (measured: 3e-5). The step is the
 * float difference actually taken, so rounding of w +- h does not enter. */
START_TEST(test_orth_fd_float)
{
    const size_t m = 7, d = 5;
    const double lambda = 0.7;
    const float h = 1e-2f;
    gsl_rng *r = rng_seeded(12);
    gsl_matrix_float *W = random_rows(m, d, r);
    gsl_matrix_float *g = gsl_matrix_float_calloc(m, d);
    float *ws = malloc(sp_reg_orth_ws_size(m, d) * sizeof *ws);
    sp_reg_orth(W, lambda, g, ws);
    double gmax = max_abs_f(g), err = 0;
    for (size_t k = 0; k < m * d; k++) {
        float w0 = W->data[k];
        volatile float wp = w0 + h, wm = w0 - h;
        W->data[k] = wp;
        double fp = sp_reg_orth(W, lambda, NULL, ws);
        W->data[k] = wm;
        double fm = sp_reg_orth(W, lambda, NULL, ws);
        W->data[k] = w0;
        err = fmax(err, fabs((fp - fm) / ((double)wp - wm) - g->data[k]));
    }
    ck_assert_msg(err < 2e-3 * gmax, "float FD: %g (max %g)", err, gmax);
    free(ws);
    gsl_matrix_float_free(g);
    gsl_matrix_float_free(W);
    gsl_rng_free(r);
}
END_TEST

/* m = 600 > 256: three blocks, the last partial; a zero row among them. */
START_TEST(test_orth_blocks)
{
    const size_t m = 600, d = 16;
    const double lambda = 0.01;
    gsl_rng *r = rng_seeded(13);
    gsl_matrix_float *W = random_rows(m, d, r);
    for (size_t q = 0; q < d; q++)
        gsl_matrix_float_set(W, 300, q, 0);
    double *D = to_double(W), *gref = malloc(m * d * sizeof *gref);
    orth_ref_grad(D, m, d, lambda, gref);
    double ref = orth_ref(D, m, d, lambda);
    gsl_matrix_float *g = gsl_matrix_float_calloc(m, d);
    double val = orth_value(W, lambda, g);
    ck_assert_msg(fabs(val - ref) < 1e-4 * ref, "value %.9g vs %.9g", val, ref);
    double gmax = 0, err = 0;
    for (size_t k = 0; k < m * d; k++) {
        gmax = fmax(gmax, fabs(gref[k]));
        err = fmax(err, fabs(gref[k] - g->data[k]));
    }
    ck_assert_msg(err < 1e-4 * gmax, "grad err %g (max %g)", err, gmax);
    for (size_t q = 0; q < d; q++)
        ck_assert_float_eq(gsl_matrix_float_get(g, 300, q), 0);
    free(gref);
    free(D);
    gsl_matrix_float_free(g);
    gsl_matrix_float_free(W);
    gsl_rng_free(r);
}
END_TEST

/* gW is added to, not overwritten; gW = NULL gives the same value. A
 * matrix view with tda > size2 checks the strides. */
START_TEST(test_orth_adds)
{
    const size_t m = 9, d = 4, tda = 6;
    gsl_rng *r = rng_seeded(14);
    gsl_matrix_float *W = random_rows(m, d, r);
    gsl_matrix_float *g0 = gsl_matrix_float_calloc(m, d);
    double v0 = orth_value(W, 0.5, g0);

    gsl_matrix_float *big = gsl_matrix_float_alloc(m, tda);
    gsl_matrix_float_set_all(big, 1.5f);
    gsl_matrix_float_view g1 = gsl_matrix_float_submatrix(big, 0, 0, m, d);
    double v1 = orth_value(W, 0.5, &g1.matrix);
    ck_assert_double_eq(v0, v1);
    ck_assert_double_eq(v0, orth_value(W, 0.5, NULL));
    for (size_t i = 0; i < m; i++) {
        for (size_t q = 0; q < d; q++)
            ck_assert_float_eq_tol(gsl_matrix_float_get(big, i, q) - 1.5f,
                                   gsl_matrix_float_get(g0, i, q), 1e-6f);
        for (size_t q = d; q < tda; q++)
            ck_assert_float_eq(gsl_matrix_float_get(big, i, q), 1.5f);
    }
    gsl_matrix_float_free(big);
    gsl_matrix_float_free(g0);
    gsl_matrix_float_free(W);
    gsl_rng_free(r);
}
END_TEST

/* ---------------------------------------------------------------- prestd */

static double prestd_ref(const double *P, size_t B, size_t m, size_t ld, double lambda)
{
    double s = 0;
    for (size_t b = 0; b < B; b++) {
        double mu = 0, v = 0;
        for (size_t i = 0; i < m; i++)
            mu += P[b * ld + i] / (double)m;
        for (size_t i = 0; i < m; i++)
            v += (P[b * ld + i] - mu) * (P[b * ld + i] - mu) / (double)m;
        s += sqrt(v + 1e-8);
    }
    return lambda * s / (double)B;
}

START_TEST(test_prestd_by_hand)
{
    /* Rows [1, 3] (std 1) and [5, 5] (std 0, so sqrt(1e-8) = 1e-4), with a
     * third column outside the row (ld = 3) that must not be read. */
    float P[6] = {1, 3, 1000, 5, 5, -1000};
    float dP[6] = {0, 0, 7, 0, 0, 7};
    double lambda = 2;
    double v = sp_reg_prestd(P, 2, 2, 3, lambda, dP);
    ck_assert_double_eq_tol(v, lambda * (sqrt(1 + 1e-8) + 1e-4) / 2, 1e-12);
    /* dR/dP = lambda/B (P - mu) / (m sd): row 1 gives -+0.5, row 2 gives 0. */
    ck_assert_float_eq_tol(dP[0], -0.5f, 1e-6f);
    ck_assert_float_eq_tol(dP[1], 0.5f, 1e-6f);
    ck_assert_float_eq(dP[3], 0);
    ck_assert_float_eq(dP[4], 0);
    ck_assert_float_eq(dP[2], 7);
    ck_assert_float_eq(dP[5], 7);
    ck_assert_double_eq(sp_reg_prestd(P, 2, 2, 3, lambda, NULL), v);
    ck_assert_double_eq(sp_reg_prestd(P, 0, 2, 3, lambda, dP), 0);
}
END_TEST

START_TEST(test_prestd_fd)
{
    enum { B = 4, M = 6, LD = 8 };
    const double lambda = 0.3;
    gsl_rng *r = rng_seeded(21);
    float P[B * LD], dP[B * LD], dP2[B * LD];
    double D[B * LD];
    for (size_t k = 0; k < B * LD; k++) {
        P[k] = (float)gsl_ran_gaussian(r, 1.5);
        D[k] = P[k];
        dP[k] = 0;
        dP2[k] = 0.25f;
    }
    double v = sp_reg_prestd(P, B, M, LD, lambda, dP);
    ck_assert_double_eq_tol(v, prestd_ref(D, B, M, LD, lambda), 1e-12);
    sp_reg_prestd(P, B, M, LD, lambda, dP2); /* adds */

    double gmax = 0, err_d = 0, err_f = 0;
    for (size_t b = 0; b < B; b++)
        for (size_t i = 0; i < M; i++)
            gmax = fmax(gmax, fabs(dP[b * LD + i]));
    for (size_t b = 0; b < B; b++)
        for (size_t i = 0; i < LD; i++) {
            size_t k = b * LD + i;
            if (i >= M) {
                ck_assert_float_eq(dP[k], 0);
                ck_assert_float_eq(dP2[k], 0.25f);
                continue;
            }
            ck_assert_float_eq_tol(dP2[k] - 0.25f, dP[k], 1e-6f);
            const double h = 1e-3;
            double p0 = D[k];
            D[k] = p0 + h;
            double fp = prestd_ref(D, B, M, LD, lambda);
            D[k] = p0 - h;
            double fm = prestd_ref(D, B, M, LD, lambda);
            D[k] = p0;
            err_d = fmax(err_d, fabs((fp - fm) / (2 * h) - dP[k]));

            /* In float, with h = 1e-2: sp_reg_prestd accumulates in double,
             * so the only float rounding is of P +- h itself, removed by
             * dividing by the step actually taken; truncation is O(h^2). */
            float q0 = P[k];
            volatile float qp = q0 + 1e-2f, qm = q0 - 1e-2f;
            P[k] = qp;
            fp = sp_reg_prestd(P, B, M, LD, lambda, NULL);
            P[k] = qm;
            fm = sp_reg_prestd(P, B, M, LD, lambda, NULL);
            P[k] = q0;
            err_f = fmax(err_f, fabs((fp - fm) / ((double)qp - qm) - dP[k]));
        }
    ck_assert_msg(err_d < 1e-3 * gmax, "double FD: %g (max %g)", err_d, gmax);
    ck_assert_msg(err_f < 1e-3 * gmax, "float FD: %g (max %g)", err_f, gmax);
    gsl_rng_free(r);
}
END_TEST

/* ------------------------------------------------------------ resampling */

enum { FAKE_M = 6, FAKE_D = 3, FAKE_CALLS = 16 };

typedef struct {
    sp_learner base; /* first member: a sp_learner * points here */
    size_t n_calls;
    size_t idx[FAKE_CALLS];
    float dir[FAKE_CALLS][FAKE_D];
    float enc_norm[FAKE_CALLS];
    int times[FAKE_M]; /* reinit count per latent */
} fake_learner;

static void fake_reinit(sp_learner *L, sp_optim *opt, size_t i, const float *dir, float enc_norm)
{
    fake_learner *F = (fake_learner *)L;
    ck_assert_ptr_null(opt);
    ck_assert_uint_lt(i, FAKE_M);
    F->times[i]++;
    if (F->n_calls < FAKE_CALLS) {
        F->idx[F->n_calls] = i;
        memcpy(F->dir[F->n_calls], dir, FAKE_D * sizeof *dir);
        F->enc_norm[F->n_calls] = enc_norm;
    }
    F->n_calls++;
}

static const sp_learner_ops fake_ops = {.name = "fake", .reinit = fake_reinit};

/* enc_rows row i = (i + 1) * (0.6, 0.8, 0, 0): norm i + 1. */
static void fake_init(fake_learner *F, gsl_matrix_float *enc)
{
    memset(F, 0, sizeof *F);
    F->base.ops = &fake_ops;
    F->base.m = FAKE_M;
    F->base.d = FAKE_D;
    F->base.enc_rows = enc;
    gsl_matrix_float_set_zero(enc);
    for (size_t i = 0; i < FAKE_M; i++) {
        gsl_matrix_float_set(enc, i, 0, 0.6f * (float)(i + 1));
        gsl_matrix_float_set(enc, i, 1, 0.8f * (float)(i + 1));
    }
}

/* Which row of X (minus bd, normalised) dir is; -1 if none. */
static int match_row(const gsl_matrix_float *X, const float *bd, const float *dir)
{
    for (size_t n = 0; n < X->size1; n++) {
        double v[FAKE_D], s = 0;
        for (size_t q = 0; q < FAKE_D; q++) {
            v[q] = gsl_matrix_float_get(X, n, q) - (bd ? bd[q] : 0);
            s += v[q] * v[q];
        }
        if (s == 0)
            continue;
        double e = 0;
        for (size_t q = 0; q < FAKE_D; q++)
            e = fmax(e, fabs(v[q] / sqrt(s) - dir[q]));
        if (e < 1e-6)
            return (int)n;
    }
    return -1;
}

START_TEST(test_resample_basic)
{
    gsl_rng *r = rng_seeded(31);
    gsl_matrix_float *enc = gsl_matrix_float_alloc(FAKE_M, 4);
    fake_learner F;
    fake_init(&F, enc);
    const float X_[4 * FAKE_D] = {1, 2, 3, -1, 0, 2, 0.5f, 0.5f, 0.5f, 4, -3, 1};
    gsl_matrix_float_const_view X = gsl_matrix_float_const_view_array(X_, 4, FAKE_D);
    const double loss[4] = {0.5, 1, 0, 2};
    const float bd[FAKE_D] = {0.5f, 0.5f, 0.5f}; /* row 2 minus bd is 0, and its loss 0 */
    /* Dead 1, 3, 4 (one repeated, one out of range): alive 0, 2, 5 with
     * norms 1, 3, 6, so enc_norm = 0.2 * 10 / 3. */
    const size_t dead[5] = {4, 1, 3, 4, 99};
    size_t n = sp_resample(&F.base, NULL, dead, 5, &X.matrix, loss, bd, r);
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(F.n_calls, 3);
    const int want[FAKE_M] = {0, 1, 0, 1, 1, 0};
    for (size_t i = 0; i < FAKE_M; i++)
        ck_assert_int_eq(F.times[i], want[i]);
    for (size_t c = 0; c < F.n_calls; c++) {
        double s = 0;
        for (size_t q = 0; q < FAKE_D; q++)
            s += (double)F.dir[c][q] * F.dir[c][q];
        ck_assert_double_eq_tol(s, 1, 1e-6);
        int row = match_row(&X.matrix, bd, F.dir[c]);
        ck_assert_int_ge(row, 0);
        ck_assert_int_ne(row, 2);
        ck_assert_float_eq_tol(F.enc_norm[c], (float)(0.2 * 10.0 / 3), 1e-6f);
    }
    gsl_matrix_float_free(enc);
    gsl_rng_free(r);
}
END_TEST

/* Edge cases: every latent dead (mean alive norm taken as 1), every input
 * equal to bd (nothing reinitialised), all losses 0 (uniform), a NaN loss
 * (weight 0). */
START_TEST(test_resample_edges)
{
    gsl_rng *r = rng_seeded(32);
    gsl_matrix_float *enc = gsl_matrix_float_alloc(FAKE_M, 4);
    fake_learner F;
    fake_init(&F, enc);
    const float X_[2 * FAKE_D] = {1, 0, 0, 0, 1, 0};
    gsl_matrix_float_const_view X = gsl_matrix_float_const_view_array(X_, 2, FAKE_D);
    const double loss[2] = {1, 1};
    size_t all[FAKE_M];
    for (size_t i = 0; i < FAKE_M; i++)
        all[i] = i;
    ck_assert_uint_eq(sp_resample(&F.base, NULL, all, FAKE_M, &X.matrix, loss, NULL, r), FAKE_M);
    for (size_t c = 0; c < F.n_calls; c++)
        ck_assert_float_eq_tol(F.enc_norm[c], 0.2f, 1e-7f);

    fake_init(&F, enc);
    const float Z_[2 * FAKE_D] = {1, 1, 1, 1, 1, 1};
    const float ones[FAKE_D] = {1, 1, 1};
    gsl_matrix_float_const_view Z = gsl_matrix_float_const_view_array(Z_, 2, FAKE_D);
    ck_assert_uint_eq(sp_resample(&F.base, NULL, all, 2, &Z.matrix, loss, ones, r), 0);
    ck_assert_uint_eq(F.n_calls, 0);

    /* NaN loss on row 0, 1 on row 1: always row 1. */
    const double nan_loss[2] = {NAN, 1};
    for (int t = 0; t < 50; t++) {
        fake_init(&F, enc);
        size_t one = 2;
        ck_assert_uint_eq(sp_resample(&F.base, NULL, &one, 1, &X.matrix, nan_loss, NULL, r), 1);
        ck_assert_int_eq(match_row(&X.matrix, NULL, F.dir[0]), 1);
    }

    /* Losses all 0: uniform over 3 inputs, 6000 draws, 5 standard errors. */
    const float Y_[3 * FAKE_D] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    gsl_matrix_float_const_view Y = gsl_matrix_float_const_view_array(Y_, 3, FAKE_D);
    const double zero[3] = {0, 0, 0};
    const int T = 6000;
    int count[3] = {0, 0, 0};
    for (int t = 0; t < T; t++) {
        fake_init(&F, enc);
        size_t one = 0;
        sp_resample(&F.base, NULL, &one, 1, &Y.matrix, zero, NULL, r);
        int row = match_row(&Y.matrix, NULL, F.dir[0]);
        ck_assert_int_ge(row, 0);
        count[row]++;
    }
    double se = sqrt((1.0 / 3) * (2.0 / 3) / T);
    for (int k = 0; k < 3; k++)
        ck_assert_msg(fabs((double)count[k] / T - 1.0 / 3) < 5 * se, "uniform: row %d %d/%d", k,
                      count[k], T);
    gsl_matrix_float_free(enc);
    gsl_rng_free(r);
}
END_TEST

/* Losses 1, 2, 3: rows chosen with probability 1/14, 4/14, 9/14. 20000
 * single-latent resamples; each frequency within 5 standard errors
 * sqrt(p (1 - p) / T) (a false failure about once in 10^6 runs per row). */
START_TEST(test_resample_rates)
{
    gsl_rng *r = rng_seeded(33);
    gsl_matrix_float *enc = gsl_matrix_float_alloc(FAKE_M, 4);
    fake_learner F;
    const float Y_[3 * FAKE_D] = {2, 0, 0, 0, -1, 0, 0, 0, 3};
    gsl_matrix_float_const_view Y = gsl_matrix_float_const_view_array(Y_, 3, FAKE_D);
    const double loss[3] = {1, 2, 3};
    const double p[3] = {1.0 / 14, 4.0 / 14, 9.0 / 14};
    const int T = 20000;
    int count[3] = {0, 0, 0};
    for (int t = 0; t < T; t++) {
        fake_init(&F, enc);
        size_t one = (size_t)(t % FAKE_M);
        ck_assert_uint_eq(sp_resample(&F.base, NULL, &one, 1, &Y.matrix, loss, NULL, r), 1);
        ck_assert_uint_eq(F.idx[0], one);
        int row = match_row(&Y.matrix, NULL, F.dir[0]);
        ck_assert_int_ge(row, 0);
        count[row]++;
    }
    for (int k = 0; k < 3; k++) {
        double se = sqrt(p[k] * (1 - p[k]) / T);
        ck_assert_msg(fabs((double)count[k] / T - p[k]) < 5 * se, "row %d: %d/%d, want %g", k,
                      count[k], T, p[k]);
    }
    gsl_matrix_float_free(enc);
    gsl_rng_free(r);
}
END_TEST

Suite *make_reg_suite(void)
{
    Suite *s = suite_create("reg");
    TCase *tc = tcase_create("orth");
    tcase_add_test(tc, test_orth_by_hand);
    tcase_add_test(tc, test_orth_fd_reference);
    tcase_add_test(tc, test_orth_fd_float);
    tcase_add_test(tc, test_orth_blocks);
    tcase_add_test(tc, test_orth_adds);
    suite_add_tcase(s, tc);
    tc = tcase_create("prestd");
    tcase_add_test(tc, test_prestd_by_hand);
    tcase_add_test(tc, test_prestd_fd);
    suite_add_tcase(s, tc);
    tc = tcase_create("resample");
    tcase_add_test(tc, test_resample_basic);
    tcase_add_test(tc, test_resample_edges);
    tcase_add_test(tc, test_resample_rates);
    suite_add_tcase(s, tc);
    return s;
}
