/* tms.h: the toy model of superposition. Elhage et al. 2022, "Toy Models
 * of Superposition": the ReLU output model of "Demonstrating Superposition"
 * (Experiment Setup), and D*, D_i of "The Geometry of Superposition"
 * (Uniform Superposition, Feature Dimensionality). REFERENCE.md 1.2.
 *
 * Features x in R^n, each i.i.d.: x_i = 0 with probability S = 1 - p, else
 * x_i ~ U[0,1). With W (m x n) and b (n):
 *   h = W x,  x' = ReLU(W^T h + b)
 *   L(W, b) = (1/B) sum_b sum_{i=0}^{n-1} I_i (x_{b,i} - x'_{b,i})^2,  I_i = r^i
 * (i counted from 0, as in the paper's 0.9 ** arange(n)). Trained with
 * AdamW (sp_optim, decay on W only) on fresh batches every step; W starts
 * Xavier-normal, N(0, 2 / (m + n)), b = 0.
 *
 * Geometry, W_i = column i of W (dimensions per feature, feature
 * dimensionality):
 *   D*  = m / ||W||_F^2
 *   D_i = ||W_i||^2 / sum_j (W_i_hat . W_j)^2
 * e.g. a regular pentagon of unit columns in R^2 has D_i = D* = 2/5. */
#ifndef SUPERPOSE_TMS_H
#define SUPERPOSE_TMS_H

#include <stddef.h>
#include <gsl/gsl_rng.h>

#include "superpose/util.h"

typedef struct {
    int n, m;             /* features, hidden dimensions */
    double p;             /* firing probability 1 - S, in (0, 1] */
    double importance;    /* r > 0: I_i = r^i (1: all equal) */
    long steps;           /* default 10,000 */
    int batch;            /* default 1024 */
    double lr;            /* default 1e-3 */
    double weight_decay;  /* AdamW decoupled decay on W, default 0 */
} sp_tms_cfg;

/* A trained model. */
typedef struct {
    int n, m;
    float *W;     /* m x n, row-major: column i is feature i's direction */
    float *b;     /* n */
    double loss;  /* mean of the last min(100, steps) step losses */
} sp_tms;

/* Scratch for one batch of up to max_batch samples. */
typedef struct sp_tms_ws sp_tms_ws;

/* The paper's defaults for n = 5, m = 2: p = 0.05, importance 0.9,
 * 10,000 steps of batch 1024 at lr 1e-3, no weight decay. */
sp_tms_cfg sp_tms_default(void);

/* NULL if valid, else a static message naming the field, its allowed range. */
const char *sp_tms_check(const sp_tms_cfg *c);

/* Trains one model. Draws the initial W, then every batch, from rng (the
 * same seed gives the same bits). progress (may be NULL) is called at most
 * every 16 steps and 0.25 s, and after the last step. NULL + err on an
 * invalid configuration, out of memory or a non-finite loss. */
sp_tms *sp_tms_train(const sp_tms_cfg *c, gsl_rng *rng,
                     void (*progress)(void *user, long step, long steps, double loss),
                     void *user, sp_err *err);
void sp_tms_free(sp_tms *t);

/* Draws B inputs into x (B x n, row-major) from the law above: an entry is
 * nonzero iff its feature fired, magnitudes are U(0,1) on a 2^-23 grid.
 * Takes one 64-bit key from rng (two gsl_rng_get) and expands it with
 * splitmix64: B n draws through gsl_rng would cost more than the GEMMs. */
void sp_tms_sample(const sp_tms_cfg *c, gsl_rng *rng, size_t B, float *x);

sp_tms_ws *sp_tms_ws_alloc(int n, int m, size_t max_batch);
void sp_tms_ws_free(sp_tms_ws *ws);

/* Loss of W (m x n), b (n) on x (B x n), and its gradient: gW (m x n) and
 * gb (n) are overwritten. n and m are the workspace's; c gives only r.
 * NaN if B is 0 or above the workspace's max_batch. */
double sp_tms_loss_grad(const sp_tms_cfg *c, const float *W, const float *b,
                        const float *x, size_t B, float *gW, float *gb,
                        sp_tms_ws *ws);

/* D* = m / ||W||_F^2 for W (m x n); 0 if W = 0. */
double sp_tms_dstar(const float *W, int m, int n);
/* D_i for every column i of W (m x n) into Di (n); 0 for a zero column. */
void sp_tms_dims(const float *W, int m, int n, double *Di);

#endif
