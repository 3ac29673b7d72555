/* penalty.c: sparsity penalties on latent activations (REFERENCE.md 2).
 *
 *   P(F) = coef_t * s * (1/B) sum_b sum_i phi(|f_bi|, n_i),  n_i = ||d_i||
 *   dP/df_bi = coef_t * s / B * phi'(|f_bi|) * sign(f_bi)
 * s = 1/m with per_latent (train.coef_scale = dict), else 1.
 *
 *   l1        phi = a                        phi' = 1      Sharkey et al. 2022
 *   cauchy    phi = log(1 + (a/s)^2)         phi' = 2a / (s^2 + a^2)
 *   lp        phi = (a + eps)^p - eps^p      phi' = p (a + eps)^(p-1)
 *   log       phi = log(1 + a/eps)           phi' = 1 / (eps + a)
 *   tanh      phi = tanh(c a n)              phi' = c n (1 - tanh^2),
 *                                            dphi/dn = c a (1 - tanh^2)
 *             (Anthropic circuits updates 2024)
 *   l1_dnorm  phi = a n                      phi' = n, dphi/dn = a
 *             (Anthropic circuits updates, April 2024)
 *   panneal   lp with p_t = 1 + (p_end - 1) clamp((t - t0) / (T - t0), 0, 1),
 *             t0 = anneal_start T (Karvonen et al. 2024, "Measuring progress
 *             in dictionary learning for language model interpretability
 *             with board game models"); when the p of an evaluation differs
 *             from the p of the previous one, the coefficient is first
 *             multiplied by sum phi_{p_old}(F) / sum phi_{p_new}(F) on the
 *             batch being evaluated, so P is continuous across the change.
 *   l0, none  nothing here (JumpReLU's L0 is evaluated by its learner,
 *             which reads sp_penalty_coef).
 * The list of penalties follows REFERENCE.md section 2.
 *
 * Warm-up (all penalties, l0 included): coef_t = coef * min(1, (t+1)/warmup).
 *
 * At a = 0 the sign is 0: l1 and l1_dnorm get the zero subgradient; the
 * others get the one-sided derivative phi'(0+), finite for all of them
 * (lp: p eps^(p-1), log: 1/eps, tanh: c n, cauchy: 0). For ReLU-type
 * activations the caller masks f = 0 anyway.
 *
 * Elements are computed in float32 (log1pf/powf/tanhf), sums in double.
 * log1pf rather than logf(1 + x) keeps cauchy and log accurate for small a.
 */
#include "superpose/penalty.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kind { K_L1, K_CAUCHY, K_LP, K_LOG, K_TANH, K_L1_DNORM, K_PANNEAL, K_L0, K_NONE };

static const char *const names[] = {"l1",       "cauchy",  "lp", "log", "tanh",
                                    "l1_dnorm", "panneal", "l0", "none"};
#define NKIND (sizeof names / sizeof names[0])

struct sp_penalty {
    sp_penalty_cfg cfg;
    enum kind kind;
    long total, t;
    double base;      /* coef times every p-annealing rescale so far */
    double p;         /* p of the current step */
    float epsp;       /* eps^p */
    int evaluated;    /* 1 once an evaluation happened (p_last is valid) */
    double p_last;    /* p of the previous evaluation */
    float epsp_last;  /* eps^p_last */
};

static int kind_of(const char *name)
{
    for (size_t k = 0; k < NKIND; k++)
        if (strcmp(name, names[k]) == 0)
            return (int)k;
    return -1;
}

const char *sp_penalty_names(void)
{
    return "l1, cauchy, lp, log, tanh, l1_dnorm, panneal, l0, none";
}

static _Thread_local char msg[256];

static const char *bad(const char *key, double v, const char *what)
{
    snprintf(msg, sizeof msg, "train.%s = %g: %s", key, v, what);
    return msg;
}

const char *sp_penalty_check(const sp_penalty_cfg *c)
{
    int k = kind_of(c->name);
    if (k < 0) {
        snprintf(msg, sizeof msg, "train.penalty = %.*s: unknown penalty (valid: %s)",
                 (int)sizeof c->name, c->name, sp_penalty_names());
        return msg;
    }
    if (!(c->coef >= 0) || !isfinite(c->coef))
        return bad("coef", c->coef, "must be finite and >= 0 (the penalty coefficient)");
    if (c->warmup < 0)
        return bad("coef_warmup", (double)c->warmup,
                   "must be >= 0 (steps of linear coefficient warm-up, 0: none)");
    if (k == K_CAUCHY && !(c->scale > 0 && isfinite(c->scale)))
        return bad("scale", c->scale, "must be finite and > 0 (the Cauchy scale s)");
    if (k == K_LP && !(c->p > 0 && c->p <= 1))
        return bad("p", c->p, "must be in (0, 1] (the Lp exponent)");
    if (k == K_PANNEAL && !(c->p_end > 0 && c->p_end <= 1))
        return bad("p_end", c->p_end, "must be in (0, 1] (the final Lp exponent)");
    if (k == K_PANNEAL && !(c->anneal_start >= 0 && c->anneal_start < 1))
        return bad("anneal_start", c->anneal_start,
                   "must be in [0, 1) (the fraction of training before p moves)");
    if ((k == K_LP || k == K_LOG || k == K_PANNEAL) && !(c->eps > 0 && isfinite(c->eps)))
        return bad("pen_eps", c->eps, "must be finite and > 0 (the penalty's epsilon)");
    if (k == K_TANH && !(c->c > 0 && isfinite(c->c)))
        return bad("tanh_c", c->c, "must be finite and > 0 (the tanh sharpness c)");
    return NULL;
}

int sp_penalty_uses_dnorm(const sp_penalty_cfg *c)
{
    int k = kind_of(c->name);
    return k == K_TANH || k == K_L1_DNORM;
}

int sp_penalty_is_activation(const sp_penalty_cfg *c)
{
    int k = kind_of(c->name);
    return k >= 0 && k != K_L0 && k != K_NONE;
}

/* p at step t: 1 for everything but lp and panneal. */
static double p_at(const sp_penalty *P, long t)
{
    if (P->kind == K_LP)
        return P->cfg.p;
    if (P->kind != K_PANNEAL)
        return 1;
    double T = (double)P->total, t0 = P->cfg.anneal_start * T, x = (double)t - t0;
    if (x <= 0)
        return 1;
    if (x >= T - t0)
        return P->cfg.p_end; /* exactly p_end, not 1 + (p_end - 1) rounded */
    return 1 + (P->cfg.p_end - 1) * (x / (T - t0));
}

void sp_penalty_set_step(sp_penalty *P, long t)
{
    P->t = t;
    double p = p_at(P, t);
    if (p != P->p) {
        P->p = p;
        P->epsp = powf((float)P->cfg.eps, (float)p);
    }
}

sp_penalty *sp_penalty_alloc(const sp_penalty_cfg *cfg, long total_steps)
{
    if (sp_penalty_check(cfg))
        return NULL;
    sp_penalty *P = calloc(1, sizeof *P);
    if (!P)
        return NULL;
    P->cfg = *cfg;
    P->kind = (enum kind)kind_of(cfg->name);
    P->total = total_steps;
    P->base = cfg->coef;
    P->p = p_at(P, 0);
    P->epsp = powf((float)cfg->eps, (float)P->p);
    return P;
}

void sp_penalty_free(sp_penalty *P) { free(P); }

double sp_penalty_coef(const sp_penalty *P)
{
    long w = P->cfg.warmup;
    if (w > 0 && P->t + 1 < w)
        return P->base * ((double)(P->t + 1) / (double)w);
    return P->base;
}

double sp_penalty_p(const sp_penalty *P) { return P->p; }

/* One row segment of n latents. f: (n); dn: (n) decoder norms (NULL: all 1);
 * g: (n) or NULL, gets gs * dphi/df added; dacc: (n) or NULL, gets
 * dphi/dn added (unscaled). p, epsp: exponent for lp/panneal. Returns
 * sum_i phi(|f_i|). */
static double row(const sp_penalty *P, const float *f, size_t n, const float *dn, float *g,
                  float gs, double *dacc, float p, float epsp)
{
    double acc = 0;
    switch (P->kind) {
    case K_L1:
        for (size_t i = 0; i < n; i++) {
            float x = f[i];
            acc += fabsf(x);
            if (g)
                g[i] += x > 0 ? gs : (x < 0 ? -gs : 0.0f);
        }
        break;
    case K_CAUCHY: {
        float s = (float)P->cfg.scale, inv = 1.0f / s, s2 = s * s;
        for (size_t i = 0; i < n; i++) {
            float x = f[i], q = x * inv;
            acc += log1pf(q * q);
            if (g)
                g[i] += gs * (2.0f * x / (s2 + x * x)); /* sign carried by x */
        }
        break;
    }
    case K_LP:
    case K_PANNEAL: {
        float eps = (float)P->cfg.eps;
        for (size_t i = 0; i < n; i++) {
            float x = f[i], u = fabsf(x) + eps, pw = powf(u, p);
            acc += pw - epsp;
            if (g) {
                float d = gs * p * pw / u;
                g[i] += x < 0 ? -d : d;
            }
        }
        break;
    }
    case K_LOG: {
        float eps = (float)P->cfg.eps, inv = 1.0f / eps;
        for (size_t i = 0; i < n; i++) {
            float x = f[i], a = fabsf(x);
            acc += log1pf(a * inv);
            if (g) {
                float d = gs / (eps + a);
                g[i] += x < 0 ? -d : d;
            }
        }
        break;
    }
    case K_TANH: {
        float c = (float)P->cfg.c;
        for (size_t i = 0; i < n; i++) {
            float x = f[i], a = fabsf(x), nn = dn ? dn[i] : 1.0f;
            float th = tanhf(c * a * nn), sech2 = 1.0f - th * th;
            acc += th;
            if (g) {
                float d = gs * c * nn * sech2;
                g[i] += x < 0 ? -d : d;
            }
            if (dacc)
                dacc[i] += c * a * sech2;
        }
        break;
    }
    case K_L1_DNORM:
        for (size_t i = 0; i < n; i++) {
            float x = f[i], a = fabsf(x), nn = dn ? dn[i] : 1.0f;
            acc += a * nn;
            if (g)
                g[i] += x > 0 ? gs * nn : (x < 0 ? -gs * nn : 0.0f);
            if (dacc)
                dacc[i] += a;
        }
        break;
    case K_L0:
    case K_NONE:
        break;
    }
    return acc;
}

/* Row b of F: dense (F + b ld, m entries) or compressed (F + ptr[b],
 * ptr[b + 1] - ptr[b] entries) when ptr is not NULL. */
static size_t row_at(const size_t *ptr, size_t b, size_t m, size_t ld, size_t *len)
{
    *len = ptr ? ptr[b + 1] - ptr[b] : m;
    return ptr ? ptr[b] : b * ld;
}

/* sum_b sum_i phi(|f_bi|) at exponent p, for the p-annealing rescale. */
static double lp_sum(const sp_penalty *P, const float *F, const size_t *ptr, size_t B, size_t m,
                     size_t ld, float p, float epsp)
{
    double total = 0;
    for (size_t b = 0; b < B; b++) {
        size_t n, at = row_at(ptr, b, m, ld, &n);
        total += row(P, F + at, n, NULL, NULL, 0, NULL, p, epsp);
    }
    return total;
}

/* The p-annealing rescale when p moved since the last evaluation. */
static void panneal_rescale(sp_penalty *P, const float *F, const size_t *ptr, size_t B,
                            size_t m, size_t ld)
{
    if (P->evaluated && P->p != P->p_last) {
        double old = lp_sum(P, F, ptr, B, m, ld, (float)P->p_last, P->epsp_last);
        double now = lp_sum(P, F, ptr, B, m, ld, (float)P->p, P->epsp);
        if (now > 0 && isfinite(old / now)) /* F = 0: both sums are 0 */
            P->base *= old / now;
    }
    P->evaluated = 1;
    P->p_last = P->p;
    P->epsp_last = P->epsp;
}

double sp_penalty_eval_rows(sp_penalty *P, const float *vals, const size_t *ptr, size_t B,
                            size_t m, float *dvals)
{
    if (P->kind == K_L0 || P->kind == K_NONE || B == 0 || m == 0)
        return 0;
    float p = (float)P->p;
    if (P->kind == K_PANNEAL)
        panneal_rescale(P, vals, ptr, B, m, 0);
    double scale = sp_penalty_coef(P) / (double)B;
    if (P->cfg.per_latent)
        scale /= (double)m;
    double total = 0;
    for (size_t b = 0; b < B; b++) {
        size_t n, at = row_at(ptr, b, m, 0, &n);
        total += row(P, vals + at, n, NULL, dvals ? dvals + at : NULL, (float)scale, NULL, p,
                     P->epsp);
    }
    return scale * total;
}

double sp_penalty_eval_list(sp_penalty *P, const float *vals, const unsigned *idx,
                            const size_t *ptr, size_t B, size_t m, float *dF, size_t ld)
{
    double total = sp_penalty_eval_rows(P, vals, ptr, B, m, NULL);
    if (P->kind == K_L0 || P->kind == K_NONE || B == 0 || m == 0)
        return total;
    /* the scale eval_rows used (after any p-annealing rescale) */
    double scale = sp_penalty_coef(P) / (double)B;
    if (P->cfg.per_latent)
        scale /= (double)m;
    float tmp[64];
    for (size_t b = 0; b < B; b++)
        for (size_t e = ptr[b]; e < ptr[b + 1]; e += 64) {
            size_t n = ptr[b + 1] - e < 64 ? ptr[b + 1] - e : 64;
            memset(tmp, 0, n * sizeof *tmp);
            row(P, vals + e, n, NULL, tmp, (float)scale, NULL, (float)P->p, P->epsp);
            float *dr = dF + b * ld;
            for (size_t q = 0; q < n; q++)
                dr[idx[e + q]] += tmp[q];
        }
    return total;
}

/* Columns per block when dP/dn is accumulated (a stack array of doubles). */
#define DBLOCK 256

double sp_penalty_eval(sp_penalty *P, const float *F, size_t B, size_t m, size_t ld,
                       const float *dnorm, float *dF, float *ddnorm)
{
    /* F, dF: (B, m) with row stride ld; dnorm, ddnorm: (m) */
    if (P->kind == K_L0 || P->kind == K_NONE || B == 0 || m == 0)
        return 0;
    float p = (float)P->p;
    if (P->kind == K_PANNEAL)
        panneal_rescale(P, F, NULL, B, m, ld);
    double scale = sp_penalty_coef(P) / (double)B;
    if (P->cfg.per_latent)
        scale /= (double)m;
    float gs = (float)scale;
    double total = 0;
    if (!(ddnorm && (P->kind == K_TANH || P->kind == K_L1_DNORM))) {
        for (size_t b = 0; b < B; b++)
            total += row(P, F + b * ld, m, dnorm, dF ? dF + b * ld : NULL, gs, NULL, p, P->epsp);
        return scale * total;
    }
    /* dP/dn_i sums over the batch: column blocks, each accumulated in double */
    double dacc[DBLOCK];
    for (size_t j = 0; j < m; j += DBLOCK) {
        size_t n = m - j < DBLOCK ? m - j : DBLOCK;
        memset(dacc, 0, n * sizeof *dacc);
        for (size_t b = 0; b < B; b++)
            total += row(P, F + b * ld + j, n, dnorm ? dnorm + j : NULL,
                         dF ? dF + b * ld + j : NULL, gs, dacc, p, P->epsp);
        for (size_t i = 0; i < n; i++)
            ddnorm[j + i] += (float)(scale * dacc[i]);
    }
    return scale * total;
}
