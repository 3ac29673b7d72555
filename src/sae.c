/* sae.c: the untied ReLU sparse autoencoder and the training step.
 *
 * Sharkey, Braun & Millidge 2022 (interim report), REFERENCE.md 1.1 and 2;
 * pre-encoder bias and decoder gradient projection as in Bricken et al.
 * 2023 ("Towards monosemanticity").
 *
 *   xc    = x - b_d                         (x: (B, d); b_d only if pre_bias)
 *   p     = xc W_e^T + b_e                  (W_e: (m, d), p: (B, m))
 *   f     = ReLU(p)
 *   x_hat = f W_d + b_d                     (W_d: (m, d), one atom per row)
 *   loss  = c_mse sum_b ||x_hat_b - x_b||^2 + P(f)
 *           c_mse = 1/(B d) (torch MSELoss, default) or 1/B (per sample)
 * Backward (r = x_hat - x):
 *   dx_hat = 2 c_mse r;  dW_d = f^T dx_hat;  df = dx_hat W_d^T + dP/df
 *   dp = df * [p > 0];   dW_e = dp^T xc;     db_e = sum_b dp
 *   db_d = sum_b dx_hat - sum_b (dp W_e)
 * Unit-norm atoms: before the step the component of dW_d's row i along
 * atom i is removed; after the step each atom is renormalised. */
#include "superpose/sae.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_blas.h>
#include <gsl/gsl_randist.h>

typedef struct {
    sp_learner base;
    sp_sae_cfg cfg;
    sp_penalty *pen;
    /* parameters and gradients */
    gsl_matrix_float *we, *gwe;   /* (m, d) */
    float *be, *gbe;              /* (m) */
    gsl_matrix_float *wd, *gwd;   /* (m, d) */
    float *bd, *gbd;              /* (d) or NULL */
    /* workspace, max_batch rows */
    gsl_matrix_float *p;          /* (B, m): pre-activations, then dp */
    gsl_matrix_float *f;          /* (B, m) */
    gsl_matrix_float *xc;         /* (B, d): x - b_d, then dxc */
    gsl_matrix_float *r;          /* (B, d): x_hat, then r, then dx_hat */
    sp_param params[4];
} relu_sae;

const char *sp_sae_check(const sp_sae_cfg *c, const sp_penalty_cfg *pen)
{
    if (strcmp(c->arch, "relu") != 0)
        return "model.arch: unknown architecture (allowed: relu)";
    const char *bad = sp_penalty_check(pen);
    if (bad)
        return bad;
    if (c->latents < 0)
        return "model.latents must be >= 0 (0: use model.ratio)";
    if (c->latents == 0 && !(c->ratio > 0 && c->ratio <= 1024))
        return "model.ratio must be in (0, 1024]";
    return NULL;
}

static gsl_matrix_float_view rows(gsl_matrix_float *a, size_t B)
{
    return gsl_matrix_float_submatrix(a, 0, 0, B, a->size2);
}

/* p = xc W_e^T + b_e; f = ReLU(p). xc: (B, d). */
static void encode_into(relu_sae *s, const gsl_matrix_float *xc, gsl_matrix_float *p,
                        gsl_matrix_float *f)
{
    size_t B = xc->size1, m = s->base.m;
    gsl_blas_sgemm(CblasNoTrans, CblasTrans, 1.0f, xc, s->we, 0.0f, p);
    for (size_t b = 0; b < B; b++) {
        float *pr = gsl_matrix_float_ptr(p, b, 0);
        float *fr = gsl_matrix_float_ptr(f, b, 0);
        for (size_t i = 0; i < m; i++) {
            float v = pr[i] + s->be[i];
            pr[i] = v;
            fr[i] = v > 0 ? v : 0.0f;
        }
    }
}

/* xc = x - b_d (or x itself when there is no b_d). */
static const gsl_matrix_float *center(relu_sae *s, const gsl_matrix_float *x,
                                      gsl_matrix_float *xc)
{
    if (!s->bd)
        return x;
    size_t B = x->size1, d = s->base.d;
    for (size_t b = 0; b < B; b++) {
        const float *xr = gsl_matrix_float_const_ptr(x, b, 0);
        float *cr = gsl_matrix_float_ptr(xc, b, 0);
        for (size_t j = 0; j < d; j++)
            cr[j] = xr[j] - s->bd[j];
    }
    return xc;
}

static void relu_loss_and_grad(sp_learner *L, const gsl_matrix_float *x, sp_loss *out)
{
    relu_sae *s = (relu_sae *)L;
    size_t B = x->size1, d = L->d, m = L->m;
    gsl_matrix_float_view P = rows(s->p, B), F = rows(s->f, B);
    gsl_matrix_float_view XC = rows(s->xc, B), R = rows(s->r, B);

    const gsl_matrix_float *xin = center(s, x, &XC.matrix);
    encode_into(s, xin, &P.matrix, &F.matrix);

    /* r = f W_d + b_d - x */
    gsl_blas_sgemm(CblasNoTrans, CblasNoTrans, 1.0f, &F.matrix, s->wd, 0.0f, &R.matrix);
    double sse = 0;
    double c_mse = s->cfg.mse_per_sample ? 1.0 / (double)B : 1.0 / ((double)B * (double)d);
    float g2 = (float)(2.0 * c_mse);
    for (size_t b = 0; b < B; b++) {
        float *rr = gsl_matrix_float_ptr(&R.matrix, b, 0);
        const float *xr = gsl_matrix_float_const_ptr(x, b, 0);
        float acc = 0;
        for (size_t j = 0; j < d; j++) {
            float v = rr[j] + (s->bd ? s->bd[j] : 0.0f) - xr[j];
            acc += v * v;
            rr[j] = g2 * v; /* now dx_hat */
        }
        sse += acc;
    }
    double mse = c_mse * sse;

    /* dW_d = f^T dx_hat */
    gsl_blas_sgemm(CblasTrans, CblasNoTrans, 1.0f, &F.matrix, &R.matrix, 0.0f, s->gwd);
    /* df = dx_hat W_d^T (into the pre-activation buffer) + dP/df */
    gsl_blas_sgemm(CblasNoTrans, CblasTrans, 1.0f, &R.matrix, s->wd, 0.0f, &P.matrix);
    double pen = sp_penalty_eval(s->pen, s->f->data, B, m, s->f->tda, NULL, s->p->data, NULL);

    /* dp = df * [f > 0]; db_e = sum_b dp; L0 */
    memset(s->gbe, 0, m * sizeof *s->gbe);
    size_t active = 0;
    for (size_t b = 0; b < B; b++) {
        float *pr = gsl_matrix_float_ptr(&P.matrix, b, 0);
        const float *fr = gsl_matrix_float_const_ptr(&F.matrix, b, 0);
        for (size_t i = 0; i < m; i++) {
            int on = fr[i] > 0;
            active += (size_t)on;
            L->fires[i] += (unsigned long)on;
            pr[i] = on ? pr[i] : 0.0f;
            s->gbe[i] += pr[i];
        }
    }
    /* dW_e = dp^T xc */
    gsl_blas_sgemm(CblasTrans, CblasNoTrans, 1.0f, &P.matrix, xin, 0.0f, s->gwe);
    if (s->bd) {
        /* db_d = sum_b dx_hat - sum_b dp W_e */
        gsl_blas_sgemm(CblasNoTrans, CblasNoTrans, 1.0f, &P.matrix, s->we, 0.0f, &XC.matrix);
        memset(s->gbd, 0, d * sizeof *s->gbd);
        for (size_t b = 0; b < B; b++) {
            const float *rr = gsl_matrix_float_const_ptr(&R.matrix, b, 0);
            const float *cr = gsl_matrix_float_const_ptr(&XC.matrix, b, 0);
            for (size_t j = 0; j < d; j++)
                s->gbd[j] += rr[j] - cr[j];
        }
    }
    memset(out, 0, sizeof *out);
    out->mse = mse;
    out->penalty = pen;
    out->loss = mse + pen;
    out->l0 = (double)active / (double)B;
}

static void relu_encode(sp_learner *L, const gsl_matrix_float *x, gsl_matrix_float *f)
{
    relu_sae *s = (relu_sae *)L;
    size_t B = x->size1;
    gsl_matrix_float_view P = rows(s->p, B), XC = rows(s->xc, B);
    const gsl_matrix_float *xin = center(s, x, &XC.matrix);
    encode_into(s, xin, &P.matrix, f);
}

static void relu_decode(sp_learner *L, const gsl_matrix_float *f, gsl_matrix_float *xhat)
{
    relu_sae *s = (relu_sae *)L;
    gsl_blas_sgemm(CblasNoTrans, CblasNoTrans, 1.0f, f, s->wd, 0.0f, xhat);
    if (s->bd)
        for (size_t b = 0; b < xhat->size1; b++) {
            float *xr = gsl_matrix_float_ptr(xhat, b, 0);
            for (size_t j = 0; j < L->d; j++)
                xr[j] += s->bd[j];
        }
}

/* Removes from each atom's gradient its component along the atom. */
static void relu_pre_step(sp_learner *L)
{
    relu_sae *s = (relu_sae *)L;
    for (size_t i = 0; i < L->m; i++) {
        float *w = gsl_matrix_float_ptr(s->wd, i, 0);
        float *g = gsl_matrix_float_ptr(s->gwd, i, 0);
        float dot = 0;
        for (size_t j = 0; j < L->d; j++)
            dot += w[j] * g[j];
        for (size_t j = 0; j < L->d; j++)
            g[j] -= dot * w[j];
    }
}

static void normalise_rows(gsl_matrix_float *a)
{
    for (size_t i = 0; i < a->size1; i++) {
        float *w = gsl_matrix_float_ptr(a, i, 0);
        double n2 = 0;
        for (size_t j = 0; j < a->size2; j++)
            n2 += (double)w[j] * w[j];
        if (n2 > 0) {
            float inv = (float)(1.0 / sqrt(n2));
            for (size_t j = 0; j < a->size2; j++)
                w[j] *= inv;
        }
    }
}

static void relu_post_step(sp_learner *L)
{
    normalise_rows(((relu_sae *)L)->wd);
}

static void relu_free(sp_learner *L)
{
    relu_sae *s = (relu_sae *)L;
    sp_penalty_free(s->pen);
    sp_learner_base_free(L);
    gsl_matrix_float_free(s->r);
    gsl_matrix_float_free(s->xc);
    gsl_matrix_float_free(s->f);
    gsl_matrix_float_free(s->p);
    free(s->gbd);
    free(s->bd);
    gsl_matrix_float_free(s->gwd);
    gsl_matrix_float_free(s->wd);
    free(s->gbe);
    free(s->be);
    gsl_matrix_float_free(s->gwe);
    gsl_matrix_float_free(s->we);
    free(s);
}

static const sp_learner_ops relu_ops = {
    .name = "relu",
    .loss_and_grad = relu_loss_and_grad,
    .encode = relu_encode,
    .decode = relu_decode,
    .pre_step = relu_pre_step,
    .post_step = relu_post_step,
    .free = relu_free,
};

sp_learner *sp_sae_alloc(const sp_sae_cfg *cfg, const sp_penalty_cfg *pen, size_t d,
                         size_t m, size_t max_batch, long total_steps, gsl_rng *rng,
                         sp_err *err)
{
    const char *bad = sp_sae_check(cfg, pen);
    if (bad) {
        sp_err_set(err, "%s", bad);
        return NULL;
    }
    relu_sae *s = calloc(1, sizeof *s);
    if (!s) {
        sp_err_set(err, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    sp_learner *L = &s->base;
    L->ops = &relu_ops;
    int base = sp_learner_base_init(L, cfg, d, m, max_batch, total_steps);
    s->pen = sp_penalty_alloc(pen, total_steps);
    s->we = gsl_matrix_float_alloc(m, d);
    s->gwe = gsl_matrix_float_alloc(m, d);
    s->wd = gsl_matrix_float_alloc(m, d);
    s->gwd = gsl_matrix_float_alloc(m, d);
    s->be = calloc(m, sizeof *s->be);
    s->gbe = calloc(m, sizeof *s->gbe);
    if (cfg->pre_bias) {
        s->bd = calloc(d, sizeof *s->bd);
        s->gbd = calloc(d, sizeof *s->gbd);
    }
    s->p = gsl_matrix_float_alloc(max_batch, m);
    s->f = gsl_matrix_float_alloc(max_batch, m);
    s->xc = gsl_matrix_float_alloc(max_batch, d);
    s->r = gsl_matrix_float_alloc(max_batch, d);
    if (base != 0 || !s->pen || !s->we || !s->gwe || !s->wd || !s->gwd || !s->be || !s->gbe ||
        (cfg->pre_bias && (!s->bd || !s->gbd)) || !s->p || !s->f || !s->xc || !s->r) {
        sp_err_set(err, "out of memory for an SAE with %zu latents", m);
        relu_free(L);
        return NULL;
    }
    double bound = 1.0 / sqrt((double)d);
    for (size_t t = 0; t < m * d; t++)
        s->we->data[t] = (float)(bound * (2.0 * gsl_rng_uniform(rng) - 1.0));
    for (size_t i = 0; i < m; i++)
        s->be[i] = (float)(bound * (2.0 * gsl_rng_uniform(rng) - 1.0));
    for (size_t t = 0; t < m * d; t++)
        s->wd->data[t] = (float)gsl_ran_gaussian_ziggurat(rng, 1.0);
    normalise_rows(s->wd);

    s->params[0] = (sp_param){"W_e", s->we->data, s->gwe->data, m * d, 1, m, d};
    s->params[1] = (sp_param){"b_e", s->be, s->gbe, m, 0, 1, m};
    s->params[2] = (sp_param){"W_d", s->wd->data, s->gwd->data, m * d, 1, m, d};
    L->n_params = 3;
    if (s->bd)
        s->params[L->n_params++] = (sp_param){"b_d", s->bd, s->gbd, d, 0, 1, d};
    L->decoder_grad = s->gwd;
    L->params = s->params;
    L->decoder = s->wd;
    L->encoder = s->we;
    return L;
}

