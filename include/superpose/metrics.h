/* metrics.h: scores of a learned dictionary and its codes against the truth.
 * Pure functions of their arguments; formulas and sources in metrics.c.
 *
 *   mmcs(A, B)    mean over rows a of A of max over rows b of B of
 *                 cos(a, b)  (Sharkey et al. 2022). With A = truth and
 *                 B = decoder: how well the truth is recovered (higher is
 *                 better); swapped: how many learned atoms are real.
 *   dead          latents that never fired (f > 0) over the evaluation
 *                 window (lower is better)
 *   l0            mean number of active (nonzero) latents per sample
 *   mse           sum_b ||x_hat_b - x_b||^2 / (N d)  (lower is better)
 *   fve           1 - SSE / SST, SST = sum_b ||x_b - mean(x)||^2 over the
 *                 window: fraction of variance explained (higher is better)
 *   precision     support precision: of the active (nonzero) codes, the
 *                 fraction whose latent's best-matched truth feature is
 *                 active on that sample (higher is better)
 *   recall        support recall: of the truly active features, the
 *                 fraction with at least one active latent matched to them
 *   f1            2 P R / (P + R)
 * A latent's match is the truth feature whose direction has the largest
 * cosine with its decoder row (many latents may share one feature; the
 * one-to-one Hungarian matching is MCC's).
 */
#ifndef SUPERPOSE_METRICS_H
#define SUPERPOSE_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <gsl/gsl_matrix_float.h>

/* Mean over the rows of a of the maximum cosine similarity with any row of
 * b (both k x d with the same d). Zero rows have cosine 0 with everything.
 * Works in blocks so memory stays O(block * rows(b)). Returns NaN if either
 * matrix is empty or their widths differ. If best is not NULL it receives
 * each row's maximum (rows(a) values). */
double sp_metric_mmcs(const gsl_matrix_float *a, const gsl_matrix_float *b,
                      double *best);

/* A copy of a with unit-norm rows (zero rows stay zero); NULL if out of
 * memory. */
gsl_matrix_float *sp_unit_rows(const gsl_matrix_float *a);
/* cos(a, b) of two float vectors of length d, accumulated in double; 0 when
 * either is zero. */
double sp_cos(const float *a, const float *b, size_t d);

/* Accumulates reconstruction statistics over an evaluation window. */
typedef struct {
    size_t d, m;
    size_t n;          /* samples seen */
    double sse;        /* sum ||x_hat - x||^2 */
    double active;     /* sum of active latents */
    double *sum_x;     /* (d) */
    double sum_x2;     /* sum ||x||^2 */
    size_t *fires;     /* (m) number of samples in which latent i fired */
} sp_recon_acc;

sp_recon_acc *sp_recon_acc_alloc(size_t d, size_t m);
void sp_recon_acc_free(sp_recon_acc *a);
/* x, xhat: (B, d); f: (B, m). */
void sp_recon_acc_add(sp_recon_acc *a, const gsl_matrix_float *x,
                      const gsl_matrix_float *xhat, const gsl_matrix_float *f);

typedef struct {
    double mse, fve, l0;
    size_t dead;
} sp_recon_stats;

void sp_recon_acc_finish(const sp_recon_acc *a, sp_recon_stats *out);

/* For each row i of dec (m x d), the row of truth (n x d) with the largest
 * cosine (ties to the lower index) into match[i], and that cosine into
 * cos[i] if not NULL. Zero rows match row 0 with cosine 0. 0, or -1 when
 * the widths differ, a matrix is empty or memory runs out. */
int sp_metric_best_match(const gsl_matrix_float *dec, const gsl_matrix_float *truth,
                         size_t *match, double *cos);

/* Accumulates support precision and recall (see above) over batches. */
typedef struct {
    size_t m, n_truth;
    const size_t *match;  /* (m), referenced */
    double active, hit;   /* active codes; those whose match is truly active */
    double truth_on, covered; /* truly active features; those covered */
    size_t *stamp, *cover;    /* (n_truth) scratch: sample stamps */
    size_t sample;
} sp_support_acc;

sp_support_acc *sp_support_acc_alloc(const size_t *match, size_t m, size_t n_truth);
void sp_support_acc_free(sp_support_acc *a);
/* f: (B, m) codes (nonzero = active); the true supports of the B samples
 * in compressed rows: sample b's features are idx[row[b] .. row[b+1]). */
void sp_support_acc_add(sp_support_acc *a, const gsl_matrix_float *f, const size_t *row,
                        const uint32_t *idx);
/* NaN for a ratio with a zero denominator. */
void sp_support_acc_finish(const sp_support_acc *a, double *precision, double *recall,
                           double *f1);

#endif
