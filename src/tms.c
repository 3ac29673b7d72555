/* tms.c: the toy model of superposition, Elhage et al. 2022 ("Toy Models of
 * Superposition", Demonstrating Superposition; The Geometry of
 * Superposition). REFERENCE.md 1.2.
 *
 *   H = X W^T            X: (B, n), W: (m, n), H: (B, m)
 *   O = H W + b          O: (B, n)
 *   Y = ReLU(O)
 *   L = (1/B) sum_{b,i} I_i (Y_bi - X_bi)^2,   I_i = r^i
 *
 * Backward, with dO = (2/B) I_i (Y - X) [O > 0]:
 *   gb = sum_b dO,   dH = dO W^T,   gW = H^T dO + dH^T X
 * (W appears twice: once as the decoder, once as the encoder). */
#include "superpose/tms.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_blas.h>
#include <gsl/gsl_randist.h>

#include "superpose/optim.h"

/* Below this firing probability the sampler jumps between firings (measured
 * crossover of the two paths: p ~ 0.15). */
#define SPARSE_P 0.15

struct sp_tms_ws {
    int n, m;
    size_t max_batch;
    float *h;    /* (max_batch, m) */
    float *o;    /* (max_batch, n): pre-activations, then dO */
    float *dh;   /* (max_batch, m) */
    float *imp;  /* (n): I_i */
    float *sse;  /* (n): per-feature weighted squared error */
};

sp_tms_cfg sp_tms_default(void)
{
    sp_tms_cfg c = {
        .n = 5, .m = 2, .p = 0.05, .importance = 0.9,
        .steps = 10000, .batch = 1024, .lr = 1e-3, .weight_decay = 0,
    };
    return c;
}

const char *sp_tms_check(const sp_tms_cfg *c)
{
    if (c->n < 1)
        return "tms.n (features) must be >= 1";
    if (c->m < 1)
        return "tms.m (hidden dimensions) must be >= 1";
    if (!(c->p > 0 && c->p <= 1))
        return "tms.p (firing probability 1 - S) must be in (0, 1]";
    if (!(c->importance > 0) || !isfinite(c->importance))
        return "tms.importance must be a finite value > 0";
    if ((c->n - 1) * log(c->importance) > log(FLT_MAX))
        return "tms.importance: r^(n-1) overflows a float (lower r or n)";
    if (c->steps < 1)
        return "tms.steps must be >= 1";
    if (c->batch < 1)
        return "tms.batch must be >= 1";
    if (!(c->lr > 0) || !isfinite(c->lr))
        return "tms.lr must be a finite value > 0";
    if (!(c->weight_decay >= 0) || !isfinite(c->weight_decay))
        return "tms.weight_decay must be a finite value >= 0";
    return NULL;
}

/* Selections in the hot loops use integer masks: a float compare may trap,
 * so without -fno-trapping-math GCC neither if-converts nor vectorises it,
 * and a branch on a ReLU or a firing is mispredicted about half the time.
 * For a float, bits > 0 as a signed integer is exactly v > 0 (NaN aside). */
static inline int32_t float_bits(float v)
{
    int32_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

/* v if mask is all ones, +0 if it is zero. */
static inline float keep_if(float v, uint32_t mask)
{
    uint32_t b;
    memcpy(&b, &v, sizeof b);
    b &= mask;
    memcpy(&v, &b, sizeof v);
    return v;
}

/* splitmix64 (Steele, Lea & Flood 2014): one 64-bit draw in a few cycles.
 * A batch needs up to B n draws; through gsl_rng (a function call, and
 * mt19937 behind it) that costs more than the five GEMMs of a step, so each
 * batch takes only a 64-bit key from the caller's rng and expands it here.
 * The same rng state still gives the same bits. */
static inline uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* U(0,1) on the midpoints of a 2^-23 grid, from 23 bits of z: exact in
 * float, never 0 (so an entry is nonzero iff its feature fired), mean 1/2. */
static inline float magnitude(uint64_t bits23)
{
    return ((float)bits23 + 0.5f) * 0x1p-23f;
}

/* The B n entries are one Bernoulli(p) process. Dense inputs test every
 * entry (32 bits of a draw decide firing, 23 others give the magnitude;
 * with p = 1 a draw gives two magnitudes). Sparse
 * inputs jump from one firing to the next with a geometric gap,
 * P(gap = k) = P(q^(k+1) < u <= q^k) = q^k p for q = 1 - p, which costs
 * about 2 p B n draws instead of B n. */
void sp_tms_sample(const sp_tms_cfg *c, gsl_rng *rng, size_t B, float *x)
{
    const size_t N = B * (size_t)c->n;
    const double p = c->p;
    uint64_t hi = gsl_rng_get(rng), lo = gsl_rng_get(rng);
    uint64_t s = (hi << 32) ^ lo;
    if (p >= 1) {
        /* two magnitudes per draw */
        size_t t = 0;
        for (; t + 1 < N; t += 2) {
            uint64_t z = splitmix(&s);
            x[t] = magnitude(z & 0x7fffff);
            x[t + 1] = magnitude((z >> 32) & 0x7fffff);
        }
        if (t < N)
            x[t] = magnitude(splitmix(&s) & 0x7fffff);
        return;
    }
    if (p > SPARSE_P) {
        const uint64_t thr = (uint64_t)ldexp(p, 32);
        for (size_t t = 0; t < N; t++) {
            uint64_t z = splitmix(&s);
            /* branch-free: firing is unpredictable */
            x[t] = keep_if(magnitude(z & 0x7fffff), -(uint32_t)((z >> 32) < thr));
        }
        return;
    }
    memset(x, 0, N * sizeof *x);
    const double lq = log1p(-p);
    for (size_t t = 0;; t++) {
        double u = ((double)(splitmix(&s) >> 11) + 0.5) * 0x1p-53;
        double gap = floor(log(u) / lq);
        if (gap >= (double)(N - t))
            break;
        t += (size_t)gap;
        x[t] = magnitude(splitmix(&s) >> 41);
    }
}

sp_tms_ws *sp_tms_ws_alloc(int n, int m, size_t max_batch)
{
    if (n < 1 || m < 1 || max_batch < 1)
        return NULL;
    sp_tms_ws *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->n = n, w->m = m, w->max_batch = max_batch;
    w->h = malloc(max_batch * (size_t)m * sizeof *w->h);
    w->o = malloc(max_batch * (size_t)n * sizeof *w->o);
    w->dh = malloc(max_batch * (size_t)m * sizeof *w->dh);
    w->imp = malloc((size_t)n * sizeof *w->imp);
    w->sse = malloc((size_t)n * sizeof *w->sse);
    if (!w->h || !w->o || !w->dh || !w->imp || !w->sse) {
        sp_tms_ws_free(w);
        return NULL;
    }
    return w;
}

void sp_tms_ws_free(sp_tms_ws *w)
{
    if (!w)
        return;
    free(w->sse);
    free(w->imp);
    free(w->dh);
    free(w->o);
    free(w->h);
    free(w);
}

/* One sample: o (n) holds W^T h on entry and dO on return;
 * sse[i] += I_i (y_i - x_i)^2, gb[i] += dO_i. */
static void relu_mse_row(size_t n, float *restrict o, const float *restrict x,
                         const float *restrict bias, const float *restrict imp, float g2,
                         float *restrict sse, float *restrict gb)
{
    for (size_t i = 0; i < n; i++) {
        float pre = o[i] + bias[i];
        uint32_t on = -(uint32_t)(float_bits(pre) > 0); /* pre > 0 */
        float d = keep_if(pre, on) - x[i];
        float wd = imp[i] * d;
        sse[i] += wd * d;
        float dO = keep_if(g2 * wd, on);
        o[i] = dO;
        gb[i] += dO;
    }
}

double sp_tms_loss_grad(const sp_tms_cfg *c, const float *W, const float *b,
                        const float *x, size_t B, float *gW, float *gb,
                        sp_tms_ws *ws)
{
    const size_t n = (size_t)ws->n, m = (size_t)ws->m;
    if (B < 1 || B > ws->max_batch)
        return NAN;
    gsl_matrix_float_const_view Wv = gsl_matrix_float_const_view_array(W, m, n);
    gsl_matrix_float_const_view Xv = gsl_matrix_float_const_view_array(x, B, n);
    gsl_matrix_float_view Hv = gsl_matrix_float_view_array(ws->h, B, m);
    gsl_matrix_float_view Ov = gsl_matrix_float_view_array(ws->o, B, n);
    gsl_matrix_float_view dHv = gsl_matrix_float_view_array(ws->dh, B, m);
    gsl_matrix_float_view gWv = gsl_matrix_float_view_array(gW, m, n);

    double r = 1;
    for (size_t i = 0; i < n; i++, r *= c->importance)
        ws->imp[i] = (float)r;

    /* forward: H = X W^T, O = H W */
    gsl_blas_sgemm(CblasNoTrans, CblasTrans, 1.0f, &Xv.matrix, &Wv.matrix, 0.0f, &Hv.matrix);
    gsl_blas_sgemm(CblasNoTrans, CblasNoTrans, 1.0f, &Hv.matrix, &Wv.matrix, 0.0f, &Ov.matrix);

    /* loss and dO (in place of O), gb; the loss is accumulated per feature
     * so that the inner loop has no cross-iteration reduction */
    const float g2 = (float)(2.0 / (double)B);
    memset(ws->sse, 0, n * sizeof *ws->sse);
    memset(gb, 0, n * sizeof *gb);
    for (size_t s = 0; s < B; s++)
        relu_mse_row(n, ws->o + s * n, x + s * n, b, ws->imp, g2, ws->sse, gb);
    double loss = 0;
    for (size_t i = 0; i < n; i++)
        loss += ws->sse[i];
    loss /= (double)B;

    /* backward: gW = H^T dO, dH = dO W^T, gW += dH^T X */
    gsl_blas_sgemm(CblasTrans, CblasNoTrans, 1.0f, &Hv.matrix, &Ov.matrix, 0.0f, &gWv.matrix);
    gsl_blas_sgemm(CblasNoTrans, CblasTrans, 1.0f, &Ov.matrix, &Wv.matrix, 0.0f, &dHv.matrix);
    gsl_blas_sgemm(CblasTrans, CblasNoTrans, 1.0f, &dHv.matrix, &Xv.matrix, 1.0f, &gWv.matrix);
    return loss;
}

void sp_tms_free(sp_tms *t)
{
    if (!t)
        return;
    free(t->b);
    free(t->W);
    free(t);
}

sp_tms *sp_tms_train(const sp_tms_cfg *c, gsl_rng *rng,
                     void (*progress)(void *user, long step, long steps, double loss),
                     void *user, sp_err *err)
{
    const char *bad = sp_tms_check(c);
    if (bad) {
        sp_err_set(err, "%s", bad);
        return NULL;
    }
    const size_t n = (size_t)c->n, m = (size_t)c->m, B = (size_t)c->batch;
    sp_tms *t = calloc(1, sizeof *t);
    sp_tms_ws *ws = NULL;
    sp_optim *opt = NULL;
    float *x = NULL, *gW = NULL, *gb = NULL;
    if (!t || !(t->W = malloc(m * n * sizeof *t->W)) || !(t->b = calloc(n, sizeof *t->b)) ||
        !(ws = sp_tms_ws_alloc(c->n, c->m, B)) || !(x = malloc(B * n * sizeof *x)) ||
        !(gW = malloc(m * n * sizeof *gW)) || !(gb = malloc(n * sizeof *gb)))
        goto oom;
    t->n = c->n, t->m = c->m;
    sp_param params[2] = {
        {.name = "W", .w = t->W, .g = gW, .n = m * n, .decay = 1, .rows = m, .cols = n},
        {.name = "b", .w = t->b, .g = gb, .n = n, .decay = 0, .rows = 1, .cols = n},
    };
    sp_optim_cfg oc = {.name = "adam", .lr = c->lr, .beta1 = 0.9, .beta2 = 0.999,
                       .eps = 1e-8, .weight_decay = c->weight_decay, .decay = "none"};
    if (!(opt = sp_optim_alloc(&oc, params, 2, c->steps)))
        goto oom;

    /* Xavier normal (torch.nn.init.xavier_normal_): std sqrt(2 / (fan_in + fan_out)) */
    const double std = sqrt(2.0 / (double)(m + n));
    for (size_t k = 0; k < m * n; k++)
        t->W[k] = (float)gsl_ran_gaussian(rng, std);

    const long steps = c->steps, tail = steps < 100 ? steps : 100;
    double tail_loss = 0, last_report = sp_now();
    for (long step = 0; step < steps; step++) {
        sp_tms_sample(c, rng, B, x);
        double loss = sp_tms_loss_grad(c, t->W, t->b, x, B, gW, gb, ws);
        if (!isfinite(loss)) {
            sp_err_set(err, "tms: loss is %g at step %ld (lr %g too large?)", loss, step + 1,
                       c->lr);
            goto fail;
        }
        sp_optim_step(opt);
        if (step >= steps - tail)
            tail_loss += loss;
        if (progress && (step % 16 == 15 || step + 1 == steps)) {
            double now = sp_now();
            if (now - last_report > 0.25 || step + 1 == steps) {
                progress(user, step + 1, steps, loss);
                last_report = now;
            }
        }
    }
    t->loss = tail_loss / (double)tail;
    sp_optim_free(opt);
    free(gb);
    free(gW);
    free(x);
    sp_tms_ws_free(ws);
    return t;

oom:
    sp_err_set(err, "tms: out of memory (n %d, m %d, batch %d)", c->n, c->m, c->batch);
fail:
    sp_optim_free(opt);
    free(gb);
    free(gW);
    free(x);
    sp_tms_ws_free(ws);
    sp_tms_free(t);
    return NULL;
}

double sp_tms_dstar(const float *W, int m, int n)
{
    double f2 = 0;
    for (size_t k = 0; k < (size_t)m * (size_t)n; k++)
        f2 += (double)W[k] * W[k];
    return f2 > 0 ? m / f2 : 0;
}

/* With the Gram matrix G = W^T W, (W_i_hat . W_j)^2 = G_ij^2 / G_ii, so
 * D_i = G_ii^2 / sum_j G_ij^2. */
void sp_tms_dims(const float *W, int m, int n, double *Di)
{
    const size_t M = (size_t)m, N = (size_t)n;
    for (size_t i = 0; i < N; i++) {
        double gii = 0;
        for (size_t k = 0; k < M; k++)
            gii += (double)W[k * N + i] * W[k * N + i];
        double den = 0;
        for (size_t j = 0; j < N; j++) {
            double gij = 0;
            for (size_t k = 0; k < M; k++)
                gij += (double)W[k * N + i] * W[k * N + j];
            den += gij * gij;
        }
        Di[i] = den > 0 ? gii * gii / den : 0;
    }
}
