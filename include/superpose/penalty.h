/* penalty.h: sparsity penalties on latent activations, with schedules.
 *
 *   P(F) = coef_t * s * (1/B) sum_b sum_i phi(f_bi, ||d_i||)
 * s = 1, or 1/m with per_latent (train.coef_scale = dict: the per-
 * dictionary-size normalisation of the public Sharkey et al. code).
 * Activations are non-negative for every ReLU-type SAE; phi is written for
 * a >= 0 and applied to |a| (sign carried into the gradient).
 *
 *   l1        phi = a                                 Sharkey et al. 2022
 *   cauchy    phi = log(1 + (a/s)^2)     (s = scale)  REFERENCE.md 2
 *   lp        phi = (a + eps)^p - eps^p  (0 < p <= 1)
 *   log       phi = log(1 + a/eps)
 *   tanh      phi = tanh(c a ||d_i||)    (c = 4)       Anthropic 2024 (updates)
 *   l1_dnorm  phi = a ||d_i||  (decoder not unit norm) Anthropic 2024 (April update)
 *   panneal   lp with p annealed linearly from 1 to p_end  Karvonen et al. 2024
 *   l0        JumpReLU's L0 (evaluated by the jumprelu learner, not here)
 *   none      no penalty
 *
 * Schedules (sp_penalty_set_step before the step's forward pass):
 *   coefficient warm-up: coef_t = coef * min(1, (t+1) / warmup);
 *   p-annealing: p_t = 1 + (p_end - 1) * clamp((t - t0) / (T - t0), 0, 1)
 *   with t0 = anneal_start * T; whenever p changes, coef is multiplied by
 *   sum phi_{p_old}(F) / sum phi_{p_new}(F) on the batch being evaluated,
 *   so the penalty is continuous across the change (Karvonen et al. 2024).
 */
#ifndef SUPERPOSE_PENALTY_H
#define SUPERPOSE_PENALTY_H

#include <stddef.h>

typedef struct {
    char name[32];       /* l1|cauchy|lp|log|tanh|l1_dnorm|panneal|l0|none */
    double coef;         /* alpha (train.coef) */
    int per_latent;      /* 1: divide by the number of latents m */
    double scale;        /* cauchy: s */
    double p;            /* lp: exponent in (0, 1] */
    double p_end;        /* panneal: final exponent in (0, 1] */
    double anneal_start; /* panneal: fraction of training before p moves */
    double eps;          /* lp, log, panneal: epsilon > 0 */
    double c;            /* tanh: c */
    long warmup;         /* coefficient warm-up steps (0: none) */
} sp_penalty_cfg;

/* NULL if valid, else a message naming the key, value and what is allowed. */
const char *sp_penalty_check(const sp_penalty_cfg *cfg);
/* 1 if phi depends on decoder norms (tanh, l1_dnorm): the decoder is then
 * left free (no unit-norm constraint) and eval needs dnorm. */
int sp_penalty_uses_dnorm(const sp_penalty_cfg *cfg);
/* 1 for penalties evaluated by sp_penalty_eval on ReLU-type activations
 * (all except l0 and none). */
int sp_penalty_is_activation(const sp_penalty_cfg *cfg);
/* Comma-separated list of every penalty name, for messages. */
const char *sp_penalty_names(void);

typedef struct sp_penalty sp_penalty;

/* total_steps: length of training (for p-annealing). NULL if cfg fails
 * sp_penalty_check or memory runs out. */
sp_penalty *sp_penalty_alloc(const sp_penalty_cfg *cfg, long total_steps);
void sp_penalty_free(sp_penalty *P);
/* Sets the training step t (0-based) of the next evaluations. */
void sp_penalty_set_step(sp_penalty *P, long t);
/* Current coefficient (after warm-up and p-annealing rescales) and p. */
double sp_penalty_coef(const sp_penalty *P);
double sp_penalty_p(const sp_penalty *P);

/* Value of the penalty on F (B x m, row stride ld). dnorm (m): decoder
 * row norms, needed only if sp_penalty_uses_dnorm. If dF is not NULL adds
 * dP/dF into dF (same layout); if ddnorm is not NULL adds dP/d||d_i|| into
 * ddnorm (m). May rescale the coefficient when p-annealing moved p (see
 * above), so it is not const. */
double sp_penalty_eval(sp_penalty *P, const float *F, size_t B, size_t m, size_t ld,
                       const float *dnorm, float *dF, float *ddnorm);
/* The same on codes stored by rows of nonzeros (the other entries are 0,
 * where every penalty of eval is 0 and adds nothing): row b holds
 * vals[ptr[b]..ptr[b+1]); B and m give the normalisation as in eval; adds
 * dP/df into dvals (same layout) if not NULL. Not for penalties that use
 * decoder norms. */
double sp_penalty_eval_rows(sp_penalty *P, const float *vals, const size_t *ptr, size_t B,
                            size_t m, float *dvals);
/* The same value, with dP/df added into a dense dF (B x m, row stride
 * ld) at the listed entries only: row b's nonzeros are vals[ptr[b]..
 * ptr[b+1]) at columns idx[..]. The entries it adds to get the bits eval
 * would add (the others get nothing, where eval may add phi'(0), which a
 * ReLU's mask then zeroes). Not for penalties that use decoder norms. */
double sp_penalty_eval_list(sp_penalty *P, const float *vals, const unsigned *idx,
                            const size_t *ptr, size_t B, size_t m, float *dF, size_t ld);

#endif
