/* check_sae.c: the ReLU SAE's gradients against finite differences, the
 * unit-norm constraint, Adam against a hand-computed update, and recovery
 * of an easy ground truth. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_rng.h>

#include "helpers.h"
#include "superpose/gen.h"
#include "superpose/metrics.h"
#include "superpose/optim.h"
#include "superpose/sae.h"

static sp_sae_cfg relu_cfg(int pre_bias, int per_sample)
{
    sp_sae_cfg c;
    memset(&c, 0, sizeof c);
    strcpy(c.arch, "relu");
    c.ratio = 1;
    c.pre_bias = pre_bias;
    c.mse_per_sample = per_sample;
    return c;
}

static double loss_of(sp_learner *L, const gsl_matrix_float *x, double *l0)
{
    sp_loss ls;
    L->ops->loss_and_grad(L, x, &ls);
    *l0 = ls.l0;
    return ls.loss;
}

/* Central differences on every parameter entry. The loss is piecewise
 * quadratic in each entry (ReLU, L1 on non-negative codes), so the central
 * difference is exact up to rounding unless a ReLU kink lies within h; the
 * forward pass is float32 with the loss summed in double, so rounding in
 * the loss is ~1e-7 L, giving an absolute FD error ~1e-7 L / h. With
 * h = 1e-2 and L ~ 1 that is 1e-5; we allow 1e-3 relative to the largest
 * gradient entry of the tensor. Entries whose +-h perturbation switches a
 * code on or off (the number of active codes changes) cross a kink and are
 * skipped; at most a quarter of a tensor may be skipped. */
static void fd_check(int pre_bias, int per_sample, int per_latent)
{
    const size_t d = 6, m = 9, B = 5;
    sp_sae_cfg c = relu_cfg(pre_bias, per_sample);
    sp_penalty_cfg pen = {.name = "l1", .coef = 0.3, .per_latent = per_latent};
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 11);
    sp_err e;
    sp_learner *L = sp_sae_alloc(&c, &pen, d, m, B, 1000, rng, &e);
    ck_assert_ptr_nonnull(L);
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, d);
    for (size_t t = 0; t < B * d; t++)
        x->data[t] = (float)(2 * gsl_rng_uniform(rng) - 0.5);
    /* biases away from zero so that most codes are active */
    for (size_t p = 0; p < L->n_params; p++)
        if (!strcmp(L->params[p].name, "b_e"))
            for (size_t i = 0; i < m; i++)
                L->params[p].w[i] = (float)(0.3 + 0.2 * gsl_rng_uniform(rng));
    sp_loss ls;
    L->ops->loss_and_grad(L, x, &ls);
    ck_assert(ls.l0 > 0);
    for (size_t p = 0; p < L->n_params; p++) {
        sp_param *pr = &L->params[p];
        float *g = malloc(pr->n * sizeof *g);
        L->ops->loss_and_grad(L, x, &ls);
        memcpy(g, pr->g, pr->n * sizeof *g);
        double gmax = 0;
        for (size_t i = 0; i < pr->n; i++)
            gmax = fmax(gmax, fabs(g[i]));
        size_t misses = 0, skipped = 0;
        double worst = 0;
        const float h = 1e-2f;
        for (size_t i = 0; i < pr->n; i++) {
            float w0 = pr->w[i];
            double l0p, l0m;
            pr->w[i] = w0 + h;
            double lp = loss_of(L, x, &l0p);
            pr->w[i] = w0 - h;
            double lm = loss_of(L, x, &l0m);
            pr->w[i] = w0;
            if (l0p != ls.l0 || l0m != ls.l0) {
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
        ck_assert_msg(misses <= pr->n / 100, "%s (pre_bias %d, per_sample %d, per_latent %d): "
                      "%zu of %zu entries off, worst relative error %g",
                      pr->name, pre_bias, per_sample, per_latent, misses, pr->n, worst);
        free(g);
    }
    gsl_matrix_float_free(x);
    sp_learner_free(L);
    gsl_rng_free(rng);
}

START_TEST(test_fd_plain) { fd_check(0, 0, 0); }
END_TEST
START_TEST(test_fd_pre_bias) { fd_check(1, 0, 0); }
END_TEST
START_TEST(test_fd_per_sample_per_latent) { fd_check(1, 1, 1); }
END_TEST

/* Loss terms by hand: one latent, identity-like weights. */
START_TEST(test_loss_by_hand)
{
    sp_sae_cfg c = relu_cfg(0, 0);
    sp_penalty_cfg pen = {.name = "l1", .coef = 0.5, .per_latent = 0};
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    sp_err e;
    sp_learner *L = sp_sae_alloc(&c, &pen, 2, 1, 1, 1000, rng, &e);
    /* W_e = (1, 0), b_e = -0.25, W_d = (1, 0); x = (1, 2):
     * p = 0.75, f = 0.75, x_hat = (0.75, 0), r = (-0.25, -2)
     * mse = (0.0625 + 4) / 2 = 2.03125, penalty = 0.5 * 0.75 = 0.375 */
    L->params[0].w[0] = 1, L->params[0].w[1] = 0;
    L->params[1].w[0] = -0.25f;
    L->params[2].w[0] = 1, L->params[2].w[1] = 0;
    gsl_matrix_float *x = gsl_matrix_float_alloc(1, 2);
    x->data[0] = 1, x->data[1] = 2;
    sp_loss ls;
    L->ops->loss_and_grad(L, x, &ls);
    ck_assert_double_eq_tol(ls.mse, 2.03125, 1e-6);
    ck_assert_double_eq_tol(ls.penalty, 0.375, 1e-7);
    ck_assert_double_eq(ls.l0, 1.0);
    /* dW_d = f * 2 r / d = 0.75 * (-0.25, -2) = (-0.1875, -1.5) */
    ck_assert_double_eq_tol(L->params[2].g[0], -0.1875, 1e-6);
    ck_assert_double_eq_tol(L->params[2].g[1], -1.5, 1e-6);
    gsl_matrix_float_free(x);
    sp_learner_free(L);
    gsl_rng_free(rng);
}
END_TEST

/* The projected decoder gradient is orthogonal to each atom; after a step
 * every atom has unit norm again. */
START_TEST(test_unit_norm_constraint)
{
    const size_t d = 10, m = 20, B = 32;
    sp_sae_cfg c = relu_cfg(0, 0);
    sp_penalty_cfg pen = {.name = "l1", .coef = 0.1, .per_latent = 0};
    sp_optim_cfg oc = {.name = "adam", .lr = 0.05, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    sp_err e;
    sp_learner *L = sp_sae_alloc(&c, &pen, d, m, B, 1000, rng, &e);
    sp_optim *o = sp_optim_alloc(&oc, L->params, L->n_params, 100000);
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, d);
    for (size_t t = 0; t < B * d; t++)
        x->data[t] = (float)gsl_rng_uniform(rng);
    sp_loss ls;
    L->ops->loss_and_grad(L, x, &ls);
    L->ops->pre_step(L);
    double worst = 0;
    for (size_t i = 0; i < m; i++) {
        double dot = 0;
        for (size_t j = 0; j < d; j++)
            dot += gsl_matrix_float_get(L->decoder, i, j) * L->params[2].g[i * d + j];
        worst = fmax(worst, fabs(dot));
    }
    ck_assert_msg(worst < 1e-6, "projected gradient has component %g along its atom", worst);
    for (int s = 0; s < 20; s++)
        sp_train_step(L, o, x, NULL);
    for (size_t i = 0; i < m; i++) {
        double n2 = 0;
        for (size_t j = 0; j < d; j++)
            n2 += gsl_matrix_float_get(L->decoder, i, j) * gsl_matrix_float_get(L->decoder, i, j);
        ck_assert_double_eq_tol(n2, 1.0, 1e-5);
    }
    gsl_matrix_float_free(x);
    sp_optim_free(o);
    sp_learner_free(L);
    gsl_rng_free(rng);
}
END_TEST

/* Adam by hand (Kingma & Ba 2015, Alg. 1), lr 0.1, b1 0.9, b2 0.999,
 * eps 1e-8, gradients 2 then -1 on w0 = 1:
 *  t=1: m = 0.2, v = 0.004, mhat = 2, vhat = 4 -> w = 1 - 0.1 * 2/2 = 0.9
 *  t=2: m = 0.18 - 0.1 = 0.08, v = 0.003996 + 0.001 = 0.004996,
 *       mhat = 0.08/0.19 = 0.421053, vhat = 0.004996/0.001999 = 2.499250
 *       w = 0.9 - 0.1 * 0.421053 / 1.580902 = 0.873366 */
START_TEST(test_adam_by_hand)
{
    float w = 1, g = 2;
    sp_param p = {"w", &w, &g, 1, 1, 1, 1};
    sp_optim_cfg oc = {.name = "adam", .lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    sp_optim *o = sp_optim_alloc(&oc, &p, 1, 1000);
    sp_optim_step(o);
    ck_assert_double_eq_tol(w, 0.9, 1e-6);
    g = -1;
    sp_optim_step(o);
    ck_assert_double_eq_tol(w, 0.873366, 2e-6);
    /* after a reset the moments are zero: a gradient of 2 moves w by
     * lr * mhat / sqrt(vhat) with the bias corrections of step 3:
     * m = 0.2, v = 0.004, mhat = 0.2 / 0.271, vhat = 0.004 / 0.002997 */
    sp_optim_reset(o, 0, 0, 1);
    g = 2;
    float before = w;
    sp_optim_step(o);
    double mhat = 0.2 / (1 - 0.729), vhat = 0.004 / (1 - 0.997002999);
    ck_assert_double_eq_tol(before - w, 0.1 * mhat / (sqrt(vhat) + 1e-8), 2e-6);
    sp_optim_free(o);
    /* AdamW: decoupled decay subtracts lr * wd * w */
    w = 1, g = 0;
    oc.weight_decay = 0.5;
    o = sp_optim_alloc(&oc, &p, 1, 1000);
    sp_optim_step(o);
    ck_assert_double_eq_tol(w, 0.95, 1e-6);
    sp_optim_free(o);
}
END_TEST

/* Known answer: 8 orthonormal features in 16 dimensions, no superposition;
 * an SAE with 16 latents recovers all of them (MMCS > 0.99). (With exactly
 * 8 latents one that dies at initialisation is never revived: resampling
 * is the learners issue's business.) */
START_TEST(test_recovers_easy_truth)
{
    const size_t d = 16, n = 8, B = 64;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 5);
    gsl_matrix_float *truth = gsl_matrix_float_calloc(n, d);
    for (size_t i = 0; i < n; i++)
        gsl_matrix_float_set(truth, i, 2 * i, 1.0f);
    sp_sae_cfg c = relu_cfg(0, 1);
    sp_penalty_cfg pen = {.name = "l1", .coef = 0.05, .per_latent = 0};
    sp_optim_cfg oc = {.name = "adam", .lr = 3e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    sp_err e;
    sp_learner *L = sp_sae_alloc(&c, &pen, d, 2 * n, B, 100000, rng, &e);
    sp_optim *o = sp_optim_alloc(&oc, L->params, L->n_params, 100000);
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, d);
    for (int s = 0; s < 3000; s++) {
        gsl_matrix_float_set_zero(x);
        for (size_t b = 0; b < B; b++)
            for (size_t i = 0; i < n; i++)
                if (gsl_rng_uniform(rng) < 0.2)
                    gsl_matrix_float_set(x, b, 2 * i, (float)gsl_rng_uniform(rng));
        sp_train_step(L, o, x, NULL);
    }
    double mmcs = sp_metric_mmcs(truth, L->decoder, NULL);
    ck_assert_msg(mmcs > 0.99, "MMCS %g", mmcs);
    gsl_matrix_float_free(x);
    gsl_matrix_float_free(truth);
    sp_optim_free(o);
    sp_learner_free(L);
    gsl_rng_free(rng);
}
END_TEST

Suite *make_sae_suite(void)
{
    Suite *s = suite_create("sae");
    TCase *tc = tcase_create("relu");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_fd_plain);
    tcase_add_test(tc, test_fd_pre_bias);
    tcase_add_test(tc, test_fd_per_sample_per_latent);
    tcase_add_test(tc, test_loss_by_hand);
    tcase_add_test(tc, test_unit_norm_constraint);
    tcase_add_test(tc, test_adam_by_hand);
    tcase_add_test(tc, test_recovers_easy_truth);
    suite_add_tcase(s, tc);
    return s;
}
