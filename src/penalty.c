/* penalty.c: sparsity penalties, REFERENCE.md 2. (Being extended: only l1
 * so far.) */
#include "superpose/penalty.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct sp_penalty {
    sp_penalty_cfg cfg;
    long total, t;
    double coef;
};

const char *sp_penalty_names(void) { return "l1, none"; }

const char *sp_penalty_check(const sp_penalty_cfg *c)
{
    if (strcmp(c->name, "l1") != 0 && strcmp(c->name, "none") != 0)
        return "train.penalty: unknown penalty (allowed: l1, none)";
    if (!(c->coef >= 0) || !isfinite(c->coef))
        return "train.coef must be a finite value >= 0";
    return NULL;
}

int sp_penalty_uses_dnorm(const sp_penalty_cfg *c) { (void)c; return 0; }
int sp_penalty_is_activation(const sp_penalty_cfg *c) { return strcmp(c->name, "none") != 0; }

sp_penalty *sp_penalty_alloc(const sp_penalty_cfg *cfg, long total_steps)
{
    sp_penalty *P = calloc(1, sizeof *P);
    if (!P)
        return NULL;
    P->cfg = *cfg;
    P->total = total_steps;
    P->coef = cfg->coef;
    return P;
}

void sp_penalty_free(sp_penalty *P) { free(P); }
void sp_penalty_set_step(sp_penalty *P, long t) { P->t = t; }
double sp_penalty_coef(const sp_penalty *P) { return P->coef; }
double sp_penalty_p(const sp_penalty *P) { (void)P; return 1; }

double sp_penalty_eval(sp_penalty *P, const float *F, size_t B, size_t m, size_t ld,
                       const float *dnorm, float *dF, float *ddnorm)
{
    (void)dnorm; (void)ddnorm;
    if (strcmp(P->cfg.name, "none") == 0)
        return 0;
    double s = P->coef / (double)B;
    if (P->cfg.per_latent)
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
