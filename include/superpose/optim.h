/* optim.h: optimizers over a learner's parameter list, with learning-rate
 * schedules and gradient clipping. Formulas and sources in optim.c.
 *
 *   sgd   w <- w - lr_t v,  v <- mu v + g (mu = momentum; Nesterov: the
 *         step uses g + mu v)
 *   adam  Kingma & Ba 2015, Alg. 1, with decoupled weight decay (AdamW,
 *         Loshchilov & Hutter 2019) when weight_decay > 0
 *   muon  Jordan et al. 2024: for every matrix parameter (rows > 1 and
 *         cols > 1), momentum 0.95 with Nesterov, the update orthogonalised
 *         by 5 Newton-Schulz steps with coefficients (3.4445, -4.7750,
 *         2.0315), scaled by sqrt(max(1, rows/cols)), at lr = muon_lr;
 *         every other parameter (biases, thresholds) with Adam at lr.
 *
 * Schedule: lr_t = lr * warm(t) * decay(t) with warm(t) = min(1, (t+1)/warmup)
 * and decay(t) = 1 before decay_start * T, then falling linearly (linear)
 * or by a half cosine (cosine) to 0 at T. Clipping: if clip > 0 and the
 * global gradient norm over every parameter exceeds clip, all gradients
 * are scaled by clip / norm before the update. */
#ifndef SUPERPOSE_OPTIM_H
#define SUPERPOSE_OPTIM_H

#include <stddef.h>

typedef struct {
    char name[32];       /* sgd|adam|muon */
    double lr;           /* sgd, adam; muon: lr of the non-matrix parameters */
    double beta1, beta2, eps;
    double weight_decay; /* decoupled (adam, muon), or L2-style in sgd */
    double momentum;     /* sgd: mu (0: plain SGD) */
    int nesterov;        /* sgd */
    double muon_lr;      /* muon: lr of matrix parameters (0.02) */
    double muon_momentum;/* muon: 0.95 */
    int ns_steps;        /* muon: Newton-Schulz steps (5) */
    long warmup;         /* lr warm-up steps (0: none) */
    char decay[32];      /* none|linear|cosine */
    double decay_start;  /* fraction of training at which decay begins */
    double clip;         /* max global gradient norm (0: no clipping) */
} sp_optim_cfg;

/* The rows of a parameter that a step's gradient can have written: when
 * valid is set, rows[i] == 0 promises that row i of g is all zeros. Owned
 * and updated by the learner before each optimizer step (a sparse SAE step
 * writes the rows of its active latents only). Adam then neither reads
 * nor clips those rows and updates them from its moments alone, and the
 * gradient norm skips them; SGD and Muon read them as before.
 * A zero gradient adds exact zeros, so the results are the same bits as
 * with valid = 0; it only saves memory traffic at large widths. */
typedef struct {
    const unsigned char *rows;
    int valid;
} sp_rowmask;

/* One trainable tensor: values w and gradient g, n = rows * cols floats
 * each, row-major. A vector has rows = 1. */
typedef struct {
    const char *name;
    float *w;
    float *g;
    size_t n;
    int decay;          /* 1 if weight decay applies (weights, not biases) */
    size_t rows, cols;  /* shape; Muon orthogonalises rows > 1 && cols > 1 */
    const sp_rowmask *live; /* NULL: every row may be nonzero */
    int unit_rows;      /* each row rescaled to unit L2 norm after every update
                           (sp_unit_row), by the optimizer, row by row while the
                           row is in cache (a unit-norm decoder) */
} sp_param;

typedef struct sp_optim sp_optim;

/* NULL if valid, else a message naming the key, the value and what is
 * allowed. */
const char *sp_optim_check(const sp_optim_cfg *cfg);
/* total_steps: length of training (for the decay schedule). NULL if out of
 * memory. All workspace (Newton-Schulz included) is allocated here. */
sp_optim *sp_optim_alloc(const sp_optim_cfg *cfg, const sp_param *params,
                         size_t n_params, long total_steps);
void sp_optim_free(sp_optim *o);
/* Applies one update to every parameter from its gradient (clipping the
 * gradients in place first if asked). Returns the global gradient norm
 * before clipping: the square root of the sum over parameters and rows of
 * each row's sum of squares (in double, eight partial sums by position). */
double sp_optim_step(sp_optim *o);
/* Zeroes the optimizer state (moments, momentum) of entries
 * [start, start+len) of parameter p (used when latents are resampled). */
void sp_optim_reset(sp_optim *o, size_t p, size_t start, size_t len);
/* The first (second = 0) or second moment of parameter p (Adam; the
 * momentum of SGD and Muon is the first), or NULL: for inspection. */
const float *sp_optim_moment(sp_optim *o, size_t p, int second);
/* Rows of parameter p that Adam skips while the row mask rules them out
 * (m = 0 after their last update; optim.c "Idle rows"): for inspection. */
size_t sp_optim_idle_rows(const sp_optim *o, size_t p);
/* Learning rate of the next step (after warm-up and decay). */
double sp_optim_lr(const sp_optim *o);

/* Newton-Schulz orthogonalisation (Muon): out (rows x cols) ~ U V^T of
 * g = U S V^T, with `steps` quintic iterations on g / ||g||_F; ws holds at
 * least sp_muon_ws_size(rows, cols) floats. Exposed for tests. */
size_t sp_muon_ws_size(size_t rows, size_t cols);
void sp_muon_orthogonalise(const float *g, size_t rows, size_t cols, int steps,
                           float *out, float *ws);

#endif
