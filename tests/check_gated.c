/* check_gated.c: the gated SAE (src/gated.c): every gradient against finite
 * differences, a loss and gradients solved by hand, the frozen decoder of
 * the auxiliary term, recovery of an easy ground truth, and resampling. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "helpers.h"
#include "superpose/metrics.h"
#include "superpose/optim.h"
#include "superpose/sae.h"

static sp_sae_cfg gated_cfg(int pre_bias, int per_sample)
{
    sp_sae_cfg c;
    memset(&c, 0, sizeof c);
    strcpy(c.arch, "gated");
    c.ratio = 1;
    c.pre_bias = pre_bias;
    c.mse_per_sample = per_sample;
    return c;
}

static sp_param *param(sp_learner *L, const char *name)
{
    for (size_t p = 0; p < L->n_params; p++)
        if (!strcmp(L->params[p].name, name))
            return &L->params[p];
    return NULL;
}

/* Pre-activations of the model, recomputed in double from the parameters:
 * pg, pm: (B, m). */
static void preacts(sp_learner *L, const gsl_matrix_float *x, double *pg, double *pm)
{
    size_t d = L->d, m = L->m;
    const float *wg = param(L, "W_g")->w, *bg = param(L, "b_g")->w;
    const float *rm = param(L, "r_mag")->w, *bm = param(L, "b_mag")->w;
    sp_param *pbd = param(L, "b_d");
    for (size_t b = 0; b < x->size1; b++)
        for (size_t i = 0; i < m; i++) {
            double z = 0;
            for (size_t j = 0; j < d; j++)
                z += ((double)gsl_matrix_float_get(x, b, j) - (pbd ? pbd->w[j] : 0.0)) *
                     wg[i * d + j];
            pg[b * m + i] = z + bg[i];
            pm[b * m + i] = z * exp((double)rm[i]) + bm[i];
        }
}

/* The auxiliary term with its decoder frozen at (wd0, bd0), recomputed in
 * double from the current encoder: c sum_b ||a_b W_d0 + b_d0 - x_b||^2.
 * pg: (B, m) gate pre-activations; bd0 may be NULL. */
static double aux_frozen(sp_learner *L, const gsl_matrix_float *x, const double *pg,
                         const float *wd0, const float *bd0, double c)
{
    size_t d = L->d, m = L->m;
    double sum = 0;
    for (size_t b = 0; b < x->size1; b++)
        for (size_t j = 0; j < d; j++) {
            double v = (bd0 ? bd0[j] : 0.0) - gsl_matrix_float_get(x, b, j);
            for (size_t i = 0; i < m; i++)
                v += (pg[b * m + i] > 0 ? pg[b * m + i] : 0.0) * wd0[i * d + j];
            sum += v * v;
        }
    return c * sum;
}

/* Which pieces of the piecewise-smooth loss we are on: per (b, i), 0 gate
 * shut, 1 gate open and magnitude <= 0, 2 latent active. */
static void pieces(sp_learner *L, const gsl_matrix_float *x, double *pg, double *pm, char *sig)
{
    preacts(L, x, pg, pm);
    for (size_t t = 0; t < x->size1 * L->m; t++)
        sig[t] = (char)(pg[t] > 0 ? (pm[t] > 0 ? 2 : 1) : 0);
}

/* Central differences on every entry of every parameter, of the loss whose
 * gradient the learner computes: mse + penalty + the auxiliary term with
 * its decoder (W_d, b_d) frozen at the current values (stop-gradient: the
 * aux term still depends on b_d through xc in the gate path). Except for r_mag
 * (through exp) and the tanh penalty, the loss is piecewise quadratic in
 * each single entry, so the central difference is exact up to rounding
 * unless an entry's +-h perturbation moves a gate or a magnitude across
 * zero (a kink, or for the Heaviside gate with an active magnitude a jump):
 * those entries are skipped, at most a quarter of a tensor. The forward
 * pass is float32 with the loss summed in double: rounding in the loss is
 * ~1e-7 L, an absolute FD error ~1e-7 L / h = 1e-5 L with h = 1e-2. The
 * smooth nonlinearities add the truncation error h^2/6 |L'''|: for r_mag
 * (terms in e^r and e^2r, r ~ 0.3) about 1.5e-4 of the gradient's scale,
 * for tanh(c a ||d||) with c = 4 about h^2 c^2 / 6 ~ 3e-4. Both sit below
 * the allowed 1e-3 of the largest gradient entry of the tensor. */
static void fd_check(int pre_bias, int per_sample, const char *penalty)
{
    const size_t d = 6, m = 9, B = 5;
    sp_sae_cfg c = gated_cfg(pre_bias, per_sample);
    sp_penalty_cfg pen = {.coef = 0.3, .c = 4};
    strcpy(pen.name, penalty);
    if (sp_penalty_check(&pen) != NULL)
        return; /* penalty not built yet (penalty.c is being extended) */
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 17);
    sp_err e;
    sp_learner *L = sp_gated_alloc(&c, &pen, d, m, B, 1000, rng, &e);
    ck_assert_msg(L != NULL, "%s", e.msg);
    ck_assert_int_eq(L->unit_norm, !sp_penalty_uses_dnorm(&pen));
    /* biases away from zero so that most gates are open and most
     * magnitudes positive; r_mag away from 0 so e^r is exercised; decoder
     * norms away from 1 so that dnorm penalties see them */
    for (size_t i = 0; i < m; i++) {
        param(L, "b_g")->w[i] = (float)(0.3 + 0.2 * gsl_rng_uniform(rng));
        param(L, "b_mag")->w[i] = (float)(0.3 + 0.2 * gsl_rng_uniform(rng));
        param(L, "r_mag")->w[i] = (float)(0.6 * gsl_rng_uniform(rng) - 0.3);
        float k = (float)(0.5 + gsl_rng_uniform(rng));
        for (size_t j = 0; j < d; j++)
            param(L, "W_d")->w[i * d + j] *= k;
    }
    if (pre_bias)
        for (size_t j = 0; j < d; j++)
            param(L, "b_d")->w[j] = (float)(0.2 * gsl_rng_uniform(rng) - 0.1);
    ck_assert_uint_eq(L->n_params, pre_bias ? 6 : 5);

    double *pg = malloc(B * m * sizeof *pg), *pm = malloc(B * m * sizeof *pm);
    char *sig0 = malloc(B * m), *sig = malloc(B * m);
    /* Inputs whose pre-activations all keep 0.05 from zero (a magnitude
     * only while its gate is open): a single entry moved by h = 1e-2
     * shifts a pre-activation by at most h |x - b_d| e^r or h |W_g| e^r,
     * below 0.03 here, so no kink is crossed and a perturbation of b_d,
     * which moves every sample, stays testable. Shut gates remain. */
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, d);
    for (size_t b = 0; b < B; b++) {
        gsl_matrix_float_view row = gsl_matrix_float_submatrix(x, b, 0, 1, d);
        int near;
        do {
            for (size_t j = 0; j < d; j++)
                gsl_matrix_float_set(x, b, j, (float)(2 * gsl_rng_uniform(rng) - 0.5));
            preacts(L, &row.matrix, pg, pm);
            near = 0;
            for (size_t i = 0; i < m; i++)
                near |= fabs(pg[i]) < 0.05 || (pg[i] > 0 && fabs(pm[i]) < 0.05);
        } while (near);
    }
    float *wd0 = malloc(m * d * sizeof *wd0), *bd0 = pre_bias ? malloc(d * sizeof *bd0) : NULL;
    memcpy(wd0, param(L, "W_d")->w, m * d * sizeof *wd0);
    if (bd0)
        memcpy(bd0, param(L, "b_d")->w, d * sizeof *bd0);
    double cc = per_sample ? 1.0 / (double)B : 1.0 / ((double)B * (double)d);
    sp_loss ls;
    for (size_t p = 0; p < L->n_params; p++) {
        sp_param *pr = &L->params[p];
        float *g = malloc(pr->n * sizeof *g);
        L->ops->loss_and_grad(L, x, &ls);
        ck_assert(ls.l0 > 0.5 * (double)m);
        ck_assert(ls.aux > 0 && ls.penalty > 0 && ls.reg == 0);
        memcpy(g, pr->g, pr->n * sizeof *g);
        pieces(L, x, pg, pm, sig0);
        /* the double recomputation agrees with the learner's aux term */
        ck_assert_double_eq_tol(aux_frozen(L, x, pg, wd0, bd0, cc), ls.aux, 1e-6 * ls.aux);
        double gmax = 0;
        for (size_t i = 0; i < pr->n; i++)
            gmax = fmax(gmax, fabs(g[i]));
        size_t misses = 0, skipped = 0;
        double worst = 0;
        const float h = 1e-2f;
        for (size_t i = 0; i < pr->n; i++) {
            float w0 = pr->w[i];
            int kink = 0;
            pr->w[i] = w0 + h;
            L->ops->loss_and_grad(L, x, &ls);
            pieces(L, x, pg, pm, sig);
            double lp = ls.mse + ls.penalty + aux_frozen(L, x, pg, wd0, bd0, cc);
            kink |= memcmp(sig, sig0, B * m) != 0;
            pr->w[i] = w0 - h;
            L->ops->loss_and_grad(L, x, &ls);
            pieces(L, x, pg, pm, sig);
            double lm = ls.mse + ls.penalty + aux_frozen(L, x, pg, wd0, bd0, cc);
            kink |= memcmp(sig, sig0, B * m) != 0;
            pr->w[i] = w0;
            if (kink) {
                skipped++;
                continue;
            }
            double fd = (lp - lm) / (2.0 * (double)h);
            double err = fabs(fd - g[i]) / fmax(gmax, 1e-12);
            worst = fmax(worst, err);
            misses += err > 1e-3;
        }
        ck_assert_msg(gmax > 0, "%s: zero gradient", pr->name);
        ck_assert_msg(skipped <= pr->n / 4, "%s: %zu of %zu entries cross a kink", pr->name,
                      skipped, pr->n);
        ck_assert_msg(misses == 0, "%s (pre_bias %d, per_sample %d, %s): %zu of %zu entries off, "
                      "worst relative error %g", pr->name, pre_bias, per_sample, penalty, misses,
                      pr->n, worst);
        free(g);
    }
    free(bd0);
    free(wd0);
    free(sig);
    free(sig0);
    free(pm);
    free(pg);
    gsl_matrix_float_free(x);
    sp_learner_free(L);
    gsl_rng_free(rng);
}

START_TEST(test_fd_l1) { fd_check(0, 0, "l1"); }
END_TEST
START_TEST(test_fd_l1_pre_bias) { fd_check(1, 0, "l1"); }
END_TEST
START_TEST(test_fd_l1_per_sample) { fd_check(1, 1, "l1"); }
END_TEST
START_TEST(test_fd_tanh) { fd_check(0, 0, "tanh"); }
END_TEST
START_TEST(test_fd_tanh_pre_bias) { fd_check(1, 0, "tanh"); }
END_TEST
START_TEST(test_fd_l1_dnorm_pre_bias) { fd_check(1, 0, "l1_dnorm"); }
END_TEST

/* One latent, d = 2, no b_d, c = 1/(B d) = 1/2, L1 with coefficient 0.5:
 *   x = (1, 2), W_g = (1, 0.5), b_g = -0.5, r_mag = ln 2, b_mag = 0.25,
 *   W_d = (0.6, 0.8)
 *   z = 1 + 1 = 2, pi_gate = 1.5 -> a = 1.5, pi_mag = 2 * 2 + 0.25 = 4.25
 *   f = 4.25, x_hat = (2.55, 3.4), x_hat - x = (1.55, 1.4)
 *   mse = (2.4025 + 1.96) / 2 = 2.18125
 *   penalty = 0.5 * 1.5 = 0.75
 *   x_aux = 1.5 (0.6, 0.8) = (0.9, 1.2), x_aux - x = (-0.1, -0.8)
 *   aux = (0.01 + 0.64) / 2 = 0.325;  loss = 3.25625
 * Gradients: dx_hat = 2c (x_hat - x) = (1.55, 1.4)
 *   df = dx_hat . W_d = 0.93 + 1.12 = 2.05 = dpi_mag = db_mag
 *   dr_mag = dpi_mag * z * e^r = 2.05 * 2 * 2 = 8.2
 *   da = 0.5 + (-0.1, -0.8) . W_d = 0.5 - 0.7 = -0.2 = dpi_gate = db_g
 *   dz = -0.2 + 2.05 * 2 = 3.9, dW_g = dz x = (3.9, 7.8)
 *   dW_d = f dx_hat = (6.5875, 5.95) (raw, before projection) */
START_TEST(test_by_hand)
{
    sp_sae_cfg c = gated_cfg(0, 0);
    sp_penalty_cfg pen = {.name = "l1", .coef = 0.5};
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    sp_err e;
    sp_learner *L = sp_gated_alloc(&c, &pen, 2, 1, 1, 1000, rng, &e);
    ck_assert_msg(L != NULL, "%s", e.msg);
    param(L, "W_g")->w[0] = 1, param(L, "W_g")->w[1] = 0.5f;
    param(L, "b_g")->w[0] = -0.5f;
    param(L, "r_mag")->w[0] = (float)log(2.0);
    param(L, "b_mag")->w[0] = 0.25f;
    param(L, "W_d")->w[0] = 0.6f, param(L, "W_d")->w[1] = 0.8f;
    gsl_matrix_float *x = gsl_matrix_float_alloc(1, 2), *f = gsl_matrix_float_alloc(1, 1);
    x->data[0] = 1, x->data[1] = 2;
    sp_loss ls;
    L->ops->loss_and_grad(L, x, &ls);
    ck_assert_double_eq_tol(ls.mse, 2.18125, 2e-6);
    ck_assert_double_eq_tol(ls.penalty, 0.75, 1e-7);
    ck_assert_double_eq_tol(ls.aux, 0.325, 1e-6);
    ck_assert_double_eq_tol(ls.loss, 3.25625, 3e-6);
    ck_assert_double_eq(ls.reg, 0);
    ck_assert_double_eq(ls.l0, 1);
    ck_assert_uint_eq(L->fires[0], 1);
    ck_assert_double_eq_tol(param(L, "r_mag")->g[0], 8.2, 1e-5);
    ck_assert_double_eq_tol(param(L, "b_mag")->g[0], 2.05, 1e-6);
    ck_assert_double_eq_tol(param(L, "b_g")->g[0], -0.2, 1e-6);
    ck_assert_double_eq_tol(param(L, "W_g")->g[0], 3.9, 1e-5);
    ck_assert_double_eq_tol(param(L, "W_g")->g[1], 7.8, 1e-5);
    ck_assert_double_eq_tol(param(L, "W_d")->g[0], 6.5875, 1e-5);
    ck_assert_double_eq_tol(param(L, "W_d")->g[1], 5.95, 1e-5);
    L->ops->encode(L, x, f);
    ck_assert_double_eq_tol(f->data[0], 4.25, 1e-6);
    /* gate shut (b_g = -2.5, pi_gate = -0.5): f = 0 whatever pi_mag, no
     * penalty, x_aux = 0 so aux = ||x||^2 / 2 = 2.5, and the main term
     * is the same 2.5 */
    param(L, "b_g")->w[0] = -2.5f;
    L->ops->loss_and_grad(L, x, &ls);
    ck_assert_double_eq(ls.l0, 0);
    ck_assert_double_eq(ls.penalty, 0);
    ck_assert_double_eq_tol(ls.aux, 2.5, 1e-6);
    ck_assert_double_eq_tol(ls.mse, 2.5, 1e-6);
    ck_assert_float_eq(param(L, "r_mag")->g[0], 0);
    ck_assert_float_eq(param(L, "b_g")->g[0], 0);
    ck_assert_uint_eq(L->fires[0], 1);
    gsl_matrix_float_free(f);
    gsl_matrix_float_free(x);
    sp_learner_free(L);
    gsl_rng_free(rng);
}
END_TEST

/* The auxiliary reconstruction trains only the gate path: dW_d must equal
 * f^T 2c (x_hat - x) (+ the dnorm term of P), recomputed here in double
 * from the parameters, and must differ from what an unfrozen aux decoder
 * would add (a^T 2c (x_aux - x)) for the check to mean anything. */
static void frozen_decoder(const char *penalty)
{
    const size_t d = 7, m = 5, B = 6;
    sp_sae_cfg c = gated_cfg(1, 0);
    sp_penalty_cfg pen = {.coef = 0.2, .c = 4};
    strcpy(pen.name, penalty);
    if (sp_penalty_check(&pen) != NULL)
        return; /* penalty not built yet */
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 3);
    sp_err e;
    sp_learner *L = sp_gated_alloc(&c, &pen, d, m, B, 1000, rng, &e);
    ck_assert_msg(L != NULL, "%s", e.msg);
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, d);
    for (size_t t = 0; t < B * d; t++)
        x->data[t] = (float)gsl_rng_uniform(rng);
    float *wd = param(L, "W_d")->w, *bd = param(L, "b_d")->w;
    for (size_t i = 0; i < m; i++) {
        param(L, "b_g")->w[i] = (float)(0.2 * gsl_rng_uniform(rng));
        param(L, "b_mag")->w[i] = (float)(0.5 * gsl_rng_uniform(rng) - 0.1);
        param(L, "r_mag")->w[i] = (float)(0.4 * gsl_rng_uniform(rng) - 0.2);
        for (size_t j = 0; j < d; j++)
            wd[i * d + j] *= 1.2f; /* norms away from 1 */
    }
    for (size_t j = 0; j < d; j++)
        bd[j] = (float)(0.1 * gsl_rng_uniform(rng));
    sp_loss ls;
    L->ops->loss_and_grad(L, x, &ls);
    ck_assert(ls.l0 > 0);

    double *pg = malloc(B * m * sizeof *pg), *pm = malloc(B * m * sizeof *pm);
    double *want = calloc(m * d, sizeof *want), *unfrozen = calloc(m * d, sizeof *unfrozen);
    float *a = malloc(B * m * sizeof *a), *ddn = calloc(m, sizeof *ddn);
    float *dn = malloc(m * sizeof *dn);
    preacts(L, x, pg, pm);
    double cc = 1.0 / ((double)B * (double)d);
    for (size_t b = 0; b < B; b++) {
        double r[16], ra[16];
        for (size_t j = 0; j < d; j++)
            r[j] = ra[j] = bd[j] - gsl_matrix_float_get(x, b, j);
        for (size_t i = 0; i < m; i++) {
            double ab = pg[b * m + i] > 0 ? pg[b * m + i] : 0;
            double fb = ab > 0 && pm[b * m + i] > 0 ? pm[b * m + i] : 0;
            a[b * m + i] = (float)ab;
            for (size_t j = 0; j < d; j++) {
                r[j] += fb * wd[i * d + j];
                ra[j] += ab * wd[i * d + j];
            }
        }
        for (size_t i = 0; i < m; i++) {
            double ab = a[b * m + i];
            double fb = ab > 0 && pm[b * m + i] > 0 ? pm[b * m + i] : 0;
            for (size_t j = 0; j < d; j++) {
                want[i * d + j] += fb * 2 * cc * r[j];
                unfrozen[i * d + j] += ab * 2 * cc * ra[j];
            }
        }
    }
    if (sp_penalty_uses_dnorm(&pen)) {
        for (size_t i = 0; i < m; i++) {
            double n2 = 0;
            for (size_t j = 0; j < d; j++)
                n2 += (double)wd[i * d + j] * wd[i * d + j];
            dn[i] = (float)sqrt(n2);
        }
        sp_penalty *P = sp_penalty_alloc(&pen, 1000);
        sp_penalty_eval(P, a, B, m, m, dn, NULL, ddn);
        sp_penalty_free(P);
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < d; j++)
                want[i * d + j] += (double)ddn[i] * wd[i * d + j] / dn[i];
    }
    const float *g = param(L, "W_d")->g;
    double gmax = 0, worst = 0, umax = 0;
    for (size_t t = 0; t < m * d; t++) {
        gmax = fmax(gmax, fabs(want[t]));
        umax = fmax(umax, fabs(unfrozen[t]));
    }
    for (size_t t = 0; t < m * d; t++)
        worst = fmax(worst, fabs(g[t] - want[t]) / gmax);
    ck_assert_msg(worst < 1e-5, "%s: dW_d off by %g of its largest entry", penalty, worst);
    ck_assert_msg(umax > 0.1 * gmax, "aux gradient too small (%g) to tell", umax);
    free(dn);
    free(ddn);
    free(a);
    free(unfrozen);
    free(want);
    free(pm);
    free(pg);
    gsl_matrix_float_free(x);
    sp_learner_free(L);
    gsl_rng_free(rng);
}

START_TEST(test_frozen_decoder_l1) { frozen_decoder("l1"); }
END_TEST
START_TEST(test_frozen_decoder_tanh) { frozen_decoder("tanh"); }
END_TEST

/* Known answer: 8 random orthonormal features in 16 dimensions, each
 * firing with p = 0.1 at a magnitude U[0, 1]; a gated SAE with 8 latents
 * finds them (MMCS of truth against decoder > 0.9). With as many latents
 * as features a latent lost early is never revived (no resampling here),
 * leaving MMCS at 7/8; this setting (no b_d, coef 0.2, 5000 steps) found
 * all 8 for each of seeds 1..100 (0.2 s each); weaker penalties mix the
 * features (any basis of their span reconstructs perfectly). */
START_TEST(test_recovers_easy_truth)
{
    const size_t d = 16, n = 8, B = 64;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 7);
    gsl_matrix_float *truth = gsl_matrix_float_alloc(n, d);
    for (size_t i = 0; i < n; i++) {
        float *t = gsl_matrix_float_ptr(truth, i, 0);
        for (;;) { /* Gram-Schmidt on a Gaussian draw */
            for (size_t j = 0; j < d; j++)
                t[j] = (float)gsl_ran_gaussian_ziggurat(rng, 1.0);
            for (size_t k = 0; k < i; k++) {
                const float *u = gsl_matrix_float_const_ptr(truth, k, 0);
                double dot = 0;
                for (size_t j = 0; j < d; j++)
                    dot += (double)t[j] * u[j];
                for (size_t j = 0; j < d; j++)
                    t[j] -= (float)dot * u[j];
            }
            double n2 = 0;
            for (size_t j = 0; j < d; j++)
                n2 += (double)t[j] * t[j];
            if (n2 > 1e-2) {
                for (size_t j = 0; j < d; j++)
                    t[j] /= (float)sqrt(n2);
                break;
            }
        }
    }
    sp_sae_cfg c = gated_cfg(0, 1);
    sp_penalty_cfg pen = {.name = "l1", .coef = 0.2};
    sp_optim_cfg oc;
    memset(&oc, 0, sizeof oc);
    strcpy(oc.name, "adam");
    strcpy(oc.decay, "none");
    oc.lr = 3e-3, oc.beta1 = 0.9, oc.beta2 = 0.999, oc.eps = 1e-8;
    const long steps = 5000;
    sp_err e;
    sp_learner *L = sp_gated_alloc(&c, &pen, d, n, B, steps, rng, &e);
    ck_assert_msg(L != NULL, "%s", e.msg);
    sp_optim *o = sp_optim_alloc(&oc, L->params, L->n_params, steps);
    ck_assert_ptr_nonnull(o);
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, d);
    sp_loss ls;
    for (long s = 0; s < steps; s++) {
        gsl_matrix_float_set_zero(x);
        for (size_t b = 0; b < B; b++)
            for (size_t i = 0; i < n; i++)
                if (gsl_rng_uniform(rng) < 0.1) {
                    float v = (float)gsl_rng_uniform(rng);
                    for (size_t j = 0; j < d; j++)
                        *gsl_matrix_float_ptr(x, b, j) += v * gsl_matrix_float_get(truth, i, j);
                }
        double loss = sp_train_step(L, o, x, &ls);
        ck_assert(isfinite(loss));
    }
    ck_assert_int_eq(L->step, steps);
    for (size_t i = 0; i < n; i++) { /* atoms stay unit norm */
        double n2 = 0;
        for (size_t j = 0; j < d; j++)
            n2 += gsl_matrix_float_get(L->decoder, i, j) * gsl_matrix_float_get(L->decoder, i, j);
        ck_assert_double_eq_tol(n2, 1.0, 1e-5);
    }
    double mmcs = sp_metric_mmcs(truth, L->decoder, NULL);
    ck_assert_msg(mmcs > 0.9, "MMCS %g (last loss %g, l0 %g)", mmcs, ls.loss, ls.l0);
    gsl_matrix_float_free(x);
    gsl_matrix_float_free(truth);
    sp_optim_free(o);
    sp_learner_free(L);
    gsl_rng_free(rng);
}
END_TEST

/* reinit: latent i's decoder row = dir, gate row = dir * enc_norm, b_g,
 * b_mag, r_mag = 0, nothing else touched; and the optimizer state of
 * exactly those entries is reset. Adam with zero gradient moves an entry
 * iff its first moment is nonzero, so after a step with real gradients,
 * the reinit and a step with all gradients zeroed, latent i's entries
 * stay where reinit put them and the others move. */
START_TEST(test_reinit)
{
    const size_t d = 5, m = 4, B = 8, li = 2;
    sp_sae_cfg c = gated_cfg(1, 0);
    sp_penalty_cfg pen = {.name = "l1", .coef = 0.1};
    sp_optim_cfg oc;
    memset(&oc, 0, sizeof oc);
    strcpy(oc.name, "adam");
    strcpy(oc.decay, "none");
    oc.lr = 1e-2, oc.beta1 = 0.9, oc.beta2 = 0.999, oc.eps = 1e-8;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 23);
    sp_err e;
    sp_learner *L = sp_gated_alloc(&c, &pen, d, m, B, 100, rng, &e);
    ck_assert_msg(L != NULL, "%s", e.msg);
    ck_assert_ptr_eq(L->enc_rows, L->encoder);
    ck_assert_ptr_eq(L->decoder->data, param(L, "W_d")->w);
    ck_assert_ptr_eq(L->decoder_grad->data, param(L, "W_d")->g);
    ck_assert_ptr_eq(L->encoder->data, param(L, "W_g")->w);
    for (size_t i = 0; i < m; i++) { /* open gates: every entry gets a gradient */
        param(L, "b_g")->w[i] = 0.5f;
        param(L, "b_mag")->w[i] = 0.5f;
        param(L, "r_mag")->w[i] = 0.1f;
    }
    sp_optim *o = sp_optim_alloc(&oc, L->params, L->n_params, 100);
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, d);
    for (size_t t = 0; t < B * d; t++)
        x->data[t] = (float)gsl_rng_uniform(rng);
    sp_train_step(L, o, x, NULL);

    float dir[5] = {0.6f, 0, -0.8f, 0, 0};
    const float enc_norm = 0.3f;
    size_t n_all = 0;
    for (size_t p = 0; p < L->n_params; p++)
        n_all += L->params[p].n;
    float *before = malloc(n_all * sizeof *before);
    for (size_t p = 0, off = 0; p < L->n_params; off += L->params[p].n, p++)
        memcpy(before + off, L->params[p].w, L->params[p].n * sizeof *before);
    L->ops->reinit(L, o, li, dir, enc_norm);
    /* which entries reinit may touch (row li of the matrices, entry li of
     * the per-latent vectors; never b_d) */
    size_t moved = 0, others = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t p = 0, off = 0; p < L->n_params; off += L->params[p].n, p++) {
            const sp_param *pr = &L->params[p];
            int matrix = pr->rows == m && pr->cols == d, latent = pr->n == m && pr->rows == 1;
            ck_assert(matrix || latent || !strcmp(pr->name, "b_d"));
            for (size_t t = 0; t < pr->n; t++) {
                int mine = (matrix && t / d == li) || (latent && t == li);
                float w = pr->w[t];
                if (pass == 0 && !mine) {
                    ck_assert_float_eq(w, before[off + t]);
                } else if (mine) {
                    float expect = 0;
                    if (!strcmp(pr->name, "W_d"))
                        expect = dir[t % d];
                    else if (!strcmp(pr->name, "W_g"))
                        expect = dir[t % d] * enc_norm;
                    ck_assert_msg(w == expect, "pass %d: %s[%zu] = %g, expected %g", pass,
                                  pr->name, t, w, expect);
                } else {
                    moved += w != before[off + t];
                    others++;
                }
            }
        }
        if (pass == 0) { /* a step with zero gradients, decoder constraint off */
            for (size_t p = 0; p < L->n_params; p++)
                memset(L->params[p].g, 0, L->params[p].n * sizeof(float));
            sp_optim_step(o);
        }
    }
    ck_assert_msg(moved == others, "only %zu of %zu untouched entries kept momentum", moved,
                  others);
    free(before);
    gsl_matrix_float_free(x);
    sp_optim_free(o);
    sp_learner_free(L);
    gsl_rng_free(rng);
}
END_TEST

/* Allocation rejects what the gated SAE cannot use; encode works in blocks
 * for batches larger than max_batch and agrees with loss_and_grad's L0. */
START_TEST(test_alloc_and_encode)
{
    sp_sae_cfg c = gated_cfg(1, 0);
    sp_penalty_cfg bad = {.name = "nosuch", .coef = 0.1};
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    sp_err e;
    e.msg[0] = 0;
    ck_assert_ptr_null(sp_gated_alloc(&c, &bad, 4, 3, 2, 10, rng, &e));
    ck_assert(e.msg[0] != 0);
    sp_penalty_cfg pen = {.name = "l1", .coef = 0.1};
    e.msg[0] = 0;
    ck_assert_ptr_null(sp_gated_alloc(&c, &pen, 4, 0, 2, 10, rng, &e));
    ck_assert(e.msg[0] != 0);
    /* initialisation: unit atoms, W_g = W_d, zero biases and r_mag */
    sp_learner *L = sp_gated_alloc(&c, &pen, 4, 3, 2, 10, rng, &e);
    ck_assert_msg(L != NULL, "%s", e.msg);
    ck_assert_int_eq(L->unit_norm, 1);
    for (size_t t = 0; t < 12; t++)
        ck_assert_float_eq(param(L, "W_g")->w[t], param(L, "W_d")->w[t]);
    for (size_t i = 0; i < 3; i++) {
        double n2 = 0;
        for (size_t j = 0; j < 4; j++)
            n2 += gsl_matrix_float_get(L->decoder, i, j) * gsl_matrix_float_get(L->decoder, i, j);
        ck_assert_double_eq_tol(n2, 1, 1e-6);
        ck_assert_float_eq(param(L, "b_g")->w[i], 0);
        ck_assert_float_eq(param(L, "b_mag")->w[i], 0);
        ck_assert_float_eq(param(L, "r_mag")->w[i], 0);
    }
    for (size_t j = 0; j < 4; j++)
        ck_assert_float_eq(param(L, "b_d")->w[j], 0);
    gsl_matrix_float *x = gsl_matrix_float_alloc(5, 4), *f = gsl_matrix_float_alloc(5, 3);
    gsl_matrix_float *xh = gsl_matrix_float_alloc(5, 4);
    for (size_t t = 0; t < 20; t++)
        x->data[t] = (float)gsl_rng_uniform(rng) - 0.3f;
    for (size_t i = 0; i < 3; i++)
        param(L, "b_g")->w[i] = 0.1f;
    L->ops->encode(L, x, f);
    L->ops->decode(L, f, xh);
    size_t active = 0;
    for (size_t b0 = 0; b0 < 5; b0 += 2) {
        size_t nb = 5 - b0 < 2 ? 5 - b0 : 2;
        gsl_matrix_float_view xv = gsl_matrix_float_submatrix(x, b0, 0, nb, 4);
        sp_loss ls;
        L->ops->loss_and_grad(L, &xv.matrix, &ls);
        active += (size_t)(ls.l0 * (double)nb + 0.5);
    }
    size_t enc_active = 0;
    for (size_t t = 0; t < 15; t++)
        enc_active += f->data[t] > 0;
    ck_assert_uint_eq(active, enc_active);
    ck_assert(active > 0);
    gsl_matrix_float_free(xh);
    gsl_matrix_float_free(f);
    gsl_matrix_float_free(x);
    sp_learner_free(L);
    gsl_rng_free(rng);
}
END_TEST

Suite *make_gated_suite(void)
{
    Suite *s = suite_create("gated");
    TCase *tc = tcase_create("gated");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_fd_l1);
    tcase_add_test(tc, test_fd_l1_pre_bias);
    tcase_add_test(tc, test_fd_l1_per_sample);
    tcase_add_test(tc, test_fd_tanh);
    tcase_add_test(tc, test_fd_tanh_pre_bias);
    tcase_add_test(tc, test_fd_l1_dnorm_pre_bias);
    tcase_add_test(tc, test_by_hand);
    tcase_add_test(tc, test_frozen_decoder_l1);
    tcase_add_test(tc, test_frozen_decoder_tanh);
    tcase_add_test(tc, test_recovers_easy_truth);
    tcase_add_test(tc, test_reinit);
    tcase_add_test(tc, test_alloc_and_encode);
    suite_add_tcase(s, tc);
    return s;
}
