/* check_gen.c: statistical tests of the Sharkey generator (REFERENCE.md 1.1).
 * Every tolerance is a number of standard errors of the quantity tested;
 * the seeds are fixed, so the outcome is deterministic. */
#include <math.h>
#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_cdf.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "helpers.h"
#include "superpose/config.h"
#include "superpose/gen.h"

/* The defaults of the option table (the Sharkey generator), resized. */
static sp_gen_cfg sharkey_cfg(int d, int n, int correlated, double noise)
{
    sp_run_cfg rc;
    sp_config_defaults(&rc);
    sp_gen_cfg c = rc.data;
    c.d = d;
    c.n = n;
    c.k = 5;
    c.decay = 0.99;
    strcpy(c.correlation, correlated ? "copula" : "none");
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
    ck_assert_ptr_null(sp_gen_last_probs(g));
    ck_assert_int_eq(sp_gen_record_probs(g), 0);
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
    sp_err e;
    ck_assert_int_eq(sp_gen_check(&c, NULL, &e), 0);
    c.k = 17;
    ck_assert_int_eq(sp_gen_check(&c, NULL, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "data.k"));
    c.k = 5;
    strcpy(c.generator, "nope");
    ck_assert_int_eq(sp_gen_check(&c, NULL, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "sharkey"));
}
END_TEST

/* ---- the laws of REFERENCE.md 1.3-1.4 ------------------------------- */

/* Per-feature statistics of N samples of a small generator (nt <= 64). */
typedef struct {
    size_t nt;
    double N, count[64], sum[64], sum2[64], co[64 * 64];
    double l0;
    int max_per_row_bad; /* codes out of order or duplicated */
} stats;

static sp_gen_cfg base_cfg(const char *kind, int d, int n)
{
    sp_gen_cfg c = sharkey_cfg(d, n, 0, 0);
    strcpy(c.generator, kind);
    return c;
}

static void gather(const sp_gen_cfg *c, int N, unsigned long seed, stats *st, sp_gen **keep)
{
    const size_t B = 500;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, seed);
    sp_err e = {{0}};
    sp_gen *g = sp_gen_alloc(c, B, rng, &e);
    ck_assert_msg(g != NULL, "%s", e.msg);
    memset(st, 0, sizeof *st);
    st->nt = sp_gen_truth(g)->size1;
    ck_assert_uint_le(st->nt, 64);
    sp_codes *codes = sp_codes_alloc(B, B * st->nt);
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, (size_t)c->d);
    for (int done = 0; done < N; done += (int)B) {
        sp_gen_batch(g, rng, B, codes, x);
        for (size_t b = 0; b < B; b++) {
            for (size_t q = codes->row[b]; q < codes->row[b + 1]; q++) {
                uint32_t i = codes->idx[q];
                double a = codes->val[q];
                if (q > codes->row[b] && codes->idx[q - 1] >= i)
                    st->max_per_row_bad = 1;
                st->count[i] += 1;
                st->sum[i] += a;
                st->sum2[i] += a * a;
                for (size_t r = codes->row[b]; r < codes->row[b + 1]; r++)
                    st->co[i * st->nt + codes->idx[r]] += 1;
            }
            st->l0 += (double)(codes->row[b + 1] - codes->row[b]);
        }
    }
    st->N = (double)((N + (int)B - 1) / (int)B) * (double)B;
    gsl_matrix_float_free(x);
    sp_codes_free(codes);
    if (keep)
        *keep = g;
    else
        sp_gen_free(g);
    gsl_rng_free(rng);
}

/* |rate_i - p_i| within 5 binomial standard errors for every feature. */
static void expect_rates(const stats *st, const double *p, const char *what)
{
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < st->nt; i++) {
        double se = sqrt(fmax(p[i] * (1 - p[i]), 1e-12) / st->N);
        double z = fabs(st->count[i] / st->N - p[i]) / se;
        if (z > worst) {
            worst = z;
            at = i;
        }
    }
    ck_assert_msg(worst < 5, "%s: feature %zu fires at %g, expected %g (%.1f s.e.)", what, at,
                  st->count[at] / st->N, p[at], worst);
}

START_TEST(test_firing_laws)
{
    const int n = 12, N = 60000;
    double p[64];
    stats st;
    /* constant */
    sp_gen_cfg c = base_cfg("features", 16, n);
    strcpy(c.firing, "constant");
    c.p = 0.1;
    gather(&c, N, 1, &st, NULL);
    for (int i = 0; i < n; i++)
        p[i] = 0.1;
    expect_rates(&st, p, "constant");
    ck_assert(!st.max_per_row_bad);
    /* decay: p_i = k l^i / sum_j l^j, worked out here */
    strcpy(c.firing, "decay");
    c.decay = 0.8;
    c.k = 2;
    double z = 0;
    for (int i = 0; i < n; i++)
        z += pow(0.8, i);
    for (int i = 0; i < n; i++)
        p[i] = 2 * pow(0.8, i) / z;
    gather(&c, N, 2, &st, NULL);
    expect_rates(&st, p, "decay");
    ck_assert_msg(fabs(st.l0 / st.N - 2) < 5 * sqrt(2.0 / st.N), "decay: L0 %g", st.l0 / st.N);
    /* zipf: p_i = k (i+1)^-s / sum_j (j+1)^-s */
    strcpy(c.firing, "zipf");
    c.zipf = 1.5;
    c.k = 1;
    z = 0;
    for (int i = 0; i < n; i++)
        z += pow(i + 1, -1.5);
    for (int i = 0; i < n; i++)
        p[i] = pow(i + 1, -1.5) / z;
    gather(&c, N, 3, &st, NULL);
    expect_rates(&st, p, "zipf");
    /* an explicit list */
    strcpy(c.firing, "list");
    c.n = 4;
    strcpy(c.probs, "0.25, 0.05, 0.05, 0.05");
    gather(&c, N, 4, &st, NULL);
    double pl[4] = {0.25, 0.05, 0.05, 0.05};
    expect_rates(&st, pl, "list");
}
END_TEST

START_TEST(test_magnitude_laws)
{
    /* closed forms worked by hand */
    sp_mag_cfg m = {"uniform", 0, 1, 0, 0};
    double mean, var;
    ck_assert_int_eq(sp_mag_moments(&m, &mean, &var), 0);
    ck_assert_double_eq_tol(mean, 0.5, 1e-15);
    ck_assert_double_eq_tol(var, 1.0 / 12, 1e-15);
    sp_mag_cfg f0 = {"folded_normal", 0, 0, 0, 1};
    sp_mag_moments(&f0, &mean, &var); /* half-normal */
    ck_assert_double_eq_tol(mean, sqrt(2 / M_PI), 1e-12);
    ck_assert_double_eq_tol(var, 1 - 2 / M_PI, 1e-12);
    sp_mag_cfg bad = {"gauss", 0, 0, 0, 0};
    ck_assert_int_eq(sp_mag_moments(&bad, &mean, &var), -1);

    struct {
        const char *law;
        double min, max, mean, std, want_mean, want_var;
    } cases[] = {
        {"constant", 0, 1, 3, 1, 3, 0},
        {"uniform", 0.5, 2.5, 1, 1, 1.5, 4.0 / 12},
        {"exponential", 0, 1, 2, 1, 2, 4},
        /* |N(3, 0.1)|: folded with probability Phi(-9.5) ~ 1e-21: mean 3, var 0.1 */
        {"folded_normal", 0, 1, 3, sqrt(0.1), 3, 0.1},
        {"folded_normal", 0, 1, 0, 2, 2 * sqrt(2 / M_PI), 4 * (1 - 2 / M_PI)},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        sp_gen_cfg c = base_cfg("features", 8, 4);
        strcpy(c.firing, "constant");
        c.p = 0.5;
        strcpy(c.mag.law, cases[k].law);
        c.mag.min = cases[k].min;
        c.mag.max = cases[k].max;
        c.mag.mean = cases[k].mean;
        c.mag.std = cases[k].std;
        stats st;
        gather(&c, 40000, 10 + k, &st, NULL);
        double cnt = 0, s1 = 0, s2 = 0;
        for (int i = 0; i < 4; i++) {
            cnt += st.count[i];
            s1 += st.sum[i];
            s2 += st.sum2[i];
        }
        double em = s1 / cnt, ev = s2 / cnt - em * em;
        double w = cases[k].want_var;
        ck_assert_msg(fabs(em - cases[k].want_mean) < 5 * sqrt(w / cnt) + 1e-6,
                      "%s: mean %g, expected %g", cases[k].law, em, cases[k].want_mean);
        /* var of the sample variance ~ (mu4 - s^4) / n; bound mu4 by 9 s^4 */
        ck_assert_msg(fabs(ev - w) < 5 * sqrt(8 * w * w / cnt) + 1e-6,
                      "%s: variance %g, expected %g", cases[k].law, ev, w);
        ck_assert_int_eq(sp_mag_moments(&c.mag, &mean, &var), 0);
        ck_assert_double_eq_tol(mean, cases[k].want_mean, 1e-9);
        ck_assert_double_eq_tol(var, w, 1e-9);
    }
    /* per-feature scales multiply the magnitudes: mean a_i = s_i / 2 */
    sp_gen_cfg c = base_cfg("features", 8, 3);
    strcpy(c.firing, "constant");
    c.p = 0.5;
    strcpy(c.scales, "1, 2, 0.5");
    stats st;
    gather(&c, 40000, 20, &st, NULL);
    double sc[3] = {1, 2, 0.5};
    for (int i = 0; i < 3; i++) {
        double em = st.sum[i] / st.count[i], sd = sc[i] / sqrt(12 * st.count[i]);
        ck_assert_msg(fabs(em - sc[i] / 2) < 5 * sd, "scale %d: mean %g", i, em);
    }
}
END_TEST

/* P(Z1 < a, Z2 < b) for standard normals with correlation r, by Simpson's
 * rule on int_{-8}^{a} phi(x) Phi((b - r x) / sqrt(1 - r^2)) dx. */
static double bvn(double a, double b, double r)
{
    const int M = 4000;
    double lo = -8, hi = a, h = (hi - lo) / M, s = 0;
    for (int k = 0; k <= M; k++) {
        double x = lo + h * k, w = (k == 0 || k == M) ? 1 : (k % 2 ? 4 : 2);
        s += w * gsl_ran_ugaussian_pdf(x) * gsl_cdf_ugaussian_P((b - r * x) / sqrt(1 - r * r));
    }
    return s * h / 3;
}

START_TEST(test_copula_cofiring)
{
    for (int lowrank = 0; lowrank < 2; lowrank++) {
        const int n = 8;
        sp_gen_cfg c = base_cfg("features", 8, n);
        strcpy(c.firing, "list");
        strcpy(c.probs, "0.3, 0.2, 0.1, 0.3, 0.2, 0.1, 0.25, 0.15");
        strcpy(c.correlation, lowrank ? "lowrank" : "copula");
        c.rank = 2;
        c.rho = 0.8;
        stats st;
        sp_gen *g;
        gather(&c, 100000, 30 + lowrank, &st, &g);
        double p[8] = {0.3, 0.2, 0.1, 0.3, 0.2, 0.1, 0.25, 0.15};
        expect_rates(&st, p, lowrank ? "lowrank marginals" : "copula marginals");
        const gsl_matrix *C = sp_gen_correlation(g);
        double worst = 0, maxr = 0;
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++) {
                double r = gsl_matrix_get(C, i, j);
                maxr = fmax(maxr, fabs(r));
                double want = bvn(gsl_cdf_ugaussian_Pinv(p[i]), gsl_cdf_ugaussian_Pinv(p[j]), r);
                double se = sqrt(want * (1 - want) / st.N);
                worst = fmax(worst, fabs(st.co[i * st.nt + j] / st.N - want) / se);
            }
        /* 28 pairs: 5 s.e. */
        ck_assert_msg(worst < 5, "%s: co-firing off by %.1f s.e.", c.correlation, worst);
        if (lowrank) /* strong enough to matter: |C_ij| up to 0.8 */
            ck_assert_msg(maxr > 0.5, "lowrank correlations too weak (%g)", maxr);
        sp_gen_free(g);
    }
}
END_TEST

START_TEST(test_exclusive_groups)
{
    sp_gen_cfg c = base_cfg("features", 8, 9);
    strcpy(c.firing, "list");
    strcpy(c.probs, "0.2, 0.3, 0.4, 0.1, 0.1, 0.1, 0.5, 0.25, 0.25");
    c.exclusive = 3;
    stats st;
    gather(&c, 60000, 40, &st, NULL);
    double p[9] = {0.2, 0.3, 0.4, 0.1, 0.1, 0.1, 0.5, 0.25, 0.25};
    expect_rates(&st, p, "exclusive");
    double both = 0;
    for (int i = 0; i < 9; i++)
        for (int j = 0; j < 9; j++)
            if (i != j && i / 3 == j / 3)
                both += st.co[i * st.nt + j];
    ck_assert_msg(both == 0, "two features of one exclusive group fired together %g times",
                  both);
    /* a group whose probabilities sum past 1 is refused */
    strcpy(c.probs, "0.5, 0.3, 0.4, 0.1, 0.1, 0.1, 0.5, 0.25, 0.25");
    sp_err e;
    ck_assert_int_eq(sp_gen_check(&c, NULL, &e), -1);
    ck_assert_msg(strstr(e.msg, "data.exclusive") && strstr(e.msg, "0..2"), "%s", e.msg);
}
END_TEST

static sp_tree_node node(const char *name, const char *parent, double p, int exclusive,
                         int count)
{
    sp_tree_node t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "%s", name);
    snprintf(t.parent, sizeof t.parent, "%s", parent);
    t.p = p;
    t.exclusive = exclusive;
    t.readout = 1;
    t.count = count;
    return t;
}

/* The Matryoshka tree of Bussmann et al. 2025 (REFERENCE.md 1.3): 3
 * parents at 0.15, each with 3 exclusive children at 0.2, and 8 free
 * features at 0.05: 20 readouts in pre-order. */
START_TEST(test_tree_matryoshka)
{
    sp_gen_cfg c = base_cfg("tree", 20, 20);
    strcpy(c.geometry, "orthonormal");
    strcpy(c.mag.law, "constant");
    c.mag.mean = 1;
    c.n_nodes = 3;
    c.nodes[0] = node("parent", "", 0.15, 1, 3);
    c.nodes[1] = node("child", "parent", 0.2, 0, 3);
    c.nodes[2] = node("free", "", 0.05, 0, 8);
    sp_err e = {{0}};
    ck_assert_int_eq(sp_gen_tree_features(&c, NULL, &e), 20);
    ck_assert_msg(sp_gen_check(&c, NULL, &e) == 0, "%s", e.msg);
    stats st;
    sp_gen *g;
    gather(&c, 60000, 50, &st, &g);
    double p[20], want[20];
    ck_assert_int_eq(sp_gen_rates(g, p), 0);
    for (int k = 0; k < 3; k++) { /* pre-order: P0 c c c P1 c c c P2 c c c */
        want[4 * k] = 0.15;
        for (int j = 1; j <= 3; j++)
            want[4 * k + j] = 0.15 * 0.2;
    }
    for (int i = 12; i < 20; i++)
        want[i] = 0.05;
    for (int i = 0; i < 20; i++)
        ck_assert_double_eq_tol(p[i], want[i], 1e-15);
    expect_rates(&st, want, "matryoshka tree");
    ck_assert(!st.max_per_row_bad);
    double orphan = 0, siblings = 0;
    for (int k = 0; k < 3; k++)
        for (int j = 1; j <= 3; j++) {
            int ch = 4 * k + j, par = 4 * k;
            orphan += st.count[ch] - st.co[ch * 20 + par]; /* child without its parent */
            for (int j2 = 1; j2 <= 3; j2++)
                if (j2 != j)
                    siblings += st.co[ch * 20 + 4 * k + j2];
        }
    ck_assert_msg(orphan == 0, "a child fired without its parent %g times", orphan);
    ck_assert_msg(siblings == 0, "exclusive siblings fired together %g times", siblings);
    /* magnitudes constant 1: x = sum of active orthonormal rows */
    for (int i = 0; i < 20; i++)
        ck_assert_double_eq_tol(st.sum[i], st.count[i], 1e-9);
    sp_gen_free(g);
}
END_TEST

/* Chanin et al. 2024: the 95% co-occurrence variant expressed with a
 * latent node R (p = 0.25 / 0.95) gating f0 (0.95) and f1 (0.05 / p_R):
 * P(f0) = 0.25, P(f1) = 0.05, P(f0 | f1) = 0.95. */
START_TEST(test_tree_latent_node)
{
    sp_gen_cfg c = base_cfg("tree", 50, 2);
    strcpy(c.geometry, "orthonormal");
    double pr = 0.25 / 0.95;
    c.n_nodes = 3;
    c.nodes[0] = node("R", "", pr, 0, 1);
    c.nodes[0].readout = 0;
    c.nodes[1] = node("f0", "R", 0.95, 0, 1);
    c.nodes[2] = node("f1", "R", 0.05 / pr, 0, 1);
    stats st;
    gather(&c, 100000, 60, &st, NULL);
    double want[2] = {0.25, 0.05};
    expect_rates(&st, want, "latent node");
    double cond = st.co[1 * 2 + 0] / st.count[1], se = sqrt(0.95 * 0.05 / st.count[1]);
    ck_assert_msg(fabs(cond - 0.95) < 5 * se, "P(f0 | f1) = %g", cond);
}
END_TEST

START_TEST(test_tree_errors)
{
    sp_gen_cfg c = base_cfg("tree", 8, 3);
    sp_err e;
    int bad;
    c.n_nodes = 3;
    c.nodes[0] = node("a", "c", 0.5, 0, 1);
    c.nodes[1] = node("b", "a", 0.5, 0, 1);
    c.nodes[2] = node("c", "b", 0.5, 0, 1);
    ck_assert_int_eq(sp_gen_tree_features(&c, &bad, &e), -1);
    ck_assert_msg(strstr(e.msg, "cycle") && strstr(e.msg, "a -> c -> b -> a"), "%s", e.msg);
    ck_assert_int_eq(bad, 0);
    c.nodes[0] = node("a", "", 1.5, 0, 1);
    ck_assert_int_eq(sp_gen_tree_features(&c, &bad, &e), -1);
    ck_assert_msg(strstr(e.msg, "feature a") && strstr(e.msg, "[0, 1]"), "%s", e.msg);
    c.nodes[0] = node("a", "", 0.5, 1, 1);
    c.nodes[1] = node("b", "a", 0.6, 0, 1);
    c.nodes[2] = node("c", "a", 0.5, 0, 1);
    ck_assert_int_eq(sp_gen_tree_features(&c, &bad, &e), -1);
    ck_assert_msg(strstr(e.msg, "feature a") && strstr(e.msg, "exclusive") &&
                      strstr(e.msg, "1.1"), "%s", e.msg);
    ck_assert_int_eq(bad, 0);
    c.nodes[2] = node("c", "zz", 0.1, 0, 1);
    c.nodes[1].p = 0.1;
    ck_assert_int_eq(sp_gen_tree_features(&c, &bad, &e), -1);
    ck_assert_msg(strstr(e.msg, "feature c") && strstr(e.msg, "'zz'"), "%s", e.msg);
    ck_assert_int_eq(bad, 2);
    c.nodes[2] = node("c", "a", 0.1, 0, 1);
    strcpy(c.nodes[2].mag.law, "lognormal");
    ck_assert_int_eq(sp_gen_tree_features(&c, &bad, &e), -1);
    ck_assert_msg(strstr(e.msg, "feature c") && strstr(e.msg, "unknown magnitude law"), "%s",
                  e.msg);
    c.nodes[2].mag.law[0] = '\0';
    ck_assert_int_eq(sp_gen_tree_features(&c, &bad, &e), 3);
    c.n = 4;
    ck_assert_int_eq(sp_gen_check(&c, NULL, &e), -1);
    ck_assert_msg(strstr(e.msg, "3 readout"), "%s", e.msg);
}
END_TEST

/* A continuous feature: its k code entries are a * v with v uniform on the
 * sphere, so ||code|| = a, E v_t = 0, E v_t^2 = 1/k, and x = A G exactly. */
START_TEST(test_continuous)
{
    sp_gen_cfg c = base_cfg("features", 12, 2);
    strcpy(c.firing, "constant");
    c.p = 0.1;
    c.continuous = 2;
    c.continuous_dim = 3;
    c.continuous_p = 0.3;
    strcpy(c.mag.law, "constant");
    c.mag.mean = 2;
    const size_t B = 20000;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    sp_err e = {{0}};
    sp_gen *g = sp_gen_alloc(&c, B, rng, &e);
    ck_assert_msg(g != NULL, "%s", e.msg);
    const gsl_matrix_float *G = sp_gen_truth(g);
    ck_assert_uint_eq(G->size1, 2 + 2 * 3);
    double ortho = 0; /* each continuous block is orthonormal */
    for (int blk = 0; blk < 2; blk++)
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++) {
                double dot = 0;
                for (int j = 0; j < 12; j++)
                    dot += gsl_matrix_float_get(G, 2 + 3 * blk + a, j) *
                           gsl_matrix_float_get(G, 2 + 3 * blk + b, j);
                ortho = fmax(ortho, fabs(dot - (a == b)));
            }
    ck_assert_msg(ortho < 1e-5, "continuous subspace not orthonormal (%g)", ortho);
    sp_codes *codes = sp_codes_alloc(B, B * 8);
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, 12);
    sp_gen_batch(g, rng, B, codes, x);
    double fired = 0, m1 = 0, m2 = 0, norm_err = 0, recon = 0;
    for (size_t b = 0; b < B; b++) {
        double v[8] = {0};
        for (size_t q = codes->row[b]; q < codes->row[b + 1]; q++)
            v[codes->idx[q]] = codes->val[q];
        double nr = sqrt(v[2] * v[2] + v[3] * v[3] + v[4] * v[4]);
        if (nr > 0) {
            fired++;
            norm_err = fmax(norm_err, fabs(nr - 2));
            m1 += v[2] / 2;
            m2 += v[2] * v[2] / 4;
        }
        for (int j = 0; j < 12; j++) {
            double s = 0;
            for (int i = 0; i < 8; i++)
                s += v[i] * gsl_matrix_float_get(G, (size_t)i, (size_t)j);
            recon = fmax(recon, fabs(s - gsl_matrix_float_get(x, b, (size_t)j)));
        }
    }
    ck_assert_msg(fabs(fired / B - 0.3) < 5 * sqrt(0.21 / B), "rate %g", fired / B);
    ck_assert_msg(norm_err < 1e-5, "||code|| differs from the magnitude by %g", norm_err);
    ck_assert_msg(fabs(m1 / fired) < 5 * sqrt(1.0 / 3 / fired), "E v = %g", m1 / fired);
    /* Var(v_t^2) = E v^4 - 1/9 = 3/15 - 1/9 for k = 3 */
    ck_assert_msg(fabs(m2 / fired - 1.0 / 3) < 5 * sqrt((0.2 - 1.0 / 9) / fired), "E v^2 = %g",
                  m2 / fired);
    ck_assert_msg(recon < 1e-5, "x differs from A G by %g", recon);
    double rates[8];
    ck_assert_int_eq(sp_gen_rates(g, rates), 0);
    ck_assert_double_eq(rates[5], 0.3);
    gsl_matrix_float_free(x);
    sp_codes_free(codes);
    sp_gen_free(g);
    gsl_rng_free(rng);
}
END_TEST

/* Background with no feature firing: projections on orthonormal
 * directions are b_i ~ U[0, beta): mean beta/2, variance beta^2/12. */
START_TEST(test_background)
{
    sp_gen_cfg c = base_cfg("features", 6, 6);
    strcpy(c.geometry, "orthonormal");
    strcpy(c.firing, "constant");
    c.p = 0;
    c.background = 0.2;
    const size_t B = 20000;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    sp_err e = {{0}};
    sp_gen *g = sp_gen_alloc(&c, B, rng, &e);
    ck_assert_msg(g != NULL, "%s", e.msg);
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, 6);
    sp_codes *codes = sp_codes_alloc(B, B * 6);
    sp_gen_batch(g, rng, B, codes, x);
    ck_assert_uint_eq(codes->nnz, 0); /* not in the codes */
    const gsl_matrix_float *G = sp_gen_truth(g);
    double worst_m = 0, worst_v = 0;
    for (int i = 0; i < 6; i++) {
        double s = 0, s2 = 0;
        for (size_t b = 0; b < B; b++) {
            double pr = 0;
            for (int j = 0; j < 6; j++)
                pr += gsl_matrix_float_get(x, b, (size_t)j) * gsl_matrix_float_get(G, (size_t)i, (size_t)j);
            s += pr;
            s2 += pr * pr;
        }
        double m = s / B, v = s2 / B - m * m;
        worst_m = fmax(worst_m, fabs(m - 0.1) / sqrt(0.04 / 12 / B));
        worst_v = fmax(worst_v, fabs(v - 0.04 / 12) / sqrt(0.04 * 0.04 / 180 / B));
    }
    ck_assert_msg(worst_m < 5 && worst_v < 5, "background mean %.1f s.e., variance %.1f s.e.",
                  worst_m, worst_v);
    gsl_matrix_float_free(x);
    sp_codes_free(codes);
    sp_gen_free(g);
    gsl_rng_free(rng);
}
END_TEST

/* A fixed dataset: every epoch visits each training sample exactly once;
 * the evaluation split is disjoint and read in order; same seed, same data. */
START_TEST(test_dataset_split)
{
    sp_gen_cfg c = base_cfg("features", 4, 4);
    strcpy(c.firing, "constant");
    c.p = 1; /* every row distinct (uniform magnitudes) */
    c.dataset = 100;
    c.holdout = 0.2;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    sp_err e = {{0}};
    sp_gen *g = sp_gen_alloc(&c, 40, rng, &e);
    ck_assert_msg(g != NULL, "%s", e.msg);
    ck_assert_uint_eq(sp_gen_split_size(g, SP_SPLIT_TRAIN), 80);
    ck_assert_uint_eq(sp_gen_split_size(g, SP_SPLIT_EVAL), 20);
    gsl_matrix_float *x = gsl_matrix_float_alloc(40, 4);
    float seen[160][4];
    for (int t = 0; t < 4; t++) { /* two epochs of 80 */
        sp_gen_batch(g, rng, 40, NULL, x);
        memcpy(seen[40 * t], x->data, 40 * 4 * sizeof(float));
    }
    /* each epoch is a permutation of the same 80 rows */
    int missing = 0;
    for (int i = 0; i < 80; i++) {
        int found = 0;
        for (int j = 80; j < 160; j++)
            found += !memcmp(seen[i], seen[j], sizeof seen[i]);
        missing += found != 1;
    }
    ck_assert_msg(missing == 0, "%d training rows not seen exactly once in epoch 2", missing);
    sp_gen_use_split(g, SP_SPLIT_EVAL);
    gsl_matrix_float *ev = gsl_matrix_float_alloc(40, 4);
    sp_gen_batch(g, rng, 40, NULL, ev);
    int overlap = 0;
    for (int i = 0; i < 20; i++) {
        ck_assert_int_eq(memcmp(ev->data + 4 * i, ev->data + 4 * (i + 20), 4 * sizeof(float)),
                         0); /* wraps in order */
        for (int j = 0; j < 80; j++)
            overlap += !memcmp(ev->data + 4 * i, seen[j], sizeof seen[j]);
    }
    ck_assert_int_eq(overlap, 0);
    gsl_matrix_float_free(ev);
    gsl_matrix_float_free(x);
    sp_gen_free(g);
    gsl_rng_free(rng);
}
END_TEST

/* The TMS generator: truth rows are the unit columns of the trained W and
 * x = W a, with codes a_i ||W_i||. */
START_TEST(test_tms_generator)
{
    sp_gen_cfg c = base_cfg("tms", 2, 5);
    strcpy(c.firing, "constant");
    c.p = 0.1;
    c.importance = 0.9;
    c.tms_steps = 300;
    c.tms_batch = 256;
    c.tms_lr = 1e-2;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    sp_err e = {{0}};
    sp_gen *g = sp_gen_alloc(&c, 1000, rng, &e);
    ck_assert_msg(g != NULL, "%s", e.msg);
    const float *W = sp_gen_tms_w(g);
    ck_assert_ptr_nonnull(W);
    const gsl_matrix_float *G = sp_gen_truth(g);
    double dir_err = 0;
    for (int i = 0; i < 5; i++) {
        double nrm = hypot(W[i], W[5 + i]);
        dir_err = fmax(dir_err, fabs(gsl_matrix_float_get(G, (size_t)i, 0) - W[i] / nrm));
        dir_err = fmax(dir_err, fabs(gsl_matrix_float_get(G, (size_t)i, 1) - W[5 + i] / nrm));
    }
    ck_assert_msg(dir_err < 1e-6, "truth rows are not the unit columns of W (%g)", dir_err);
    sp_codes *codes = sp_codes_alloc(1000, 5000);
    gsl_matrix_float *x = gsl_matrix_float_alloc(1000, 2);
    sp_gen_batch(g, rng, 1000, codes, x);
    double err = 0; /* h = W a, computed from the raw W */
    for (size_t b = 0; b < 1000; b++)
        for (int r = 0; r < 2; r++) {
            double h = 0;
            for (size_t q = codes->row[b]; q < codes->row[b + 1]; q++) {
                uint32_t i = codes->idx[q];
                double a = codes->val[q] / hypot(W[i], W[5 + i]);
                h += W[r * 5 + i] * a;
            }
            err = fmax(err, fabs(h - gsl_matrix_float_get(x, b, (size_t)r)));
        }
    ck_assert_msg(err < 1e-5, "h differs from W a by %g", err);
    gsl_matrix_float_free(x);
    sp_codes_free(codes);
    sp_gen_free(g);
    /* the toy model's own laws are fixed */
    strcpy(c.correlation, "copula");
    ck_assert_int_eq(sp_gen_check(&c, NULL, &e), -1);
    ck_assert_msg(strstr(e.msg, "tms"), "%s", e.msg);
    gsl_rng_free(rng);
}
END_TEST

START_TEST(test_check_laws)
{
    sp_err e;
    sp_gen_cfg c = base_cfg("features", 8, 4);
    strcpy(c.firing, "list");
    strcpy(c.probs, "0.1, 0.2");
    ck_assert_int_eq(sp_gen_check(&c, NULL, &e), -1);
    ck_assert_msg(strstr(e.msg, "data.probs") && strstr(e.msg, "2 values"), "%s", e.msg);
    strcpy(c.probs, "0.1, 0.2, x, 0.3");
    ck_assert_int_eq(sp_gen_check(&c, NULL, &e), -1);
    ck_assert_msg(strstr(e.msg, "not a number"), "%s", e.msg);
    strcpy(c.probs, "0.1, 0.2, 1.5, 0.3");
    ck_assert_int_eq(sp_gen_check(&c, NULL, &e), -1);
    ck_assert_msg(strstr(e.msg, "outside [0, 1]"), "%s", e.msg);
    c = base_cfg("features", 4, 8);
    strcpy(c.geometry, "orthonormal");
    ck_assert_int_eq(sp_gen_check(&c, NULL, &e), -1);
    ck_assert_msg(strstr(e.msg, "orthonormal") && strstr(e.msg, "8"), "%s", e.msg);
    c = base_cfg("features", 8, 4);
    strcpy(c.firing, "decay");
    c.k = 3.9;
    c.decay = 0.5; /* p_0 = 3.9 / (1 + .5 + .25 + .125) > 1 */
    ck_assert_int_eq(sp_gen_check(&c, NULL, &e), -1);
    ck_assert_msg(strstr(e.msg, "data.k"), "%s", e.msg);
    c = base_cfg("features", 8, 4);
    strcpy(c.mag.law, "uniform");
    c.mag.min = 2;
    c.mag.max = 1;
    ck_assert_int_eq(sp_gen_check(&c, NULL, &e), -1);
    ck_assert_msg(strstr(e.msg, "mag_min"), "%s", e.msg);
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
    TCase *tl = tcase_create("laws");
    tcase_set_timeout(tl, 120);
    tcase_add_test(tl, test_firing_laws);
    tcase_add_test(tl, test_magnitude_laws);
    tcase_add_test(tl, test_copula_cofiring);
    tcase_add_test(tl, test_exclusive_groups);
    tcase_add_test(tl, test_tree_matryoshka);
    tcase_add_test(tl, test_tree_latent_node);
    tcase_add_test(tl, test_tree_errors);
    tcase_add_test(tl, test_continuous);
    tcase_add_test(tl, test_background);
    tcase_add_test(tl, test_dataset_split);
    tcase_add_test(tl, test_tms_generator);
    tcase_add_test(tl, test_check_laws);
    suite_add_tcase(s, tl);
    return s;
}
