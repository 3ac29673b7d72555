/* check_metrics.c: MMCS and reconstruction statistics on cases solved by
 * hand, and the blocked MMCS against a direct double-precision loop. */
#include <math.h>
#include <stdlib.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "helpers.h"
#include "superpose/metrics.h"

static gsl_matrix_float *random_dict(gsl_rng *rng, size_t k, size_t d)
{
    gsl_matrix_float *a = gsl_matrix_float_alloc(k, d);
    for (size_t t = 0; t < k * d; t++)
        a->data[t] = (float)gsl_ran_gaussian(rng, 1.0);
    return a;
}

START_TEST(test_mmcs_self_and_permuted)
{
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    const size_t k = 300, d = 40; /* k > 256: crosses a block boundary */
    gsl_matrix_float *a = random_dict(rng, k, d), *b = gsl_matrix_float_alloc(k, d);
    ck_assert_double_eq_tol(sp_metric_mmcs(a, a, NULL), 1.0, 1e-6);
    /* permuted rows, each scaled by a positive factor (sign kept) */
    size_t *perm = malloc(k * sizeof *perm);
    for (size_t i = 0; i < k; i++)
        perm[i] = i;
    gsl_ran_shuffle(rng, perm, k, sizeof *perm);
    for (size_t i = 0; i < k; i++)
        for (size_t j = 0; j < d; j++)
            gsl_matrix_float_set(b, i, j, (float)(i + 1) * 0.5f * gsl_matrix_float_get(a, perm[i], j));
    ck_assert_double_eq_tol(sp_metric_mmcs(a, b, NULL), 1.0, 1e-6);
    ck_assert_double_eq_tol(sp_metric_mmcs(b, a, NULL), 1.0, 1e-6);
    free(perm);
    gsl_matrix_float_free(b);
    gsl_matrix_float_free(a);
    gsl_rng_free(rng);
}
END_TEST

START_TEST(test_mmcs_by_hand)
{
    /* A = {e1, e2}, B = {(e1 + e2)/sqrt 2 scaled by 3, -e1}:
     * best for e1: max(1/sqrt2, -1) = 0.70711; for e2: 1/sqrt2 -> MMCS = 0.70711.
     * Reverse: (e1+e2)/sqrt2 -> 1/sqrt2; -e1 -> max(-1, 0) = 0 -> 0.35355. */
    gsl_matrix_float *a = gsl_matrix_float_calloc(2, 2), *b = gsl_matrix_float_calloc(2, 2);
    gsl_matrix_float_set(a, 0, 0, 1);
    gsl_matrix_float_set(a, 1, 1, 1);
    gsl_matrix_float_set(b, 0, 0, 3);
    gsl_matrix_float_set(b, 0, 1, 3);
    gsl_matrix_float_set(b, 1, 0, -1);
    double best[2];
    ck_assert_double_eq_tol(sp_metric_mmcs(a, b, best), 0.70710678118654752, 1e-6);
    ck_assert_double_eq_tol(best[0], 0.70710678118654752, 1e-6);
    ck_assert_double_eq_tol(sp_metric_mmcs(b, a, NULL), 0.5 * 0.70710678118654752, 1e-6);
    /* an all-negated orthonormal basis: every cosine is 0 or -1 -> 0 */
    gsl_matrix_float_scale(a, -1.0f);
    gsl_matrix_float *e = gsl_matrix_float_calloc(2, 2);
    gsl_matrix_float_set(e, 0, 0, 1);
    gsl_matrix_float_set(e, 1, 1, 1);
    ck_assert_double_eq_tol(sp_metric_mmcs(e, a, NULL), 0.0, 1e-7);
    /* widths differ or empty: NaN */
    gsl_matrix_float *w = gsl_matrix_float_calloc(2, 3);
    ck_assert(isnan(sp_metric_mmcs(e, w, NULL)));
    gsl_matrix_float_free(w);
    gsl_matrix_float_free(e);
    gsl_matrix_float_free(b);
    gsl_matrix_float_free(a);
}
END_TEST

START_TEST(test_mmcs_against_direct)
{
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 9);
    const size_t na = 600, nb = 130, d = 17;
    gsl_matrix_float *a = random_dict(rng, na, d), *b = random_dict(rng, nb, d);
    double ref = 0;
    for (size_t i = 0; i < na; i++) {
        double best = -2;
        for (size_t j = 0; j < nb; j++) {
            double dot = 0, n1 = 0, n2 = 0;
            for (size_t t = 0; t < d; t++) {
                double u = gsl_matrix_float_get(a, i, t), v = gsl_matrix_float_get(b, j, t);
                dot += u * v;
                n1 += u * u;
                n2 += v * v;
            }
            best = fmax(best, dot / sqrt(n1 * n2));
        }
        ref += best / na;
    }
    ck_assert_double_eq_tol(sp_metric_mmcs(a, b, NULL), ref, 1e-5);
    gsl_matrix_float_free(b);
    gsl_matrix_float_free(a);
    gsl_rng_free(rng);
}
END_TEST

/* Three samples in 2-D, two latents, by hand:
 *   x = (1,0), (0,1), (1,1); mean (2/3, 2/3)
 *   SST = sum ||x - mean||^2 = (1/9+4/9) + (4/9+1/9) + (1/9+1/9) = 12/9
 *   x_hat = (1,0), (0,0), (1,1): SSE = 1 -> MSE = 1/(3*2), FVE = 1 - 9/12
 *   codes: (1,0), (0,0), (2,0): L0 = 2/3, latent 1 dead. */
START_TEST(test_recon_by_hand)
{
    float xs[] = {1, 0, 0, 1, 1, 1}, hs[] = {1, 0, 0, 0, 1, 1}, fs[] = {1, 0, 0, 0, 2, 0};
    gsl_matrix_float_view x = gsl_matrix_float_view_array(xs, 3, 2);
    gsl_matrix_float_view h = gsl_matrix_float_view_array(hs, 3, 2);
    gsl_matrix_float_view f = gsl_matrix_float_view_array(fs, 3, 2);
    sp_recon_acc *acc = sp_recon_acc_alloc(2, 2);
    /* added in two pieces: the accumulator must not care */
    gsl_matrix_float_view x1 = gsl_matrix_float_submatrix(&x.matrix, 0, 0, 1, 2);
    gsl_matrix_float_view h1 = gsl_matrix_float_submatrix(&h.matrix, 0, 0, 1, 2);
    gsl_matrix_float_view f1 = gsl_matrix_float_submatrix(&f.matrix, 0, 0, 1, 2);
    gsl_matrix_float_view x2 = gsl_matrix_float_submatrix(&x.matrix, 1, 0, 2, 2);
    gsl_matrix_float_view h2 = gsl_matrix_float_submatrix(&h.matrix, 1, 0, 2, 2);
    gsl_matrix_float_view f2 = gsl_matrix_float_submatrix(&f.matrix, 1, 0, 2, 2);
    sp_recon_acc_add(acc, &x1.matrix, &h1.matrix, &f1.matrix);
    sp_recon_acc_add(acc, &x2.matrix, &h2.matrix, &f2.matrix);
    sp_recon_stats st;
    sp_recon_acc_finish(acc, &st);
    ck_assert_double_eq_tol(st.mse, 1.0 / 6, 1e-12);
    ck_assert_double_eq_tol(st.fve, 0.25, 1e-12);
    ck_assert_double_eq_tol(st.l0, 2.0 / 3, 1e-12);
    ck_assert_uint_eq(st.dead, 1);
    sp_recon_acc_free(acc);
    /* perfect reconstruction: FVE 1; the mean as reconstruction: FVE 0 */
    acc = sp_recon_acc_alloc(2, 2);
    sp_recon_acc_add(acc, &x.matrix, &x.matrix, &f.matrix);
    sp_recon_acc_finish(acc, &st);
    ck_assert_double_eq_tol(st.fve, 1.0, 1e-12);
    sp_recon_acc_free(acc);
    float ms[] = {2.f / 3, 2.f / 3, 2.f / 3, 2.f / 3, 2.f / 3, 2.f / 3};
    gsl_matrix_float_view mv = gsl_matrix_float_view_array(ms, 3, 2);
    acc = sp_recon_acc_alloc(2, 2);
    sp_recon_acc_add(acc, &x.matrix, &mv.matrix, &f.matrix);
    sp_recon_acc_finish(acc, &st);
    ck_assert_double_eq_tol(st.fve, 0.0, 1e-6);
    sp_recon_acc_free(acc);
}
END_TEST

Suite *make_metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_mmcs_self_and_permuted);
    tcase_add_test(tc, test_mmcs_by_hand);
    tcase_add_test(tc, test_mmcs_against_direct);
    tcase_add_test(tc, test_recon_by_hand);
    suite_add_tcase(s, tc);
    return s;
}
