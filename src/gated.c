/* gated.c: the gated sparse autoencoder.
 *
 * Rajamanoharan et al. 2024, "Improving dictionary learning with gated
 * sparse autoencoders": Section 3.1 (gate and magnitude paths, the
 * magnitude weights tied to the gate weights by a per-latent rescaling)
 * and Section 3.2 (the training loss L_gated with the auxiliary
 * reconstruction through a frozen decoder). REFERENCE.md 2.
 *
 *   xc      = x - b_d                          (x: (B, d); b_d only if pre_bias)
 *   z       = xc W_g^T                         (W_g: (m, d), z: (B, m))
 *   pi_gate = z + b_g
 *   pi_mag  = z * exp(r_mag) + b_mag           (= xc (exp(r_mag) . W_g)^T + b_mag)
 *   a       = ReLU(pi_gate)
 *   f       = [pi_gate > 0] * ReLU(pi_mag)     (f > 0 iff a > 0 and pi_mag > 0)
 *   x_hat   = f W_d + b_d                      (W_d: (m, d), one atom per row)
 *   x_aux   = a sg(W_d) + sg(b_d)              (sg: stop-gradient)
 *   loss    = c sum_b ||x_hat_b - x_b||^2      (mse)
 *           + P(a)                             (penalty; ||d_i|| if P uses them)
 *           + c sum_b ||x_aux_b - x_b||^2      (aux)
 *   c = 1/(B d), or 1/B with mse_per_sample
 *
 * Backward, side by side with each forward line (e = exp(r_mag), (m)):
 *   x_hat = f W_d + b_d    dx_hat = 2 c (x_hat - x)           (B, d)
 *                          dW_d   = f^T dx_hat                (m, d)
 *                          db_d   = sum_b dx_hat              (d)
 *                          df     = dx_hat W_d^T              (B, m)
 *   x_aux = a sg(W_d)..    dx_aux = 2 c (x_aux - x)           (B, d)
 *                          da     = dx_aux W_d^T + dP/da      (B, m)
 *   P(a, ||d||)            dW_d_i += dP/d||d_i|| d_i / ||d_i|| (dnorm penalties)
 *   f = [..] ReLU(pi_mag)  dpi_mag  = df * [f > 0]            (Heaviside: no
 *   a = ReLU(pi_gate)      dpi_gate = da * [a > 0]             gradient to pi_gate)
 *   pi_mag  = z e + b_mag  db_mag = sum_b dpi_mag
 *                          dr_mag = e * sum_b dpi_mag * z     (m)
 *   pi_gate = z + b_g      db_g   = sum_b dpi_gate
 *   z = xc W_g^T           dz     = dpi_gate + dpi_mag * e    (B, m)
 *                          dW_g   = dz^T xc                   (m, d)
 *   xc = x - b_d           db_d  -= sum_b dz W_g              (d)
 * The aux term sends no gradient to W_d or b_d through its decoder, but b_d
 * still learns through xc in both encoder paths. The gate path learns only
 * from P and the aux term (the Heaviside's derivative is zero).
 *
 * Unit-norm atoms unless P uses decoder norms (then the norms are free and
 * P carries them, Anthropic's April 2024 update): before the step the
 * component of dW_d's row i along atom i is removed, after it each atom is
 * renormalised. Note the dnorm gradient reaches W_d although the aux
 * decoder is frozen; the authors' later note (a LessWrong comment on the
 * paper) found freezing the decoder in one place but not the other worse
 * than freezing it in both or in neither.
 *
 * Initialisation: W_d rows N(0, I) normalised, W_g = W_d (the encoder
 * starts as the decoder's transpose, Anthropic's April 2024 update, which
 * the authors' note recommends for gated SAEs too), b_g = b_mag = r_mag =
 * 0 (so pi_mag = pi_gate at the start), b_d = 0. */
#include "superpose/sae.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_blas.h>
#include <gsl/gsl_randist.h>

enum { P_WG, P_BG, P_RMAG, P_BMAG, P_WD, P_BD, N_PARAMS };

typedef struct {
    sp_learner base;
    sp_sae_cfg cfg;
    sp_penalty *pen;
    int dnorm;                    /* P uses decoder norms */
    int penalised;                /* P is an activation penalty (not none) */
    /* parameters and gradients */
    gsl_matrix_float *wg, *gwg;   /* (m, d) */
    float *bg, *gbg;              /* (m) */
    float *rm, *grm;              /* (m) r_mag */
    float *bm, *gbm;              /* (m) b_mag */
    gsl_matrix_float *wd, *gwd;   /* (m, d) */
    float *bd, *gbd;              /* (d) or NULL */
    /* workspace, max_batch rows */
    float *e;                     /* (m) exp(r_mag) */
    float *nrm, *gnrm;            /* (m) ||d_i|| and dP/d||d_i|| */
    gsl_matrix_float *z;          /* (B, m) xc W_g^T */
    gsl_matrix_float *a;          /* (B, m) ReLU(pi_gate) */
    gsl_matrix_float *f;          /* (B, m) */
    gsl_matrix_float *df;         /* (B, m) df, then dpi_mag */
    gsl_matrix_float *da;         /* (B, m) da, then dpi_gate, then dz */
    gsl_matrix_float *xc;         /* (B, d) x - b_d, then dz W_g */
    gsl_matrix_float *r;          /* (B, d) x_hat, then dx_hat */
    gsl_matrix_float *ra;         /* (B, d) x_aux, then dx_aux */
    sp_param params[N_PARAMS];
} gated_sae;

static gsl_matrix_float_view rows(gsl_matrix_float *w, size_t B)
{
    return gsl_matrix_float_submatrix(w, 0, 0, B, w->size2);
}

/* xc = x - b_d (or x itself when there is no b_d). x, xc: (B, d). */
static const gsl_matrix_float *center(const gated_sae *s, const gsl_matrix_float *x,
                                      gsl_matrix_float *xc)
{
    if (!s->bd)
        return x;
    for (size_t b = 0; b < x->size1; b++) {
        const float *xr = gsl_matrix_float_const_ptr(x, b, 0);
        float *cr = gsl_matrix_float_ptr(xc, b, 0);
        for (size_t j = 0; j < s->base.d; j++)
            cr[j] = xr[j] - s->bd[j];
    }
    return xc;
}

/* z = xc W_g^T, a = ReLU(z + b_g), f = [a > 0] ReLU(z e + b_mag); s->e
 * must hold exp(r_mag). xc: (B, d); z, a, f: (B, m); a may be NULL. */
static void encode_forward(const gated_sae *s, const gsl_matrix_float *xc,
                           gsl_matrix_float *z, gsl_matrix_float *a, gsl_matrix_float *f)
{
    size_t m = s->base.m;
    gsl_blas_sgemm(CblasNoTrans, CblasTrans, 1.0f, xc, s->wg, 0.0f, z);
    for (size_t b = 0; b < xc->size1; b++) {
        const float *zr = gsl_matrix_float_const_ptr(z, b, 0);
        float *ar = a ? gsl_matrix_float_ptr(a, b, 0) : NULL;
        float *fr = gsl_matrix_float_ptr(f, b, 0);
        for (size_t i = 0; i < m; i++) {
            float g = zr[i] + s->bg[i];
            float h = zr[i] * s->e[i] + s->bm[i];
            if (ar)
                ar[i] = g > 0 ? g : 0.0f;
            fr[i] = g > 0 && h > 0 ? h : 0.0f;
        }
    }
}

static void exp_rmag(gated_sae *s)
{
    for (size_t i = 0; i < s->base.m; i++)
        s->e[i] = expf(s->rm[i]);
}

/* out = code W_d + b_d - x, and returns sum ||out_b||^2 (in double, per
 * row in float as sae.c does); then scales out by g2 into the gradient. */
static double residual(const gated_sae *s, const gsl_matrix_float *code,
                       const gsl_matrix_float *x, gsl_matrix_float *out, float g2)
{
    size_t d = s->base.d;
    gsl_blas_sgemm(CblasNoTrans, CblasNoTrans, 1.0f, code, s->wd, 0.0f, out);
    double sse = 0;
    for (size_t b = 0; b < x->size1; b++) {
        float *rr = gsl_matrix_float_ptr(out, b, 0);
        const float *xr = gsl_matrix_float_const_ptr(x, b, 0);
        float acc = 0;
        for (size_t j = 0; j < d; j++) {
            float v = rr[j] + (s->bd ? s->bd[j] : 0.0f) - xr[j];
            acc += v * v;
            rr[j] = g2 * v;
        }
        sse += acc;
    }
    return sse;
}

static void gated_loss_and_grad(sp_learner *L, const gsl_matrix_float *x, sp_loss *out)
{
    gated_sae *s = (gated_sae *)L;
    size_t B = x->size1, d = L->d, m = L->m;
    gsl_matrix_float_view Z = rows(s->z, B), A = rows(s->a, B), F = rows(s->f, B);
    gsl_matrix_float_view DF = rows(s->df, B), DA = rows(s->da, B);
    gsl_matrix_float_view XC = rows(s->xc, B), R = rows(s->r, B), RA = rows(s->ra, B);

    sp_penalty_set_step(s->pen, L->step);
    exp_rmag(s);
    const gsl_matrix_float *xin = center(s, x, &XC.matrix);
    encode_forward(s, xin, &Z.matrix, &A.matrix, &F.matrix);

    double c = s->cfg.mse_per_sample ? 1.0 / (double)B : 1.0 / ((double)B * (double)d);
    float g2 = (float)(2.0 * c);
    double mse = c * residual(s, &F.matrix, x, &R.matrix, g2);    /* R = dx_hat */
    double aux = c * residual(s, &A.matrix, x, &RA.matrix, g2);   /* RA = dx_aux */

    /* dW_d = f^T dx_hat; df = dx_hat W_d^T; da = dx_aux W_d^T + dP/da */
    gsl_blas_sgemm(CblasTrans, CblasNoTrans, 1.0f, &F.matrix, &R.matrix, 0.0f, s->gwd);
    gsl_blas_sgemm(CblasNoTrans, CblasTrans, 1.0f, &R.matrix, s->wd, 0.0f, &DF.matrix);
    gsl_blas_sgemm(CblasNoTrans, CblasTrans, 1.0f, &RA.matrix, s->wd, 0.0f, &DA.matrix);
    double pen = 0;
    if (s->penalised) {
        if (s->dnorm) {
            for (size_t i = 0; i < m; i++) {
                const float *w = gsl_matrix_float_const_ptr(s->wd, i, 0);
                double n2 = 0;
                for (size_t j = 0; j < d; j++)
                    n2 += (double)w[j] * w[j];
                s->nrm[i] = (float)sqrt(n2);
            }
            memset(s->gnrm, 0, m * sizeof *s->gnrm);
        }
        pen = sp_penalty_eval(s->pen, s->a->data, B, m, s->a->tda, s->dnorm ? s->nrm : NULL,
                              s->da->data, s->dnorm ? s->gnrm : NULL);
        if (s->dnorm)
            for (size_t i = 0; i < m; i++) {
                if (!(s->nrm[i] > 0))
                    continue;
                const float *w = gsl_matrix_float_const_ptr(s->wd, i, 0);
                float *g = gsl_matrix_float_ptr(s->gwd, i, 0);
                float k = s->gnrm[i] / s->nrm[i];
                for (size_t j = 0; j < d; j++)
                    g[j] += k * w[j];
            }
    }

    /* dpi_mag = df [f > 0], dpi_gate = da [a > 0], their bias and r_mag
     * gradients, dz = dpi_gate + dpi_mag e (into DA); L0 and fires */
    memset(s->gbg, 0, m * sizeof *s->gbg);
    memset(s->gbm, 0, m * sizeof *s->gbm);
    memset(s->grm, 0, m * sizeof *s->grm);
    size_t active = 0;
    for (size_t b = 0; b < B; b++) {
        const float *zr = gsl_matrix_float_const_ptr(&Z.matrix, b, 0);
        const float *ar = gsl_matrix_float_const_ptr(&A.matrix, b, 0);
        const float *fr = gsl_matrix_float_const_ptr(&F.matrix, b, 0);
        const float *dfr = gsl_matrix_float_const_ptr(&DF.matrix, b, 0);
        float *dar = gsl_matrix_float_ptr(&DA.matrix, b, 0);
        for (size_t i = 0; i < m; i++) {
            int on = fr[i] > 0;
            active += (size_t)on;
            L->fires[i] += (unsigned long)on;
            float dm = on ? dfr[i] : 0.0f;
            float dg = ar[i] > 0 ? dar[i] : 0.0f;
            s->gbm[i] += dm;
            s->grm[i] += dm * zr[i];
            s->gbg[i] += dg;
            dar[i] = dg + dm * s->e[i];
        }
    }
    for (size_t i = 0; i < m; i++)
        s->grm[i] *= s->e[i];
    /* dW_g = dz^T xc */
    gsl_blas_sgemm(CblasTrans, CblasNoTrans, 1.0f, &DA.matrix, xin, 0.0f, s->gwg);
    if (s->bd) {
        /* db_d = sum_b dx_hat - sum_b dz W_g */
        gsl_blas_sgemm(CblasNoTrans, CblasNoTrans, 1.0f, &DA.matrix, s->wg, 0.0f, &XC.matrix);
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
    out->aux = aux;
    out->loss = mse + pen + aux;
    out->l0 = (double)active / (double)B;
}

/* In blocks of max_batch rows, so any B works. x: (B, d), f: (B, m). */
static void gated_encode(sp_learner *L, const gsl_matrix_float *x, gsl_matrix_float *f)
{
    gated_sae *s = (gated_sae *)L;
    exp_rmag(s);
    for (size_t b0 = 0; b0 < x->size1; b0 += L->max_batch) {
        size_t n = x->size1 - b0 < L->max_batch ? x->size1 - b0 : L->max_batch;
        gsl_matrix_float_const_view xv = gsl_matrix_float_const_submatrix(x, b0, 0, n, L->d);
        gsl_matrix_float_view fv = gsl_matrix_float_submatrix(f, b0, 0, n, L->m);
        gsl_matrix_float_view Z = rows(s->z, n), XC = rows(s->xc, n);
        const gsl_matrix_float *xin = center(s, &xv.matrix, &XC.matrix);
        encode_forward(s, xin, &Z.matrix, NULL, &fv.matrix);
    }
}

/* x_hat = f W_d + b_d. f: (B, m), x_hat: (B, d). */
static void gated_decode(sp_learner *L, const gsl_matrix_float *f, gsl_matrix_float *xhat)
{
    gated_sae *s = (gated_sae *)L;
    sp_decode_affine(s->wd, s->bd, f, xhat);
}



static void gated_reinit(sp_learner *L, sp_optim *opt, size_t i, const float *dir,
                         float enc_norm)
{
    gated_sae *s = (gated_sae *)L;
    size_t d = L->d;
    float *wd = gsl_matrix_float_ptr(s->wd, i, 0);
    float *wg = gsl_matrix_float_ptr(s->wg, i, 0);
    for (size_t j = 0; j < d; j++) {
        wd[j] = dir[j];
        wg[j] = dir[j] * enc_norm;
    }
    s->bg[i] = s->bm[i] = s->rm[i] = 0.0f;
    if (opt) {
        sp_optim_reset(opt, P_WG, i * d, d);
        sp_optim_reset(opt, P_BG, i, 1);
        sp_optim_reset(opt, P_RMAG, i, 1);
        sp_optim_reset(opt, P_BMAG, i, 1);
        sp_optim_reset(opt, P_WD, i * d, d);
    }
}

static void gated_free(sp_learner *L)
{
    gated_sae *s = (gated_sae *)L;
    gsl_matrix_float_free(s->ra);
    gsl_matrix_float_free(s->r);
    gsl_matrix_float_free(s->xc);
    gsl_matrix_float_free(s->da);
    gsl_matrix_float_free(s->df);
    gsl_matrix_float_free(s->f);
    gsl_matrix_float_free(s->a);
    gsl_matrix_float_free(s->z);
    free(s->gnrm);
    free(s->nrm);
    free(s->e);
    free(s->gbd);
    free(s->bd);
    gsl_matrix_float_free(s->gwd);
    gsl_matrix_float_free(s->wd);
    free(s->gbm);
    free(s->bm);
    free(s->grm);
    free(s->rm);
    free(s->gbg);
    free(s->bg);
    gsl_matrix_float_free(s->gwg);
    gsl_matrix_float_free(s->wg);
    sp_penalty_free(s->pen);
    sp_learner_base_free(L);
    free(s);
}

static const sp_learner_ops gated_ops = {
    .name = "gated",
    .loss_and_grad = gated_loss_and_grad,
    .encode = gated_encode,
    .decode = gated_decode,
    .pre_step = sp_learner_unit_pre_step,
    .post_step = sp_learner_unit_post_step,
    .reinit = gated_reinit,
    .free = gated_free,
};

sp_learner *sp_gated_alloc(const sp_sae_cfg *cfg, const sp_penalty_cfg *pen, size_t d,
                           size_t m, size_t max_batch, long total_steps, gsl_rng *rng,
                           sp_err *err)
{
    const char *bad = sp_penalty_check(pen);
    if (bad) {
        sp_err_set(err, "%s", bad);
        return NULL;
    }
    if (!sp_penalty_is_activation(pen) && strcmp(pen->name, "none") != 0) {
        sp_err_set(err, "train.penalty = %s does not apply to model.arch = gated "
                   "(allowed: a penalty on activations, or none)", pen->name);
        return NULL;
    }
    if (d == 0 || m == 0 || max_batch == 0) {
        sp_err_set(err, "gated SAE: d = %zu, m = %zu and batch = %zu must all be > 0", d, m,
                   max_batch);
        return NULL;
    }
    gated_sae *s = calloc(1, sizeof *s);
    if (!s) {
        sp_err_set(err, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->dnorm = sp_penalty_uses_dnorm(pen);
    s->penalised = sp_penalty_is_activation(pen);
    sp_learner *L = &s->base;
    L->ops = &gated_ops;
    /* allocation in the order gated_free releases in reverse; a failure
     * leaves the rest NULL, which every free accepts */
    int ok = sp_learner_base_init(L, cfg, d, m, max_batch, total_steps) == 0 &&
             (s->pen = sp_penalty_alloc(pen, total_steps)) &&
             (s->wg = gsl_matrix_float_alloc(m, d)) && (s->gwg = gsl_matrix_float_alloc(m, d)) &&
             (s->bg = calloc(m, sizeof(float))) && (s->gbg = calloc(m, sizeof(float))) &&
             (s->rm = calloc(m, sizeof(float))) && (s->grm = calloc(m, sizeof(float))) &&
             (s->bm = calloc(m, sizeof(float))) && (s->gbm = calloc(m, sizeof(float))) &&
             (s->wd = gsl_matrix_float_alloc(m, d)) && (s->gwd = gsl_matrix_float_alloc(m, d)) &&
             (!cfg->pre_bias || ((s->bd = calloc(d, sizeof(float))) &&
                                 (s->gbd = calloc(d, sizeof(float))))) &&
             (s->e = calloc(m, sizeof(float))) && (s->nrm = calloc(m, sizeof(float))) &&
             (s->gnrm = calloc(m, sizeof(float))) &&
             (s->z = gsl_matrix_float_alloc(max_batch, m)) &&
             (s->a = gsl_matrix_float_alloc(max_batch, m)) &&
             (s->f = gsl_matrix_float_alloc(max_batch, m)) &&
             (s->df = gsl_matrix_float_alloc(max_batch, m)) &&
             (s->da = gsl_matrix_float_alloc(max_batch, m)) &&
             (s->xc = gsl_matrix_float_alloc(max_batch, d)) &&
             (s->r = gsl_matrix_float_alloc(max_batch, d)) &&
             (s->ra = gsl_matrix_float_alloc(max_batch, d));
    if (!ok) {
        sp_err_set(err, "out of memory for a gated SAE with %zu latents", m);
        gated_free(L);
        return NULL;
    }
    for (size_t t = 0; t < m * d; t++)
        s->wd->data[t] = (float)gsl_ran_gaussian_ziggurat(rng, 1.0);
    sp_rows_normalise(s->wd);
    gsl_matrix_float_memcpy(s->wg, s->wd);

    s->params[P_WG] = (sp_param){"W_g", s->wg->data, s->gwg->data, m * d, 1, m, d, NULL, 0};
    s->params[P_BG] = (sp_param){"b_g", s->bg, s->gbg, m, 0, 1, m, NULL, 0};
    s->params[P_RMAG] = (sp_param){"r_mag", s->rm, s->grm, m, 0, 1, m, NULL, 0};
    s->params[P_BMAG] = (sp_param){"b_mag", s->bm, s->gbm, m, 0, 1, m, NULL, 0};
    s->params[P_WD] = (sp_param){"W_d", s->wd->data, s->gwd->data, m * d, 1, m, d, NULL, 0};
    L->n_params = P_BD;
    if (s->bd)
        s->params[L->n_params++] = (sp_param){"b_d", s->bd, s->gbd, d, 0, 1, d, NULL, 0};
    L->params = s->params;
    L->decoder = s->wd;
    L->decoder_grad = s->gwd;
    L->encoder = s->wg;
    L->enc_rows = s->wg;
    L->unit_norm = !s->dnorm;
    return L;
}
