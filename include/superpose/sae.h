/* sae.h: learners (sparse autoencoders) behind one small interface.
 *
 * A learner maps inputs x (B x d) to codes f (B x m) and back to x_hat
 * (B x d). Its dictionary is the decoder, stored as m x d with one atom per
 * row (the paper's decoder columns). Every variant implements the vtable
 * below, so the training loop (sp_train_step), the optimizers and the
 * metrics work with any of them.
 *
 * Kinds (model.arch):
 *   relu   untied ReLU SAE, Sharkey et al. 2022 / Bricken et al. 2023:
 *          f = ReLU(W_e (x - b_d) + b_e), x_hat = W_d f + b_d
 *          (b_d only with model.pre_bias = true), unit-norm decoder atoms.
 */
#ifndef SUPERPOSE_SAE_H
#define SUPERPOSE_SAE_H

#include <stddef.h>
#include <gsl/gsl_matrix_float.h>
#include <gsl/gsl_rng.h>

#include "superpose/optim.h"
#include "superpose/penalty.h"
#include "superpose/util.h"

typedef struct {
    char arch[32];      /* "relu" */
    double ratio;       /* latents = round(ratio * data.n) unless latents > 0 */
    int latents;        /* explicit number of latents m (0: use ratio) */
    int pre_bias;       /* learn b_d, subtracted before the encoder */
    int mse_per_sample; /* 0: MSE averaged over B*d (torch MSELoss); 1: over B */
} sp_sae_cfg;

/* Loss terms of one batch (forward pass). */
typedef struct {
    double loss;     /* mse + penalty */
    double mse;      /* as trained: sum r^2 / (B d) or / B */
    double penalty;
    double l0;       /* mean number of active latents per sample */
} sp_loss;

typedef struct sp_learner sp_learner;

typedef struct {
    const char *name;
    /* Forward and backward on x (B x d): zeroes and fills the gradients of
     * every parameter, returns the loss terms. */
    void (*loss_and_grad)(sp_learner *L, const gsl_matrix_float *x, sp_loss *out);
    /* Codes f (B x m) of x (B x d). */
    void (*encode)(sp_learner *L, const gsl_matrix_float *x, gsl_matrix_float *f);
    /* Reconstruction x_hat (B x d) of codes f (B x m). */
    void (*decode)(sp_learner *L, const gsl_matrix_float *f, gsl_matrix_float *xhat);
    /* Before the optimizer step (e.g. project gradients) and after it
     * (e.g. renormalise decoder atoms). */
    void (*pre_step)(sp_learner *L);
    void (*post_step)(sp_learner *L);
    void (*free)(sp_learner *L);
} sp_learner_ops;

struct sp_learner {
    const sp_learner_ops *ops;
    size_t d, m, max_batch;
    sp_param *params;          /* trainable tensors, owned by the learner */
    size_t n_params;
    gsl_matrix_float *decoder; /* m x d, one atom per row */
    gsl_matrix_float *encoder; /* m x d, or NULL */
};

/* Number of latents a configuration asks for, given data.n. */
size_t sp_sae_latents(const sp_sae_cfg *cfg, int n_truth);
const char *sp_sae_check(const sp_sae_cfg *cfg);

/* Allocates a learner for inputs of dimension d and batches of up to
 * max_batch, initialised from rng:
 *   W_e, b_e ~ U(-1/sqrt(d), 1/sqrt(d)) (torch's Linear default, as in the
 *   Sharkey reimplementation); decoder atoms ~ N(0, I), unit norm; b_d = 0. */
sp_learner *sp_sae_alloc(const sp_sae_cfg *cfg, const sp_penalty_cfg *pen,
                         size_t d, size_t m, size_t max_batch, gsl_rng *rng,
                         sp_err *err);
void sp_learner_free(sp_learner *L);

/* One training step: loss_and_grad, pre_step, optimizer step, post_step.
 * Returns the loss (NaN or Inf when the run diverged). */
double sp_train_step(sp_learner *L, sp_optim *opt, const gsl_matrix_float *x,
                     sp_loss *out);

#endif
