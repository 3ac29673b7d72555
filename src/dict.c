/* dict.c: three learners that are not sparse autoencoders trained by
 * backpropagation through an encoder: dictionary learning by alternation
 * (dl), reconstruction ICA (rica) and principal components (pca).
 * REFERENCE.md 2 (RICA) and 3 (dictionary learning). Shapes: x (B, d),
 * codes f or a (B, m), dictionary D, W or U (m, d), one atom per row.
 * c = 1/(B d), or 1/B with model.mse_per_sample (the SAEs' MSE).
 * coef_t = train.coef, divided by m with train.coef_scale = dict and
 * ramped by train.coef_warmup as every penalty of penalty.h.
 *
 * rica: Le, Karpenko, Ngiam & Ng 2011, "ICA with reconstruction cost for
 * efficient overcomplete feature learning", NeurIPS, eq. (3) with the
 * smooth L1 penalty g = log cosh, trained by the optimizer (no norm
 * constraint: the reconstruction term keeps W from growing):
 *   f      = x W^T                                   (signed, dense)
 *   r      = f W - x
 *   loss   = c sum_b ||r_b||^2 + (coef_t / B) sum_bi log cosh(f_bi)
 * W appears twice, in the code and in the reconstruction:
 *   G      = 2 c r                                   (B, d)
 *   df     = G W^T + (coef_t / B) tanh(f)            (B, m)
 *   dW     = f^T G + df^T x                          (m, d)
 * The loss is even in each row of W, so each latent's sign is a gauge;
 * this learner fixes it so that the latent's codes are positive on
 * average: s_i = sign of the sum of f_bi over training batches (decayed
 * by 0.99 per step; +1 at 0). The decoder and encoder seen from outside
 * (L->decoder = L->encoder = diag(s) W, refreshed after every optimizer
 * step) and the codes of encode (s_i f_bi) use these signs, so a latent
 * that codes feature g aligns with +g, not -g (MMCS is signed); the loss
 * and the parameter are unaffected. A latent counts as active (fires, l0)
 * when s_i f_bi > 0: every code of this dense learner is nonzero, and the
 * metrics count codes > 0. Initialisation: rows N(0, I) normalised.
 * decode(f) = f diag(s) W.
 *
 * pca: Pearson 1901, Hotelling 1933. Training accumulates the mean and the
 * scatter matrix S = sum (x - mean)(x - mean)^T of every batch in double,
 * merging batches by Chan, Golub & LeVeque 1979 (mean m_B and scatter S_B
 * of a batch of n_B into n samples: delta = m_B - mean, S += S_B + delta
 * delta^T n n_B / (n + n_B), mean += delta n_B / (n + n_B)). The decoder
 * rows U are the eigenvectors of S / n for the min(m, d) largest
 * eigenvalues (gsl_eigen_symmv, descending; each signed so that its
 * largest-magnitude entry, the first on ties, is positive), further rows 0:
 *   f = (x - mean) U^T,   x_hat = f U + mean,   loss = c sum_b ||x_hat_b - x_b||^2
 * with the basis and mean of the latest eigendecomposition. Those run after
 * the batch is accumulated at steps t with t + 1 a power of two (a
 * training loss that means something, for log2(T) eigendecompositions of
 * d x d), at the last step t + 1 = T, and lazily in encode/decode when
 * data arrived since. The loss of a step is thus that
 * of a basis fit on at least half of the data seen so far (including the
 * batch itself at refresh steps); it is never measured on an empty basis.
 * Active (fires, l0): f_bi > 0, the metrics' convention; the sign of each
 * component is the one fixed above.
 *
 * dl: alternation between sparse coding and a dictionary update.
 * (a) codes on the current dictionary D (solve.h, non-negative):
 *       fista: a = argmin_{a >= 0} 1/2 ||x - a D||^2 + lambda sum_j a_j
 *              with lambda = coef_t d / 2 (or coef_t / 2 with
 *              mse_per_sample), so that 2/d times (or 2 times) this is the
 *              SAE objective ||x - a D||^2 / d + coef_t sum_j a_j. The
 *              solver scales atoms to unit norm internally, so with atoms
 *              shorter than 1 (online update) the L1 weights a_j ||d_j||.
 *       omp:   non-negative OMP with k = model.k atoms per sample.
 * (b) statistics with forgetting rho = model.forget (Mairal, Bach, Ponce &
 *     Sapiro 2009, "Online dictionary learning for sparse coding", ICML,
 *     Alg. 1, with the mini-batch extension of section 3.4; a constant
 *     rho in place of their schedule for "scaling the past data"):
 *       A  = rho A  + sum_b a_b^T a_b                (m, m)
 *       Bm = rho Bm + sum_b a_b^T x_b                (m, d)
 *     (double precision: sums over thousands of batches.)
 * (c) update, minimising sum over the window of ||x - a D||^2 =
 *     tr(D^T A D) - 2 tr(D^T Bm) + const:
 *       mod:    D = (A + eps I)^{-1} Bm, rows renormalised (Engan, Aase &
 *               Husoy 1999, "Method of optimal directions for frame
 *               design", ICASSP; here over the forgetting window),
 *               by Cholesky; eps = 1e-6 tr(A) / m (see DL_RIDGE). A row
 *               that comes out zero keeps its previous atom. Atoms have
 *               unit norm after every step (unit_norm = 1).
 *       online: one block-coordinate sweep, j = 0 .. m-1 (Mairal et al.
 *               2009, Alg. 2, written for rows):
 *                 u_j = (Bm_j - A_j D) / A_jj + d_j
 *                 d_j = u_j / max(1, ||u_j||)
 *               Atoms with A_jj = 0 are left for (d). Atoms satisfy
 *               ||d_j|| <= 1 (unit_norm = 0); codes, at training and
 *               inference, are for D itself, so decode(a) = a D matches.
 *               Used atoms end at norm 1: the L1 shrinks codes, which the
 *               least-squares update compensates with longer atoms.
 * (d) unused and duplicate atoms (Mairal et al. 2009, section 3.4, "purging
 *     the dictionary from unused atoms"; the clean-up of K-SVD, Aharon,
 *     Elad & Bruckstein 2006): with w_j = rho w_j + B the statistics
 *     weight of atom j since it was last (re)initialised, its usage
 *     u_j = A_jj / w_j is the mean squared code per sample. Atom j is
 *     replaced when u_j < DL_UNUSED (1e-2) times the mean of u over the
 *     atoms (unused), or when cos(d_i, d_j) > DL_DUP (0.97) for an atom i
 *     used more (u_i > u_j, or equal and i < j; duplicate). Each replaced
 *     atom, in index order, becomes the normalised input with the largest
 *     residual ||x_b - a_b D||^2 of the batch (the worst reconstructed;
 *     distinct inputs, ties to the lower index; none when every residual
 *     is 0), and row and column j of A, row j of Bm and w_j are zeroed.
 * Then the solver is refreshed. The step's loss terms use the codes of (a)
 * on the dictionary before (c): mse = c sum_b ||x_b - a_b D||^2, penalty =
 * (coef_t / B) sum_bj a_bj (fista), l0 = mean nonzero codes. Codes at
 * inference: the same coder on the final dictionary, run to tighter
 * tolerances (DL_INFER_*). Initialisation: rows N(0, I) normalised.
 * A batch the solver refuses (a non-finite input) makes the step return
 * NaN without touching the state. */
#include "superpose/sae.h"
#include "superpose/solve.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_blas.h>
#include <gsl/gsl_eigen.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_math.h>
#include <gsl/gsl_randist.h>

/* FISTA stops when the batch's F falls by less than tol in an iteration
 * (solve.h). On the recovery tests' data (24 dimensions, 32 atoms, lambda
 * 0.2) that leaves F within ~3 tol of its optimum: 1e-6 stops after ~25
 * iterations with codes within 0.2-0.7% of the optimum's; 1e-7, ~33 with
 * 0.07-0.25%; 1e-8 would sit at float32's rounding of F (~6e-8), where
 * the stopping rule becomes noise. Training codes only feed statistics
 * averaged over ~1/(1 - rho) batches while D still moves: 1e-6. At
 * inference the codes are the result: 1e-7. The caps bound the cost on
 * ill-conditioned dictionaries (F - F* falls as O(1/t^2)). */
#define DL_TRAIN_ITER 300
#define DL_TRAIN_TOL 1e-6
#define DL_INFER_ITER 2000
#define DL_INFER_TOL 1e-7
/* MOD ridge, relative to the mean diagonal tr(A) / m: A is singular
 * whenever an atom is unused or codes are collinear; 1e-6 keeps A + eps I
 * positive definite in double (condition number <= 1e6 m) while staying
 * ~1e-4 of the diagonal of an atom that counts as used (DL_UNUSED), so it
 * barely biases the least-squares rows (renormalised afterwards anyway). */
#define DL_RIDGE 1e-6
/* An atom is unused when its mean squared code is below this fraction of
 * the average atom's: an atom that stopped being chosen falls below it
 * after log(0.01)/log(rho) steps (46 at rho = 0.9, 460 at 0.99), one
 * that codes a real direction sits near the average unless its feature
 * is 100 times rarer or weaker than the average one. */
#define DL_UNUSED 1e-2
/* Two atoms with cos > DL_DUP code nearly one direction (OMP picks one,
 * the LASSO splits the code) while some direction of the data has no
 * atom: a local minimum of the alternation from random atoms. The less
 * used one is replaced, as K-SVD's dictionary clean-up does (Rubinstein's
 * KSVD-Box clears atoms with mutual coherence above muthresh = 0.99).
 * 0.97: on the recovery tests' data (32 atoms in 24 dimensions, 3 per
 * sample, rho = 0.9, 300 steps) OMP ended every one of 12 seeds at
 * MMCS 1.000 with it, 6-8 of 12 with 0.99 and none without (duplicate
 * pairs at cos 0.92-0.98, MMCS 0.96-0.98). Truth directions more
 * coherent than 0.97 cannot both keep an atom. */
#define DL_DUP 0.97

static gsl_matrix_float_view rows_f(gsl_matrix_float *a, size_t B)
{
    return gsl_matrix_float_submatrix(a, 0, 0, B, a->size2);
}

static gsl_matrix_view rows_d(gsl_matrix *a, size_t B)
{
    return gsl_matrix_submatrix(a, 0, 0, B, a->size2);
}

/* coef_t of penalty.h: coef (divided by m when per_latent), ramped
 * linearly over the first warmup steps. */
static double coef_at(const sp_penalty_cfg *pen, size_t m, long t)
{
    double c = pen->coef / (pen->per_latent ? (double)m : 1.0);
    if (pen->warmup > 0 && t + 1 < pen->warmup)
        c *= (double)(t + 1) / (double)pen->warmup;
    return c;
}

/* Rows N(0, I), normalised. */
static void gaussian_unit_rows(gsl_matrix_float *w, gsl_rng *rng)
{
    for (size_t t = 0; t < w->size1 * w->size2; t++)
        w->data[t] = (float)gsl_ran_gaussian_ziggurat(rng, 1.0);
    sp_rows_normalise(w);
}

/* log cosh z = |z| + log(1 + exp(-2|z|)) - log 2, without overflow. */
static double log_cosh(double z)
{
    double a = fabs(z);
    return a + log1p(exp(-2.0 * a)) - M_LN2;
}

/* ---------------------------------------------------------------- rica */

/* Decay per step of the summed codes that fix each latent's sign. */
#define RICA_SIGN_DECAY 0.99

typedef struct {
    sp_learner base;
    sp_penalty_cfg pen;
    double c_per_sample;          /* 1 if mse_per_sample, else 1/d: c = this / B */
    gsl_matrix_float *w, *gw;     /* (m, d) the parameter W and its gradient */
    gsl_matrix_float *dec;        /* (m, d) diag(s) W: decoder, encoder, codes */
    double *fsum;                 /* (m) decayed sum of the codes x W^T over training */
    gsl_matrix_float *f, *df;     /* (max_batch, m) */
    gsl_matrix_float *r;          /* (max_batch, d): r, then G */
    sp_param params[1];
} rica;

/* s_i = sign of fsum_i (+1 at 0); dec = diag(s) W. */
static void rica_sync(rica *s)
{
    size_t d = s->base.d;
    for (size_t i = 0; i < s->base.m; i++) {
        float sg = s->fsum[i] < 0 ? -1.0f : 1.0f;
        const float *w = gsl_matrix_float_const_ptr(s->w, i, 0);
        float *o = gsl_matrix_float_ptr(s->dec, i, 0);
        for (size_t j = 0; j < d; j++)
            o[j] = sg * w[j];
    }
}

static void rica_loss_and_grad(sp_learner *L, const gsl_matrix_float *x, sp_loss *out)
{
    rica *s = (rica *)L;
    size_t B = x->size1, d = L->d, m = L->m;
    gsl_matrix_float_view F = rows_f(s->f, B), DF = rows_f(s->df, B), R = rows_f(s->r, B);

    /* f = x W^T; r = f W - x */
    gsl_blas_sgemm(CblasNoTrans, CblasTrans, 1.0f, x, s->w, 0.0f, &F.matrix);
    gsl_matrix_float_memcpy(&R.matrix, x);
    gsl_blas_sgemm(CblasNoTrans, CblasNoTrans, 1.0f, &F.matrix, s->w, -1.0f, &R.matrix);
    /* mse = c sum ||r||^2; G = 2 c r (in place) */
    double c = s->c_per_sample / (double)B, sse = 0;
    float g2 = (float)(2.0 * c);
    for (size_t b = 0; b < B; b++) {
        float *rr = gsl_matrix_float_ptr(&R.matrix, b, 0);
        double acc = 0;
        for (size_t j = 0; j < d; j++) {
            acc += (double)rr[j] * rr[j];
            rr[j] *= g2;
        }
        sse += acc;
    }
    /* df = G W^T + (coef/B) tanh(f); penalty (coef/B) sum log cosh f */
    gsl_blas_sgemm(CblasNoTrans, CblasTrans, 1.0f, &R.matrix, s->w, 0.0f, &DF.matrix);
    double coef = coef_at(&s->pen, m, L->step), lc = 0;
    float kb = (float)(coef / (double)B);
    size_t active = 0;
    for (size_t i = 0; i < m; i++)
        s->fsum[i] *= RICA_SIGN_DECAY;
    for (size_t b = 0; b < B; b++) {
        const float *fr = gsl_matrix_float_const_ptr(&F.matrix, b, 0);
        float *dfr = gsl_matrix_float_ptr(&DF.matrix, b, 0);
        for (size_t i = 0; i < m; i++) {
            lc += log_cosh(fr[i]);
            dfr[i] += kb * tanhf(fr[i]);
            s->fsum[i] += fr[i];
        }
    }
    /* activity of the signed codes s_i f_bi, with this batch's signs */
    for (size_t b = 0; b < B; b++) {
        const float *fr = gsl_matrix_float_const_ptr(&F.matrix, b, 0);
        for (size_t i = 0; i < m; i++) {
            int on = s->fsum[i] < 0 ? fr[i] < 0 : fr[i] > 0;
            active += (size_t)on;
            L->fires[i] += (unsigned long)on;
        }
    }
    /* dW = f^T G + df^T x */
    gsl_blas_sgemm(CblasTrans, CblasNoTrans, 1.0f, &F.matrix, &R.matrix, 0.0f, s->gw);
    gsl_blas_sgemm(CblasTrans, CblasNoTrans, 1.0f, &DF.matrix, x, 1.0f, s->gw);
    memset(out, 0, sizeof *out);
    out->mse = c * sse;
    out->penalty = coef / (double)B * lc;
    out->loss = out->mse + out->penalty;
    out->l0 = (double)active / (double)B;
}

/* After the optimizer step: the exposed decoder follows W. */
static void rica_post_step(sp_learner *L)
{
    rica_sync((rica *)L);
}

/* f = x (diag(s) W)^T. x: (B, d), f: (B, m). */
static void rica_encode(sp_learner *L, const gsl_matrix_float *x, gsl_matrix_float *f)
{
    rica *s = (rica *)L;
    rica_sync(s);
    gsl_blas_sgemm(CblasNoTrans, CblasTrans, 1.0f, x, s->dec, 0.0f, f);
}

/* x_hat = f diag(s) W. f: (B, m), xhat: (B, d). */
static void rica_decode(sp_learner *L, const gsl_matrix_float *f, gsl_matrix_float *xhat)
{
    rica *s = (rica *)L;
    rica_sync(s);
    sp_decode_affine(s->dec, NULL, f, xhat);
}

/* Row i of W = dir * enc_norm (dir when enc_norm <= 0), sign +1 (dir is
 * an input's direction); its optimizer state is reset. */
static void rica_reinit(sp_learner *L, sp_optim *opt, size_t i, const float *dir,
                        float enc_norm)
{
    rica *s = (rica *)L;
    float k = enc_norm > 0 ? enc_norm : 1.0f;
    float *w = gsl_matrix_float_ptr(s->w, i, 0);
    for (size_t j = 0; j < L->d; j++)
        w[j] = dir[j] * k;
    s->fsum[i] = 0;
    rica_sync(s);
    if (opt)
        sp_optim_reset(opt, 0, i * L->d, L->d);
}

static void rica_free(sp_learner *L)
{
    rica *s = (rica *)L;
    sp_learner_base_free(L);
    gsl_matrix_float_free(s->r);
    gsl_matrix_float_free(s->df);
    gsl_matrix_float_free(s->f);
    free(s->fsum);
    gsl_matrix_float_free(s->dec);
    gsl_matrix_float_free(s->gw);
    gsl_matrix_float_free(s->w);
    free(s);
}

static const sp_learner_ops rica_ops = {
    .name = "rica",
    .loss_and_grad = rica_loss_and_grad,
    .encode = rica_encode,
    .decode = rica_decode,
    .post_step = rica_post_step,
    .reinit = rica_reinit,
    .free = rica_free,
};

static sp_learner *rica_alloc(const sp_sae_cfg *cfg, const sp_penalty_cfg *pen, size_t d,
                              size_t m, size_t max_batch, long total_steps, gsl_rng *rng,
                              sp_err *err)
{
    rica *s = calloc(1, sizeof *s);
    if (!s) {
        sp_err_set(err, "out of memory");
        return NULL;
    }
    sp_learner *L = &s->base;
    L->ops = &rica_ops;
    s->pen = *pen;
    s->c_per_sample = cfg->mse_per_sample ? 1.0 : 1.0 / (double)d;
    int base = sp_learner_base_init(L, cfg, d, m, max_batch, total_steps);
    s->w = gsl_matrix_float_alloc(m, d);
    s->gw = gsl_matrix_float_calloc(m, d);
    s->dec = gsl_matrix_float_alloc(m, d);
    s->fsum = calloc(m, sizeof *s->fsum);
    s->f = gsl_matrix_float_alloc(max_batch, m);
    s->df = gsl_matrix_float_alloc(max_batch, m);
    s->r = gsl_matrix_float_alloc(max_batch, d);
    if (base != 0 || !s->w || !s->gw || !s->dec || !s->fsum || !s->f || !s->df || !s->r) {
        sp_err_set(err, "out of memory for a rica learner with %zu latents", m);
        rica_free(L);
        return NULL;
    }
    gaussian_unit_rows(s->w, rng);
    rica_sync(s);
    s->params[0] = (sp_param){"W", s->w->data, s->gw->data, m * d, 1, m, d, NULL, 0};
    L->params = s->params;
    L->n_params = 1;
    L->decoder = s->dec;
    L->decoder_grad = NULL; /* no unit norm, no orthogonality (refused) */
    L->encoder = s->dec;
    L->enc_rows = s->dec;
    L->unit_norm = 0;
    return L;
}

/* ----------------------------------------------------------------- pca */

typedef struct {
    sp_learner base;
    double c_per_sample;
    double n;                     /* samples accumulated */
    double *mean;                 /* (d) running mean */
    double *bmean;                /* (d) batch mean */
    gsl_matrix *scatter;          /* (d, d) lower triangle: sum (x - mean)(x - mean)^T */
    gsl_matrix *cov;              /* (d, d) eigensolver input (destroyed) */
    gsl_matrix *evec;             /* (d, d) eigenvectors in columns */
    gsl_vector *eval;             /* (d) */
    gsl_eigen_symmv_workspace *ews;
    gsl_matrix *xc;               /* (max_batch, d) batch minus batch mean */
    gsl_matrix_float *u;          /* (m, d) decoder: the basis */
    float *umean;                 /* (d) mean of the basis' fit */
    gsl_matrix_float *xcf;        /* (max_batch, d) x - umean */
    gsl_matrix_float *f, *xh;     /* (max_batch, m), (max_batch, d): training loss */
    int stale;                    /* data accumulated since the last refresh */
} pca;

/* Eigendecomposition of the covariance S / n: the top min(m, d)
 * eigenvectors become the rows of U, signed; rows beyond d stay 0. */
static void pca_refresh(pca *s)
{
    size_t d = s->base.d, m = s->base.m, r = m < d ? m : d;
    s->stale = 0;
    if (!(s->n > 0))
        return;
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j <= i; j++)
            gsl_matrix_set(s->cov, i, j, gsl_matrix_get(s->scatter, i, j) / s->n);
    gsl_eigen_symmv(s->cov, s->eval, s->evec, s->ews);
    gsl_eigen_symmv_sort(s->eval, s->evec, GSL_EIGEN_SORT_VAL_DESC);
    for (size_t i = 0; i < r; i++) {
        size_t big = 0;
        for (size_t j = 1; j < d; j++)
            if (fabs(gsl_matrix_get(s->evec, j, i)) > fabs(gsl_matrix_get(s->evec, big, i)))
                big = j;
        double sg = gsl_matrix_get(s->evec, big, i) < 0 ? -1.0 : 1.0;
        float *ur = gsl_matrix_float_ptr(s->u, i, 0);
        for (size_t j = 0; j < d; j++)
            ur[j] = (float)(sg * gsl_matrix_get(s->evec, j, i));
    }
    for (size_t j = 0; j < d; j++)
        s->umean[j] = (float)s->mean[j];
}

/* f = (x - umean) U^T with the current basis. x: (B, d), f: (B, m). */
static void pca_project(pca *s, const gsl_matrix_float *x, gsl_matrix_float *f)
{
    size_t B = x->size1, d = s->base.d;
    gsl_matrix_float_view XC = rows_f(s->xcf, B);
    for (size_t b = 0; b < B; b++) {
        const float *xr = gsl_matrix_float_const_ptr(x, b, 0);
        float *cr = gsl_matrix_float_ptr(&XC.matrix, b, 0);
        for (size_t j = 0; j < d; j++)
            cr[j] = xr[j] - s->umean[j];
    }
    gsl_blas_sgemm(CblasNoTrans, CblasTrans, 1.0f, &XC.matrix, s->u, 0.0f, f);
}

static double pca_step(sp_learner *L, const gsl_matrix_float *x, sp_loss *out)
{
    pca *s = (pca *)L;
    size_t B = x->size1, d = L->d, m = L->m;
    memset(out, 0, sizeof *out);
    for (size_t b = 0; b < B; b++) {
        const float *xr = gsl_matrix_float_const_ptr(x, b, 0);
        for (size_t j = 0; j < d; j++)
            if (!isfinite(xr[j])) {
                out->loss = out->mse = NAN;
                return NAN;
            }
    }
    /* batch mean and scatter (lower triangle), merged by Chan et al. */
    double nb = (double)B, n = s->n, tot = n + nb;
    for (size_t j = 0; j < d; j++)
        s->bmean[j] = 0;
    for (size_t b = 0; b < B; b++) {
        const float *xr = gsl_matrix_float_const_ptr(x, b, 0);
        for (size_t j = 0; j < d; j++)
            s->bmean[j] += xr[j];
    }
    for (size_t j = 0; j < d; j++)
        s->bmean[j] /= nb;
    gsl_matrix_view XC = rows_d(s->xc, B);
    for (size_t b = 0; b < B; b++) {
        const float *xr = gsl_matrix_float_const_ptr(x, b, 0);
        double *cr = gsl_matrix_ptr(&XC.matrix, b, 0);
        for (size_t j = 0; j < d; j++)
            cr[j] = (double)xr[j] - s->bmean[j];
    }
    gsl_blas_dsyrk(CblasLower, CblasTrans, 1.0, &XC.matrix, 1.0, s->scatter);
    double w = n * nb / tot;
    for (size_t i = 0; i < d; i++) {
        double di = s->bmean[i] - s->mean[i];
        double *sr = gsl_matrix_ptr(s->scatter, i, 0);
        for (size_t j = 0; j <= i; j++)
            sr[j] += w * di * (s->bmean[j] - s->mean[j]);
    }
    for (size_t j = 0; j < d; j++)
        s->mean[j] += (s->bmean[j] - s->mean[j]) * nb / tot;
    s->n = tot;
    s->stale = 1;
    long t1 = L->step + 1;
    if ((t1 > 0 && (t1 & (t1 - 1)) == 0) || t1 == L->total_steps)
        pca_refresh(s);

    /* loss of the batch with the current basis */
    gsl_matrix_float_view F = rows_f(s->f, B), XH = rows_f(s->xh, B);
    pca_project(s, x, &F.matrix);
    sp_decode_affine(s->u, s->umean, &F.matrix, &XH.matrix);
    double sse = 0;
    for (size_t b = 0; b < B; b++) {
        const float *xr = gsl_matrix_float_const_ptr(x, b, 0);
        const float *hr = gsl_matrix_float_const_ptr(&XH.matrix, b, 0);
        for (size_t j = 0; j < d; j++)
            sse += ((double)hr[j] - xr[j]) * ((double)hr[j] - xr[j]);
    }
    size_t active = 0;
    for (size_t b = 0; b < B; b++) {
        const float *fr = gsl_matrix_float_const_ptr(&F.matrix, b, 0);
        for (size_t i = 0; i < m; i++) {
            int on = fr[i] > 0;
            active += (size_t)on;
            L->fires[i] += (unsigned long)on;
        }
    }
    out->mse = s->c_per_sample / nb * sse;
    out->loss = out->mse;
    out->l0 = (double)active / nb;
    return out->loss;
}

static void pca_encode(sp_learner *L, const gsl_matrix_float *x, gsl_matrix_float *f)
{
    pca *s = (pca *)L;
    if (s->stale)
        pca_refresh(s);
    pca_project(s, x, f);
}

/* x_hat = f U + mean. f: (B, m), xhat: (B, d). */
static void pca_decode(sp_learner *L, const gsl_matrix_float *f, gsl_matrix_float *xhat)
{
    pca *s = (pca *)L;
    if (s->stale)
        pca_refresh(s);
    sp_decode_affine(s->u, s->umean, f, xhat);
}

static void pca_free(sp_learner *L)
{
    pca *s = (pca *)L;
    sp_learner_base_free(L);
    gsl_matrix_float_free(s->xh);
    gsl_matrix_float_free(s->f);
    gsl_matrix_float_free(s->xcf);
    free(s->umean);
    gsl_matrix_float_free(s->u);
    gsl_matrix_free(s->xc);
    if (s->ews)
        gsl_eigen_symmv_free(s->ews);
    gsl_vector_free(s->eval);
    gsl_matrix_free(s->evec);
    gsl_matrix_free(s->cov);
    gsl_matrix_free(s->scatter);
    free(s->bmean);
    free(s->mean);
    free(s);
}

static const sp_learner_ops pca_ops = {
    .name = "pca",
    .encode = pca_encode,
    .decode = pca_decode,
    .free = pca_free,
    .step = pca_step,
};

static sp_learner *pca_alloc(const sp_sae_cfg *cfg, size_t d, size_t m, size_t max_batch,
                             long total_steps, sp_err *err)
{
    pca *s = calloc(1, sizeof *s);
    if (!s) {
        sp_err_set(err, "out of memory");
        return NULL;
    }
    sp_learner *L = &s->base;
    L->ops = &pca_ops;
    s->c_per_sample = cfg->mse_per_sample ? 1.0 : 1.0 / (double)d;
    int base = sp_learner_base_init(L, cfg, d, m, max_batch, total_steps);
    s->mean = calloc(d, sizeof *s->mean);
    s->bmean = calloc(d, sizeof *s->bmean);
    s->scatter = gsl_matrix_calloc(d, d);
    s->cov = gsl_matrix_calloc(d, d);
    s->evec = gsl_matrix_alloc(d, d);
    s->eval = gsl_vector_alloc(d);
    s->ews = gsl_eigen_symmv_alloc(d);
    s->xc = gsl_matrix_alloc(max_batch, d);
    s->u = gsl_matrix_float_calloc(m, d);
    s->umean = calloc(d, sizeof *s->umean);
    s->xcf = gsl_matrix_float_alloc(max_batch, d);
    s->f = gsl_matrix_float_alloc(max_batch, m);
    s->xh = gsl_matrix_float_alloc(max_batch, d);
    if (base != 0 || !s->mean || !s->bmean || !s->scatter || !s->cov || !s->evec || !s->eval ||
        !s->ews || !s->xc || !s->u || !s->umean || !s->xcf || !s->f || !s->xh) {
        sp_err_set(err, "out of memory for a pca learner (d = %zu, %zu latents)", d, m);
        pca_free(L);
        return NULL;
    }
    L->params = NULL;
    L->n_params = 0;
    L->decoder = s->u;
    L->decoder_grad = NULL;
    L->encoder = NULL;
    L->enc_rows = NULL;
    L->unit_norm = 0; /* rows beyond min(m, d) are 0 */
    return L;
}

/* ------------------------------------------------------------------ dl */

typedef struct {
    sp_learner base;
    sp_penalty_cfg pen;
    int coder, update;            /* 0 fista, 1 omp; 0 mod, 1 online */
    size_t k;                     /* omp */
    double forget;                /* rho */
    double c_per_sample;
    double lam_per_coef;          /* lambda = coef_t * this: d/2 or 1/2 */
    gsl_matrix_float *D;          /* (m, d) decoder */
    sp_solver *S;                 /* on D, no bias */
    gsl_matrix_float *a;          /* (max_batch, m) codes */
    gsl_matrix_float *r;          /* (max_batch, d) x - a D */
    gsl_matrix *ad, *xd;          /* (max_batch, m), (max_batch, d): a and x in double */
    gsl_matrix *A;                /* (m, m) */
    gsl_matrix *Bm;               /* (m, d) */
    gsl_matrix *chol;             /* (m, m) MOD: Cholesky factor of A + eps I */
    gsl_matrix *Dw;               /* (m, d) the update in double */
    double *wt;                   /* (m) statistics weight since (re)initialisation */
    double *rn;                   /* (max_batch) residual ||x_b - a_b D||^2 */
    double *u;                    /* (d) online sweep */
    gsl_matrix_float *gram;       /* (m, m) lower triangle of D D^T: duplicates */
    double *use;                  /* (m) A_jj / w_j */
    unsigned char *flag;          /* (m) atoms to replace */
} dl;

static sp_solve_cfg dl_solve_cfg(const dl *s, int train)
{
    sp_solve_cfg c;
    memset(&c, 0, sizeof c);
    c.kind = s->coder == 1 ? SP_SOLVE_OMP : SP_SOLVE_FISTA;
    c.nonneg = 1;
    c.k = s->k;
    c.lambda = coef_at(&s->pen, s->base.m, s->base.step) * s->lam_per_coef;
    c.max_iter = train ? DL_TRAIN_ITER : DL_INFER_ITER;
    c.tol = train ? DL_TRAIN_TOL : DL_INFER_TOL;
    c.use_gram = -1;
    return c;
}

/* Zeroes what the statistics know about atom j. */
static void dl_forget_atom(dl *s, size_t j)
{
    gsl_vector_view row = gsl_matrix_row(s->A, j), col = gsl_matrix_column(s->A, j);
    gsl_vector_set_zero(&row.vector);
    gsl_vector_set_zero(&col.vector);
    gsl_vector_view brow = gsl_matrix_row(s->Bm, j);
    gsl_vector_set_zero(&brow.vector);
    s->wt[j] = 0;
}

/* MOD: D = (A + eps I)^-1 Bm by Cholesky, rows renormalised; a zero or
 * non-finite row keeps its atom. The whole update is skipped if the
 * factorisation fails (it cannot for finite A, which is PSD). */
static void dl_mod(dl *s, double trace)
{
    size_t m = s->base.m, d = s->base.d;
    double eps = DL_RIDGE * trace / (double)m;
    gsl_matrix_memcpy(s->chol, s->A);
    for (size_t i = 0; i < m; i++)
        *gsl_matrix_ptr(s->chol, i, i) += eps;
    gsl_error_handler_t *old = gsl_set_error_handler_off();
    int bad = gsl_linalg_cholesky_decomp1(s->chol);
    gsl_set_error_handler(old);
    if (bad)
        return;
    gsl_matrix_memcpy(s->Dw, s->Bm);
    gsl_blas_dtrsm(CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, 1.0, s->chol, s->Dw);
    gsl_blas_dtrsm(CblasLeft, CblasLower, CblasTrans, CblasNonUnit, 1.0, s->chol, s->Dw);
    for (size_t i = 0; i < m; i++) {
        const double *w = gsl_matrix_const_ptr(s->Dw, i, 0);
        double n2 = 0;
        for (size_t j = 0; j < d; j++)
            n2 += w[j] * w[j];
        if (!(n2 > 0) || !isfinite(n2))
            continue;
        double inv = 1.0 / sqrt(n2);
        float *dr = gsl_matrix_float_ptr(s->D, i, 0);
        for (size_t j = 0; j < d; j++)
            dr[j] = (float)(w[j] * inv);
    }
}

/* One block-coordinate sweep of Mairal et al. 2009, Alg. 2 (rows). */
static void dl_online(dl *s, double trace)
{
    size_t m = s->base.m, d = s->base.d;
    double tiny = 1e-12 * trace / (double)m;
    for (size_t i = 0; i < m; i++) {
        const float *dr = gsl_matrix_float_const_ptr(s->D, i, 0);
        double *w = gsl_matrix_ptr(s->Dw, i, 0);
        for (size_t j = 0; j < d; j++)
            w[j] = dr[j];
    }
    gsl_vector_view u = gsl_vector_view_array(s->u, d);
    for (size_t i = 0; i < m; i++) {
        double aii = gsl_matrix_get(s->A, i, i);
        if (!(aii > tiny))
            continue;
        /* u = A_i D (over every atom, i included) */
        gsl_vector_const_view ai = gsl_matrix_const_row(s->A, i);
        gsl_blas_dgemv(CblasTrans, 1.0, s->Dw, &ai.vector, 0.0, &u.vector);
        double *w = gsl_matrix_ptr(s->Dw, i, 0);
        const double *bm = gsl_matrix_const_ptr(s->Bm, i, 0);
        double n2 = 0;
        for (size_t j = 0; j < d; j++) {
            s->u[j] = w[j] + (bm[j] - s->u[j]) / aii;
            n2 += s->u[j] * s->u[j];
        }
        if (!isfinite(n2))
            continue;
        double sc = n2 > 1.0 ? 1.0 / sqrt(n2) : 1.0;
        for (size_t j = 0; j < d; j++)
            w[j] = s->u[j] * sc;
    }
    for (size_t i = 0; i < m; i++) {
        const double *w = gsl_matrix_const_ptr(s->Dw, i, 0);
        float *dr = gsl_matrix_float_ptr(s->D, i, 0);
        for (size_t j = 0; j < d; j++)
            dr[j] = (float)w[j];
    }
}

/* (d): unused and duplicate atoms become the worst reconstructed inputs
 * of the batch (s->rn holds the residuals and is consumed). Returns the
 * number of atoms replaced. */
static size_t dl_replace_atoms(dl *s, const gsl_matrix_float *x)
{
    size_t m = s->base.m, d = s->base.d, B = x->size1, done = 0;
    double ubar = 0;
    for (size_t j = 0; j < m; j++) {
        s->use[j] = s->wt[j] > 0 ? gsl_matrix_get(s->A, j, j) / s->wt[j] : 0.0;
        ubar += s->use[j];
    }
    ubar /= (double)m;
    if (!(ubar > 0) || !isfinite(ubar))
        return 0;
    for (size_t j = 0; j < m; j++)
        s->flag[j] = s->wt[j] > 0 && s->use[j] < DL_UNUSED * ubar;
    /* duplicates: cos(d_i, d_j) > DL_DUP, the less used one goes (ties:
     * the higher index), so the most used atom of a cluster stays */
    gsl_blas_ssyrk(CblasLower, CblasNoTrans, 1.0f, s->D, 0.0f, s->gram);
    for (size_t j = 0; j < m; j++) {
        double njj = gsl_matrix_float_get(s->gram, j, j);
        for (size_t i = 0; i < m && !s->flag[j] && njj > 0; i++) {
            if (i == j || s->flag[i])
                continue;
            double g = i > j ? gsl_matrix_float_get(s->gram, i, j)
                             : gsl_matrix_float_get(s->gram, j, i);
            double nii = gsl_matrix_float_get(s->gram, i, i);
            int more = s->use[i] > s->use[j] || (s->use[i] == s->use[j] && i < j);
            if (nii > 0 && g > DL_DUP * sqrt(nii * njj) && more)
                s->flag[j] = 1;
        }
    }
    for (size_t j = 0; j < m; j++) {
        if (!s->flag[j])
            continue;
        for (;;) {
            size_t worst = B;
            for (size_t b = 0; b < B; b++)
                if (s->rn[b] > 0 && (worst == B || s->rn[b] > s->rn[worst]))
                    worst = b;
            if (worst == B)
                return done;
            s->rn[worst] = -1; /* taken */
            const float *xr = gsl_matrix_float_const_ptr(x, worst, 0);
            double n2 = 0;
            for (size_t t = 0; t < d; t++)
                n2 += (double)xr[t] * xr[t];
            if (!(n2 > 0))
                continue;
            double inv = 1.0 / sqrt(n2);
            float *dr = gsl_matrix_float_ptr(s->D, j, 0);
            for (size_t t = 0; t < d; t++)
                dr[t] = (float)(xr[t] * inv);
            dl_forget_atom(s, j);
            done++;
            break;
        }
    }
    return done;
}

static double dl_step(sp_learner *L, const gsl_matrix_float *x, sp_loss *out)
{
    dl *s = (dl *)L;
    size_t B = x->size1, d = L->d, m = L->m;
    gsl_matrix_float_view Af = rows_f(s->a, B), R = rows_f(s->r, B);
    memset(out, 0, sizeof *out);

    /* (a) codes on the current dictionary */
    sp_solve_cfg sc = dl_solve_cfg(s, 1);
    sp_err e;
    if (sp_solve(s->S, &sc, x, NULL, 0, &Af.matrix, NULL, &e) != 0) {
        out->loss = out->mse = NAN;
        return NAN;
    }
    /* loss terms: r = x - a D */
    gsl_matrix_float_memcpy(&R.matrix, x);
    gsl_blas_sgemm(CblasNoTrans, CblasNoTrans, -1.0f, &Af.matrix, s->D, 1.0f, &R.matrix);
    double sse = 0, l1 = 0;
    size_t active = 0;
    for (size_t b = 0; b < B; b++) {
        const float *rr = gsl_matrix_float_const_ptr(&R.matrix, b, 0);
        double acc = 0;
        for (size_t j = 0; j < d; j++)
            acc += (double)rr[j] * rr[j];
        s->rn[b] = acc;
        sse += acc;
        const float *ar = gsl_matrix_float_const_ptr(&Af.matrix, b, 0);
        for (size_t i = 0; i < m; i++) {
            l1 += fabsf(ar[i]);
            active += ar[i] != 0;
        }
    }
    out->mse = s->c_per_sample / (double)B * sse;
    out->penalty = s->coder == 0 ? coef_at(&s->pen, m, L->step) / (double)B * l1 : 0.0;
    out->loss = out->mse + out->penalty;
    out->l0 = (double)active / (double)B;
    if (!isfinite(out->loss))
        return out->loss;
    for (size_t b = 0; b < B; b++) {
        const float *ar = gsl_matrix_float_const_ptr(&Af.matrix, b, 0);
        for (size_t i = 0; i < m; i++)
            L->fires[i] += ar[i] != 0;
    }

    /* (b) A = rho A + a^T a, Bm = rho Bm + a^T x */
    gsl_matrix_view AD = rows_d(s->ad, B), XD = rows_d(s->xd, B);
    for (size_t b = 0; b < B; b++) {
        const float *ar = gsl_matrix_float_const_ptr(&Af.matrix, b, 0);
        const float *xr = gsl_matrix_float_const_ptr(x, b, 0);
        double *adr = gsl_matrix_ptr(&AD.matrix, b, 0), *xdr = gsl_matrix_ptr(&XD.matrix, b, 0);
        for (size_t i = 0; i < m; i++)
            adr[i] = ar[i];
        for (size_t j = 0; j < d; j++)
            xdr[j] = xr[j];
    }
    gsl_blas_dgemm(CblasTrans, CblasNoTrans, 1.0, &AD.matrix, &AD.matrix, s->forget, s->A);
    gsl_blas_dgemm(CblasTrans, CblasNoTrans, 1.0, &AD.matrix, &XD.matrix, s->forget, s->Bm);
    for (size_t i = 0; i < m; i++)
        s->wt[i] = s->forget * s->wt[i] + (double)B;

    /* (c) dictionary update, (d) unused and duplicate atoms; nothing to
     * learn from statistics that are all zero */
    double trace = 0;
    for (size_t i = 0; i < m; i++)
        trace += gsl_matrix_get(s->A, i, i);
    if (trace > 0 && isfinite(trace)) {
        if (s->update == 0)
            dl_mod(s, trace);
        else
            dl_online(s, trace);
        dl_replace_atoms(s, x);
    }
    sp_solver_refresh(s->S);
    return out->loss;
}

/* Codes of x on the current dictionary, as at inference; NaN codes if the
 * solver refuses x (a non-finite input), so that the failure shows in
 * every metric computed from them. */
static void dl_encode(sp_learner *L, const gsl_matrix_float *x, gsl_matrix_float *f)
{
    dl *s = (dl *)L;
    sp_solve_cfg sc = dl_solve_cfg(s, 0);
    sp_err e;
    if (sp_solve(s->S, &sc, x, NULL, 0, f, NULL, &e) != 0)
        gsl_matrix_float_set_all(f, NAN);
}

static void dl_decode(sp_learner *L, const gsl_matrix_float *f, gsl_matrix_float *xhat)
{
    sp_decode_affine(((dl *)L)->D, NULL, f, xhat);
}

/* Resampling: atom i = dir (unit), its statistics forgotten; there is no
 * encoder and no optimizer state. */
static void dl_reinit(sp_learner *L, sp_optim *opt, size_t i, const float *dir,
                      float enc_norm)
{
    dl *s = (dl *)L;
    (void)opt, (void)enc_norm;
    float *dr = gsl_matrix_float_ptr(s->D, i, 0);
    memcpy(dr, dir, L->d * sizeof *dr);
    dl_forget_atom(s, i);
    sp_solver_refresh(s->S);
}

static void dl_free(sp_learner *L)
{
    dl *s = (dl *)L;
    sp_learner_base_free(L);
    free(s->flag);
    free(s->use);
    gsl_matrix_float_free(s->gram);
    free(s->u);
    free(s->rn);
    free(s->wt);
    gsl_matrix_free(s->Dw);
    gsl_matrix_free(s->chol);
    gsl_matrix_free(s->Bm);
    gsl_matrix_free(s->A);
    gsl_matrix_free(s->xd);
    gsl_matrix_free(s->ad);
    gsl_matrix_float_free(s->r);
    gsl_matrix_float_free(s->a);
    sp_solver_free(s->S);
    gsl_matrix_float_free(s->D);
    free(s);
}

static const sp_learner_ops dl_ops = {
    .name = "dl",
    .encode = dl_encode,
    .decode = dl_decode,
    .reinit = dl_reinit,
    .free = dl_free,
    .step = dl_step,
};

static sp_learner *dl_alloc(const sp_sae_cfg *cfg, const sp_penalty_cfg *pen, size_t d,
                            size_t m, size_t max_batch, long total_steps, gsl_rng *rng,
                            sp_err *err)
{
    dl *s = calloc(1, sizeof *s);
    if (!s) {
        sp_err_set(err, "out of memory");
        return NULL;
    }
    sp_learner *L = &s->base;
    L->ops = &dl_ops;
    s->pen = *pen;
    s->coder = cfg->coder;
    s->update = cfg->update;
    s->k = cfg->coder == 1 ? (size_t)cfg->k : 0;
    s->forget = cfg->forget;
    s->c_per_sample = cfg->mse_per_sample ? 1.0 : 1.0 / (double)d;
    s->lam_per_coef = cfg->mse_per_sample ? 0.5 : 0.5 * (double)d;
    int base = sp_learner_base_init(L, cfg, d, m, max_batch, total_steps);
    s->D = gsl_matrix_float_alloc(m, d);
    s->a = gsl_matrix_float_alloc(max_batch, m);
    s->r = gsl_matrix_float_alloc(max_batch, d);
    s->ad = gsl_matrix_alloc(max_batch, m);
    s->xd = gsl_matrix_alloc(max_batch, d);
    s->A = gsl_matrix_calloc(m, m);
    s->Bm = gsl_matrix_calloc(m, d);
    s->chol = s->update == 0 ? gsl_matrix_alloc(m, m) : NULL;
    s->Dw = gsl_matrix_alloc(m, d);
    s->wt = calloc(m, sizeof *s->wt);
    s->rn = malloc(max_batch * sizeof *s->rn);
    s->u = malloc(d * sizeof *s->u);
    s->gram = gsl_matrix_float_alloc(m, m);
    s->use = malloc(m * sizeof *s->use);
    s->flag = calloc(m, 1);
    if (base != 0 || !s->D || !s->a || !s->r || !s->ad || !s->xd || !s->A || !s->Bm ||
        (s->update == 0 && !s->chol) || !s->Dw || !s->wt || !s->rn || !s->u || !s->gram ||
        !s->use || !s->flag) {
        sp_err_set(err, "out of memory for a dl learner with %zu latents", m);
        dl_free(L);
        return NULL;
    }
    gaussian_unit_rows(s->D, rng);
    if (!(s->S = sp_solver_alloc(s->D, NULL, max_batch, err))) {
        dl_free(L);
        return NULL;
    }
    L->params = NULL;
    L->n_params = 0;
    L->decoder = s->D;
    L->decoder_grad = NULL;
    L->encoder = NULL;
    L->enc_rows = NULL;
    L->unit_norm = s->update == 0;
    return L;
}

/* -------------------------------------------------------------- common */

sp_learner *sp_dict_alloc(const sp_sae_cfg *cfg, const sp_penalty_cfg *pen, size_t d, size_t m,
                          size_t max_batch, long total_steps, gsl_rng *rng, sp_err *err)
{
    const char *bad = sp_sae_check(cfg, pen);
    if (!bad && d > 0 && m > 0)
        bad = sp_sae_check_latents(cfg, m, d);
    if (bad) {
        sp_err_set(err, "%s", bad);
        return NULL;
    }
    if (d == 0 || m == 0 || max_batch == 0) {
        sp_err_set(err, "%s learner: d = %zu, m = %zu and max_batch = %zu must be >= 1",
                   cfg->arch, d, m, max_batch);
        return NULL;
    }
    if (!strcmp(cfg->arch, "rica"))
        return rica_alloc(cfg, pen, d, m, max_batch, total_steps, rng, err);
    if (!strcmp(cfg->arch, "pca"))
        return pca_alloc(cfg, d, m, max_batch, total_steps, err);
    if (!strcmp(cfg->arch, "dl")) {
        if (cfg->coder != 0 && cfg->coder != 1) {
            sp_err_set(err, "model.coder = %d: allowed 0 (fista) or 1 (omp)", cfg->coder);
            return NULL;
        }
        if (cfg->update != 0 && cfg->update != 1) {
            sp_err_set(err, "model.update = %d: allowed 0 (mod) or 1 (online)", cfg->update);
            return NULL;
        }
        return dl_alloc(cfg, pen, d, m, max_batch, total_steps, rng, err);
    }
    sp_err_set(err, "model.arch = %s is not a dict.c learner (dl, rica, pca)", cfg->arch);
    return NULL;
}
