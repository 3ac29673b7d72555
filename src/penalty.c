/* penalty.c: sparsity penalties, REFERENCE.md 2.
 *
 *   P(F) = alpha * s * (1/B) sum_{b,i} phi(f_bi),  s = 1 or 1/m
 *   l1: phi(a) = |a|, dphi/da = sign(a)   (Sharkey et al. 2022)
 * The 1/m option follows the public reimplementation of Sharkey et al.,
 * which divides the L1 term by the dictionary size. */
#include "superpose/penalty.h"

#include <math.h>
#include <string.h>

const char *sp_penalty_check(const sp_penalty_cfg *c)
{
    if (strcmp(c->name, "l1") != 0)
        return "train.penalty: unknown penalty (allowed: l1)";
    if (!(c->coef >= 0) || !isfinite(c->coef))
        return "train.l1 must be a finite value >= 0";
    return NULL;
}

double sp_penalty_eval(const sp_penalty_cfg *c, const float *F, size_t B,
                       size_t m, size_t ld, float *dF)
{
    double s = c->coef / (double)B;
    if (c->per_latent)
        s /= (double)m;
    double total = 0;
    float gs = (float)s;
    for (size_t b = 0; b < B; b++) {
        const float *f = F + b * ld;
        float acc = 0;
        for (size_t i = 0; i < m; i++)
            acc += fabsf(f[i]);
        total += acc;
        if (dF) {
            float *g = dF + b * ld;
            for (size_t i = 0; i < m; i++)
                g[i] += f[i] > 0 ? gs : (f[i] < 0 ? -gs : 0.0f);
        }
    }
    return s * total;
}
