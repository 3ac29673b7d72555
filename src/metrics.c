/* metrics.c: recovery and reconstruction metrics, REFERENCE.md 4.
 *
 * MMCS (mean max cosine similarity), Sharkey, Braun & Millidge 2022:
 *   MMCS(A, B) = (1/|A|) sum_{a in A} max_{b in B} <a, b> / (|a| |b|)
 * (signed cosine, as in their code: features and codes are non-negative).
 * Used truth -> decoder (recovery), decoder -> truth (reverse), and
 * smaller -> next larger learned dictionary.
 * Dead latents: never active over the evaluation window (Sharkey et al.
 * count a latent dead when its mean activation over the window is 0).
 * L0: mean number of non-zero codes per sample.
 * MSE = SSE / (N d), SSE = sum_b ||x_hat_b - x_b||^2.
 * FVE = 1 - SSE / SST, SST = sum_b ||x_b - xbar||^2 with xbar the window
 * mean; computed as SST = sum ||x||^2 - N ||xbar||^2 in double.
 * Support precision and recall (issue 5, REFERENCE.md 3: "does ITO select
 * features better, or only rescale them"): each latent stands for the truth
 * feature its decoder row is most similar to (cosine); precision is the
 * fraction of active codes whose feature is truly active on the sample,
 * recall the fraction of truly active features with an active latent
 * standing for them, pooled over the window (micro averages). */
#include "superpose/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_blas.h>

gsl_matrix_float *sp_unit_rows(const gsl_matrix_float *a)
{
    gsl_matrix_float *u = gsl_matrix_float_alloc(a->size1, a->size2);
    if (!u)
        return NULL;
    for (size_t i = 0; i < a->size1; i++) {
        const float *src = gsl_matrix_float_const_ptr(a, i, 0);
        float *dst = gsl_matrix_float_ptr(u, i, 0);
        double n2 = 0;
        for (size_t j = 0; j < a->size2; j++)
            n2 += (double)src[j] * src[j];
        double inv = n2 > 0 ? 1.0 / sqrt(n2) : 0.0;
        for (size_t j = 0; j < a->size2; j++)
            dst[j] = (float)(src[j] * inv);
    }
    return u;
}

double sp_cos(const float *a, const float *b, size_t d)
{
    double ab = 0, aa = 0, bb = 0;
    for (size_t k = 0; k < d; k++) {
        ab += (double)a[k] * b[k];
        aa += (double)a[k] * a[k];
        bb += (double)b[k] * b[k];
    }
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0.0;
}

double sp_metric_mmcs(const gsl_matrix_float *a, const gsl_matrix_float *b,
                      double *best)
{
    if (!a || !b || a->size1 == 0 || b->size1 == 0 || a->size2 != b->size2)
        return NAN;
    const size_t block = 256;
    size_t na = a->size1, nb = b->size1;
    gsl_matrix_float *ua = sp_unit_rows(a), *ub = sp_unit_rows(b);
    gsl_matrix_float *c = gsl_matrix_float_alloc(na < block ? na : block, nb);
    double total = NAN;
    if (ua && ub && c) {
        total = 0;
        for (size_t i0 = 0; i0 < na; i0 += block) {
            size_t k = na - i0 < block ? na - i0 : block;
            gsl_matrix_float_const_view av =
                gsl_matrix_float_const_submatrix(ua, i0, 0, k, a->size2);
            gsl_matrix_float_view cv = gsl_matrix_float_submatrix(c, 0, 0, k, nb);
            gsl_blas_sgemm(CblasNoTrans, CblasTrans, 1.0f, &av.matrix, ub, 0.0f,
                           &cv.matrix);
            for (size_t i = 0; i < k; i++) {
                const float *row = gsl_matrix_float_const_ptr(&cv.matrix, i, 0);
                float mx = row[0];
                for (size_t j = 1; j < nb; j++)
                    mx = row[j] > mx ? row[j] : mx;
                /* rounding can push a perfect match a hair above 1 */
                double v = mx > 1.0f ? 1.0 : (double)mx;
                if (best)
                    best[i0 + i] = v;
                total += v;
            }
        }
        total /= (double)na;
    }
    gsl_matrix_float_free(c);
    gsl_matrix_float_free(ub);
    gsl_matrix_float_free(ua);
    return total;
}

sp_recon_acc *sp_recon_acc_alloc(size_t d, size_t m)
{
    sp_recon_acc *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->d = d;
    a->m = m;
    a->sum_x = calloc(d, sizeof *a->sum_x);
    a->fires = calloc(m, sizeof *a->fires);
    if (!a->sum_x || !a->fires) {
        sp_recon_acc_free(a);
        return NULL;
    }
    return a;
}

void sp_recon_acc_free(sp_recon_acc *a)
{
    if (!a)
        return;
    free(a->fires);
    free(a->sum_x);
    free(a);
}

void sp_recon_acc_add(sp_recon_acc *a, const gsl_matrix_float *x,
                      const gsl_matrix_float *xhat, const gsl_matrix_float *f)
{
    size_t B = x->size1;
    for (size_t b = 0; b < B; b++) {
        const float *xr = gsl_matrix_float_const_ptr(x, b, 0);
        const float *hr = gsl_matrix_float_const_ptr(xhat, b, 0);
        double se = 0, x2 = 0;
        for (size_t j = 0; j < a->d; j++) {
            double e = (double)hr[j] - xr[j];
            se += e * e;
            x2 += (double)xr[j] * xr[j];
            a->sum_x[j] += xr[j];
        }
        a->sse += se;
        a->sum_x2 += x2;
        const float *fr = gsl_matrix_float_const_ptr(f, b, 0);
        size_t on = 0;
        for (size_t i = 0; i < a->m; i++) {
            int fired = fr[i] != 0;
            on += (size_t)fired;
            a->fires[i] += (size_t)fired;
        }
        a->active += (double)on;
    }
    a->n += B;
}

void sp_recon_acc_finish(const sp_recon_acc *a, sp_recon_stats *out)
{
    double n = (double)a->n;
    double mean2 = 0;
    for (size_t j = 0; j < a->d; j++)
        mean2 += (a->sum_x[j] / n) * (a->sum_x[j] / n);
    double sst = a->sum_x2 - n * mean2;
    out->mse = a->sse / (n * (double)a->d);
    out->fve = sst > 0 ? 1.0 - a->sse / sst : NAN;
    out->l0 = a->active / n;
    out->dead = 0;
    for (size_t i = 0; i < a->m; i++)
        out->dead += a->fires[i] == 0;
}

int sp_metric_best_match(const gsl_matrix_float *dec, const gsl_matrix_float *truth,
                         size_t *match, double *cos)
{
    if (!dec || !truth || dec->size1 == 0 || truth->size1 == 0 || dec->size2 != truth->size2)
        return -1;
    const size_t block = 256;
    size_t m = dec->size1, n = truth->size1;
    gsl_matrix_float *ud = sp_unit_rows(dec), *ut = sp_unit_rows(truth);
    gsl_matrix_float *c = gsl_matrix_float_alloc(m < block ? m : block, n);
    int rc = -1;
    if (ud && ut && c) {
        for (size_t i0 = 0; i0 < m; i0 += block) {
            size_t k = m - i0 < block ? m - i0 : block;
            gsl_matrix_float_const_view dv =
                gsl_matrix_float_const_submatrix(ud, i0, 0, k, dec->size2);
            gsl_matrix_float_view cv = gsl_matrix_float_submatrix(c, 0, 0, k, n);
            gsl_blas_sgemm(CblasNoTrans, CblasTrans, 1.0f, &dv.matrix, ut, 0.0f, &cv.matrix);
            for (size_t i = 0; i < k; i++) {
                const float *row = gsl_matrix_float_const_ptr(&cv.matrix, i, 0);
                size_t arg = 0;
                for (size_t j = 1; j < n; j++)
                    arg = row[j] > row[arg] ? j : arg;
                match[i0 + i] = arg;
                if (cos)
                    cos[i0 + i] = row[arg];
            }
        }
        rc = 0;
    }
    gsl_matrix_float_free(c);
    gsl_matrix_float_free(ut);
    gsl_matrix_float_free(ud);
    return rc;
}

sp_support_acc *sp_support_acc_alloc(const size_t *match, size_t m, size_t n_truth)
{
    sp_support_acc *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->m = m;
    a->n_truth = n_truth;
    a->match = match;
    a->stamp = calloc(n_truth, sizeof *a->stamp);
    a->cover = calloc(n_truth, sizeof *a->cover);
    if (!a->stamp || !a->cover) {
        sp_support_acc_free(a);
        return NULL;
    }
    return a;
}

void sp_support_acc_free(sp_support_acc *a)
{
    if (!a)
        return;
    free(a->cover);
    free(a->stamp);
    free(a);
}

void sp_support_acc_add(sp_support_acc *a, const gsl_matrix_float *f, const size_t *row,
                        const uint32_t *idx)
{
    for (size_t b = 0; b < f->size1; b++) {
        size_t s = ++a->sample; /* stamps start at 1: calloc'ed 0 never matches */
        for (size_t t = row[b]; t < row[b + 1]; t++)
            a->stamp[idx[t]] = s;
        a->truth_on += (double)(row[b + 1] - row[b]);
        const float *fr = gsl_matrix_float_const_ptr(f, b, 0);
        for (size_t i = 0; i < a->m; i++) {
            if (fr[i] == 0)
                continue;
            size_t t = a->match[i];
            a->active += 1;
            if (a->stamp[t] == s) {
                a->hit += 1;
                if (a->cover[t] != s) {
                    a->cover[t] = s;
                    a->covered += 1;
                }
            }
        }
    }
}

void sp_support_acc_finish(const sp_support_acc *a, double *precision, double *recall,
                           double *f1)
{
    double p = a->active > 0 ? a->hit / a->active : NAN;
    double r = a->truth_on > 0 ? a->covered / a->truth_on : NAN;
    *precision = p;
    *recall = r;
    *f1 = p + r > 0 ? 2 * p * r / (p + r) : (isnan(p) || isnan(r) ? NAN : 0.0);
}
