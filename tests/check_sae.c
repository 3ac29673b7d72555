/* check_sae.c: the ReLU-family learner of sae.c (relu, topk, batchtopk,
 * jumprelu, with tied weights, pre-encoder bias, the MLP encoder,
 * Matryoshka prefixes, AuxK and the pre-activation spread penalty).
 * Every backward pass against finite differences; loss terms, gradients
 * and inference rules against values computed by hand; resampling;
 * configuration errors; recovery of an easy ground truth. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_cdf.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "helpers.h"
#include "superpose/metrics.h"
#include "superpose/optim.h"
#include "superpose/sae.h"

/* ---- configurations, filled explicitly ---------------------------------- */

static sp_sae_cfg mk_cfg(const char *arch, int pre_bias)
{
    sp_sae_cfg c;
    memset(&c, 0, sizeof c);
    snprintf(c.arch, sizeof c.arch, "%s", arch);
    c.ratio = 1;
    c.pre_bias = pre_bias;
    c.k = 3;
    c.aux_coef = 0;
    c.dead_steps = 1000;
    c.ema = 0.99;
    c.theta0 = 0.1;
    c.bandwidth = 0.1;
    c.layers = 1;
    return c;
}

static sp_penalty_cfg mk_pen(const char *name, double coef)
{
    sp_penalty_cfg p;
    memset(&p, 0, sizeof p);
    snprintf(p.name, sizeof p.name, "%s", name);
    p.coef = coef;
    p.scale = 1;
    p.p = 0.5;
    p.p_end = 0.5;
    p.anneal_start = 0.25;
    p.eps = 0.01;
    p.c = 4;
    p.warmup = 0;
    return p;
}

static sp_optim_cfg mk_adam(double lr)
{
    sp_optim_cfg o;
    memset(&o, 0, sizeof o);
    snprintf(o.name, sizeof o.name, "adam");
    o.lr = lr;
    o.beta1 = 0.9;
    o.beta2 = 0.999;
    o.eps = 1e-8;
    snprintf(o.decay, sizeof o.decay, "none");
    return o;
}

static sp_learner *make(const sp_sae_cfg *c, const sp_penalty_cfg *pen, size_t d, size_t m,
                        size_t B, long T, unsigned long seed)
{
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, seed);
    sp_err e;
    memset(&e, 0, sizeof e);
    sp_learner *L = sp_learner_alloc(c, pen, d, m, B, T, rng, &e);
    gsl_rng_free(rng);
    ck_assert_msg(L != NULL, "sp_learner_alloc: %s", e.msg);
    return L;
}

static sp_param *param(sp_learner *L, const char *name)
{
    for (size_t p = 0; p < L->n_params; p++)
        if (!strcmp(L->params[p].name, name))
            return &L->params[p];
    return NULL;
}

static gsl_matrix_float *uniform_x(size_t B, size_t d, double lo, double hi, gsl_rng *rng)
{
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, d);
    for (size_t t = 0; t < B * d; t++)
        x->data[t] = (float)(lo + (hi - lo) * gsl_rng_uniform(rng));
    return x;
}

/* MSE normaliser c of sae.c's header. */
static double mse_c(const sp_learner *L, const sp_sae_cfg *c, size_t B)
{
    return c->mse_per_sample ? 1.0 / (double)B : 1.0 / ((double)B * (double)L->d);
}

/* ---- a reference forward pass, in double ----------------------------------- */

/* Pre-activations by the forward pass written in sae.c's header, from the
 * learner's parameters (found by name): P (B, m); with the MLP encoder
 * also the hidden pre-activations Hp (B, H). */
static void ref_preact(sp_learner *L, const gsl_matrix_float *x, double *P, double *Hp)
{
    size_t B = x->size1, d = L->d, m = L->m;
    sp_param *we = param(L, "W_e"), *w = param(L, "W"), *be = param(L, "b_e");
    sp_param *bd = param(L, "b_d"), *w1 = param(L, "W_1"), *b1 = param(L, "b_1");
    const float *E = we ? we->w : w->w;
    size_t H = w1 ? w1->rows : 0, width = H ? H : d;
    double xc[64], u[64];
    ck_assert(d <= 64 && H <= 64);
    for (size_t b = 0; b < B; b++) {
        for (size_t j = 0; j < d; j++)
            xc[j] = (double)gsl_matrix_float_get(x, b, j) - (bd ? bd->w[j] : 0.0);
        if (H)
            for (size_t h = 0; h < H; h++) {
                double v = b1->w[h];
                for (size_t j = 0; j < d; j++)
                    v += (double)w1->w[h * d + j] * xc[j];
                Hp[b * H + h] = v;
                u[h] = v > 0 ? v : 0;
            }
        else
            memcpy(u, xc, d * sizeof *u);
        for (size_t i = 0; i < m; i++) {
            double v = be->w[i];
            for (size_t t = 0; t < width; t++)
                v += (double)E[i * width + t] * u[t];
            P[b * m + i] = v;
        }
    }
}

/* The nonzero pattern of the training codes (one byte per code, then one
 * per MLP hidden unit): relu p > 0; topk the k largest positive p of each
 * sample; batchtopk the B k largest positive p of the batch; jumprelu
 * p > theta. Ranks break ties to the lower index, as sae.c does. Returns
 * the number of bytes written (B (m + H)). */
static size_t ref_pattern(sp_learner *L, const char *arch, size_t k, const gsl_matrix_float *x,
                          unsigned char *pat)
{
    size_t B = x->size1, m = L->m;
    sp_param *w1 = param(L, "W_1"), *th = param(L, "theta");
    size_t H = w1 ? w1->rows : 0;
    double *P = malloc(B * m * sizeof *P), *Hp = malloc((B * H + 1) * sizeof *Hp);
    ref_preact(L, x, P, Hp);
    for (size_t n = 0; n < B * m; n++) {
        size_t b = n / m, i = n % m;
        double v = P[n];
        int on;
        if (!strcmp(arch, "relu")) {
            on = v > 0;
        } else if (!strcmp(arch, "jumprelu")) {
            on = v > th->w[i];
        } else if (!strcmp(arch, "topk")) {
            size_t above = 0;
            for (size_t j = 0; j < m; j++)
                above += P[b * m + j] > v || (P[b * m + j] == v && j < i);
            on = above < k && v > 0;
        } else { /* batchtopk */
            size_t above = 0;
            for (size_t q = 0; q < B * m; q++)
                above += P[q] > v || (P[q] == v && q < n);
            on = above < B * k && v > 0;
        }
        pat[n] = (unsigned char)on;
    }
    for (size_t q = 0; q < B * H; q++)
        pat[B * m + q] = Hp[q] > 0;
    free(Hp);
    free(P);
    return B * (m + H);
}

/* AuxK with its target held constant, as sae.c's header writes it. */
typedef struct {
    size_t dead[16], n_dead, k_aux;
    double coef, c;   /* aux_coef and the MSE normaliser */
    const double *e0; /* (B, d): e = x - x_hat at the base point */
} aux_ref;

/* coef c sum_b ||e0_b - sum_{j in A_b} p_bj W_d[j]||^2, A_b the k_aux
 * largest positive pre-activations of sample b among the dead latents;
 * sel (B, n_dead) gets A_b. */
static double ref_aux(sp_learner *L, const gsl_matrix_float *x, const aux_ref *a,
                      unsigned char *sel)
{
    size_t B = x->size1, d = L->d, m = L->m, nd = a->n_dead;
    double *P = malloc(B * m * sizeof *P);
    ref_preact(L, x, P, NULL);
    const float *W = param(L, "W_d") ? param(L, "W_d")->w : param(L, "W")->w;
    double total = 0;
    for (size_t b = 0; b < B; b++) {
        double res[64];
        for (size_t t = 0; t < d; t++)
            res[t] = a->e0[b * d + t];
        for (size_t q = 0; q < nd; q++) {
            double v = P[b * m + a->dead[q]];
            size_t above = 0;
            for (size_t r = 0; r < nd; r++) {
                double w = P[b * m + a->dead[r]];
                above += w > v || (w == v && r < q);
            }
            int on = above < a->k_aux && v > 0;
            sel[b * nd + q] = (unsigned char)on;
            if (on)
                for (size_t t = 0; t < d; t++)
                    res[t] -= v * W[a->dead[q] * d + t];
        }
        for (size_t t = 0; t < d; t++)
            total += res[t] * res[t];
    }
    free(P);
    return a->coef * a->c * total;
}

/* ---- finite differences ---------------------------------------------------- */

typedef struct {
    const char *arch;
    size_t k;
    double h;
    const char *skip;   /* a parameter left out (jumprelu's theta), or NULL */
    const aux_ref *aux; /* AuxK checked against a frozen target, or NULL */
    /* Sampled prefixes: every evaluation on a fresh learner from clone
     * (made from the same seed, so its first call draws the same prefixes),
     * with L's parameter values; NULL: evaluate on L itself. */
    sp_learner *(*clone)(const void *ctx);
    const void *ctx;
} fd_opts;

/* The objective at L's current parameters (AuxK replaced by its
 * frozen-target value) and the pattern of the kinks it may cross; leaves
 * the learner's gradients in L->params. */
static double fd_eval(sp_learner *L, const gsl_matrix_float *x, const fd_opts *o,
                      unsigned char *pat, sp_loss *ls)
{
    if (o->clone) {
        sp_learner *C = o->clone(o->ctx);
        ck_assert_uint_eq(C->n_params, L->n_params);
        for (size_t p = 0; p < L->n_params; p++)
            memcpy(C->params[p].w, L->params[p].w, L->params[p].n * sizeof(float));
        C->step = L->step;
        C->ops->loss_and_grad(C, x, ls);
        for (size_t p = 0; p < L->n_params; p++)
            memcpy(L->params[p].g, C->params[p].g, L->params[p].n * sizeof(float));
        sp_learner_free(C);
    } else {
        L->ops->loss_and_grad(L, x, ls);
    }
    size_t n = ref_pattern(L, o->arch, o->k, x, pat);
    if (!o->aux)
        return ls->loss;
    return ls->loss - ls->aux + ref_aux(L, x, o->aux, pat + n);
}

/* Central differences on every entry of every parameter tensor
 * (L->params). Within a fixed pattern of active codes (and MLP hidden
 * units, and AuxK selections) the loss is smooth; the mean squared error
 * is quadratic in each decoder entry and, with ReLU pieces, in each
 * encoder entry, and the central difference of a quadratic is exact. What
 * remains is (a) rounding: the forward pass is float32 with sums in
 * double, so the loss carries a relative rounding error of ~1e-7 and the
 * difference an absolute error ~1e-7 L / h, 1e-5 at h = 1e-2 and L ~ 1,
 * against gradients ~0.1-1; and (b) for the curved penalties (cauchy, lp,
 * log, tanh, panneal) and the spread penalty the truncation term
 * h^2 |L'''| / 6, for which each caller picks h (see there). An entry
 * whose +-h perturbation changes the pattern (the nonzero pattern of the
 * codes, not just their number) crosses a kink: it is tried once more at
 * h / 10 if that is still >= 1e-3 (rounding stays <= 1e-4), else skipped;
 * at most a quarter of a tensor may be skipped. Every other entry must
 * agree within 1e-3 of the tensor's largest gradient entry. */
static void fd_run(sp_learner *L, const gsl_matrix_float *x, const fd_opts *o, const char *what)
{
    /* pattern bytes: codes (B, m), MLP hidden units (B, <= 64), AuxK (B, <= 16) */
    size_t B = x->size1, np = B * (L->m + 64 + 16);
    unsigned char *pat0 = malloc(np), *pat = malloc(np);
    memset(pat0, 0, np);
    sp_loss ls;
    fd_eval(L, x, o, pat0, &ls);
    ck_assert_msg(ls.l0 > 0, "%s: no active code", what);
    size_t on = 0;
    for (size_t q = 0; q < B * L->m; q++)
        on += pat0[q];
    ck_assert_msg((double)on == ls.l0 * (double)B, "%s: %zu codes in the reference pattern, "
                  "l0 = %g", what, on, ls.l0);
    if (strcmp(o->arch, "batchtopk")) {
        /* the reference pattern is the learner's (encode = training rule here) */
        gsl_matrix_float *f = gsl_matrix_float_alloc(B, L->m);
        L->ops->encode(L, x, f);
        for (size_t q = 0; q < B * L->m; q++)
            ck_assert_msg((f->data[q] != 0) == pat0[q], "%s: code %zu: reference pattern %d, "
                          "learner %g", what, q, pat0[q], (double)f->data[q]);
        gsl_matrix_float_free(f);
    }
    float **g0 = malloc(L->n_params * sizeof *g0);
    for (size_t p = 0; p < L->n_params; p++) {
        g0[p] = malloc(L->params[p].n * sizeof(float));
        memcpy(g0[p], L->params[p].g, L->params[p].n * sizeof(float));
    }
    for (size_t p = 0; p < L->n_params; p++) {
        sp_param *pr = &L->params[p];
        if (o->skip && !strcmp(pr->name, o->skip))
            continue;
        const float *g = g0[p];
        double gmax = 0;
        for (size_t i = 0; i < pr->n; i++)
            gmax = fmax(gmax, fabs(g[i]));
        size_t misses = 0, skipped = 0, worst_i = 0;
        double worst = 0, worst_fd = 0;
        for (size_t i = 0; i < pr->n; i++) {
            /* a kink within h: once more at h / 10 if that stays >= 1e-3 */
            double h = o->h, fd = NAN;
            for (int tries = 0; tries < 2 && isnan(fd); tries++, h /= 10) {
                if (tries && h < 0.99e-3)
                    break;
                float w0 = pr->w[i], wp = (float)(w0 + h), wm = (float)(w0 - h);
                int same = 1;
                pr->w[i] = wp;
                memset(pat, 0, np);
                double lp = fd_eval(L, x, o, pat, &ls);
                same = same && !memcmp(pat, pat0, np);
                pr->w[i] = wm;
                memset(pat, 0, np);
                double lm = fd_eval(L, x, o, pat, &ls);
                same = same && !memcmp(pat, pat0, np);
                pr->w[i] = w0;
                /* the steps actually taken, after rounding to float */
                if (same)
                    fd = (lp - lm) / ((double)wp - (double)wm);
            }
            if (isnan(fd)) {
                skipped++;
                continue;
            }
            double err = fabs(fd - g[i]) / fmax(gmax, 1e-12);
            if (err > worst)
                worst = err, worst_i = i, worst_fd = fd;
            misses += err > 1e-3;
        }
        ck_assert_msg(gmax > 0, "%s: %s has a zero gradient", what, pr->name);
        ck_assert_msg(skipped <= pr->n / 4, "%s: %s: %zu of %zu entries cross a kink", what,
                      pr->name, skipped, pr->n);
        ck_assert_msg(misses == 0, "%s: %s: %zu of %zu entries off, worst relative error %g "
                      "(entry %zu: analytic %g, finite difference %g, largest %g)", what,
                      pr->name, misses, pr->n, worst, worst_i, (double)g[worst_i], worst_fd,
                      gmax);
    }
    for (size_t p = 0; p < L->n_params; p++)
        free(g0[p]);
    free(g0);
    free(pat);
    free(pat0);
}

/* A learner with d = 6, m = 9, B = 5 on inputs in [-0.5, 1.5]; encoder
 * biases moved so that most codes are active (relu, jumprelu) or active
 * codes have a spread of values (topk, batchtopk); with the penalties on
 * decoder norms the atoms get norms in [0.5, 1.5] so that the norm terms
 * matter. */
static sp_learner *fd_setup(const sp_sae_cfg *c, const sp_penalty_cfg *pen, long step,
                            gsl_matrix_float **xo)
{
    const size_t d = 6, m = 9, B = 5;
    sp_learner *L = make(c, pen, d, m, B, 1000, 11);
    L->step = step;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 12);
    *xo = uniform_x(B, d, -0.5, 1.5, rng);
    sp_param *be = param(L, "b_e"), *bd = param(L, "b_d"), *th = param(L, "theta");
    int ranked = !strcmp(c->arch, "topk") || !strcmp(c->arch, "batchtopk");
    for (size_t i = 0; i < m; i++)
        be->w[i] = (float)(ranked ? gsl_rng_uniform(rng) : 0.3 + 0.2 * gsl_rng_uniform(rng));
    if (bd)
        for (size_t j = 0; j < d; j++)
            bd->w[j] = (float)(0.2 * gsl_rng_uniform(rng) - 0.1);
    if (th)
        for (size_t i = 0; i < m; i++)
            th->w[i] = (float)(0.2 + 0.1 * gsl_rng_uniform(rng));
    if (sp_penalty_uses_dnorm(pen)) {
        ck_assert(!L->unit_norm);
        for (size_t i = 0; i < m; i++) {
            float s = (float)(0.5 + gsl_rng_uniform(rng));
            for (size_t j = 0; j < d; j++)
                L->decoder->data[i * d + j] *= s;
        }
    }
    gsl_rng_free(rng);
    return L;
}

static void fd_learner(const sp_sae_cfg *c, const sp_penalty_cfg *pen, long step, double h,
                       const char *what)
{
    gsl_matrix_float *x;
    sp_learner *L = fd_setup(c, pen, step, &x);
    fd_opts o = {.arch = c->arch, .k = (size_t)c->k, .h = h,
                 .skip = strcmp(c->arch, "jumprelu") ? NULL : "theta"};
    fd_run(L, x, &o, what);
    gsl_matrix_float_free(x);
    sp_learner_free(L);
}

/* The plain ReLU SAE with L1 (Sharkey et al. 2022): the loss is piecewise
 * quadratic, h = 1e-2. */
START_TEST(test_fd_plain)
{
    sp_sae_cfg c = mk_cfg("relu", 0);
    sp_penalty_cfg pen = mk_pen("l1", 0.3);
    fd_learner(&c, &pen, 0, 1e-2, "relu l1");
}
END_TEST

START_TEST(test_fd_per_sample_per_latent)
{
    sp_sae_cfg c = mk_cfg("relu", 1);
    c.mse_per_sample = 1;
    sp_penalty_cfg pen = mk_pen("l1", 0.3);
    pen.per_latent = 1;
    fd_learner(&c, &pen, 0, 1e-2, "relu l1 per sample, per latent");
}
END_TEST

/* Each penalty of penalty.h with the pre-encoder bias. The truncation
 * error h^2 |L'''| / 6 is largest for lp and panneal (p = 0.5, eps =
 * 0.01: phi''' = 3/8 (a + eps)^-2.5, ~1e4 at a = 0.02) and log
 * (phi''' = 2 / (a + eps)^3), times coef / B = 0.06: at h = 1e-2 a code
 * of 0.05 already costs ~1e-2, so these three take h = 1e-3 (truncation
 * <= 1e-4 down to codes of 0.02). Their rounding error grows to
 * 1e-7 L / h: for log, whose penalty makes L ~ 10, that is 1e-3 against
 * gradients ~3, the tightest case (~5e-4 measured). l1 and l1_dnorm are
 * piecewise linear, cauchy (s = 1) and tanh (c = 4) have |phi'''| <= 130:
 * h = 1e-2 (measured worst 6e-4, tanh). */
static const char *const penalties[] = {"l1", "cauchy", "lp", "log", "tanh", "l1_dnorm",
                                        "panneal"};

START_TEST(test_fd_penalty)
{
    const char *n = penalties[_i];
    sp_sae_cfg c = mk_cfg("relu", 1);
    sp_penalty_cfg pen = mk_pen(n, 0.3);
    /* panneal: step 600 of 1000 lies in the annealing window (from 250),
     * p = 1 - 0.5 * 350 / 750 */
    long step = strcmp(n, "panneal") ? 0 : 600;
    double h = !strcmp(n, "lp") || !strcmp(n, "panneal") || !strcmp(n, "log") ? 1e-3 : 1e-2;
    char what[64];
    snprintf(what, sizeof what, "relu %s, pre_bias", n);
    fd_learner(&c, &pen, step, h, what);
}
END_TEST

START_TEST(test_fd_tied)
{
    sp_sae_cfg c = mk_cfg("relu", 1);
    c.tied = 1;
    sp_penalty_cfg pen = mk_pen("l1", 0.3);
    fd_learner(&c, &pen, 0, 1e-2, "relu tied");
}
END_TEST

START_TEST(test_fd_mlp)
{
    sp_sae_cfg c = mk_cfg("relu", _i);
    c.mlp = 1;
    c.hidden = 5;
    sp_penalty_cfg pen = mk_pen("l1", 0.3);
    fd_learner(&c, &pen, 0, 1e-2, _i ? "relu mlp, pre_bias" : "relu mlp");
}
END_TEST

START_TEST(test_fd_matryoshka_fixed)
{
    sp_sae_cfg c = mk_cfg("relu", 1);
    snprintf(c.prefixes, sizeof c.prefixes, "2, 5");
    sp_penalty_cfg pen = mk_pen("l1", 0.3);
    fd_learner(&c, &pen, 0, 1e-2, "relu matryoshka 2, 5");
}
END_TEST

/* prestd: R = lambda mean_b sqrt(var + 1e-8); the spread of the 9
 * pre-activations is ~0.5, so R''' ~ lambda / sd^2 ~ 1: h = 1e-2 is ample. */
START_TEST(test_fd_prestd)
{
    sp_sae_cfg c = mk_cfg("relu", 1);
    c.prestd = 0.5;
    sp_penalty_cfg pen = mk_pen("l1", 0.3);
    fd_learner(&c, &pen, 0, 1e-2, "relu prestd");
}
END_TEST

START_TEST(test_fd_topk)
{
    sp_sae_cfg c = mk_cfg("topk", 1);
    c.k = 3;
    sp_penalty_cfg pen = mk_pen("none", 0);
    fd_learner(&c, &pen, 0, 1e-2, "topk");
}
END_TEST

START_TEST(test_fd_batchtopk)
{
    sp_sae_cfg c = mk_cfg("batchtopk", 1);
    c.k = 2;
    sp_penalty_cfg pen = mk_pen("none", 0);
    fd_learner(&c, &pen, 0, 1e-2, "batchtopk");
}
END_TEST

/* W_e, b_e, W_d, b_d only: theta's gradient is the straight-through
 * estimator, not the derivative (test_jumprelu_theta_grad checks it). The
 * L0 term is constant within a pattern. */
START_TEST(test_fd_jumprelu)
{
    sp_sae_cfg c = mk_cfg("jumprelu", 1);
    sp_penalty_cfg pen = mk_pen("l0", 0.3);
    fd_learner(&c, &pen, 0, 1e-2, "jumprelu");
}
END_TEST

/* TopK with AuxK active. Latents 6, 7, 8 are made dead: their encoder rows
 * are scaled to 0.2 and their biases (0.3, 0.5, 0.7) keep their
 * pre-activations in [0.08, 0.92], below every pre-activation of latents
 * 0-5 (bias 2.5, unit rows, |x - b_d| <= 1.1: at least 1.4), so they never
 * enter the top 3 but stay positive for AuxK (k_aux = 2 of the 3 dead).
 * With dead_steps = 1 and the step at 1000, a latent is dead once a call
 * has not seen it fire. AuxK's target e = x - x_hat is held constant
 * (Gao et al. 2024), so the check is against d/dtheta of mse + penalty +
 * coef c sum ||e0 - e_hat||^2 with e0 frozen at the base point
 * (ref_aux); aux_coef = 0.25 rather than 1/32 so that a wrong AuxK
 * gradient is well above the tolerance. */
START_TEST(test_fd_topk_auxk)
{
    const size_t d = 6, m = 9, B = 5;
    sp_sae_cfg c = mk_cfg("topk", 1);
    c.k = 3;
    c.k_aux = 2;
    c.aux_coef = 0.25;
    c.dead_steps = 1;
    sp_penalty_cfg pen = mk_pen("none", 0);
    sp_learner *L = make(&c, &pen, d, m, B, 2000, 21);
    L->step = 1000;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 22);
    gsl_matrix_float *x = uniform_x(B, d, -0.4, 0.4, rng);
    sp_param *we = param(L, "W_e"), *be = param(L, "b_e"), *bd = param(L, "b_d");
    for (size_t j = 0; j < d; j++)
        bd->w[j] = (float)(0.1 * gsl_rng_uniform(rng) - 0.05);
    for (size_t i = 0; i < m; i++) {
        be->w[i] = i < 6 ? 2.5f : (float)(0.3 + 0.2 * (double)(i - 6));
        if (i >= 6)
            for (size_t j = 0; j < d; j++)
                we->w[i * d + j] *= 0.2f;
    }
    sp_loss ls;
    L->ops->loss_and_grad(L, x, &ls); /* records which latents fire */
    for (size_t i = 0; i < m; i++)
        ck_assert_msg((L->fires[i] > 0) == (i < 6), "latent %zu fired %lu times", i,
                      L->fires[i]);
    L->ops->loss_and_grad(L, x, &ls);
    ck_assert_msg(ls.aux > 0, "AuxK inactive: aux = %g", ls.aux);

    /* the frozen target: e0 = x - x_hat; for topk encode is the training rule */
    gsl_matrix_float *f = gsl_matrix_float_alloc(B, m), *xh = gsl_matrix_float_alloc(B, d);
    L->ops->encode(L, x, f);
    L->ops->decode(L, f, xh);
    double e0[5 * 6];
    for (size_t t = 0; t < B * d; t++)
        e0[t] = (double)x->data[t] - (double)xh->data[t];
    aux_ref a = {.dead = {6, 7, 8}, .n_dead = 3, .k_aux = 2, .coef = c.aux_coef,
                 .c = mse_c(L, &c, B), .e0 = e0};
    unsigned char sel[5 * 3];
    double want = ref_aux(L, x, &a, sel);
    ck_assert_double_eq_tol(ls.aux, want, 1e-6 * want);

    fd_opts o = {.arch = "topk", .k = 3, .h = 1e-2, .aux = &a};
    fd_run(L, x, &o, "topk AuxK");
    for (size_t i = 6; i < m; i++)
        ck_assert_msg(L->fires[i] == 0, "dead latent %zu fired during the check", i);
    gsl_matrix_float_free(xh);
    gsl_matrix_float_free(f);
    gsl_matrix_float_free(x);
    gsl_rng_free(rng);
    sp_learner_free(L);
}
END_TEST

/* ---- sampled Matryoshka prefixes ------------------------------------------ */

typedef struct {
    sp_sae_cfg cfg;
    sp_penalty_cfg pen;
} clone_ctx;

static sp_learner *clone_sampled(const void *ctx)
{
    const clone_ctx *k = ctx;
    return make(&k->cfg, &k->pen, 6, 9, 5, 1000, 11);
}

/* The prefixes are redrawn at every loss_and_grad from the learner's own
 * rng, seeded at allocation from the caller's rng. A learner allocated
 * from the same seed draws the same prefixes on its first call, so every
 * evaluation of the finite differences runs on a fresh learner with the
 * parameter values under test: the draw is repeated exactly. */
START_TEST(test_fd_matryoshka_sampled)
{
    clone_ctx k = {mk_cfg("relu", 1), mk_pen("l1", 0.3)};
    k.cfg.prefix_samples = 3;
    gsl_matrix_float *x;
    sp_learner *L = fd_setup(&k.cfg, &k.pen, 0, &x);
    fd_opts o = {.arch = "relu", .k = 3, .h = 1e-2, .clone = clone_sampled, .ctx = &k};
    fd_run(L, x, &o, "relu sampled prefixes");
    gsl_matrix_float_free(x);
    sp_learner_free(L);
}
END_TEST

/* Known answer for sampled prefixes: every call's mse is
 * c sum_{e in S} ||x_hat_e - x||^2 for S = {drawn sizes} + {m}, 1 to 3
 * distinct sizes in [1, m-1], with x_hat_e = f[:, :e] W_d[:e] + b_d
 * computed here; and the draw changes between calls. */
START_TEST(test_matryoshka_sampled_terms)
{
    const size_t d = 6, m = 9, B = 5;
    sp_sae_cfg c = mk_cfg("relu", 1);
    c.prefix_samples = 3;
    sp_penalty_cfg pen = mk_pen("l1", 0.3);
    gsl_matrix_float *x;
    sp_learner *L = fd_setup(&c, &pen, 0, &x);
    gsl_matrix_float *f = gsl_matrix_float_alloc(B, m);
    L->ops->encode(L, x, f);
    const float *W = L->decoder->data, *bd = param(L, "b_d")->w;
    double E[10] = {0}, cc = mse_c(L, &c, B);
    for (size_t e = 1; e <= m; e++)
        for (size_t b = 0; b < B; b++)
            for (size_t t = 0; t < d; t++) {
                double v = (double)bd[t] - gsl_matrix_float_get(x, b, t);
                for (size_t i = 0; i < e; i++)
                    v += (double)gsl_matrix_float_get(f, b, i) * W[i * d + t];
                E[e] += cc * v * v;
            }
    double first = NAN;
    int varied = 0;
    for (int call = 0; call < 12; call++) {
        sp_loss ls;
        L->ops->loss_and_grad(L, x, &ls);
        int found = 0;
        for (unsigned mask = 1; mask < (1u << (m - 1)) && !found; mask++) {
            if (__builtin_popcount(mask) > 3)
                continue;
            double s = E[m];
            for (size_t e = 1; e < m; e++)
                if (mask & (1u << (e - 1)))
                    s += E[e];
            found = fabs(s - ls.mse) <= 1e-6 * s;
        }
        ck_assert_msg(found, "call %d: mse %.9g is no sum over 1-3 drawn prefixes plus m", call,
                      ls.mse);
        if (call == 0)
            first = ls.mse;
        varied |= ls.mse != first;
    }
    ck_assert_msg(varied, "the prefixes were not redrawn");
    gsl_matrix_float_free(f);
    gsl_matrix_float_free(x);
    sp_learner_free(L);
}
END_TEST

/* ---- known answers --------------------------------------------------------- */

/* Loss terms by hand: one latent, identity-like weights. */
START_TEST(test_loss_by_hand)
{
    sp_sae_cfg c = mk_cfg("relu", 0);
    sp_penalty_cfg pen = mk_pen("l1", 0.5);
    sp_learner *L = make(&c, &pen, 2, 1, 1, 1000, 1);
    /* W_e = (1, 0), b_e = -0.25, W_d = (1, 0); x = (1, 2):
     * p = 0.75, f = 0.75, x_hat = (0.75, 0), r = (-0.25, -2)
     * mse = (0.0625 + 4) / 2 = 2.03125, penalty = 0.5 * 0.75 = 0.375 */
    param(L, "W_e")->w[0] = 1, param(L, "W_e")->w[1] = 0;
    param(L, "b_e")->w[0] = -0.25f;
    param(L, "W_d")->w[0] = 1, param(L, "W_d")->w[1] = 0;
    gsl_matrix_float *x = gsl_matrix_float_alloc(1, 2);
    x->data[0] = 1, x->data[1] = 2;
    sp_loss ls;
    L->ops->loss_and_grad(L, x, &ls);
    ck_assert_double_eq_tol(ls.mse, 2.03125, 1e-6);
    ck_assert_double_eq_tol(ls.penalty, 0.375, 1e-7);
    ck_assert_double_eq(ls.l0, 1.0);
    /* dW_d = f * 2 r / d = 0.75 * (-0.25, -2) = (-0.1875, -1.5) */
    ck_assert_double_eq_tol(param(L, "W_d")->g[0], -0.1875, 1e-6);
    ck_assert_double_eq_tol(param(L, "W_d")->g[1], -1.5, 1e-6);
    gsl_matrix_float_free(x);
    sp_learner_free(L);
}
END_TEST

/* TopK keeps exactly k latents per sample when every pre-activation is
 * positive (b_e = 5 against |W_e x| <= ||x|| < 3), in training and at
 * inference. */
START_TEST(test_topk_keeps_k)
{
    const size_t d = 8, m = 20, B = 16, k = 3;
    sp_sae_cfg c = mk_cfg("topk", 1);
    c.k = (int)k;
    sp_penalty_cfg pen = mk_pen("none", 0);
    sp_learner *L = make(&c, &pen, d, m, B, 1000, 3);
    for (size_t i = 0; i < m; i++)
        param(L, "b_e")->w[i] = 5;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 4);
    gsl_matrix_float *x = uniform_x(B, d, -1, 1, rng), *f = gsl_matrix_float_alloc(B, m);
    sp_loss ls;
    L->ops->loss_and_grad(L, x, &ls);
    ck_assert_double_eq(ls.l0, (double)k);
    L->ops->encode(L, x, f);
    double P[16 * 20];
    ref_preact(L, x, P, NULL);
    for (size_t b = 0; b < B; b++) {
        size_t on = 0;
        float kept_min = INFINITY, dropped_max = -INFINITY;
        for (size_t i = 0; i < m; i++) {
            float v = gsl_matrix_float_get(f, b, i);
            ck_assert(P[b * m + i] > 0);
            if (v != 0) {
                on++;
                ck_assert_float_eq_tol(v, P[b * m + i], 1e-5);
                kept_min = fminf(kept_min, v);
            } else {
                dropped_max = fmaxf(dropped_max, (float)P[b * m + i]);
            }
        }
        ck_assert_uint_eq(on, k);
        ck_assert(kept_min >= dropped_max);
    }
    gsl_matrix_float_free(f);
    gsl_matrix_float_free(x);
    gsl_rng_free(rng);
    sp_learner_free(L);
}
END_TEST

/* BatchTopK with W_e = W_d = I (d = m = 8), b_e = 0: p = x. Sample 0 of
 * each batch is (a + 7, a + 6, ..., a), a >= 1.5; the other three samples
 * lie in (0, 0.5). The top B k = 8 of the batch are all of sample 0:
 * l0 B = B k, sample 0 has 8 codes and the others none, so x_hat_0 = x_0,
 * x_hat_b = 0 and mse = c sum_{b > 0} ||x_b||^2; the smallest kept value
 * is a. The inference threshold follows theta_1 = a_1,
 * theta_t = ema theta_{t-1} + (1 - ema) a_t (ema = 0.6 here, so three
 * steps move it visibly), a batch that keeps nothing leaves it alone, and
 * encode gives p [p > theta]. */
START_TEST(test_batchtopk_rule_and_threshold)
{
    const size_t d = 8, m = 8, B = 4, k = 2;
    sp_sae_cfg c = mk_cfg("batchtopk", 0);
    c.k = (int)k;
    c.ema = 0.6;
    sp_penalty_cfg pen = mk_pen("none", 0);
    sp_learner *L = make(&c, &pen, d, m, B, 1000, 5);
    sp_param *we = param(L, "W_e"), *wd = param(L, "W_d"), *be = param(L, "b_e");
    for (size_t i = 0; i < m; i++) {
        be->w[i] = 0;
        for (size_t j = 0; j < d; j++)
            we->w[i * d + j] = wd->w[i * d + j] = i == j ? 1.0f : 0.0f;
    }
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 6);
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, d), *f = gsl_matrix_float_alloc(B, m);
    const double a[3] = {3.0, 1.5, 2.25};
    double theta = 0;
    for (int t = 0; t < 3; t++) {
        double want = 0;
        for (size_t b = 0; b < B; b++)
            for (size_t j = 0; j < d; j++) {
                float v = b == 0 ? (float)(a[t] + (double)(d - 1 - j))
                                 : (float)(0.01 + 0.49 * gsl_rng_uniform(rng));
                gsl_matrix_float_set(x, b, j, v);
                if (b > 0)
                    want += (double)v * v;
            }
        want /= (double)(B * d);
        if (t == 0) {
            /* before any training the batch rule also serves inference */
            L->ops->encode(L, x, f);
            for (size_t b = 0; b < B; b++)
                for (size_t j = 0; j < m; j++)
                    ck_assert_float_eq(gsl_matrix_float_get(f, b, j),
                                       b == 0 ? gsl_matrix_float_get(x, 0, j) : 0.0f);
        }
        unsigned long before = L->fires[0];
        sp_loss ls;
        L->ops->loss_and_grad(L, x, &ls);
        ck_assert_double_eq_tol(ls.l0 * (double)B, (double)(B * k), 1e-12);
        ck_assert_uint_eq(L->fires[0], before + 1);
        ck_assert_double_eq_tol(ls.mse, want, 1e-6 * want);
        theta = t == 0 ? a[0] : c.ema * theta + (1 - c.ema) * a[t];
    }
    /* theta = 0.6 (0.6 * 3 + 0.4 * 1.5) + 0.4 * 2.25 = 2.34 */
    ck_assert_double_eq_tol(theta, 2.34, 1e-12);
    /* a batch with no positive pre-activation keeps nothing and has no
     * smallest kept value: theta stays (it is not pulled towards 0) */
    for (size_t t = 0; t < B * d; t++)
        x->data[t] = (float)(-0.1 - gsl_rng_uniform(rng));
    sp_loss ls;
    L->ops->loss_and_grad(L, x, &ls);
    ck_assert_double_eq(ls.l0, 0.0);
    /* inputs at theta (1 +- 1e-4) switch on exactly above it */
    for (size_t b = 0; b < B; b++)
        for (size_t j = 0; j < d; j++)
            gsl_matrix_float_set(x, b, j, (float)(theta * ((b + j) % 2 ? 1.0001 : 0.9999)));
    L->ops->encode(L, x, f);
    for (size_t b = 0; b < B; b++)
        for (size_t j = 0; j < m; j++)
            ck_assert_float_eq(gsl_matrix_float_get(f, b, j),
                               (b + j) % 2 ? gsl_matrix_float_get(x, b, j) : 0.0f);
    /* random inputs: f = p [p > theta], whatever the count per sample */
    for (size_t t = 0; t < B * d; t++)
        x->data[t] = (float)(4 * gsl_rng_uniform(rng));
    L->ops->encode(L, x, f);
    for (size_t t = 0; t < B * m; t++)
        ck_assert_float_eq(f->data[t], x->data[t] > theta ? x->data[t] : 0.0f);
    gsl_matrix_float_free(f);
    gsl_matrix_float_free(x);
    gsl_rng_free(rng);
    sp_learner_free(L);
}
END_TEST

/* JumpReLU's threshold gradient against the rectangle-kernel
 * straight-through estimator (Rajamanoharan et al. 2024b), computed here
 * in double: m = 2, d = 3, B = 4, W_e rows e_1, e_2 (p_b0 = x_b0,
 * p_b1 = x_b1), theta = (0.5, 0.8), eps = 0.2 (K = 1 within 0.1 of theta):
 * six of the eight pre-activations fall in the window, on both sides. */
START_TEST(test_jumprelu_theta_grad)
{
    const size_t d = 3, m = 2, B = 4;
    sp_sae_cfg c = mk_cfg("jumprelu", 0);
    c.bandwidth = 0.2;
    c.theta0 = 0.5;
    sp_penalty_cfg pen = mk_pen("l0", 0.3);
    sp_learner *L = make(&c, &pen, d, m, B, 1000, 7);
    const float We[2][3] = {{1, 0, 0}, {0, 1, 0}}, Wd[2][3] = {{0.6f, 0.8f, 0}, {0, 0.6f, 0.8f}};
    const float th[2] = {0.5f, 0.8f};
    const float X[4][3] = {{0.45f, 0.75f, 0.3f}, {0.55f, 0.85f, -0.2f},
                           {0.9f, 0.95f, 0.1f}, {0.58f, 0.79f, 0.5f}};
    sp_param *we = param(L, "W_e"), *wd = param(L, "W_d"), *be = param(L, "b_e");
    sp_param *pt = param(L, "theta");
    ck_assert_ptr_nonnull(pt);
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, d);
    for (size_t i = 0; i < m; i++) {
        be->w[i] = 0;
        pt->w[i] = th[i];
        for (size_t j = 0; j < d; j++)
            we->w[i * d + j] = We[i][j], wd->w[i * d + j] = Wd[i][j];
    }
    for (size_t b = 0; b < B; b++)
        for (size_t j = 0; j < d; j++)
            gsl_matrix_float_set(x, b, j, X[b][j]);
    sp_loss ls;
    L->ops->loss_and_grad(L, x, &ls);

    const double eps = 0.2, coef = 0.3, cc = 1.0 / (double)(B * d);
    double want[2] = {0, 0};
    size_t on = 0, in_window = 0;
    for (size_t b = 0; b < B; b++) {
        double p[2], f[2], r[3];
        for (size_t i = 0; i < m; i++) {
            p[i] = X[b][i];
            f[i] = p[i] > th[i] ? p[i] : 0;
            on += p[i] > th[i];
        }
        for (size_t j = 0; j < d; j++)
            r[j] = f[0] * Wd[0][j] + f[1] * Wd[1][j] - X[b][j];
        for (size_t i = 0; i < m; i++) {
            double df = 0;
            for (size_t j = 0; j < d; j++)
                df += 2 * cc * r[j] * Wd[i][j];
            double K = fabs((p[i] - th[i]) / eps) < 0.5 ? 1 : 0;
            in_window += K > 0;
            want[i] += df * (-th[i] / eps) * K - coef / (double)B * K / eps;
        }
    }
    ck_assert_uint_eq(in_window, 6);
    ck_assert_double_eq_tol(ls.penalty, coef / (double)B * (double)on, 1e-7);
    ck_assert_double_eq_tol(ls.l0, (double)on / (double)B, 1e-12);
    for (size_t i = 0; i < m; i++)
        ck_assert_msg(fabs(pt->g[i] - want[i]) <= 1e-5 * fabs(want[i]),
                      "dtheta_%zu = %.9g, estimator %.9g", i, (double)pt->g[i], want[i]);
    gsl_matrix_float_free(x);
    sp_learner_free(L);
}
END_TEST

/* Matryoshka with prefixes "2" and m = 4: mse = c ||x_hat_2 - x||^2 +
 * c ||x_hat_4 - x||^2, and dW_d[i] = sum_b f_bi 2c (r2_b [i < 2] + r4_b):
 * the first group's atoms get gradient from both terms. */
START_TEST(test_matryoshka_fixed_terms)
{
    const size_t d = 5, m = 4, B = 3;
    sp_sae_cfg c = mk_cfg("relu", 1);
    snprintf(c.prefixes, sizeof c.prefixes, "2");
    sp_penalty_cfg pen = mk_pen("l1", 0.1);
    sp_learner *L = make(&c, &pen, d, m, B, 1000, 8);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 9);
    gsl_matrix_float *x = uniform_x(B, d, 0, 1, rng);
    sp_param *be = param(L, "b_e"), *bd = param(L, "b_d"), *wd = param(L, "W_d");
    for (size_t i = 0; i < m; i++)
        be->w[i] = 1; /* every code active */
    for (size_t j = 0; j < d; j++)
        bd->w[j] = (float)(0.1 * gsl_rng_uniform(rng));
    sp_loss ls;
    L->ops->loss_and_grad(L, x, &ls);
    ck_assert_double_eq(ls.l0, (double)m);
    double P[3 * 4], cc = mse_c(L, &c, B), mse = 0, g[4][5] = {{0}};
    ref_preact(L, x, P, NULL);
    for (size_t b = 0; b < B; b++) {
        double r2[5], r4[5];
        for (size_t t = 0; t < d; t++) {
            double v2 = (double)bd->w[t] - gsl_matrix_float_get(x, b, t);
            for (size_t i = 0; i < 2; i++)
                v2 += P[b * m + i] * wd->w[i * d + t];
            double v4 = v2;
            for (size_t i = 2; i < 4; i++)
                v4 += P[b * m + i] * wd->w[i * d + t];
            r2[t] = v2, r4[t] = v4;
            mse += cc * (v2 * v2 + v4 * v4);
        }
        for (size_t i = 0; i < m; i++)
            for (size_t t = 0; t < d; t++)
                g[i][t] += P[b * m + i] * 2 * cc * ((i < 2 ? r2[t] : 0) + r4[t]);
    }
    ck_assert_double_eq_tol(ls.mse, mse, 1e-6 * mse);
    for (size_t i = 0; i < m; i++)
        for (size_t t = 0; t < d; t++)
            ck_assert_msg(fabs(wd->g[i * d + t] - g[i][t]) <= 1e-5,
                          "dW_d[%zu][%zu] = %g, by hand %g", i, t, (double)wd->g[i * d + t],
                          g[i][t]);
    gsl_matrix_float_free(x);
    gsl_rng_free(rng);
    sp_learner_free(L);
}
END_TEST

/* Tied weights: the shared matrix's gradient is the sum of the encoder and
 * decoder gradients of an untied learner with W_e = W_d = W. */
START_TEST(test_tied_equals_untied_sum)
{
    const size_t d = 6, m = 9, B = 5;
    sp_sae_cfg ct = mk_cfg("relu", 1), cu = mk_cfg("relu", 1);
    ct.tied = 1;
    sp_penalty_cfg pen = mk_pen("l1", 0.3);
    sp_learner *T = make(&ct, &pen, d, m, B, 1000, 10), *U = make(&cu, &pen, d, m, B, 1000, 10);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 13);
    gsl_matrix_float *x = uniform_x(B, d, -0.5, 1.5, rng);
    sp_param *W = param(T, "W");
    ck_assert_ptr_nonnull(W);
    ck_assert_ptr_null(param(T, "W_e"));
    memcpy(param(U, "W_e")->w, W->w, m * d * sizeof(float));
    memcpy(param(U, "W_d")->w, W->w, m * d * sizeof(float));
    for (size_t i = 0; i < m; i++)
        param(T, "b_e")->w[i] = param(U, "b_e")->w[i] = (float)(0.3 * gsl_rng_uniform(rng));
    for (size_t j = 0; j < d; j++)
        param(T, "b_d")->w[j] = param(U, "b_d")->w[j] = (float)(0.2 * gsl_rng_uniform(rng));
    sp_loss lt, lu;
    T->ops->loss_and_grad(T, x, &lt);
    U->ops->loss_and_grad(U, x, &lu);
    ck_assert_double_eq_tol(lt.loss, lu.loss, 1e-6 * lu.loss);
    ck_assert(lt.l0 > 0);
    for (size_t t = 0; t < m * d; t++)
        ck_assert_float_eq_tol(W->g[t], param(U, "W_e")->g[t] + param(U, "W_d")->g[t], 1e-6);
    for (size_t i = 0; i < m; i++)
        ck_assert_float_eq_tol(param(T, "b_e")->g[i], param(U, "b_e")->g[i], 1e-6);
    for (size_t j = 0; j < d; j++)
        ck_assert_float_eq_tol(param(T, "b_d")->g[j], param(U, "b_d")->g[j], 1e-6);
    gsl_matrix_float_free(x);
    gsl_rng_free(rng);
    sp_learner_free(U);
    sp_learner_free(T);
}
END_TEST

/* decode(encode(x)) is the x_hat of training (relu, relu with the MLP
 * encoder, topk, jumprelu; batchtopk's inference rule differs by design).
 * The training x_hat is read back from a one-sample batch: for an active
 * latent i, dW_d[i] = f_i 2c (x_hat - x) (no penalty acts on W_d here), so
 * x_hat = x + dW_d[i] / (2c f_i). Batches of 8: the mse agrees too. */
START_TEST(test_decode_encode_is_training_xhat)
{
    static const char *const archs[] = {"relu", "relu", "topk", "jumprelu"};
    const size_t d = 6, m = 9, B = 8;
    sp_sae_cfg c = mk_cfg(archs[_i], 1);
    c.mlp = _i == 1;
    sp_penalty_cfg pen = mk_pen(!strcmp(archs[_i], "relu") ? "l1"
                                : !strcmp(archs[_i], "jumprelu") ? "l0" : "none", 0.3);
    sp_learner *L = make(&c, &pen, d, m, B, 1000, 14);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 15);
    for (size_t i = 0; i < m; i++)
        param(L, "b_e")->w[i] = (float)(0.3 + 0.2 * gsl_rng_uniform(rng));
    for (size_t j = 0; j < d; j++)
        param(L, "b_d")->w[j] = (float)(0.2 * gsl_rng_uniform(rng) - 0.1);
    gsl_matrix_float *x = uniform_x(B, d, -0.5, 1.5, rng);
    gsl_matrix_float *f = gsl_matrix_float_alloc(B, m), *xh = gsl_matrix_float_alloc(B, d);
    L->ops->encode(L, x, f);
    L->ops->decode(L, f, xh);
    const float *gwd = param(L, "W_d")->g;
    for (size_t b = 0; b < B; b++) {
        gsl_matrix_float_const_view xb = gsl_matrix_float_const_submatrix(x, b, 0, 1, d);
        sp_loss ls;
        L->ops->loss_and_grad(L, &xb.matrix, &ls);
        size_t i = 0;
        for (size_t j = 1; j < m; j++)
            if (gsl_matrix_float_get(f, b, j) > gsl_matrix_float_get(f, b, i))
                i = j;
        float fi = gsl_matrix_float_get(f, b, i);
        ck_assert_msg(fi > 0, "%s: sample %zu has no active code", archs[_i], b);
        double cc = 1.0 / (double)d;
        for (size_t t = 0; t < d; t++) {
            double want = gsl_matrix_float_get(x, b, t) + gwd[i * d + t] / (2 * cc * fi);
            ck_assert_msg(fabs(gsl_matrix_float_get(xh, b, t) - want) < 1e-5,
                          "%s: sample %zu, x_hat[%zu] = %g by decode(encode), %g in training",
                          archs[_i], b, t, (double)gsl_matrix_float_get(xh, b, t), want);
        }
    }
    double mse = 0;
    for (size_t t = 0; t < B * d; t++)
        mse += ((double)xh->data[t] - x->data[t]) * ((double)xh->data[t] - x->data[t]);
    mse /= (double)(B * d);
    sp_loss ls;
    L->ops->loss_and_grad(L, x, &ls);
    ck_assert_double_eq_tol(ls.mse, mse, 1e-6 * mse);
    gsl_matrix_float_free(xh);
    gsl_matrix_float_free(f);
    gsl_matrix_float_free(x);
    gsl_rng_free(rng);
    sp_learner_free(L);
}
END_TEST

/* ---- resampling ---------------------------------------------------------------- */

/* Data of the easy truth: n features e_{2i} in d = 2n dimensions, each
 * present with probability prob at a magnitude uniform in [0, 1]. */
static void easy_batch(gsl_matrix_float *x, size_t n, double prob, gsl_rng *rng)
{
    gsl_matrix_float_set_zero(x);
    for (size_t b = 0; b < x->size1; b++)
        for (size_t i = 0; i < n; i++)
            if (gsl_rng_uniform(rng) < prob)
                gsl_matrix_float_set(x, b, 2 * i, (float)gsl_rng_uniform(rng));
}

/* One more Adam step on x at optimizer step t (1-based): every entry of
 * the per-latent rows of the latents lat (W_e or W, W_d: row i; b_e,
 * theta: entry i) with a gradient must move by the update from zero
 * moments, delta = lr_t (1 - b1) g / (sqrt((1 - b2) g^2) + eps_t) with
 * lr_t = lr sqrt(1 - b2^t) / (1 - b1^t), eps_t = eps sqrt(1 - b2^t)
 * (a unit-norm decoder row: before its rescaling to unit norm, which the
 * optimizer does in the same step).
 * Returns the number of such entries; *others and *others_fresh count the
 * entries of the other latents that moved, and those that moved the same
 * way (a reset that hit them as well). */
static size_t check_fresh_update(sp_learner *L, sp_optim *o, const sp_optim_cfg *oc, long t,
                                 const gsl_matrix_float *x, const size_t *lat, size_t n,
                                 size_t *others, size_t *others_fresh)
{
    sp_loss ls;
    L->ops->loss_and_grad(L, x, &ls);
    L->ops->pre_step(L);
    float **before = malloc(L->n_params * sizeof *before);
    for (size_t p = 0; p < L->n_params; p++) {
        before[p] = malloc(L->params[p].n * sizeof(float));
        memcpy(before[p], L->params[p].w, L->params[p].n * sizeof(float));
    }
    sp_optim_step(o);
    const double b1 = oc->beta1, b2 = oc->beta2;
    const double lr_t = oc->lr * sqrt(1 - pow(b2, (double)t)) / (1 - pow(b1, (double)t));
    const double eps_t = oc->eps * sqrt(1 - pow(b2, (double)t));
    size_t checked = 0;
    *others = *others_fresh = 0;
    for (size_t p = 0; p < L->n_params; p++) {
        const sp_param *pr = &L->params[p];
        int matrix = !strcmp(pr->name, "W_e") || !strcmp(pr->name, "W") ||
                     !strcmp(pr->name, "W_d");
        if (!matrix && strcmp(pr->name, "b_e") && strcmp(pr->name, "theta"))
            continue;
        size_t width = matrix ? pr->cols : 1;
        for (size_t i = 0; i < L->m; i++) {
            int mine = 0;
            for (size_t k = 0; k < n; k++)
                mine |= lat[k] == i;
            /* a unit-norm row (the decoder) is renormalised by the step:
             * the fresh update of its whole row (0 where g = 0), then the
             * rescaling, predict the row after it */
            double scale = 1;
            if (mine && pr->unit_rows) {
                double n2 = 0;
                for (size_t j = 0; j < width; j++) {
                    double g = pr->g[i * width + j];
                    double u = before[p][i * width + j] -
                               lr_t * (1 - b1) * g / (sqrt((1 - b2) * g * g) + eps_t);
                    n2 += u * u;
                }
                scale = 1 / sqrt(n2);
            }
            for (size_t j = 0; j < width; j++) {
                size_t q = i * width + j;
                double g = pr->g[q];
                if (fabs(g) < 1e-6)
                    continue;
                double want = lr_t * (1 - b1) * g / (sqrt((1 - b2) * g * g) + eps_t);
                double delta = (double)before[p][q] - pr->w[q];
                if (mine && pr->unit_rows) /* the update before the rescaling */
                    delta = (double)before[p][q] - pr->w[q] / scale;
                int fresh = fabs(delta - want) <= 1e-3 * fabs(want);
                if (mine) {
                    ck_assert_msg(fresh, "%s[%zu][%zu]: update %g, from zero moments %g",
                                  pr->name, i, j, delta, want);
                    checked++;
                } else {
                    *others_fresh += (size_t)fresh;
                    ++*others;
                }
            }
        }
    }
    for (size_t p = 0; p < L->n_params; p++)
        free(before[p]);
    free(before);
    return checked;
}

/* Acceptance test of resampling (Bricken et al. 2023) on a relu SAE:
 * latents 2, 9, 13 are killed (b_e = -100, encoder rows pointing away from
 * the non-negative data) and do not fire over a window of 30 steps; after
 * sp_resample each of them fires again, its atom is a unit normalised
 * candidate input (minus b_d), its encoder row is that direction times
 * 0.2 x the mean alive encoder norm, b_e = 0, and its Adam state is zero:
 * the next update of every entry with gradient g is the first update from
 * zero moments at the optimizer's step t,
 *   delta = lr sqrt(1 - b2^t) / (1 - b1^t) (1 - b1) g / (sqrt((1 - b2) g^2) + eps_t),
 * (|delta| = lr only at t = 1: the bias corrections use the global step
 * count), while the entries of alive latents, with their moments, move
 * differently. */
START_TEST(test_resample_revives)
{
    const size_t n = 8, d = 16, m = 16, B = 64, N = 256;
    const size_t dead[3] = {2, 9, 13};
    sp_sae_cfg c = mk_cfg("relu", 1);
    c.mse_per_sample = 1;
    sp_penalty_cfg pen = mk_pen("l1", 0.05);
    sp_optim_cfg oc = mk_adam(3e-3);
    sp_learner *L = make(&c, &pen, d, m, N, 100000, 16);
    sp_optim *o = sp_optim_alloc(&oc, L->params, L->n_params, 100000);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 17);
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, d);
    long steps = 0;
    for (; steps < 300; steps++) {
        easy_batch(x, n, 0.1, rng);
        sp_train_step(L, o, x, NULL);
    }
    sp_param *we = param(L, "W_e"), *be = param(L, "b_e"), *wd = param(L, "W_d");
    sp_param *bd = param(L, "b_d");
    for (size_t k = 0; k < 3; k++) {
        be->w[dead[k]] = -100;
        for (size_t j = 0; j < d; j++)
            we->w[dead[k] * d + j] = -0.25f;
    }
    unsigned long fired[16];
    memcpy(fired, L->fires, sizeof fired);
    for (; steps < 330; steps++) {
        easy_batch(x, n, 0.1, rng);
        sp_train_step(L, o, x, NULL);
    }
    for (size_t k = 0; k < 3; k++)
        ck_assert_msg(L->fires[dead[k]] == fired[dead[k]], "latent %zu fired", dead[k]);

    /* candidates and their losses */
    gsl_matrix_float *X = gsl_matrix_float_alloc(N, d), *F = gsl_matrix_float_alloc(N, m);
    gsl_matrix_float *XH = gsl_matrix_float_alloc(N, d);
    easy_batch(X, n, 0.1, rng);
    L->ops->encode(L, X, F);
    L->ops->decode(L, F, XH);
    double loss[256];
    for (size_t s = 0; s < N; s++) {
        loss[s] = 0;
        for (size_t t = 0; t < d; t++) {
            double r = (double)gsl_matrix_float_get(XH, s, t) - gsl_matrix_float_get(X, s, t);
            loss[s] += r * r;
        }
    }
    double alive = 0;
    for (size_t i = 0; i < m; i++) {
        if (i == dead[0] || i == dead[1] || i == dead[2])
            continue;
        double n2 = 0;
        for (size_t j = 0; j < d; j++)
            n2 += (double)we->w[i * d + j] * we->w[i * d + j];
        alive += sqrt(n2) / (double)(m - 3);
    }
    ck_assert_uint_eq(sp_resample(L, o, dead, 3, X, loss, bd->w, rng), 3);

    for (size_t k = 0; k < 3; k++) {
        size_t i = dead[k];
        double n2 = 0, en2 = 0;
        for (size_t j = 0; j < d; j++) {
            n2 += (double)wd->w[i * d + j] * wd->w[i * d + j];
            en2 += (double)we->w[i * d + j] * we->w[i * d + j];
            ck_assert_float_eq_tol(we->w[i * d + j], 0.2 * alive * wd->w[i * d + j], 1e-6);
        }
        ck_assert_double_eq_tol(n2, 1.0, 1e-6);
        ck_assert_double_eq_tol(sqrt(en2), 0.2 * alive, 1e-6);
        ck_assert_float_eq(be->w[i], 0.0f);
        /* the atom is one of the candidates, minus b_d, normalised */
        int match = 0;
        for (size_t s = 0; s < N && !match; s++) {
            double q2 = 0, diff = 0;
            for (size_t t = 0; t < d; t++) {
                double v = (double)gsl_matrix_float_get(X, s, t) - bd->w[t];
                q2 += v * v;
            }
            for (size_t t = 0; t < d; t++) {
                double v = ((double)gsl_matrix_float_get(X, s, t) - bd->w[t]) / sqrt(q2);
                diff = fmax(diff, fabs(v - wd->w[i * d + t]));
            }
            match = diff < 1e-6;
        }
        ck_assert_msg(match, "atom %zu is no normalised candidate input", i);
    }
    /* they fire again */
    easy_batch(X, n, 0.1, rng);
    L->ops->encode(L, X, F);
    for (size_t k = 0; k < 3; k++) {
        size_t on = 0;
        for (size_t s = 0; s < N; s++)
            on += gsl_matrix_float_get(F, s, dead[k]) > 0;
        ck_assert_msg(on > 0, "resampled latent %zu does not fire on %zu inputs", dead[k], N);
    }
    /* the next Adam update of their entries starts from zero moments */
    easy_batch(x, n, 0.1, rng);
    size_t others = 0, others_fresh = 0;
    size_t checked = check_fresh_update(L, o, &oc, steps + 1, x, dead, 3, &others, &others_fresh);
    ck_assert_msg(checked >= 3, "only %zu resampled entries had a gradient", checked);
    ck_assert_msg(others > 0 && others_fresh < others / 2,
                  "%zu of %zu alive entries look reset", others_fresh, others);
    gsl_matrix_float_free(XH);
    gsl_matrix_float_free(F);
    gsl_matrix_float_free(X);
    gsl_matrix_float_free(x);
    gsl_rng_free(rng);
    sp_optim_free(o);
    sp_learner_free(L);
}
END_TEST

/* Resampling with the other options: jumprelu (theta back to theta0),
 * the MLP encoder (latent i's encoder row is the hidden code of the
 * direction, ReLU(W_1 dir + b_1), at 0.2 x the mean alive norm) and tied
 * weights (the shared row is the unit atom itself: the encoder cannot take
 * another norm). In each the optimizer state of the latent's entries is
 * reset, and only theirs. */
START_TEST(test_resample_options)
{
    const size_t d = 6, m = 9, B = 32, N = 16, lat = 4;
    sp_sae_cfg c = mk_cfg(_i == 0 ? "jumprelu" : "relu", 1);
    c.mlp = _i == 1;
    c.tied = _i == 2;
    c.theta0 = 0.05;
    sp_penalty_cfg pen = mk_pen(_i == 0 ? "l0" : "l1", 0.01);
    sp_optim_cfg oc = mk_adam(1e-2);
    sp_learner *L = make(&c, &pen, d, m, B, 1000, 19);
    sp_optim *o = sp_optim_alloc(&oc, L->params, L->n_params, 1000);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 20);
    gsl_matrix_float *x = uniform_x(B, d, 0, 1, rng), *X = uniform_x(N, d, 0, 1, rng);
    for (int s = 0; s < 5; s++)
        sp_train_step(L, o, x, NULL);
    sp_param *th = param(L, "theta"), *be = param(L, "b_e"), *bd = param(L, "b_d");
    sp_param *w1 = param(L, "W_1"), *b1 = param(L, "b_1");
    const gsl_matrix_float *E = L->enc_rows;
    double alive = 0;
    for (size_t i = 0; i < m; i++)
        if (i != lat) {
            double n2 = 0;
            for (size_t j = 0; j < E->size2; j++)
                n2 += (double)gsl_matrix_float_get(E, i, j) * gsl_matrix_float_get(E, i, j);
            alive += sqrt(n2) / (double)(m - 1);
        }
    if (th)
        th->w[lat] = 0.7f;
    double loss[16];
    for (size_t s = 0; s < N; s++)
        loss[s] = 1;
    ck_assert_uint_eq(sp_resample(L, o, &lat, 1, X, loss, bd->w, rng), 1);
    /* the atom: a candidate minus b_d, normalised */
    const float *dir = gsl_matrix_float_const_ptr(L->decoder, lat, 0);
    int match = 0;
    for (size_t s = 0; s < N && !match; s++) {
        double q2 = 0, diff = 0;
        for (size_t t = 0; t < d; t++)
            q2 += pow((double)gsl_matrix_float_get(X, s, t) - bd->w[t], 2);
        for (size_t t = 0; t < d; t++)
            diff = fmax(diff, fabs(((double)gsl_matrix_float_get(X, s, t) - bd->w[t]) / sqrt(q2) -
                                   dir[t]));
        match = diff < 1e-6;
    }
    ck_assert_msg(match, "the atom is no normalised candidate input");
    ck_assert_float_eq(be->w[lat], 0.0f);
    if (th)
        ck_assert_float_eq(th->w[lat], (float)c.theta0);
    const float *er = gsl_matrix_float_const_ptr(E, lat, 0);
    if (c.tied) {
        ck_assert_ptr_eq(E, L->decoder);
    } else {
        /* the encoder row: the direction (its hidden code with the MLP),
         * scaled to 0.2 x the mean alive norm */
        size_t H = E->size2;
        double code[64], n2 = 0;
        for (size_t h = 0; h < H; h++) {
            double v = w1 ? b1->w[h] : dir[h];
            if (w1) {
                for (size_t t = 0; t < d; t++)
                    v += (double)w1->w[h * d + t] * dir[t];
                v = v > 0 ? v : 0;
            }
            code[h] = v;
            n2 += v * v;
        }
        ck_assert(n2 > 0);
        for (size_t h = 0; h < H; h++)
            ck_assert_msg(fabs(er[h] - 0.2 * alive * code[h] / sqrt(n2)) < 1e-6,
                          "encoder row entry %zu: %g, want %g", h, (double)er[h],
                          0.2 * alive * code[h] / sqrt(n2));
    }
    /* inputs along the atom (some weakly) switch it on, and its entries
     * start afresh */
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < d; t++)
            gsl_matrix_float_set(x, b, t, bd->w[t] + (float)(4 * gsl_rng_uniform(rng) - 1) * dir[t] +
                                 (float)(0.1 * gsl_rng_uniform(rng)));
    size_t others, others_fresh;
    size_t checked = check_fresh_update(L, o, &oc, 6, x, &lat, 1, &others, &others_fresh);
    ck_assert_msg(checked >= d, "only %zu entries of the resampled latent had a gradient",
                  checked);
    if (th) /* some inputs put p within eps / 2 of theta: its reset is checked too */
        ck_assert_msg(th->g[lat] != 0, "no threshold gradient for the resampled latent");
    ck_assert_msg(others > 0 && others_fresh < others / 2, "%zu of %zu other entries look reset",
                  others_fresh, others);
    gsl_matrix_float_free(X);
    gsl_matrix_float_free(x);
    gsl_rng_free(rng);
    sp_optim_free(o);
    sp_learner_free(L);
}
END_TEST

/* ---- the unit-norm constraint and Adam ----------------------------------------- */

/* The projected decoder gradient is orthogonal to each atom; after a step
 * every atom has unit norm again. */
START_TEST(test_unit_norm_constraint)
{
    const size_t d = 10, m = 20, B = 32;
    sp_sae_cfg c = mk_cfg("relu", 0);
    sp_penalty_cfg pen = mk_pen("l1", 0.1);
    sp_optim_cfg oc = mk_adam(0.05);
    sp_learner *L = make(&c, &pen, d, m, B, 1000, 18);
    sp_optim *o = sp_optim_alloc(&oc, L->params, L->n_params, 100000);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_matrix_float *x = uniform_x(B, d, 0, 1, rng);
    sp_loss ls;
    L->ops->loss_and_grad(L, x, &ls);
    L->ops->pre_step(L);
    double worst = 0;
    for (size_t i = 0; i < m; i++) {
        double dot = 0;
        for (size_t j = 0; j < d; j++)
            dot += gsl_matrix_float_get(L->decoder, i, j) *
                   gsl_matrix_float_get(L->decoder_grad, i, j);
        worst = fmax(worst, fabs(dot));
    }
    ck_assert_msg(worst < 1e-6, "projected gradient has component %g along its atom", worst);
    for (int s = 0; s < 20; s++)
        sp_train_step(L, o, x, NULL);
    for (size_t i = 0; i < m; i++) {
        double n2 = 0;
        for (size_t j = 0; j < d; j++)
            n2 += gsl_matrix_float_get(L->decoder, i, j) * gsl_matrix_float_get(L->decoder, i, j);
        ck_assert_double_eq_tol(n2, 1.0, 1e-5);
    }
    gsl_matrix_float_free(x);
    gsl_rng_free(rng);
    sp_optim_free(o);
    sp_learner_free(L);
}
END_TEST

/* Adam by hand (Kingma & Ba 2015, Alg. 1), lr 0.1, b1 0.9, b2 0.999,
 * eps 1e-8, gradients 2 then -1 on w0 = 1:
 *  t=1: m = 0.2, v = 0.004, mhat = 2, vhat = 4 -> w = 1 - 0.1 * 2/2 = 0.9
 *  t=2: m = 0.18 - 0.1 = 0.08, v = 0.003996 + 0.001 = 0.004996,
 *       mhat = 0.08/0.19 = 0.421053, vhat = 0.004996/0.001999 = 2.499250
 *       w = 0.9 - 0.1 * 0.421053 / 1.580902 = 0.873366 */
START_TEST(test_adam_by_hand)
{
    float w = 1, g = 2;
    sp_param p = {"w", &w, &g, 1, 1, 1, 1, NULL, 0};
    sp_optim_cfg oc = mk_adam(0.1);
    sp_optim *o = sp_optim_alloc(&oc, &p, 1, 1000);
    sp_optim_step(o);
    ck_assert_double_eq_tol(w, 0.9, 1e-6);
    g = -1;
    sp_optim_step(o);
    ck_assert_double_eq_tol(w, 0.873366, 2e-6);
    /* after a reset the moments are zero: a gradient of 2 moves w by
     * lr * mhat / sqrt(vhat) with the bias corrections of step 3:
     * m = 0.2, v = 0.004, mhat = 0.2 / 0.271, vhat = 0.004 / 0.002997 */
    sp_optim_reset(o, 0, 0, 1);
    g = 2;
    float before = w;
    sp_optim_step(o);
    double mhat = 0.2 / (1 - 0.729), vhat = 0.004 / (1 - 0.997002999);
    ck_assert_double_eq_tol(before - w, 0.1 * mhat / (sqrt(vhat) + 1e-8), 2e-6);
    sp_optim_free(o);
    /* AdamW: decoupled decay subtracts lr * wd * w */
    w = 1, g = 0;
    oc.weight_decay = 0.5;
    o = sp_optim_alloc(&oc, &p, 1, 1000);
    sp_optim_step(o);
    ck_assert_double_eq_tol(w, 0.95, 1e-6);
    sp_optim_free(o);
}
END_TEST

/* ---- configuration errors ----------------------------------------------------- */

static void assert_rejects(const sp_sae_cfg *c, const sp_penalty_cfg *pen, size_t m,
                           const char *key, const char *also)
{
    const char *msg = sp_sae_check(c, pen);
    if (!msg)
        msg = sp_sae_check_latents(c, m, 6);
    ck_assert_msg(msg != NULL, "%s accepted", key);
    ck_assert_msg(strstr(msg, key) != NULL, "message '%s' does not name %s", msg, key);
    if (also)
        ck_assert_msg(strstr(msg, also) != NULL, "message '%s' does not say '%s'", msg, also);
    /* the allocator refuses it too, with the same message */
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    sp_err e;
    memset(&e, 0, sizeof e);
    ck_assert_ptr_null(sp_learner_alloc(c, pen, 6, m, 4, 100, rng, &e));
    ck_assert_msg(strstr(e.msg, key) != NULL, "sp_learner_alloc: '%s'", e.msg);
    gsl_rng_free(rng);
}

START_TEST(test_bad_config)
{
    sp_penalty_cfg l1 = mk_pen("l1", 0.1), l0 = mk_pen("l0", 0.1), none = mk_pen("none", 0);
    sp_sae_cfg c = mk_cfg("relu", 1);
    ck_assert_ptr_null(sp_sae_check(&c, &l1));
    ck_assert_ptr_null(sp_sae_check_latents(&c, 9, 6));

    c = mk_cfg("resnet", 1);
    assert_rejects(&c, &l1, 9, "model.arch", sp_sae_archs());
    ck_assert(strstr(sp_sae_archs(), "batchtopk") && strstr(sp_sae_archs(), "jumprelu"));
    c = mk_cfg("topk", 1);
    assert_rejects(&c, &l1, 9, "train.penalty", "needs ReLU activations");
    c = mk_cfg("batchtopk", 1);
    assert_rejects(&c, &l1, 9, "train.penalty", "needs ReLU activations");
    c = mk_cfg("jumprelu", 1);
    assert_rejects(&c, &l1, 9, "train.penalty", "l0");
    c = mk_cfg("relu", 1);
    assert_rejects(&c, &l0, 9, "train.penalty = l0", "jumprelu");
    c.tied = 1;
    c.mlp = 1;
    assert_rejects(&c, &l1, 9, "model.tied", "model.encoder = mlp");
    c = mk_cfg("relu", 1);
    snprintf(c.prefixes, sizeof c.prefixes, "2, 5, 5");
    assert_rejects(&c, &l1, 9, "model.prefixes", "increasing");
    snprintf(c.prefixes, sizeof c.prefixes, "5, 2");
    assert_rejects(&c, &l1, 9, "model.prefixes", "increasing");
    snprintf(c.prefixes, sizeof c.prefixes, "2, 12");
    ck_assert_ptr_null(sp_sae_check(&c, &l1)); /* needs m: */
    assert_rejects(&c, &l1, 9, "model.prefixes", "12");
    snprintf(c.prefixes, sizeof c.prefixes, "2, 9");
    ck_assert_ptr_null(sp_sae_check_latents(&c, 9, 6));
    c = mk_cfg("topk", 1);
    c.k = 10;
    ck_assert_ptr_null(sp_sae_check(&c, &none));
    assert_rejects(&c, &none, 9, "model.k", "10");
    c = mk_cfg("batchtopk", 1);
    c.k = 10;
    assert_rejects(&c, &none, 9, "model.k", "10");
    c = mk_cfg("jumprelu", 1);
    ck_assert_ptr_null(sp_sae_check(&c, &l0));
}
END_TEST

/* ---- training --------------------------------------------------------------------- */

/* Trains on the easy truth (8 orthonormal features in 16 dimensions,
 * present with probability 0.2 at magnitudes uniform in [0, 1]) with Adam
 * and returns the MMCS of the decoder against the truth. */
static double train_easy(const sp_sae_cfg *c, const sp_penalty_cfg *pen, double lr, int steps,
                         size_t m)
{
    const size_t d = 16, n = 8, B = 64;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 5);
    gsl_matrix_float *truth = gsl_matrix_float_calloc(n, d);
    for (size_t i = 0; i < n; i++)
        gsl_matrix_float_set(truth, i, 2 * i, 1.0f);
    sp_optim_cfg oc = mk_adam(lr);
    sp_err e;
    sp_learner *L = sp_sae_alloc(c, pen, d, m, B, steps, rng, &e);
    ck_assert_msg(L != NULL, "%s", e.msg);
    sp_optim *o = sp_optim_alloc(&oc, L->params, L->n_params, steps);
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, d);
    for (int s = 0; s < steps; s++) {
        easy_batch(x, n, 0.2, rng);
        double loss = sp_train_step(L, o, x, NULL);
        ck_assert_msg(isfinite(loss), "%s diverged at step %d", c->arch, s);
    }
    double mmcs = sp_metric_mmcs(truth, L->decoder, NULL);
    gsl_matrix_float_free(x);
    gsl_matrix_float_free(truth);
    sp_optim_free(o);
    sp_learner_free(L);
    gsl_rng_free(rng);
    return mmcs;
}

/* Known answer: with 16 latents the relu SAE recovers all 8 features
 * (MMCS > 0.99). (With exactly 8 latents one that dies at initialisation
 * is never revived without resampling.) */
START_TEST(test_recovers_easy_truth)
{
    sp_sae_cfg c = mk_cfg("relu", 0);
    c.mse_per_sample = 1;
    sp_penalty_cfg pen = mk_pen("l1", 0.05);
    double mmcs = train_easy(&c, &pen, 3e-3, 3000, 16);
    ck_assert_msg(mmcs > 0.99, "relu MMCS %g", mmcs);
}
END_TEST

START_TEST(test_topk_recovers_easy_truth)
{
    sp_sae_cfg c = mk_cfg("topk", 0);
    c.mse_per_sample = 1;
    c.k = 2;
    c.aux_coef = 1.0 / 32;
    c.dead_steps = 100;
    sp_penalty_cfg pen = mk_pen("none", 0);
    double mmcs = train_easy(&c, &pen, 3e-3, 3000, 16);
    ck_assert_msg(mmcs > 0.9, "topk MMCS %g", mmcs);
}
END_TEST

START_TEST(test_jumprelu_recovers_easy_truth)
{
    sp_sae_cfg c = mk_cfg("jumprelu", 0);
    c.mse_per_sample = 1;
    c.theta0 = 0.05;
    c.bandwidth = 0.05;
    sp_penalty_cfg pen = mk_pen("l0", 0.05);
    double mmcs = train_easy(&c, &pen, 3e-3, 3000, 16);
    ck_assert_msg(mmcs > 0.9, "jumprelu MMCS %g", mmcs);
}
END_TEST

/* ---- sparse kernels ------------------------------------------------------ */

/* One configuration of the sparse-vs-dense comparison. density: the
 * encoder bias is set so that about this share of pre-activations is
 * positive (relu), or k = density * m (topk, batchtopk). */
typedef struct {
    const char *arch, *pen;
    int pre_bias;
    double aux;     /* AuxK coefficient (topk, batchtopk); all latents start dead */
    size_t m, B;
    double density;
    int supported;  /* 0: the model must fall back to the dense kernels */
} sparse_case;

static const sparse_case sparse_cases[] = {
    {"relu", "l1", 0, 0, 64, 1, 0.05, 1},
    {"relu", "l1", 1, 0, 512, 64, 0.02, 1},
    {"relu", "l1", 1, 0, 256, 32, 0.6, 1},
    {"relu", "lp", 1, 0, 128, 16, 0.1, 1},
    {"relu", "log", 0, 0, 200, 48, 0.08, 1},
    {"relu", "cauchy", 1, 0, 96, 7, 0.3, 1},
    {"relu", "panneal", 1, 0, 64, 64, 0.1, 1},
    {"relu", "none", 1, 0, 128, 8, 0.1, 1},
    {"relu", "tanh", 1, 0, 128, 16, 0.1, 0},
    {"relu", "l1_dnorm", 0, 0, 128, 16, 0.1, 0},
    {"topk", "none", 1, 0, 256, 32, 0.03, 1},
    {"topk", "none", 0, 0, 64, 5, 0.5, 1},
    {"topk", "none", 1, 0.25, 512, 64, 0.02, 1},
    {"topk", "none", 0, 0.25, 128, 16, 0.2, 1},
    {"batchtopk", "none", 1, 0, 256, 32, 0.05, 1},
    {"batchtopk", "none", 1, 0.25, 128, 64, 0.1, 1},
};

/* max |a - b| / max |b| over n floats (0 when b is all zero and a == b). */
static double rel_err(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t t = 0; t < n; t++) {
        num = fmax(num, fabs((double)a[t] - (double)b[t]));
        den = fmax(den, fabs((double)b[t]));
    }
    return den > 0 ? num / den : num;
}

static sp_learner *sparse_learner(const sparse_case *k, int mode, size_t d)
{
    sp_sae_cfg c = mk_cfg(k->arch, k->pre_bias);
    c.sparse = mode;
    c.k = (int)fmax(1.0, floor(k->density * (double)k->m + 0.5));
    c.aux_coef = k->aux;
    c.k_aux = 8;
    c.dead_steps = 10;
    sp_penalty_cfg pen = mk_pen(k->pen, 0.3);
    sp_learner *L = make(&c, &pen, d, k->m, k->B, 2000, 41);
    L->step = 600; /* all latents dead for AuxK; panneal in its annealing window */
    return L;
}

/* Sparse and dense kernels on the same parameters and batch: every loss
 * term and every gradient equal within float32 rounding. Both compute the
 * same sums (the dense GEMMs add exact zeros for the inactive codes) in
 * another order; each entry is a sum of at most max(m, B, d) <= 512 float
 * products, whose rounding differs by at most ~n eps (sum |terms|) in the
 * worst case and ~sqrt(n) eps in practice (eps = 6e-8): 1e-5 of the
 * largest entry of each gradient leaves a margin of ~100 over the typical
 * error (measured worst about 2e-7) while a missing or misplaced term
 * (one active code, one AuxK entry) is of the order of the entries
 * themselves. Two steps each, so that the second sees the first's firing
 * (AuxK then leaves out latents that fired). */
START_TEST(test_sparse_equals_dense)
{
    const sparse_case *k = &sparse_cases[_i];
    const size_t d = 24;
    sp_learner *Ld = sparse_learner(k, SP_SPARSE_DENSE, d);
    sp_learner *Ls = sparse_learner(k, SP_SPARSE_SPARSE, d);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 43 + (unsigned long)_i);
    gsl_matrix_float *x = uniform_x(k->B, d, -1, 1, rng);
    /* relu: shift the encoder biases so that a share ~density of the
     * pre-activations is positive (pre-activations ~ +-|x| |w_e|) */
    if (!strcmp(k->arch, "relu")) {
        sp_param *be = param(Ld, "b_e");
        double z = gsl_cdf_ugaussian_Qinv(k->density);
        for (size_t i = 0; i < k->m; i++)
            be->w[i] = (float)(-z * 0.6 + 0.05 * gsl_ran_gaussian(rng, 1.0));
        memcpy(param(Ls, "b_e")->w, be->w, k->m * sizeof(float));
    }
    if (k->pre_bias)
        for (size_t t = 0; t < d; t++)
            param(Ld, "b_d")->w[t] = param(Ls, "b_d")->w[t] = (float)gsl_ran_gaussian(rng, 0.1);
    for (int call = 0; call < 2; call++) {
        sp_loss ld, ls;
        Ld->ops->loss_and_grad(Ld, x, &ld);
        Ls->ops->loss_and_grad(Ls, x, &ls);
        ck_assert_int_eq(sp_sae_last_sparse(Ld), 0);
        ck_assert_int_eq(sp_sae_last_sparse(Ls), k->supported);
        const double lt[5][2] = {{ls.loss, ld.loss}, {ls.mse, ld.mse}, {ls.penalty, ld.penalty},
                                 {ls.aux, ld.aux}, {ls.l0, ld.l0}};
        for (int q = 0; q < 5; q++)
            ck_assert_msg(fabs(lt[q][0] - lt[q][1]) <= 1e-5 * fabs(lt[q][1]) + 1e-12,
                          "case %d call %d term %d: sparse %.9g dense %.9g", _i, call, q,
                          lt[q][0], lt[q][1]);
        if (k->aux > 0 && call == 0)
            ck_assert_msg(ld.aux > 0, "case %d: AuxK inactive", _i);
        for (size_t p = 0; p < Ld->n_params; p++) {
            const sp_param *pd = &Ld->params[p], *ps = &Ls->params[p];
            double e = rel_err(ps->g, pd->g, pd->n);
            ck_assert_msg(e <= 1e-5, "case %d (%s %s, m %zu, B %zu, density %g) call %d: "
                          "gradient of %s differs by %.3g of its largest entry", _i, k->arch,
                          k->pen, k->m, k->B, k->density, call, pd->name, e);
        }
        for (size_t i = 0; i < k->m; i++)
            ck_assert_uint_eq(Ld->fires[i], Ls->fires[i]);
    }
    gsl_matrix_float_free(x);
    gsl_rng_free(rng);
    sp_learner_free(Ls);
    sp_learner_free(Ld);
}
END_TEST

/* model.sparse = auto takes the sparse kernels below the threshold
 * density and the GEMMs above it. */
START_TEST(test_sparse_auto_switch)
{
    const size_t d = 16, m = 256, B = 32;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 47);
    gsl_matrix_float *x = uniform_x(B, d, -1, 1, rng);
    const struct {
        const char *arch;
        int k;
        float bias;
        int want;
    } cases[] = {{"relu", 1, -3.0f, 1}, {"relu", 1, 3.0f, 0}, {"topk", 2, 0, 1},
                 {"topk", 200, 3.0f, 0}};
    for (size_t q = 0; q < 4; q++) {
        sp_sae_cfg c = mk_cfg(cases[q].arch, 1);
        c.k = cases[q].k;
        sp_penalty_cfg pen = mk_pen(strcmp(cases[q].arch, "relu") ? "none" : "l1", 0.1);
        sp_learner *L = make(&c, &pen, d, m, B, 100, 48);
        ck_assert_int_eq(sp_sae_last_sparse(L), -1);
        for (size_t i = 0; i < m; i++)
            param(L, "b_e")->w[i] = cases[q].bias;
        sp_loss ls;
        L->ops->loss_and_grad(L, x, &ls);
        double density = ls.l0 / (double)m;
        ck_assert_msg((density < sp_sae_sparse_threshold) == cases[q].want,
                      "case %zu: density %g", q, density);
        ck_assert_msg(sp_sae_last_sparse(L) == cases[q].want, "case %zu (density %g): %s", q,
                      density, cases[q].want ? "dense" : "sparse");
        sp_learner_free(L);
    }
    /* a model outside the sparse kernels' scope (tied) never uses them */
    sp_sae_cfg c = mk_cfg("relu", 1);
    c.tied = 1;
    c.sparse = SP_SPARSE_SPARSE;
    sp_penalty_cfg pen = mk_pen("l1", 0.1);
    sp_learner *L = make(&c, &pen, d, m, B, 100, 48);
    sp_loss ls;
    L->ops->loss_and_grad(L, x, &ls);
    ck_assert_int_eq(sp_sae_last_sparse(L), 0);
    sp_learner_free(L);
    gsl_matrix_float_free(x);
    gsl_rng_free(rng);
}
END_TEST

/* A sparse step tells Adam which rows of gW_e and gW_d it wrote (the
 * row masks of optim.h), and Adam leaves the others unread. Taking the
 * masks away (Adam then reads every row, zeros included) must give the
 * same bits after 40 steps: this holds only if the masks cover every row
 * the step wrote (active latents, AuxK's dead latents) and every other
 * row is zero. relu L1 with a pre-encoder bias and topk with AuxK, unit
 * decoder norm, on the same batches. */
START_TEST(test_sparse_masks_same_bits)
{
    const size_t d = 24, m = 128, B = 32;
    const struct {
        const char *arch, *pen;
        double aux;
    } cases[] = {{"relu", "l1", 0}, {"topk", "none", 0.25}};
    for (size_t q = 0; q < 2; q++) {
        sp_sae_cfg c = mk_cfg(cases[q].arch, 1);
        c.sparse = SP_SPARSE_SPARSE;
        c.k = 3;
        c.aux_coef = cases[q].aux;
        c.k_aux = 8;
        c.dead_steps = 5;
        sp_penalty_cfg pen = mk_pen(cases[q].pen, 0.3);
        sp_learner *L1 = make(&c, &pen, d, m, B, 100, 91);
        sp_learner *L2 = make(&c, &pen, d, m, B, 100, 91);
        if (!strcmp(cases[q].arch, "relu"))
            for (size_t i = 0; i < m; i++) /* about 5% of the codes active */
                param(L1, "b_e")->w[i] = param(L2, "b_e")->w[i] = -0.9f;
        for (size_t p = 0; p < L2->n_params; p++)
            L2->params[p].live = NULL;
        sp_optim_cfg oc = mk_adam(1e-2);
        sp_optim *o1 = sp_optim_alloc(&oc, L1->params, L1->n_params, 100);
        sp_optim *o2 = sp_optim_alloc(&oc, L2->params, L2->n_params, 100);
        gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
        gsl_rng_set(rng, 92);
        int n_sparse = 0;
        for (int t = 0; t < 40; t++) {
            gsl_matrix_float *x = uniform_x(B, d, -1, 1, rng);
            sp_loss l1, l2;
            sp_train_step(L1, o1, x, &l1);
            sp_train_step(L2, o2, x, &l2);
            n_sparse += sp_sae_last_sparse(L1) == 1;
            ck_assert_msg(l1.loss == l2.loss, "%s step %d: loss %.9g with masks, %.9g without",
                          cases[q].arch, t, l1.loss, l2.loss);
            gsl_matrix_float_free(x);
        }
        ck_assert_int_eq(n_sparse, 40);
        for (size_t p = 0; p < L1->n_params; p++)
            ck_assert_msg(!memcmp(L1->params[p].w, L2->params[p].w,
                                  L1->params[p].n * sizeof(float)),
                          "%s: %s differs with the row masks", cases[q].arch,
                          L1->params[p].name);
        gsl_rng_free(rng);
        sp_optim_free(o1);
        sp_optim_free(o2);
        sp_learner_free(L1);
        sp_learner_free(L2);
    }
}
END_TEST

/* relu lists its codes in one pass over the product (relu_list); when the
 * batch is too dense for the sparse kernels it rebuilds F from the list.
 * That step must equal the model.sparse = dense step bit for bit (the same
 * float additions, then the same GEMMs), for every penalty that can take
 * it: its value summed over the list, its derivative added at the listed
 * entries (sp_penalty_eval_list), and dp and db_e in one pass. */
START_TEST(test_relu_list_dense_fallback)
{
    const size_t d = 16, m = 96, B = 24;
    const char *pens[5] = {"l1", "cauchy", "lp", "log", "panneal"};
    for (int q = 0; q < 10; q++) {
        int pre_bias = q % 2;
        sp_sae_cfg c = mk_cfg("relu", pre_bias);
        sp_penalty_cfg pen = mk_pen(pens[q / 2], 0.2);
        c.sparse = SP_SPARSE_AUTO;
        sp_learner *La = make(&c, &pen, d, m, B, 100, 93);
        c.sparse = SP_SPARSE_DENSE;
        sp_learner *Ld = make(&c, &pen, d, m, B, 100, 93);
        gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
        gsl_rng_set(rng, 94);
        gsl_matrix_float *x = uniform_x(B, d, -1, 1, rng);
        if (pre_bias)
            for (size_t t = 0; t < d; t++)
                param(La, "b_d")->w[t] = param(Ld, "b_d")->w[t] = 0.1f * (float)t - 0.7f;
        sp_loss la, ld;
        La->ops->loss_and_grad(La, x, &la);
        Ld->ops->loss_and_grad(Ld, x, &ld);
        ck_assert_int_eq(sp_sae_last_sparse(La), 0); /* about half the codes active */
        ck_assert(la.l0 > 0.3 * (double)m);
        ck_assert(la.loss == ld.loss && la.l0 == ld.l0);
        for (size_t p = 0; p < La->n_params; p++)
            ck_assert_msg(!memcmp(La->params[p].g, Ld->params[p].g,
                                  La->params[p].n * sizeof(float)),
                          "%s, pre_bias %d: gradient of %s differs", pens[q / 2], pre_bias,
                          La->params[p].name);
        for (size_t i = 0; i < m; i++)
            ck_assert_uint_eq(La->fires[i], Ld->fires[i]);
        gsl_matrix_float_free(x);
        gsl_rng_free(rng);
        sp_learner_free(La);
        sp_learner_free(Ld);
    }
}
END_TEST

/* The hot kernels with an AVX2 build (relu's code listing, the sums of
 * squares of the norms) must give the same bits as their generic build:
 * 30 sparse steps of relu L1 (unit decoder norm, Adam, whose update
 * kernels have AVX2 builds too), and sp_sumsq on
 * rows of every length 0..40, each way. On a CPU without AVX2 both runs
 * take the generic path and the test checks only determinism. */
START_TEST(test_generic_kernels_same_bits)
{
    const size_t d = 40, m = 160, B = 24;
    sp_learner *L[2];
    for (int generic = 0; generic < 2; generic++) {
        sp_cpu_force_generic(generic);
        sp_sae_cfg c = mk_cfg("relu", 1);
        c.sparse = SP_SPARSE_SPARSE;
        sp_penalty_cfg pen = mk_pen("l1", 0.3);
        L[generic] = make(&c, &pen, d, m, B, 100, 95);
        for (size_t i = 0; i < m; i++)
            param(L[generic], "b_e")->w[i] = -0.8f;
        sp_optim_cfg oc = mk_adam(1e-2);
        sp_optim *o = sp_optim_alloc(&oc, L[generic]->params, L[generic]->n_params, 100);
        gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
        gsl_rng_set(rng, 96);
        for (int t = 0; t < 30; t++) {
            gsl_matrix_float *x = uniform_x(B, d, -1, 1, rng);
            sp_train_step(L[generic], o, x, NULL);
            ck_assert_int_eq(sp_sae_last_sparse(L[generic]), 1);
            gsl_matrix_float_free(x);
        }
        gsl_rng_free(rng);
        sp_optim_free(o);
    }
    sp_cpu_force_generic(0);
    for (size_t p = 0; p < L[0]->n_params; p++)
        ck_assert_msg(!memcmp(L[0]->params[p].w, L[1]->params[p].w,
                              L[0]->params[p].n * sizeof(float)),
                      "%s differs between the AVX2 and the generic kernels",
                      L[0]->params[p].name);
    for (size_t i = 0; i < m; i++)
        ck_assert_uint_eq(L[0]->fires[i], L[1]->fires[i]);
    float v[40];
    for (size_t n = 0; n <= 40; n++) {
        for (size_t t = 0; t < n; t++)
            v[t] = (float)sin(1.0 + 0.37 * (double)(t * t + n));
        double a = sp_sumsq(v, n);
        sp_cpu_force_generic(1);
        double b = sp_sumsq(v, n);
        sp_cpu_force_generic(0);
        ck_assert_msg(a == b, "sp_sumsq n %zu: %.17g and %.17g", n, a, b);
    }
    sp_learner_free(L[0]);
    sp_learner_free(L[1]);
}
END_TEST

Suite *make_sae_suite(void)
{
    Suite *s = suite_create("sae");
    TCase *fd = tcase_create("gradients");
    tcase_set_timeout(fd, 60);
    tcase_add_test(fd, test_fd_plain);
    tcase_add_test(fd, test_fd_per_sample_per_latent);
    tcase_add_loop_test(fd, test_fd_penalty, 0, (int)(sizeof penalties / sizeof *penalties));
    tcase_add_test(fd, test_fd_tied);
    tcase_add_loop_test(fd, test_fd_mlp, 0, 2);
    tcase_add_test(fd, test_fd_matryoshka_fixed);
    tcase_add_test(fd, test_fd_matryoshka_sampled);
    tcase_add_test(fd, test_fd_prestd);
    tcase_add_test(fd, test_fd_topk);
    tcase_add_test(fd, test_fd_topk_auxk);
    tcase_add_test(fd, test_fd_batchtopk);
    tcase_add_test(fd, test_fd_jumprelu);
    suite_add_tcase(s, fd);

    TCase *ka = tcase_create("known answers");
    tcase_set_timeout(ka, 60);
    tcase_add_test(ka, test_loss_by_hand);
    tcase_add_test(ka, test_topk_keeps_k);
    tcase_add_test(ka, test_batchtopk_rule_and_threshold);
    tcase_add_test(ka, test_jumprelu_theta_grad);
    tcase_add_test(ka, test_matryoshka_fixed_terms);
    tcase_add_test(ka, test_matryoshka_sampled_terms);
    tcase_add_test(ka, test_tied_equals_untied_sum);
    tcase_add_loop_test(ka, test_decode_encode_is_training_xhat, 0, 4);
    tcase_add_test(ka, test_resample_revives);
    tcase_add_loop_test(ka, test_resample_options, 0, 3);
    tcase_add_test(ka, test_unit_norm_constraint);
    tcase_add_test(ka, test_adam_by_hand);
    tcase_add_test(ka, test_bad_config);
    suite_add_tcase(s, ka);

    TCase *tr = tcase_create("training");
    tcase_set_timeout(tr, 60);
    tcase_add_test(tr, test_recovers_easy_truth);
    tcase_add_test(tr, test_topk_recovers_easy_truth);
    tcase_add_test(tr, test_jumprelu_recovers_easy_truth);
    suite_add_tcase(s, tr);

    TCase *sk = tcase_create("sparse kernels");
    tcase_set_timeout(sk, 60);
    tcase_add_loop_test(sk, test_sparse_equals_dense, 0,
                        (int)(sizeof sparse_cases / sizeof *sparse_cases));
    tcase_add_test(sk, test_sparse_auto_switch);
    tcase_add_test(sk, test_sparse_masks_same_bits);
    tcase_add_test(sk, test_relu_list_dense_fallback);
    tcase_add_test(sk, test_generic_kernels_same_bits);
    suite_add_tcase(s, sk);
    return s;
}
