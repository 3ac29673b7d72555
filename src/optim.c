/* optim.c: Adam / AdamW (Kingma & Ba 2015, Alg. 1; Loshchilov & Hutter
 * 2019 for decoupled weight decay). See optim.h for the update. */
#include "superpose/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct sp_optim {
    sp_optim_cfg cfg;
    sp_param *params;
    size_t n_params;
    float *state;    /* [m | v] for every parameter, contiguous */
    size_t *offset;  /* start of parameter p in state */
    size_t total;
    long t;
};

const char *sp_optim_check(const sp_optim_cfg *c)
{
    if (strcmp(c->name, "adam") != 0)
        return "train.optimizer: unknown optimizer (allowed: adam)";
    if (!(c->lr > 0) || !isfinite(c->lr))
        return "train.lr must be a finite value > 0";
    if (!(c->beta1 >= 0 && c->beta1 < 1))
        return "train.beta1 must be in [0, 1)";
    if (!(c->beta2 >= 0 && c->beta2 < 1))
        return "train.beta2 must be in [0, 1)";
    if (!(c->eps > 0))
        return "train.eps must be > 0";
    if (!(c->weight_decay >= 0))
        return "train.weight_decay must be >= 0";
    return NULL;
}

sp_optim *sp_optim_alloc(const sp_optim_cfg *cfg, const sp_param *params,
                         size_t n_params, long total_steps)
{
    sp_optim *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->cfg = *cfg;
    (void)total_steps;
    o->n_params = n_params;
    o->params = malloc(n_params * sizeof *o->params);
    o->offset = malloc(n_params * sizeof *o->offset);
    if (!o->params || !o->offset) {
        sp_optim_free(o);
        return NULL;
    }
    memcpy(o->params, params, n_params * sizeof *params);
    for (size_t p = 0; p < n_params; p++) {
        o->offset[p] = o->total;
        o->total += params[p].n;
    }
    o->state = calloc(2 * o->total + 1, sizeof *o->state);
    if (!o->state) {
        sp_optim_free(o);
        return NULL;
    }
    return o;
}

void sp_optim_free(sp_optim *o)
{
    if (!o)
        return;
    free(o->state);
    free(o->offset);
    free(o->params);
    free(o);
}

double sp_optim_step(sp_optim *o)
{
    o->t++;
    const float b1 = (float)o->cfg.beta1, b2 = (float)o->cfg.beta2;
    const double bc1 = 1.0 - pow(o->cfg.beta1, (double)o->t);
    const double bc2 = 1.0 - pow(o->cfg.beta2, (double)o->t);
    /* lr_t folds both bias corrections: w -= lr_t m / (sqrt(v) + eps_t). */
    const float lr_t = (float)(o->cfg.lr * sqrt(bc2) / bc1);
    const float eps_t = (float)(o->cfg.eps * sqrt(bc2));
    for (size_t p = 0; p < o->n_params; p++) {
        const sp_param *pr = &o->params[p];
        float *restrict w = pr->w;
        const float *restrict g = pr->g;
        float *restrict m = o->state + 2 * o->offset[p];
        float *restrict v = m + pr->n;
        const float wd = pr->decay ? (float)(o->cfg.lr * o->cfg.weight_decay) : 0.0f;
        for (size_t i = 0; i < pr->n; i++) {
            float gi = g[i];
            m[i] = b1 * m[i] + (1.0f - b1) * gi;
            v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
            w[i] -= lr_t * m[i] / (sqrtf(v[i]) + eps_t) + wd * w[i];
        }
    }
    return 0;
}

double sp_optim_lr(const sp_optim *o) { return o->cfg.lr; }

void sp_optim_reset(sp_optim *o, size_t p, size_t start, size_t len)
{
    if (p >= o->n_params || start + len > o->params[p].n)
        return;
    float *m = o->state + 2 * o->offset[p];
    memset(m + start, 0, len * sizeof *m);
    memset(m + o->params[p].n + start, 0, len * sizeof *m);
}
