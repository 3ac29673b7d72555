/* config.c: the option table, value parsing and the canonical run text.
 * Defaults are those of Sharkey, Braun & Millidge 2022 (REFERENCE.md 1.1). */
#include "superpose/config.h"
#include "superpose/ito.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define OFF(field) offsetof(sp_run_cfg, field)
#define BIG 1e300

static const sp_opt options[] = {
    {"data", "generator", SP_OPT_NAME, OFF(data.generator), "sharkey", 0, 0,
     "sharkey|features|tree|tms",
     "ground truth: sharkey (Sharkey et al. 2022), features (a firing law), tree "
     "([feature.NAME] sections), tms (hidden activations of a Toy Model of Superposition)"},
    {"data", "d", SP_OPT_INT, OFF(data.d), "256", 1, 65536, NULL,
     "input dimension d (tms: hidden dimension m)"},
    {"data", "n", SP_OPT_INT, OFF(data.n), "512", 1, 1048576, NULL,
     "number of ground-truth features (G); a tree sets it"},
    {"data", "geometry", SP_OPT_NAME, OFF(data.geometry), "gaussian", 0, 0,
     "gaussian|orthonormal|coherent|file",
     "truth directions: N(0,I) normalised, orthonormal (QR, n <= d), coherent (max |cos| <= "
     "data.coherence), file (data.directions)"},
    {"data", "coherence", SP_OPT_REAL, OFF(data.coherence), "0.2", 0, 0.999999, NULL,
     "geometry = coherent: the largest |cos| allowed between truth directions"},
    {"data", "directions", SP_OPT_TEXT, OFF(data.directions), "", 0, 0, NULL,
     "geometry = file: an n x d float32 .npy of directions (rows normalised)"},
    {"data", "firing", SP_OPT_NAME, OFF(data.firing), "constant", 0, 0,
     "constant|decay|zipf|list",
     "features/tms firing law: p_i = p, c lambda^i, c (i+1)^-zipf (sum k), or data.probs"},
    {"data", "p", SP_OPT_REAL, OFF(data.p), "0.05", 0, 1, NULL,
     "firing = constant: probability of each feature (tms: 1 - S)"},
    {"data", "k", SP_OPT_REAL, OFF(data.k), "5", 1e-9, BIG, NULL,
     "sharkey, decay, zipf: mean number of active features per sample"},
    {"data", "decay", SP_OPT_REAL, OFF(data.decay), "0.99", 1e-9, 1, NULL,
     "lambda: feature i fires in proportion to lambda^i"},
    {"data", "zipf", SP_OPT_REAL, OFF(data.zipf), "1", 0, 100, NULL,
     "firing = zipf: exponent s of p_i proportional to (i+1)^-s"},
    {"data", "probs", SP_OPT_TEXT, OFF(data.probs), "", 0, 0, NULL,
     "firing = list: the n firing probabilities, comma separated"},
    {"data", "correlation", SP_OPT_NAME, OFF(data.correlation), "none", 0, 0,
     "none|copula|lowrank",
     "correlated firing by a Gaussian copula: a random full-rank correlation (copula) or "
     "F F^T + (1 - rho) I of rank data.rank (lowrank)"},
    {"data", "rank", SP_OPT_INT, OFF(data.rank), "4", 1, 1048576, NULL,
     "correlation = lowrank: number of factors"},
    {"data", "rho", SP_OPT_REAL, OFF(data.rho), "0.5", 0, 0.999999, NULL,
     "correlation = lowrank: share of each feature's variance in the factors"},
    {"data", "exclusive", SP_OPT_INT, OFF(data.exclusive), "0", 0, 1048576, NULL,
     "features: groups of this many consecutive features, at most one active per group "
     "(0 = none)"},
    {"data", "magnitude", SP_OPT_NAME, OFF(data.mag.law), "uniform", 0, 0,
     "constant|uniform|exponential|folded_normal",
     "magnitude law of active features: mag_mean, U[mag_min, mag_max), exponential(mean), "
     "|N(mag_mean, mag_std^2)|"},
    {"data", "mag_min", SP_OPT_REAL, OFF(data.mag.min), "0", 0, BIG, NULL,
     "magnitude = uniform: lower end"},
    {"data", "mag_max", SP_OPT_REAL, OFF(data.mag.max), "1", 0, BIG, NULL,
     "magnitude = uniform: upper end"},
    {"data", "mag_mean", SP_OPT_REAL, OFF(data.mag.mean), "1", -BIG, BIG, NULL,
     "magnitude = constant (the value), exponential (mean), folded_normal (mean before "
     "folding)"},
    {"data", "mag_std", SP_OPT_REAL, OFF(data.mag.std), "1", 0, BIG, NULL,
     "magnitude = folded_normal: std before folding"},
    {"data", "scales", SP_OPT_TEXT, OFF(data.scales), "", 0, 0, NULL,
     "per-feature scale multiplying the magnitudes, n values comma separated"},
    {"data", "scale_jitter", SP_OPT_REAL, OFF(data.scale_jitter), "0", 0, 0.999999, NULL,
     "per-feature scale 1 + jitter N(0,1), drawn with the truth (Bussmann et al. 2025)"},
    {"data", "continuous", SP_OPT_INT, OFF(data.continuous), "0", 0, 65536, NULL,
     "continuous features: each moves on a sphere in its own continuous_dim-D subspace"},
    {"data", "continuous_dim", SP_OPT_INT, OFF(data.continuous_dim), "2", 2, 1024, NULL,
     "dimension of a continuous feature's subspace (2: a circle)"},
    {"data", "continuous_p", SP_OPT_REAL, OFF(data.continuous_p), "0.1", 0, 1, NULL,
     "firing probability of each continuous feature"},
    {"data", "noise", SP_OPT_REAL, OFF(data.noise), "0", 0, BIG, NULL,
     "std of isotropic Gaussian noise added to every input"},
    {"data", "background", SP_OPT_REAL, OFF(data.background), "0", 0, BIG, NULL,
     "dense background: every feature adds U[0, background) times its direction"},
    {"data", "dataset", SP_OPT_LONG, OFF(data.dataset), "0", 0, 1e9, NULL,
     "samples of a fixed dataset drawn once (0: fresh samples every step)"},
    {"data", "holdout", SP_OPT_REAL, OFF(data.holdout), "0.1", 0, 0.99, NULL,
     "share of the fixed dataset kept for evaluation"},
    {"data", "importance", SP_OPT_REAL, OFF(data.importance), "1", 1e-9, 1, NULL,
     "tms: importance I_i = importance^i"},
    {"data", "tms_steps", SP_OPT_LONG, OFF(data.tms_steps), "10000", 1, 1e9, NULL,
     "tms: AdamW steps training the toy model"},
    {"data", "tms_batch", SP_OPT_INT, OFF(data.tms_batch), "1024", 1, 1 << 20, NULL,
     "tms: batch size training the toy model"},
    {"data", "tms_lr", SP_OPT_REAL, OFF(data.tms_lr), "0.001", 1e-12, BIG, NULL,
     "tms: learning rate training the toy model"},
    {"data", "seed", SP_OPT_LONG, OFF(data.seed), "0", 0, 2147483647, NULL,
     "seed of the truth (directions, correlation, dataset, toy model)"},
    {"model", "arch", SP_OPT_NAME, OFF(model.arch), "relu", 0, 0,
     "relu|topk|batchtopk|jumprelu|gated|stacked|dl|rica|pca",
     "learner: relu (penalised ReLU SAE), topk, batchtopk, jumprelu (L0 penalty), gated, "
     "stacked (residual TopK layers), dl (dictionary learning by alternation), rica "
     "(reconstruction ICA), pca (dense baseline)"},
    {"model", "ratio", SP_OPT_REAL, OFF(model.ratio), "1", 1e-9, 1024, NULL,
     "latents per truth feature (m = ratio * data.n)"},
    {"model", "latents", SP_OPT_INT, OFF(model.latents), "0", 0, 1 << 24, NULL,
     "number of latents m; 0 uses model.ratio"},
    {"model", "pre_bias", SP_OPT_BOOL, OFF(model.pre_bias), "false", 0, 1, NULL,
     "learn a decoder bias b_d subtracted before the encoder"},
    {"model", "tied", SP_OPT_BOOL, OFF(model.tied), "false", 0, 1, NULL,
     "tied weights: the encoder is the decoder's transpose"},
    {"model", "encoder", SP_OPT_CHOICE, OFF(model.mlp), "linear", 0, 0, "linear|mlp",
     "linear, or mlp: a hidden ReLU layer of model.hidden units before the latents"},
    {"model", "hidden", SP_OPT_INT, OFF(model.hidden), "0", 0, 1 << 24, NULL,
     "encoder = mlp: hidden width (0: the input dimension d)"},
    {"model", "k", SP_OPT_INT, OFF(model.k), "5", 1, 1 << 24, NULL,
     "topk, batchtopk, stacked: active latents per sample (per layer for stacked)"},
    {"model", "k_aux", SP_OPT_INT, OFF(model.k_aux), "0", 0, 1 << 24, NULL,
     "AuxK: dead latents that reconstruct the residual (0: d / 2)"},
    {"model", "aux_coef", SP_OPT_REAL, OFF(model.aux_coef), "0.03125", 0, BIG, NULL,
     "AuxK coefficient (Gao et al. 2024: 1/32; 0 turns AuxK off)"},
    {"model", "dead_steps", SP_OPT_LONG, OFF(model.dead_steps), "500", 1, 1e12, NULL,
     "AuxK: steps without firing after which a latent counts as dead"},
    {"model", "ema", SP_OPT_REAL, OFF(model.ema), "0.99", 1e-9, 0.999999999, NULL,
     "batchtopk: decay of the EMA giving the inference threshold"},
    {"model", "theta0", SP_OPT_REAL, OFF(model.theta0), "0.001", 1e-12, BIG, NULL,
     "jumprelu: initial threshold"},
    {"model", "bandwidth", SP_OPT_REAL, OFF(model.bandwidth), "0.001", 1e-12, BIG, NULL,
     "jumprelu: width eps of the rectangle kernel of the straight-through estimator"},
    {"model", "prefixes", SP_OPT_TEXT, OFF(model.prefixes), "", 0, 0, NULL,
     "Matryoshka: nested dictionary sizes, comma separated (the full size is added)"},
    {"model", "prefix_samples", SP_OPT_INT, OFF(model.prefix_samples), "0", 0, 63, NULL,
     "Matryoshka: draw this many prefix sizes uniformly each step instead"},
    {"model", "layers", SP_OPT_INT, OFF(model.layers), "2", 1, 1024, NULL,
     "stacked: number of residual TopK layers (each with m / layers latents)"},
    {"model", "orth", SP_OPT_REAL, OFF(model.orth), "0", 0, BIG, NULL,
     "decoder orthogonality: lambda sum_{i != j} cos^2(d_i, d_j)"},
    {"model", "prestd", SP_OPT_REAL, OFF(model.prestd), "0", 0, BIG, NULL,
     "penalty on the spread (std across latents) of each sample's pre-activations"},
    {"model", "init", SP_OPT_CHOICE, OFF(model.init_transpose), "default", 0, 0,
     "default|transpose",
     "initialisation: default (relu: torch's uniform Linear init; topk, batchtopk, jumprelu: "
     "W_e = W_d, b_e = 0) or transpose (W_e = W_d, b_e = 0 for relu too)"},
    {"model", "sparse", SP_OPT_CHOICE, OFF(model.sparse), "auto", 0, 0, "auto|dense|sparse",
     "relu, topk, batchtopk training step: sparse kernels over the active codes (the same "
     "numbers as the GEMMs up to float rounding): auto when the batch's code density is low, "
     "dense (GEMMs always) or sparse (always, where the model allows it)"},
    {"model", "coder", SP_OPT_CHOICE, OFF(model.coder), "fista", 0, 0, "fista|omp",
     "dl: sparse coder, non-negative FISTA (lambda = train.coef) or OMP (model.k atoms)"},
    {"model", "update", SP_OPT_CHOICE, OFF(model.update), "mod", 0, 0, "mod|online",
     "dl: dictionary update, MOD (exact solve) or online block-coordinate (Mairal 2009)"},
    {"model", "forget", SP_OPT_REAL, OFF(model.forget), "0.99", 1e-9, 1, NULL,
     "dl: decay per step of the accumulated code statistics"},
    {"train", "penalty", SP_OPT_NAME, OFF(penalty.name), "l1", 0, 0,
     "l1|cauchy|lp|log|tanh|l1_dnorm|panneal|l0|none",
     "sparsity penalty phi(a) summed over latents: l1 a, cauchy log(1+(a/s)^2), lp "
     "(a+eps)^p-eps^p, log log(1+a/eps), tanh tanh(c a |d|), l1_dnorm a |d|, panneal (p from 1 "
     "to p_end), l0 (jumprelu), none"},
    {"train", "coef", SP_OPT_REAL, OFF(penalty.coef), "0.1", 0, BIG, NULL,
     "penalty coefficient alpha"},
    {"train", "coef_scale", SP_OPT_CHOICE, OFF(penalty.per_latent), "none", 0, 0, "none|dict",
     "dict: divide the penalty by the number of latents"},
    {"train", "coef_warmup", SP_OPT_LONG, OFF(penalty.warmup), "0", 0, 1e12, NULL,
     "steps over which the coefficient rises linearly from 0"},
    {"train", "scale", SP_OPT_REAL, OFF(penalty.scale), "1", 1e-12, BIG, NULL,
     "cauchy: scale s"},
    {"train", "p", SP_OPT_REAL, OFF(penalty.p), "0.5", 1e-9, 1, NULL,
     "lp: exponent p in (0, 1]"},
    {"train", "p_end", SP_OPT_REAL, OFF(penalty.p_end), "0.5", 1e-9, 1, NULL,
     "panneal: final exponent"},
    {"train", "anneal_start", SP_OPT_REAL, OFF(penalty.anneal_start), "0.25", 0, 0.999999, NULL,
     "panneal: fraction of training before p starts to fall"},
    {"train", "pen_eps", SP_OPT_REAL, OFF(penalty.eps), "0.01", 1e-12, BIG, NULL,
     "lp, panneal, log: epsilon"},
    {"train", "tanh_c", SP_OPT_REAL, OFF(penalty.c), "4", 1e-12, BIG, NULL, "tanh: c"},
    {"train", "mse", SP_OPT_CHOICE, OFF(model.mse_per_sample), "element", 0, 0,
     "element|sample", "MSE averaged over B*d (element) or over B (sample)"},
    {"train", "optimizer", SP_OPT_NAME, OFF(optim.name), "adam", 0, 0, "sgd|adam|muon",
     "optimizer: sgd (momentum, Nesterov), adam (AdamW with weight_decay), muon (matrices; "
     "biases with Adam)"},
    {"train", "lr", SP_OPT_REAL, OFF(optim.lr), "0.001", 1e-12, BIG, NULL,
     "learning rate (muon: of the non-matrix parameters)"},
    {"train", "beta1", SP_OPT_REAL, OFF(optim.beta1), "0.9", 0, 0.999999, NULL,
     "Adam first-moment decay"},
    {"train", "beta2", SP_OPT_REAL, OFF(optim.beta2), "0.999", 0, 0.9999999, NULL,
     "Adam second-moment decay"},
    {"train", "eps", SP_OPT_REAL, OFF(optim.eps), "1e-08", 1e-30, 1, NULL, "Adam epsilon"},
    {"train", "weight_decay", SP_OPT_REAL, OFF(optim.weight_decay), "0", 0, BIG, NULL,
     "weight decay (decoupled for adam and muon)"},
    {"train", "momentum", SP_OPT_REAL, OFF(optim.momentum), "0", 0, 0.999999, NULL,
     "sgd: momentum"},
    {"train", "nesterov", SP_OPT_BOOL, OFF(optim.nesterov), "false", 0, 1, NULL,
     "sgd: Nesterov momentum"},
    {"train", "muon_lr", SP_OPT_REAL, OFF(optim.muon_lr), "0.02", 1e-12, BIG, NULL,
     "muon: learning rate of the matrices"},
    {"train", "muon_momentum", SP_OPT_REAL, OFF(optim.muon_momentum), "0.95", 0, 0.999999,
     NULL, "muon: momentum (Nesterov)"},
    {"train", "ns_steps", SP_OPT_INT, OFF(optim.ns_steps), "5", 1, 50, NULL,
     "muon: Newton-Schulz iterations"},
    {"train", "lr_warmup", SP_OPT_LONG, OFF(optim.warmup), "0", 0, 1e12, NULL,
     "steps of linear learning-rate warm-up"},
    {"train", "lr_decay", SP_OPT_NAME, OFF(optim.decay), "none", 0, 0, "none|linear|cosine",
     "learning-rate decay to 0 at the end of training"},
    {"train", "decay_start", SP_OPT_REAL, OFF(optim.decay_start), "0.8", 0, 0.999999, NULL,
     "fraction of training at which the decay begins"},
    {"train", "clip", SP_OPT_REAL, OFF(optim.clip), "0", 0, BIG, NULL,
     "clip the global gradient norm to this value (0: off)"},
    {"train", "resample_every", SP_OPT_LONG, OFF(resample_every), "0", 0, 1e12, NULL,
     "resampling (Bricken et al. 2023): every this many steps, latents that did not fire "
     "since the last check are reinitialised (0: off)"},
    {"train", "resample_samples", SP_OPT_LONG, OFF(resample_samples), "8192", 1, 1e9, NULL,
     "inputs scored to choose resampled directions (probability ~ loss^2)"},
    {"train", "resample_until", SP_OPT_REAL, OFF(resample_until), "0.8", 0, 1, NULL,
     "no resampling after this fraction of training"},
    {"train", "batch", SP_OPT_INT, OFF(batch), "256", 1, 1 << 20, NULL,
     "samples per step (fresh samples every step)"},
    {"train", "steps", SP_OPT_LONG, OFF(steps), "20000", 1, 1e12, NULL, "training steps"},
    {"train", "seed", SP_OPT_LONG, OFF(seed), "0", 0, 2147483647, NULL,
     "seed of initialisation and data stream"},
    {"train", "learner", SP_OPT_NAME, OFF(learner), "sae", 0, 0, "sae|none",
     "what a run trains: sae, or none (only the data's statistics are measured)"},
    {"solve", "method", SP_OPT_NAME, OFF(solve.method), "encoder", 0, 0,
     "encoder|refit|scale|scale_latent|mp|omp|gp|ista|fista",
     "codes scored at evaluation, on the trained decoder: the encoder's, its support refit by "
     "NNLS, scaled by one fitted factor or one per latent, or a sparse solver's"},
    {"solve", "match", SP_OPT_CHOICE, OFF(solve.match), "l0", 0, 0, "l0|fixed|coef",
     "sparsity of solver codes: l0 = the encoder's (pursuits: its count on each sample; "
     "ista/fista: lambda bisected to its mean L0), fixed = solve.l0 / solve.lambda, coef = "
     "ista/fista on the SAE's own L1 objective (amortisation gap)"},
    {"solve", "l0", SP_OPT_INT, OFF(solve.l0), "8", 1, 1 << 24, NULL,
     "pursuits with solve.match = fixed: atoms per sample"},
    {"solve", "lambda", SP_OPT_REAL, OFF(solve.lambda), "0.1", 0, BIG, NULL,
     "ista/fista with solve.match = fixed: lambda of 1/2 |x - aD - b|^2 + lambda sum |d_i| |a_i| "
     "(the plain L1 for unit-norm atoms)"},
    {"solve", "threshold", SP_OPT_REAL, OFF(solve.threshold), "0", 0, BIG, NULL,
     "threshold test: zero every code below this value before scoring"},
    {"solve", "nonneg", SP_OPT_BOOL, OFF(solve.nonneg), "true", 0, 1, NULL,
     "solver codes and refits are non-negative"},
    {"solve", "iters", SP_OPT_INT, OFF(solve.iters), "500", 1, 1000000, NULL,
     "ista/fista: iteration cap"},
    {"solve", "tol", SP_OPT_REAL, OFF(solve.tol), "1e-06", 0, 1, NULL,
     "ista/fista: stop when the objective falls by less than this fraction in one iteration"},
    {"solve", "fit_samples", SP_OPT_LONG, OFF(solve.fit_samples), "4096", 1, 1e9, NULL,
     "samples of the training stream used to fit post-hoc scales and to match lambda"},
    {"metrics", "pairs", SP_OPT_TEXT, OFF(pairs), "", 0, 0, NULL,
     "absorption: parent:child truth rows, e.g. \"0:1, 0:2\" (empty: the tree's parent links)"},
    {"metrics", "tau", SP_OPT_REAL, OFF(tau), "0.5", 0, 1, NULL,
     "splitting: a latent splits a feature when its decoder has cos > tau with it"},
    {"metrics", "eval_samples", SP_OPT_LONG, OFF(eval_samples), "8192", 1, 1e9, NULL,
     "fresh samples for dead latents, L0, MSE and FVE"},
    {"metrics", "curve_every", SP_OPT_LONG, OFF(curve_every), "0", 0, 1e12, NULL,
     "record a training curve point (loss, l0, dead, mmcs) every this many steps (0: off)"},
};
#define N_OPTIONS (sizeof options / sizeof options[0])

const sp_opt *sp_config_options(size_t *n)
{
    *n = N_OPTIONS;
    return options;
}

const sp_opt *sp_config_find_in(const char *section, const char *key)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strcmp(options[i].section, section) == 0 && strcmp(options[i].key, key) == 0)
            return &options[i];
    return NULL;
}

const sp_opt *sp_config_find(const char *name)
{
    const char *dot = strchr(name, '.');
    if (dot) {
        char sec[64];
        size_t n = (size_t)(dot - name);
        if (n >= sizeof sec)
            return NULL;
        memcpy(sec, name, n);
        sec[n] = '\0';
        return sp_config_find_in(sec, dot + 1);
    }
    const sp_opt *found = NULL;
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strcmp(options[i].key, name) == 0) {
            if (found)
                return NULL; /* ambiguous */
            found = &options[i];
        }
    return found;
}

const sp_opt *sp_config_lookup(const char *name, sp_err *err)
{
    const sp_opt *o = sp_config_find(name);
    if (o)
        return o;
    char both[256] = "";
    for (size_t i = 0; i < N_OPTIONS && !strchr(name, '.'); i++)
        if (!strcmp(options[i].key, name))
            snprintf(both + strlen(both), sizeof both - strlen(both), "%s%s.%s",
                     both[0] ? " or " : "", options[i].section, options[i].key);
    if (both[0])
        sp_err_set(err, "ambiguous key '%s': write %s", name, both);
    else
        sp_err_set(err, "unknown key '%s' (see `superpose help options`)", name);
    return NULL;
}

void sp_config_keys_of(const char *section, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (strcmp(options[i].section, section) != 0)
            continue;
        int w = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", options[i].key);
        if (w < 0 || (size_t)w >= len - used)
            break;
        used += (size_t)w;
    }
}

/* Index of word in "a|b|c", or -1. */
static int choice_index(const char *choices, const char *word)
{
    size_t wl = strlen(word);
    int idx = 0;
    for (const char *p = choices; *p; idx++) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == wl && strncmp(p, word, n) == 0)
            return idx;
        if (!bar)
            break;
        p = bar + 1;
    }
    return -1;
}

static void choice_word(const char *choices, int idx, char *buf, size_t len)
{
    const char *p = choices;
    for (int i = 0; i < idx && p; i++) {
        p = strchr(p, '|');
        if (p)
            p++;
    }
    if (!p) {
        snprintf(buf, len, "?");
        return;
    }
    const char *bar = strchr(p, '|');
    size_t n = bar ? (size_t)(bar - p) : strlen(p);
    snprintf(buf, len, "%.*s", (int)n, p);
}

/* Allowed values as text, e.g. "a|b" -> "one of: a, b". */
static void describe(const sp_opt *o, char *buf, size_t len)
{
    switch (o->type) {
    case SP_OPT_INT:
    case SP_OPT_LONG:
        snprintf(buf, len, "an integer in [%.0f, %.0f]", o->min, o->max);
        break;
    case SP_OPT_REAL:
        if (o->max >= BIG)
            snprintf(buf, len, "a number >= %g", o->min);
        else
            snprintf(buf, len, "a number in [%g, %g]", o->min, o->max);
        break;
    case SP_OPT_BOOL:
        snprintf(buf, len, "true or false");
        break;
    case SP_OPT_TEXT:
        snprintf(buf, len, "text of at most 255 characters");
        break;
    default: {
        size_t used = (size_t)snprintf(buf, len, "one of: ");
        for (const char *c = o->choices; *c && used + 3 < len; c++) {
            if (*c == '|') {
                buf[used++] = ',';
                buf[used++] = ' ';
            } else {
                buf[used++] = *c;
            }
        }
        buf[used] = '\0';
    }
    }
}

static const char *trim(const char *s, char *buf, size_t len)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        n--;
    if (n >= len)
        n = len - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return buf;
}

int sp_config_set(sp_run_cfg *cfg, const sp_opt *o, const char *value_in, sp_err *err)
{
    char value[256], allowed[300];
    trim(value_in, value, sizeof value);
    char *base = (char *)cfg + o->offset;
    describe(o, allowed, sizeof allowed);
#define BAD() sp_err_set(err, "%s.%s = '%s': must be %s", o->section, o->key, value, allowed)
    if (o->type == SP_OPT_TEXT) {
        if (strlen(value_in) > 255 || strpbrk(value, "\n\r"))
            return BAD();
        snprintf(base, 256, "%s", value);
        return 0;
    }
    if (value[0] == '\0')
        return BAD();
    switch (o->type) {
    case SP_OPT_INT:
    case SP_OPT_LONG:
    case SP_OPT_REAL: {
        char *end;
        errno = 0;
        double v = strtod(value, &end);
        if (*end != '\0' || errno == ERANGE || !isfinite(v) || v < o->min || v > o->max)
            return BAD();
        if (o->type == SP_OPT_REAL) {
            *(double *)base = v == 0 ? 0 : v; /* -0 would print "-0": another run key */
        } else {
            if (v != floor(v))
                return BAD();
            if (o->type == SP_OPT_INT)
                *(int *)base = (int)v;
            else
                *(long *)base = (long)v;
        }
        return 0;
    }
    case SP_OPT_BOOL:
        if (!strcasecmp(value, "true") || !strcasecmp(value, "yes") ||
            !strcasecmp(value, "on") || !strcmp(value, "1"))
            *(int *)base = 1;
        else if (!strcasecmp(value, "false") || !strcasecmp(value, "no") ||
                 !strcasecmp(value, "off") || !strcmp(value, "0"))
            *(int *)base = 0;
        else
            return BAD();
        return 0;
    case SP_OPT_NAME: {
        if (choice_index(o->choices, value) < 0)
            return BAD();
        snprintf(base, 32, "%s", value);
        return 0;
    }
    case SP_OPT_CHOICE: {
        int idx = choice_index(o->choices, value);
        if (idx < 0)
            return BAD();
        *(int *)base = idx;
        return 0;
    }
    case SP_OPT_TEXT:
        break; /* handled above */
    }
#undef BAD
    return sp_err_set(err, "%s.%s: internal error (type)", o->section, o->key);
}

void sp_config_defaults(sp_run_cfg *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_OPTIONS; i++) {
        sp_err e;
        if (sp_config_set(cfg, &options[i], options[i].def, &e) != 0)
            abort(); /* a bad default is a programming error, caught by the tests */
    }
}

void sp_config_format(const sp_run_cfg *cfg, const sp_opt *o, char *buf, size_t len)
{
    const char *base = (const char *)cfg + o->offset;
    switch (o->type) {
    case SP_OPT_INT:
        snprintf(buf, len, "%d", *(const int *)base);
        break;
    case SP_OPT_LONG:
        snprintf(buf, len, "%ld", *(const long *)base);
        break;
    case SP_OPT_REAL:
        snprintf(buf, len, "%.17g", *(const double *)base);
        break;
    case SP_OPT_BOOL:
        snprintf(buf, len, "%s", *(const int *)base ? "true" : "false");
        break;
    case SP_OPT_NAME:
    case SP_OPT_TEXT:
        snprintf(buf, len, "%s", base);
        break;
    case SP_OPT_CHOICE:
        choice_word(o->choices, *(const int *)base, buf, len);
        break;
    }
}

char *sp_config_canonical(const sp_run_cfg *cfg)
{
    size_t cap = 4096, used = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        char val[300];
        sp_config_format(cfg, &options[i], val, sizeof val);
        size_t need = strlen(options[i].section) + strlen(options[i].key) + strlen(val) + 4;
        if (used + need >= cap) {
            cap *= 2;
            char *n = realloc(out, cap);
            if (!n) {
                free(out);
                return NULL;
            }
            out = n;
        }
        used += (size_t)sprintf(out + used, "%s.%s=%s\n", options[i].section,
                                options[i].key, val);
    }
    /* the tree: one line per node, in file order (the line number is not
     * part of the meaning) */
    for (int i = 0; i < cfg->data.n_nodes && !strcmp(cfg->data.generator, "tree"); i++) {
        const sp_tree_node *nd = &cfg->data.nodes[i];
        char line[512];
        int w = snprintf(line, sizeof line,
                         "data.node.%s=parent:%s p:%.17g exclusive:%d readout:%d count:%d "
                         "magnitude:%s min:%.17g max:%.17g mean:%.17g std:%.17g\n",
                         nd->name, nd->parent, nd->p, nd->exclusive, nd->readout, nd->count,
                         nd->mag.law, nd->mag.min, nd->mag.max, nd->mag.mean, nd->mag.std);
        if (used + (size_t)w + 1 >= cap) {
            cap = 2 * cap + (size_t)w;
            char *n = realloc(out, cap);
            if (!n) {
                free(out);
                return NULL;
            }
            out = n;
        }
        memcpy(out + used, line, (size_t)w + 1);
        used += (size_t)w;
    }
    return out;
}

void sp_config_key(const sp_run_cfg *cfg, char key[17])
{
    char *text = sp_config_canonical(cfg);
    uint64_t h = text ? sp_hash64(text, strlen(text), 0) : 0;
    free(text);
    snprintf(key, 17, "%016llx", (unsigned long long)h);
}

size_t sp_config_latents(const sp_run_cfg *cfg)
{
    return sp_sae_latents(&cfg->model, cfg->data.n);
}

double sp_config_cost(const sp_run_cfg *cfg)
{
    double m = (double)sp_config_latents(cfg), d = cfg->data.d, n = cfg->data.n;
    int corr = strcmp(cfg->data.correlation, "none") != 0;
    int tms = !strcmp(cfg->data.generator, "tms");
    double gen = 20.0 * n + (corr ? 2.0 * n * n : 0) + 4.0 * n * d * (cfg->data.background > 0);
    /* the toy model: three GEMMs of 2 n d per sample, trained once per run */
    double tms_cost = tms ? 6.0 * n * d * (double)cfg->data.tms_batch * (double)cfg->data.tms_steps
                          : 0;
    if (!strcmp(cfg->learner, "none"))
        return tms_cost + gen * (double)cfg->eval_samples;
    double per_sample = 10.0 * m * d /* five GEMMs of 2 m d per sample */ + gen;
    if (!strcmp(cfg->model.arch, "dl")) /* coding: ~30 FISTA steps of 2 m^2, or k OMP steps */
        per_sample = (cfg->model.coder == 0 ? 60.0 * m * m : 4.0 * m * (d + cfg->model.k)) +
                     4.0 * m * d + gen;
    return tms_cost + per_sample * (double)cfg->batch * (double)cfg->steps +
           2.0 * m * d * (double)cfg->eval_samples;
}

static void training_part(const sp_run_cfg *cfg, sp_run_cfg *out)
{
    sp_run_cfg defaults;
    sp_config_defaults(&defaults);
    *out = *cfg;
    out->solve = defaults.solve;
}

void sp_config_training_key(const sp_run_cfg *cfg, char key[17])
{
    sp_run_cfg t;
    training_part(cfg, &t);
    sp_config_key(&t, key);
}

int sp_config_same_training(const sp_run_cfg *a, const sp_run_cfg *b)
{
    char ka[17], kb[17];
    sp_config_training_key(a, ka);
    sp_config_training_key(b, kb);
    return strcmp(ka, kb) == 0;
}

void sp_config_ensemble_key(const sp_run_cfg *cfg, char key[17])
{
    sp_run_cfg t, defaults;
    training_part(cfg, &t);
    sp_config_defaults(&defaults);
    t.penalty = defaults.penalty;
    t.optim = defaults.optim;
    t.model.k = defaults.model.k;
    sp_config_key(&t, key);
}

int sp_config_ensemble_ok(const sp_run_cfg *cfg)
{
    const char *a = cfg->model.arch;
    return !strcmp(cfg->learner, "sae") &&
           (!strcmp(a, "relu") || !strcmp(a, "topk") || !strcmp(a, "batchtopk") ||
            !strcmp(a, "jumprelu")) &&
           !cfg->model.tied && !cfg->model.mlp && cfg->data.dataset == 0;
}

int sp_config_check(const sp_run_cfg *cfg, sp_err *err)
{
    if (sp_gen_check(&cfg->data, NULL, err) != 0)
        return -1;
    const char *bad = sp_sae_check(&cfg->model, &cfg->penalty);
    if (!bad)
        bad = sp_sae_check_latents(&cfg->model, sp_config_latents(cfg), (size_t)cfg->data.d);
    if (!bad)
        bad = sp_optim_check(&cfg->optim);
    if (!bad)
        bad = sp_ito_check(cfg, sp_config_latents(cfg));
    if (bad)
        return sp_err_set(err, "%s", bad);
    if (cfg->pairs[0]) {
        size_t pp[64], cc[64];
        if (sp_config_pairs(cfg->pairs, sp_gen_truth_rows(&cfg->data), pp, cc, 64, err) < 0)
            return -1;
    }
    if (cfg->resample_every > 0 && !strcmp(cfg->model.arch, "pca"))
        return sp_err_set(err, "train.resample_every: model.arch = pca has no latents to "
                          "resample (its directions are the data's principal axes)");
    double m = (double)sp_config_latents(cfg), d = cfg->data.d, n = cfg->data.n;
    double B = cfg->batch;
    /* parameters, gradients, Adam state, workspace, truth, generator scratch */
    double bytes = 4.0 * (6.0 * m * d + 4.0 * m + 2.0 * B * (m + d) + n * d + B * n) +
                   (strcmp(cfg->data.correlation, "none") ? 8.0 * 3.0 * n * n +
                                                                4.0 * (n * n + 2 * B * n)
                                                          : 0) +
                   4.0 * (double)cfg->data.dataset * (d + 2.0 * cfg->data.k);
    if (bytes > 16.0 * 1024 * 1024 * 1024)
        return sp_err_set(err,
                          "this run needs about %.1f GiB (m = %.0f latents, d = %.0f, "
                          "batch = %.0f); the limit is 16 GiB: lower model.ratio, data.d or "
                          "train.batch",
                          bytes / (1024.0 * 1024 * 1024), m, d, B);
    return 0;
}

int sp_config_pairs(const char *text, size_t n_truth, size_t *parent, size_t *child, size_t max,
                    sp_err *err)
{
    size_t n = 0;
    const char *s = text;
    while (*s) {
        while (*s == ' ' || *s == ',' || *s == '\t')
            s++;
        if (!*s)
            break;
        char *end;
        long p = strtol(s, &end, 10), c;
        if (end == s || *end != ':')
            return sp_err_set(err, "metrics.pairs = '%s': expected parent:child truth rows "
                              "separated by commas, e.g. \"0:1, 0:2\"", text);
        s = end + 1;
        c = strtol(s, &end, 10);
        if (end == s || (*end && *end != ',' && *end != ' ' && *end != '\t'))
            return sp_err_set(err, "metrics.pairs = '%s': expected parent:child truth rows "
                              "separated by commas, e.g. \"0:1, 0:2\"", text);
        if (p < 0 || c < 0 || (size_t)p >= n_truth || (size_t)c >= n_truth || p == c)
            return sp_err_set(err, "metrics.pairs = '%s': %ld:%ld is not a pair of two "
                              "distinct truth rows 0..%zu", text, p, c, n_truth - 1);
        if (n == max)
            return sp_err_set(err, "metrics.pairs = '%s': at most %zu pairs", text, max);
        parent[n] = (size_t)p;
        child[n++] = (size_t)c;
        s = end;
    }
    return (int)n;
}
