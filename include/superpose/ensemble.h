/* ensemble.h: several SAEs of one shape trained on one data stream, as
 * one: every step, one generated batch and one concatenated encoder GEMM
 * x [W_e^1; ...; W_e^n]^T (B x n m) for all members, after which each
 * member runs its own training step (codes, decoder, backward, optimizer)
 * on its slice. The members are independent models; sharing the batch
 * and the GEMM changes no number when the members have no pre-encoder
 * bias (the slice of the concatenated product is the product of the
 * slice), and only rounding with one: (x - b_d) W_e^T is then computed as
 * x W_e^T - W_e b_d.
 *
 * Members: sae.c learners with an untied linear encoder (relu, topk,
 * batchtopk, jumprelu; not tied, not an MLP encoder), all with the same m,
 * d and batch. The sweep runner groups an L1 sweep at one width into
 * ensembles by itself (runner.c; sp_config_ensemble_key). */
#ifndef SUPERPOSE_ENSEMBLE_H
#define SUPERPOSE_ENSEMBLE_H

#include <stddef.h>
#include <gsl/gsl_matrix_float.h>

#include "superpose/optim.h"
#include "superpose/sae.h"
#include "superpose/util.h"

typedef struct sp_ensemble sp_ensemble;

/* Moves the encoders of L[0..n) into one (n m) x d matrix (call before
 * allocating the members' optimizers: the encoder parameter moves). The
 * ensemble must outlive every use of the members and is freed after
 * them. NULL with err if a member cannot join or shapes differ. */
sp_ensemble *sp_ensemble_alloc(sp_learner *const *L, size_t n, sp_err *err);
void sp_ensemble_free(sp_ensemble *E);

/* One training step of each member e with live[e] != 0 on the batch x
 * (B x d): loss[e] is sp_train_step's return value (NaN or Inf when the
 * member diverged; it is then not updated), out[e] its loss terms. The
 * other members are left alone. */
void sp_ensemble_step(sp_ensemble *E, sp_optim *const *opt, const gsl_matrix_float *x,
                      const int *live, sp_loss *out, double *loss);

#endif
