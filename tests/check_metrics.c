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

/* Best match by hand: truth e1, e2, e3 in 3-D; latent rows
 *   (1, 0.1, 0) -> e1, (0, -1, 0) -> cos -1 with e2, 0 with e1 and e3:
 *   the largest is 0, first at e1 (ties to the lower index),
 *   (0.6, 0, 0.8) -> e3 (cos 0.8), (0, 0, 0) -> e1 with cos 0. */
START_TEST(test_best_match_by_hand)
{
    float ts[] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    float ds[] = {1, 0.1f, 0, 0, -1, 0, 0.6f, 0, 0.8f, 0, 0, 0};
    gsl_matrix_float_view t = gsl_matrix_float_view_array(ts, 3, 3);
    gsl_matrix_float_view dv = gsl_matrix_float_view_array(ds, 4, 3);
    size_t match[4];
    double cs[4];
    ck_assert_int_eq(sp_metric_best_match(&dv.matrix, &t.matrix, match, cs), 0);
    ck_assert_uint_eq(match[0], 0);
    ck_assert_double_eq_tol(cs[0], 1 / sqrt(1.01), 1e-6);
    ck_assert_uint_eq(match[1], 0);
    ck_assert_double_eq_tol(cs[1], 0, 1e-7);
    ck_assert_uint_eq(match[2], 2);
    ck_assert_double_eq_tol(cs[2], 0.8, 1e-6);
    ck_assert_uint_eq(match[3], 0);
    ck_assert_double_eq(cs[3], 0);
    gsl_matrix_float_view bad = gsl_matrix_float_view_array(ds, 6, 2);
    ck_assert_int_eq(sp_metric_best_match(&bad.matrix, &t.matrix, match, NULL), -1);
}
END_TEST

/* Support precision and recall by hand. Four latents standing for truth
 * features 0, 1, 1, 2 (latents 1 and 2 split feature 1). Samples:
 *   true {0, 1}, codes on latents {0, 1, 2}: 3 active, all hits; features
 *     0 and 1 covered (1 once, though two latents stand for it)
 *   true {2},    codes on latents {0}:       1 active, a miss; 2 uncovered
 *   true {},     codes on latents {3}:       1 active, a miss
 *   true {1, 2}, codes none
 * precision = 3 / 5, recall = 2 / 5 (covered 0, 1 of 5 true), F1 = 12/25 / 1 = 0.48. */
START_TEST(test_support_by_hand)
{
    size_t match[] = {0, 1, 1, 2};
    float fs[] = {0.5f, 1, 2, 0, /**/ 3, 0, 0, 0, /**/ 0, 0, 0, -1, /**/ 0, 0, 0, 0};
    size_t row[] = {0, 2, 3, 3, 5};
    uint32_t idx[] = {0, 1, 2, 1, 2};
    gsl_matrix_float_view f = gsl_matrix_float_view_array(fs, 4, 4);
    sp_support_acc *a = sp_support_acc_alloc(match, 4, 3);
    /* in two pieces, with the compressed rows of each piece */
    gsl_matrix_float_view f1 = gsl_matrix_float_submatrix(&f.matrix, 0, 0, 1, 4);
    gsl_matrix_float_view f2 = gsl_matrix_float_submatrix(&f.matrix, 1, 0, 3, 4);
    size_t row2[] = {0, 1, 1, 3};
    uint32_t idx2[] = {2, 1, 2};
    sp_support_acc_add(a, &f1.matrix, row, idx);
    sp_support_acc_add(a, &f2.matrix, row2, idx2);
    double p, r, f1s;
    sp_support_acc_finish(a, &p, &r, &f1s);
    ck_assert_double_eq_tol(p, 0.6, 1e-12);
    ck_assert_double_eq_tol(r, 0.4, 1e-12);
    ck_assert_double_eq_tol(f1s, 2 * 0.6 * 0.4 / 1.0, 1e-12);
    sp_support_acc_free(a);
    /* nothing active at all: precision undefined, recall 0 */
    a = sp_support_acc_alloc(match, 4, 3);
    float zs[16] = {0};
    gsl_matrix_float_view z = gsl_matrix_float_view_array(zs, 4, 4);
    sp_support_acc_add(a, &z.matrix, row, idx);
    sp_support_acc_finish(a, &p, &r, &f1s);
    ck_assert(isnan(p));
    ck_assert_double_eq(r, 0);
    sp_support_acc_free(a);
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
    tcase_add_test(tc, test_best_match_by_hand);
    tcase_add_test(tc, test_support_by_hand);
    suite_add_tcase(s, tc);
    return s;
}
