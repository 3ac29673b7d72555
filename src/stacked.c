/* stacked.c: stacked residual TopK layers, each coding what the previous
 * layers left unexplained.
 *
 * TopK activation of Gao et al. 2024 ("Scaling and evaluating sparse
 * autoencoders", section 2.3), applied in L residual stages in the manner of
 * matching pursuit (Mallat & Zhang 1993): stage l sees only the residual of
 * stages 0..l-1. REFERENCE.md 2 ("stacked residual TopK layers").
 *
 * The m latents are split into L = model.layers contiguous blocks of
 * ml = m / L; block l is layer l, so the decoder is one (m, d) matrix and
 * x_hat = f W_d + b_d with the codes f of all layers side by side.
 *
 *   r_0     = x - b_d                     (x: (B, d); b_d only if pre_bias)
 *   z_l     = r_l W_e[l]^T + b_e[l]       (W_e[l]: rows l*ml .. (l+1)*ml of W_e)
 *   f_l     = TopK_k(z_l)                 (k largest entries kept if > 0)
 *   r_{l+1} = r_l - f_l W_d[l]
 *   x_hat   = b_d + sum_l f_l W_d[l]      (so x - x_hat = r_L)
 *   loss    = c ||r_L||^2,  c = 1/(B d) (default) or 1/B (mse_per_sample)
 *
 * Backward (g_l = dloss/dr_l; the TopK mask is piecewise constant):
 *   g_L = 2 c r_L
 *   for l = L-1 .. 0:
 *     df_l    = -g_{l+1} W_d[l]^T
 *     dW_d[l] = -f_l^T g_{l+1}
 *     dz_l    = df_l * [f_l != 0]
 *     dW_e[l] = dz_l^T r_l
 *     db_e[l] = sum_b dz_l
 *     g_l     = g_{l+1} + dz_l W_e[l]
 *   db_d = -sum_b g_0
 *
 * Unit-norm atoms: the decoder gradient loses its component along each atom
 * before the step, atoms are renormalised after it. There is no AuxK loss
 * here: a latent that loses every TopK competition within its layer gets no
 * gradient, and reviving it is left to resampling (sp_resample).
 * Initialisation: W_d rows N(0, I) normalised, W_e = W_d, b_e = b_d = 0. */
#include "superpose/sae.h"

#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_blas.h>
#include <gsl/gsl_randist.h>

typedef struct {
    sp_learner base;
    size_t layers, ml, k;
    double c_per_sample;          /* 1 if mse_per_sample, else 1/d: c = this / B */
    /* parameters and gradients */
    gsl_matrix_float *we, *gwe;   /* (m, d) */
    float *be, *gbe;              /* (m) */
    gsl_matrix_float *wd, *gwd;   /* (m, d) */
    float *bd, *gbd;              /* (d) or NULL */
    /* workspace, max_batch rows */
    gsl_matrix_float *r;          /* ((L+1) max_batch, d): r_l in rows l*max_batch .. */
    gsl_matrix_float *z;          /* (B, m): pre-activations, then dz */
    gsl_matrix_float *f;          /* (B, m): codes of every layer */
    gsl_matrix_float *g;          /* (B, d): g_l */
    float *scratch;               /* (ml): TopK selection */
    sp_param params[4];
} stacked;

/* r_l: (B, d). */
static gsl_matrix_float_view resid(stacked *s, size_t l, size_t B)
{
    return gsl_matrix_float_submatrix(s->r, l * s->base.max_batch, 0, B, s->base.d);
}

/* Columns of layer l in a (B, m) matrix: (B, ml). */
static gsl_matrix_float_view layer_cols(gsl_matrix_float *a, size_t l, size_t ml, size_t B)
{
    return gsl_matrix_float_submatrix(a, 0, l * ml, B, ml);
}

/* Rows of layer l in an (m, d) matrix: (ml, d). */
static gsl_matrix_float_view layer_rows(gsl_matrix_float *a, size_t l, size_t ml)
{
    return gsl_matrix_float_submatrix(a, l * ml, 0, ml, a->size2);
}

/* Forward pass: fills r_0 .. r_L (each (B, d)), the pre-activations z and
 * the codes f (both (B, m)). x: (B, d). */
static void forward(stacked *s, const gsl_matrix_float *x, gsl_matrix_float *z,
                    gsl_matrix_float *f)
{
    size_t B = x->size1, d = s->base.d, ml = s->ml;
    gsl_matrix_float_view R0 = resid(s, 0, B);
    for (size_t b = 0; b < B; b++) {
        const float *xr = gsl_matrix_float_const_ptr(x, b, 0);
        float *rr = gsl_matrix_float_ptr(&R0.matrix, b, 0);
        for (size_t j = 0; j < d; j++)
            rr[j] = xr[j] - (s->bd ? s->bd[j] : 0.0f);
    }
    for (size_t l = 0; l < s->layers; l++) {
        gsl_matrix_float_view R = resid(s, l, B), Rn = resid(s, l + 1, B);
        gsl_matrix_float_view Z = layer_cols(z, l, ml, B), F = layer_cols(f, l, ml, B);
        gsl_matrix_float_view We = layer_rows(s->we, l, ml), Wd = layer_rows(s->wd, l, ml);
        const float *be = s->be + l * ml;
        /* z_l = r_l W_e[l]^T + b_e[l]; f_l = TopK_k(z_l) */
        gsl_blas_sgemm(CblasNoTrans, CblasTrans, 1.0f, &R.matrix, &We.matrix, 0.0f, &Z.matrix);
        for (size_t b = 0; b < B; b++) {
            float *zr = gsl_matrix_float_ptr(&Z.matrix, b, 0);
            for (size_t i = 0; i < ml; i++)
                zr[i] += be[i];
            sp_topk_row(zr, ml, s->k, gsl_matrix_float_ptr(&F.matrix, b, 0), s->scratch);
        }
        /* r_{l+1} = r_l - f_l W_d[l] */
        gsl_matrix_float_memcpy(&Rn.matrix, &R.matrix);
        gsl_blas_sgemm(CblasNoTrans, CblasNoTrans, -1.0f, &F.matrix, &Wd.matrix, 1.0f,
                       &Rn.matrix);
    }
}

static void stacked_loss_and_grad(sp_learner *L, const gsl_matrix_float *x, sp_loss *out)
{
    stacked *s = (stacked *)L;
    size_t B = x->size1, d = L->d, ml = s->ml;
    gsl_matrix_float_view Z = gsl_matrix_float_submatrix(s->z, 0, 0, B, L->m);
    gsl_matrix_float_view F = gsl_matrix_float_submatrix(s->f, 0, 0, B, L->m);
    gsl_matrix_float_view G = gsl_matrix_float_submatrix(s->g, 0, 0, B, d);
    forward(s, x, &Z.matrix, &F.matrix);

    /* loss = c ||r_L||^2 (summed in double); g_L = 2 c r_L */
    gsl_matrix_float_view RL = resid(s, s->layers, B);
    double c = s->c_per_sample / (double)B, sse = 0;
    float g2 = (float)(2.0 * c);
    for (size_t b = 0; b < B; b++) {
        const float *rr = gsl_matrix_float_const_ptr(&RL.matrix, b, 0);
        float *gr = gsl_matrix_float_ptr(&G.matrix, b, 0);
        double acc = 0;
        for (size_t j = 0; j < d; j++) {
            acc += (double)rr[j] * rr[j];
            gr[j] = g2 * rr[j];
        }
        sse += acc;
    }

    memset(s->gbe, 0, L->m * sizeof *s->gbe);
    size_t active = 0;
    for (size_t l = s->layers; l-- > 0;) {
        gsl_matrix_float_view R = resid(s, l, B);
        gsl_matrix_float_view Zl = layer_cols(&Z.matrix, l, ml, B);
        gsl_matrix_float_view Fl = layer_cols(&F.matrix, l, ml, B);
        gsl_matrix_float_view We = layer_rows(s->we, l, ml), Wd = layer_rows(s->wd, l, ml);
        gsl_matrix_float_view gWe = layer_rows(s->gwe, l, ml), gWd = layer_rows(s->gwd, l, ml);
        float *gbe = s->gbe + l * ml;
        unsigned long *fires = L->fires + l * ml;
        /* df_l = -g_{l+1} W_d[l]^T (into z_l); dW_d[l] = -f_l^T g_{l+1} */
        gsl_blas_sgemm(CblasNoTrans, CblasTrans, -1.0f, &G.matrix, &Wd.matrix, 0.0f,
                       &Zl.matrix);
        gsl_blas_sgemm(CblasTrans, CblasNoTrans, -1.0f, &Fl.matrix, &G.matrix, 0.0f,
                       &gWd.matrix);
        /* dz_l = df_l * [f_l != 0]; db_e[l] = sum_b dz_l */
        for (size_t b = 0; b < B; b++) {
            float *zr = gsl_matrix_float_ptr(&Zl.matrix, b, 0);
            const float *fr = gsl_matrix_float_const_ptr(&Fl.matrix, b, 0);
            for (size_t i = 0; i < ml; i++) {
                int on = fr[i] != 0;
                active += (size_t)on;
                fires[i] += (unsigned long)on;
                zr[i] = on ? zr[i] : 0.0f;
                gbe[i] += zr[i];
            }
        }
        /* dW_e[l] = dz_l^T r_l; g_l = g_{l+1} + dz_l W_e[l] */
        gsl_blas_sgemm(CblasTrans, CblasNoTrans, 1.0f, &Zl.matrix, &R.matrix, 0.0f,
                       &gWe.matrix);
        gsl_blas_sgemm(CblasNoTrans, CblasNoTrans, 1.0f, &Zl.matrix, &We.matrix, 1.0f,
                       &G.matrix);
    }
    if (s->bd) {
        /* db_d = -sum_b g_0 */
        memset(s->gbd, 0, d * sizeof *s->gbd);
        for (size_t b = 0; b < B; b++) {
            const float *gr = gsl_matrix_float_const_ptr(&G.matrix, b, 0);
            for (size_t j = 0; j < d; j++)
                s->gbd[j] -= gr[j];
        }
    }
    memset(out, 0, sizeof *out);
    out->mse = c * sse;
    out->loss = out->mse;
    out->l0 = (double)active / (double)B;
}

static void stacked_encode(sp_learner *L, const gsl_matrix_float *x, gsl_matrix_float *f)
{
    stacked *s = (stacked *)L;
    gsl_matrix_float_view Z = gsl_matrix_float_submatrix(s->z, 0, 0, x->size1, L->m);
    forward(s, x, &Z.matrix, f);
}

/* x_hat = f W_d + b_d. f: (B, m), xhat: (B, d). */
static void stacked_decode(sp_learner *L, const gsl_matrix_float *f, gsl_matrix_float *xhat)
{
    stacked *s = (stacked *)L;
    sp_decode_affine(s->wd, s->bd, f, xhat);
}



/* Parameter order: W_e, b_e, W_d[, b_d]. */
static void stacked_reinit(sp_learner *L, sp_optim *opt, size_t i, const float *dir,
                           float enc_norm)
{
    stacked *s = (stacked *)L;
    size_t d = L->d;
    float *we = gsl_matrix_float_ptr(s->we, i, 0), *wd = gsl_matrix_float_ptr(s->wd, i, 0);
    for (size_t j = 0; j < d; j++) {
        wd[j] = dir[j];
        we[j] = dir[j] * enc_norm;
    }
    s->be[i] = 0;
    if (opt) {
        sp_optim_reset(opt, 0, i * d, d);
        sp_optim_reset(opt, 1, i, 1);
        sp_optim_reset(opt, 2, i * d, d);
    }
}

static void stacked_free(sp_learner *L)
{
    stacked *s = (stacked *)L;
    sp_learner_base_free(L);
    free(s->scratch);
    gsl_matrix_float_free(s->g);
    gsl_matrix_float_free(s->f);
    gsl_matrix_float_free(s->z);
    gsl_matrix_float_free(s->r);
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

static const sp_learner_ops stacked_ops = {
    .name = "stacked",
    .loss_and_grad = stacked_loss_and_grad,
    .encode = stacked_encode,
    .decode = stacked_decode,
    .pre_step = sp_learner_unit_pre_step,
    .post_step = sp_learner_unit_post_step,
    .reinit = stacked_reinit,
    .free = stacked_free,
};

sp_learner *sp_stacked_alloc(const sp_sae_cfg *cfg, size_t d, size_t m, size_t max_batch,
                             long total_steps, gsl_rng *rng, sp_err *err)
{
    if (d == 0 || m == 0 || max_batch == 0) {
        sp_err_set(err, "stacked learner: d = %zu, m = %zu and max_batch = %zu must be >= 1",
                   d, m, max_batch);
        return NULL;
    }
    if (cfg->layers < 1) {
        sp_err_set(err, "model.layers = %d must be >= 1 for model.arch = stacked", cfg->layers);
        return NULL;
    }
    size_t layers = (size_t)cfg->layers;
    if (m % layers != 0) {
        sp_err_set(err, "model.layers = %d must divide the number of latents m = %zu",
                   cfg->layers, m);
        return NULL;
    }
    size_t ml = m / layers;
    if (cfg->k < 1 || (size_t)cfg->k > ml) {
        sp_err_set(err, "model.k = %d must be in [1, %zu] (latents per layer, m / model.layers "
                   "= %zu / %d)", cfg->k, ml, m, cfg->layers);
        return NULL;
    }
    stacked *s = calloc(1, sizeof *s);
    if (!s) {
        sp_err_set(err, "out of memory");
        return NULL;
    }
    s->layers = layers;
    s->ml = ml;
    s->k = (size_t)cfg->k;
    s->c_per_sample = cfg->mse_per_sample ? 1.0 : 1.0 / (double)d;
    sp_learner *L = &s->base;
    L->ops = &stacked_ops;
    int base = sp_learner_base_init(L, cfg, d, m, max_batch, total_steps);
    s->we = gsl_matrix_float_alloc(m, d);
    s->gwe = gsl_matrix_float_calloc(m, d);
    s->be = calloc(m, sizeof *s->be);
    s->gbe = calloc(m, sizeof *s->gbe);
    s->wd = gsl_matrix_float_alloc(m, d);
    s->gwd = gsl_matrix_float_calloc(m, d);
    if (cfg->pre_bias) {
        s->bd = calloc(d, sizeof *s->bd);
        s->gbd = calloc(d, sizeof *s->gbd);
    }
    s->r = gsl_matrix_float_alloc((layers + 1) * max_batch, d);
    s->z = gsl_matrix_float_alloc(max_batch, m);
    s->f = gsl_matrix_float_alloc(max_batch, m);
    s->g = gsl_matrix_float_alloc(max_batch, d);
    s->scratch = malloc(ml * sizeof *s->scratch);
    if (base != 0 || !s->we || !s->gwe || !s->be || !s->gbe || !s->wd || !s->gwd ||
        (cfg->pre_bias && (!s->bd || !s->gbd)) || !s->r || !s->z || !s->f || !s->g ||
        !s->scratch) {
        sp_err_set(err, "out of memory for a stacked SAE with %zu latents", m);
        stacked_free(L);
        return NULL;
    }
    for (size_t t = 0; t < m * d; t++)
        s->wd->data[t] = (float)gsl_ran_gaussian_ziggurat(rng, 1.0);
    sp_rows_normalise(s->wd);
    gsl_matrix_float_memcpy(s->we, s->wd);

    s->params[0] = (sp_param){"W_e", s->we->data, s->gwe->data, m * d, 1, m, d, NULL, 0};
    s->params[1] = (sp_param){"b_e", s->be, s->gbe, m, 0, 1, m, NULL, 0};
    s->params[2] = (sp_param){"W_d", s->wd->data, s->gwd->data, m * d, 1, m, d, NULL, 0};
    L->n_params = 3;
    if (s->bd)
        s->params[L->n_params++] = (sp_param){"b_d", s->bd, s->gbd, d, 0, 1, d, NULL, 0};
    L->params = s->params;
    L->decoder = s->wd;
    L->decoder_grad = s->gwd;
    L->encoder = s->we;
    L->enc_rows = s->we;
    L->unit_norm = 1;
    return L;
}
