/* gen.c: ground-truth generators (REFERENCE.md 1).
 *
 * Truth directions (geometry.c): g_i ~ N(0, I_d) normalised (Sharkey et
 * al. 2022), orthonormal by QR (Bussmann et al. 2025), controlled
 * coherence, or read from a .npy file. Per-feature scales s_i (a list, or
 * 1 + jitter N(0,1) as in Bussmann et al. 2025) multiply the magnitudes.
 *
 * sharkey: Sharkey, Braun & Millidge 2022, "Taking features out of
 * superposition with sparse autoencoders" (interim report); REFERENCE.md 1.1.
 *   copula   z ~ N(0, C) per sample (C = I when uncorrelated), u_i = Phi(z_i)
 *   firing   p_i = u_i * lambda^i, rescaled per sample so that
 *            sum_i p_i = k, then clamped to [0, 1]; fires with probability p_i
 *   values   a_i ~ magnitude law (U[0, 1) in the paper) when active
 * The correlation matrix C: the public reimplementation draws a symmetric
 * matrix S = (U + U^T) / 2 with U_ij ~ U[0,1), shifts it by 1.001 |min
 * eigenvalue| when indefinite, and uses S as the covariance. Phi of a
 * variable whose variance is not 1 is not uniform, so we rescale S to unit
 * diagonal, C_ij = S_ij / sqrt(S_ii S_jj): same correlation structure,
 * uniform u_i, and the firing law above holds exactly. The uncorrelated
 * variant draws u_i ~ U[0,1) directly, which is the same law.
 *
 * features: base probabilities p_i from a law (REFERENCE.md 1.4):
 *   constant p_i = p;  decay p_i = c lambda^i;  zipf p_i = c (i+1)^-s, with c
 *   such that sum_i p_i = k;  list: given.
 * Independent: feature i fires when U_i < p_i. Gaussian copula (the matrix
 * above, or low rank C = F F^T + (1 - rho) I with rows F_i = sqrt(rho) f_i /
 * ||f_i||, f_i ~ N(0, I_rank)): fires when z_i < Phi^-1(p_i), so every
 * marginal rate is exactly p_i and P(i and j) = Phi_2(Phi^-1(p_i),
 * Phi^-1(p_j); C_ij). Exclusive groups of size G: in each group one draw
 * picks feature i with probability p_i, none with 1 - sum p_i.
 *
 * tree: feature hierarchies of Chanin et al. 2024 ("A is for Absorption"),
 * Bussmann et al. 2025 (Matryoshka SAEs) and Chanin et al. 2025 (feature
 * hedging); REFERENCE.md 1.3. A root fires with probability p; a child with
 * probability p when its parent fired, never otherwise; the children of an
 * exclusive node fire one at a time (child j with probability p_j). So the
 * marginal rate of a node is the product of the p along its path. Nodes are
 * numbered depth first (pre-order), roots in file order, copies of a node
 * (count) consecutive, which also keeps every sample's codes sorted.
 *
 * tms: Elhage et al. 2022, "Toy Models of Superposition"; REFERENCE.md 1.2.
 * A ReLU output model is trained at allocation (tms.c) on x_i = 0 with
 * probability 1 - p, else U[0,1). The generator emits its hidden
 * activations h = W x = sum_i x_i ||W_i|| (W_i / ||W_i||): truth row i is
 * the unit column W_i / ||W_i||, code i is x_i ||W_i||.
 *
 * Continuous features: a feature owning an orthonormal k-dimensional
 * subspace (rows B_1..B_k of the truth); when it fires (probability
 * continuous_p) it adds a * sum_t v_t B_t with v uniform on S^(k-1) (a
 * normalised Gaussian vector) and a from the magnitude law.
 *
 * Magnitudes: constant (mean), uniform [min, max), exponential (mean),
 * folded normal |N(mean, std^2)| with mean
 *   std sqrt(2/pi) exp(-mean^2 / (2 std^2)) + mean (1 - 2 Phi(-mean/std)).
 * Noise: x += sigma N(0, I_d); background: x += sum_i b_i g_i with
 * b_i ~ U[0, background) for every point feature (dense, not in the codes).
 *
 * Speed: the per-feature uniforms of a batch come from SplitMix64 (Steele,
 * Lea & Flood 2014, "Fast splittable pseudorandom number generators") keyed
 * by two draws of the caller's gsl_rng; measured on this machine a
 * gsl_rng_uniform call on mt19937 costs ~10 ns, an inlined SplitMix64 float
 * ~1 ns. */
#include "superpose/gen.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_blas.h>
#include <gsl/gsl_cdf.h>
#include <gsl/gsl_eigen.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_randist.h>

#include "superpose/geometry.h"
#include "superpose/tms.h"

enum { K_SHARKEY, K_FEATURES, K_TREE, K_TMS };
enum { F_CONSTANT, F_DECAY, F_ZIPF, F_LIST };
enum { C_NONE, C_COPULA, C_LOWRANK };
enum { M_CONSTANT, M_UNIFORM, M_EXPONENTIAL, M_FOLDED };

/* ---- SplitMix64, as a gsl_rng type and inline ------------------------ */

typedef struct {
    uint64_t s;
} sm_state;

static inline uint64_t sm_next(sm_state *st)
{
    uint64_t z = (st->s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
/* uniform in [0, 1) with 53 random bits */
static inline double sm_uniform(sm_state *st) { return (double)(sm_next(st) >> 11) * 0x1.0p-53; }
static void sm_set(void *vs, unsigned long seed) { ((sm_state *)vs)->s = (uint64_t)seed; }
static unsigned long sm_get(void *vs) { return (unsigned long)(sm_next(vs) >> 32); }
static double sm_get_double(void *vs) { return sm_uniform(vs); }
static const gsl_rng_type sm_type = {"splitmix64", 0xffffffffUL, 0, sizeof(sm_state),
                                     sm_set, sm_get, sm_get_double};

/* Eight interleaved xoshiro128** streams (Blackman & Vigna 2018,
 * "Scrambled linear pseudorandom number generators"), seeded from
 * SplitMix64 every batch: the bulk per-feature uniforms, written so that
 * the compiler vectorises the eight lanes (~1.2 ns per pair of uniforms on
 * this machine against ~2.7 ns for scalar SplitMix64). */
typedef struct {
    uint32_t s[4][8];
} x8_state;

static inline uint32_t rotl32(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

static void x8_seed(x8_state *x, sm_state *st)
{
    for (int w = 0; w < 4; w++)
        for (int l = 0; l < 8; l += 2) {
            uint64_t r = sm_next(st);
            x->s[w][l] = (uint32_t)r;
            x->s[w][l + 1] = (uint32_t)(r >> 32);
        }
    for (int l = 0; l < 8; l++) /* an all-zero lane would stay zero */
        if (!(x->s[0][l] | x->s[1][l] | x->s[2][l] | x->s[3][l]))
            x->s[0][l] = 0x9E3779B9u;
}

/* A Bernoulli(p) draw is (v >> 1) < thr with v a uniform 32-bit integer
 * and thr = floor(p 2^31) for p in [0, 1]: probabilities are resolved to
 * 2^-31 (rounded down by less than 5e-10; at most 1 - 2^-24, so a feature
 * with p = 1 misses once in 16.7 million draws), in exchange for a
 * branch-free comparison the compiler vectorises. */
static inline int32_t prob_threshold(float p)
{
    float t = p * 0x1.0p31f;
    return (int32_t)(t > 2147483520.0f ? 2147483520.0f : t);
}

/* out[0 .. n8) with n8 a multiple of 8. */
#ifdef __SSE2__
#include <emmintrin.h>
static inline __m128i rotl_v(__m128i x, int k)
{
    return _mm_or_si128(_mm_slli_epi32(x, k), _mm_srli_epi32(x, 32 - k));
}
static void x8_fill(x8_state *restrict x, uint32_t *restrict out, size_t n8)
{
    __m128i s[4][2];
    for (int w = 0; w < 4; w++)
        for (int h = 0; h < 2; h++)
            s[w][h] = _mm_loadu_si128((const __m128i *)&x->s[w][4 * h]);
    for (size_t i = 0; i + 8 <= n8; i += 8)
        for (int h = 0; h < 2; h++) {
            __m128i s1 = s[1][h];
            __m128i r = _mm_add_epi32(s1, _mm_slli_epi32(s1, 2)); /* s1 * 5 */
            r = rotl_v(r, 7);
            r = _mm_add_epi32(r, _mm_slli_epi32(r, 3)); /* * 9 */
            __m128i t = _mm_slli_epi32(s1, 9);
            s[2][h] = _mm_xor_si128(s[2][h], s[0][h]);
            s[3][h] = _mm_xor_si128(s[3][h], s1);
            s[1][h] = _mm_xor_si128(s1, s[2][h]);
            s[0][h] = _mm_xor_si128(s[0][h], s[3][h]);
            s[2][h] = _mm_xor_si128(s[2][h], t);
            s[3][h] = rotl_v(s[3][h], 11);
            _mm_storeu_si128((__m128i *)(out + i + 4 * h), r);
        }
    for (int w = 0; w < 4; w++)
        for (int h = 0; h < 2; h++)
            _mm_storeu_si128((__m128i *)&x->s[w][4 * h], s[w][h]);
}
#else
static void x8_fill(x8_state *restrict x, uint32_t *restrict out, size_t n8)
{
    for (size_t i = 0; i + 8 <= n8; i += 8)
        for (int l = 0; l < 8; l++) {
            uint32_t s1 = x->s[1][l], r = rotl32(s1 * 5, 7) * 9, t = s1 << 9;
            x->s[2][l] ^= x->s[0][l];
            x->s[3][l] ^= s1;
            x->s[1][l] = s1 ^ x->s[2][l];
            x->s[0][l] ^= x->s[3][l];
            x->s[2][l] ^= t;
            x->s[3][l] = rotl32(x->s[3][l], 11);
            out[i + l] = r;
        }
}
#endif

/* ---- laws ------------------------------------------------------------- */

static int word_index(const char *choices, const char *w)
{
    size_t wl = strlen(w);
    int i = 0;
    for (const char *p = choices; *p; i++) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == wl && !strncmp(p, w, n))
            return i;
        if (!bar)
            break;
        p = bar + 1;
    }
    return -1;
}
#define GENERATORS "sharkey|features|tree|tms"
#define GEOMETRIES "gaussian|orthonormal|coherent|file"
#define FIRINGS "constant|decay|zipf|list"
#define CORRELATIONS "none|copula|lowrank"
#define MAGNITUDES "constant|uniform|exponential|folded_normal"

static int mag_kind(const sp_mag_cfg *m) { return word_index(MAGNITUDES, m->law); }

static const char *mag_check(const sp_mag_cfg *m)
{
    switch (mag_kind(m)) {
    case M_CONSTANT:
        return isfinite(m->mean) && m->mean >= 0 ? NULL : "mag_mean must be finite and >= 0";
    case M_UNIFORM:
        return isfinite(m->min) && isfinite(m->max) && m->min >= 0 && m->max > m->min
                   ? NULL
                   : "needs 0 <= mag_min < mag_max";
    case M_EXPONENTIAL:
        return isfinite(m->mean) && m->mean > 0 ? NULL : "mag_mean must be > 0";
    case M_FOLDED:
        return isfinite(m->mean) && isfinite(m->std) && m->std > 0
                   ? NULL
                   : "needs a finite mag_mean and mag_std > 0";
    default:
        return "unknown magnitude law (allowed: constant, uniform, exponential, folded_normal)";
    }
}

int sp_mag_moments(const sp_mag_cfg *m, double *mean, double *var)
{
    switch (mag_kind(m)) {
    case M_CONSTANT:
        *mean = m->mean;
        *var = 0;
        return 0;
    case M_UNIFORM:
        *mean = 0.5 * (m->min + m->max);
        *var = (m->max - m->min) * (m->max - m->min) / 12.0;
        return 0;
    case M_EXPONENTIAL:
        *mean = m->mean;
        *var = m->mean * m->mean;
        return 0;
    case M_FOLDED: {
        double mu = m->mean, s = m->std;
        *mean = s * sqrt(2.0 / M_PI) * exp(-mu * mu / (2 * s * s)) +
                mu * (1 - 2 * gsl_cdf_ugaussian_P(-mu / s));
        *var = mu * mu + s * s - *mean * *mean;
        return 0;
    }
    default:
        return -1;
    }
}

static inline float draw_mag(int kind, const sp_mag_cfg *m, sm_state *st, gsl_rng *fast)
{
    switch (kind) {
    case M_CONSTANT:
        return (float)m->mean;
    case M_UNIFORM:
        return (float)(m->min + (m->max - m->min) * sm_uniform(st));
    case M_EXPONENTIAL:
        return (float)(-m->mean * log1p(-sm_uniform(st)));
    default:
        return (float)fabs(m->mean + m->std * gsl_ran_gaussian_ziggurat(fast, 1.0));
    }
}

int sp_gen_parse_list(const char *text, const char *key, size_t n, double lo, double hi,
                      double *out, sp_err *err)
{
    const char *p = text;
    size_t i = 0;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno == ERANGE || !isfinite(v))
            return sp_err_set(err, "data.%s: '%.40s' is not a number", key, p);
        if (v < lo || v > hi)
            return sp_err_set(err, "data.%s: value %zu (%g) is outside [%g, %g]", key, i + 1, v,
                              lo, hi);
        if (i < n)
            out[i] = v;
        i++;
        p = end;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p && *p != ',')
            return sp_err_set(err, "data.%s: expected ',' between numbers, found '%c'", key, *p);
    }
    if (i != n)
        return sp_err_set(err, "data.%s: %zu values given, data.n = %zu needs exactly %zu", key,
                          i, n, n);
    return 0;
}

/* ---- tree ------------------------------------------------------------- */

typedef struct {
    int first_child, next_sibling, parent;
    double p, rate;
    int exclusive;
    int feature;   /* truth row, or -1 for a latent node */
    int mkind;
    sp_mag_cfg mag;
} tree_inst;

static int node_index(const sp_gen_cfg *c, const char *name)
{
    for (int i = 0; i < c->n_nodes; i++)
        if (!strcmp(c->nodes[i].name, name))
            return i;
    return -1;
}

static int tree_check(const sp_gen_cfg *c, int *bad, sp_err *err)
{
    *bad = -1;
    if (c->n_nodes < 1)
        return sp_err_set(err, "data.generator = tree needs at least one [feature.NAME] section");
    for (int i = 0; i < c->n_nodes; i++) {
        const sp_tree_node *nd = &c->nodes[i];
        *bad = i;
        if (!(nd->p >= 0 && nd->p <= 1))
            return sp_err_set(err, "feature %s: p = %g: a probability must be in [0, 1]",
                              nd->name, nd->p);
        if (nd->count < 1 || nd->count > 1 << 20)
            return sp_err_set(err, "feature %s: count = %d: must be in [1, 1048576]", nd->name,
                              nd->count);
        if (nd->mag.law[0]) {
            const char *m = mag_check(&nd->mag);
            if (m)
                return sp_err_set(err, "feature %s: magnitude '%s': %s", nd->name, nd->mag.law,
                                  m);
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(c->nodes[j].name, nd->name))
                return sp_err_set(err, "feature %s: defined twice", nd->name);
        if (nd->parent[0] && node_index(c, nd->parent) < 0)
            return sp_err_set(err, "feature %s: parent '%s' is not a feature of the tree",
                              nd->name, nd->parent);
    }
    for (int i = 0; i < c->n_nodes; i++) {
        *bad = i;
        int at = i, steps = 0;
        char path[512];
        int used = snprintf(path, sizeof path, "%s", c->nodes[i].name);
        while (c->nodes[at].parent[0]) {
            at = node_index(c, c->nodes[at].parent);
            if (used < (int)sizeof path)
                used += snprintf(path + used, sizeof path - (size_t)used, " -> %s",
                                 c->nodes[at].name);
            if (at == i || ++steps > c->n_nodes)
                return sp_err_set(err, "feature %s: its parents form a cycle (%s)",
                                  c->nodes[i].name, path);
        }
    }
    for (int i = 0; i < c->n_nodes; i++) {
        double sum = 0;
        for (int j = 0; j < c->n_nodes; j++)
            if (!strcmp(c->nodes[j].parent, c->nodes[i].name))
                sum += c->nodes[j].p * c->nodes[j].count;
        if (c->nodes[i].exclusive && sum > 1 + 1e-12) {
            *bad = i;
            return sp_err_set(err,
                              "feature %s: its children are mutually exclusive but their "
                              "probabilities (times count) sum to %g > 1",
                              c->nodes[i].name, sum);
        }
    }
    *bad = -1;
    return 0;
}

/* Expands node ni (count copies) under instance parent; returns 0 or -1
 * when more than cap instances would be needed. */
static int expand(const sp_gen_cfg *c, int ni, int parent, tree_inst *inst, size_t cap,
                  size_t *n_inst, int *n_feat, int *last_sibling)
{
    const sp_tree_node *nd = &c->nodes[ni];
    for (int copy = 0; copy < nd->count; copy++) {
        if (*n_inst >= cap)
            return -1;
        int me = (int)(*n_inst)++;
        if (inst) {
            tree_inst *t = &inst[me];
            t->parent = parent;
            t->first_child = t->next_sibling = -1;
            t->p = nd->p;
            t->rate = nd->p * (parent >= 0 ? inst[parent].rate : 1.0);
            t->exclusive = nd->exclusive;
            t->feature = nd->readout ? *n_feat : -1;
            t->mag = nd->mag.law[0] ? nd->mag : c->mag;
            t->mkind = mag_kind(&t->mag);
            if (*last_sibling >= 0)
                inst[*last_sibling].next_sibling = me;
            else if (parent >= 0)
                inst[parent].first_child = me;
        }
        *last_sibling = me;
        if (nd->readout)
            (*n_feat)++;
        int last_child = -1;
        for (int j = 0; j < c->n_nodes; j++)
            if (!strcmp(c->nodes[j].parent, nd->name) &&
                expand(c, j, me, inst, cap, n_inst, n_feat, &last_child) != 0)
                return -1;
    }
    return 0;
}

#define TREE_CAP (1u << 22)

/* Counts instances and readout features of a valid tree. */
static int tree_size(const sp_gen_cfg *c, size_t *n_inst, int *n_feat)
{
    *n_inst = 0;
    *n_feat = 0;
    int last = -1;
    for (int i = 0; i < c->n_nodes; i++)
        if (!c->nodes[i].parent[0] &&
            expand(c, i, -1, NULL, TREE_CAP, n_inst, n_feat, &last) != 0)
            return -1;
    return 0;
}

int sp_gen_tree_features(const sp_gen_cfg *c, int *bad_node, sp_err *err)
{
    int bad;
    if (bad_node)
        *bad_node = -1;
    if (tree_check(c, &bad, err) != 0) {
        if (bad_node)
            *bad_node = bad;
        return -1;
    }
    size_t ni;
    int nf;
    if (tree_size(c, &ni, &nf) != 0)
        return sp_err_set(err, "the tree expands to more than %u nodes (lower the counts)",
                          TREE_CAP);
    return nf;
}

/* ---- checks ----------------------------------------------------------- */

size_t sp_gen_truth_rows(const sp_gen_cfg *c)
{
    return (size_t)c->n + (size_t)c->continuous * (size_t)c->continuous_dim;
}

int sp_gen_check(const sp_gen_cfg *c, int *bad_node, sp_err *err)
{
    int bad = -1;
    if (bad_node)
        *bad_node = -1;
    int kind = word_index(GENERATORS, c->generator);
    if (kind < 0)
        return sp_err_set(err, "data.generator = '%s': allowed: sharkey, features, tree, tms",
                          c->generator);
    if (c->d < 1)
        return sp_err_set(err, "data.d must be >= 1");
    if (c->n < 1)
        return sp_err_set(err, "data.n must be >= 1");
    int geom = word_index(GEOMETRIES, c->geometry);
    if (geom < 0)
        return sp_err_set(err, "data.geometry = '%s': allowed: gaussian, orthonormal, "
                               "coherent, file", c->geometry);
    size_t nt = sp_gen_truth_rows(c);
    if (geom == 1 && nt > (size_t)c->d)
        return sp_err_set(err,
                          "data.geometry = orthonormal needs at most data.d = %d truth rows, "
                          "this data has %zu",
                          c->d, nt);
    if (geom == 2 && !(c->coherence >= 0 && c->coherence < 1))
        return sp_err_set(err, "data.coherence must be in [0, 1) for geometry = coherent");
    if (geom == 3 && !c->directions[0])
        return sp_err_set(err, "data.geometry = file needs data.directions = PATH.npy "
                               "(%zu x %d float32)", nt, c->d);
    if (!(c->noise >= 0) || !isfinite(c->noise))
        return sp_err_set(err, "data.noise must be a finite value >= 0");
    if (!(c->background >= 0) || !isfinite(c->background))
        return sp_err_set(err, "data.background must be a finite value >= 0");
    const char *m = mag_check(&c->mag);
    if (m)
        return sp_err_set(err, "data.magnitude = %s: %s", c->mag.law, m);
    if (!(c->scale_jitter >= 0 && c->scale_jitter < 1))
        return sp_err_set(err, "data.scale_jitter must be in [0, 1)");
    if (c->scales[0]) {
        double *tmp = malloc((size_t)c->n * sizeof *tmp);
        if (!tmp)
            return sp_err_set(err, "out of memory");
        int rc = sp_gen_parse_list(c->scales, "scales", (size_t)c->n, 0, 1e30, tmp, err);
        free(tmp);
        if (rc)
            return -1;
        if (c->scale_jitter > 0)
            return sp_err_set(err, "data.scales and data.scale_jitter cannot both be set");
    }
    int corr = word_index(CORRELATIONS, c->correlation);
    if (corr < 0)
        return sp_err_set(err, "data.correlation = '%s': allowed: none, copula, lowrank",
                          c->correlation);
    if (corr == C_LOWRANK && (c->rank < 1 || c->rank > c->n || !(c->rho >= 0 && c->rho < 1)))
        return sp_err_set(err, "data.correlation = lowrank needs 1 <= data.rank <= data.n and "
                               "0 <= data.rho < 1");
    if (c->continuous < 0 || (c->continuous > 0 && (c->continuous_dim < 2 ||
                                                     !(c->continuous_p >= 0 &&
                                                       c->continuous_p <= 1))))
        return sp_err_set(err, "data.continuous features need data.continuous_dim >= 2 and "
                               "data.continuous_p in [0, 1]");
    if (c->dataset < 0 || (c->dataset > 0 && !(c->holdout >= 0 && c->holdout < 1)))
        return sp_err_set(err, "data.holdout must be in [0, 1)");
    if (c->dataset > 0) {
        long ev = (long)floor((double)c->dataset * c->holdout + 0.5);
        if (c->dataset - ev < 1 || (c->holdout > 0 && ev < 1))
            return sp_err_set(err, "data.dataset = %ld with data.holdout = %g leaves an empty "
                                   "split", c->dataset, c->holdout);
    }
    switch (kind) {
    case K_SHARKEY:
        if (!(c->k > 0) || c->k > c->n)
            return sp_err_set(err, "data.k (mean active features) must be in (0, data.n]");
        if (!(c->decay > 0) || c->decay > 1)
            return sp_err_set(err, "data.decay must be in (0, 1]");
        break;
    case K_FEATURES:
    case K_TMS: {
        int f = word_index(FIRINGS, c->firing);
        if (f < 0)
            return sp_err_set(err, "data.firing = '%s': allowed: constant, decay, zipf, list",
                              c->firing);
        if (kind == K_TMS && f != F_CONSTANT)
            return sp_err_set(err, "data.generator = tms draws x_i = 0 with probability 1 - p, "
                                   "else U[0,1): data.firing must be constant");
        if (f == F_CONSTANT && !(c->p >= 0 && c->p <= 1))
            return sp_err_set(err, "data.p must be in [0, 1]");
        if ((f == F_DECAY || f == F_ZIPF) && (!(c->k > 0) || c->k > c->n))
            return sp_err_set(err, "data.k (mean active features) must be in (0, data.n]");
        if (f == F_DECAY && (!(c->decay > 0) || c->decay > 1))
            return sp_err_set(err, "data.decay must be in (0, 1]");
        if (f == F_ZIPF && !(c->zipf >= 0 && isfinite(c->zipf)))
            return sp_err_set(err, "data.zipf (exponent) must be a finite value >= 0");
        double *p = malloc((size_t)c->n * sizeof *p);
        if (!p)
            return sp_err_set(err, "out of memory");
        int rc = 0;
        if (f == F_LIST) {
            rc = c->probs[0] ? sp_gen_parse_list(c->probs, "probs", (size_t)c->n, 0, 1, p, err)
                             : sp_err_set(err, "data.firing = list needs data.probs = p1, p2, "
                                               "... (data.n values)");
        } else if (f == F_DECAY || f == F_ZIPF) {
            double sum = 0, mx = 0;
            for (int i = 0; i < c->n; i++) {
                p[i] = f == F_DECAY ? pow(c->decay, i) : pow(i + 1.0, -c->zipf);
                sum += p[i];
            }
            for (int i = 0; i < c->n; i++)
                mx = fmax(mx, p[i] * c->k / sum);
            if (mx > 1)
                rc = sp_err_set(err, "data.k = %g is too large for this law: feature 0 would "
                                     "fire with probability %g > 1", c->k, mx);
        } else {
            for (int i = 0; i < c->n; i++)
                p[i] = c->p;
        }
        if (!rc && c->exclusive > 1) {
            if (corr != C_NONE)
                rc = sp_err_set(err, "data.exclusive groups cannot be combined with "
                                     "data.correlation (choose one)");
            for (int g = 0; !rc && g < c->n; g += c->exclusive) {
                double s = 0;
                for (int i = g; i < c->n && i < g + c->exclusive; i++)
                    s += p[i];
                if (s > 1 + 1e-12)
                    rc = sp_err_set(err, "data.exclusive = %d: the probabilities of features "
                                         "%d..%d sum to %g > 1", c->exclusive, g,
                                    g + c->exclusive - 1 < c->n ? g + c->exclusive - 1
                                                                : c->n - 1, s);
            }
        }
        free(p);
        if (rc)
            return -1;
        if (kind == K_TMS) {
            if (c->continuous > 0 || c->scales[0] || c->scale_jitter > 0 || geom != 0 ||
                corr != C_NONE || c->exclusive > 1)
                return sp_err_set(err, "data.generator = tms: its truth is the trained W, so "
                                       "data.geometry, scales, scale_jitter, correlation, "
                                       "exclusive and continuous do not apply");
            if (mag_kind(&c->mag) != M_UNIFORM || c->mag.min != 0 || c->mag.max != 1)
                return sp_err_set(err, "data.generator = tms: magnitudes are U[0,1) "
                                       "(data.magnitude = uniform, mag_min = 0, mag_max = 1)");
            sp_tms_cfg tc = {.n = c->n, .m = c->d, .p = c->p, .importance = c->importance,
                             .steps = c->tms_steps, .batch = c->tms_batch, .lr = c->tms_lr};
            const char *t = sp_tms_check(&tc);
            if (t)
                return sp_err_set(err, "data.generator = tms: %s", t);
        }
        break;
    }
    case K_TREE: {
        if (tree_check(c, &bad, err) != 0) {
            if (bad_node)
                *bad_node = bad;
            return -1;
        }
        if (corr != C_NONE || c->exclusive > 1)
            return sp_err_set(err, "data.generator = tree: correlation and exclusive groups "
                                   "come from the tree itself (set them per feature)");
        int nf = sp_gen_tree_features(c, NULL, err);
        if (nf < 0)
            return -1;
        if (nf != c->n)
            return sp_err_set(err, "data.n = %d but the tree has %d readout features", c->n, nf);
        break;
    }
    }
    return 0;
}

/* ---- the generator ---------------------------------------------------- */

struct sp_gen {
    sp_gen_cfg cfg;
    int kind, firing, corr, mkind;
    size_t max_batch, n, nt, d;
    gsl_matrix_float *truth;   /* nt x d */
    float *scale;              /* n: per-feature scale */
    double *base_p;            /* n: features, tms */
    float *thresh;             /* n: Phi^-1(p_i) (copula features) */
    float *w;                  /* n: lambda^i (sharkey) */
    gsl_matrix *corr_m;        /* n x n (copula) */
    gsl_matrix_float *chol_t;  /* n x n: L^T, so Z = E L^T (copula) */
    gsl_matrix_float *fac_t;   /* rank x n: F^T (lowrank) */
    gsl_matrix_float *e, *z, *er; /* max_batch x n, max_batch x n, max_batch x rank */
    float *probs;              /* max_batch x n (sharkey) */
    uint32_t *vbits;           /* nbits: bulk uniforms of one sample */
    int32_t *thr;              /* n: Bernoulli thresholds (prob_threshold) */
    int record;                /* keep every sample's probabilities (tests) */
    size_t nbits;              /* 2n rounded up to a multiple of 8 */
    x8_state x8;
    tree_inst *inst;
    size_t n_inst;
    gsl_matrix_float *bg;      /* max_batch x n (background) */
    double *cvec;              /* continuous_dim */
    gsl_rng *fast;             /* SplitMix64, reseeded every batch */
    sp_tms *tms;
    /* finite dataset */
    size_t ds_n, ds_train;
    float *ds_x;               /* ds_n x d */
    size_t *ds_row;            /* ds_n + 1 */
    uint32_t *ds_idx;
    float *ds_val;
    size_t *perm, pos, eval_pos;
    int split;
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

/* The reimplementation's random covariance, rescaled to a correlation
 * matrix, and its Cholesky factor (see the header comment). */
static int make_copula(sp_gen *g, gsl_rng *rng, sp_err *err)
{
    size_t n = g->n;
    gsl_matrix *s = gsl_matrix_alloc(n, n);
    gsl_matrix *tmp = gsl_matrix_alloc(n, n);
    gsl_vector *eval = gsl_vector_alloc(n);
    gsl_eigen_symm_workspace *w = gsl_eigen_symm_alloc(n);
    g->corr_m = gsl_matrix_alloc(n, n);
    g->chol_t = gsl_matrix_float_alloc(n, n);
    int rc = -1;
    if (!s || !tmp || !eval || !w || !g->corr_m || !g->chol_t) {
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
            gsl_matrix_set(g->corr_m, i, j,
                           gsl_matrix_get(s, i, j) /
                               sqrt(gsl_matrix_get(s, i, i) * gsl_matrix_get(s, j, j)));
    gsl_matrix_memcpy(tmp, g->corr_m);
    gsl_error_handler_t *old = gsl_set_error_handler_off();
    int bad = gsl_linalg_cholesky_decomp1(tmp);
    gsl_set_error_handler(old);
    if (bad) {
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

/* Low-rank copula: rows F_i = sqrt(rho) f_i / ||f_i||; C = F F^T + (1 - rho) I. */
static int make_lowrank(sp_gen *g, gsl_rng *rng, sp_err *err)
{
    size_t n = g->n, r = (size_t)g->cfg.rank;
    g->fac_t = gsl_matrix_float_alloc(r, n);
    g->corr_m = gsl_matrix_alloc(n, n);
    if (!g->fac_t || !g->corr_m)
        return sp_err_set(err, "out of memory for a rank-%zu correlation", r);
    double *f = malloc(n * r * sizeof *f);
    if (!f)
        return sp_err_set(err, "out of memory");
    for (size_t i = 0; i < n; i++) {
        double norm = 0;
        for (size_t t = 0; t < r; t++) {
            f[i * r + t] = gsl_ran_gaussian_ziggurat(rng, 1.0);
            norm += f[i * r + t] * f[i * r + t];
        }
        norm = sqrt(norm);
        for (size_t t = 0; t < r; t++) {
            f[i * r + t] *= sqrt(g->cfg.rho) / (norm > 0 ? norm : 1);
            gsl_matrix_float_set(g->fac_t, t, i, (float)f[i * r + t]);
        }
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            double v = 0;
            for (size_t t = 0; t < r; t++)
                v += f[i * r + t] * f[j * r + t];
            gsl_matrix_set(g->corr_m, i, j, i == j ? 1.0 : v);
        }
    free(f);
    return 0;
}

static int make_truth(sp_gen *g, gsl_rng *rng, sp_err *err)
{
    const sp_gen_cfg *c = &g->cfg;
    switch (word_index(GEOMETRIES, c->geometry)) {
    case 0:
        sp_geom_gaussian(g->truth, rng);
        break;
    case 1:
        if (sp_geom_orthonormal(g->truth, rng, err) != 0)
            return -1;
        break;
    case 2: {
        double achieved;
        if (sp_geom_coherent(g->truth, c->coherence, rng, &achieved, err) != 0)
            return -1;
        break;
    }
    default:
        if (sp_geom_from_npy(c->directions, g->truth, err) != 0)
            return -1;
    }
    for (int t = 0; t < c->continuous; t++)
        if (sp_geom_orthonormalize_rows(g->truth, g->n + (size_t)t * (size_t)c->continuous_dim,
                                        (size_t)c->continuous_dim, err) != 0)
            return -1;
    for (size_t i = 0; i < g->n; i++)
        g->scale[i] = 1.0f;
    if (c->scales[0]) {
        double *s = malloc(g->n * sizeof *s);
        if (!s || sp_gen_parse_list(c->scales, "scales", g->n, 0, 1e30, s, err) != 0) {
            free(s);
            return -1;
        }
        for (size_t i = 0; i < g->n; i++)
            g->scale[i] = (float)s[i];
        free(s);
    } else if (c->scale_jitter > 0) {
        for (size_t i = 0; i < g->n; i++)
            g->scale[i] = (float)(1.0 + c->scale_jitter * gsl_ran_gaussian_ziggurat(rng, 1.0));
    }
    return 0;
}

typedef void (*progress_fn)(void *user, long step, long steps, double loss);

static int make_tms(sp_gen *g, gsl_rng *rng, progress_fn progress, void *user, sp_err *err)
{
    const sp_gen_cfg *c = &g->cfg;
    sp_tms_cfg tc = {.n = c->n, .m = c->d, .p = c->p, .importance = c->importance,
                     .steps = c->tms_steps, .batch = c->tms_batch, .lr = c->tms_lr};
    if (!(g->tms = sp_tms_train(&tc, rng, progress, user, err)))
        return -1;
    size_t n = g->n, m = g->d;
    for (size_t i = 0; i < n; i++) {
        double norm = 0;
        for (size_t r = 0; r < m; r++)
            norm += (double)g->tms->W[r * n + i] * g->tms->W[r * n + i];
        norm = sqrt(norm);
        g->scale[i] = (float)norm;
        for (size_t r = 0; r < m; r++)
            gsl_matrix_float_set(g->truth, i, r,
                                 norm > 0 ? (float)(g->tms->W[r * n + i] / norm)
                                          : (r == 0 ? 1.0f : 0.0f));
    }
    return 0;
}

static void draw_stream(sp_gen *g, gsl_rng *rng, size_t B, sp_codes *codes,
                        gsl_matrix_float *x);

static int make_dataset(sp_gen *g, gsl_rng *rng, sp_err *err)
{
    size_t N = (size_t)g->cfg.dataset, d = g->d, B = g->max_batch;
    size_t ev = (size_t)floor((double)N * g->cfg.holdout + 0.5);
    g->ds_n = N;
    g->ds_train = N - ev;
    size_t cap = N * 8 + 1024;
    g->ds_x = malloc(N * d * sizeof *g->ds_x);
    g->ds_row = malloc((N + 1) * sizeof *g->ds_row);
    g->ds_idx = malloc(cap * sizeof *g->ds_idx);
    g->ds_val = malloc(cap * sizeof *g->ds_val);
    g->perm = malloc(g->ds_train * sizeof *g->perm);
    sp_codes *tmp = sp_codes_alloc(B, B * g->nt);
    gsl_matrix_float *xb = gsl_matrix_float_alloc(B, d);
    int rc = -1;
    if (!g->ds_x || !g->ds_row || !g->ds_idx || !g->ds_val || !g->perm || !tmp || !xb) {
        sp_err_set(err, "out of memory for a dataset of %zu samples", N);
        goto out;
    }
    size_t nnz = 0;
    for (size_t done = 0; done < N; done += B) {
        size_t nb = N - done < B ? N - done : B;
        draw_stream(g, rng, nb, tmp, xb);
        memcpy(g->ds_x + done * d, xb->data, nb * d * sizeof(float));
        if (nnz + tmp->nnz > cap) {
            while (nnz + tmp->nnz > cap)
                cap *= 2;
            uint32_t *ni = realloc(g->ds_idx, cap * sizeof *ni);
            if (ni)
                g->ds_idx = ni;
            float *nv = realloc(g->ds_val, cap * sizeof *nv);
            if (nv)
                g->ds_val = nv;
            if (!ni || !nv) {
                sp_err_set(err, "out of memory for the dataset's codes");
                goto out;
            }
        }
        for (size_t b = 0; b < nb; b++)
            g->ds_row[done + b] = nnz + tmp->row[b];
        memcpy(g->ds_idx + nnz, tmp->idx, tmp->nnz * sizeof *tmp->idx);
        memcpy(g->ds_val + nnz, tmp->val, tmp->nnz * sizeof *tmp->val);
        nnz += tmp->nnz;
    }
    g->ds_row[N] = nnz;
    for (size_t i = 0; i < g->ds_train; i++)
        g->perm[i] = i;
    g->pos = g->ds_train; /* shuffle before the first batch */
    rc = 0;
out:
    gsl_matrix_float_free(xb);
    sp_codes_free(tmp);
    return rc;
}

sp_gen *sp_gen_alloc(const sp_gen_cfg *cfg, size_t max_batch, gsl_rng *rng, sp_err *err)
{
    return sp_gen_alloc_ex(cfg, max_batch, rng, NULL, NULL, err);
}

sp_gen *sp_gen_alloc_ex(const sp_gen_cfg *cfg, size_t max_batch, gsl_rng *rng,
                        progress_fn progress, void *user, sp_err *err)
{
    if (sp_gen_check(cfg, NULL, err) != 0)
        return NULL;
    sp_gen *g = calloc(1, sizeof *g);
    if (!g) {
        sp_err_set(err, "out of memory");
        return NULL;
    }
    g->cfg = *cfg;
    g->kind = word_index(GENERATORS, cfg->generator);
    g->firing = word_index(FIRINGS, cfg->firing);
    g->corr = word_index(CORRELATIONS, cfg->correlation);
    g->mkind = mag_kind(&cfg->mag);
    g->max_batch = max_batch;
    g->n = (size_t)cfg->n;
    g->nt = sp_gen_truth_rows(cfg);
    g->d = (size_t)cfg->d;
    size_t n = g->n;
    g->truth = gsl_matrix_float_alloc(g->nt, g->d);
    g->scale = malloc(n * sizeof *g->scale);
    g->fast = gsl_rng_alloc(&sm_type);
    g->cvec = malloc((size_t)(cfg->continuous_dim > 0 ? cfg->continuous_dim : 1) *
                     sizeof *g->cvec);
    g->nbits = (2 * n + 7) / 8 * 8;
    g->vbits = malloc(g->nbits * sizeof *g->vbits);
    g->thr = malloc(n * sizeof *g->thr);
    int oom = !g->truth || !g->scale || !g->fast || !g->cvec || !g->vbits || !g->thr;
    if (g->kind == K_SHARKEY) {
        g->probs = malloc(n * sizeof *g->probs); /* B x n once recording */
        g->w = malloc(n * sizeof *g->w);
        oom |= !g->probs || !g->w;
    }
    if (g->kind == K_FEATURES || g->kind == K_TMS) {
        g->base_p = malloc(n * sizeof *g->base_p);
        g->thresh = malloc(n * sizeof *g->thresh);
        oom |= !g->base_p || !g->thresh;
    }
    if (g->corr != C_NONE) {
        g->e = gsl_matrix_float_alloc(max_batch, n);
        g->z = gsl_matrix_float_alloc(max_batch, n);
        oom |= !g->e || !g->z;
        if (g->corr == C_LOWRANK) {
            g->er = gsl_matrix_float_alloc(max_batch, (size_t)cfg->rank);
            oom |= !g->er;
        }
    }
    if (cfg->background > 0) {
        g->bg = gsl_matrix_float_alloc(max_batch, n);
        oom |= !g->bg;
    }
    if (oom) {
        sp_err_set(err, "out of memory for generator (n = %zu, d = %zu)", n, g->d);
        goto fail;
    }
    if (g->kind == K_TMS ? make_tms(g, rng, progress, user, err) : make_truth(g, rng, err))
        goto fail;
    if (g->kind == K_SHARKEY)
        for (size_t i = 0; i < n; i++)
            g->w[i] = (float)pow(cfg->decay, (double)i);
    if (g->base_p) {
        double sum = 0;
        for (size_t i = 0; i < n; i++) {
            switch (g->firing) {
            case F_CONSTANT: g->base_p[i] = cfg->p; break;
            case F_DECAY: g->base_p[i] = pow(cfg->decay, (double)i); break;
            case F_ZIPF: g->base_p[i] = pow((double)i + 1.0, -cfg->zipf); break;
            default: break;
            }
            sum += g->base_p[i];
        }
        if (g->firing == F_LIST &&
            sp_gen_parse_list(cfg->probs, "probs", n, 0, 1, g->base_p, err) != 0)
            goto fail;
        if (g->firing == F_DECAY || g->firing == F_ZIPF)
            for (size_t i = 0; i < n; i++)
                g->base_p[i] *= cfg->k / sum;
        for (size_t i = 0; i < n; i++)
            g->thr[i] = prob_threshold((float)g->base_p[i]);
        for (size_t i = 0; i < n; i++)
            g->thresh[i] = g->base_p[i] <= 0   ? -INFINITY
                           : g->base_p[i] >= 1 ? INFINITY
                                               : (float)gsl_cdf_ugaussian_Pinv(g->base_p[i]);
    }
    if (g->corr == C_COPULA && make_copula(g, rng, err) != 0)
        goto fail;
    if (g->corr == C_LOWRANK && make_lowrank(g, rng, err) != 0)
        goto fail;
    if (g->kind == K_TREE) {
        int nf, last = -1;
        tree_size(cfg, &g->n_inst, &nf);
        g->inst = calloc(g->n_inst, sizeof *g->inst);
        if (!g->inst) {
            sp_err_set(err, "out of memory for a tree of %zu nodes", g->n_inst);
            goto fail;
        }
        size_t ni = 0;
        nf = 0;
        for (int i = 0; i < cfg->n_nodes; i++)
            if (!cfg->nodes[i].parent[0])
                expand(cfg, i, -1, g->inst, g->n_inst, &ni, &nf, &last);
    }
    if (cfg->dataset > 0 && make_dataset(g, rng, err) != 0)
        goto fail;
    return g;
fail:
    sp_gen_free(g);
    return NULL;
}

void sp_gen_free(sp_gen *g)
{
    if (!g)
        return;
    free(g->perm);
    free(g->ds_val);
    free(g->ds_idx);
    free(g->ds_row);
    free(g->ds_x);
    sp_tms_free(g->tms);
    gsl_rng_free(g->fast);
    free(g->cvec);
    gsl_matrix_float_free(g->bg);
    free(g->inst);
    free(g->thr);
    free(g->vbits);
    free(g->probs);
    gsl_matrix_float_free(g->er);
    gsl_matrix_float_free(g->z);
    gsl_matrix_float_free(g->e);
    gsl_matrix_float_free(g->fac_t);
    gsl_matrix_float_free(g->chol_t);
    gsl_matrix_free(g->corr_m);
    free(g->thresh);
    free(g->base_p);
    free(g->w);
    free(g->scale);
    gsl_matrix_float_free(g->truth);
    free(g);
}

const gsl_matrix_float *sp_gen_truth(const sp_gen *g) { return g->truth; }
const float *sp_gen_last_probs(const sp_gen *g) { return g->record ? g->probs : NULL; }

int sp_gen_record_probs(sp_gen *g)
{
    if (g->kind != K_SHARKEY)
        return -1;
    if (!g->record) {
        float *p = realloc(g->probs, g->max_batch * g->n * sizeof *p);
        if (!p)
            return -1;
        g->probs = p;
        g->record = 1;
    }
    return 0;
}
const gsl_matrix *sp_gen_correlation(const sp_gen *g) { return g->corr_m; }
const float *sp_gen_tms_w(const sp_gen *g) { return g->tms ? g->tms->W : NULL; }
const float *sp_gen_tms_b(const sp_gen *g) { return g->tms ? g->tms->b : NULL; }
double sp_gen_tms_loss(const sp_gen *g) { return g->tms ? g->tms->loss : NAN; }

int sp_gen_rates(const sp_gen *g, double *rates)
{
    if (g->kind == K_SHARKEY)
        return -1;
    if (g->kind == K_TREE) {
        for (size_t i = 0; i < g->n_inst; i++)
            if (g->inst[i].feature >= 0)
                rates[g->inst[i].feature] = g->inst[i].rate;
    } else {
        for (size_t i = 0; i < g->n; i++)
            rates[i] = g->base_p[i];
    }
    for (size_t r = g->n; r < g->nt; r++)
        rates[r] = g->cfg.continuous_p;
    return 0;
}

/* Correlated standard normals Z (B x n) in g->z. */
static void draw_copula(sp_gen *g, size_t B)
{
    size_t n = g->n;
    gsl_matrix_float_view e = gsl_matrix_float_submatrix(g->e, 0, 0, B, n);
    gsl_matrix_float_view z = gsl_matrix_float_submatrix(g->z, 0, 0, B, n);
    for (size_t b = 0; b < B; b++) {
        float *row = gsl_matrix_float_ptr(g->e, b, 0);
        for (size_t i = 0; i < n; i++)
            row[i] = (float)gsl_ran_gaussian_ziggurat(g->fast, 1.0);
    }
    if (g->corr == C_COPULA) {
        /* Z = E L^T: each row z = L e has covariance L L^T = C. L^T is upper
         * triangular: a triangular product, half the FLOPs of a GEMM. */
        gsl_matrix_float_memcpy(&z.matrix, &e.matrix);
        gsl_blas_strmm(CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, 1.0f, g->chol_t,
                       &z.matrix);
        return;
    }
    size_t r = (size_t)g->cfg.rank;
    gsl_matrix_float_view er = gsl_matrix_float_submatrix(g->er, 0, 0, B, r);
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < r; t++)
            gsl_matrix_float_set(g->er, b, t, (float)gsl_ran_gaussian_ziggurat(g->fast, 1.0));
    /* Z = sqrt(1 - rho) E + E_r F^T */
    gsl_matrix_float_memcpy(&z.matrix, &e.matrix);
    gsl_blas_sgemm(CblasNoTrans, CblasNoTrans, 1.0f, &er.matrix, g->fac_t,
                   (float)sqrt(1.0 - g->cfg.rho), &z.matrix);
}

typedef struct {
    sp_codes *codes;
    size_t nnz;
    float *xr;
} emit_ctx;

static inline void emit(sp_gen *g, emit_ctx *cx, size_t row, float a)
{
    const float *restrict gi = g->truth->data + row * g->truth->tda;
    float *restrict xr = cx->xr;
    size_t d = g->d;
    for (size_t j = 0; j < d; j++)
        xr[j] += a * gi[j];
    if (cx->codes && cx->nnz < cx->codes->cap) {
        cx->codes->idx[cx->nnz] = (uint32_t)row;
        cx->codes->val[cx->nnz] = a;
        cx->nnz++;
    }
}

static void tree_fire(sp_gen *g, emit_ctx *cx, sm_state *st, int first, int exclusive)
{
    if (first < 0)
        return;
    if (exclusive) {
        double u = sm_uniform(st), acc = 0;
        for (int c = first; c >= 0; c = g->inst[c].next_sibling) {
            acc += g->inst[c].p;
            if (u < acc) {
                tree_inst *t = &g->inst[c];
                if (t->feature >= 0)
                    emit(g, cx, (size_t)t->feature,
                         g->scale[t->feature] * draw_mag(t->mkind, &t->mag, st, g->fast));
                tree_fire(g, cx, st, t->first_child, t->exclusive);
                return;
            }
        }
        return;
    }
    for (int c = first; c >= 0; c = g->inst[c].next_sibling) {
        tree_inst *t = &g->inst[c];
        if (sm_uniform(st) >= t->p)
            continue;
        if (t->feature >= 0)
            emit(g, cx, (size_t)t->feature,
                 g->scale[t->feature] * draw_mag(t->mkind, &t->mag, st, g->fast));
        tree_fire(g, cx, st, t->first_child, t->exclusive);
    }
}

/* Fires feature i when (v_i >> 1) < thr_i (prob_threshold), four at a
 * time: most blocks fire nothing and cost one compare. */
static void fire_scan(sp_gen *g, emit_ctx *cx, sm_state *st, const uint32_t *v,
                      const int32_t *thr, size_t n)
{
    const sp_mag_cfg *mag = &g->cfg.mag;
    size_t i = 0;
#ifdef __SSE2__
    for (; i + 4 <= n; i += 4) {
        __m128i vv = _mm_srli_epi32(_mm_loadu_si128((const __m128i *)(v + i)), 1);
        __m128i tt = _mm_loadu_si128((const __m128i *)(thr + i));
        int m = _mm_movemask_ps(_mm_castsi128_ps(_mm_cmplt_epi32(vv, tt)));
        for (int l = 0; m; l++, m >>= 1)
            if (m & 1)
                emit(g, cx, i + (size_t)l,
                     g->scale[i + (size_t)l] * draw_mag(g->mkind, mag, st, g->fast));
    }
#endif
    for (; i < n; i++)
        if ((int32_t)(v[i] >> 1) < thr[i])
            emit(g, cx, i, g->scale[i] * draw_mag(g->mkind, mag, st, g->fast));
}

/* One sample's point features (sample b of the batch). */
static void sample_points(sp_gen *g, emit_ctx *cx, sm_state *st, size_t b)
{
    size_t n = g->n;
    const sp_mag_cfg *mag = &g->cfg.mag;
    if (g->kind == K_TREE) {
        tree_fire(g, cx, st, g->n_inst ? 0 : -1, 0);
        return;
    }
    if (g->kind == K_SHARKEY) {
        float *p = g->record ? g->probs + b * n : g->probs;
        /* 2n 32-bit uniforms: the copula's u_i (uncorrelated), then the firing draws */
        uint32_t *v = g->vbits + n;
        x8_fill(&g->x8, g->vbits, g->nbits);
        if (g->corr == C_NONE) {
            for (size_t i = 0; i < n; i++) /* 24 bits: exact in float */
                p[i] = (float)(int32_t)(g->vbits[i] >> 8) * 0x1.0p-24f;
        } else {
            const float *zr = gsl_matrix_float_const_ptr(g->z, b, 0);
            for (size_t i = 0; i < n; i++)
                p[i] = 0.5f * erfcf(-zr[i] * (float)M_SQRT1_2);
        }
        float part[8] = {0};
        size_t i = 0;
        for (; i + 8 <= n; i += 8)
            for (int l = 0; l < 8; l++)
                part[l] += p[i + l] * g->w[i + l];
        double sum = 0;
        for (; i < n; i++)
            sum += (double)p[i] * g->w[i];
        for (int l = 0; l < 8; l++)
            sum += part[l];
        float scale = sum > 0 ? (float)(g->cfg.k / sum) : 0.0f;
        int32_t *thr = (int32_t *)g->thr;
        for (i = 0; i < n; i++) {
            float pi = p[i] * g->w[i] * scale;
            p[i] = pi > 1.0f ? 1.0f : pi;
            thr[i] = prob_threshold(p[i]);
        }
        fire_scan(g, cx, st, v, thr, n);
        return;
    }
    /* features, tms */
    if (g->cfg.exclusive > 1) {
        size_t G = (size_t)g->cfg.exclusive;
        for (size_t s = 0; s < n; s += G) {
            double u = sm_uniform(st), acc = 0;
            for (size_t i = s; i < n && i < s + G; i++) {
                acc += g->base_p[i];
                if (u < acc) {
                    emit(g, cx, i, g->scale[i] * draw_mag(g->mkind, mag, st, g->fast));
                    break;
                }
            }
        }
        return;
    }
    if (g->corr != C_NONE) {
        const float *zr = gsl_matrix_float_const_ptr(g->z, b, 0);
        for (size_t i = 0; i < n; i++)
            if (zr[i] < g->thresh[i])
                emit(g, cx, i, g->scale[i] * draw_mag(g->mkind, mag, st, g->fast));
        return;
    }
    x8_fill(&g->x8, g->vbits, g->nbits);
    fire_scan(g, cx, st, g->vbits, g->thr, n);
}

static void draw_stream(sp_gen *g, gsl_rng *rng, size_t B, sp_codes *codes,
                        gsl_matrix_float *x)
{
    size_t d = g->d, n = g->n;
    /* key the batch's SplitMix64 stream with two draws of the caller's rng */
    unsigned long hi = gsl_rng_get(rng);
    unsigned long lo = gsl_rng_get(rng);
    gsl_rng_set(g->fast, (unsigned long)(((uint64_t)hi << 32) ^ (uint64_t)lo));
    sm_state *st = g->fast->state;
    x8_seed(&g->x8, st);
    if (g->corr != C_NONE)
        draw_copula(g, B);
    emit_ctx cx = {codes, 0, NULL};
    if (codes)
        codes->rows = B;
    int kdim = g->cfg.continuous_dim;
    for (size_t b = 0; b < B; b++) {
        cx.xr = gsl_matrix_float_ptr(x, b, 0);
        memset(cx.xr, 0, d * sizeof *cx.xr);
        if (codes)
            codes->row[b] = cx.nnz;
        sample_points(g, &cx, st, b);
        for (int c = 0; c < g->cfg.continuous; c++) {
            if (sm_uniform(st) >= g->cfg.continuous_p)
                continue;
            double norm = 0;
            for (int t = 0; t < kdim; t++) {
                g->cvec[t] = gsl_ran_gaussian_ziggurat(g->fast, 1.0);
                norm += g->cvec[t] * g->cvec[t];
            }
            double a = draw_mag(g->mkind, &g->cfg.mag, st, g->fast) / sqrt(norm);
            for (int t = 0; t < kdim; t++)
                emit(g, &cx, n + (size_t)c * (size_t)kdim + (size_t)t, (float)(a * g->cvec[t]));
        }
        if (g->cfg.noise > 0)
            for (size_t j = 0; j < d; j++)
                cx.xr[j] += (float)gsl_ran_gaussian_ziggurat(g->fast, g->cfg.noise);
    }
    if (g->bg) {
        float top = (float)g->cfg.background;
        for (size_t b = 0; b < B; b++) {
            float *r = gsl_matrix_float_ptr(g->bg, b, 0);
            for (size_t i = 0; i < n; i++)
                r[i] = top * (float)sm_uniform(st);
        }
        gsl_matrix_float_view bv = gsl_matrix_float_submatrix(g->bg, 0, 0, B, n);
        gsl_matrix_float_const_view tv =
            gsl_matrix_float_const_submatrix(g->truth, 0, 0, n, d);
        gsl_matrix_float_view xv = gsl_matrix_float_submatrix(x, 0, 0, B, d);
        gsl_blas_sgemm(CblasNoTrans, CblasNoTrans, 1.0f, &bv.matrix, &tv.matrix, 1.0f,
                       &xv.matrix);
    }
    if (codes) {
        codes->row[B] = cx.nnz;
        codes->nnz = cx.nnz;
    }
}

void sp_gen_use_split(sp_gen *g, sp_split split)
{
    g->split = split;
    g->eval_pos = 0;
}

size_t sp_gen_split_size(const sp_gen *g, sp_split split)
{
    return split == SP_SPLIT_TRAIN ? g->ds_train : g->ds_n - g->ds_train;
}

void sp_gen_batch(sp_gen *g, gsl_rng *rng, size_t B, sp_codes *codes, gsl_matrix_float *x)
{
    if (B > g->max_batch)
        B = g->max_batch;
    if (!g->ds_n) {
        draw_stream(g, rng, B, codes, x);
        return;
    }
    size_t d = g->d, nnz = 0;
    size_t n_eval = g->ds_n - g->ds_train;
    if (codes)
        codes->rows = B;
    for (size_t b = 0; b < B; b++) {
        size_t s;
        if (g->split == SP_SPLIT_EVAL && n_eval > 0) {
            s = g->ds_train + g->eval_pos;
            g->eval_pos = (g->eval_pos + 1) % n_eval;
        } else {
            if (g->pos >= g->ds_train) {
                gsl_ran_shuffle(rng, g->perm, g->ds_train, sizeof *g->perm);
                g->pos = 0;
            }
            s = g->perm[g->pos++];
        }
        memcpy(gsl_matrix_float_ptr(x, b, 0), g->ds_x + s * d, d * sizeof(float));
        if (codes) {
            codes->row[b] = nnz;
            for (size_t t = g->ds_row[s]; t < g->ds_row[s + 1] && nnz < codes->cap; t++) {
                codes->idx[nnz] = g->ds_idx[t];
                codes->val[nnz] = g->ds_val[t];
                nnz++;
            }
        }
    }
    if (codes) {
        codes->row[B] = nnz;
        codes->nnz = nnz;
    }
}

size_t sp_gen_parent_rows(const sp_gen *g, long *parent)
{
    size_t nt = g->truth->size1, with = 0;
    for (size_t i = 0; i < nt; i++)
        parent[i] = -1;
    if (g->kind != K_TREE)
        return 0;
    for (size_t k = 0; k < g->n_inst; k++) {
        const tree_inst *t = &g->inst[k];
        if (t->feature < 0)
            continue;
        int a = t->parent;
        while (a >= 0 && g->inst[a].feature < 0)
            a = g->inst[a].parent; /* latent nodes only gate: skip them */
        if (a >= 0) {
            parent[t->feature] = g->inst[a].feature;
            with++;
        }
    }
    return with;
}
