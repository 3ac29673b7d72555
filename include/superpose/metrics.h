/* metrics.h: scores of a learned dictionary and its codes against the truth.
 * Pure functions of their arguments; formulas and sources in metrics.c.
 *
 *   mmcs(A, B)    mean over rows a of A of max over rows b of B of
 *                 cos(a, b)  (Sharkey et al. 2022). With A = truth and
 *                 B = decoder: how well the truth is recovered (higher is
 *                 better); swapped: how many learned atoms are real.
 *   dead          latents that never fired (f > 0) over the evaluation
 *                 window (lower is better)
 *   l0            mean number of active latents per sample
 *   mse           sum_b ||x_hat_b - x_b||^2 / (N d)  (lower is better)
 *   fve           1 - SSE / SST, SST = sum_b ||x_b - mean(x)||^2 over the
 *                 window: fraction of variance explained (higher is better)
 */
#ifndef SUPERPOSE_METRICS_H
#define SUPERPOSE_METRICS_H

#include <stddef.h>
#include <gsl/gsl_matrix_float.h>

/* Mean over the rows of a of the maximum cosine similarity with any row of
 * b (both k x d with the same d). Zero rows have cosine 0 with everything.
 * Works in blocks so memory stays O(block * rows(b)). Returns NaN if either
 * matrix is empty or their widths differ. If best is not NULL it receives
 * each row's maximum (rows(a) values). */
double sp_metric_mmcs(const gsl_matrix_float *a, const gsl_matrix_float *b,
                      double *best);

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

#endif
