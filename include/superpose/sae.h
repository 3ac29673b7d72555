/* sae.h: learners (sparse autoencoders) behind one small interface.
 *
 * A learner maps inputs x (B x d) to codes f (B x m) and back to x_hat
 * (B x d). Its dictionary is the decoder, stored as m x d with one atom per
 * row (the paper's decoder columns). Every variant implements the vtable
 * below, so the training loop (sp_train_step), the optimizers, the
 * regularisers, resampling and the metrics work with any of them.
 *
 * Architectures (model.arch), REFERENCE.md 2:
 *   relu       f = ReLU(W_e (x - b_d) + b_e), x_hat = W_d f + b_d
 *              (Sharkey et al. 2022; Bricken et al. 2023); any activation
 *              penalty of penalty.h
 *   topk       f = ReLU(TopK_k(pre)), AuxK on dead latents (Gao et al. 2024)
 *   batchtopk  top B*k of the batch; at inference f = pre * [pre > theta],
 *              theta an EMA of the smallest kept value (Bussmann et al. 2024)
 *   jumprelu   f = pre * H(pre - theta), L0 penalty, rectangle STE
 *              (Rajamanoharan et al. 2024b)
 *   gated      gate and magnitude paths sharing W_gate (gated.c;
 *              Rajamanoharan et al. 2024a)
 *   stacked    residual TopK layers, each coding what the previous left
 *              (stacked.c)
 *   dl         dictionary learning by alternation (dict.c): each step codes
 *              the batch on the current dictionary (non-negative FISTA with
 *              lambda = train.coef, or non-negative OMP with k = model.k;
 *              solve.h), accumulates Mairal et al. 2009's statistics
 *              A = sum a a^T, Bm = sum a x^T with forgetting model.forget,
 *              and updates the dictionary: MOD (Engan et al. 1999; D =
 *              (A + eps I)^-1 Bm, rows renormalised) or one online block-
 *              coordinate sweep (Mairal et al. 2009, Alg. 2); atoms unused
 *              over the statistics, and the less used of two near-duplicate
 *              atoms (cos > 0.97), are reinitialised to badly reconstructed
 *              inputs. Codes at inference: the same coder.
 *   rica       reconstruction ICA (Le et al. 2011, dict.c): f = W x, loss
 *              ||W^T W x - x||^2 / d + coef sum_i log cosh(f_i), mean over
 *              the batch, trained by the optimizer; no norm constraint. The
 *              loss is blind to the sign of each row, so codes and decoder
 *              rows are reported as s_i f_i and s_i w_i, s_i the sign of
 *              latent i's running mean code
 *   pca        the dense baseline (dict.c): the top min(m, d) principal
 *              directions of the training stream (further rows 0), codes
 *              f = (x - mean) U^T
 * Options that compose with relu, topk, batchtopk and jumprelu:
 *   tied (W_e = W_d), pre_bias (b_d), encoder = mlp (pre = W_e ReLU(W_1
 *   (x - b_d) + b_1) + b_e), Matryoshka prefixes (reconstruction loss summed
 *   over nested prefixes of the latents, fixed or sampled each step),
 *   prestd (penalty on the spread of pre-activations).
 * Every learner: decoder orthogonality (orth), applied by sp_train_step. */
#ifndef SUPERPOSE_SAE_H
#define SUPERPOSE_SAE_H

#include <stddef.h>
#include <gsl/gsl_matrix_float.h>
#include <gsl/gsl_rng.h>

#include "superpose/optim.h"
#include "superpose/penalty.h"
#include "superpose/util.h"

typedef struct {
    char arch[32];      /* relu|topk|batchtopk|jumprelu|gated|stacked */
    double ratio;       /* latents = round(ratio * data.n) unless latents > 0 */
    int latents;        /* explicit number of latents m (0: use ratio) */
    int pre_bias;       /* learn b_d, subtracted before the encoder */
    int mse_per_sample; /* 0: MSE averaged over B*d (torch MSELoss); 1: over B */
    int tied;           /* W_e = W_d (one matrix) */
    int mlp;            /* encoder = mlp: one hidden ReLU layer of width hidden */
    int hidden;         /* MLP hidden width (0: d) */
    int k;              /* topk, batchtopk, stacked: active latents per sample (per layer) */
    int k_aux;          /* AuxK: dead latents used (0: d / 2) */
    double aux_coef;    /* AuxK coefficient (1/32); 0 disables */
    long dead_steps;    /* AuxK: a latent is dead after this many steps without firing */
    double ema;         /* batchtopk: threshold EMA decay */
    double theta0;      /* jumprelu: initial threshold */
    double bandwidth;   /* jumprelu: STE rectangle width eps */
    char prefixes[256]; /* Matryoshka: prefix sizes, comma separated ("" = off) */
    int prefix_samples; /* Matryoshka: >0 draws this many prefix sizes per step instead */
    int layers;         /* stacked: number of residual layers */
    double orth;        /* decoder orthogonality lambda */
    double prestd;      /* pre-activation spread penalty lambda */
    int coder;          /* dl: 0 fista (lambda = train.coef), 1 omp (k = model.k) */
    int update;         /* dl: 0 mod, 1 online (Mairal et al. 2009) */
    double forget;      /* dl: statistics decay per step, in (0, 1] */
    int init_transpose; /* relu: W_e = W_d and b_e = 0 at initialisation (SAELens; Chanin
                           et al. 2024), instead of torch's uniform Linear init */
    int sparse;         /* relu, topk, batchtopk training step: SP_SPARSE_AUTO (sparse
                           kernels when the batch's codes are sparse enough), _DENSE
                           (always GEMMs) or _SPARSE (always sparse where supported) */
} sp_sae_cfg;

/* model.sparse (the order of the config choices auto|dense|sparse). */
enum { SP_SPARSE_AUTO = 0, SP_SPARSE_DENSE = 1, SP_SPARSE_SPARSE = 2 };

/* Loss terms of one batch (forward pass). */
typedef struct {
    double loss;     /* everything below, summed */
    double mse;      /* as trained: sum r^2 / (B d) or / B (Matryoshka: summed over prefixes) */
    double penalty;  /* sparsity penalty (L1, ..., L0) */
    double aux;      /* AuxK, gated auxiliary reconstruction */
    double reg;      /* orthogonality + pre-activation spread */
    double l0;       /* mean number of active latents per sample */
} sp_loss;

typedef struct sp_learner sp_learner;

typedef struct {
    const char *name;
    /* Forward and backward on x (B x d): zeroes and fills the gradients of
     * every parameter, returns the loss terms. Adds 1 to fires[i] for each
     * sample on which latent i is active. */
    void (*loss_and_grad)(sp_learner *L, const gsl_matrix_float *x, sp_loss *out);
    /* Codes f (B x m) of x (B x d), as at inference. */
    void (*encode)(sp_learner *L, const gsl_matrix_float *x, gsl_matrix_float *f);
    /* Reconstruction x_hat (B x d) of codes f (B x m). */
    void (*decode)(sp_learner *L, const gsl_matrix_float *f, gsl_matrix_float *xhat);
    /* Before the optimizer step (e.g. project gradients) and after it
     * (e.g. renormalise decoder atoms). May be NULL. */
    void (*pre_step)(sp_learner *L);
    void (*post_step)(sp_learner *L);
    /* Resampling (Bricken et al. 2023): decoder row i = dir (unit, d),
     * encoder row i = dir * enc_norm, encoder bias i = 0 (and any other
     * per-latent parameter to its initial value); resets the optimizer
     * state of every entry it changed. Tied weights: the shared row is dir
     * (unit), enc_norm cannot apply. MLP encoder: the encoder row is the
     * hidden code of dir, at norm enc_norm. */
    void (*reinit)(sp_learner *L, sp_optim *opt, size_t i, const float *dir, float enc_norm);
    void (*free)(sp_learner *L);
    /* A learner not trained by gradients (dl, pca): one training step on x
     * (fills out, adds to fires, returns the loss). When not NULL,
     * sp_train_step calls it instead of loss_and_grad + optimizer (which
     * then has no parameters), and loss_and_grad may be NULL. */
    double (*step)(sp_learner *L, const gsl_matrix_float *x, sp_loss *out);
} sp_learner_ops;

struct sp_learner {
    const sp_learner_ops *ops;
    size_t d, m, max_batch;
    sp_param *params;              /* trainable tensors, owned by the learner */
    size_t n_params;
    gsl_matrix_float *decoder;     /* m x d, one atom per row */
    gsl_matrix_float *decoder_grad;/* m x d, its gradient */
    gsl_matrix_float *encoder;     /* m x d, or NULL (rows: the latents' input directions) */
    gsl_matrix_float *enc_rows;    /* m x anything: row i holds latent i's encoder weights
                                      (= encoder, or the MLP's last layer); for resampling */
    int unit_norm;                 /* decoder rows kept at unit norm */
    long step;                     /* optimizer steps taken */
    long total_steps;
    unsigned long *fires;          /* (m) active count, accumulated by loss_and_grad */
    double orth;                   /* decoder orthogonality lambda (sp_train_step) */
    float *orth_ws;                /* workspace of sp_reg_orth */
};

/* Number of latents a configuration asks for, given data.n. */
size_t sp_sae_latents(const sp_sae_cfg *cfg, int n_truth);
/* Comma-separated list of architectures, for messages. */
const char *sp_sae_archs(void);
/* Checks the model alone and its combination with the penalty: NULL, or a
 * message naming the key, the value and what is allowed. */
const char *sp_sae_check(const sp_sae_cfg *cfg, const sp_penalty_cfg *pen);
/* The checks that need the number of latents m and the input dimension d
 * (k <= m, prefixes <= m, layers dividing m). NULL or a message. */
const char *sp_sae_check_latents(const sp_sae_cfg *cfg, size_t m, size_t d);

/* Allocates any learner of cfg->arch for inputs of dimension d, m latents,
 * batches of up to max_batch, training for total_steps, initialised from
 * rng (see each architecture's file for its initialisation). */
sp_learner *sp_learner_alloc(const sp_sae_cfg *cfg, const sp_penalty_cfg *pen, size_t d,
                             size_t m, size_t max_batch, long total_steps, gsl_rng *rng,
                             sp_err *err);
void sp_learner_free(sp_learner *L);

/* One training step: loss_and_grad, the decoder orthogonality
 * regulariser, pre_step, optimizer step, post_step, step += 1. Returns the
 * loss (NaN or Inf when the run diverged: then no update is made). */
double sp_train_step(sp_learner *L, sp_optim *opt, const gsl_matrix_float *x,
                     sp_loss *out);

/* Base-struct helpers for learner implementations (sae.c). Allocates fires
 * and, if orth > 0, the orthogonality workspace. 0 or -1. */
int sp_learner_base_init(sp_learner *L, const sp_sae_cfg *cfg, size_t d, size_t m,
                         size_t max_batch, long total_steps);
void sp_learner_base_free(sp_learner *L);
/* Removes from each row of g (m x d) its component along the same row of
 * w (unit rows); renormalises the rows of w. */
void sp_rows_project(const gsl_matrix_float *w, gsl_matrix_float *g);
void sp_rows_normalise(gsl_matrix_float *w);
/* The unit-norm constraint as pre_step and post_step of any learner
 * whose decoder rows are kept at unit norm (when L->unit_norm): project
 * L->decoder_grad before the step, renormalise L->decoder after it. */
void sp_learner_unit_pre_step(sp_learner *L);
void sp_learner_unit_post_step(sp_learner *L);
/* x_hat = f W_d + b_d (bd may be NULL): the decoder of every learner.
 * f: (B, m), W_d: (m, d), xhat: (B, d). */
void sp_decode_affine(const gsl_matrix_float *wd, const float *bd, const gsl_matrix_float *f,
                      gsl_matrix_float *xhat);
/* TopK of one row: f[i] = z[i] for the k largest entries of z (ties to the
 * lower index) that are also > 0, else 0; exactly min(k, #positive)
 * entries are kept. scratch holds n floats. Returns the number kept. */
size_t sp_topk_row(const float *z, size_t n, size_t k, float *f, float *scratch);
/* The k-th largest of v[0..n) (1 <= k <= n); reorders v. */
float sp_kth_largest(float *v, size_t n, size_t k);

/* The ReLU-family learner (relu, topk, batchtopk, jumprelu) of sae.c. */
sp_learner *sp_sae_alloc(const sp_sae_cfg *cfg, const sp_penalty_cfg *pen, size_t d,
                         size_t m, size_t max_batch, long total_steps, gsl_rng *rng,
                         sp_err *err);
/* Which kernels the last loss_and_grad of a sae.c learner used: 1 the
 * sparse ones (work over the active codes only), 0 the dense GEMMs, -1 if
 * L is not a sae.c learner or has not run a step. */
int sp_sae_last_sparse(const sp_learner *L);
/* Sets model.sparse of a sae.c learner from now on (SP_SPARSE_*): 0, or -1
 * if L is not a sae.c learner or mode is not one of them. */
int sp_sae_set_sparse(sp_learner *L, int mode);
/* Ensembles (ensemble.h): 1 if L is a sae.c learner with an untied linear
 * encoder W_e (m x d), whose encoder product can come from outside. */
int sp_sae_can_share(const sp_learner *L);
/* Copies W_e into rows (m d floats, owned by the caller and outliving L)
 * and makes L use them from now on. Call before sp_optim_alloc. 0, or -1
 * if L cannot share or memory runs out. */
int sp_sae_share_encoder(sp_learner *L, float *rows);
/* From now on, loss_and_grad and encode take x W_e^T (B x m, any row
 * stride, for the very x they are given) from xw instead of computing it;
 * NULL computes it again. No effect on a learner that cannot share. */
void sp_sae_set_product(sp_learner *L, const gsl_matrix_float *xw);
/* Density of codes below which model.sparse = auto takes the sparse kernels. */
extern const double sp_sae_sparse_threshold;
/* gated.c and stacked.c. */
sp_learner *sp_gated_alloc(const sp_sae_cfg *cfg, const sp_penalty_cfg *pen, size_t d,
                           size_t m, size_t max_batch, long total_steps, gsl_rng *rng,
                           sp_err *err);
sp_learner *sp_stacked_alloc(const sp_sae_cfg *cfg, size_t d, size_t m, size_t max_batch,
                             long total_steps, gsl_rng *rng, sp_err *err);
/* dict.c: dl, rica and pca (see the list of architectures above). */
sp_learner *sp_dict_alloc(const sp_sae_cfg *cfg, const sp_penalty_cfg *pen, size_t d, size_t m,
                          size_t max_batch, long total_steps, gsl_rng *rng, sp_err *err);

/* Regularisers (reg.c).
 * Decoder orthogonality (restricted isometry): R = lambda sum_{i != j}
 * cos^2(d_i, d_j) over the rows of W (m x d), computed in row blocks so
 * that memory is O(block * m), not O(m^2). Adds dR/dW into gW (if not
 * NULL); ws holds sp_reg_orth_ws_size(m, d) floats. */
size_t sp_reg_orth_ws_size(size_t m, size_t d);
double sp_reg_orth(const gsl_matrix_float *W, double lambda, gsl_matrix_float *gW, float *ws);
/* Pre-activation spread: R = lambda (1/B) sum_b sqrt(var_i(P_bi) + 1e-8),
 * the standard deviation of each sample's pre-activations across the m
 * latents, averaged over the batch (keeps latents from drifting far below
 * the others, the way latents die). P: B x m, row stride ld; adds dR/dP
 * into dP (if not NULL). */
double sp_reg_prestd(const float *P, size_t B, size_t m, size_t ld, double lambda, float *dP);

/* Dead-latent resampling (Bricken et al. 2023), done by the caller every
 * window: given latents `dead` (n_dead indices), candidate inputs X
 * (N x d) and their losses (N), picks for each dead latent an input with
 * probability proportional to loss^2, sets its decoder row to the input
 * minus b_d (if any: pass bd, else NULL) normalised, its encoder row to
 * that direction times 0.2 x the mean encoder row norm of the alive
 * latents, its bias to 0, and resets its optimizer state (ops->reinit).
 * Returns the number of latents reinitialised. */
size_t sp_resample(sp_learner *L, sp_optim *opt, const size_t *dead, size_t n_dead,
                   const gsl_matrix_float *X, const double *loss, const float *bd,
                   gsl_rng *rng);

#endif
