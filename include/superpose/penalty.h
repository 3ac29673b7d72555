/* penalty.h: sparsity penalties on (non-negative) latent activations.
 *
 *   P(F) = coef * scale * (1/B) sum_b sum_i phi(f_bi)
 * with scale = 1 or 1/m (train.l1_scale = dict: the per-dictionary-size
 * normalisation of the public Sharkey et al. reimplementation).
 *   l1:  phi(a) = |a|                  (Sharkey et al. 2022; REFERENCE.md 2)
 */
#ifndef SUPERPOSE_PENALTY_H
#define SUPERPOSE_PENALTY_H

#include <stddef.h>

typedef enum { SP_PENALTY_L1 = 0 } sp_penalty_kind;

typedef struct {
    char name[32];   /* "l1" */
    double coef;     /* alpha */
    int per_latent;  /* 1: divide by the number of latents m */
} sp_penalty_cfg;

/* NULL if valid, else a message naming the key. */
const char *sp_penalty_check(const sp_penalty_cfg *cfg);

/* Value of the penalty on F (B x m, row stride ld) and, if dF is not NULL,
 * adds dP/dF into dF (same layout). */
double sp_penalty_eval(const sp_penalty_cfg *cfg, const float *F, size_t B,
                       size_t m, size_t ld, float *dF);

#endif
