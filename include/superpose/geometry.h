/* geometry.h: ground-truth dictionaries G (n x d, one unit-norm feature
 * direction per row) with a chosen geometry, REFERENCE.md 1.1, 1.3, 1.4.
 *
 *   gaussian      g_i ~ N(0, I_d), g_i <- g_i / ||g_i||  (Sharkey, Braun &
 *                 Millidge 2022). The same draws and rounding as the
 *                 sharkey generator's truth in gen.c.
 *   orthonormal   the rows of Q from a QR factorisation of a Gaussian d x n
 *                 matrix, signs fixed so diag(R) > 0: Haar distributed, and
 *                 row i is Gram-Schmidt of the first i + 1 Gaussian rows
 *                 (the Matryoshka toy of Bussmann et al. 2025 makes its 20
 *                 directions this way). Needs n <= d.
 *   coherent      largest |cos| between distinct rows <= mu. Welch (1974):
 *                 any n unit vectors in R^d with n > d have
 *                 max |cos| >= sqrt((n - d) / (d (n - 1))).
 *                 Method: gradient repulsion on a hinge energy,
 *                   E(G) = 1/2 sum_{i != j} max(0, |g_i . g_j| - t)^2,
 *                 t = 0.98 max(mu, 1.1 Welch), by Riemannian gradient
 *                 steps on the product of unit spheres with an adaptive
 *                 ("bold driver") step, from Gaussian rows; only pairs above
 *                 t move, so the result stays close to the random draw.
 *                 Details and what was tried in geometry.c. Not the
 *                 alternating projection of Tropp, Dhillon, Heath &
 *                 Strohmer 2005, which goes lower when n >> d but needs an
 *                 n x n eigendecomposition per step.
 *   from_npy      a user-supplied n x d array, rows normalised.
 *
 * Every draw comes from the gsl_rng passed in: the same rng state gives the
 * same bits (on one OpenBLAS kernel family: the coherent descent rounds
 * through sgemm). Functions returning int return 0, or -1 with err filled. */
#ifndef SUPERPOSE_GEOMETRY_H
#define SUPERPOSE_GEOMETRY_H

#include <stddef.h>
#include <gsl/gsl_matrix_float.h>
#include <gsl/gsl_rng.h>

#include "superpose/util.h"

/* Rows ~ N(0, I_d), normalised (n * d Gaussian draws, row-major). */
void sp_geom_gaussian(gsl_matrix_float *G, gsl_rng *rng);

/* Orthonormal rows: Q of the QR factorisation of a Gaussian d x n matrix
 * (n * d draws), so G G^T = I. n <= d; -1 + err naming both sizes
 * otherwise. */
int sp_geom_orthonormal(gsl_matrix_float *G, gsl_rng *rng, sp_err *err);

/* Unit rows whose largest |cos| between distinct rows is <= mu. Draws
 * Gaussian rows (exactly sp_geom_gaussian's n * d draws, nothing more); if
 * they meet mu they are returned unchanged, else the descent above moves
 * the offending pairs apart until sp_geom_max_cos(G) <= mu. *achieved (may
 * be NULL) gets the final sp_geom_max_cos(G).
 * n <= d: every mu >= 0 is met. For mu < 1e-6 (below float rounding), or
 * if the descent stalls, the draw is orthonormalised instead
 * (sp_geom_orthonormalize_rows) and *achieved is its rounding residue
 * (3e-8 to 8e-8 measured), which exceeds a mu of 0.
 * Errors (-1 + err naming data.coherence and the numbers): mu not in
 * [0, 1] or below the Welch bound (no draws made); mu not reached (n > d):
 * G then holds the least coherent iterate, *achieved its max |cos|, and
 * the message gives that value and suggests one slightly above it.
 * Cost: a pass (one step) is two n x n x d sgemm at most, ~5 ms at
 * n = 512, d = 256 on one core; gives up after 3000 passes or 300 passes
 * without progress. Measured there (Welch 0.0442): mu = 0.15 in 0.03 s,
 * 0.1 in 0.04 s, 0.06 in 0.2 s, 0.052 in 0.7 s, 0.05 in 2.2-2.8 s; 0.049
 * in 11 s or not at all; lower fails after ~5-10 s. When n >> d it stalls
 * near 2x Welch (n = 1000, d = 50: 0.27). Memory O(n d + 256 n). */
int sp_geom_coherent(gsl_matrix_float *G, double mu, gsl_rng *rng,
                     double *achieved, sp_err *err);

/* Reads an n x d .npy array ('<f4', or '<f8' converted by sp_npy_read_f32)
 * whose shape must equal G's, and stores it with rows normalised. Errors
 * name the file and what is wrong: unreadable or malformed file, a 1-D
 * array, shape mismatch (both shapes), a non-finite value (row, column), a
 * zero row (which). G is left unchanged on error. */
int sp_geom_from_npy(const char *path, gsl_matrix_float *G, sp_err *err);

/* Largest |cos| between distinct rows (rows need not be unit; zero rows
 * have cosine 0 with everything). Upper triangle by blocks of rows with
 * sgemm: memory O(block * n), never O(n^2). 0 for fewer than two rows. */
double sp_geom_max_cos(const gsl_matrix_float *G);

/* Welch bound sqrt((n - d) / (d (n - 1))) on the largest |cos| of n unit
 * vectors in R^d; 0 for n <= d. */
double sp_geom_welch_bound(size_t n, size_t d);

/* Orthonormalises rows r0 .. r0+k-1 of G among themselves (modified
 * Gram-Schmidt in double, two passes), e.g. the k-dimensional subspace of a
 * continuous feature. Other rows are untouched. Errors: rows out of range,
 * k > d, or a row (named) that depends linearly on the ones before it. */
int sp_geom_orthonormalize_rows(gsl_matrix_float *G, size_t r0, size_t k,
                                sp_err *err);

#endif
