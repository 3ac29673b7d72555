/* learner.c: what every learner shares: allocation by architecture, the
 * training step (with the decoder orthogonality regulariser), the
 * unit-norm helpers and the base-struct bookkeeping. */
#include "superpose/sae.h"
#include "superpose/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_blas.h>

const char *sp_sae_archs(void)
{
    return "relu, topk, batchtopk, jumprelu, gated, stacked, dl, rica, pca";
}

size_t sp_sae_latents(const sp_sae_cfg *c, int n_truth)
{
    if (c->latents > 0)
        return (size_t)c->latents;
    double m = floor(c->ratio * (double)n_truth + 0.5);
    return m < 1 ? 1 : (size_t)m;
}

sp_learner *sp_learner_alloc(const sp_sae_cfg *cfg, const sp_penalty_cfg *pen, size_t d,
                             size_t m, size_t max_batch, long total_steps, gsl_rng *rng,
                             sp_err *err)
{
    const char *bad = sp_sae_check(cfg, pen);
    if (bad) {
        sp_err_set(err, "%s", bad);
        return NULL;
    }
    if (!strcmp(cfg->arch, "gated"))
        return sp_gated_alloc(cfg, pen, d, m, max_batch, total_steps, rng, err);
    if (!strcmp(cfg->arch, "stacked"))
        return sp_stacked_alloc(cfg, d, m, max_batch, total_steps, rng, err);
    if (!strcmp(cfg->arch, "dl") || !strcmp(cfg->arch, "rica") || !strcmp(cfg->arch, "pca"))
        return sp_dict_alloc(cfg, pen, d, m, max_batch, total_steps, rng, err);
    return sp_sae_alloc(cfg, pen, d, m, max_batch, total_steps, rng, err);
}

void sp_learner_free(sp_learner *L)
{
    if (L)
        L->ops->free(L);
}

int sp_learner_base_init(sp_learner *L, const sp_sae_cfg *cfg, size_t d, size_t m,
                         size_t max_batch, long total_steps)
{
    L->d = d;
    L->m = m;
    L->max_batch = max_batch;
    L->total_steps = total_steps;
    L->step = 0;
    L->unit_norm = 1;
    L->orth = cfg->orth;
    L->fires = calloc(m, sizeof *L->fires);
    if (!L->fires)
        return -1;
    if (cfg->orth > 0 && !(L->orth_ws = malloc(sp_reg_orth_ws_size(m, d) * sizeof(float))))
        return -1;
    return 0;
}

void sp_learner_base_free(sp_learner *L)
{
    free(L->orth_ws);
    free(L->fires);
    L->orth_ws = NULL;
    L->fires = NULL;
}

void sp_rows_project(const gsl_matrix_float *w, gsl_matrix_float *g)
{
    size_t d = w->size2;
    for (size_t i = 0; i < w->size1; i++) {
        const float *wr = gsl_matrix_float_const_ptr(w, i, 0);
        float *gr = gsl_matrix_float_ptr(g, i, 0);
        float dot = 0;
        for (size_t j = 0; j < d; j++)
            dot += wr[j] * gr[j];
        for (size_t j = 0; j < d; j++)
            gr[j] -= dot * wr[j];
    }
}

void sp_rows_normalise(gsl_matrix_float *a)
{
    for (size_t i = 0; i < a->size1; i++)
        sp_unit_row(gsl_matrix_float_ptr(a, i, 0), a->size2);
}

void sp_learner_unit_pre_step(sp_learner *L)
{
    if (L->unit_norm)
        sp_rows_project(L->decoder, L->decoder_grad);
}

void sp_learner_unit_post_step(sp_learner *L)
{
    if (L->unit_norm)
        sp_rows_normalise(L->decoder);
}

void sp_decode_affine(const gsl_matrix_float *wd, const float *bd, const gsl_matrix_float *f,
                      gsl_matrix_float *xhat)
{
    gsl_blas_sgemm(CblasNoTrans, CblasNoTrans, 1.0f, f, wd, 0.0f, xhat);
    if (bd)
        for (size_t b = 0; b < xhat->size1; b++) {
            float *xr = gsl_matrix_float_ptr(xhat, b, 0);
            for (size_t t = 0; t < xhat->size2; t++)
                xr[t] += bd[t];
        }
}

double sp_train_step(sp_learner *L, sp_optim *opt, const gsl_matrix_float *x, sp_loss *out)
{
    sp_loss tmp;
    if (!out)
        out = &tmp;
    if (L->ops->step) {
        double loss = L->ops->step(L, x, out);
        if (isfinite(loss))
            L->step++;
        return loss;
    }
    L->ops->loss_and_grad(L, x, out);
    if (L->orth > 0) {
        double r = sp_reg_orth(L->decoder, L->orth, L->decoder_grad, L->orth_ws);
        out->reg += r;
        out->loss += r;
    }
    if (!isfinite(out->loss))
        return out->loss;
    if (L->ops->pre_step)
        L->ops->pre_step(L);
    sp_optim_step(opt);
    if (L->ops->post_step)
        L->ops->post_step(L);
    L->step++;
    return out->loss;
}

float sp_kth_largest(float *v, size_t n, size_t k)
{
    /* quickselect (Hoare partition, median of three) for index k-1 of the
     * descending order */
    size_t lo = 0, hi = n - 1, want = k - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        float a = v[lo], b = v[mid], c = v[hi];
        float piv = (a > b) == (b > c) ? b : ((a > b) == (a < c) ? a : c);
        size_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] > piv)
                i++;
            while (v[j] < piv)
                j--;
            if (i <= j) {
                float t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (want <= j && j != (size_t)-1 && j >= lo)
            hi = j;
        else if (want >= i)
            lo = i;
        else
            return v[want];
    }
    return v[want];
}

size_t sp_topk_row(const float *z, size_t n, size_t k, float *f, float *scratch)
{
    if (k >= n) {
        size_t kept = 0;
        for (size_t i = 0; i < n; i++) {
            f[i] = z[i] > 0 ? z[i] : 0.0f;
            kept += z[i] > 0;
        }
        return kept;
    }
    memcpy(scratch, z, n * sizeof *z);
    float t = sp_kth_largest(scratch, n, k);
    size_t above = 0;
    for (size_t i = 0; i < n; i++)
        above += z[i] > t;
    size_t ties = k - above, kept = 0; /* entries equal to t still to keep */
    for (size_t i = 0; i < n; i++) {
        float v = z[i];
        int keep = v > t || (v == t && ties > 0 && (ties--, 1));
        keep = keep && v > 0;
        f[i] = keep ? v : 0.0f;
        kept += (size_t)keep;
    }
    return kept;
}
