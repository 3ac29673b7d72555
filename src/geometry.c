/* geometry.c: truth dictionaries with a chosen geometry (see geometry.h).
 *
 * Coherence control (sp_geom_coherent): gradient repulsion on a hinge.
 * Rows g_i on the unit sphere, c_ij = g_i . g_j, target
 * t = 0.98 max(mu, 1.1 Welch) (see coh_descend):
 *   E(G) = 1/2 sum_{i != j} h(c_ij)^2,  h(c) = sign(c) max(0, |c| - t)
 *   dE/dg_i = 2 r_i,  r_i = sum_{j != i} h(c_ij) g_j
 * Step (Riemannian gradient on the product of spheres, then back onto it):
 *   g_i <- normalise(g_i - eta (r_i - (r_i . g_i) g_i))
 * An isolated offending pair loses about 2 eta (|c| - t) per step, so eta
 * near 1/2 removes its excess at once; eta follows the "bold driver" rule
 * (x1.2 after a step that lowers E, x0.5 and retry after one that does
 * not), so E never rises and dense problems get the small steps they need.
 * Stops when sp_geom_max_cos(G) <= mu; gives up after MAX_PASSES passes, or
 * after STALL passes without the best max |c| improving by 1e-4 relative.
 * Only pairs above t move, so an easy mu changes the draw little. Each pass
 * is C = X_block X^T (sgemm) then R_block = h(C) X (sgemm, or a sparse sum
 * when fewer than 1/8 of the pairs offend): memory O(block n + n d).
 * Tried and dropped: a p-norm energy sum |c|^p (slower, no lower), and a
 * target that follows the current max (a little lower for n >> d, 2-5x
 * slower for reachable mu). Tropp, Dhillon, Heath & Strohmer 2005
 * (alternating projection) reach lower coherence when n >> d but need an
 * n x n eigendecomposition per step. */
#include "superpose/geometry.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_blas.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_randist.h>

#include "superpose/npy.h"

enum { BLOCK = 256 };

void sp_geom_gaussian(gsl_matrix_float *G, gsl_rng *rng)
{
    size_t n = G->size1, d = G->size2;
    /* Same draws and rounding as gen.c's sharkey truth. */
    for (size_t i = 0; i < n; i++) {
        double norm2 = 0;
        float *row = gsl_matrix_float_ptr(G, i, 0);
        for (size_t j = 0; j < d; j++) {
            double v = gsl_ran_gaussian_ziggurat(rng, 1.0);
            row[j] = (float)v;
            norm2 += v * v;
        }
        float inv = norm2 > 0 ? (float)(1.0 / sqrt(norm2)) : 0.0f;
        for (size_t j = 0; j < d; j++)
            row[j] *= inv;
    }
}

int sp_geom_orthonormal(gsl_matrix_float *G, gsl_rng *rng, sp_err *err)
{
    size_t n = G->size1, d = G->size2;
    if (n > d)
        return sp_err_set(err, "orthonormal directions need n <= d: n = %zu "
                          "features cannot be orthonormal in d = %zu "
                          "dimensions", n, d);
    if (n == 0)
        return 0;
    /* A = X^T with X (n x d) drawn row-major like sp_geom_gaussian. */
    gsl_matrix *A = gsl_matrix_alloc(d, n), *T = gsl_matrix_alloc(n, n);
    gsl_matrix *W = gsl_matrix_alloc(n, n), *Q = gsl_matrix_calloc(d, n);
    if (!A || !T || !W || !Q) {
        gsl_matrix_free(Q);
        gsl_matrix_free(W);
        gsl_matrix_free(T);
        gsl_matrix_free(A);
        return sp_err_set(err, "out of memory for orthonormal directions "
                          "(n = %zu, d = %zu)", n, d);
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            gsl_matrix_set(A, j, i, gsl_ran_gaussian_ziggurat(rng, 1.0));
    /* Blocked Householder QR: A = Q R with Q = I - V T V^T, V (d x n) unit
     * lower trapezoidal below R in A. The thin Q is Q [I; 0] =
     * [I; 0] - V (T V1^T), V1 the top n x n of V: two level-3 products,
     * O(d n) memory (gsl_linalg_QR_unpack_r would build all of the d x d Q). */
    gsl_linalg_QR_decomp_r(A, T);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++)
            gsl_matrix_set(W, i, j, j > i ? gsl_matrix_get(A, j, i) : i == j);
        gsl_matrix_set(Q, i, i, 1.0);
    }
    gsl_blas_dtrmm(CblasLeft, CblasUpper, CblasNoTrans, CblasNonUnit, 1.0, T, W);
    /* Sign of R_ii, kept before the diagonal of A becomes V's unit one. */
    double *sgn = T->data; /* T is no longer needed: reuse its first row */
    for (size_t i = 0; i < n; i++) {
        sgn[i] = gsl_matrix_get(A, i, i) < 0 ? -1.0 : 1.0;
        for (size_t j = i; j < n; j++)
            gsl_matrix_set(A, i, j, i == j);
    }
    gsl_blas_dgemm(CblasNoTrans, CblasNoTrans, -1.0, A, W, 1.0, Q);
    /* With diag(R) > 0 the factorisation is unique, so row i is
     * Gram-Schmidt of the first i + 1 draws: Haar distributed. */
    for (size_t i = 0; i < n; i++) {
        float *row = gsl_matrix_float_ptr(G, i, 0);
        for (size_t j = 0; j < d; j++)
            row[j] = (float)(sgn[i] * gsl_matrix_get(Q, j, i));
    }
    gsl_matrix_free(Q);
    gsl_matrix_free(W);
    gsl_matrix_free(T);
    gsl_matrix_free(A);
    return 0;
}

double sp_geom_welch_bound(size_t n, size_t d)
{
    if (n <= d || d == 0)
        return 0.0;
    return sqrt((double)(n - d) / ((double)d * (double)(n - 1)));
}

/* 1 / ||g_i|| in double, 0 for a zero row. */
static void inv_norms(const gsl_matrix_float *G, double *inv)
{
    for (size_t i = 0; i < G->size1; i++) {
        const float *r = gsl_matrix_float_const_ptr(G, i, 0);
        double s = 0;
        for (size_t j = 0; j < G->size2; j++)
            s += (double)r[j] * r[j];
        inv[i] = s > 0 ? 1.0 / sqrt(s) : 0.0;
    }
}

double sp_geom_max_cos(const gsl_matrix_float *G)
{
    size_t n = G->size1, d = G->size2;
    if (n < 2 || d == 0)
        return 0.0;
    double *inv = malloc(n * sizeof *inv);
    gsl_matrix_float *C = gsl_matrix_float_alloc(n < BLOCK ? n : BLOCK, n);
    if (!inv || !C) {
        gsl_matrix_float_free(C);
        free(inv);
        return NAN;
    }
    inv_norms(G, inv);
    double mx = 0;
    /* Block [i0, i0 + k) against rows i0 .. n-1: the upper triangle only. */
    for (size_t i0 = 0; i0 < n; i0 += BLOCK) {
        size_t k = n - i0 < BLOCK ? n - i0 : BLOCK, w = n - i0;
        gsl_matrix_float_const_view a = gsl_matrix_float_const_submatrix(G, i0, 0, k, d);
        gsl_matrix_float_const_view b = gsl_matrix_float_const_submatrix(G, i0, 0, w, d);
        gsl_matrix_float_view c = gsl_matrix_float_submatrix(C, 0, 0, k, w);
        gsl_blas_sgemm(CblasNoTrans, CblasTrans, 1.0f, &a.matrix, &b.matrix, 0.0f,
                       &c.matrix);
        for (size_t i = 0; i < k; i++) {
            const float *row = gsl_matrix_float_const_ptr(&c.matrix, i, 0);
            double ii = inv[i0 + i];
            for (size_t j = i + 1; j < w; j++) {
                double v = fabs((double)row[j]) * ii * inv[i0 + j];
                mx = v > mx ? v : mx;
            }
        }
    }
    gsl_matrix_float_free(C);
    free(inv);
    return mx > 1.0 ? 1.0 : mx; /* rounding can push a parallel pair past 1 */
}

int sp_geom_orthonormalize_rows(gsl_matrix_float *G, size_t r0, size_t k,
                                sp_err *err)
{
    size_t n = G->size1, d = G->size2;
    if (r0 > n || k > n - r0)
        return sp_err_set(err, "%zu rows from row %zu to orthonormalise: "
                          "outside the %zu rows of the dictionary", k, r0, n);
    if (k > d)
        return sp_err_set(err, "cannot orthonormalise %zu rows in d = %zu "
                          "dimensions (at most d)", k, d);
    if (k == 0)
        return 0;
    double *Q = malloc(k * d * sizeof *Q);
    if (!Q)
        return sp_err_set(err, "out of memory orthonormalising %zu rows", k);
    for (size_t a = 0; a < k; a++) {
        const float *src = gsl_matrix_float_const_ptr(G, r0 + a, 0);
        double *qa = Q + a * d, n0 = 0;
        for (size_t j = 0; j < d; j++) {
            qa[j] = src[j];
            n0 += qa[j] * qa[j];
        }
        /* Two passes of MGS ("twice is enough", Giraud et al. 2005). */
        for (int pass = 0; pass < 2; pass++)
            for (size_t b = 0; b < a; b++) {
                const double *qb = Q + b * d;
                double dot = 0;
                for (size_t j = 0; j < d; j++)
                    dot += qa[j] * qb[j];
                for (size_t j = 0; j < d; j++)
                    qa[j] -= dot * qb[j];
            }
        double n2 = 0;
        for (size_t j = 0; j < d; j++)
            n2 += qa[j] * qa[j];
        /* What is left of a row in the span of the previous ones is rounding
         * (~1e-7 of it for float input): call it dependent below 1e-5. */
        if (!(n2 > 1e-10 * n0) || !(n0 > 0)) {
            free(Q);
            return sp_err_set(err, "cannot orthonormalise rows %zu..%zu: row "
                              "%zu is %s", r0, r0 + k - 1, r0 + a,
                              n0 > 0 ? "a linear combination of the rows "
                              "before it" : "zero");
        }
        double inv = 1.0 / sqrt(n2);
        for (size_t j = 0; j < d; j++)
            qa[j] *= inv;
    }
    for (size_t a = 0; a < k; a++) {
        float *dst = gsl_matrix_float_ptr(G, r0 + a, 0);
        for (size_t j = 0; j < d; j++)
            dst[j] = (float)Q[a * d + j];
    }
    free(Q);
    return 0;
}

int sp_geom_from_npy(const char *path, gsl_matrix_float *G, sp_err *err)
{
    size_t n = G->size1, d = G->size2, r = 0, c = 0;
    float *a = NULL;
    if (sp_npy_read_f32(path, &a, &r, &c, err) != 0)
        return -1;
    int rc = -1;
    if (c == 0) {
        sp_err_set(err, "%s: a 1-D array of %zu values; feature directions "
                   "need a 2-D array of shape (%zu, %zu) (features x "
                   "dimensions)", path, r, n, d);
        goto done;
    }
    if (r != n || c != d) {
        sp_err_set(err, "%s: shape (%zu, %zu) does not match the expected "
                   "(%zu, %zu) (n features x d dimensions)", path, r, c, n, d);
        goto done;
    }
    double *norm = malloc((n ? n : 1) * sizeof *norm);
    if (!norm) {
        sp_err_set(err, "%s: out of memory", path);
        goto done;
    }
    /* Validate every row before writing any of G. */
    for (size_t i = 0; i < n; i++) {
        const float *row = a + i * d;
        double s = 0;
        for (size_t j = 0; j < d; j++) {
            if (!isfinite(row[j])) {
                sp_err_set(err, "%s: row %zu has a non-finite value (%g at "
                           "column %zu)", path, i, (double)row[j], j);
                free(norm);
                goto done;
            }
            s += (double)row[j] * row[j];
        }
        if (!(s > 0)) {
            sp_err_set(err, "%s: row %zu is zero and has no direction", path, i);
            free(norm);
            goto done;
        }
        norm[i] = sqrt(s);
    }
    for (size_t i = 0; i < n; i++) {
        float *dst = gsl_matrix_float_ptr(G, i, 0);
        for (size_t j = 0; j < d; j++)
            dst[j] = (float)(a[i * d + j] / norm[i]);
    }
    free(norm);
    rc = 0;
done:
    free(a);
    return rc;
}

/* ------------------------------------------------------------ coherence */

typedef struct {
    gsl_matrix_float *C;     /* BLOCK x n: Gram block, then h(C) */
    gsl_matrix_float *X[2];  /* n x d: current iterate and trial */
    gsl_matrix_float *R[2];  /* n x d: r_i = sum_j h(c_ij) g_j of each */
    gsl_matrix_float *best;  /* n x d: least coherent iterate seen */
} coh_ws;

static void coh_ws_free(coh_ws *w)
{
    gsl_matrix_float_free(w->best);
    for (int s = 1; s >= 0; s--) {
        gsl_matrix_float_free(w->R[s]);
        gsl_matrix_float_free(w->X[s]);
    }
    gsl_matrix_float_free(w->C);
}

typedef struct {
    double max; /* max |c_ij|, i != j (rows taken as unit) */
    double E;   /* 1/2 sum_{i != j} h(c_ij)^2 */
} coh_stat;

/* One pass over X: R = h(X X^T) X by blocks of rows; returns max and E. */
static coh_stat coh_pass(const gsl_matrix_float *X, gsl_matrix_float *R,
                         gsl_matrix_float *C, double t)
{
    size_t n = X->size1, d = X->size2;
    coh_stat st = { 0, 0 };
    float tf = (float)t;
    for (size_t i0 = 0; i0 < n; i0 += BLOCK) {
        size_t k = n - i0 < BLOCK ? n - i0 : BLOCK;
        gsl_matrix_float_const_view a = gsl_matrix_float_const_submatrix(X, i0, 0, k, d);
        gsl_matrix_float_view c = gsl_matrix_float_submatrix(C, 0, 0, k, n);
        gsl_matrix_float_view r = gsl_matrix_float_submatrix(R, i0, 0, k, d);
        gsl_blas_sgemm(CblasNoTrans, CblasTrans, 1.0f, &a.matrix, X, 0.0f, &c.matrix);
        size_t nnz = 0;
        float bmx = 0;
        double E = 0;
        for (size_t i = 0; i < k; i++) {
            float *row = gsl_matrix_float_ptr(&c.matrix, i, 0);
            row[i0 + i] = 0;
            for (size_t j = 0; j < n; j++) {
                float v = row[j], av = fabsf(v), e = av - tf;
                bmx = av > bmx ? av : bmx;
                if (e > 0) {
                    nnz++;
                    E += (double)e * e;
                    row[j] = copysignf(e, v);
                } else {
                    row[j] = 0;
                }
            }
        }
        st.max = bmx > st.max ? bmx : st.max;
        st.E += E / 2;
        if (nnz * 8 > k * n) {
            gsl_blas_sgemm(CblasNoTrans, CblasNoTrans, 1.0f, &c.matrix, X, 0.0f,
                           &r.matrix);
            continue;
        }
        /* Few offending pairs: a sparse sum is far cheaper than the sgemm. */
        for (size_t i = 0; i < k; i++) {
            const float *row = gsl_matrix_float_const_ptr(&c.matrix, i, 0);
            float *ri = gsl_matrix_float_ptr(&r.matrix, i, 0);
            memset(ri, 0, d * sizeof *ri);
            for (size_t j = 0; j < n; j++) {
                if (row[j] == 0)
                    continue;
                const float *gj = gsl_matrix_float_const_ptr(X, j, 0);
                float s = row[j];
                for (size_t q = 0; q < d; q++)
                    ri[q] += s * gj[q];
            }
        }
    }
    return st;
}

/* Y = the rows of X moved by -eta times the tangential part of R, then
 * normalised. */
static void coh_step(const gsl_matrix_float *X, const gsl_matrix_float *R,
                     double eta, gsl_matrix_float *Y)
{
    size_t n = X->size1, d = X->size2;
    for (size_t i = 0; i < n; i++) {
        const float *g = gsl_matrix_float_const_ptr(X, i, 0);
        const float *r = gsl_matrix_float_const_ptr(R, i, 0);
        float *y = gsl_matrix_float_ptr(Y, i, 0);
        double rg = 0, r2 = 0;
        for (size_t q = 0; q < d; q++) {
            rg += (double)r[q] * g[q];
            r2 += (double)r[q] * r[q];
        }
        if (r2 == 0) {
            memcpy(y, g, d * sizeof *y);
            continue;
        }
        double n2 = 0;
        for (size_t q = 0; q < d; q++) {
            double u = g[q] - eta * (r[q] - rg * g[q]);
            n2 += u * u;
        }
        double inv = 1.0 / sqrt(n2);
        for (size_t q = 0; q < d; q++)
            y[q] = (float)((g[q] - eta * (r[q] - rg * g[q])) * inv);
    }
}

/* Smallest two-significant-digit value >= x (for suggestions). */
static double round_up2(double x)
{
    if (!(x > 0))
        return x;
    double p = pow(10.0, floor(log10(x)) - 1);
    return ceil(x / p - 1e-9) * p;
}

/* Passes (each one Gram + one gradient) before giving up, and the stall
 * rule: stop when the best max |cos| has not improved by a relative 1e-4
 * over the last STALL passes. */
enum { MAX_PASSES = 3000, STALL = 300 };

/* Runs the descent on w->X[0] (unit rows). Returns 1 when max |cos| <= mu
 * is reached (w->X[0] holds it), else 0 (w->best holds the least coherent
 * iterate, *bestmax its pass estimate). */
static int coh_descend(coh_ws *w, double mu, double wb, double *bestmax, long *passes)
{
    /* Target a little below mu, so that the last offenders cross mu instead
     * of creeping towards it; but not below 1.1 x Welch: a target under what
     * the descent can reach pulls on nearly every pair and leaves a higher
     * max (n = 512, d = 256 asked for 0.045 stalls at 0.054 with t = 0.98 mu,
     * at 0.0495 with the floor), so failures report a fairer value. */
    double t = 0.98 * fmax(mu, 1.1 * wb), eta = 0.5;
    int cur = 0;
    coh_stat s = coh_pass(w->X[0], w->R[0], w->C, t);
    double best = s.max;
    long last_gain = 0, p;
    gsl_matrix_float_memcpy(w->best, w->X[0]);
    for (p = 1; p < MAX_PASSES; p++) {
        if (s.max <= mu && sp_geom_max_cos(w->X[cur]) <= mu)
            break;
        coh_step(w->X[cur], w->R[cur], eta, w->X[1 - cur]);
        coh_stat s2 = coh_pass(w->X[1 - cur], w->R[1 - cur], w->C, t);
        if (s2.E <= s.E) {
            /* Bold driver: grow the step while the energy falls... */
            cur = 1 - cur;
            s = s2;
            eta *= 1.2;
            if (s.max < best * (1 - 1e-4))
                last_gain = p;
            if (s.max < best) {
                best = s.max;
                gsl_matrix_float_memcpy(w->best, w->X[cur]);
            }
        } else {
            eta *= 0.5; /* ...halve it and retry from the same point if not */
        }
        if (p - last_gain > STALL || eta < 1e-9)
            break;
    }
    *passes = p;
    if (cur == 1)
        gsl_matrix_float_memcpy(w->X[0], w->X[1]);
    *bestmax = best;
    return s.max <= mu && sp_geom_max_cos(w->X[0]) <= mu;
}

int sp_geom_coherent(gsl_matrix_float *G, double mu, gsl_rng *rng,
                     double *achieved, sp_err *err)
{
    size_t n = G->size1, d = G->size2;
    if (achieved)
        *achieved = NAN;
    if (!(mu >= 0 && mu <= 1))
        return sp_err_set(err, "data.coherence = %g: the largest |cos| between "
                          "feature directions must be in [0, 1]", mu);
    double wb = sp_geom_welch_bound(n, d);
    if (n > d && mu < wb)
        return sp_err_set(err, "data.coherence = %g is below the Welch bound "
                          "%.4f for n = %zu features in d = %zu dimensions: no "
                          "%zu unit vectors in R^%zu have a smaller largest "
                          "|cos|; use a larger value or a larger d", mu, wb, n,
                          d, n, d);
    sp_geom_gaussian(G, rng);
    double mx = sp_geom_max_cos(G);
    if (mx <= mu || n < 2 || d == 0) {
        if (achieved)
            *achieved = mx;
        return 0;
    }
    int ok = 0;
    if (!(n <= d && mu < 1e-6)) {
        coh_ws w = { 0 };
        w.C = gsl_matrix_float_alloc(n < BLOCK ? n : BLOCK, n);
        for (int s = 0; s < 2; s++) {
            w.X[s] = gsl_matrix_float_alloc(n, d);
            w.R[s] = gsl_matrix_float_alloc(n, d);
        }
        w.best = gsl_matrix_float_alloc(n, d);
        if (!w.C || !w.X[0] || !w.X[1] || !w.R[0] || !w.R[1] || !w.best) {
            coh_ws_free(&w);
            return sp_err_set(err, "out of memory for data.coherence (n = %zu, "
                              "d = %zu)", n, d);
        }
        gsl_matrix_float_memcpy(w.X[0], G);
        double best;
        long passes;
        ok = coh_descend(&w, mu, wb, &best, &passes);
        gsl_matrix_float_memcpy(G, ok ? w.X[0] : w.best);
        coh_ws_free(&w);
        mx = sp_geom_max_cos(G);
        if (!ok && n > d) {
            if (achieved)
                *achieved = mx;
            return sp_err_set(err, "data.coherence = %g not reached for n = %zu "
                              "features in d = %zu dimensions: the largest |cos| "
                              "got down to %.4f after %ld gradient passes (Welch "
                              "bound %.4f); try data.coherence >= %.2g", mu, n, d,
                              mx, passes, wb, round_up2(mx * 1.02));
        }
    }
    if (!ok && sp_geom_orthonormalize_rows(G, 0, n, err) != 0)
        return -1;
    if (achieved)
        *achieved = sp_geom_max_cos(G);
    return 0;
}
