/* check_stacked.c: the stacked residual TopK learner: gradients against
 * finite differences, forward passes computed by hand (one layer = a plain
 * TopK SAE; two layers = the second codes the first's residual), decode of
 * encode against the forward pass, resampling, training on an easy ground
 * truth, and configuration errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "helpers.h"
#include "superpose/metrics.h"
#include "superpose/optim.h"
#include "superpose/sae.h"

static sp_sae_cfg stacked_cfg(int layers, int k, int pre_bias, int per_sample)
{
    sp_sae_cfg c;
    memset(&c, 0, sizeof c);
    strcpy(c.arch, "stacked");
    c.pre_bias = pre_bias;
    c.mse_per_sample = per_sample;
    c.layers = layers;
    c.k = k;
    return c;
}

/* Parameter p of L by name (W_e, b_e, W_d, b_d), or NULL. */
static sp_param *param(sp_learner *L, const char *name)
{
    for (size_t p = 0; p < L->n_params; p++)
        if (!strcmp(L->params[p].name, name))
            return &L->params[p];
    return NULL;
}

/* Random parameters: W_e and W_d independent (the initialisation ties them,
 * which would hide a transposed index), biases away from zero. */
static void randomise(sp_learner *L, gsl_rng *rng, double be_lo, double be_hi)
{
    sp_param *we = param(L, "W_e"), *be = param(L, "b_e"), *wd = param(L, "W_d");
    sp_param *bd = param(L, "b_d");
    for (size_t t = 0; t < we->n; t++)
        we->w[t] = (float)gsl_ran_gaussian(rng, 0.6);
    for (size_t i = 0; i < be->n; i++)
        be->w[i] = (float)(be_lo + (be_hi - be_lo) * gsl_rng_uniform(rng));
    for (size_t t = 0; t < wd->n; t++)
        wd->w[t] = (float)gsl_ran_gaussian(rng, 0.6);
    if (bd)
        for (size_t j = 0; j < bd->n; j++)
            bd->w[j] = (float)gsl_ran_gaussian(rng, 0.3);
}

static void random_x(gsl_matrix_float *x, gsl_rng *rng)
{
    for (size_t t = 0; t < x->size1 * x->size2; t++)
        x->data[t] = (float)(2 * gsl_rng_uniform(rng) - 0.5);
}

/* 1 if a and b (both B x m) have the same nonzero pattern. */
static int same_mask(const gsl_matrix_float *a, const gsl_matrix_float *b)
{
    for (size_t t = 0; t < a->size1 * a->size2; t++)
        if ((a->data[t] != 0) != (b->data[t] != 0))
            return 0;
    return 1;
}

/* Central differences on every parameter entry. For a fixed TopK mask the
 * residual r_L is affine in any single parameter entry (each layer's
 * residual is affine in the previous one and in its own weights), so the
 * loss is quadratic in it and the central difference is exact up to
 * rounding. Entries whose +-h perturbation changes any layer's selected set
 * (the nonzero pattern of the codes) cross a kink and are skipped; at most
 * a quarter of a tensor may be. Rounding: the forward pass is float32 and
 * the loss is summed in double, so the loss carries a relative error of a
 * few 1e-7 per layer, and the difference quotient an absolute error of
 * about 1e-7 L_loss / h = 1e-5 L_loss with h = 1e-2 (the step is taken as
 * the float difference actually applied). Gradient entries are of the
 * order of the loss, so 1e-3 of the tensor's largest entry leaves a margin
 * of about 100. */
static void fd_check(int layers, int pre_bias, int per_sample)
{
    const size_t d = 6, ml = 4, B = 5, m = ml * (size_t)layers;
    sp_sae_cfg c = stacked_cfg(layers, 2, pre_bias, per_sample);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 17 + (unsigned long)layers);
    sp_err e;
    sp_learner *L = sp_stacked_alloc(&c, d, m, B, 1000, rng, &e);
    ck_assert_msg(L != NULL, "%s", e.msg);
    randomise(L, rng, 0.2, 0.6);
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, d);
    gsl_matrix_float *f0 = gsl_matrix_float_alloc(B, m), *f1 = gsl_matrix_float_alloc(B, m);
    random_x(x, rng);
    sp_loss ls;
    L->ops->loss_and_grad(L, x, &ls);
    ck_assert(ls.l0 > 0);
    L->ops->encode(L, x, f0);
    for (size_t p = 0; p < L->n_params; p++) {
        sp_param *pr = &L->params[p];
        float *g = malloc(pr->n * sizeof *g);
        L->ops->loss_and_grad(L, x, &ls);
        memcpy(g, pr->g, pr->n * sizeof *g);
        double gmax = 0;
        for (size_t i = 0; i < pr->n; i++)
            gmax = fmax(gmax, fabs(g[i]));
        size_t skipped = 0;
        double worst = 0;
        const float h = 1e-2f;
        for (size_t i = 0; i < pr->n; i++) {
            float w0 = pr->w[i], wp = w0 + h, wm = w0 - h;
            int same = 1;
            pr->w[i] = wp;
            L->ops->loss_and_grad(L, x, &ls);
            double lp = ls.loss;
            L->ops->encode(L, x, f1);
            same = same && same_mask(f0, f1);
            pr->w[i] = wm;
            L->ops->loss_and_grad(L, x, &ls);
            double lm = ls.loss;
            L->ops->encode(L, x, f1);
            same = same && same_mask(f0, f1);
            pr->w[i] = w0;
            if (!same) {
                skipped++;
                continue;
            }
            double fd = (lp - lm) / ((double)wp - (double)wm);
            worst = fmax(worst, fabs(fd - g[i]) / fmax(gmax, 1e-12));
        }
        ck_assert_msg(gmax > 0, "%s: zero gradient", pr->name);
        ck_assert_msg(skipped <= pr->n / 4, "%s (layers %d): %zu of %zu entries cross a kink",
                      pr->name, layers, skipped, pr->n);
        ck_assert_msg(worst < 1e-3, "%s (layers %d, pre_bias %d, per_sample %d): worst "
                      "relative error %g", pr->name, layers, pre_bias, per_sample, worst);
        free(g);
    }
    gsl_matrix_float_free(f1);
    gsl_matrix_float_free(f0);
    gsl_matrix_float_free(x);
    sp_learner_free(L);
    gsl_rng_free(rng);
}

START_TEST(test_fd_one_layer) { fd_check(1, 0, 0); }
END_TEST
START_TEST(test_fd_one_layer_pre_bias) { fd_check(1, 1, 1); }
END_TEST
START_TEST(test_fd_two_layers) { fd_check(2, 0, 1); }
END_TEST
START_TEST(test_fd_two_layers_pre_bias) { fd_check(2, 1, 0); }
END_TEST
START_TEST(test_fd_three_layers) { fd_check(3, 0, 0); }
END_TEST
START_TEST(test_fd_three_layers_pre_bias) { fd_check(3, 1, 1); }
END_TEST

/* TopK by hand, in double: the k largest of z[0..n) (ties to the lower
 * index) that are > 0, by repeated arg-max. */
static void hand_topk(const double *z, size_t n, size_t k, double *f)
{
    int taken[64] = {0};
    for (size_t i = 0; i < n; i++)
        f[i] = 0;
    for (size_t t = 0; t < k; t++) {
        size_t best = n;
        for (size_t i = 0; i < n; i++)
            if (!taken[i] && (best == n || z[i] > z[best]))
                best = i;
        taken[best] = 1;
        if (z[best] > 0)
            f[best] = z[best];
    }
}

/* The stacked forward pass by hand, in double, for one sample x (d):
 * codes f (m) and reconstruction xhat (d). */
static void hand_forward(sp_learner *L, int layers, size_t k, const float *x, double *f,
                         double *xhat)
{
    size_t d = L->d, m = L->m, ml = m / (size_t)layers;
    sp_param *we = param(L, "W_e"), *be = param(L, "b_e"), *wd = param(L, "W_d");
    sp_param *bd = param(L, "b_d");
    double r[64], z[64];
    for (size_t j = 0; j < d; j++) {
        r[j] = x[j] - (bd ? bd->w[j] : 0.0);
        xhat[j] = bd ? bd->w[j] : 0.0;
    }
    for (int l = 0; l < layers; l++) {
        size_t o = (size_t)l * ml;
        for (size_t i = 0; i < ml; i++) {
            z[i] = be->w[o + i];
            for (size_t j = 0; j < d; j++)
                z[i] += r[j] * we->w[(o + i) * d + j];
        }
        hand_topk(z, ml, k, f + o);
        for (size_t i = 0; i < ml; i++)
            for (size_t j = 0; j < d; j++) {
                r[j] -= f[o + i] * wd->w[(o + i) * d + j];
                xhat[j] += f[o + i] * wd->w[(o + i) * d + j];
            }
    }
}

/* With every pre-activation positive (large b_e), each layer keeps exactly
 * k latents per sample, and they are its k largest pre-activations; fires
 * counts them. */
START_TEST(test_exactly_k_per_layer)
{
    const size_t d = 5, ml = 6, B = 7, k = 2;
    const int layers = 3;
    const size_t m = ml * (size_t)layers;
    sp_sae_cfg c = stacked_cfg(layers, (int)k, 1, 0);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 3);
    sp_err e;
    sp_learner *L = sp_stacked_alloc(&c, d, m, B, 1000, rng, &e);
    ck_assert_msg(L != NULL, "%s", e.msg);
    randomise(L, rng, 20, 21);
    /* small atoms keep the residuals, hence the later pre-activations, near x */
    sp_param *wd = param(L, "W_d");
    for (size_t t = 0; t < wd->n; t++)
        wd->w[t] *= 0.01f;
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, d), *f = gsl_matrix_float_alloc(B, m);
    random_x(x, rng);
    sp_loss ls;
    L->ops->loss_and_grad(L, x, &ls);
    ck_assert_double_eq(ls.l0, (double)(layers * (int)k));
    unsigned long total = 0;
    for (size_t i = 0; i < m; i++)
        total += L->fires[i];
    ck_assert_uint_eq(total, B * k * (size_t)layers);
    L->ops->encode(L, x, f);
    double hf[64], hx[64];
    for (size_t b = 0; b < B; b++) {
        hand_forward(L, layers, k, gsl_matrix_float_const_ptr(x, b, 0), hf, hx);
        for (int l = 0; l < layers; l++) {
            size_t kept = 0;
            for (size_t i = 0; i < ml; i++) {
                float v = gsl_matrix_float_get(f, b, (size_t)l * ml + i);
                kept += v != 0;
                ck_assert_msg(fabs(v - hf[(size_t)l * ml + i]) < 1e-4,
                              "sample %zu layer %d latent %zu: %g, by hand %g", b, l, i, v,
                              hf[(size_t)l * ml + i]);
            }
            ck_assert_uint_eq(kept, k);
        }
    }
    gsl_matrix_float_free(f);
    gsl_matrix_float_free(x);
    sp_learner_free(L);
    gsl_rng_free(rng);
}
END_TEST

/* One layer is a plain TopK SAE: f = TopK_k((x - b_d) W_e^T + b_e),
 * x_hat = b_d + f W_d, computed here without the library. */
START_TEST(test_one_layer_is_topk_sae)
{
    const size_t d = 7, m = 10, B = 6, k = 3;
    sp_sae_cfg c = stacked_cfg(1, (int)k, 1, 1);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 4);
    sp_err e;
    sp_learner *L = sp_stacked_alloc(&c, d, m, B, 1000, rng, &e);
    ck_assert_msg(L != NULL, "%s", e.msg);
    randomise(L, rng, -0.3, 0.3);
    sp_param *we = param(L, "W_e"), *be = param(L, "b_e"), *wd = param(L, "W_d");
    sp_param *bd = param(L, "b_d");
    ck_assert_ptr_nonnull(bd);
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, d), *f = gsl_matrix_float_alloc(B, m);
    random_x(x, rng);
    sp_loss ls;
    L->ops->loss_and_grad(L, x, &ls);
    L->ops->encode(L, x, f);
    double sse = 0, active = 0;
    for (size_t b = 0; b < B; b++) {
        double z[16], hf[16];
        for (size_t i = 0; i < m; i++) {
            z[i] = be->w[i];
            for (size_t j = 0; j < d; j++)
                z[i] += (gsl_matrix_float_get(x, b, j) - bd->w[j]) * we->w[i * d + j];
        }
        hand_topk(z, m, k, hf);
        for (size_t i = 0; i < m; i++) {
            ck_assert_double_eq_tol(gsl_matrix_float_get(f, b, i), hf[i], 1e-5);
            active += hf[i] != 0;
        }
        for (size_t j = 0; j < d; j++) {
            double xh = bd->w[j];
            for (size_t i = 0; i < m; i++)
                xh += hf[i] * wd->w[i * d + j];
            double r = gsl_matrix_float_get(x, b, j) - xh;
            sse += r * r;
        }
    }
    ck_assert_msg(active > 0 && active < (double)(B * k), "active %g: test needs both cases",
                  active);
    ck_assert_double_eq_tol(ls.mse, sse / (double)B, 1e-5 * sse);
    ck_assert_double_eq(ls.loss, ls.mse);
    ck_assert_double_eq(ls.penalty + ls.aux + ls.reg, 0);
    ck_assert_double_eq_tol(ls.l0, active / (double)B, 1e-12);
    gsl_matrix_float_free(f);
    gsl_matrix_float_free(x);
    sp_learner_free(L);
    gsl_rng_free(rng);
}
END_TEST

/* Two layers code residuals. d = 3, k = 1; layer 0 atoms e1, e2, layer 1
 * atoms a = (0.6, 0.8, 0), e3 (encoder = decoder, b_e = 0); x = (3, 2, 1):
 *   layer 0: z = (3, 2)   -> f = (3, 0),   r_1 = (0, 2, 1)
 *   layer 1: z = (1.6, 1) -> f = (1.6, 0), r_2 = (-0.96, 0.72, 1)
 * (on x itself layer 1 would see z = (3.4, 1)); x_hat = (3.96, 1.28, 0),
 * mse = (0.9216 + 0.5184 + 1) / 3 = 2.44 / 3. Gradients, c = 1/3:
 * g_2 = 2 c r_2 = (-0.64, 0.48, 2/3); dW_d row 2 (a) = -1.6 g_2. */
START_TEST(test_two_layers_code_the_residual)
{
    sp_sae_cfg c = stacked_cfg(2, 1, 0, 0);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    sp_err e;
    sp_learner *L = sp_stacked_alloc(&c, 3, 4, 1, 1000, rng, &e);
    ck_assert_msg(L != NULL, "%s", e.msg);
    const float atoms[4][3] = {{1, 0, 0}, {0, 1, 0}, {0.6f, 0.8f, 0}, {0, 0, 1}};
    sp_param *we = param(L, "W_e"), *be = param(L, "b_e"), *wd = param(L, "W_d");
    ck_assert_ptr_null(param(L, "b_d"));
    for (size_t i = 0; i < 4; i++) {
        be->w[i] = 0;
        for (size_t j = 0; j < 3; j++)
            we->w[i * 3 + j] = wd->w[i * 3 + j] = atoms[i][j];
    }
    gsl_matrix_float *x = gsl_matrix_float_alloc(1, 3), *f = gsl_matrix_float_alloc(1, 4);
    gsl_matrix_float *xh = gsl_matrix_float_alloc(1, 3);
    x->data[0] = 3, x->data[1] = 2, x->data[2] = 1;
    sp_loss ls;
    L->ops->loss_and_grad(L, x, &ls);
    ck_assert_double_eq_tol(ls.mse, 2.44 / 3, 1e-6);
    ck_assert_double_eq(ls.l0, 2);
    const double g2[3] = {-0.64, 0.48, 2.0 / 3};
    for (size_t j = 0; j < 3; j++)
        ck_assert_double_eq_tol(wd->g[2 * 3 + j], -1.6 * g2[j], 1e-6);
    L->ops->encode(L, x, f);
    const double want_f[4] = {3, 0, 1.6, 0}, want_xh[3] = {3.96, 1.28, 0};
    for (size_t i = 0; i < 4; i++)
        ck_assert_double_eq_tol(f->data[i], want_f[i], 1e-6);
    L->ops->decode(L, f, xh);
    for (size_t j = 0; j < 3; j++)
        ck_assert_double_eq_tol(xh->data[j], want_xh[j], 1e-6);
    ck_assert_uint_eq(L->fires[0], 1);
    ck_assert_uint_eq(L->fires[1], 0);
    ck_assert_uint_eq(L->fires[2], 1);
    ck_assert_uint_eq(L->fires[3], 0);
    gsl_matrix_float_free(xh);
    gsl_matrix_float_free(f);
    gsl_matrix_float_free(x);
    sp_learner_free(L);
    gsl_rng_free(rng);
}
END_TEST

/* decode(encode(x)) is the x_hat of the forward pass: it matches the
 * layer-by-layer reconstruction by hand, and its squared error is the mse
 * that loss_and_grad reports. */
START_TEST(test_decode_encode_is_forward)
{
    const size_t d = 8, ml = 5, B = 9, k = 2;
    const int layers = 3;
    const size_t m = ml * (size_t)layers;
    sp_sae_cfg c = stacked_cfg(layers, (int)k, 1, 0);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 8);
    sp_err e;
    sp_learner *L = sp_stacked_alloc(&c, d, m, B, 1000, rng, &e);
    ck_assert_msg(L != NULL, "%s", e.msg);
    randomise(L, rng, -0.2, 0.4);
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, d), *f = gsl_matrix_float_alloc(B, m);
    gsl_matrix_float *xh = gsl_matrix_float_alloc(B, d);
    random_x(x, rng);
    sp_loss ls;
    L->ops->loss_and_grad(L, x, &ls);
    L->ops->encode(L, x, f);
    L->ops->decode(L, f, xh);
    double sse = 0, hf[64], hx[64];
    for (size_t b = 0; b < B; b++) {
        hand_forward(L, layers, k, gsl_matrix_float_const_ptr(x, b, 0), hf, hx);
        for (size_t j = 0; j < d; j++) {
            double v = gsl_matrix_float_get(xh, b, j);
            ck_assert_msg(fabs(v - hx[j]) < 1e-4, "x_hat[%zu][%zu] = %g, by hand %g", b, j, v,
                          hx[j]);
            double r = gsl_matrix_float_get(x, b, j) - v;
            sse += r * r;
        }
    }
    ck_assert_double_eq_tol(ls.mse, sse / (double)(B * d), 1e-5 * ls.mse);
    gsl_matrix_float_free(xh);
    gsl_matrix_float_free(f);
    gsl_matrix_float_free(x);
    sp_learner_free(L);
    gsl_rng_free(rng);
}
END_TEST

/* Training keeps unit atoms with projected gradients; reinit writes the
 * latent's rows and bias and leaves the others alone. */
START_TEST(test_unit_norm_and_reinit)
{
    const size_t d = 6, m = 8, B = 16;
    sp_sae_cfg c = stacked_cfg(2, 1, 1, 0);
    sp_optim_cfg oc = {.name = "adam", .lr = 0.05, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    strcpy(oc.decay, "none");
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 9);
    sp_err e;
    sp_learner *L = sp_stacked_alloc(&c, d, m, B, 1000, rng, &e);
    ck_assert_msg(L != NULL, "%s", e.msg);
    ck_assert_ptr_eq(L->enc_rows, L->encoder);
    ck_assert_int_eq(L->unit_norm, 1);
    /* initialisation: unit atoms, W_e = W_d */
    for (size_t t = 0; t < m * d; t++)
        ck_assert_float_eq(L->encoder->data[t], L->decoder->data[t]);
    sp_optim *o = sp_optim_alloc(&oc, L->params, L->n_params, 1000);
    ck_assert_ptr_nonnull(o);
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, d);
    random_x(x, rng);
    sp_loss ls;
    L->ops->loss_and_grad(L, x, &ls);
    L->ops->pre_step(L);
    for (size_t i = 0; i < m; i++) {
        double dot = 0;
        for (size_t j = 0; j < d; j++)
            dot += gsl_matrix_float_get(L->decoder, i, j) *
                   gsl_matrix_float_get(L->decoder_grad, i, j);
        ck_assert_msg(fabs(dot) < 1e-6, "atom %zu: gradient component %g along it", i, dot);
    }
    for (int s = 0; s < 20; s++)
        ck_assert(isfinite(sp_train_step(L, o, x, NULL)));
    ck_assert_int_eq(L->step, 20);
    for (size_t i = 0; i < m; i++) {
        double n2 = 0;
        for (size_t j = 0; j < d; j++)
            n2 += gsl_matrix_float_get(L->decoder, i, j) * gsl_matrix_float_get(L->decoder, i, j);
        ck_assert_double_eq_tol(n2, 1.0, 1e-5);
    }
    float dir[6] = {0, 0.6f, 0, 0.8f, 0, 0};
    float row4[6];
    memcpy(row4, gsl_matrix_float_ptr(L->decoder, 4, 0), sizeof row4);
    L->ops->reinit(L, o, 5, dir, 0.25f);
    for (size_t j = 0; j < d; j++) {
        ck_assert_float_eq(gsl_matrix_float_get(L->decoder, 5, j), dir[j]);
        ck_assert_float_eq(gsl_matrix_float_get(L->encoder, 5, j), dir[j] * 0.25f);
        ck_assert_float_eq(gsl_matrix_float_get(L->decoder, 4, j), row4[j]);
    }
    ck_assert_float_eq(param(L, "b_e")->w[5], 0);
    L->ops->reinit(L, NULL, 0, dir, 1.0f); /* without an optimizer */
    ck_assert_float_eq(gsl_matrix_float_get(L->encoder, 0, 3), 0.8f);
    gsl_matrix_float_free(x);
    sp_optim_free(o);
    sp_learner_free(L);
    gsl_rng_free(rng);
}
END_TEST

/* Training sanity: n = 8 random orthonormal features in d = 16, each on
 * with p = 0.1 at magnitude U[0, 1]; m = 8 latents in 2 layers of 4, k = 1
 * per layer. Per sample E||x||^2 = 8 * 0.1 / 3 = 0.27. The best this
 * model can do leaves only samples with two features in the same layer's
 * group or three or more features (about 0.02 of that energy per sample,
 * a factor ~13 below E||x||^2), while random unit atoms with k = 1 explain
 * little of x; so the per-sample MSE on a fixed evaluation batch must fall
 * by at least 5x. */
START_TEST(test_training_reduces_mse)
{
    const size_t d = 16, n = 8, m = 8, B = 64, NE = 1024;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 21);
    /* orthonormal features: Gram-Schmidt on Gaussian vectors */
    double feat[8][16];
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < d; j++)
            feat[i][j] = gsl_ran_gaussian(rng, 1.0);
        for (size_t q = 0; q < i; q++) {
            double dot = 0;
            for (size_t j = 0; j < d; j++)
                dot += feat[i][j] * feat[q][j];
            for (size_t j = 0; j < d; j++)
                feat[i][j] -= dot * feat[q][j];
        }
        double n2 = 0;
        for (size_t j = 0; j < d; j++)
            n2 += feat[i][j] * feat[i][j];
        for (size_t j = 0; j < d; j++)
            feat[i][j] /= sqrt(n2);
    }
    gsl_matrix_float *xe = gsl_matrix_float_calloc(NE, d), *x = gsl_matrix_float_alloc(B, d);
    gsl_matrix_float *fe = gsl_matrix_float_alloc(NE, m), *he = gsl_matrix_float_alloc(NE, d);
    sp_sae_cfg c = stacked_cfg(2, 1, 0, 1);
    sp_optim_cfg oc;
    memset(&oc, 0, sizeof oc);
    strcpy(oc.name, "adam");
    strcpy(oc.decay, "none");
    oc.lr = 3e-3, oc.beta1 = 0.9, oc.beta2 = 0.999, oc.eps = 1e-8;
    sp_err e;
    sp_learner *L = sp_stacked_alloc(&c, d, m, NE, 100000, rng, &e);
    ck_assert_msg(L != NULL, "%s", e.msg);
    sp_optim *o = sp_optim_alloc(&oc, L->params, L->n_params, 100000);
    ck_assert_ptr_nonnull(o);
#define DRAW(mat)                                                                      \
    do {                                                                               \
        gsl_matrix_float_set_zero(mat);                                                \
        for (size_t b = 0; b < (mat)->size1; b++)                                      \
            for (size_t i = 0; i < n; i++)                                             \
                if (gsl_rng_uniform(rng) < 0.1) {                                      \
                    double a = gsl_rng_uniform(rng);                                   \
                    float *row = gsl_matrix_float_ptr(mat, b, 0);                      \
                    for (size_t j = 0; j < d; j++)                                     \
                        row[j] += (float)(a * feat[i][j]);                             \
                }                                                                      \
    } while (0)
    DRAW(xe);
    sp_loss ls;
    L->ops->loss_and_grad(L, xe, &ls);
    double mse0 = ls.mse;
    for (int s = 0; s < 4000; s++) {
        DRAW(x);
        ck_assert(isfinite(sp_train_step(L, o, x, NULL)));
    }
#undef DRAW
    L->ops->loss_and_grad(L, xe, &ls);
    double mse1 = ls.mse;
    /* the same number through encode and decode */
    L->ops->encode(L, xe, fe);
    L->ops->decode(L, fe, he);
    double sse = 0;
    for (size_t t = 0; t < NE * d; t++)
        sse += (double)(xe->data[t] - he->data[t]) * (xe->data[t] - he->data[t]);
    ck_assert_double_eq_tol(sse / (double)NE, mse1, 1e-5 * mse0);
    ck_assert_msg(mse1 * 5 <= mse0, "MSE %g -> %g: fell by less than 5x", mse0, mse1);
    gsl_matrix_float_free(he);
    gsl_matrix_float_free(fe);
    gsl_matrix_float_free(x);
    gsl_matrix_float_free(xe);
    sp_optim_free(o);
    sp_learner_free(L);
    gsl_rng_free(rng);
}
END_TEST

/* Configuration errors: NULL and a message naming the key. */
START_TEST(test_bad_config)
{
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    sp_err e;
    struct {
        int layers, k;
        const char *key;
    } bad[] = {
        {3, 1, "model.layers = 3 must divide the number of latents m = 8"},
        {0, 1, "model.layers"},
        {2, 5, "model.k = 5"},
        {2, 0, "model.k = 0"},
    };
    for (size_t t = 0; t < sizeof bad / sizeof bad[0]; t++) {
        sp_sae_cfg c = stacked_cfg(bad[t].layers, bad[t].k, 0, 0);
        e.msg[0] = '\0';
        sp_learner *L = sp_stacked_alloc(&c, 4, 8, 2, 100, rng, &e);
        ck_assert_ptr_null(L);
        ck_assert_msg(strstr(e.msg, bad[t].key) != NULL, "case %zu: message \"%s\"", t, e.msg);
    }
    /* the edges are allowed: k = ml and layers = m */
    sp_sae_cfg c = stacked_cfg(2, 4, 0, 0);
    sp_learner *L = sp_stacked_alloc(&c, 4, 8, 2, 100, rng, &e);
    ck_assert_msg(L != NULL, "%s", e.msg);
    sp_learner_free(L);
    c = stacked_cfg(8, 1, 0, 0);
    L = sp_stacked_alloc(&c, 4, 8, 2, 100, rng, &e);
    ck_assert_msg(L != NULL, "%s", e.msg);
    sp_learner_free(L);
    gsl_rng_free(rng);
}
END_TEST

Suite *make_stacked_suite(void)
{
    Suite *s = suite_create("stacked");
    TCase *tc = tcase_create("stacked");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_fd_one_layer);
    tcase_add_test(tc, test_fd_one_layer_pre_bias);
    tcase_add_test(tc, test_fd_two_layers);
    tcase_add_test(tc, test_fd_two_layers_pre_bias);
    tcase_add_test(tc, test_fd_three_layers);
    tcase_add_test(tc, test_fd_three_layers_pre_bias);
    tcase_add_test(tc, test_exactly_k_per_layer);
    tcase_add_test(tc, test_one_layer_is_topk_sae);
    tcase_add_test(tc, test_two_layers_code_the_residual);
    tcase_add_test(tc, test_decode_encode_is_forward);
    tcase_add_test(tc, test_unit_norm_and_reinit);
    tcase_add_test(tc, test_training_reduces_mse);
    tcase_add_test(tc, test_bad_config);
    suite_add_tcase(s, tc);
    return s;
}
