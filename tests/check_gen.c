/* check_gen.c: statistical tests of the Sharkey generator (REFERENCE.md 1.1).
 * Every tolerance is a number of standard errors of the quantity tested;
 * the seeds are fixed, so the outcome is deterministic. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "helpers.h"
#include "superpose/gen.h"

static sp_gen_cfg sharkey_cfg(int d, int n, int correlated, double noise)
{
    sp_gen_cfg c;
    memset(&c, 0, sizeof c);
    strcpy(c.generator, "sharkey");
    c.d = d;
    c.n = n;
    c.k = 5;
    c.decay = 0.99;
    c.correlated = correlated;
    c.noise = noise;
    return c;
}

START_TEST(test_truth_unit_and_seeded)
{
    sp_gen_cfg c = sharkey_cfg(32, 64, 0, 0);
    gsl_rng *r1 = gsl_rng_alloc(gsl_rng_mt19937), *r2 = gsl_rng_alloc(gsl_rng_mt19937);
    sp_err e;
    sp_gen *g1 = sp_gen_alloc(&c, 16, r1, &e), *g2 = sp_gen_alloc(&c, 16, r2, &e);
    const gsl_matrix_float *t1 = sp_gen_truth(g1), *t2 = sp_gen_truth(g2);
    ck_assert_uint_eq(t1->size1, 64);
    ck_assert_uint_eq(t1->size2, 32);
    for (size_t i = 0; i < 64; i++) {
        double n2 = 0;
        for (size_t j = 0; j < 32; j++)
            n2 += gsl_matrix_float_get(t1, i, j) * gsl_matrix_float_get(t1, i, j);
        ck_assert_double_eq_tol(n2, 1.0, 1e-5);
    }
    ck_assert_int_eq(memcmp(t1->data, t2->data, 64 * 32 * sizeof(float)), 0);
    sp_gen_free(g2);
    gsl_rng_set(r2, 12345);
    g2 = sp_gen_alloc(&c, 16, r2, &e);
    ck_assert_int_ne(memcmp(t1->data, sp_gen_truth(g2)->data, 64 * 32 * sizeof(float)), 0);
    sp_gen_free(g1);
    sp_gen_free(g2);
    gsl_rng_free(r1);
    gsl_rng_free(r2);
}
END_TEST

/* Firing: conditional on the per-sample probabilities p_bi the generator
 * reports, feature i's count over N samples has mean sum_b p_bi and
 * variance sum_b p_bi (1 - p_bi). Also: sum_i p_bi = k for every sample,
 * and the mean number of active features is k = 5. */
static void check_firing(int correlated)
{
    const int d = 16, n = 512, B = 1000, batches = 100; /* 1e5 samples */
    sp_gen_cfg c = sharkey_cfg(d, n, correlated, 0);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 7);
    sp_err e;
    sp_gen *g = sp_gen_alloc(&c, B, rng, &e);
    ck_assert_ptr_nonnull(g);
    sp_codes *codes = sp_codes_alloc(B, (size_t)B * n);
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, d);
    double *mean = calloc(n, sizeof *mean), *var = calloc(n, sizeof *var);
    double *count = calloc(n, sizeof *count);
    double active = 0, active2 = 0, mag = 0, mag2 = 0, nmag = 0, worst_sum = 0;
    int bad_p = 0, bad_a = 0; /* checked after the loops: ck_assert costs a syscall */
    for (int t = 0; t < batches; t++) {
        sp_gen_batch(g, rng, B, codes, x);
        const float *p = sp_gen_last_probs(g);
        for (int b = 0; b < B; b++) {
            double s = 0;
            for (int i = 0; i < n; i++) {
                double pi = p[(size_t)b * n + i];
                bad_p |= !(pi >= 0 && pi <= 1);
                mean[i] += pi;
                var[i] += pi * (1 - pi);
                s += pi;
            }
            worst_sum = fmax(worst_sum, fabs(s - 5.0)); /* no clamping at n = 512 */
            size_t na = codes->row[b + 1] - codes->row[b];
            active += (double)na;
            active2 += (double)na * (double)na;
            for (size_t q = codes->row[b]; q < codes->row[b + 1]; q++) {
                count[codes->idx[q]] += 1;
                double a = codes->val[q];
                bad_a |= !(a >= 0 && a < 1);
                mag += a;
                mag2 += a * a;
                nmag += 1;
            }
        }
    }
    ck_assert_msg(!bad_p, "a firing probability outside [0, 1]");
    ck_assert_msg(!bad_a, "a magnitude outside [0, 1)");
    ck_assert_msg(worst_sum < 1e-3, "per-sample sum of p differs from k by %g", worst_sum);
    double N = (double)B * batches, chi2 = 0, zmax = 0;
    for (int i = 0; i < n; i++) {
        double z = (count[i] - mean[i]) / sqrt(var[i]);
        chi2 += z * z;
        zmax = fmax(zmax, fabs(z));
    }
    /* 512 independent z-scores: max below 5 sigma, chi^2 within 5 sd of n. */
    ck_assert_msg(zmax < 5, "max |z| of the firing counts = %g", zmax);
    ck_assert_msg(fabs(chi2 - n) < 5 * sqrt(2.0 * n), "chi2 = %g for %d features", chi2, n);
    double ma = active / N, va = active2 / N - ma * ma;
    ck_assert_msg(fabs(ma - 5) < 4 * sqrt(va / N), "mean active = %g", ma);
    /* magnitudes U[0,1): mean 1/2, variance 1/12 */
    double mm = mag / nmag, vm = mag2 / nmag - mm * mm;
    ck_assert_msg(fabs(mm - 0.5) < 4 * sqrt(1.0 / 12 / nmag), "mean magnitude %g", mm);
    ck_assert_msg(fabs(vm - 1.0 / 12) < 4 * sqrt(1.0 / 180 / nmag), "magnitude variance %g",
                  vm);
    if (!correlated) {
        /* A second, independent implementation of the uncorrelated law in
         * double precision with its own RNG: p_i = k u_i l^i / sum_j u_j l^j.
         * Its E[p_i] must match the generator's empirical firing rates. */
        gsl_rng *r2 = gsl_rng_alloc(gsl_rng_ranlxd1);
        double *ep = calloc(n, sizeof *ep), *u = calloc(n, sizeof *u);
        const int M = 20000;
        for (int s = 0; s < M; s++) {
            double tot = 0;
            for (int i = 0; i < n; i++) {
                u[i] = gsl_rng_uniform(r2) * pow(0.99, i);
                tot += u[i];
            }
            for (int i = 0; i < n; i++)
                ep[i] += 5 * u[i] / tot / M;
        }
        /* Compare in 8 blocks of 64 features (enough counts per block). */
        for (int blk = 0; blk < 8; blk++) {
            double c_emp = 0, c_ref = 0, v_emp = 0;
            for (int i = blk * 64; i < blk * 64 + 64; i++) {
                c_emp += count[i] / N;
                c_ref += ep[i];
                v_emp += var[i] / (N * N);
            }
            /* reference MC error: p_i < 0.1 so sd(sum) < 64 * 0.1 / sqrt(M) bound is loose;
             * use the empirical binomial sd plus a 1% relative allowance for the MC. */
            ck_assert_msg(fabs(c_emp - c_ref) < 5 * sqrt(v_emp) + 0.01 * c_ref,
                          "block %d: rate %g vs independent %g", blk, c_emp, c_ref);
        }
        free(u);
        free(ep);
        gsl_rng_free(r2);
    }
    free(count);
    free(var);
    free(mean);
    gsl_matrix_float_free(x);
    sp_codes_free(codes);
    sp_gen_free(g);
    gsl_rng_free(rng);
}

START_TEST(test_firing_uncorrelated) { check_firing(0); }
END_TEST

START_TEST(test_firing_correlated) { check_firing(1); }
END_TEST

/* x = sum_i a_i g_i exactly (no noise), and with noise the residual has
 * standard deviation sigma. */
START_TEST(test_inputs_and_noise)
{
    const int d = 24, n = 48, B = 2000;
    for (int noisy = 0; noisy < 2; noisy++) {
        sp_gen_cfg c = sharkey_cfg(d, n, 0, noisy ? 0.1 : 0.0);
        gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
        sp_err e;
        sp_gen *g = sp_gen_alloc(&c, B, rng, &e);
        sp_codes *codes = sp_codes_alloc(B, (size_t)B * n);
        gsl_matrix_float *x = gsl_matrix_float_alloc(B, d);
        sp_gen_batch(g, rng, B, codes, x);
        const gsl_matrix_float *t = sp_gen_truth(g);
        double s2 = 0, maxerr = 0;
        for (int b = 0; b < B; b++)
            for (int j = 0; j < d; j++) {
                double v = 0;
                for (size_t q = codes->row[b]; q < codes->row[b + 1]; q++)
                    v += codes->val[q] * gsl_matrix_float_get(t, codes->idx[q], j);
                double r = gsl_matrix_float_get(x, b, j) - v;
                s2 += r * r;
                maxerr = fmax(maxerr, fabs(r));
            }
        double sd = sqrt(s2 / ((double)B * d));
        if (noisy) /* sd of a sample sd of N = 48000 normals: sigma / sqrt(2N) */
            ck_assert_msg(fabs(sd - 0.1) < 5 * 0.1 / sqrt(2.0 * B * d), "noise sd %g", sd);
        else
            ck_assert_msg(maxerr < 1e-5, "x differs from A G by %g", maxerr);
        gsl_matrix_float_free(x);
        sp_codes_free(codes);
        sp_gen_free(g);
        gsl_rng_free(rng);
    }
}
END_TEST

/* The copula's matrix is a correlation matrix (unit diagonal, symmetric,
 * |C_ij| <= 1), and the firing follows it: across pairs of features, the
 * covariance of the firing indicators rises with C_ij (Pearson correlation
 * over pairs clearly positive). The per-sample rescaling to sum k cancels a
 * factor common to all features, so the mean covariance says little; the
 * pairwise structure is what the copula adds. Without the copula the same
 * statistic against the same C is zero within error. */
static double pair_structure(int corr, const gsl_matrix *Cref, gsl_matrix *Cout)
{
    const int d = 8, n = 32, B = 1000, batches = 60;
    sp_gen_cfg c = sharkey_cfg(d, n, corr, 0);
    c.decay = 1.0; /* equal rates: every pair contributes alike */
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 3);
    sp_err e;
    sp_gen *g = sp_gen_alloc(&c, B, rng, &e);
    ck_assert_ptr_nonnull(g);
    if (Cout)
        gsl_matrix_memcpy(Cout, sp_gen_correlation(g));
    sp_codes *codes = sp_codes_alloc(B, (size_t)B * n);
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, d);
    double *f1 = calloc(n, sizeof *f1), *f2 = calloc((size_t)n * n, sizeof *f2);
    char *on = calloc(n, 1);
    for (int t = 0; t < batches; t++) {
        sp_gen_batch(g, rng, B, codes, x);
        for (int b = 0; b < B; b++) {
            memset(on, 0, n);
            for (size_t q = codes->row[b]; q < codes->row[b + 1]; q++)
                on[codes->idx[q]] = 1;
            for (int i = 0; i < n; i++) {
                f1[i] += on[i];
                if (on[i])
                    for (int j = 0; j < n; j++)
                        f2[i * n + j] += on[j];
            }
        }
    }
    const gsl_matrix *C = Cref ? Cref : sp_gen_correlation(g);
    double N = (double)B * batches, sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0, np = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            double cov = f2[i * n + j] / N - (f1[i] / N) * (f1[j] / N);
            double cij = gsl_matrix_get(C, i, j);
            sx += cij;
            sy += cov;
            sxx += cij * cij;
            syy += cov * cov;
            sxy += cij * cov;
            np += 1;
        }
    double r = (sxy / np - sx / np * sy / np) /
               sqrt((sxx / np - sx / np * sx / np) * (syy / np - sy / np * sy / np));
    free(on);
    free(f2);
    free(f1);
    gsl_matrix_float_free(x);
    sp_codes_free(codes);
    sp_gen_free(g);
    gsl_rng_free(rng);
    return r;
}

START_TEST(test_correlation)
{
    gsl_matrix *C = gsl_matrix_alloc(32, 32);
    double r_corr = pair_structure(1, NULL, C);
    int bad = 0;
    for (int i = 0; i < 32; i++) {
        bad |= fabs(gsl_matrix_get(C, i, i) - 1.0) > 1e-12;
        for (int j = 0; j < 32; j++)
            bad |= fabs(gsl_matrix_get(C, i, j) - gsl_matrix_get(C, j, i)) > 1e-12 ||
                   fabs(gsl_matrix_get(C, i, j)) > 1 + 1e-12;
    }
    ck_assert_msg(!bad, "not a correlation matrix");
    double r_ind = pair_structure(0, C, NULL);
    /* 496 pairs: the null correlation has sd ~ 1/sqrt(496) = 0.045 */
    ck_assert_msg(fabs(r_ind) < 4 * 0.045, "uncorrelated: r = %g", r_ind);
    ck_assert_msg(r_corr > 0.3, "correlated: r = %g", r_corr);
    gsl_matrix_free(C);
}
END_TEST

START_TEST(test_check_rejects)
{
    sp_gen_cfg c = sharkey_cfg(8, 16, 0, 0);
    ck_assert_ptr_null(sp_gen_check(&c));
    c.k = 17;
    ck_assert_ptr_nonnull(strstr(sp_gen_check(&c), "data.k"));
    c.k = 5;
    strcpy(c.generator, "nope");
    ck_assert_ptr_nonnull(strstr(sp_gen_check(&c), "sharkey"));
}
END_TEST

Suite *make_gen_suite(void)
{
    Suite *s = suite_create("gen");
    TCase *tc = tcase_create("sharkey");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_truth_unit_and_seeded);
    tcase_add_test(tc, test_firing_uncorrelated);
    tcase_add_test(tc, test_firing_correlated);
    tcase_add_test(tc, test_inputs_and_noise);
    tcase_add_test(tc, test_correlation);
    tcase_add_test(tc, test_check_rejects);
    suite_add_tcase(s, tc);
    return s;
}
