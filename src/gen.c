/* gen.c: ground-truth generators.
 *
 * sharkey: Sharkey, Braun & Millidge 2022, "Taking features out of
 * superposition with sparse autoencoders" (interim report), toy data;
 * REFERENCE.md 1.1.
 *   truth    g_i ~ N(0, I_d), g_i <- g_i / ||g_i||,            i = 0..n-1
 *   copula   z ~ N(0, C) per sample (C = I when uncorrelated),
 *            u_i = Phi(z_i)                   (uniform marginals)
 *   firing   p_i = u_i * lambda^i, rescaled per sample so that
 *            sum_i p_i = k, then clamped to [0, 1];
 *            feature i fires with probability p_i
 *   values   a_i ~ U[0, 1) when active, else 0
 *   input    x = sum_i a_i g_i + sigma * N(0, I_d)
 * The correlation matrix C: the public reimplementation draws a symmetric
 * matrix S = (U + U^T) / 2 with U_ij ~ U[0,1), shifts it by 1.001 |min
 * eigenvalue| when indefinite, and uses S as the covariance. Phi of a
 * variable whose variance is not 1 is not uniform, so we rescale S to unit
 * diagonal, C_ij = S_ij / sqrt(S_ii S_jj): same correlation structure,
 * uniform u_i, and the firing law above holds exactly. (The uncorrelated
 * variant draws u_i ~ U[0,1) directly, which is the same law.)
 * Choice recorded here and in the experiment file: the multiplicative form
 * u_i * lambda^i, rescaled per sample (REFERENCE.md 1.1). */
#include "superpose/gen.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_blas.h>
#include <gsl/gsl_eigen.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_randist.h>

struct sp_gen {
    sp_gen_cfg cfg;
    size_t max_batch;
    gsl_matrix_float *truth;   /* n x d */
    gsl_matrix *corr;          /* n x n correlation (correlated only) */
    gsl_matrix_float *chol_t;  /* n x n: L^T, so Z = E * L^T */
    gsl_matrix_float *e, *z;   /* max_batch x n scratch */
    float *probs;              /* max_batch x n */
    double *decay_pow;         /* n */
};

sp_codes *sp_codes_alloc(size_t max_rows, size_t cap)
{
    sp_codes *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->cap = cap;
    c->row = calloc(max_rows + 1, sizeof *c->row);
    c->idx = malloc((cap ? cap : 1) * sizeof *c->idx);
    c->val = malloc((cap ? cap : 1) * sizeof *c->val);
    if (!c->row || !c->idx || !c->val) {
        sp_codes_free(c);
        return NULL;
    }
    return c;
}

void sp_codes_free(sp_codes *c)
{
    if (!c)
        return;
    free(c->val);
    free(c->idx);
    free(c->row);
    free(c);
}

const char *sp_gen_check(const sp_gen_cfg *c)
{
    if (strcmp(c->generator, "sharkey") != 0)
        return "data.generator: unknown generator (allowed: sharkey)";
    if (c->d < 1)
        return "data.d must be >= 1";
    if (c->n < 1)
        return "data.n must be >= 1";
    if (!(c->k > 0) || c->k > c->n)
        return "data.k (mean active features) must be in (0, data.n]";
    if (!(c->decay > 0) || c->decay > 1)
        return "data.decay must be in (0, 1]";
    if (!(c->noise >= 0) || !isfinite(c->noise))
        return "data.noise must be a finite value >= 0";
    return NULL;
}

/* Random correlation matrix and its Cholesky factor (see header comment). */
static int make_correlation(sp_gen *g, gsl_rng *rng, sp_err *err)
{
    size_t n = (size_t)g->cfg.n;
    gsl_matrix *s = gsl_matrix_alloc(n, n);
    gsl_matrix *tmp = gsl_matrix_alloc(n, n);
    gsl_vector *eval = gsl_vector_alloc(n);
    gsl_eigen_symm_workspace *w = gsl_eigen_symm_alloc(n);
    g->corr = gsl_matrix_alloc(n, n);
    g->chol_t = gsl_matrix_float_alloc(n, n);
    int rc = -1;
    if (!s || !tmp || !eval || !w || !g->corr || !g->chol_t) {
        sp_err_set(err, "out of memory for a %zu x %zu correlation matrix", n, n);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            gsl_matrix_set(s, i, j, gsl_rng_uniform(rng));
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++) {
            double v = 0.5 * (gsl_matrix_get(s, i, j) + gsl_matrix_get(s, j, i));
            gsl_matrix_set(s, i, j, v);
            gsl_matrix_set(s, j, i, v);
        }
    gsl_matrix_memcpy(tmp, s);
    gsl_eigen_symm(tmp, eval, w);
    double min_eig = gsl_vector_min(eval);
    if (min_eig < 0)
        for (size_t i = 0; i < n; i++)
            gsl_matrix_set(s, i, i, gsl_matrix_get(s, i, i) - 1.001 * min_eig);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            gsl_matrix_set(g->corr, i, j,
                           gsl_matrix_get(s, i, j) /
                               sqrt(gsl_matrix_get(s, i, i) * gsl_matrix_get(s, j, j)));
    gsl_matrix_memcpy(tmp, g->corr);
    gsl_set_error_handler_off();
    if (gsl_linalg_cholesky_decomp1(tmp) != 0) {
        sp_err_set(err, "correlation matrix is not positive definite (n = %zu)", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) /* chol_t(j, i) = L(i, j), L lower */
            gsl_matrix_float_set(g->chol_t, j, i,
                                 j <= i ? (float)gsl_matrix_get(tmp, i, j) : 0.0f);
    rc = 0;
out:
    gsl_eigen_symm_free(w);
    gsl_vector_free(eval);
    gsl_matrix_free(tmp);
    gsl_matrix_free(s);
    return rc;
}

sp_gen *sp_gen_alloc(const sp_gen_cfg *cfg, size_t max_batch, gsl_rng *rng,
                     sp_err *err)
{
    const char *bad = sp_gen_check(cfg);
    if (bad) {
        sp_err_set(err, "%s", bad);
        return NULL;
    }
    sp_gen *g = calloc(1, sizeof *g);
    if (!g) {
        sp_err_set(err, "out of memory");
        return NULL;
    }
    g->cfg = *cfg;
    g->max_batch = max_batch;
    size_t n = (size_t)cfg->n, d = (size_t)cfg->d;
    g->truth = gsl_matrix_float_alloc(n, d);
    g->probs = malloc(max_batch * n * sizeof *g->probs);
    g->decay_pow = malloc(n * sizeof *g->decay_pow);
    if (cfg->correlated) {
        g->e = gsl_matrix_float_alloc(max_batch, n);
        g->z = gsl_matrix_float_alloc(max_batch, n);
    }
    if (!g->truth || !g->probs || !g->decay_pow ||
        (cfg->correlated && (!g->e || !g->z))) {
        sp_err_set(err, "out of memory for generator (n = %zu, d = %zu)", n, d);
        sp_gen_free(g);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        double norm2 = 0;
        float *row = gsl_matrix_float_ptr(g->truth, i, 0);
        for (size_t j = 0; j < d; j++) {
            double v = gsl_ran_gaussian_ziggurat(rng, 1.0);
            row[j] = (float)v;
            norm2 += v * v;
        }
        float inv = (float)(1.0 / sqrt(norm2));
        for (size_t j = 0; j < d; j++)
            row[j] *= inv;
        g->decay_pow[i] = pow(cfg->decay, (double)i);
    }
    if (cfg->correlated && make_correlation(g, rng, err) != 0) {
        sp_gen_free(g);
        return NULL;
    }
    return g;
}

void sp_gen_free(sp_gen *g)
{
    if (!g)
        return;
    free(g->decay_pow);
    free(g->probs);
    gsl_matrix_float_free(g->z);
    gsl_matrix_float_free(g->e);
    gsl_matrix_float_free(g->chol_t);
    gsl_matrix_free(g->corr);
    gsl_matrix_float_free(g->truth);
    free(g);
}

const gsl_matrix_float *sp_gen_truth(const sp_gen *g) { return g->truth; }
const float *sp_gen_last_probs(const sp_gen *g) { return g->probs; }
const gsl_matrix *sp_gen_correlation(const sp_gen *g) { return g->corr; }

/* Fills u (B x n) with Phi(z), z ~ N(0, C), or with U[0,1) if uncorrelated. */
static void draw_uniforms(sp_gen *g, gsl_rng *rng, size_t B)
{
    size_t n = (size_t)g->cfg.n;
    if (!g->cfg.correlated) {
        for (size_t t = 0; t < B * n; t++)
            g->probs[t] = (float)gsl_rng_uniform(rng);
        return;
    }
    gsl_matrix_float_view e = gsl_matrix_float_submatrix(g->e, 0, 0, B, n);
    gsl_matrix_float_view z = gsl_matrix_float_submatrix(g->z, 0, 0, B, n);
    for (size_t b = 0; b < B; b++) {
        float *row = gsl_matrix_float_ptr(g->e, b, 0);
        for (size_t i = 0; i < n; i++)
            row[i] = (float)gsl_ran_gaussian_ziggurat(rng, 1.0);
    }
    /* Z = E L^T: each row z = L e has covariance L L^T = C. */
    gsl_blas_sgemm(CblasNoTrans, CblasNoTrans, 1.0f, &e.matrix, g->chol_t,
                   0.0f, &z.matrix);
    for (size_t b = 0; b < B; b++) {
        const float *zr = gsl_matrix_float_const_ptr(g->z, b, 0);
        float *pr = g->probs + b * n;
        for (size_t i = 0; i < n; i++)
            pr[i] = (float)(0.5 * erfc(-(double)zr[i] * M_SQRT1_2));
    }
}

void sp_gen_batch(sp_gen *g, gsl_rng *rng, size_t B, sp_codes *codes,
                  gsl_matrix_float *x)
{
    size_t n = (size_t)g->cfg.n, d = (size_t)g->cfg.d;
    if (B > g->max_batch)
        B = g->max_batch;
    draw_uniforms(g, rng, B);
    size_t nnz = 0;
    if (codes)
        codes->rows = B;
    for (size_t b = 0; b < B; b++) {
        float *p = g->probs + b * n;
        double sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += (double)p[i] * g->decay_pow[i];
        double scale = sum > 0 ? g->cfg.k / sum : 0;
        float *xr = gsl_matrix_float_ptr(x, b, 0);
        memset(xr, 0, d * sizeof *xr);
        if (codes)
            codes->row[b] = nnz;
        for (size_t i = 0; i < n; i++) {
            double pi = (double)p[i] * g->decay_pow[i] * scale;
            if (pi > 1)
                pi = 1;
            p[i] = (float)pi;
            if (gsl_rng_uniform(rng) >= pi)
                continue;
            float a = (float)gsl_rng_uniform(rng);
            const float *gi = gsl_matrix_float_const_ptr(g->truth, i, 0);
            for (size_t j = 0; j < d; j++)
                xr[j] += a * gi[j];
            if (codes && nnz < codes->cap) {
                codes->idx[nnz] = (uint32_t)i;
                codes->val[nnz] = a;
                nnz++;
            }
        }
        if (g->cfg.noise > 0)
            for (size_t j = 0; j < d; j++)
                xr[j] += (float)gsl_ran_gaussian_ziggurat(rng, g->cfg.noise);
    }
    if (codes) {
        codes->row[B] = nnz;
        codes->nnz = nnz;
    }
}
