/* solve.h: sparse codes on a fixed dictionary (inference-time optimisation)
 * and the baselines that separate selection from shrinkage. REFERENCE.md 3.
 *
 * Dictionary D: m x d, one atom per row (as the learners' decoders), with an
 * optional bias b (d): the model is x ~ a D + b, a in R^m. Atoms need not
 * have unit norm: the solvers work on unit atoms internally and return codes
 * for D itself (a_j = a~_j / ||d_j||); zero atoms are never used.
 *
 * Solvers (for a batch of B inputs, X: B x d, codes A: B x m):
 *   mp     matching pursuit (Mallat & Zhang 1993): K times, pick
 *          i = argmax |c_i| (non-negative: argmax c_i > 0) of the
 *          correlations c = (x - b - a D) D~^T, a~_i += c_i.
 *   omp    orthogonal matching pursuit (Pati et al. 1993): pick as mp, then
 *          least squares on the support (incremental Cholesky of the
 *          support's Gram matrix; Batch-OMP of Rubinstein et al. 2008, the
 *          correlations updated as c = c0 - G_{:,S} a_S); non-negative:
 *          NNLS on the support (Lawson & Hanson active set).
 *   gp     gradient pursuit (Blumensath & Davies 2008): pick as mp, add to
 *          the support, step along the gradient restricted to the support
 *          g_S = c_S with the exact line search mu = <r, c> / ||c||^2,
 *          c = D~_S g_S. Non-negative: the step is capped where the first
 *          coordinate reaches 0 (so the residual never increases; this is
 *          the clip-at-0 rule made monotone); atoms at 0 whose gradient is
 *          negative stay at 0.
 *   ista   proximal gradient on the (non-negative) LASSO
 *          F(a) = 1/2 ||x - b - a D||^2 + lambda sum_i ||d_i|| |a_i|
 *          (a_i >= 0 when nonneg): the L1 of the unit-atom codes
 *          a~_i = ||d_i|| a_i, the plain L1 for unit-norm atoms; step
 *          1 / sigma_max(D~)^2 (Daubechies et al. 2004).
 *   fista  the monotone FISTA (MFISTA) of Beck & Teboulle 2009 (IEEE TIP
 *          18(11), eq. (5.1)): momentum as FISTA (Beck & Teboulle 2009,
 *          SIAM J. Imaging Sci. 2(1)), but each sample keeps the better of
 *          the new prox point and its previous iterate, so every sample's F
 *          never increases. Stops when the relative decrease of the
 *          batch's total F over one iteration is below tol (MFISTA: in an
 *          iteration where some sample took its new point), or at max_iter.
 *   Pursuits stop early on a sample when no correlation is positive
 *   (non-negative) or nonzero (above 1e-5 ||x - b||, float rounding), or
 *   the residual is 0.
 *
 * Work per step is batched: correlations come from the Gram matrix
 * G = D~ D~^T (m x m, precomputed when m <= SP_SOLVE_GRAM_MAX, else from
 * GEMMs in d dimensions), and the initial correlations of the batch are one
 * GEMM. */
#ifndef SUPERPOSE_SOLVE_H
#define SUPERPOSE_SOLVE_H

#include <stddef.h>
#include <gsl/gsl_matrix_float.h>

#include "superpose/util.h"

enum { SP_SOLVE_MP, SP_SOLVE_OMP, SP_SOLVE_GP, SP_SOLVE_ISTA, SP_SOLVE_FISTA, SP_N_SOLVERS };
/* "mp", "omp", "gp", "ista", "fista" */
extern const char *const sp_solver_names[SP_N_SOLVERS];
/* Index of a solver name, or -1. */
int sp_solver_find(const char *name);

#define SP_SOLVE_GRAM_MAX 4096

typedef struct {
    int kind;        /* SP_SOLVE_* */
    int nonneg;      /* codes >= 0 */
    size_t k;        /* pursuits: atoms (iterations) per sample, when no per-sample K is given */
    double lambda;   /* ista, fista: L1 coefficient of F */
    int max_iter;    /* ista, fista: iteration cap (e.g. 500) */
    double tol;      /* ista, fista: relative decrease of total F to stop (e.g. 1e-6) */
    int use_gram;    /* -1: automatic (m <= SP_SOLVE_GRAM_MAX); 0: never; 1: always (tests;
                        an error when m > SP_SOLVE_GRAM_MAX: no Gram matrix is allocated) */
    double *trace;   /* if not NULL: ista, fista: trace[t] = total F over the batch after
                        iteration t (max_iter entries); pursuits: trace[t] = total
                        1/2 ||r||^2 over the batch after iteration t (max K entries);
                        entries past the last iteration are left untouched */
} sp_solve_cfg;

typedef struct {
    int iters;       /* ista, fista: iterations run */
    double objective;/* ista, fista: final total F over the batch; pursuits: total 1/2 ||r||^2 */
} sp_solve_stats;

typedef struct sp_solver sp_solver;

/* A solver for dictionary D (m x d) and bias b (d floats, or NULL), for
 * batches of up to max_batch samples. D and b are referenced, not copied:
 * after changing them call sp_solver_refresh. All workspace is allocated
 * here (Gram matrix, Cholesky factors, per-sample supports), none in
 * sp_solve. NULL + err if out of memory or D is empty. */
sp_solver *sp_solver_alloc(const gsl_matrix_float *D, const float *b, size_t max_batch,
                           sp_err *err);
void sp_solver_free(sp_solver *S);
/* Recomputes atom norms, the Gram matrix and sigma_max(D~)^2 after D changed. */
void sp_solver_refresh(sp_solver *S);
/* sigma_max(D~)^2 of the unit atoms D~ (the Lipschitz constant of the
 * gradient of F in the unit-atom codes), by power iteration on D~^T D~ to
 * relative accuracy 1e-6; NaN if D has a non-finite entry (sp_solve and
 * sp_solve_refit then return -1). */
double sp_solver_lipschitz(const sp_solver *S);

/* Codes A (B x m) of X (B x d), B <= max_batch. kvec: per-sample number of
 * atoms for the pursuits (NULL: cfg->k for every sample; a sample with
 * kvec[b] = 0 gets the zero code). ISTA/FISTA warm-start from A when
 * warm != 0, else from 0. Returns 0, or -1 with err (bad configuration,
 * k > m, B > max_batch, shapes, a non-finite value in X: the message names
 * the sample). */
int sp_solve(sp_solver *S, const sp_solve_cfg *cfg, const gsl_matrix_float *X,
             const size_t *kvec, int warm, gsl_matrix_float *A, sp_solve_stats *st, sp_err *err);

/* Total LASSO objective F over the batch (double accumulation), for codes
 * A of D (NaN on a shape mismatch or out of memory). */
double sp_solve_objective(const sp_solver *S, double lambda, const gsl_matrix_float *X,
                          const gsl_matrix_float *A);

/* Baseline "refit": keeps the support of A_in (its nonzero entries) and
 * refits the weights by least squares on that support (non-negative least
 * squares when nonneg), writing A_out (may alias A_in). */
int sp_solve_refit(sp_solver *S, const gsl_matrix_float *X, const gsl_matrix_float *A_in,
                   int nonneg, gsl_matrix_float *A_out, sp_err *err);

/* Matched L0 for ISTA/FISTA: the lambda at which the mean number of
 * nonzero codes of X equals target_l0, by bisection on log(lambda) over
 * [lambda_max * 1e-4, lambda_max] (lambda_max = the largest |x D~^T|, at
 * which every code is 0) to |L0 - target| <= 0.02 * target or 30
 * bisections. cfg->lambda is ignored; A is workspace (B x m). Returns the
 * lambda, or NaN with err. */
double sp_solve_match_lambda(sp_solver *S, const sp_solve_cfg *cfg, const gsl_matrix_float *X,
                             double target_l0, gsl_matrix_float *A, sp_err *err);

/* Post-hoc scale of codes (baseline "scale"): least-squares factors s
 * minimising sum_b ||x_b - b - (s .* a_b) D||^2 over a fitting window,
 * either one scalar (per_latent = 0) or one per latent (the m x m normal
 * equations M s = v, M_jk = sum_b a_bj a_bk <d_j, d_k>, v_j = sum_b a_bj
 * <x_b - b, d_j>, solved by Cholesky with a 1e-6 relative ridge; latents
 * that never fired keep s = 1). Accumulate batches, then finish. */
typedef struct sp_scale_fit sp_scale_fit;
sp_scale_fit *sp_scale_fit_alloc(const gsl_matrix_float *D, const float *b, int per_latent,
                                 size_t max_batch);
void sp_scale_fit_free(sp_scale_fit *F);
void sp_scale_fit_add(sp_scale_fit *F, const gsl_matrix_float *X, const gsl_matrix_float *A);
/* Writes the factors into s (1 value, or m). 0, or -1 with err (also for
 * a shape mismatch in an earlier add; per latent, finish consumes the sums:
 * a second call fails). */
int sp_scale_fit_finish(sp_scale_fit *F, float *s, sp_err *err);

#endif
