/* gen.h: generators of sparse ground-truth features in superposition.
 *
 * A generator owns a truth dictionary G (n_truth x d, one unit-norm feature
 * direction per row) and draws batches of sparse true codes A (B x n_truth,
 * kept sparse as (index, value) lists) and inputs
 *     X = A G + background + noise        (B x d).
 * The codes carry every magnitude (per-feature scales included), so the
 * feature part of X is exactly A G.
 *
 * Kinds (data.generator), REFERENCE.md 1; the laws are in gen.c:
 *   sharkey   Sharkey et al. 2022: per-sample rescaled decaying firing
 *   features  independent (or copula-correlated, or exclusive-group) features
 *             with a firing law (constant, decay, zipf, list)
 *   tree      a hierarchy of features (data.nodes), e.g. Chanin et al. 2024,
 *             Bussmann et al. 2025, Chanin et al. 2025
 *   tms       the hidden activations h = W x of a trained Toy Model of
 *             Superposition (Elhage et al. 2022); truth = columns of W
 * Every kind but tms may add continuous features (data.continuous): each
 * owns an orthonormal k-dimensional subspace (k rows of G) and, when it
 * fires, contributes a * (unit vector drawn uniformly on the sphere S^(k-1))
 * in it; its k code entries are the signed coordinates.
 *
 * A finite dataset (data.dataset = N) is drawn once at allocation, with
 * data.holdout of it kept for evaluation; batches then cycle through the
 * training split in a shuffled order (reshuffled every epoch) and, after
 * sp_gen_use_split(g, SP_SPLIT_EVAL), through the held-out split in order.
 *
 * Randomness is explicit: the truth (and a finite dataset) is drawn at
 * allocation from the rng passed to sp_gen_alloc; every batch draws from
 * the rng passed to sp_gen_batch. The per-feature uniforms of a batch come
 * from a SplitMix64 stream (Steele, Lea & Flood 2014) keyed by two draws of
 * that rng: reproducible to the bit, and ~10x cheaper than one gsl_rng call
 * per feature (gen.c). */
#ifndef SUPERPOSE_GEN_H
#define SUPERPOSE_GEN_H

#include <stddef.h>
#include <stdint.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_rng.h>

#include "superpose/util.h"

#define SP_TREE_MAX 64

/* A magnitude law: constant (mean), uniform [min, max), exponential (mean),
 * folded_normal |N(mean, std^2)|. law "" in a tree node means the data
 * section's law. */
typedef struct {
    char law[32];
    double min, max, mean, std;
} sp_mag_cfg;

/* One node of a feature tree. A root fires with probability p; a child
 * fires with probability p when its parent fired (never otherwise). The
 * children of an exclusive node fire one at a time: child j with
 * probability p_j, none with 1 - sum_j p_j. A readout node has a truth
 * direction; a latent node only gates its children. count > 1 repeats the
 * node with its whole subtree. */
typedef struct {
    char name[32];
    char parent[32];   /* "" for a root */
    double p;
    int exclusive;
    int readout;
    int count;
    sp_mag_cfg mag;
    int line;          /* experiment-file line, for messages (not hashed) */
} sp_tree_node;

typedef struct {
    char generator[32];  /* sharkey | features | tree | tms */
    int d;               /* input dimension */
    int n;               /* point features (G in the paper) */
    /* geometry of the truth directions */
    char geometry[32];   /* gaussian | orthonormal | coherent | file */
    double coherence;    /* coherent: target max |cos| */
    char directions[256];/* file: n x d .npy */
    /* firing */
    char firing[32];     /* features: constant | decay | zipf | list */
    double p;            /* constant law */
    double k;            /* sharkey, decay, zipf: mean active features */
    double decay;        /* lambda of the decay law */
    double zipf;         /* exponent s: p_i proportional to (i+1)^-s */
    char probs[256];     /* list law: n probabilities */
    char correlation[32];/* none | copula | lowrank */
    int rank;            /* lowrank: factors */
    double rho;          /* lowrank: correlation scale */
    int exclusive;       /* features: groups of this many mutually exclusive features */
    /* magnitudes */
    sp_mag_cfg mag;
    char scales[256];    /* per-feature scale, n values ("" = 1) */
    double scale_jitter; /* scale_i = 1 + jitter N(0,1) (Bussmann et al. 2025) */
    /* continuous features */
    int continuous;      /* how many */
    int continuous_dim;  /* k: a circle when 2 */
    double continuous_p; /* firing probability of each */
    /* noise */
    double noise;        /* isotropic Gaussian std */
    double background;   /* every feature adds U[0, background) g_i (dense) */
    /* finite dataset */
    long dataset;        /* samples drawn once; 0 = stream fresh samples */
    double holdout;      /* fraction of the dataset kept for evaluation */
    /* tms */
    double importance;   /* I_i = importance^i */
    long tms_steps;
    int tms_batch;
    double tms_lr;
    long seed;           /* seeds the truth */
    /* tree */
    int n_nodes;
    sp_tree_node nodes[SP_TREE_MAX];
} sp_gen_cfg;

/* Sparse codes of a batch in compressed-row form: sample b's active
 * features are idx[row[b] .. row[b+1]) with magnitudes val[...]. */
typedef struct {
    size_t rows, nnz, cap;
    size_t *row;     /* rows + 1 */
    uint32_t *idx;   /* cap */
    float *val;      /* cap */
} sp_codes;

/* cap is the number of (index, value) pairs kept per batch; a batch with
 * more active features keeps the first cap (cap = max_rows * n keeps all). */
sp_codes *sp_codes_alloc(size_t max_rows, size_t cap);
void sp_codes_free(sp_codes *c);

typedef struct sp_gen sp_gen;

/* Checks a generator configuration: 0, or -1 with a message naming the
 * key (data.KEY or the tree node) and what is allowed. For a tree error,
 * *bad_node (if not NULL) is the index of the node at fault, else -1. */
int sp_gen_check(const sp_gen_cfg *cfg, int *bad_node, sp_err *err);

/* Number of truth rows: readout features (point features, tree readouts)
 * plus continuous_dim rows per continuous feature. */
size_t sp_gen_truth_rows(const sp_gen_cfg *cfg);
/* Number of readout features of a tree (with counts expanded), or -1 with
 * err for an invalid tree (*bad_node, if not NULL: the node at fault or -1). */
int sp_gen_tree_features(const sp_gen_cfg *cfg, int *bad_node, sp_err *err);

/* Allocates the generator for batches of up to max_batch samples and
 * draws its truth (and finite dataset) from rng. NULL + err on failure. */
sp_gen *sp_gen_alloc(const sp_gen_cfg *cfg, size_t max_batch, gsl_rng *rng,
                     sp_err *err);
/* As sp_gen_alloc, reporting the progress of a toy model's training
 * (generator = tms) through progress (may be NULL). */
sp_gen *sp_gen_alloc_ex(const sp_gen_cfg *cfg, size_t max_batch, gsl_rng *rng,
                        void (*progress)(void *user, long step, long steps, double loss),
                        void *user, sp_err *err);
void sp_gen_free(sp_gen *g);

/* The truth dictionary, n_truth x d with unit-norm rows. */
const gsl_matrix_float *sp_gen_truth(const sp_gen *g);

/* Draws B <= max_batch samples: codes (may be NULL) and x (B x d, may be a
 * view with more rows; only the first B rows are written). */
void sp_gen_batch(sp_gen *g, gsl_rng *rng, size_t B, sp_codes *codes,
                  gsl_matrix_float *x);

typedef enum { SP_SPLIT_TRAIN, SP_SPLIT_EVAL } sp_split;
/* With a finite dataset, selects the split later batches read (the eval
 * split restarts at its first sample). No effect when streaming. */
void sp_gen_use_split(sp_gen *g, sp_split split);
/* Samples of the split (0 when streaming). */
size_t sp_gen_split_size(const sp_gen *g, sp_split split);

/* Tree generator: for each truth row, the truth row of its nearest readout
 * ancestor, or -1 (a root, or a row of another generator). parent has
 * n_truth entries. Returns the number of rows that have a parent. */
size_t sp_gen_parent_rows(const sp_gen *g, long *parent);

/* Expected firing rate of each truth row (n_truth values), or -1 when the
 * kind has no closed form (sharkey: its rates depend on the normaliser). */
int sp_gen_rates(const sp_gen *g, double *rates);

/* From now on keep every sample's firing probabilities (sharkey only: -1
 * for other kinds). Off by default: B x n floats a batch cost memory
 * traffic that training does not need. */
int sp_gen_record_probs(sp_gen *g);
/* Per-sample firing probabilities of the last batch (B x n, row-major), or
 * NULL unless recording. For statistical tests. */
const float *sp_gen_last_probs(const sp_gen *g);

/* The correlation matrix of the copula (n x n), or NULL when there is none. */
const gsl_matrix *sp_gen_correlation(const sp_gen *g);

/* The trained TMS model (generator = tms): W (m x n, row-major, m = d),
 * b (n), final training loss; NULL otherwise. */
const float *sp_gen_tms_w(const sp_gen *g);
const float *sp_gen_tms_b(const sp_gen *g);
double sp_gen_tms_loss(const sp_gen *g);

/* Magnitude-law moments (mean, variance) in closed form, for tests and
 * figures; law by name. -1 for an unknown law. */
int sp_mag_moments(const sp_mag_cfg *m, double *mean, double *var);

/* Parses a list "a, b, c" of n finite numbers in [lo, hi] into out. 0 or
 * -1 with err naming key. */
int sp_gen_parse_list(const char *text, const char *key, size_t n, double lo, double hi,
                      double *out, sp_err *err);

#endif
