/* optim.h: optimizers over a learner's parameter list.
 *
 * adam (Kingma & Ba 2015, Alg. 1), with decoupled weight decay (AdamW,
 * Loshchilov & Hutter 2019) when weight_decay > 0:
 *   m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
 *   w <- w - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) - lr wd w
 * State is one contiguous buffer for all parameters; the update is one
 * fused loop per parameter (no per-element calls). */
#ifndef SUPERPOSE_OPTIM_H
#define SUPERPOSE_OPTIM_H

#include <stddef.h>

typedef struct {
    char name[32];      /* "adam" */
    double lr;
    double beta1, beta2, eps;
    double weight_decay;
} sp_optim_cfg;

/* One trainable tensor: values w and gradient g, n floats each. */
typedef struct {
    const char *name;
    float *w;
    float *g;
    size_t n;
    int decay;          /* 1 if weight decay applies (weights, not biases) */
} sp_param;

typedef struct sp_optim sp_optim;

const char *sp_optim_check(const sp_optim_cfg *cfg);
sp_optim *sp_optim_alloc(const sp_optim_cfg *cfg, const sp_param *params,
                         size_t n_params);
void sp_optim_free(sp_optim *o);
/* Applies one update to every parameter from its gradient. */
void sp_optim_step(sp_optim *o);
/* Zeroes the optimizer state of entries [start, start+len) of parameter p
 * (used when latents are resampled). */
void sp_optim_reset(sp_optim *o, size_t p, size_t start, size_t len);

#endif
