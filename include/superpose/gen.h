/* gen.h: generators of sparse ground-truth features in superposition.
 *
 * A generator owns a truth dictionary G (n x d, one unit-norm feature
 * direction per row) and draws batches of sparse true codes A (B x n, kept
 * sparse as (index, value) lists) and inputs X = A G + noise (B x d).
 *
 * Kinds (data.generator):
 *   sharkey  Sharkey, Braun & Millidge 2022, REFERENCE.md 1.1 (see gen.c).
 *
 * Randomness is explicit: the truth is drawn at allocation from the rng
 * passed to sp_gen_alloc; every batch draws from the rng passed to
 * sp_gen_batch. */
#ifndef SUPERPOSE_GEN_H
#define SUPERPOSE_GEN_H

#include <stddef.h>
#include <stdint.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_rng.h>

#include "superpose/util.h"

typedef struct {
    char generator[32]; /* "sharkey" */
    int d;              /* input dimension */
    int n;              /* number of truth features (G in the paper) */
    double k;           /* mean number of active features per sample */
    double decay;       /* lambda: feature i's weight is lambda^i */
    int correlated;     /* Gaussian copula over a random correlation matrix */
    double noise;       /* std of isotropic Gaussian noise added to x */
    long seed;          /* seeds the truth (and correlation matrix) */
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

/* Checks a generator configuration: NULL if valid, else a static message
 * naming the key and what is allowed. */
const char *sp_gen_check(const sp_gen_cfg *cfg);

/* Allocates the generator for batches of up to max_batch samples and
 * draws its truth from rng. NULL + err on failure. */
sp_gen *sp_gen_alloc(const sp_gen_cfg *cfg, size_t max_batch, gsl_rng *rng,
                     sp_err *err);
void sp_gen_free(sp_gen *g);

/* The truth dictionary, n x d with unit-norm rows. */
const gsl_matrix_float *sp_gen_truth(const sp_gen *g);

/* Draws B <= max_batch samples: codes (may be NULL) and x (B x d, may be a
 * view with more rows; only the first B rows are written). */
void sp_gen_batch(sp_gen *g, gsl_rng *rng, size_t B, sp_codes *codes,
                  gsl_matrix_float *x);

/* Per-sample firing probabilities of the last batch (B x n, row-major), or
 * NULL for kinds that have none. For statistical tests. */
const float *sp_gen_last_probs(const sp_gen *g);

/* The correlation matrix of the copula (n x n), or NULL when uncorrelated. */
const gsl_matrix *sp_gen_correlation(const sp_gen *g);

#endif
