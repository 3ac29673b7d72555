/* solve.c: sparse codes on a fixed dictionary (REFERENCE.md 3; solve.h).
 *
 * Notation. D: m x d, one atom per row, norms n_i = ||d_i||; unit atoms
 * D~ = diag(1/n) D (zero rows for zero atoms); x~ = x - b; Gram matrix
 * G = D~ D~^T; initial correlations c0 = x~ D~^T, one GEMM per batch
 * (C0 = X~ D~^T, B x d x m). Every solver works on codes a~ for D~ and
 * returns a_i = a~_i / n_i, so a D = a~ D~ and the codes do not depend on
 * how D's rows are scaled.
 *
 * Residual, correlations and energy of a code a~ with support S:
 *   r = x~ - a~_S D~_S,   c = r D~^T = c0 - a~_S G_{S,:}                 (1)
 *   1/2 ||r||^2 = 1/2 ||x~||^2 - a~_S.c0_S + 1/2 a~_S G_SS a~_S^T
 *               = 1/2 (||x~||^2 - a~_S.(c0_S + c_S))                      (2)
 * With the Gram matrix (Batch-OMP: Rubinstein, Zibulevsky & Elad 2008,
 * "Efficient implementation of the K-SVD algorithm using batch orthogonal
 * matching pursuit", Technion CS-2008-08) every sample's c
 * follows from (1) in O(m |S|) and its energy from (2). Without it
 * (m > SP_SOLVE_GRAM_MAX or use_gram = 0) the residuals are kept in d
 * dimensions, C = R D~^T is one GEMM (B x d x m) per step for the batch,
 * the energy is 1/2 ||r||^2, and the Gram entries a Cholesky factor needs
 * are dot products <d~_i, d~_j> taken when atom i enters.
 *
 * Selection (every pursuit): i = argmax_i |c_i|, non-negative codes
 * argmax_i c_i. A sample stops after its K atoms, or when that value is
 * <= 1e-5 ||x~|| (float correlations carry rounding of about
 * 1e-6 ||x~||, so "nonzero" means above it; a zero input stops at once).
 *
 * mp    (Mallat & Zhang 1993, IEEE TSP 41(12)): a~_i += c_i,
 *       c -= c_i G_{i,:},  1/2||r||^2 -= c_i^2 (1 - G_ii / 2).
 * omp   (Pati, Rezaiifar & Krishnaprasad 1993, 27th Asilomar Conference):
 *       i among the atoms not in S; S += {i}; a~_S = G_SS^-1 c0_S with the
 *       Cholesky factor L L^T = G_SS grown by one row per atom
 *       (Rubinstein et al. 2008, Batch-OMP):
 *         L w = G_{S,i} (forward substitution),  new row [w^T, sqrt(G_ii - w.w)],
 *         L y = c0_S (y kept: only its new entry changes),  L^T a~_S = y:
 *       O(|S|^2) per atom.
 *       G_ii - w.w <= 1e-5 G_ii: atom i lies (numerically) in the span of
 *       S; the sample stops.
 *   nonneg: S += {i} (c_i > 0), then a~_S = argmin_{a >= 0} ||x~ - a D~_S||
 *       by the active-set NNLS of Lawson & Hanson 1974 ("Solving Least
 *       Squares Problems", chapter 23), with G_SS and c0_S:
 *         w = c0_S - G_{S,P} a_P; while max_{j not in P} w_j > tol:
 *           P += {argmax w}; loop: z_P = G_PP^-1 c0_P; if z_P > 0: a = z,
 *           else a += alpha (z - a), alpha = min_{z_q <= 0} a_q / (a_q - z_q),
 *           and atoms at 0 leave P,
 *       warm-started from the previous step's solution and passive set; the
 *       factor is that of G_PP, grown by a row when an atom enters P and
 *       recomputed from the first removed row when atoms leave.
 * gp    (Blumensath & Davies 2008, "Gradient pursuits", IEEE TSP 56(6)):
 *       S += {i} (if new), g_S = c_S,
 *         mu = (g.g) / (g^T G_SS g)   (= <r, u> / ||u||^2, u = g_S D~_S),
 *         a~_S += mu g_S,  c -= mu g_S G_{S,:},
 *         1/2||r||^2 -= mu g.g - mu^2/2 g^T G_SS g.
 *   nonneg: atoms of S at 0 with g_j < 0 get g_j = 0 (they cannot move) and
 *       mu <= min_{g_j < 0} a~_j / (-g_j); the coordinate reaching 0 is set
 *       to 0. Every mu in [0, g.g / g^T G_SS g] lowers the residual, so it
 *       never increases.
 * ista  (Daubechies, Defrise & De Mol 2004, Comm. Pure Appl. Math. 57(11);
 *       Beck & Teboulle 2009, SIAM J. Imaging Sci. 2(1)) on
 *         F(a~) = 1/2 ||x~ - a~ D~||^2 + lambda sum_i |a~_i|      (a~ >= 0: nonneg)
 *               = 1/2 ||x~||^2 - a~.c0 + 1/2 a~ G a~^T + lambda sum_i |a~_i|   (3)
 *         a~ <- prox(a~ - grad / L),  grad = a~ G - c0 = -(x~ - a~ D~) D~^T,
 *         prox(v)_i = sign(v_i) max(|v_i| - lambda/L, 0)   (nonneg: max(v_i - lambda/L, 0)),
 *       L = sigma_max(D~)^2. (The penalty is on the codes of the unit atoms,
 *       lambda sum_i n_i |a_i| for D's codes: solve.h's F with unit atoms.)
 *       Each step lowers F for any L > sigma_max^2 / 2 (F(x+) <= F(x) -
 *       (L - sigma^2/2) ||x+ - x||^2), so the power-iteration estimate, a
 *       lower bound, is safe.
 * fista MFISTA (Beck & Teboulle 2009, IEEE TIP 18(11), eq. (5.1)), with
 *       y_1 = x_0, t_1 = 1:
 *         z_k = prox(y_k - grad(y_k) / L),  t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2,
 *         x_k = z_k if F(z_k) <= F(x_{k-1}), else x_{k-1}      (per sample)
 *         y_{k+1} = x_k + t_k/t_{k+1} (z_k - x_k) + (t_k - 1)/t_{k+1} (x_k - x_{k-1})
 *   Products kept so that F(z) costs no extra GEMM: with the Gram matrix
 *   P = a~ G for x_k, x_{k-1} and z_k; y G is their combination with y's
 *   coefficients, grad(y) = yG - c0, and from (3), as z G x^T = x G z^T,
 *     F(z) - F(x) = (z - x).((P_z + P_x)/2 - c0) + lambda (|z|_1 - |x|_1)   (4)
 *   one GEMM (B x m x m) per iteration. Without it the same with
 *   Q = a~ D~ (d wide): r_y = x~ - y D~, grad = -r_y D~^T, and
 *   dQ = (z - x) D~, Q_z = Q_x + dQ,
 *     F(z) - F(x) = -dQ.(x~ - Q_x - dQ/2) + lambda (|z|_1 - |x|_1)          (5)
 *   two GEMMs (B x d x m, B x m x d). F is carried per sample by (4) or
 *   (5), whose rounding error is proportional to z - x; F itself from (3)
 *   or from a residual carries a cancellation error of about 1e-7 ||x~||^2
 *   that stalls ISTA long before convergence. Both stop when the total F
 *   over the batch falls by <= tol |F| in one iteration in which at least
 *   one sample took its prox point (an MFISTA iteration that keeps every
 *   previous point is not convergence: y still moves), or at max_iter.
 * L     power iteration on the smaller of D~ D~^T and D~^T D~ (one SYRK),
 *       in double, deterministic start vector (sp_mix64), until the
 *       Rayleigh quotient changes by <= 1e-10 relative (20000 steps at most).
 *
 * Refit: on the support S of the given codes, a~_S = G_SS^-1 c0_S by the
 * Cholesky factor as in omp (atoms in the span of the earlier ones are
 * skipped, a basic least-squares solution), or the NNLS above from
 * a = 0 (nonneg). Matched lambda: bisection on log lambda (solve.h),
 * warm-starting each solve from the previous one. Post-hoc scale:
 *   scalar      s = sum_b <x~_b, a_b D> / sum_b ||a_b D||^2
 *   per latent  M s = v,  M = (sum_b a_b^T a_b) .* (D D^T),  v_j = sum_b a_bj <x~_b, d_j>,
 *               over the latents that fired (a_bj != 0, d_j != 0), ridge
 *               1e-6 mean(diag M), Cholesky; sums in double. */
#include "superpose/solve.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_cblas.h>

#define THR_REL 1e-5   /* correlations below THR_REL ||x~|| are zero */
#define PIVOT_MIN 1e-5 /* squared Cholesky pivot below PIVOT_MIN G_ii: dependent atom */
#define LIP_RTOL 1e-10
#define SCALE_RIDGE 1e-6
enum { LIP_MAX_ITER = 20000, KBLK = 32, ALIGN_BYTES = 64 };

const char *const sp_solver_names[SP_N_SOLVERS] = {"mp", "omp", "gp", "ista", "fista"};

int sp_solver_find(const char *name)
{
    if (!name)
        return -1;
    for (int k = 0; k < SP_N_SOLVERS; k++)
        if (strcmp(name, sp_solver_names[k]) == 0)
            return k;
    return -1;
}

static size_t tri(size_t k) { return k * (k + 1) / 2; }
static size_t rup(size_t bytes) { return (bytes + ALIGN_BYTES - 1) / ALIGN_BYTES * ALIGN_BYTES; }
static size_t zmax(size_t a, size_t b) { return a > b ? a : b; }
static size_t zmin(size_t a, size_t b) { return a < b ? a : b; }

struct sp_solver {
    const gsl_matrix_float *D;
    const float *bias;
    size_t m, d, nmax, kd; /* kd = min(m, d): the largest independent support */
    float *U;              /* (m, d) unit atoms D~ */
    float *nrm;            /* (m) atom norms */
    float *G;              /* (m, m) D~ D~^T, NULL when m > SP_SOLVE_GRAM_MAX */
    float *M;              /* (kd, kd) D~ D~^T or D~^T D~ (float, upper triangle) */
    double *Md;            /* (kd, kd) the same in double, for the power iteration */
    double lip;
    float *Xt;                /* (nmax, d) x - b */
    float *C0;                /* (nmax, m) x~ D~^T */
    unsigned char *ws;        /* the solvers' state, carved per call */
    double *xn2, *e;          /* (nmax) ||x~||^2; 1/2 ||r||^2 or F per sample */
    size_t *kv, *slen, *plen; /* (nmax) atoms asked, support and passive-set sizes */
    unsigned char *act;       /* (nmax) sample still running */
    double *pool;             /* per sample: Cholesky factor (packed lower, tri(K)) and
                                L^-1 c0_S (K); pool_n doubles */
    size_t pool_n;
    double *t1, *t2;   /* (m) */
    float *vd;         /* (d) */
    unsigned char *st; /* (m) NNLS state per support position */
    double *pv;        /* (2 kd) power iteration */
};

static void *take(unsigned char **p, size_t bytes)
{
    void *r = *p;
    *p += rup(bytes);
    return r;
}

/* Bytes of the arena: the largest of the per-solver layouts below. */
static size_t ws_bytes(size_t B, size_t m, size_t d)
{
    size_t fm = rup(B * m * sizeof(float)), fd = rup(B * d * sizeof(float));
    size_t dm = rup(B * m * sizeof(double)), im = rup(B * m * sizeof(int));
    size_t pursuit = fm + fd + dm + 3 * im;
    size_t fista_gram = 6 * fm, fista_d = 4 * fm + 4 * fd;
    return zmax(pursuit, zmax(fista_gram, fista_d));
}

void sp_solver_free(sp_solver *S)
{
    if (!S)
        return;
    free(S->pv);
    free(S->st);
    free(S->vd);
    free(S->t2);
    free(S->t1);
    free(S->pool);
    free(S->act);
    free(S->plen);
    free(S->slen);
    free(S->kv);
    free(S->e);
    free(S->xn2);
    free(S->ws);
    free(S->C0);
    free(S->Xt);
    free(S->Md);
    free(S->M);
    free(S->G);
    free(S->nrm);
    free(S->U);
    free(S);
}

sp_solver *sp_solver_alloc(const gsl_matrix_float *D, const float *b, size_t max_batch, sp_err *err)
{
    if (!D || D->size1 == 0 || D->size2 == 0) {
        sp_err_set(err, "sp_solver_alloc: the dictionary is empty (%zu x %zu)", D ? D->size1 : 0,
                   D ? D->size2 : 0);
        return NULL;
    }
    if (max_batch == 0) {
        sp_err_set(err, "sp_solver_alloc: max_batch = 0: must be >= 1");
        return NULL;
    }
    size_t m = D->size1, d = D->size2, B = max_batch, kd = zmin(m, d);
    sp_solver *S = calloc(1, sizeof *S);
    if (!S)
        goto oom;
    S->D = D;
    S->bias = b;
    S->m = m;
    S->d = d;
    S->nmax = B;
    S->kd = kd;
    S->pool_n = zmax(tri(kd) + kd, B * (tri(zmin(kd, KBLK)) + zmin(kd, KBLK)));
    S->U = malloc(m * d * sizeof *S->U);
    S->nrm = malloc(m * sizeof *S->nrm);
    S->G = m <= SP_SOLVE_GRAM_MAX ? malloc(m * m * sizeof *S->G) : NULL;
    S->M = malloc(kd * kd * sizeof *S->M);
    S->Md = malloc(kd * kd * sizeof *S->Md);
    S->Xt = malloc(B * d * sizeof *S->Xt);
    S->C0 = malloc(B * m * sizeof *S->C0);
    S->ws = malloc(ws_bytes(B, m, d));
    S->xn2 = malloc(B * sizeof *S->xn2);
    S->e = malloc(B * sizeof *S->e);
    S->kv = malloc(B * sizeof *S->kv);
    S->slen = malloc(B * sizeof *S->slen);
    S->plen = malloc(B * sizeof *S->plen);
    S->act = malloc(B);
    S->pool = malloc(S->pool_n * sizeof *S->pool);
    S->t1 = malloc(m * sizeof *S->t1);
    S->t2 = malloc(m * sizeof *S->t2);
    S->vd = malloc(d * sizeof *S->vd);
    S->st = malloc(m);
    S->pv = malloc(2 * kd * sizeof *S->pv);
    if (!S->U || !S->nrm || (m <= SP_SOLVE_GRAM_MAX && !S->G) || !S->M || !S->Md || !S->Xt || !S->C0 ||
        !S->ws || !S->xn2 || !S->e || !S->kv || !S->slen || !S->plen || !S->act || !S->pool ||
        !S->t1 || !S->t2 || !S->vd || !S->st || !S->pv)
        goto oom;
    sp_solver_refresh(S);
    return S;
oom:
    sp_solver_free(S);
    sp_err_set(err, "sp_solver_alloc: out of memory (m = %zu atoms, d = %zu, max_batch = %zu)", m,
               d, B);
    return NULL;
}

/* C = U U^T (n = m) or U^T U (n = d), U: (m, d), by ssyrk (upper
 * triangle), then mirrored to the lower triangle in tiles. */
static void gram_of(const float *U, size_t m, size_t d, int trans, float *C, size_t n)
{
    cblas_ssyrk(CblasRowMajor, CblasUpper, trans ? CblasTrans : CblasNoTrans, (int)n,
                (int)(trans ? m : d), 1.0f, U, (int)d, 0.0f, C, (int)n);
    enum { T = 64 };
    for (size_t i0 = 0; i0 < n; i0 += T)
        for (size_t j0 = i0; j0 < n; j0 += T)
            for (size_t i = i0; i < zmin(i0 + T, n); i++)
                for (size_t j = zmax(j0, i + 1); j < zmin(j0 + T, n); j++)
                    C[j * n + i] = C[i * n + j];
}

/* sigma_max(D~)^2 by power iteration on M = D~ D~^T (m <= d) or D~^T D~,
 * in double (dsymv). */
static double power_lip(sp_solver *S)
{
    size_t m = S->m, d = S->d, k = S->kd;
    gram_of(S->U, m, d, m > d, S->M, k);
    for (size_t q = 0; q < k * k; q++)
        S->Md[q] = S->M[q];
    double *v = S->pv, *w = S->pv + k;
    for (size_t q = 0; q < k; q++)
        v[q] = (double)(sp_mix64(q + 1) >> 11) * 0x1p-53 * 2 - 1;
    cblas_dscal((int)k, 1 / cblas_dnrm2((int)k, v, 1), v, 1);
    double rho = 0;
    for (int it = 0; it < LIP_MAX_ITER; it++) {
        cblas_dsymv(CblasRowMajor, CblasUpper, (int)k, 1.0, S->Md, (int)k, v, 1, 0.0, w, 1);
        double rq = cblas_ddot((int)k, v, 1, w, 1), nw = cblas_dnrm2((int)k, w, 1);
        if (!(nw > 0))
            return 0;
        for (size_t q = 0; q < k; q++)
            v[q] = w[q] / nw;
        int done = it > 0 && fabs(rq - rho) <= LIP_RTOL * rq;
        rho = rq;
        if (done)
            break;
    }
    return rho;
}

void sp_solver_refresh(sp_solver *S)
{
    size_t m = S->m, d = S->d;
    int finite = 1;
    for (size_t i = 0; i < m; i++) {
        const float *row = gsl_matrix_float_const_ptr(S->D, i, 0);
        double n2 = 0;
        for (size_t q = 0; q < d; q++)
            n2 += (double)row[q] * row[q];
        finite &= isfinite(n2) != 0;
        double n = sqrt(n2), inv = (float)n > 0 ? 1 / n : 0;
        S->nrm[i] = inv > 0 ? (float)n : 0;
        for (size_t q = 0; q < d; q++)
            S->U[i * d + q] = (float)(row[q] * inv);
    }
    if (S->G) /* exactly symmetric, for the energies (2) */
        gram_of(S->U, m, d, 0, S->G, m);
    S->lip = finite ? power_lip(S) : NAN; /* NaN: sp_solve refuses */
}

double sp_solver_lipschitz(const sp_solver *S) { return S->lip; }

/* ------------------------------------------------------------ checks */

static int check_finite(const gsl_matrix_float *X, const char *who, const char *name, sp_err *err)
{
    for (size_t b = 0; b < X->size1; b++) {
        const float *x = gsl_matrix_float_const_ptr(X, b, 0);
        for (size_t q = 0; q < X->size2; q++)
            if (!isfinite(x[q]))
                return sp_err_set(err, "%s: sample %zu has a non-finite value (%s[%zu][%zu] = %g)",
                                  who, b, name, b, q, (double)x[q]);
    }
    return 0;
}

/* X: (B, d) with B <= max_batch; A: (B, m). */
static int check_shapes(const sp_solver *S, const gsl_matrix_float *X, const gsl_matrix_float *A,
                        const char *who, const char *aname, sp_err *err)
{
    if (!X || !A)
        return sp_err_set(err, "%s: NULL matrix", who);
    if (X->size1 > S->nmax)
        return sp_err_set(err, "%s: batch of %zu samples > max_batch = %zu", who, X->size1,
                          S->nmax);
    if (X->size2 != S->d)
        return sp_err_set(err, "%s: X has %zu columns, the dictionary has d = %zu", who, X->size2,
                          S->d);
    if (A->size1 != X->size1 || A->size2 != S->m)
        return sp_err_set(err, "%s: %s is %zu x %zu, expected %zu x %zu (samples x atoms)", who,
                          aname, A->size1, A->size2, X->size1, S->m);
    return 0;
}

/* refresh sets L to NaN when D has a NaN or infinite entry. */
static int check_dict(const sp_solver *S, const char *who, sp_err *err)
{
    if (!isfinite(S->lip))
        return sp_err_set(err, "%s: the dictionary has a non-finite value", who);
    return 0;
}

static int pick_gram(const sp_solver *S, int want, int *gram, sp_err *err)
{
    if (want < -1 || want > 1)
        return sp_err_set(err,
                          "sp_solve: use_gram = %d: must be -1 (automatic), 0 (never) or 1 "
                          "(always)",
                          want);
    if (want == 1 && !S->G)
        return sp_err_set(err,
                          "sp_solve: use_gram = 1 but m = %zu atoms > SP_SOLVE_GRAM_MAX = %d: "
                          "no Gram matrix was allocated",
                          S->m, SP_SOLVE_GRAM_MAX);
    *gram = want != 0 && S->G != NULL;
    return 0;
}

/* Xt = X - b, xn2 = ||x~||^2, C0 = Xt D~^T (one GEMM) for the B rows. */
static void prepare(sp_solver *S, const gsl_matrix_float *X)
{
    size_t B = X->size1, m = S->m, d = S->d;
    for (size_t b = 0; b < B; b++) {
        const float *x = gsl_matrix_float_const_ptr(X, b, 0);
        float *xt = S->Xt + b * d;
        double s = 0;
        for (size_t q = 0; q < d; q++) {
            xt[q] = S->bias ? x[q] - S->bias[q] : x[q];
            s += (double)xt[q] * xt[q];
        }
        S->xn2[b] = s;
    }
    if (B)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)m, (int)d, 1.0f, S->Xt,
                    (int)d, S->U, (int)d, 0.0f, S->C0, (int)m);
}

static double sqnorm(const float *v, size_t n)
{
    double s = 0;
    for (size_t q = 0; q < n; q++)
        s += (double)v[q] * v[q];
    return s;
}

/* ---------------------------------------------- Cholesky of support Grams */

static double gent(const sp_solver *S, int gram, int i, int j)
{
    if (gram)
        return S->G[(size_t)i * S->m + (size_t)j];
    return cblas_sdot((int)S->d, S->U + (size_t)i * S->d, 1, S->U + (size_t)j * S->d, 1);
}

/* sum_{r < n} a[r] b[r] with four partial sums (the substitutions are
 * latency-bound otherwise). */
static double dot4(const double *a, const double *b, size_t n)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t r = 0;
    for (; r + 4 <= n; r += 4) {
        s0 += a[r] * b[r];
        s1 += a[r + 1] * b[r + 1];
        s2 += a[r + 2] * b[r + 2];
        s3 += a[r + 3] * b[r + 3];
    }
    for (; r < n; r++)
        s0 += a[r] * b[r];
    return (s0 + s1) + (s2 + s3);
}

/* Row p of the packed lower Cholesky factor L of the Gram matrix of the
 * atoms sup[pos[0]], ..., sup[pos[p-1]], i, given rows 0..p-1 (the caller
 * guarantees room for row p). L's diagonal is stored as its reciprocal
 * (the substitutions multiply). -1 when atom i lies in their span. */
static int chol_append(const sp_solver *S, int gram, double *L, size_t p, int i, const int *sup,
                       const int *pos)
{
    double *row = L + tri(p);
    double gii = gent(S, gram, i, i), p2 = gii;
    for (size_t q = 0; q < p; q++) {
        const double *Lq = L + tri(q);
        row[q] = (gent(S, gram, i, sup[pos[q]]) - dot4(Lq, row, q)) * Lq[q];
        p2 -= row[q] * row[q];
    }
    if (!(p2 > PIVOT_MIN * gii))
        return -1;
    row[p] = 1 / sqrt(p2);
    return 0;
}

/* Forward substitution, rows q0..p-1: L y = rhs given y_0..y_{q0-1}. */
static void chol_forward(const double *L, size_t q0, size_t p, const double *rhs, double *y)
{
    for (size_t q = q0; q < p; q++) {
        const double *Lq = L + tri(q);
        y[q] = (rhs[q] - dot4(Lq, y, q)) * Lq[q];
    }
}

/* Back substitution L^T x = y in place; it runs along L's rows: x_q is
 * final once rows > q are done. */
static void chol_back(const double *L, size_t p, double *x)
{
    for (size_t q = p; q-- > 0;) {
        const double *Lq = L + tri(q);
        double xq = x[q] *= Lq[q];
        for (size_t r = 0; r < q; r++)
            x[r] -= Lq[r] * xq;
    }
}

/* L L^T x = rhs; x may alias rhs. */
static void chol_solve(const double *L, size_t p, const double *rhs, double *x)
{
    chol_forward(L, 0, p, rhs, x);
    chol_back(L, p, x);
}

/* ------------------------------------------------------------ pursuits */

typedef struct {
    sp_solver *S;
    int gram, nonneg, kind;
    size_t kk;    /* Cholesky rows per sample */
    float *C, *R; /* (B, m) correlations, (B, d) residuals (no Gram) */
    double *coef; /* (B, m) mp: dense a~; else a~ per support position */
    int *sup;     /* (B, m) support atoms */
    int *where;   /* (B, m) position + 1 of an atom in the support, 0 if absent */
    int *pos;     /* (B, m) passive positions (omp: 0, 1, 2, ...) */
} pursuit;

static void pursuit_carve(sp_solver *S, size_t B, pursuit *P)
{
    unsigned char *p = S->ws;
    size_t m = S->m;
    P->C = take(&p, B * m * sizeof(float));
    P->R = take(&p, B * S->d * sizeof(float));
    P->coef = take(&p, B * m * sizeof(double));
    P->sup = take(&p, B * m * sizeof(int));
    P->where = take(&p, B * m * sizeof(int));
    P->pos = take(&p, B * m * sizeof(int));
}

static double thr_of(const sp_solver *S, size_t b) { return THR_REL * sqrt(S->xn2[b]); }

/* argmax of c (nonneg) or |c| above thr, -1 if none; ties go to the
 * smallest index. The selection is the hot loop of the pursuits at small
 * K: the maximum comes from eight branch-free running maxima (maxps), then
 * a scan finds its first index. */
static long pick(const float *c, size_t m, int nonneg, double thr)
{
    enum { W = 8 };
    float bv[W], mx = (float)thr;
    size_t i = 0;
    for (int l = 0; l < W; l++)
        bv[l] = mx;
    if (nonneg) {
        for (; i + W <= m; i += W)
            for (int l = 0; l < W; l++)
                bv[l] = c[i + l] > bv[l] ? c[i + l] : bv[l];
        for (; i < m; i++)
            bv[0] = c[i] > bv[0] ? c[i] : bv[0];
    } else {
        for (; i + W <= m; i += W)
            for (int l = 0; l < W; l++)
                bv[l] = fabsf(c[i + l]) > bv[l] ? fabsf(c[i + l]) : bv[l];
        for (; i < m; i++)
            bv[0] = fabsf(c[i]) > bv[0] ? fabsf(c[i]) : bv[0];
    }
    for (int l = 0; l < W; l++)
        mx = bv[l] > mx ? bv[l] : mx;
    if (!(mx > (float)thr))
        return -1;
    for (i = 0; i < m; i++)
        if ((nonneg ? c[i] : fabsf(c[i])) == mx)
            return (long)i;
    return -1;
}

/* omp picks among atoms not in S: their correlations are set to 0. */
static void mask_support(pursuit *P, size_t b)
{
    size_t m = P->S->m;
    float *c = P->C + b * m;
    const int *sup = P->sup + b * m;
    for (size_t q = 0; q < P->S->slen[b]; q++)
        c[sup[q]] = 0;
}

/* c (Gram) or r (no Gram) and the energy of sample b from the passive
 * coefficients a~_{sup[pos[q]]}, q < np, by (1) and (2). */
static void sync_sample(pursuit *P, size_t b, size_t np)
{
    sp_solver *S = P->S;
    size_t m = S->m, d = S->d;
    const int *sup = P->sup + b * m, *pos = P->pos + b * m;
    const double *a = P->coef + b * m;
    const float *c0 = S->C0 + b * m;
    if (P->gram) {
        float *c = P->C + b * m;
        memcpy(c, c0, m * sizeof *c);
        for (size_t q = 0; q < np; q++)
            if (a[pos[q]] != 0)
                cblas_saxpy((int)m, -(float)a[pos[q]], S->G + (size_t)sup[pos[q]] * m, 1, c, 1);
        double s = 0;
        for (size_t q = 0; q < np; q++) {
            int j = sup[pos[q]];
            s += a[pos[q]] * ((double)c0[j] + c[j]);
        }
        S->e[b] = fmax(0, 0.5 * (S->xn2[b] - s));
    } else {
        float *r = P->R + b * d;
        memcpy(r, S->Xt + b * d, d * sizeof *r);
        for (size_t q = 0; q < np; q++)
            if (a[pos[q]] != 0)
                cblas_saxpy((int)d, -(float)a[pos[q]], S->U + (size_t)sup[pos[q]] * d, 1, r, 1);
        S->e[b] = 0.5 * sqnorm(r, d);
    }
}

static int step_mp(pursuit *P, size_t b)
{
    sp_solver *S = P->S;
    size_t m = S->m, d = S->d;
    float *c = P->C + b * m;
    long i = pick(c, m, P->nonneg, thr_of(S, b));
    if (i < 0)
        return 1;
    double ci = c[i];
    P->coef[b * m + (size_t)i] += ci;
    if (P->gram) {
        const float *g = S->G + (size_t)i * m;
        cblas_saxpy((int)m, -(float)ci, g, 1, c, 1);
        S->e[b] = fmax(0, S->e[b] - ci * ci * (1 - 0.5 * g[i]));
    } else {
        float *r = P->R + b * d;
        cblas_saxpy((int)d, -(float)ci, S->U + (size_t)i * d, 1, r, 1);
        S->e[b] = 0.5 * sqnorm(r, d);
    }
    return 0;
}

static int step_gp(pursuit *P, size_t b)
{
    sp_solver *S = P->S;
    size_t m = S->m, d = S->d;
    float *c = P->C + b * m;
    int *sup = P->sup + b * m, *where = P->where + b * m;
    double *a = P->coef + b * m;
    long i = pick(c, m, P->nonneg, thr_of(S, b));
    if (i < 0)
        return 1;
    size_t s = S->slen[b];
    if (!where[i]) {
        sup[s] = (int)i;
        a[s] = 0;
        where[i] = (int)++s;
        S->slen[b] = s;
    }
    double *g = S->t1, gg = 0, gGg = 0;
    for (size_t q = 0; q < s; q++) {
        g[q] = c[sup[q]];
        if (P->nonneg && a[q] <= 0 && g[q] < 0)
            g[q] = 0;
        gg += g[q] * g[q];
    }
    if (!(gg > 0))
        return 1;
    if (P->gram) {
        for (size_t q = 0; q < s; q++) {
            if (g[q] == 0)
                continue;
            const float *Gq = S->G + (size_t)sup[q] * m;
            double u = 0;
            for (size_t r = 0; r < s; r++)
                u += (double)Gq[sup[r]] * g[r];
            gGg += g[q] * u;
        }
    } else {
        float *v = S->vd;
        memset(v, 0, d * sizeof *v);
        for (size_t q = 0; q < s; q++)
            if (g[q] != 0)
                cblas_saxpy((int)d, (float)g[q], S->U + (size_t)sup[q] * d, 1, v, 1);
        gGg = sqnorm(v, d);
    }
    if (!(gGg > 0))
        return 1;
    double mu = gg / gGg;
    long qcap = -1;
    if (P->nonneg)
        for (size_t q = 0; q < s; q++)
            if (g[q] < 0 && a[q] / -g[q] < mu) {
                mu = a[q] / -g[q];
                qcap = (long)q;
            }
    for (size_t q = 0; q < s; q++) {
        a[q] += mu * g[q];
        if (P->nonneg && a[q] < 0)
            a[q] = 0;
    }
    if (qcap >= 0)
        a[qcap] = 0;
    if (P->gram) {
        for (size_t q = 0; q < s; q++)
            if (g[q] != 0)
                cblas_saxpy((int)m, -(float)(mu * g[q]), S->G + (size_t)sup[q] * m, 1, c, 1);
        S->e[b] = fmax(0, S->e[b] - (mu * gg - 0.5 * mu * mu * gGg));
    } else {
        float *r = P->R + b * d;
        cblas_saxpy((int)d, -(float)mu, S->vd, 1, r, 1);
        S->e[b] = 0.5 * sqnorm(r, d);
    }
    return 0;
}

static int step_omp(pursuit *P, size_t b, double *L)
{
    sp_solver *S = P->S;
    size_t m = S->m;
    int *sup = P->sup + b * m, *where = P->where + b * m, *pos = P->pos + b * m;
    mask_support(P, b);
    long i = pick(P->C + b * m, m, 0, thr_of(S, b));
    size_t s = S->slen[b];
    if (i < 0 || s >= P->kk)
        return 1;
    pos[s] = (int)s;
    if (chol_append(S, P->gram, L, s, (int)i, sup, pos))
        return 1;
    sup[s] = (int)i;
    where[i] = (int)++s;
    S->slen[b] = S->plen[b] = s;
    /* y = L^-1 c0_S, kept after L: only its new entry changes */
    double *y = L + tri(P->kk), *a = P->coef + b * m, *rhs = S->t1;
    rhs[s - 1] = S->C0[b * m + (size_t)i];
    chol_forward(L, s - 1, s, rhs, y);
    memcpy(a, y, s * sizeof *a);
    chol_back(L, s, a);
    sync_sample(P, b, s);
    return 0;
}

/* Lawson & Hanson's NNLS on the support sup[0..s) of sample b, from the
 * coefficients a (zero outside the passive set) and the factor L of the
 * passive set pos[0..p). */
static void nnls(pursuit *P, size_t b, double *L, double tol)
{
    sp_solver *S = P->S;
    size_t m = S->m, d = S->d, s = S->slen[b], p = S->plen[b];
    int *sup = P->sup + b * m, *pos = P->pos + b * m;
    double *a = P->coef + b * m, *z = S->t1;
    const float *c0 = S->C0 + b * m;
    unsigned char *st = S->st; /* per position: 0 free, 1 passive, 2 blocked */
    enum { FREE, PASSIVE, BLOCKED };
    memset(st, FREE, s);
    for (size_t q = 0; q < p; q++)
        st[pos[q]] = PASSIVE;
    float *r = P->R + b * d;
    for (size_t it = 0; it < 3 * s + 10; it++) {
        if (!P->gram) {
            memcpy(r, S->Xt + b * d, d * sizeof *r);
            for (size_t q = 0; q < p; q++)
                cblas_saxpy((int)d, -(float)a[pos[q]], S->U + (size_t)sup[pos[q]] * d, 1, r, 1);
        }
        long jb = -1;
        double wb = tol;
        for (size_t q = 0; q < s; q++) {
            if (st[q] != FREE)
                continue;
            double w;
            if (P->gram) {
                const float *Gq = S->G + (size_t)sup[q] * m;
                w = c0[sup[q]];
                for (size_t k = 0; k < p; k++)
                    w -= (double)Gq[sup[pos[k]]] * a[pos[k]];
            } else {
                w = cblas_sdot((int)d, S->U + (size_t)sup[q] * d, 1, r, 1);
            }
            if (w > wb) {
                wb = w;
                jb = (long)q;
            }
        }
        if (jb < 0)
            break;
        pos[p] = (int)jb;
        if (p >= P->kk || chol_append(S, P->gram, L, p, sup[jb], sup, pos)) {
            st[jb] = BLOCKED;
            continue;
        }
        st[jb] = PASSIVE;
        p++;
        for (;;) {
            for (size_t q = 0; q < p; q++)
                z[q] = c0[sup[pos[q]]];
            chol_solve(L, p, z, z);
            double alpha = 1;
            long qmin = -1;
            for (size_t q = 0; q < p; q++) {
                double aq = a[pos[q]];
                if (z[q] <= 0 && aq / (aq - z[q]) < alpha) {
                    alpha = aq / (aq - z[q]);
                    qmin = (long)q;
                }
            }
            if (qmin < 0) {
                for (size_t q = 0; q < p; q++)
                    a[pos[q]] = z[q];
                break;
            }
            for (size_t q = 0; q < p; q++)
                a[pos[q]] += alpha * (z[q] - a[pos[q]]);
            a[pos[qmin]] = 0;
            size_t first = p, np = 0;
            for (size_t q = 0; q < p; q++) {
                int j = pos[q];
                if (a[j] > 0) {
                    pos[np++] = j;
                    continue;
                }
                a[j] = 0;
                /* the entering atom that cannot move would cycle */
                st[j] = (j == jb && alpha == 0) ? BLOCKED : FREE;
                if (first == p)
                    first = q;
            }
            p = np;
            for (size_t q = first; q < p;) {
                if (chol_append(S, P->gram, L, q, sup[pos[q]], sup, pos) == 0) {
                    q++;
                    continue;
                }
                a[pos[q]] = 0; /* not reached in exact arithmetic: dropping rows raises pivots */
                st[pos[q]] = BLOCKED;
                memmove(pos + q, pos + q + 1, (p - q - 1) * sizeof *pos);
                p--;
            }
            if (p == 0)
                break;
        }
    }
    S->plen[b] = p;
}

static int step_nnomp(pursuit *P, size_t b, double *L)
{
    sp_solver *S = P->S;
    size_t m = S->m;
    int *sup = P->sup + b * m, *where = P->where + b * m;
    mask_support(P, b);
    long i = pick(P->C + b * m, m, 1, thr_of(S, b));
    if (i < 0)
        return 1;
    size_t s = S->slen[b];
    sup[s] = (int)i;
    P->coef[b * m + s] = 0;
    where[i] = (int)++s;
    S->slen[b] = s;
    nnls(P, b, L, thr_of(S, b));
    sync_sample(P, b, S->plen[b]);
    return 0;
}

/* Writes row b of A (codes for D) from a~. */
static void write_codes(pursuit *P, size_t b, size_t np, gsl_matrix_float *A)
{
    sp_solver *S = P->S;
    size_t m = S->m;
    float *out = gsl_matrix_float_ptr(A, b, 0);
    const double *a = P->coef + b * m;
    memset(out, 0, m * sizeof *out);
    if (P->kind == SP_SOLVE_MP) {
        for (size_t i = 0; i < m; i++)
            if (a[i] != 0 && S->nrm[i] > 0)
                out[i] = (float)(a[i] / S->nrm[i]);
        return;
    }
    const int *sup = P->sup + b * m, *pos = P->pos + b * m;
    for (size_t q = 0; q < np; q++) {
        size_t k = P->kind == SP_SOLVE_GP ? q : (size_t)pos[q];
        int j = sup[k];
        if (S->nrm[j] > 0)
            out[j] = (float)(a[k] / S->nrm[j]);
    }
}

static void run_pursuit(sp_solver *S, const sp_solve_cfg *cfg, int gram, size_t B, size_t Kmax,
                        gsl_matrix_float *A, sp_solve_stats *st)
{
    size_t m = S->m, d = S->d;
    pursuit P = {.S = S, .gram = gram, .nonneg = cfg->nonneg != 0, .kind = cfg->kind};
    pursuit_carve(S, B, &P);
    size_t kk = zmin(Kmax, S->kd), nb = B;
    if (cfg->kind == SP_SOLVE_OMP && kk > 0)
        nb = zmax(1, zmin(B, S->pool_n / (tri(kk) + kk)));
    P.kk = kk;
    double *tr = cfg->trace;
    if (tr)
        for (size_t t = 0; t < Kmax; t++)
            tr[t] = 0;
    size_t ran = 0;
    for (size_t b0 = 0; b0 < B; b0 += nb) {
        size_t n = zmin(nb, B - b0), kc = 0, t = 0;
        for (size_t b = b0; b < b0 + n; b++) {
            S->slen[b] = S->plen[b] = 0;
            S->e[b] = 0.5 * S->xn2[b];
            S->act[b] = S->kv[b] > 0 && S->xn2[b] > 0;
            kc = zmax(kc, S->kv[b]);
            memcpy(P.C + b * m, S->C0 + b * m, m * sizeof(float));
            if (!gram)
                memcpy(P.R + b * d, S->Xt + b * d, d * sizeof(float));
            memset(P.where + b * m, 0, m * sizeof(int));
            if (cfg->kind == SP_SOLVE_MP)
                memset(P.coef + b * m, 0, m * sizeof(double));
        }
        for (; t < kc; t++) {
            int any = 0;
            for (size_t b = b0; b < b0 + n; b++) {
                if (t >= S->kv[b])
                    S->act[b] = 0;
                any |= S->act[b];
            }
            if (!any)
                break;
            if (!gram && t > 0)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)m, (int)d, 1.0f,
                            P.R + b0 * d, (int)d, S->U, (int)d, 0.0f, P.C + b0 * m, (int)m);
            for (size_t b = b0; b < b0 + n; b++) {
                if (!S->act[b])
                    continue;
                double *L = S->pool + (b - b0) * (tri(kk) + kk);
                int stop = cfg->kind == SP_SOLVE_MP   ? step_mp(&P, b)
                           : cfg->kind == SP_SOLVE_GP ? step_gp(&P, b)
                           : P.nonneg                 ? step_nnomp(&P, b, L)
                                                      : step_omp(&P, b, L);
                if (stop)
                    S->act[b] = 0;
            }
            if (tr)
                for (size_t b = b0; b < b0 + n; b++)
                    tr[t] += S->e[b];
        }
        ran = zmax(ran, t);
        if (tr)
            for (; t < Kmax; t++)
                for (size_t b = b0; b < b0 + n; b++)
                    tr[t] += S->e[b];
        for (size_t b = b0; b < b0 + n; b++)
            write_codes(&P, b, cfg->kind == SP_SOLVE_GP ? S->slen[b] : S->plen[b], A);
    }
    if (st) {
        st->iters = (int)ran;
        st->objective = 0;
        for (size_t b = 0; b < B; b++)
            st->objective += S->e[b];
    }
}

/* ------------------------------------------------------- ISTA / MFISTA */

static float prox(float v, float th, int nonneg)
{
    if (v > th)
        return v - th;
    if (!nonneg && v < -th)
        return v + th;
    return 0;
}

/* F of one sample by (3) from P = a G (Gram) or from the residual x~ - Q. */
static double fval(const sp_solver *S, int gram, size_t b, const float *a, const float *Pa,
                   double lambda)
{
    size_t m = S->m, d = S->d;
    const float *c0 = S->C0 + b * m;
    double l1 = 0, lin = 0, quad = 0;
    for (size_t i = 0; i < m; i++) {
        if (a[i] == 0)
            continue;
        l1 += fabsf(a[i]);
        lin += (double)a[i] * c0[i];
        quad += (double)a[i] * Pa[i];
    }
    if (gram)
        return 0.5 * S->xn2[b] - lin + 0.5 * quad + lambda * l1;
    const float *xt = S->Xt + b * d;
    double r2 = 0;
    for (size_t q = 0; q < d; q++) {
        double r = (double)xt[q] - Pa[q];
        r2 += r * r;
    }
    return 0.5 * r2 + lambda * l1;
}

/* F(z) - F(x) of one sample, without the cancellation of (3) when F is
 * small against ||x~||^2 (the error is proportional to z - x):
 *   Gram:    (z - x).((Pz + Px)/2 - c0) + lambda (|z|_1 - |x|_1)   (z G x^T = x G z^T)
 *   no Gram: -dQ.(x~ - Qx - dQ/2) + lambda (|z|_1 - |x|_1),  dQ = (z - x) D~ in Pz */
static double fdelta(const sp_solver *S, int gram, size_t b, const float *z, const float *Pz,
                     const float *x, const float *Px, double lambda)
{
    size_t m = S->m, d = S->d;
    const float *c0 = S->C0 + b * m;
    double l1 = 0, s = 0;
    for (size_t i = 0; i < m; i++) {
        if (z[i] == x[i])
            continue;
        l1 += (double)fabsf(z[i]) - fabsf(x[i]);
        if (gram)
            s += ((double)z[i] - x[i]) * (0.5 * ((double)Pz[i] + Px[i]) - c0[i]);
    }
    if (!gram) {
        const float *xt = S->Xt + b * d;
        for (size_t q = 0; q < d; q++)
            s -= (double)Pz[q] * ((double)xt[q] - Px[q] - 0.5 * Pz[q]);
    }
    return s + lambda * l1;
}

static void run_prox(sp_solver *S, const sp_solve_cfg *cfg, int gram, size_t B, int warm,
                     gsl_matrix_float *A, sp_solve_stats *st)
{
    size_t m = S->m, d = S->d, pw = gram ? m : d;
    int fista = cfg->kind == SP_SOLVE_FISTA, nonneg = cfg->nonneg != 0;
    unsigned char *p = S->ws;
    float *x = take(&p, B * m * sizeof(float)), *xo = take(&p, B * m * sizeof(float));
    float *z = take(&p, B * m * sizeof(float));
    float *Px = take(&p, B * pw * sizeof(float)), *Pxo = take(&p, B * pw * sizeof(float));
    float *Pz = take(&p, B * pw * sizeof(float));
    float *Gr = gram ? NULL : take(&p, B * m * sizeof(float));
    float *Ry = gram ? NULL : take(&p, B * d * sizeof(float));
    const float *c0 = S->C0, *Mp = gram ? S->G : S->U; /* P = a Mp: a G, or Q = a D~ */
    double lip = S->lip > 0 ? S->lip : 1;              /* 0: every atom is zero, so is every code */
    float step = (float)(1 / lip), th = (float)(cfg->lambda / lip);

    for (size_t b = 0; b < B; b++) {
        const float *ain = gsl_matrix_float_const_ptr(A, b, 0);
        for (size_t i = 0; i < m; i++) {
            float v = warm ? ain[i] * S->nrm[i] : 0;
            x[b * m + i] = (nonneg && v < 0) || S->nrm[i] == 0 ? 0 : v;
        }
    }
    if (warm && B)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)pw, (int)m, 1.0f, x,
                    (int)m, Mp, (int)pw, 0.0f, Px, (int)pw);
    else
        memset(Px, 0, B * pw * sizeof *Px);
    double Ftot = 0;
    for (size_t b = 0; b < B; b++) {
        S->e[b] = fval(S, gram, b, x + b * m, Px + b * pw, cfg->lambda);
        Ftot += S->e[b];
    }
    memcpy(xo, x, B * m * sizeof *x);
    memcpy(z, x, B * m * sizeof *x);
    memcpy(Pxo, Px, B * pw * sizeof *Px);
    memcpy(Pz, Px, B * pw * sizeof *Px);

    double tp = 1, tc = 1; /* t_{k-1}, t_k */
    int it = 0;
    while (it < cfg->max_iter && B) {
        float al = fista ? (float)(tp / tc) : 0, be = fista ? (float)((tp - 1) / tc) : 0;
        if (gram) {
            for (size_t k = 0; k < B * m; k++) {
                float xi = x[k], y = xi + al * (z[k] - xi) + be * (xi - xo[k]);
                float py = Px[k] + al * (Pz[k] - Px[k]) + be * (Px[k] - Pxo[k]);
                z[k] = prox(y - step * (py - c0[k]), th, nonneg);
            }
        } else {
            for (size_t k = 0; k < B * d; k++)
                Ry[k] = S->Xt[k] - (Px[k] + al * (Pz[k] - Px[k]) + be * (Px[k] - Pxo[k]));
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)m, (int)d, 1.0f, Ry,
                        (int)d, S->U, (int)d, 0.0f, Gr, (int)m);
            for (size_t k = 0; k < B * m; k++) {
                float xi = x[k], y = xi + al * (z[k] - xi) + be * (xi - xo[k]);
                z[k] = prox(y + step * Gr[k], th, nonneg);
            }
        }
        if (gram) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)m, (int)m, 1.0f, z,
                        (int)m, S->G, (int)m, 0.0f, Pz, (int)m);
        } else { /* Pz = (z - x) D~ first: the difference keeps F(z) - F(x) exact to rounding */
            for (size_t k = 0; k < B * m; k++)
                Gr[k] = z[k] - x[k];
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)d, (int)m, 1.0f, Gr,
                        (int)m, S->U, (int)d, 0.0f, Pz, (int)d);
        }
        size_t moved = 0;
        double Fnew = 0, dec = 0, Fold = Ftot;
        for (size_t b = 0; b < B; b++) {
            double dF =
                fdelta(S, gram, b, z + b * m, Pz + b * pw, x + b * m, Px + b * pw, cfg->lambda);
            if (!gram)
                for (size_t q = 0; q < d; q++)
                    Pz[b * d + q] += Px[b * d + q];
            if (fista) {
                memcpy(xo + b * m, x + b * m, m * sizeof *x);
                memcpy(Pxo + b * pw, Px + b * pw, pw * sizeof *Px);
            }
            if (!fista || dF <= 0) {
                memcpy(x + b * m, z + b * m, m * sizeof *x);
                memcpy(Px + b * pw, Pz + b * pw, pw * sizeof *Px);
                S->e[b] += dF;
                dec -= dF;
                moved++;
            }
            Fnew += S->e[b];
        }
        if (cfg->trace)
            cfg->trace[it] = Fnew;
        it++;
        Ftot = Fnew;
        tp = tc;
        tc = (1 + sqrt(1 + 4 * tc * tc)) / 2;
        if (moved && dec <= cfg->tol * fabs(Fold))
            break;
    }
    for (size_t b = 0; b < B; b++) {
        float *out = gsl_matrix_float_ptr(A, b, 0);
        for (size_t i = 0; i < m; i++)
            out[i] = S->nrm[i] > 0 && x[b * m + i] != 0 ? x[b * m + i] / S->nrm[i] : 0;
    }
    if (st) {
        st->iters = it;
        st->objective = Ftot;
    }
}

/* ---------------------------------------------------------------- solve */

int sp_solve(sp_solver *S, const sp_solve_cfg *cfg, const gsl_matrix_float *X, const size_t *kvec,
             int warm, gsl_matrix_float *A, sp_solve_stats *st, sp_err *err)
{
    if (!S || !cfg)
        return sp_err_set(err, "sp_solve: NULL solver or configuration");
    if (cfg->kind < 0 || cfg->kind >= SP_N_SOLVERS)
        return sp_err_set(err,
                          "sp_solve: solver kind %d: must be one of mp, omp, gp, ista, fista "
                          "(0..%d)",
                          cfg->kind, SP_N_SOLVERS - 1);
    if (check_shapes(S, X, A, "sp_solve", "A", err) || check_dict(S, "sp_solve", err))
        return -1;
    int gram = 0;
    if (pick_gram(S, cfg->use_gram, &gram, err))
        return -1;
    size_t B = X->size1, m = S->m, Kmax = 0;
    int pursuit_kind = cfg->kind <= SP_SOLVE_GP;
    if (pursuit_kind) {
        if (!kvec && cfg->k > m)
            return sp_err_set(err, "sp_solve: k = %zu atoms > m = %zu (the dictionary's size)",
                              cfg->k, m);
        for (size_t b = 0; b < B; b++) {
            size_t k = kvec ? kvec[b] : cfg->k;
            if (k > m)
                return sp_err_set(err,
                                  "sp_solve: kvec[%zu] = %zu atoms > m = %zu (the "
                                  "dictionary's size)",
                                  b, k, m);
            S->kv[b] = k;
            Kmax = zmax(Kmax, k);
        }
    } else {
        if (!(cfg->lambda >= 0) || !isfinite(cfg->lambda))
            return sp_err_set(err, "sp_solve: lambda = %g: must be finite and >= 0", cfg->lambda);
        if (cfg->max_iter < 1)
            return sp_err_set(err, "sp_solve: max_iter = %d: must be >= 1", cfg->max_iter);
        if (!(cfg->tol >= 0) || !isfinite(cfg->tol))
            return sp_err_set(err, "sp_solve: tol = %g: must be finite and >= 0", cfg->tol);
        if (warm && check_finite(A, "sp_solve (warm start)", "A", err))
            return -1;
    }
    if (check_finite(X, "sp_solve", "X", err))
        return -1;
    prepare(S, X);
    if (pursuit_kind)
        run_pursuit(S, cfg, gram, B, Kmax, A, st);
    else
        run_prox(S, cfg, gram, B, warm, A, st);
    return 0;
}

double sp_solve_objective(const sp_solver *S, double lambda, const gsl_matrix_float *X,
                          const gsl_matrix_float *A)
{
    size_t m = S->m, d = S->d;
    if (!X || !A || X->size2 != d || A->size1 != X->size1 || A->size2 != m)
        return NAN;
    double *r = malloc(d * sizeof *r), total = 0;
    if (!r)
        return NAN;
    for (size_t b = 0; b < X->size1; b++) {
        const float *x = gsl_matrix_float_const_ptr(X, b, 0);
        const float *a = gsl_matrix_float_const_ptr(A, b, 0);
        for (size_t q = 0; q < d; q++)
            r[q] = (double)x[q] - (S->bias ? S->bias[q] : 0);
        double l1 = 0, r2 = 0;
        for (size_t j = 0; j < m; j++) {
            if (a[j] == 0)
                continue;
            const float *dj = gsl_matrix_float_const_ptr(S->D, j, 0);
            for (size_t q = 0; q < d; q++)
                r[q] -= (double)a[j] * dj[q];
            l1 += fabs((double)a[j]) * S->nrm[j];
        }
        for (size_t q = 0; q < d; q++)
            r2 += r[q] * r[q];
        total += 0.5 * r2 + lambda * l1;
    }
    free(r);
    return total;
}

/* ---------------------------------------------------------------- refit */

int sp_solve_refit(sp_solver *S, const gsl_matrix_float *X, const gsl_matrix_float *A_in,
                   int nonneg, gsl_matrix_float *A_out, sp_err *err)
{
    if (check_shapes(S, X, A_in, "sp_solve_refit", "A_in", err) ||
        check_shapes(S, X, A_out, "sp_solve_refit", "A_out", err) ||
        check_dict(S, "sp_solve_refit", err) ||
        check_finite(X, "sp_solve_refit", "X", err))
        return -1;
    size_t B = X->size1, m = S->m;
    pursuit P = {
        .S = S, .gram = S->G != NULL, .nonneg = nonneg != 0, .kind = SP_SOLVE_OMP, .kk = S->kd};
    pursuit_carve(S, B, &P);
    prepare(S, X);
    double *L = S->pool;
    for (size_t b = 0; b < B; b++) {
        const float *ain = gsl_matrix_float_const_ptr(A_in, b, 0);
        int *sup = P.sup + b * m, *pos = P.pos + b * m;
        double *a = P.coef + b * m;
        size_t s = 0, np = 0;
        for (size_t j = 0; j < m; j++)
            if (ain[j] != 0 && S->nrm[j] > 0) {
                a[s] = 0;
                sup[s++] = (int)j;
            }
        S->slen[b] = s;
        S->plen[b] = 0;
        if (nonneg) {
            nnls(&P, b, L, thr_of(S, b));
            np = S->plen[b];
        } else {
            for (size_t q = 0; q < s && np < S->kd; q++) {
                pos[np] = (int)q;
                if (chol_append(S, P.gram, L, np, sup[q], sup, pos) == 0)
                    np++;
            }
            double *z = S->t1;
            for (size_t q = 0; q < np; q++)
                z[q] = S->C0[b * m + (size_t)sup[pos[q]]];
            chol_solve(L, np, z, z);
            for (size_t q = 0; q < np; q++)
                a[pos[q]] = z[q];
        }
        write_codes(&P, b, np, A_out);
    }
    return 0;
}

/* ------------------------------------------------------- matched lambda */

double sp_solve_match_lambda(sp_solver *S, const sp_solve_cfg *cfg, const gsl_matrix_float *X,
                             double target_l0, gsl_matrix_float *A, sp_err *err)
{
    if (!S || !cfg) {
        sp_err_set(err, "sp_solve_match_lambda: NULL solver or configuration");
        return NAN;
    }
    if (cfg->kind != SP_SOLVE_ISTA && cfg->kind != SP_SOLVE_FISTA) {
        sp_err_set(err, "sp_solve_match_lambda: solver kind %d: only ista and fista have a lambda",
                   cfg->kind);
        return NAN;
    }
    if (!(target_l0 > 0 && target_l0 <= (double)S->m)) {
        sp_err_set(err, "sp_solve_match_lambda: target L0 = %g: must be in (0, m = %zu]", target_l0,
                   S->m);
        return NAN;
    }
    if (check_shapes(S, X, A, "sp_solve_match_lambda", "A", err) ||
        check_finite(X, "sp_solve_match_lambda", "X", err))
        return NAN;
    size_t B = X->size1, m = S->m;
    if (B == 0) {
        sp_err_set(err, "sp_solve_match_lambda: empty batch");
        return NAN;
    }
    prepare(S, X);
    double lmax = 0;
    for (size_t k = 0; k < B * m; k++) {
        double c = cfg->nonneg ? S->C0[k] : fabs(S->C0[k]);
        lmax = c > lmax ? c : lmax;
    }
    if (!(lmax > 0)) {
        sp_err_set(err,
                   "sp_solve_match_lambda: no input correlates %swith any atom: every code "
                   "is 0 at any lambda",
                   cfg->nonneg ? "positively " : "");
        return NAN;
    }
    sp_solve_cfg c = *cfg;
    c.trace = NULL;
    double lo = log(lmax * 1e-4), hi = log(lmax), best = NAN, bestdev = INFINITY;
    for (int it = 0; it < 30; it++) {
        double mid = 0.5 * (lo + hi);
        c.lambda = exp(mid);
        if (sp_solve(S, &c, X, NULL, it > 0, A, NULL, err))
            return NAN;
        size_t nnz = 0;
        for (size_t b = 0; b < B; b++) {
            const float *a = gsl_matrix_float_const_ptr(A, b, 0);
            for (size_t j = 0; j < m; j++)
                nnz += a[j] != 0;
        }
        double l0 = (double)nnz / (double)B, dev = fabs(l0 - target_l0);
        if (dev < bestdev) {
            bestdev = dev;
            best = c.lambda;
        }
        if (dev <= 0.02 * target_l0)
            return c.lambda;
        if (l0 > target_l0)
            lo = mid;
        else
            hi = mid;
    }
    return best;
}

/* ---------------------------------------------------------- scale fits */

struct sp_scale_fit {
    const gsl_matrix_float *D;
    const float *b;
    int per_latent, finished;
    size_t m, d;
    double num, den; /* scalar: sum <x~, aD>, sum ||aD||^2 */
    double *M;       /* per latent: (m, m) lower triangle of sum_b a_b^T a_b */
    double *v;       /* (m) */
    double *r;       /* (d) */
    float *g;        /* (m) */
    int *nz;         /* (m) */
    char bad[160];   /* first shape error of an add, reported by finish */
};

void sp_scale_fit_free(sp_scale_fit *F)
{
    if (!F)
        return;
    free(F->nz);
    free(F->g);
    free(F->r);
    free(F->v);
    free(F->M);
    free(F);
}

sp_scale_fit *sp_scale_fit_alloc(const gsl_matrix_float *D, const float *b, int per_latent,
                                 size_t max_batch)
{
    (void)max_batch;
    if (!D || D->size1 == 0 || D->size2 == 0)
        return NULL;
    sp_scale_fit *F = calloc(1, sizeof *F);
    if (!F)
        return NULL;
    F->D = D;
    F->b = b;
    F->per_latent = per_latent != 0;
    F->m = D->size1;
    F->d = D->size2;
    size_t m = F->m;
    F->r = malloc(F->d * sizeof *F->r);
    F->nz = malloc(m * sizeof *F->nz);
    if (F->per_latent) {
        F->M = calloc(m * m, sizeof *F->M);
        F->v = calloc(m, sizeof *F->v);
        F->g = malloc(m * sizeof *F->g);
    }
    if (!F->r || !F->nz || (F->per_latent && (!F->M || !F->v || !F->g))) {
        sp_scale_fit_free(F);
        return NULL;
    }
    return F;
}

/* X: (B, d), A: (B, m) codes for D. */
void sp_scale_fit_add(sp_scale_fit *F, const gsl_matrix_float *X, const gsl_matrix_float *A)
{
    size_t m = F->m, d = F->d;
    if (X->size2 != d || A->size2 != m || A->size1 != X->size1) {
        if (!F->bad[0])
            snprintf(F->bad, sizeof F->bad,
                     "sp_scale_fit_add: X %zu x %zu and A %zu x %zu, "
                     "expected B x %zu and B x %zu",
                     X->size1, X->size2, A->size1, A->size2, d, m);
        return;
    }
    double *r = F->r;
    for (size_t b = 0; b < X->size1; b++) {
        const float *x = gsl_matrix_float_const_ptr(X, b, 0);
        const float *a = gsl_matrix_float_const_ptr(A, b, 0);
        size_t nnz = 0;
        for (size_t j = 0; j < m; j++)
            if (a[j] != 0)
                F->nz[nnz++] = (int)j;
        if (!F->per_latent) {
            memset(r, 0, d * sizeof *r);
            for (size_t k = 0; k < nnz; k++) {
                const float *dj = gsl_matrix_float_const_ptr(F->D, (size_t)F->nz[k], 0);
                double aj = a[F->nz[k]];
                for (size_t q = 0; q < d; q++)
                    r[q] += aj * dj[q];
            }
            for (size_t q = 0; q < d; q++) {
                double xt = (double)x[q] - (F->b ? F->b[q] : 0);
                F->num += xt * r[q];
                F->den += r[q] * r[q];
            }
            continue;
        }
        for (size_t q = 0; q < d; q++)
            r[q] = (double)x[q] - (F->b ? F->b[q] : 0);
        for (size_t k = 0; k < nnz; k++) {
            size_t j = (size_t)F->nz[k];
            const float *dj = gsl_matrix_float_const_ptr(F->D, j, 0);
            double s = 0;
            for (size_t q = 0; q < d; q++)
                s += r[q] * dj[q];
            F->v[j] += (double)a[j] * s;
            double *Mj = F->M + j * m;
            for (size_t l = 0; l <= k; l++)
                Mj[F->nz[l]] += (double)a[j] * a[F->nz[l]];
        }
    }
}

/* In-place Cholesky of the n x n row-major A (lower triangle used), then
 * A x = v in place of v. -1 if A is not positive definite. */
static int dense_chol_solve(double *A, size_t n, double *v)
{
    for (size_t j = 0; j < n; j++) {
        double s = A[j * n + j];
        for (size_t k = 0; k < j; k++)
            s -= A[j * n + k] * A[j * n + k];
        if (!(s > 0))
            return -1;
        double l = sqrt(s);
        A[j * n + j] = l;
        for (size_t i = j + 1; i < n; i++) {
            double t = A[i * n + j];
            for (size_t k = 0; k < j; k++)
                t -= A[i * n + k] * A[j * n + k];
            A[i * n + j] = t / l;
        }
    }
    for (size_t i = 0; i < n; i++) {
        double s = v[i];
        for (size_t k = 0; k < i; k++)
            s -= A[i * n + k] * v[k];
        v[i] = s / A[i * n + i];
    }
    for (size_t i = n; i-- > 0;) {
        double s = v[i];
        for (size_t k = i + 1; k < n; k++)
            s -= A[k * n + i] * v[k];
        v[i] = s / A[i * n + i];
    }
    return 0;
}

int sp_scale_fit_finish(sp_scale_fit *F, float *s, sp_err *err)
{
    if (F->bad[0])
        return sp_err_set(err, "%s", F->bad);
    if (!F->per_latent) {
        s[0] = F->den > 0 ? (float)(F->num / F->den) : 1.0f;
        return 0;
    }
    if (F->finished)
        return sp_err_set(err, "sp_scale_fit_finish: called twice (the per-latent sums are "
                               "consumed by the solve)");
    F->finished = 1;
    size_t m = F->m, d = F->d, nf = 0;
    int *idx = F->nz;
    for (size_t j = 0; j < m; j++) {
        s[j] = 1.0f;
        const float *dj = gsl_matrix_float_const_ptr(F->D, j, 0);
        if (F->M[j * m + j] > 0 && cblas_snrm2((int)d, dj, 1) > 0)
            idx[nf++] = (int)j;
    }
    if (nf == 0)
        return 0;
    /* M_jk = (sum_b a_bj a_bk) <d_j, d_k>, compacted to the fired latents in
     * row order: the target index never passes the source index. */
    double tr = 0;
    for (size_t jj = 0; jj < nf; jj++) {
        size_t j = (size_t)idx[jj];
        const float *dj = gsl_matrix_float_const_ptr(F->D, j, 0);
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)m, (int)d, 1.0f, F->D->data, (int)F->D->tda,
                    dj, 1, 0.0f, F->g, 1);
        for (size_t kk = 0; kk <= jj; kk++) {
            size_t k = (size_t)idx[kk];
            F->M[jj * nf + kk] = F->M[j * m + k] * F->g[k];
        }
        F->v[jj] = F->v[j];
        tr += F->M[jj * nf + jj];
    }
    double ridge = SCALE_RIDGE * tr / (double)nf;
    for (size_t jj = 0; jj < nf; jj++)
        F->M[jj * nf + jj] += ridge;
    if (dense_chol_solve(F->M, nf, F->v))
        return sp_err_set(err,
                          "sp_scale_fit_finish: the normal equations of %zu latents are not "
                          "positive definite",
                          nf);
    for (size_t jj = 0; jj < nf; jj++)
        s[idx[jj]] = (float)F->v[jj];
    return 0;
}
