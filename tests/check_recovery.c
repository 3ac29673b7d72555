/* check_recovery.c: the recovery metrics on cases solved by hand, and the
 * Hungarian assignment against brute force over every injection. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "helpers.h"
#include "superpose/recovery.h"

/* ---- Hungarian against brute force ------------------------------------------- */

/* Minimum over injections of the smaller side into the larger one. */
static void brute_rec(const double *cost, size_t r, size_t c, size_t k, unsigned used,
                      double acc, double *best)
{
    int tr = r > c;
    size_t nsmall = tr ? c : r, nlarge = tr ? r : c;
    if (k == nsmall) {
        *best = acc < *best ? acc : *best;
        return;
    }
    for (size_t l = 0; l < nlarge; l++) {
        if (used & (1u << l))
            continue;
        double v = tr ? cost[l * c + k] : cost[k * c + l];
        brute_rec(cost, r, c, k + 1, used | (1u << l), acc + v, best);
    }
}

static double brute(const double *cost, size_t r, size_t c)
{
    double best = INFINITY;
    brute_rec(cost, r, c, 0, 0, 0.0, &best);
    return best;
}

/* The assignment is an injection of min(r, c) pairs whose cost is the total. */
static void check_assignment(const double *cost, size_t r, size_t c, const long *rc,
                             double total)
{
    size_t k = r < c ? r : c, assigned = 0;
    unsigned seen = 0;
    double s = 0;
    for (size_t i = 0; i < r; i++) {
        ck_assert(rc[i] >= -1 && rc[i] < (long)c);
        if (rc[i] < 0)
            continue;
        ck_assert(!(seen & (1u << rc[i])));
        seen |= 1u << rc[i];
        s += cost[i * c + (size_t)rc[i]];
        assigned++;
    }
    ck_assert_uint_eq(assigned, k);
    ck_assert_double_eq_tol(s, total, 1e-9);
}

static void hungarian_vs_brute(gsl_rng *rng, size_t r, size_t c, int integer, int reps)
{
    double cost[64];
    long rc[8], rc2[8];
    for (int rep = 0; rep < reps; rep++) {
        for (size_t t = 0; t < r * c; t++)
            cost[t] = integer ? (double)gsl_rng_uniform_int(rng, 4)
                              : gsl_ran_gaussian(rng, 1.0);
        double h = sp_hungarian(cost, r, c, rc);
        double b = brute(cost, r, c);
        if (integer)
            ck_assert_double_eq(h, b); /* integer costs: exact */
        else
            ck_assert_double_eq_tol(h, b, 1e-12);
        check_assignment(cost, r, c, rc, h);
        /* deterministic: the same assignment again */
        sp_hungarian(cost, r, c, rc2);
        ck_assert_mem_eq(rc, rc2, r * sizeof *rc);
    }
}

START_TEST(test_hungarian_brute_force)
{
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 11);
    hungarian_vs_brute(rng, 6, 6, 0, 300);
    hungarian_vs_brute(rng, 6, 6, 1, 300); /* costs in {0..3}: many ties */
    const size_t shapes[][2] = {{4, 6}, {6, 4}, {1, 5}, {5, 1}, {3, 7}, {7, 3}, {2, 2}, {1, 1}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        hungarian_vs_brute(rng, shapes[s][0], shapes[s][1], 0, 100);
        hungarian_vs_brute(rng, shapes[s][0], shapes[s][1], 1, 100);
    }
    gsl_rng_free(rng);
}
END_TEST

START_TEST(test_hungarian_by_hand)
{
    /* the classic 3 x 3: rows pick columns 1, 0, 2 (cost 2 + 3 + 2 = 7)
     *   4 2 8
     *   3 7 5
     *   9 6 2 */
    double a[] = {4, 2, 8, 3, 7, 5, 9, 6, 2};
    long rc[3];
    ck_assert_double_eq(sp_hungarian(a, 3, 3, rc), 7);
    ck_assert_int_eq(rc[0], 1);
    ck_assert_int_eq(rc[1], 0);
    ck_assert_int_eq(rc[2], 2);
    /* all ties: any injection costs 3 x 5; still a valid one */
    double t[12];
    for (int i = 0; i < 12; i++)
        t[i] = 5;
    long r4[4];
    ck_assert_double_eq(sp_hungarian(t, 4, 3, r4), 15);
    check_assignment(t, 4, 3, r4, 15);
    /* 3 rows, 1 column: the cheapest row takes it, the others get -1 */
    double col[] = {3, -1, 2};
    ck_assert_double_eq(sp_hungarian(col, 3, 1, rc), -1);
    ck_assert_int_eq(rc[0], -1);
    ck_assert_int_eq(rc[1], 0);
    ck_assert_int_eq(rc[2], -1);
    /* not finite: NaN; empty: nothing assigned, cost 0 */
    a[4] = NAN;
    ck_assert(isnan(sp_hungarian(a, 3, 3, rc)));
    a[4] = INFINITY;
    ck_assert(isnan(sp_hungarian(a, 3, 3, rc)));
    ck_assert_double_eq(sp_hungarian(a, 3, 0, rc), 0);
    ck_assert_int_eq(rc[2], -1);
    ck_assert_double_eq(sp_hungarian(NULL, 0, 4, NULL), 0);
}
END_TEST

/* ---- MCC and uniqueness ----------------------------------------------------- */

static gsl_matrix_float *unit_gaussian(gsl_rng *rng, size_t k, size_t d)
{
    gsl_matrix_float *a = gsl_matrix_float_alloc(k, d);
    for (size_t i = 0; i < k; i++) {
        double n2 = 0;
        for (size_t j = 0; j < d; j++) {
            double v = gsl_ran_gaussian(rng, 1.0);
            gsl_matrix_float_set(a, i, j, (float)v);
            n2 += v * v;
        }
        for (size_t j = 0; j < d; j++)
            gsl_matrix_float_set(a, i, j, (float)(gsl_matrix_float_get(a, i, j) / sqrt(n2)));
    }
    return a;
}

/* rows of a k x d matrix from doubles */
static gsl_matrix_float *mat(size_t k, size_t d, const double *v)
{
    gsl_matrix_float *a = gsl_matrix_float_alloc(k, d);
    for (size_t t = 0; t < k * d; t++)
        a->data[t] = (float)v[t];
    return a;
}

START_TEST(test_mcc_permuted)
{
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 5);
    const size_t n = 40, d = 16, extra = 7;
    gsl_matrix_float *g = unit_gaussian(rng, n, d);
    gsl_matrix_float *dec = unit_gaussian(rng, n + extra, d);
    size_t perm[40];
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    gsl_ran_shuffle(rng, perm, n, sizeof *perm);
    /* latent perm[t] = +-(0.5 + t) g_t; rows n.. random */
    for (size_t t = 0; t < n; t++) {
        double s = (gsl_rng_uniform(rng) < 0.5 ? -1 : 1) * (0.5 + (double)t);
        for (size_t j = 0; j < d; j++)
            gsl_matrix_float_set(dec, perm[t], j, (float)(s * gsl_matrix_float_get(g, t, j)));
    }
    long map[40];
    gsl_matrix_float_view sq = gsl_matrix_float_submatrix(dec, 0, 0, n, d);
    ck_assert_double_eq_tol(sp_metric_mcc(&sq.matrix, g, map), 1.0, 1e-6);
    for (size_t t = 0; t < n; t++)
        ck_assert_int_eq(map[t], (long)perm[t]);
    /* m > n: the extra random latents change nothing */
    ck_assert_double_eq_tol(sp_metric_mcc(dec, g, map), 1.0, 1e-6);
    for (size_t t = 0; t < n; t++)
        ck_assert_int_eq(map[t], (long)perm[t]);
    /* uniqueness matches by signed cosine: with the signs made positive
     * the permutation gives 1 */
    for (size_t t = 0; t < n; t++) {
        double s = 0.5 + (double)t;
        for (size_t j = 0; j < d; j++)
            gsl_matrix_float_set(dec, perm[t], j, (float)(s * gsl_matrix_float_get(g, t, j)));
    }
    ck_assert_double_eq_tol(sp_metric_uniqueness(&sq.matrix, g), 1.0, 1e-12);
    gsl_matrix_float_free(dec);
    gsl_matrix_float_free(g);
    gsl_rng_free(rng);
}
END_TEST

/* Truth e0, e1 in R^4; unit latents
 *   l0 = (0.6, 0.55, sqrt(0.3375), 0), l1 = (-0.5, 0.1, 0, sqrt(0.74)), l2 = e2.
 * |cos|: t0: 0.6, 0.5, 0     t1: 0.55, 0.1, 0.
 * Greedy (largest first) takes t0-l0 (0.6), then t1-l1 (0.1): mean 0.35.
 * Hungarian: t0-l1 + t1-l0 = 0.5 + 0.55 = 1.05 > 0.7 (the only other
 * pairings with l2 give 0.6 + 0 or 0.5 + 0 or 0.55 + 0 or 0.1 + 0): 0.525.
 * The sign of l1's cosine with t0 does not matter (|cos|). */
START_TEST(test_mcc_by_hand)
{
    const double t[] = {1, 0, 0, 0, 0, 1, 0, 0};
    const double l[] = {0.6, 0.55, sqrt(0.3375), 0, -0.5, 0.1, 0, sqrt(0.74), 0, 0, 1, 0};
    gsl_matrix_float *g = mat(2, 4, t), *dec = mat(3, 4, l);
    long map[2];
    ck_assert_double_eq_tol(sp_metric_mcc(dec, g, map), 0.525, 1e-6);
    ck_assert_int_eq(map[0], 1);
    ck_assert_int_eq(map[1], 0);
    ck_assert_double_eq_tol(sp_metric_mcc(dec, g, NULL), 0.525, 1e-6);
    gsl_matrix_float_free(dec);
    gsl_matrix_float_free(g);

    /* m < n: truth e0, e1, e2; latents -e2 and 3 (e0 + e1): pairs
     * t2-l0 (|cos| 1) and one of t0, t1 with l1 (1/sqrt 2); the mean over
     * min(n, m) = 2 pairs is (1 + 0.70711) / 2. */
    const double t3[] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    const double l2[] = {0, 0, -1, 3, 3, 0};
    g = mat(3, 3, t3);
    dec = mat(2, 3, l2);
    long m3[3];
    ck_assert_double_eq_tol(sp_metric_mcc(dec, g, m3), (1 + sqrt(0.5)) / 2, 1e-6);
    ck_assert_int_eq(m3[2], 0);
    ck_assert((m3[0] == 1 && m3[1] == -1) || (m3[0] == -1 && m3[1] == 1));
    /* bad shapes */
    gsl_matrix_float *w = gsl_matrix_float_calloc(2, 4);
    ck_assert(isnan(sp_metric_mcc(w, g, m3)));
    ck_assert_int_eq(m3[0], -1);
    gsl_matrix_float empty = {0, 3, 3, NULL, NULL, 0};
    ck_assert(isnan(sp_metric_mcc(&empty, g, NULL)));
    ck_assert(isnan(sp_metric_mcc(dec, &empty, NULL)));
    ck_assert(isnan(sp_metric_mcc(NULL, g, NULL)));
    ck_assert(isnan(sp_metric_uniqueness(w, g)));
    ck_assert(isnan(sp_metric_uniqueness(&empty, g)));
    gsl_matrix_float_free(w);
    gsl_matrix_float_free(dec);
    gsl_matrix_float_free(g);
}
END_TEST

/* Truth e0..e3 in R^4. Three latents all near e0: one distinct best match
 * out of 3 latents -> 1/3. Latents e0, e0 + 0.1 e3, e1, e2: {0, 1, 2} -> 3/4.
 * A permutation of the truth (with signs kept positive): 4/4. */
START_TEST(test_uniqueness_by_hand)
{
    const double t[] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    const double pile[] = {1, 0.1, 0, 0, 1, 0, 0.2, 0, 2, 0, 0, -0.3};
    const double three[] = {1, 0, 0, 0, 1, 0, 0, 0.1, 0, 1, 0, 0, 0, 0, 1, 0};
    const double perm[] = {0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0};
    gsl_matrix_float *g = mat(4, 4, t), *a = mat(3, 4, pile), *b = mat(4, 4, three),
                     *c = mat(4, 4, perm);
    ck_assert_double_eq_tol(sp_metric_uniqueness(a, g), 1.0 / 3, 1e-12);
    ck_assert_double_eq_tol(sp_metric_uniqueness(b, g), 0.75, 1e-12);
    ck_assert_double_eq_tol(sp_metric_uniqueness(c, g), 1.0, 1e-12);
    gsl_matrix_float_free(c);
    gsl_matrix_float_free(b);
    gsl_matrix_float_free(a);
    gsl_matrix_float_free(g);
}
END_TEST

/* ---- firing ------------------------------------------------------------------- */

/* Five latents standing for truth 0, 1, 2, 0, 3; decoder norms 2, 1, 1, 1, 1.
 *   s0: true {0: 1, 1: 2}   f = (0.25, 2, 0, 0, 0)
 *   s1: true {0: 2}         f = (0.5, 0, 1, 0, 0)
 *   s2: true {1: 1}         f = (0, 0, 0, 0, 0.7)
 *   s3: true {2: 4}         f = (0, 0, 1, 0, 0)
 * l0: fires s0, s1, feature 0 on s0, s1: P = 1, R = 1, F1 = 1;
 *     z = 0.25*2, 0.5*2 = 0.5, 1 against c = 1, 2: ratios 0.5, 0.5 (half
 *     the true magnitude)
 * l1: fires s0; feature 1 on s0, s2: P = 1, R = 1/2, F1 = 2/3; ratio 2/2 = 1
 * l2: fires s1, s3; feature 2 on s3: P = 1/2, R = 1, F1 = 2/3; ratio 1/4
 * l3: never fires -> NaN; l4: fires, but feature 3 never does -> NaN.
 * Means over l0..l2: P = 2.5/3, R = 2.5/3, F1 = (1 + 4/3)/3 = 7/9;
 * shrinkage = (0.5 + 0.5 + 1 + 0.25) / 4 = 0.5625. */
START_TEST(test_firing_by_hand)
{
    size_t match[] = {0, 1, 2, 0, 3};
    double dnorm[] = {2, 1, 1, 1, 1};
    float fs[] = {0.25f, 2, 0, 0, 0, /**/ 0.5f, 0, 1, 0, 0, /**/ 0, 0, 0, 0, 0.7f,
                  /**/ 0, 0, 1, 0, 0};
    gsl_matrix_float_view f = gsl_matrix_float_view_array(fs, 4, 5);
    gsl_matrix_float_view f1 = gsl_matrix_float_submatrix(&f.matrix, 0, 0, 2, 5);
    gsl_matrix_float_view f2 = gsl_matrix_float_submatrix(&f.matrix, 2, 0, 2, 5);
    size_t row1[] = {0, 2, 3}, row2[] = {0, 1, 2};
    uint32_t idx1[] = {0, 1, 0}, idx2[] = {1, 2};
    float val1[] = {1, 2, 2}, val2[] = {1, 4};
    sp_firing_acc *a = sp_firing_acc_alloc(match, dnorm, 5, 4);
    ck_assert_ptr_nonnull(a);
    dnorm[0] = 99; /* copied at alloc */
    sp_firing_acc_add(a, &f1.matrix, row1, idx1, val1);
    sp_firing_acc_add(a, &f2.matrix, row2, idx2, val2);
    sp_firing_stats st;
    double pl[15];
    sp_firing_acc_finish(a, &st, pl);
    const double want[] = {1, 1, 1, 1, 0.5, 2.0 / 3, 0.5, 1, 2.0 / 3};
    for (int k = 0; k < 9; k++)
        ck_assert_double_eq_tol(pl[k], want[k], 1e-12);
    for (int k = 9; k < 15; k++)
        ck_assert(isnan(pl[k]));
    ck_assert_double_eq_tol(st.precision, 2.5 / 3, 1e-12);
    ck_assert_double_eq_tol(st.recall, 2.5 / 3, 1e-12);
    ck_assert_double_eq_tol(st.f1, 7.0 / 9, 1e-12);
    ck_assert_double_eq_tol(st.shrinkage, 0.5625, 1e-12);
    sp_firing_acc_free(a);
    /* only l0 and its feature: shrinkage 0.5 (half the true magnitude) */
    size_t m0[] = {0};
    double n0[] = {2};
    gsl_matrix_float_view c0 = gsl_matrix_float_submatrix(&f.matrix, 0, 0, 2, 1);
    a = sp_firing_acc_alloc(m0, n0, 1, 4);
    sp_firing_acc_add(a, &c0.matrix, row1, idx1, val1);
    sp_firing_acc_finish(a, &st, NULL);
    ck_assert_double_eq_tol(st.shrinkage, 0.5, 1e-12);
    ck_assert_double_eq_tol(st.f1, 1.0, 1e-12);
    sp_firing_acc_free(a);
    /* nothing seen: NaN everywhere */
    a = sp_firing_acc_alloc(match, dnorm, 5, 4);
    sp_firing_acc_finish(a, &st, NULL);
    ck_assert(isnan(st.precision) && isnan(st.recall) && isnan(st.f1) && isnan(st.shrinkage));
    sp_firing_acc_free(a);
    /* a match outside the truth, or nothing to measure: NULL */
    ck_assert_ptr_null(sp_firing_acc_alloc(match, dnorm, 5, 3));
    ck_assert_ptr_null(sp_firing_acc_alloc(match, dnorm, 0, 4));
    sp_firing_acc_free(NULL);
}
END_TEST

/* ---- splitting ----------------------------------------------------------------- */

/* Truth e0..e3 in R^8. The truth itself: one latent per feature -> 1.
 * Feature 0 split three ways, e0 + 0.2 e4, e0 + 0.2 e5, e0 + 0.2 e6 (cos
 * 1/sqrt(1.04) = 0.98 > 0.9 with e0, 0 with the others), plus e1..e3:
 * counts 3, 1, 1, 1 -> (n - 1 + 3) / n = 6/4. */
START_TEST(test_split_count_by_hand)
{
    double t[32] = {0}, s[48] = {0};
    for (int i = 0; i < 4; i++)
        t[i * 8 + i] = 1;
    for (int k = 0; k < 3; k++) {
        s[k * 8] = 1;
        s[k * 8 + 4 + k] = 0.2;
    }
    for (int i = 1; i < 4; i++)
        s[(2 + i) * 8 + i] = 1;
    gsl_matrix_float *g = mat(4, 8, t), *dec = mat(6, 8, s);
    size_t counts[4];
    ck_assert_double_eq_tol(sp_metric_split_count(g, g, 0.9, counts), 1.0, 1e-12);
    ck_assert_double_eq_tol(sp_metric_split_count(dec, g, 0.9, counts), 1.5, 1e-12);
    ck_assert_uint_eq(counts[0], 3);
    ck_assert_uint_eq(counts[1], 1);
    ck_assert_uint_eq(counts[3], 1);
    /* above the split latents' cosine: feature 0 has none */
    ck_assert_double_eq_tol(sp_metric_split_count(dec, g, 0.99, counts), 0.75, 1e-12);
    ck_assert_uint_eq(counts[0], 0);
    gsl_matrix_float *w = gsl_matrix_float_calloc(2, 3);
    ck_assert(isnan(sp_metric_split_count(w, g, 0.9, NULL)));
    gsl_matrix_float_free(w);
    gsl_matrix_float_free(dec);
    gsl_matrix_float_free(g);
}
END_TEST

/* N = 60 samples, the feature on for b < 15 (n1 = 15, n0 = 45).
 * F1 of a probe predicting TP true and FP false positives: 2 TP / (TP + FP + 15);
 * "all positive" gives 30 / 75 = 0.4.
 * Split: latent j < 3 fires 1 on b in [5j, 5j + 5), latent 3 fires on
 * every negative (weight -1: never a candidate). Weights 1/3 each (ties to
 * the lower index). k = 1: TP 5 -> 10/20 = 0.5; k = 2: TP 10 -> 20/25 =
 * 0.8; k = 3: 30/30 = 1. Gains 0.3, 0.2 > 0.03 -> 3 latents, F1 1.
 * With min_gain 0.25 the third gain (0.2) stops at 2 (F1 0.8); max_k 2: 2. */
START_TEST(test_probe_count_split)
{
    enum { N = 60, m = 4 };
    float F[N * m] = {0};
    uint8_t y[N];
    for (int b = 0; b < N; b++) {
        y[b] = b < 15;
        if (b < 15)
            F[b * m + b / 5] = 1;
        else
            F[b * m + 3] = 1;
    }
    double f1;
    ck_assert_uint_eq(sp_metric_probe_count(F, N, m, y, 0.03, 0, &f1), 3);
    ck_assert_double_eq_tol(f1, 1.0, 1e-12);
    ck_assert_uint_eq(sp_metric_probe_count(F, N, m, y, 0.25, 0, &f1), 2);
    ck_assert_double_eq_tol(f1, 0.8, 1e-12);
    ck_assert_uint_eq(sp_metric_probe_count(F, N, m, y, 0.03, 2, &f1), 2);
    ck_assert_double_eq_tol(f1, 0.8, 1e-12);
    ck_assert_uint_eq(sp_metric_probe_count(F, N, m, y, 0.03, 1, &f1), 1);
    ck_assert_double_eq_tol(f1, 0.5, 1e-12);
}
END_TEST

/* Same samples. Clean: latent 0 fires 1 on every positive -> 1, F1 1.
 * Adds nothing: latent 1 also fires on positives 0..4 and negatives 15..19
 * (weight 5/15 - 5/45 > 0): the best k = 2 threshold is 1 (TP 15, FP 5:
 * 30/35 = 0.857 < 1) -> 1.
 * Small gain: latent 0 misses positive 14 (F1 28/29 = 0.9655), latent 1
 * fires on 14 and on negative 15 (weight 1/15 - 1/45): k = 2 gives 30/31 =
 * 0.9677, a gain of 0.0022 < 0.03 -> 1, F1 28/29.
 * Never on / no correlated latent / always on: 0. */
START_TEST(test_probe_count_clean)
{
    enum { N = 60, m = 3 };
    float F[N * m];
    uint8_t y[N];
    double f1;
    memset(F, 0, sizeof F);
    for (int b = 0; b < N; b++) {
        y[b] = b < 15;
        F[b * m] = b < 15;
        F[b * m + 1] = b < 5 || (b >= 15 && b < 20);
        F[b * m + 2] = b >= 30; /* negatives only */
    }
    ck_assert_uint_eq(sp_metric_probe_count(F, N, m, y, 0.03, 0, &f1), 1);
    ck_assert_double_eq_tol(f1, 1.0, 1e-12);
    memset(F, 0, sizeof F);
    for (int b = 0; b < N; b++) {
        F[b * m] = b < 14;
        F[b * m + 1] = b == 14 || b == 15;
    }
    ck_assert_uint_eq(sp_metric_probe_count(F, N, m, y, 0.03, 0, &f1), 1);
    ck_assert_double_eq_tol(f1, 28.0 / 29, 1e-12);
    ck_assert_uint_eq(sp_metric_probe_count(F, N, m, y, 0.001, 0, &f1), 2);
    ck_assert_double_eq_tol(f1, 30.0 / 31, 1e-12);
    /* no latent correlates: only the negatives-only latent fires */
    memset(F, 0, sizeof F);
    for (int b = 30; b < N; b++)
        F[b * m + 2] = 1;
    ck_assert_uint_eq(sp_metric_probe_count(F, N, m, y, 0.03, 0, &f1), 0);
    ck_assert(isnan(f1));
    memset(y, 0, sizeof y);
    ck_assert_uint_eq(sp_metric_probe_count(F, N, m, y, 0.03, 0, &f1), 0);
    memset(y, 1, sizeof y);
    ck_assert_uint_eq(sp_metric_probe_count(F, N, m, y, 0.03, 0, &f1), 0);
    ck_assert_uint_eq(sp_metric_probe_count(NULL, N, m, y, 0.03, 0, NULL), 0);
}
END_TEST

/* ---- absorption ------------------------------------------------------------------ */

/* The hand-built absorbing SAE of Chanin et al. 2024 (App. A.2) in R^4,
 * truth g_p = e0, g_c = e1 (child fires only with the parent), g_o = e2:
 *   latent 0 (parent): encoder g_p - delta g_c,       decoder g_p
 *   latent 1 (child):  encoder sqrt(1 + delta^2) g_c, decoder (g_c + delta g_p) / sqrt(1 + delta^2)
 *   latent 2 (other):  encoder g_o,                   decoder g_o
 * f = ReLU(E x). For delta <= 1 on unit magnitudes:
 *   x = g_p:        f = (1, 0, 0)
 *   x = g_p + g_c:  f = (1 - delta, sqrt(1 + delta^2), 0); D^T f = g_p + g_c
 *   x = g_o (+...): f_2 = 1
 * so the reconstruction is perfect and the parent latent gives up delta of
 * the parent direction to the child latent. On a parent-and-child sample:
 *   P = 1, cos(d_1, g_p) = delta / sqrt(1 + delta^2) (>= 0.1 for delta >= 0.1),
 *   c_1 = sqrt(1 + delta^2) * 1 * cos = delta = S,  M = c_0 = 1 - delta.
 * delta = 1: M = 0, S / P = 1 -> fraction 1; main silent, top latent 1
 *   (cos 0.707, c / P = 1) -> full; recall hole.
 * delta = 0.5: M = 0.5, S = 0.5, P = 1: min(S, P - M) = 0.5 ->
 *   0.5 / (0.5 + 0.5) = 0.5; main fires -> not full, no hole.
 * Parent-only samples: M = P = 1 -> 0, not full. */
static void delta_sae(double delta, gsl_matrix_float **dec, gsl_matrix_float **enc)
{
    double s = sqrt(1 + delta * delta);
    const double D[] = {1, 0, 0, 0, delta / s, 1 / s, 0, 0, 0, 0, 1, 0};
    const double E[] = {1, -delta, 0, 0, 0, s, 0, 0, 0, 0, 1, 0};
    *dec = mat(3, 4, D);
    *enc = mat(3, 4, E);
}

/* f = ReLU(x E^T), checking that D^T f reconstructs x */
static gsl_matrix_float *encode(const gsl_matrix_float *x, const gsl_matrix_float *enc,
                                const gsl_matrix_float *dec)
{
    gsl_matrix_float *f = gsl_matrix_float_alloc(x->size1, enc->size1);
    for (size_t b = 0; b < x->size1; b++) {
        for (size_t j = 0; j < enc->size1; j++) {
            double s = 0;
            for (size_t k = 0; k < x->size2; k++)
                s += gsl_matrix_float_get(x, b, k) * gsl_matrix_float_get(enc, j, k);
            gsl_matrix_float_set(f, b, j, (float)(s > 0 ? s : 0));
        }
        for (size_t k = 0; k < x->size2; k++) {
            double r = 0;
            for (size_t j = 0; j < enc->size1; j++)
                r += gsl_matrix_float_get(f, b, j) * gsl_matrix_float_get(dec, j, k);
            ck_assert_double_eq_tol(r, gsl_matrix_float_get(x, b, k), 1e-6);
        }
    }
    return f;
}

/* Samples: 0 {p}, 1 {p, c}, 2 {o} (parent off: ignored), 3 {p, c, o}, 4 {p, o}. */
static const double xs_all[] = {1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0};
static const size_t row_all[] = {0, 1, 3, 4, 7, 9};
static const uint32_t idx_all[] = {0, 0, 1, 2, 0, 1, 2, 0, 2};

static void absorb_run(const gsl_matrix_float *dec, const gsl_matrix_float *truth,
                       const gsl_matrix_float *x, const gsl_matrix_float *f, const size_t *row,
                       const uint32_t *idx, sp_absorb_stats *st)
{
    size_t child = 1, main = 0;
    sp_absorb_acc *a = sp_absorb_acc_alloc(dec, truth, 0, &child, 1, &main, 1);
    ck_assert_ptr_nonnull(a);
    sp_absorb_acc_add(a, x, f, row, idx);
    sp_absorb_acc_finish(a, st);
    sp_absorb_acc_free(a);
}

START_TEST(test_absorption_delta_sae)
{
    const double t[] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0};
    gsl_matrix_float *g = mat(3, 4, t), *x = mat(5, 4, xs_all);
    /* the samples with parent and child only: rows 1 and 3 */
    gsl_matrix_float *xc = gsl_matrix_float_alloc(2, 4);
    for (size_t k = 0; k < 4; k++) {
        gsl_matrix_float_set(xc, 0, k, gsl_matrix_float_get(x, 1, k));
        gsl_matrix_float_set(xc, 1, k, gsl_matrix_float_get(x, 3, k));
    }
    const size_t row_c[] = {0, 2, 5};
    const uint32_t idx_c[] = {0, 1, 0, 1, 2};
    sp_absorb_stats st;
    gsl_matrix_float *dec, *enc, *f, *fc;

    /* perfect SAE: decoder = encoder = truth, codes = true codes */
    f = encode(x, g, g);
    absorb_run(g, g, x, f, row_all, idx_all, &st);
    ck_assert_uint_eq(st.samples, 4);
    ck_assert_uint_eq(st.with_child, 2);
    ck_assert_double_eq(st.fraction, 0);
    ck_assert_double_eq(st.full_rate, 0);
    ck_assert_double_eq(st.full_rate_child, 0);
    ck_assert_double_eq(st.recall_hole, 0);
    gsl_matrix_float_free(f);

    /* delta = 1: fully absorbed */
    delta_sae(1.0, &dec, &enc);
    f = encode(x, enc, dec);
    ck_assert_double_eq(gsl_matrix_float_get(f, 1, 0), 0);             /* parent silent */
    ck_assert_double_eq_tol(gsl_matrix_float_get(f, 1, 1), sqrt(2), 1e-6);
    fc = encode(xc, enc, dec);
    absorb_run(dec, g, xc, fc, row_c, idx_c, &st);
    ck_assert_double_eq_tol(st.fraction, 1, 1e-12);
    ck_assert_double_eq(st.full_rate, 1);
    ck_assert_double_eq(st.full_rate_child, 1);
    ck_assert_double_eq(st.recall_hole, 1);
    /* all samples: parent-only ones score 0 -> means over 4 samples */
    absorb_run(dec, g, x, f, row_all, idx_all, &st);
    ck_assert_uint_eq(st.samples, 4);
    ck_assert_double_eq_tol(st.fraction, 0.5, 1e-12);
    ck_assert_double_eq(st.full_rate, 0.5);
    ck_assert_double_eq(st.full_rate_child, 1);
    ck_assert_double_eq(st.recall_hole, 1);
    sp_absorb_weights w;
    sp_absorb_weights_of(dec, enc, g, 0, 1, 0, 1, &w);
    ck_assert_double_eq_tol(w.child_dec_parent, sqrt(0.5), 1e-6);
    ck_assert_double_eq_tol(w.parent_enc_child, -sqrt(0.5), 1e-6);
    gsl_matrix_float_free(fc);
    gsl_matrix_float_free(f);
    gsl_matrix_float_free(enc);
    gsl_matrix_float_free(dec);

    /* delta = 0.5: partial absorption, fraction 0.5 where the child is on */
    delta_sae(0.5, &dec, &enc);
    f = encode(x, enc, dec);
    ck_assert_double_eq_tol(gsl_matrix_float_get(f, 1, 0), 0.5, 1e-7);
    fc = encode(xc, enc, dec);
    absorb_run(dec, g, xc, fc, row_c, idx_c, &st);
    ck_assert_double_eq_tol(st.fraction, 0.5, 1e-6);
    ck_assert_double_eq(st.full_rate, 0);
    ck_assert_double_eq(st.recall_hole, 0);
    absorb_run(dec, g, x, f, row_all, idx_all, &st);
    ck_assert_double_eq_tol(st.fraction, 0.25, 1e-6);
    ck_assert_double_eq(st.full_rate, 0);
    /* weight signature: delta / sqrt(1 + delta^2) = 0.44721 */
    sp_absorb_weights_of(dec, enc, g, 0, 1, 0, 1, &w);
    ck_assert_double_eq_tol(w.child_dec_parent, 0.5 / sqrt(1.25), 1e-6);
    ck_assert_double_eq_tol(w.child_dec_child, 1 / sqrt(1.25), 1e-6);
    ck_assert_double_eq_tol(w.parent_enc_parent, 1 / sqrt(1.25), 1e-6);
    ck_assert_double_eq_tol(w.parent_enc_child, -0.5 / sqrt(1.25), 1e-6);
    sp_absorb_weights_of(dec, NULL, g, 0, 1, 0, 1, &w);
    ck_assert_double_eq_tol(w.child_dec_parent, 0.5 / sqrt(1.25), 1e-6);
    ck_assert(isnan(w.parent_enc_parent) && isnan(w.parent_enc_child));
    gsl_matrix_float_free(fc);
    gsl_matrix_float_free(f);
    gsl_matrix_float_free(enc);
    gsl_matrix_float_free(dec);

    gsl_matrix_float_free(xc);
    gsl_matrix_float_free(x);
    gsl_matrix_float_free(g);
}
END_TEST

/* The individual rules on codes set by hand. Truth g_p = e0, g_c = e1;
 * latent j's decoder: cos_j e0 + sqrt(1 - cos_j^2) e1 with
 *   cos = 1 (main), 0.9 (norm 2), 0.8, 0.6, 0.5, 0.05;
 * c_j = f_j ||d_j|| cos_j. Codes chosen for c = (M, 0.4, 0.3, 0.2, 0.1, 0.5):
 *   f_1 = 0.4 / 1.8, f_2 = 0.3 / 0.8, f_3 = 0.2 / 0.6, f_4 = 0.1 / 0.5, f_5 = 10.
 * Every sample has the parent on and x = e0 (P = 1) unless stated.
 *   A: M = 0.3, all others on: latent 5 (cos < 0.1) is no absorber; S =
 *      top 3 = 0.4 + 0.3 + 0.2 = 0.9 (0.1 left out); a = min(0.9, 0.7) ->
 *      0.7 / (0.7 + 0.3) = 0.7. Main fires: not full.
 *   B: only latent 5: S = 0 -> fraction 0; main silent, top latent 5 with
 *      cos 0.05 >= 0.025 and c / P = 0.5 -> full (SAEBench's single latent).
 *   C: M = 0.5, latent 2 (0.3): S / P = 0.3 < 0.4 -> 0.
 *   D: M = 1.2 >= P -> 0.
 *   E (child on too): M = 0, latents 2, 3, 4: S = 0.6 -> M <= 0: 1; top
 *      latent 2 has c / P = 0.3 < 0.4: not full; a recall hole.
 *   F: x = 0 (P = 0), only latent 5: 0 and not full.
 * Mean fraction (0.7 + 1) / 6, full rate 1/6; with the child: 1 sample,
 * full 0, hole 1. */
START_TEST(test_absorption_rules)
{
    const double cs[] = {1, 0.9, 0.8, 0.6, 0.5, 0.05}, norm[] = {1, 2, 1, 1, 1, 1};
    double D[12], X[12] = {0};
    for (int j = 0; j < 6; j++) {
        D[2 * j] = norm[j] * cs[j];
        D[2 * j + 1] = norm[j] * sqrt(1 - cs[j] * cs[j]);
    }
    for (int b = 0; b < 5; b++)
        X[2 * b] = 1;
    const double t[] = {1, 0, 0, 1};
    const double fa[] = {0.3, 0.4 / 1.8, 0.3 / 0.8, 0.2 / 0.6, 0.1 / 0.5, 10, /* A */
                         0, 0, 0, 0, 0, 10,                                  /* B */
                         0.5, 0, 0.3 / 0.8, 0, 0, 0,                         /* C */
                         1.2, 0.4 / 1.8, 0, 0, 0, 0,                         /* D */
                         0, 0, 0.3 / 0.8, 0.2 / 0.6, 0.1 / 0.5, 0,           /* E */
                         0, 0, 0, 0, 0, 10};                                 /* F */
    gsl_matrix_float *dec = mat(6, 2, D), *g = mat(2, 2, t), *x = mat(6, 2, X),
                     *f = mat(6, 6, fa);
    const size_t row[] = {0, 1, 2, 3, 4, 6, 7};
    const uint32_t idx[] = {0, 0, 0, 0, 0, 1, 0};
    size_t child = 1, main = 0;
    sp_absorb_acc *a = sp_absorb_acc_alloc(dec, g, 0, &child, 1, &main, 1);
    /* two pieces: A..C, D..F */
    gsl_matrix_float_view x1 = gsl_matrix_float_submatrix(x, 0, 0, 3, 2);
    gsl_matrix_float_view x2 = gsl_matrix_float_submatrix(x, 3, 0, 3, 2);
    gsl_matrix_float_view f1 = gsl_matrix_float_submatrix(f, 0, 0, 3, 6);
    gsl_matrix_float_view f2 = gsl_matrix_float_submatrix(f, 3, 0, 3, 6);
    const size_t row2[] = {0, 1, 3, 4};
    const uint32_t idx2[] = {0, 0, 1, 0};
    sp_absorb_acc_add(a, &x1.matrix, &f1.matrix, row, idx);
    sp_absorb_acc_add(a, &x2.matrix, &f2.matrix, row2, idx2);
    sp_absorb_stats st;
    sp_absorb_acc_finish(a, &st);
    ck_assert_uint_eq(st.samples, 6);
    ck_assert_uint_eq(st.with_child, 1);
    ck_assert_double_eq_tol(st.fraction, 1.7 / 6, 1e-6);
    ck_assert_double_eq_tol(st.full_rate, 1.0 / 6, 1e-12);
    ck_assert_double_eq(st.full_rate_child, 0);
    ck_assert_double_eq(st.recall_hole, 1);
    sp_absorb_acc_free(a);
    /* sample A alone: 0.7 (checks the top-3 cut and min(S, P - M)) */
    a = sp_absorb_acc_alloc(dec, g, 0, &child, 1, &main, 1);
    gsl_matrix_float_view fA = gsl_matrix_float_submatrix(f, 0, 0, 1, 6);
    sp_absorb_acc_add(a, &x1.matrix, &fA.matrix, row, idx);
    sp_absorb_acc_finish(a, &st);
    ck_assert_double_eq_tol(st.fraction, 0.7, 1e-6);
    ck_assert(isnan(st.recall_hole) && isnan(st.full_rate_child));
    sp_absorb_acc_free(a);
    /* nothing seen: NaN; bad arguments: NULL */
    a = sp_absorb_acc_alloc(dec, g, 0, NULL, 0, &main, 1);
    sp_absorb_acc_finish(a, &st);
    ck_assert(isnan(st.fraction) && isnan(st.full_rate));
    sp_absorb_acc_free(a);
    size_t bad = 6;
    ck_assert_ptr_null(sp_absorb_acc_alloc(dec, g, 0, &child, 1, &bad, 1));
    ck_assert_ptr_null(sp_absorb_acc_alloc(dec, g, 2, &child, 1, &main, 1));
    ck_assert_ptr_null(sp_absorb_acc_alloc(dec, g, 0, &bad, 1, &main, 1));
    ck_assert_ptr_null(sp_absorb_acc_alloc(dec, g, 0, &child, 1, &main, 0));
    gsl_matrix_float *w = gsl_matrix_float_calloc(6, 3);
    ck_assert_ptr_null(sp_absorb_acc_alloc(w, g, 0, &child, 1, &main, 1));
    sp_absorb_weights wt;
    sp_absorb_weights_of(w, NULL, g, 0, 1, 0, 1, &wt);
    ck_assert(isnan(wt.child_dec_parent) && isnan(wt.child_dec_child));
    gsl_matrix_float_free(w);
    sp_absorb_acc_free(NULL);
    gsl_matrix_float_free(f);
    gsl_matrix_float_free(x);
    gsl_matrix_float_free(g);
    gsl_matrix_float_free(dec);
}
END_TEST

/* ---- hedging ------------------------------------------------------------------ */

/* R^6, e_i the basis. */
START_TEST(test_hedging_by_hand)
{
    double base;
    /* old rows unchanged (one rescaled: rows are normalised first), new
     * rows e2, e3: nothing moved -> 0; baseline rank 2 / 6 */
    const double n1[] = {1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0};
    const double w1[] = {3, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0,
                         0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0};
    gsl_matrix_float *na = mat(2, 6, n1), *wi = mat(4, 6, w1);
    ck_assert_double_eq(sp_metric_hedging(na, wi, &base), 0);
    ck_assert_double_eq_tol(base, 2.0 / 6, 1e-12);
    gsl_matrix_float_free(wi);
    gsl_matrix_float_free(na);
    /* row 0: e0 + e2 -> e0 - e2, delta = -sqrt2 e2, all in span(e2, e3): 1;
     * row 1 unchanged (left out) -> mean 1 */
    const double n2[] = {1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0};
    const double w2[] = {1, 0, -1, 0, 0, 0, 0, 1, 0, 0, 0, 0,
                         0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0};
    na = mat(2, 6, n2);
    wi = mat(4, 6, w2);
    ck_assert_double_eq_tol(sp_metric_hedging(na, wi, NULL), 1, 1e-12);
    gsl_matrix_float_free(wi);
    gsl_matrix_float_free(na);
    /* row 0 as above (share 1); row 1: e1 + e3 + e4 -> e1 - e3 - e4,
     * delta = -(2/sqrt3)(e3 + e4): half of ||delta||^2 in span -> 0.5;
     * new rows e2, e3, e2 + e3 have rank 2: baseline 2/6; mean 0.75 */
    const double n3[] = {1, 0, 1, 0, 0, 0, 0, 1, 0, 1, 1, 0};
    const double w3[] = {1, 0, -1, 0, 0, 0, 0, 1, 0, -1, -1, 0,
                         0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 2, 2, 0, 0};
    na = mat(2, 6, n3);
    wi = mat(5, 6, w3);
    ck_assert_double_eq_tol(sp_metric_hedging(na, wi, &base), 0.75, 1e-7);
    ck_assert_double_eq_tol(base, 2.0 / 6, 1e-12);
    /* bad shapes: as wide as narrow; widths differ */
    gsl_matrix_float_view w2v = gsl_matrix_float_submatrix(wi, 0, 0, 2, 6);
    ck_assert(isnan(sp_metric_hedging(na, &w2v.matrix, &base)));
    ck_assert(isnan(base));
    gsl_matrix_float_view nv = gsl_matrix_float_submatrix(na, 0, 0, 2, 5);
    ck_assert(isnan(sp_metric_hedging(&nv.matrix, wi, &base)));
    ck_assert(isnan(sp_metric_hedging(NULL, wi, &base)));
    gsl_matrix_float_free(wi);
    gsl_matrix_float_free(na);
    /* new rows spanning the whole space (R^2: e0, e1, e0 + e1): baseline 1,
     * any moved row lies in the span */
    const double n4[] = {1, 0}, w4[] = {1, 1, 1, 0, 0, 1, 1, 1};
    na = mat(1, 2, n4);
    wi = mat(4, 2, w4);
    ck_assert_double_eq_tol(sp_metric_hedging(na, wi, &base), 1, 1e-12);
    ck_assert_double_eq(base, 1);
    gsl_matrix_float_free(wi);
    gsl_matrix_float_free(na);
}
END_TEST

Suite *make_recovery_suite(void)
{
    Suite *s = suite_create("recovery");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_hungarian_brute_force);
    tcase_add_test(tc, test_hungarian_by_hand);
    tcase_add_test(tc, test_mcc_permuted);
    tcase_add_test(tc, test_mcc_by_hand);
    tcase_add_test(tc, test_uniqueness_by_hand);
    tcase_add_test(tc, test_firing_by_hand);
    tcase_add_test(tc, test_split_count_by_hand);
    tcase_add_test(tc, test_probe_count_split);
    tcase_add_test(tc, test_probe_count_clean);
    tcase_add_test(tc, test_absorption_delta_sae);
    tcase_add_test(tc, test_absorption_rules);
    tcase_add_test(tc, test_hedging_by_hand);
    suite_add_tcase(s, tc);
    return s;
}
