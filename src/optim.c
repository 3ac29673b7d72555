/* optim.c: SGD, Adam / AdamW and Muon over a list of parameters, with a
 * warm-up and decay schedule and global gradient-norm clipping.
 *
 * Notation: w a parameter, g its gradient, t = 1, 2, ... the step count,
 * s(t) the schedule multiplier below, lr_t = lr * s(t - 1).
 *
 * SGD with momentum (Polyak; Nesterov as in Sutskever et al. 2013, in the
 * PyTorch form), L2-style weight decay on parameters with decay = 1:
 *   g' = g + wd w,  v <- mu v + g',  w <- w - lr_t d,
 *   d = v (heavy ball), g' + mu v (Nesterov), g' (mu = 0: plain SGD).
 *
 * Adam (Kingma & Ba 2015, Alg. 1) with decoupled weight decay (AdamW,
 * Loshchilov & Hutter 2019, Alg. 2, decay scaled by the scheduled lr):
 *   m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2,
 *   w <- w - lr_t mhat / (sqrt(vhat) + eps) - lr_t wd w,
 *   mhat = m / (1 - b1^t), vhat = v / (1 - b2^t).
 * (m and v below 1e-30 in magnitude are flushed to 0: SP_ADAM_TINY.)
 * Folded as in Kingma & Ba section 2 (the "more efficient order"):
 *   w <- w - a_t m / (sqrt(v) + eps_t),
 *   a_t = lr_t sqrt(1 - b2^t) / (1 - b1^t), eps_t = eps sqrt(1 - b2^t),
 * which equals the form above exactly.
 *
 * Muon (K. Jordan et al. 2024, "Muon: an optimizer for hidden layers in
 * neural networks", kellerjordan.github.io/posts/muon), for each matrix
 * parameter W (rows > 1 and cols > 1), mu = muon_momentum, Nesterov:
 *   M <- mu M + G,  U = G + mu M,  O = NS(U),
 *   W <- W - lr_muon_t sqrt(max(1, rows/cols)) O - lr_muon_t wd W
 * (the decay term for decay = 1 parameters only), where NS is the quintic Newton-Schulz iteration
 *   X0 = U / (||U||_F + 1e-7),  A = X X^T,  X <- a X + (b A + c A A) X,
 *   (a, b, c) = (3.4445, -4.7750, 2.0315)
 * run ns_steps (5) times, on U^T when rows > cols so that A is the smaller
 * Gram matrix. The coefficients are Jordan's: they maximise the slope at 0
 * (a = 3.4445) so that small singular values grow fast, at the price of not
 * converging to 1: after 5 steps the singular values of X lie in a band
 * around 1 (about [0.7, 1.2]) rather than at 1, which the blog shows does
 * not hurt training. Every other parameter (biases, thresholds) follows
 * Adam at lr. NS runs in float32 with sgemm (OpenBLAS).
 *
 * Schedule: s(t) = min(1, (t + 1) / warmup) * decay(t), t = 0, 1, ... the
 * index of the step; decay(t) = 1 for t < t0 = decay_start * T, then with
 * u = (t - t0) / (T - t0): 1 - u (linear) or (1 + cos(pi u)) / 2 (cosine);
 * T = total_steps. The same multiplier applies to lr and muon_lr.
 *
 * Clipping: n = ||(g_1, ..., g_P)||_2 over every parameter (in double,
 * summed row by row with eight partial sums per row); if clip > 0 and
 * n > clip, every g is scaled in place by clip / n.
 *
 * Row masks (sp_rowmask, optim.h): a learner can promise that some rows of
 * a gradient are zero this step (a sparse SAE step writes the rows of its
 * active latents only, a few percent at large width). Adam then updates
 * those rows from the moments alone (g = 0 in the formulas above, the same
 * bits) and the norm skips them (exact zeros), so neither reads them: at
 * m = 16384 the norm pass alone had cost as much as the Adam pass.
 *
 * Unit rows (sp_param.unit_rows): after its update each row is rescaled to
 * unit norm (sp_unit_row), as the learner's post-step would do after the
 * whole update, with the same bits (rows are independent); Adam does it
 * while the row is in cache, saving a pass over the decoder. A row Adam
 * did not move (m = 0 and no weight decay) is not rescaled.
 *
 * Idle rows (Adam on a matrix without weight decay): once a row's m is all
 * 0 after a step (a latent that stopped firing, after about 650 steps:
 * SP_ADAM_TINY), and while the row mask rules out its gradient, the steps
 * leave w and m as they are and only multiply v by b2 (flushed at
 * SP_ADAM_TINY). The row is then skipped, and the steps it missed are
 * applied to v, one at a time with the same operations, when the row next
 * gets a gradient (or v is read: sp_optim_moment, sp_optim_reset). The
 * bits are those of the step-by-step update. On trained ratio-16 weights
 * (L0 8, 2 threads) Adam over rows that got no gradient had been a third of
 * the training thread's time (perf); skipping the idle ones took a step
 * from 11.0 to 7.3-7.9 ms. */
#include "superpose/optim.h"
#include "superpose/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_cblas.h>

enum { OPT_SGD, OPT_ADAM, OPT_MUON };
enum { DECAY_NONE, DECAY_LINEAR, DECAY_COSINE };

static const double PI = 3.14159265358979323846;

/* State of one parameter: Adam m and v, or the momentum in m (v NULL). */
typedef struct {
    float *m, *v;
    int ortho;  /* Muon matrix */
    long *idle; /* Adam, rows > 1, no decay: per row, the step since which it
                 * has been idle (0: not idle); see "Idle rows" above */
} slot;

struct sp_optim {
    sp_optim_cfg cfg;
    int kind, decay;
    sp_param *params;
    slot *slots;
    size_t n_params;
    float *state;
    float *u, *o, *ws; /* Muon: momentum-corrected gradient, NS output, NS scratch */
    long t, total_steps;
};

static int kind_of(const char *name)
{
    if (!strcmp(name, "sgd"))
        return OPT_SGD;
    if (!strcmp(name, "adam"))
        return OPT_ADAM;
    if (!strcmp(name, "muon"))
        return OPT_MUON;
    return -1;
}

static int decay_of(const char *name)
{
    if (!name[0] || !strcmp(name, "none"))
        return DECAY_NONE;
    if (!strcmp(name, "linear"))
        return DECAY_LINEAR;
    if (!strcmp(name, "cosine"))
        return DECAY_COSINE;
    return -1;
}

/* Thread-local so that runs on parallel threads do not share messages. */
static _Thread_local char check_msg[256];

#define BAD(...) (snprintf(check_msg, sizeof check_msg, __VA_ARGS__), check_msg)

const char *sp_optim_check(const sp_optim_cfg *c)
{
    const int kind = kind_of(c->name);
    if (kind < 0)
        return BAD("train.optimizer = '%.31s': unknown optimizer; allowed: sgd, adam, muon",
                   c->name);
    if (!(c->lr > 0) || !isfinite(c->lr))
        return BAD("train.lr = %g: must be a finite value > 0", c->lr);
    if (!(c->beta1 >= 0 && c->beta1 < 1))
        return BAD("train.beta1 = %g: must be in [0, 1)", c->beta1);
    if (!(c->beta2 >= 0 && c->beta2 < 1))
        return BAD("train.beta2 = %g: must be in [0, 1)", c->beta2);
    if (kind != OPT_SGD && (!(c->eps > 0) || !isfinite(c->eps)))
        return BAD("train.eps = %g: must be a finite value > 0", c->eps);
    if (!(c->weight_decay >= 0) || !isfinite(c->weight_decay))
        return BAD("train.weight_decay = %g: must be a finite value >= 0", c->weight_decay);
    if (!(c->momentum >= 0 && c->momentum < 1))
        return BAD("train.momentum = %g: must be in [0, 1)", c->momentum);
    /* Muon's own keys only bind for muon: a zeroed Adam or SGD config is valid. */
    if (kind == OPT_MUON) {
        if (!(c->muon_lr > 0) || !isfinite(c->muon_lr))
            return BAD("train.muon_lr = %g: must be a finite value > 0", c->muon_lr);
        if (!(c->muon_momentum >= 0 && c->muon_momentum < 1))
            return BAD("train.muon_momentum = %g: must be in [0, 1)", c->muon_momentum);
        if (c->ns_steps < 1 || c->ns_steps > 50)
            return BAD("train.ns_steps = %d: must be an integer in [1, 50]", c->ns_steps);
    }
    if (c->warmup < 0)
        return BAD("train.lr_warmup = %ld: must be >= 0 (0: no warm-up)", c->warmup);
    if (memchr(c->decay, '\0', sizeof c->decay) == NULL || decay_of(c->decay) < 0)
        return BAD("train.lr_decay = '%.31s': unknown schedule; allowed: none, linear, cosine",
                   c->decay);
    if (!(c->decay_start >= 0 && c->decay_start < 1))
        return BAD("train.decay_start = %g: must be in [0, 1)", c->decay_start);
    if (!(c->clip >= 0) || !isfinite(c->clip))
        return BAD("train.clip = %g: must be a finite value >= 0 (0: no clipping)", c->clip);
    return NULL;
}

static int is_matrix(const sp_param *p) { return p->rows > 1 && p->cols > 1; }

sp_optim *sp_optim_alloc(const sp_optim_cfg *cfg, const sp_param *params, size_t n_params,
                         long total_steps)
{
    sp_optim *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->cfg = *cfg;
    o->kind = kind_of(cfg->name);
    o->decay = memchr(cfg->decay, '\0', sizeof cfg->decay) ? decay_of(cfg->decay) : -1;
    if (o->kind < 0)
        o->kind = OPT_ADAM;
    if (o->decay < 0)
        o->decay = DECAY_NONE;
    o->total_steps = total_steps;
    o->n_params = n_params;
    o->params = malloc((n_params + 1) * sizeof *o->params);
    o->slots = calloc(n_params + 1, sizeof *o->slots);
    if (!o->params || !o->slots) {
        sp_optim_free(o);
        return NULL;
    }
    if (n_params)
        memcpy(o->params, params, n_params * sizeof *params);
    /* the row loops below need the shape to cover the tensor */
    for (size_t p = 0; p < n_params; p++)
        if (o->params[p].rows * o->params[p].cols != o->params[p].n) {
            o->params[p].rows = 1;
            o->params[p].cols = o->params[p].n;
            o->params[p].live = NULL;
        }

    size_t total = 0, max_n = 0, max_ws = 0;
    for (size_t p = 0; p < n_params; p++) {
        const sp_param *pr = &params[p];
        slot *s = &o->slots[p];
        s->ortho = o->kind == OPT_MUON && is_matrix(pr);
        if (s->ortho) {
            total += pr->n;
            if (pr->n > max_n)
                max_n = pr->n;
            size_t ws = sp_muon_ws_size(pr->rows, pr->cols);
            if (ws > max_ws)
                max_ws = ws;
        } else if (o->kind == OPT_SGD) {
            total += cfg->momentum > 0 ? pr->n : 0;
        } else {
            total += 2 * pr->n;
        }
    }
    o->state = calloc(total + 1, sizeof *o->state);
    if (!o->state) {
        sp_optim_free(o);
        return NULL;
    }
    if (max_n && (!(o->u = malloc(max_n * sizeof *o->u)) ||
                  !(o->o = malloc(max_n * sizeof *o->o)) ||
                  !(o->ws = malloc(max_ws * sizeof *o->ws)))) {
        sp_optim_free(o);
        return NULL;
    }
    float *next = o->state;
    for (size_t p = 0; p < n_params; p++) {
        slot *s = &o->slots[p];
        const size_t n = params[p].n;
        if (s->ortho || (o->kind == OPT_SGD && cfg->momentum > 0)) {
            s->m = next;
            next += n;
        } else if (o->kind != OPT_SGD) {
            s->m = next;
            s->v = next + n;
            next += 2 * n;
            if (o->params[p].rows > 1 && !(params[p].decay && cfg->weight_decay > 0) &&
                !(s->idle = calloc(o->params[p].rows, sizeof *s->idle))) {
                sp_optim_free(o);
                return NULL;
            }
        }
    }
    return o;
}

void sp_optim_free(sp_optim *o)
{
    if (!o)
        return;
    for (size_t p = 0; o->slots && p < o->n_params; p++)
        free(o->slots[p].idle);
    free(o->ws);
    free(o->o);
    free(o->u);
    free(o->state);
    free(o->slots);
    free(o->params);
    free(o);
}

/* Multiplier of step t (0-based) of T. */
static double schedule(const sp_optim_cfg *c, int decay, long t, long T)
{
    double f = 1;
    if (c->warmup > 0 && t + 1 < c->warmup)
        f = (double)(t + 1) / (double)c->warmup;
    if (decay != DECAY_NONE && T > 0) {
        const double t0 = c->decay_start * (double)T;
        if ((double)t >= t0) {
            double u = ((double)t - t0) / ((double)T - t0);
            if (u > 1)
                u = 1;
            f *= decay == DECAY_LINEAR ? 1 - u : 0.5 * (1 + cos(PI * u));
        }
    }
    return f;
}

double sp_optim_lr(const sp_optim *o)
{
    return o->cfg.lr * schedule(&o->cfg, o->decay, o->t, o->total_steps);
}

/* Is row r of pr possibly nonzero this step (its row mask, optim.h)? */
static int row_live(const sp_param *pr, size_t r)
{
    return !pr->live || !pr->live->valid || pr->live->rows[r];
}

/* Sum over the rows of pr of each row's sumsq; rows the mask rules out
 * are zero and would add exact zeros, so they are skipped. */
static double param_sumsq(const sp_param *pr)
{
    double ss = 0;
    for (size_t r = 0; r < pr->rows; r++)
        if (row_live(pr, r))
            ss += sp_sumsq(pr->g + r * pr->cols, pr->cols);
    return ss;
}

typedef struct {
    float b1, b2, lr_t, eps_t, wd;
} adam_k;

/* Moments below this in magnitude are set to 0. Without it the first
 * moment of a latent that stopped firing decays by b1 each step into the
 * subnormal range, where it sticks at the smallest subnormal (0.9 x 2^-149
 * rounds back up to 2^-149) and every later step does subnormal
 * arithmetic on it, which x86 CPUs run through microcode at about 20x the
 * cost (measured: Adam over such rows 22x slower; a 20,000-step ratio-16
 * run, most of whose latents die, spent two thirds of its training
 * thread's time there).
 * The update a moment this small can make, lr m / (sqrt(v) + eps_t) < 1e-23
 * at lr = 1e-3 and eps = 1e-8, is far below the float spacing of any
 * weight above 1e-18, so the trajectory is unchanged in practice; and
 * every path (dense, sparse, AVX2 or not) applies the same rule. */
#define SP_ADAM_TINY 1e-30f

/* Entry i's new moments mi, vi: flushed at SP_ADAM_TINY, stored, counted
 * in nz when m is not 0, and the weight moved. */
#define ADAM_STORE(mi, vi)                                                                      \
    m[i] = fabsf(mi) < SP_ADAM_TINY ? 0.0f : (mi);                                              \
    v[i] = (vi) < SP_ADAM_TINY ? 0.0f : (vi);                                                   \
    nz |= m[i] != 0.0f;                                                                         \
    w[i] -= lr_t * m[i] / (sqrtf(v[i]) + eps_t) + wd * w[i];

/* Adam on n entries with their gradient; returns whether any m is not 0. */
#define ADAM_GRAD_BODY                                                                          \
    const float b1 = k->b1, b2 = k->b2, lr_t = k->lr_t, eps_t = k->eps_t, wd = k->wd;          \
    int nz = 0;                                                                                 \
    for (size_t i = 0; i < n; i++) {                                                            \
        const float gi = g[i];                                                                  \
        const float mi = b1 * m[i] + (1.0f - b1) * gi, vi = b2 * v[i] + (1.0f - b2) * gi * gi;  \
        ADAM_STORE(mi, vi)                                                                      \
    }                                                                                           \
    return nz;

/* The same with g = 0: (1 - b1) 0 and (1 - b2) 0 0 are +0, and x + 0 = x
 * for every x but -0 (whose sign never reaches w), so these are the bits
 * the above would give, without reading g. */
#define ADAM_NOGRAD_BODY                                                                        \
    const float b1 = k->b1, b2 = k->b2, lr_t = k->lr_t, eps_t = k->eps_t, wd = k->wd;          \
    int nz = 0;                                                                                 \
    for (size_t i = 0; i < n; i++) {                                                            \
        const float mi = b1 * m[i], vi = b2 * v[i];                                             \
        ADAM_STORE(mi, vi)                                                                      \
    }                                                                                           \
    return nz;

/* v of an idle row over `steps` more steps: what the lines above do to it
 * with m = 0, one step at a time (the same bits); stops once it is 0. */
static void idle_decay(float b2, float *restrict v, size_t n, long steps)
{
    for (long t = 0; t < steps; t++) {
        int nz = 0;
        for (size_t i = 0; i < n; i++) {
            const float vi = b2 * v[i];
            v[i] = vi < SP_ADAM_TINY ? 0.0f : vi;
            nz |= v[i] != 0.0f;
        }
        if (!nz)
            return;
    }
}

#define ADAM_GRAD_ARGS                                                                          \
    const adam_k *k, float *restrict w, const float *restrict g, float *restrict m,            \
        float *restrict v, size_t n
#define ADAM_NOGRAD_ARGS                                                                        \
    const adam_k *k, float *restrict w, float *restrict m, float *restrict v, size_t n

static int adam_grad_generic(ADAM_GRAD_ARGS) { ADAM_GRAD_BODY }
static int adam_nograd_generic(ADAM_NOGRAD_ARGS) { ADAM_NOGRAD_BODY }

#if defined(__x86_64__) && defined(__GNUC__)
/* AVX2 builds: the same IEEE operations (no FMA), eight floats a vector
 * (sp_cpu_avx2, util.h); at m = 512 Adam is bound by sqrt and division */
__attribute__((target("avx2"))) static int adam_grad_avx2(ADAM_GRAD_ARGS) { ADAM_GRAD_BODY }
__attribute__((target("avx2"))) static int adam_nograd_avx2(ADAM_NOGRAD_ARGS)
{
    ADAM_NOGRAD_BODY
}
#endif

static int adam_grad(ADAM_GRAD_ARGS)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (sp_cpu_avx2())
        return adam_grad_avx2(k, w, g, m, v, n);
#endif
    return adam_grad_generic(k, w, g, m, v, n);
}

static int adam_nograd(ADAM_NOGRAD_ARGS)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (sp_cpu_avx2())
        return adam_nograd_avx2(k, w, m, v, n);
#endif
    return adam_nograd_generic(k, w, m, v, n);
}

/* One Adam step of w (n) at scheduled lr `lr`, step count t >= 1. If ss is
 * not NULL, adds the gradient's param_sumsq to it (read in the same pass). */
static void adam_update(const sp_optim_cfg *c, const sp_param *pr, float *restrict m,
                        float *restrict v, long *idle, double lr, long t, double *ss)
{
    const double bc1 = 1.0 - pow(c->beta1, (double)t);
    const double bc2 = 1.0 - pow(c->beta2, (double)t);
    const adam_k k = {(float)c->beta1, (float)c->beta2, (float)(lr * sqrt(bc2) / bc1),
                      (float)(c->eps * sqrt(bc2)),
                      pr->decay ? (float)(lr * c->weight_decay) : 0.0f};
    const size_t cols = pr->cols;
    for (size_t r = 0; r < pr->rows; r++) {
        const size_t o = r * cols;
        const int live = row_live(pr, r);
        if (idle && idle[r]) {
            if (!live)
                continue; /* w and m stay; v's decay waits */
            idle_decay(k.b2, v + o, cols, t - 1 - idle[r]);
            idle[r] = 0;
        }
        int nz;
        if (!live) {
            nz = adam_nograd(&k, pr->w + o, m + o, v + o, cols);
        } else {
            if (ss)
                *ss += sp_sumsq(pr->g + o, cols);
            nz = adam_grad(&k, pr->w + o, pr->g + o, m + o, v + o, cols);
        }
        /* m = 0 (and no decay): w did not move */
        if (pr->unit_rows && (nz || k.wd != 0.0f))
            sp_unit_row(pr->w + o, cols);
        if (idle && !nz)
            idle[r] = t;
    }
}

/* One SGD step; m is the momentum buffer (NULL when momentum = 0). */
static void sgd_update(const sp_optim_cfg *c, const sp_param *pr, float *restrict m, double lr)
{
    const float lr_f = (float)lr, mu = (float)c->momentum;
    const float wd = pr->decay ? (float)c->weight_decay : 0.0f;
    float *restrict w = pr->w;
    const float *restrict g = pr->g;
    if (!m) {
        for (size_t i = 0; i < pr->n; i++)
            w[i] -= lr_f * (g[i] + wd * w[i]);
        return;
    }
    for (size_t i = 0; i < pr->n; i++) {
        const float gi = g[i] + wd * w[i];
        m[i] = mu * m[i] + gi;
        w[i] -= lr_f * (c->nesterov ? gi + mu * m[i] : m[i]);
    }
}

static void muon_update(sp_optim *o, const sp_param *pr, float *restrict m, double lr)
{
    const float mu = (float)o->cfg.muon_momentum;
    float *restrict u = o->u, *restrict out = o->o;
    float *restrict w = pr->w;
    const float *restrict g = pr->g;
    for (size_t i = 0; i < pr->n; i++) {
        m[i] = mu * m[i] + g[i];
        u[i] = g[i] + mu * m[i];
    }
    sp_muon_orthogonalise(u, pr->rows, pr->cols, o->cfg.ns_steps, out, o->ws);
    const double ratio = (double)pr->rows / (double)pr->cols;
    const float scale = (float)(lr * sqrt(ratio > 1 ? ratio : 1));
    const float wd = pr->decay ? (float)(lr * o->cfg.weight_decay) : 0.0f;
    for (size_t i = 0; i < pr->n; i++)
        w[i] -= scale * out[i] + wd * w[i];
}

double sp_optim_step(sp_optim *o)
{
    /* The norm is read in Adam's own pass unless clipping needs it first. */
    const int fused = o->kind == OPT_ADAM && !(o->cfg.clip > 0);
    double ss = 0;
    if (!fused)
        for (size_t p = 0; p < o->n_params; p++)
            ss += param_sumsq(&o->params[p]);
    const double norm0 = sqrt(ss);
    /* A non-finite norm is left for the caller to detect from the return value. */
    if (o->cfg.clip > 0 && isfinite(norm0) && norm0 > o->cfg.clip) {
        const float sc = (float)(o->cfg.clip / norm0);
        for (size_t p = 0; p < o->n_params; p++) {
            const sp_param *pr = &o->params[p];
            for (size_t r = 0; r < pr->rows; r++)
                if (row_live(pr, r)) {
                    float *g = pr->g + r * pr->cols;
                    for (size_t i = 0; i < pr->cols; i++)
                        g[i] *= sc;
                }
        }
    }

    const double f = schedule(&o->cfg, o->decay, o->t, o->total_steps);
    o->t++;
    for (size_t p = 0; p < o->n_params; p++) {
        const sp_param *pr = &o->params[p];
        slot *s = &o->slots[p];
        if (o->kind == OPT_SGD)
            sgd_update(&o->cfg, pr, s->m, f * o->cfg.lr);
        else if (s->ortho)
            muon_update(o, pr, s->m, f * o->cfg.muon_lr);
        else
            adam_update(&o->cfg, pr, s->m, s->v, s->idle, f * o->cfg.lr, o->t,
                        fused ? &ss : NULL);
        if (pr->unit_rows && (o->kind == OPT_SGD || s->ortho)) /* Adam: row by row */
            for (size_t r = 0; r < pr->rows; r++)
                sp_unit_row(pr->w + r * pr->cols, pr->cols);
    }
    return fused ? sqrt(ss) : norm0;
}

size_t sp_optim_idle_rows(const sp_optim *o, size_t p)
{
    size_t n = 0;
    for (size_t r = 0; p < o->n_params && o->slots[p].idle && r < o->params[p].rows; r++)
        n += o->slots[p].idle[r] != 0;
    return n;
}

/* Brings v of parameter p's idle rows in [r0, r1) up to date (they stay
 * idle). */
static void idle_catch_up(sp_optim *o, size_t p, size_t r0, size_t r1)
{
    slot *s = &o->slots[p];
    const sp_param *pr = &o->params[p];
    for (size_t r = r0; s->idle && r < r1 && r < pr->rows; r++)
        if (s->idle[r] && s->idle[r] < o->t) {
            idle_decay((float)o->cfg.beta2, s->v + r * pr->cols, pr->cols, o->t - s->idle[r]);
            s->idle[r] = o->t;
        }
}

const float *sp_optim_moment(sp_optim *o, size_t p, int second)
{
    if (p >= o->n_params)
        return NULL;
    if (second)
        idle_catch_up(o, p, 0, o->params[p].rows);
    return second ? o->slots[p].v : o->slots[p].m;
}

void sp_optim_reset(sp_optim *o, size_t p, size_t start, size_t len)
{
    if (p >= o->n_params || start > o->params[p].n || len > o->params[p].n - start)
        return;
    const slot *s = &o->slots[p];
    const size_t cols = o->params[p].cols;
    if (s->idle && len > 0) /* v of the rows around the range stays right */
        idle_catch_up(o, p, start / cols, (start + len - 1) / cols + 1);
    if (s->m)
        memset(s->m + start, 0, len * sizeof *s->m);
    if (s->v)
        memset(s->v + start, 0, len * sizeof *s->v);
}

/* X is p x q with p <= q; scratch: X, Y (p x q), A, B (p x p). */
size_t sp_muon_ws_size(size_t rows, size_t cols)
{
    const size_t p = rows < cols ? rows : cols, q = rows < cols ? cols : rows;
    return 2 * p * q + 2 * p * p;
}

void sp_muon_orthogonalise(const float *g, size_t rows, size_t cols, int steps, float *out,
                           float *ws)
{
    const float a = 3.4445f, b = -4.7750f, c = 2.0315f;
    const size_t n = rows * cols;
    if (n == 0)
        return;
    const int tr = rows > cols;
    const size_t p = tr ? cols : rows, q = tr ? rows : cols;
    float *X = ws, *Y = ws + p * q, *A = ws + 2 * p * q, *B = A + p * p;

    double ss = 0;
    for (size_t k = 0; k < n; k++)
        ss += (double)g[k] * g[k];
    const float s = (float)(1.0 / (sqrt(ss) + 1e-7));
    if (tr) {
        for (size_t i = 0; i < rows; i++)
            for (size_t j = 0; j < cols; j++)
                X[j * q + i] = s * g[i * cols + j];
    } else {
        for (size_t k = 0; k < n; k++)
            X[k] = s * g[k];
    }

    const int P = (int)p, Q = (int)q;
    for (int it = 0; it < steps; it++) {
        /* A = X X^T (p x p); B = b A + c A A; Y = a X + B X */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, P, P, Q, 1.0f, X, Q, X, Q, 0.0f, A,
                    P);
        memcpy(B, A, p * p * sizeof *B);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, P, P, P, c, A, P, A, P, b, B, P);
        memcpy(Y, X, p * q * sizeof *Y);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, P, Q, P, 1.0f, B, P, X, Q, a, Y, Q);
        float *tmp = X;
        X = Y;
        Y = tmp;
    }

    if (tr) {
        for (size_t i = 0; i < rows; i++)
            for (size_t j = 0; j < cols; j++)
                out[i * cols + j] = X[j * q + i];
    } else {
        memcpy(out, X, n * sizeof *out);
    }
}
