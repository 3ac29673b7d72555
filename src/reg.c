/* reg.c: extra regularisers and dead-latent resampling (REFERENCE.md 2).
 *
 * Decoder orthogonality (sp_reg_orth), the restricted-isometry / "decoder
 * orthogonality" penalty of the SAE literature, on the m rows w_i of W
 * (m x d, rows of any norm):
 *   u_i = w_i / |w_i|,  C = U U^T,  R = lambda sum_{i != j} C_ij^2
 *   dR/du_i = 4 lambda sum_{j != i} C_ij u_j        (C_ij and C_ji both hold u_i)
 *   dR/dw_i = (I - u_i u_i^T) dR/du_i / |w_i|        (chain through u = w/|w|)
 * The diagonal is taken as exactly 1 (left out of R and of the gradient),
 * not as the rounded float C_ii. A zero row has cos 0 with every row and
 * gradient 0. C is never formed whole: for each block of BLOCK rows,
 * C_blk = U_blk U^T (sgemm, bs x m), its off-diagonal squares summed in
 * double, diagonal zeroed, then G_blk = C_blk U (sgemm, bs x d). Memory is
 * O(bs m + m d) instead of O(m^2): m = 16384 latents would need 1 GiB for C.
 *
 * Pre-activation spread (sp_reg_prestd), on pre-activations P (B x m):
 *   mu_b = (1/m) sum_i P_bi,  var_b = (1/m) sum_i (P_bi - mu_b)^2
 *   R = lambda (1/B) sum_b sqrt(var_b + 1e-8)
 *   dR/dP_bi = lambda / B * (P_bi - mu_b) / (m sqrt(var_b + 1e-8))
 * (the mu_b term of the chain rule vanishes: sum_i (P_bi - mu_b) = 0).
 *
 * Resampling (sp_resample): Bricken et al. 2023, "Towards Monosemanticity",
 * appendix "Neuron Resampling". For each dead latent, draw an input n with
 * probability loss_n^2 / sum loss^2 (uniform if every loss is 0), set its
 * decoder row to normalise(x_n - b_d) and its encoder row to that direction
 * times 0.2 x the mean encoder row norm of the alive latents; bias 0 and
 * optimizer state reset are the learner's reinit. */
#include "superpose/sae.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_cblas.h>

enum { BLOCK = 256, RESAMPLE_TRIES = 8 };

static size_t orth_block(size_t m) { return m < BLOCK ? m : BLOCK; }

/* U (m x d) + C block (bs x m) + G block (bs x d) + norms (m). */
size_t sp_reg_orth_ws_size(size_t m, size_t d)
{
    size_t bs = orth_block(m);
    size_t n = m * d + bs * m + bs * d + m;
    return n ? n : 1;
}

/* W: (m, d), gW: (m, d) or NULL, ws: sp_reg_orth_ws_size(m, d) floats. */
double sp_reg_orth(const gsl_matrix_float *W, double lambda, gsl_matrix_float *gW, float *ws)
{
    size_t m = W->size1, d = W->size2, bs = orth_block(m);
    if (m < 2 || d == 0)
        return 0;
    float *U = ws, *C = U + m * d, *G = C + bs * m, *nrm = G + bs * d;
    for (size_t i = 0; i < m; i++) {
        const float *w = gsl_matrix_float_const_ptr(W, i, 0);
        double n2 = 0;
        for (size_t q = 0; q < d; q++)
            n2 += (double)w[q] * w[q];
        nrm[i] = (float)sqrt(n2);
        float inv = n2 > 0 ? (float)(1.0 / sqrt(n2)) : 0.0f;
        for (size_t q = 0; q < d; q++)
            U[i * d + q] = w[q] * inv;
    }
    double sum = 0;
    for (size_t r0 = 0; r0 < m; r0 += bs) {
        size_t nb = m - r0 < bs ? m - r0 : bs;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)m, (int)d, 1.0f,
                    U + r0 * d, (int)d, U, (int)d, 0.0f, C, (int)m);
        for (size_t r = 0; r < nb; r++) {
            float *c = C + r * m;
            c[r0 + r] = 0;
            double s = 0;
            for (size_t j = 0; j < m; j++)
                s += (double)c[j] * c[j];
            sum += s;
        }
        if (!gW)
            continue;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nb, (int)d, (int)m, 1.0f, C,
                    (int)m, U, (int)d, 0.0f, G, (int)d);
        for (size_t r = 0; r < nb; r++) {
            size_t i = r0 + r;
            if (nrm[i] == 0)
                continue;
            const float *u = U + i * d, *g = G + r * d;
            double ug = 0;
            for (size_t q = 0; q < d; q++)
                ug += (double)u[q] * g[q];
            double s = 4.0 * lambda / nrm[i];
            float *gw = gsl_matrix_float_ptr(gW, i, 0);
            for (size_t q = 0; q < d; q++)
                gw[q] += (float)(s * (g[q] - ug * u[q]));
        }
    }
    return lambda * sum;
}

/* P: (B, m) with row stride ld, dP: same layout or NULL. */
double sp_reg_prestd(const float *P, size_t B, size_t m, size_t ld, double lambda, float *dP)
{
    if (B == 0 || m == 0)
        return 0;
    double total = 0;
    for (size_t b = 0; b < B; b++) {
        const float *p = P + b * ld;
        double mu = 0;
        for (size_t i = 0; i < m; i++)
            mu += p[i];
        mu /= (double)m;
        double var = 0;
        for (size_t i = 0; i < m; i++)
            var += ((double)p[i] - mu) * ((double)p[i] - mu);
        var /= (double)m;
        double sd = sqrt(var + 1e-8);
        total += sd;
        if (dP) {
            double s = lambda / ((double)B * (double)m * sd);
            float *dp = dP + b * ld;
            for (size_t i = 0; i < m; i++)
                dp[i] += (float)(s * ((double)p[i] - mu));
        }
    }
    return lambda * total / (double)B;
}

/* Index of the first cum[n] > u, cum non-decreasing, u < cum[N-1]. */
static size_t cum_search(const double *cum, size_t N, double u)
{
    size_t lo = 0, hi = N - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cum[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Inputs are drawn with replacement (independent draws), so one high-loss
 * input may seed several dead latents. Non-finite losses get weight 0 (a
 * diverged sample is not a direction worth learning); if every weight is 0
 * (or their sum overflows) inputs are drawn uniformly. If no latent is
 * alive (or the learner has no enc_rows) the mean alive norm is taken as
 * 1, so encoder rows get norm 0.2. Dead indices >= m are ignored, repeated
 * ones reinitialised once. A latent whose RESAMPLE_TRIES draws all give
 * x_n = b_d is left as it is. Runs once every few thousand steps, so it
 * mallocs its scratch (dead marks, cumulative weights, the direction)
 * instead of taking a workspace; out of memory: returns 0. */
size_t sp_resample(sp_learner *L, sp_optim *opt, const size_t *dead, size_t n_dead,
                   const gsl_matrix_float *X, const double *loss, const float *bd,
                   gsl_rng *rng)
{
    size_t m = L->m, N = X->size1, d = X->size2, done = 0;
    if (n_dead == 0 || N == 0 || m == 0)
        return 0;
    unsigned char *mark = calloc(m, 1);
    double *cum = malloc(N * sizeof *cum);
    float *dir = malloc((d ? d : 1) * sizeof *dir);
    if (!mark || !cum || !dir)
        goto out;
    for (size_t k = 0; k < n_dead; k++)
        if (dead[k] < m)
            mark[dead[k]] = 1;

    double alive_sum = 0;
    size_t n_alive = 0;
    if (L->enc_rows)
        for (size_t i = 0; i < m && i < L->enc_rows->size1; i++) {
            if (mark[i])
                continue;
            const float *e = gsl_matrix_float_const_ptr(L->enc_rows, i, 0);
            double n2 = 0;
            for (size_t q = 0; q < L->enc_rows->size2; q++)
                n2 += (double)e[q] * e[q];
            alive_sum += sqrt(n2);
            n_alive++;
        }
    double enc_norm = 0.2 * (n_alive ? alive_sum / (double)n_alive : 1.0);

    double total = 0;
    for (size_t n = 0; n < N; n++) {
        double l = loss[n];
        if (isfinite(l))
            total += l * l;
        cum[n] = total;
    }
    int uniform = !(total > 0) || !isfinite(total);

    for (size_t k = 0; k < n_dead; k++) {
        size_t i = dead[k];
        if (i >= m || !mark[i])
            continue;
        mark[i] = 0; /* reinitialise a repeated index once */
        for (int t = 0; t < RESAMPLE_TRIES; t++) {
            size_t n = uniform ? gsl_rng_uniform_int(rng, N)
                               : cum_search(cum, N, gsl_rng_uniform(rng) * total);
            const float *x = gsl_matrix_float_const_ptr(X, n, 0);
            double n2 = 0;
            for (size_t q = 0; q < d; q++) {
                double v = (double)x[q] - (bd ? bd[q] : 0.0);
                dir[q] = (float)v;
                n2 += v * v;
            }
            if (!(n2 > 0))
                continue;
            double inv = 1.0 / sqrt(n2);
            for (size_t q = 0; q < d; q++)
                dir[q] = (float)(dir[q] * inv);
            L->ops->reinit(L, opt, i, dir, (float)enc_norm);
            done++;
            break;
        }
    }
out:
    free(dir);
    free(cum);
    free(mark);
    return done;
}
