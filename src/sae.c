/* sae.c: the ReLU family of sparse autoencoders (relu, topk, batchtopk,
 * jumprelu), with tied weights, pre-encoder bias, an MLP encoder,
 * Matryoshka prefixes, AuxK and the pre-activation spread penalty.
 * REFERENCE.md 2.
 *
 * Forward (x: (B, d); W_e: (m, d) or (m, H) with the MLP; W_d: (m, d), one
 * atom per row; tied: W_e = W_d):
 *   xc  = x - b_d                       (b_d only with pre_bias)
 *   u   = xc, or ReLU(xc W_1^T + b_1)   (MLP encoder, W_1: (H, d))
 *   p   = u W_e^T + b_e                 (B, m)
 *   f   = relu       ReLU(p)                         Sharkey et al. 2022
 *         topk       ReLU(TopK_k(p)) per sample       Gao et al. 2024
 *         batchtopk  the B*k largest of the batch     Bussmann et al. 2024
 *                    (inference: p [p > theta], theta an EMA of the
 *                    smallest kept value of each batch that keeps any)
 *         jumprelu   p H(p - theta)                   Rajamanoharan et al. 2024b
 *   x_hat_j = f[:, :e_j] W_d[:e_j] + b_d for nested prefixes e_1 < ... < e_J = m
 *             (J = 1 without Matryoshka; Bussmann et al. 2025, Nabeshima 2024)
 *   loss = c sum_j ||x_hat_j - x||^2 + P(f) + R_aux + R_std
 *   c = 1/(B d) (torch MSELoss) or 1/B (model.mse_per_sample).
 *   P: penalty.h on f (relu); L0 for jumprelu: coef/B sum H(p - theta);
 *   none for topk and batchtopk.
 *   R_aux (AuxK, topk/batchtopk): a_coef c ||e - TopK_kaux(p_dead) W_d||^2,
 *   e = x - x_hat_J held constant, over latents that have not fired for
 *   dead_steps steps (Gao et al. 2024, section 2.4).
 *   R_std = sp_reg_prestd(p) (reg.c).
 * Backward (r_j = x_hat_j - x; S_j = sum_{i >= j} 2 c r_i, the gradient
 * reaching the atoms of prefix group j):
 *   dW_d[group j] = f_j^T S_j;     df[group j] = S_j W_d[group j]^T (+ dP/df)
 *   dp = df * [f active]           (jumprelu: [p > theta])
 *   jumprelu threshold, rectangle straight-through estimator of width eps
 *   (K(u) = 1 if |u| < 1/2):  dtheta_i = sum_b df_bi (-theta_i/eps) K((p_bi - theta_i)/eps)
 *                                       - coef/B sum_b (1/eps) K((p_bi - theta_i)/eps)
 *   dW_e = dp^T u;  db_e = sum_b dp;  du = dp W_e (tied: dW_d += dp^T xc)
 *   MLP: dh = du * [h > 0]; dW_1 = dh^T xc; db_1 = sum_b dh; dxc = dh W_1
 *   db_d = sum_b S_1 - sum_b dxc
 * Unit-norm atoms (unless the penalty uses decoder norms): before the
 * step the component of each atom's gradient along the atom is removed
 * (Bricken et al. 2023); after the step atoms are renormalised (by the
 * optimizer, row by row: sp_param.unit_rows).
 * Sparse steps (model.sparse, relu/topk/batchtopk with an untied linear
 * encoder): once few codes are active, everything after the encoder GEMM
 * runs over the active entries only (B x L0 x d work): relu lists its
 * codes straight from the product (relu_list), the decoder forward, dW_d,
 * df and dW_e are axpys and dots over the list, and the rows of dW_d and
 * dW_e the step wrote are passed to the optimizer as row masks, so that it
 * does not read the others (all zero). The same sums as the GEMMs in
 * another order (within float32 rounding; the masks and the listing give
 * the same bits: tests). */
#include "superpose/sae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_blas.h>
#include <gsl/gsl_randist.h>

typedef enum { K_RELU, K_TOPK, K_BATCHTOPK, K_JUMPRELU } act_kind;

#define MAX_PREFIXES 64

typedef struct {
    sp_learner base;
    sp_sae_cfg cfg;
    act_kind kind;
    sp_penalty *pen;
    char pen_name[32];
    int pen_per_latent;
    int use_dnorm;
    size_t H, k, k_aux;
    /* parameters and gradients */
    gsl_matrix_float *we, *gwe;   /* (m, d) or (m, H); NULL when tied */
    float *be, *gbe;              /* (m) */
    gsl_matrix_float *wd, *gwd;   /* (m, d) */
    float *bd, *gbd;              /* (d) or NULL */
    gsl_matrix_float *w1, *gw1;   /* (H, d) MLP */
    float *b1, *gb1;              /* (H) */
    float *theta, *gtheta;        /* (m) jumprelu */
    int i_we, i_be, i_wd, i_theta;/* indices in params, -1 if absent */
    /* training state */
    float thr;                    /* batchtopk inference threshold */
    int thr_set;
    long *last_fired;             /* (m) */
    gsl_rng *rng;                 /* sampled Matryoshka prefixes */
    size_t fixed[MAX_PREFIXES], n_fixed;
    size_t pref[MAX_PREFIXES], n_pref;
    /* workspace, max_batch rows */
    gsl_matrix_float *xc;         /* (B, d): x - b_d, then dxc */
    gsl_matrix_float_view xcv, hav; /* their first B rows, this call */
    gsl_matrix_float *hpre, *hact;/* (B, H): MLP hidden, then dh */
    gsl_matrix_float *p;          /* (B, m) pre-activations */
    gsl_matrix_float *f;          /* (B, m) codes */
    gsl_matrix_float *df;         /* (B, m): df, then dp */
    gsl_matrix_float *r[MAX_PREFIXES]; /* (B, d) residual of each prefix */
    gsl_matrix_float *sacc;       /* (B, d) S_j */
    float *scratch;               /* max(B m, H, m) */
    float *dnorm, *ddnorm;        /* (m) */
    size_t *aux_idx;              /* (B k_aux) */
    float *aux_val;               /* (B k_aux) */
    size_t *dead;                 /* (m) */
    float *dead_z, *dead_f;       /* (m) */
    float *ebuf;                  /* (d) */
    size_t *aux_n;                /* (B) AuxK entries of sample b, at aux_idx + b k_aux */
    /* sparse kernels (relu, topk, batchtopk; linear untied encoder, one
     * prefix, no prestd, no decoder norms in the penalty) */
    int sparse_ok;                /* the model allows them */
    int last_sparse;              /* the last step used them; -1 before any */
    unsigned *cidx;               /* (B m) active latents of sample b at cptr[b]..cptr[b+1] */
    float *cval;                  /* (B m) their codes; dp in the same layout lives in df */
    size_t *cptr;                 /* (B + 1) */
    float *aux_dp;                /* (B k_aux) AuxK's dp at its entries (sparse steps) */
    unsigned char *dirty;         /* (m) rows of gW_d, gW_e written since they were zeroed */
    int all_dirty;
    sp_rowmask mask_e, mask_d;    /* dirty, for the optimizer, after a sparse step (optim.h) */
    /* ensembles (ensemble.c): W_e lives in the ensemble's storage, and the
     * product u W_e^T of the next step is given (ext, B x m) */
    const gsl_matrix_float *ext;
    float *ext_c;                 /* (m) b_e - W_e b_d, with a pre-encoder bias */
    sp_param params[8];
} fam_sae;

static const char *arch_names[] = {"relu", "topk",    "batchtopk", "jumprelu", "gated",
                                   "stacked", "dl", "rica",      "pca"};

static int arch_index(const char *a)
{
    for (int i = 0; i < 9; i++)
        if (!strcmp(a, arch_names[i]))
            return i;
    return -1;
}

/* Parses "a, b, c" into strictly increasing positive sizes. */
static const char *parse_prefixes(const char *text, size_t *out, size_t *n)
{
    static _Thread_local char msg[400];
    *n = 0;
    const char *s = text;
    while (*s) {
        while (*s == ' ' || *s == ',' || *s == '\t')
            s++;
        if (!*s)
            break;
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || (*end && *end != ',' && *end != ' ' && *end != '\t')) {
            snprintf(msg, sizeof msg, "model.prefixes = '%s': expected positive integers "
                     "separated by commas (the nested dictionary sizes)", text);
            return msg;
        }
        if (*n == MAX_PREFIXES - 1) {
            snprintf(msg, sizeof msg, "model.prefixes = '%s': at most %d prefixes", text,
                     MAX_PREFIXES - 1);
            return msg;
        }
        if (*n > 0 && (size_t)v <= out[*n - 1]) {
            snprintf(msg, sizeof msg, "model.prefixes = '%s': sizes must be strictly "
                     "increasing", text);
            return msg;
        }
        out[(*n)++] = (size_t)v;
        s = end;
    }
    return NULL;
}

const char *sp_sae_check(const sp_sae_cfg *c, const sp_penalty_cfg *pen)
{
    static _Thread_local char msg[512];
    int a = arch_index(c->arch);
    if (a < 0) {
        snprintf(msg, sizeof msg, "model.arch = '%s': unknown architecture; allowed: %s",
                 c->arch, sp_sae_archs());
        return msg;
    }
    const char *bad = sp_penalty_check(pen);
    if (bad)
        return bad;
    const char *arch = c->arch;
    int by_rank = !strcmp(arch, "topk") || !strcmp(arch, "batchtopk") || !strcmp(arch, "stacked");
    int is_l0 = !strcmp(pen->name, "l0"), is_none = !strcmp(pen->name, "none");
    if (by_rank && !is_none) {
        snprintf(msg, sizeof msg, "model.arch = %s selects latents by rank and takes no "
                 "sparsity penalty: train.penalty = '%s' needs ReLU activations (set "
                 "train.penalty = none)", arch, pen->name);
        return msg;
    }
    if (!strcmp(arch, "jumprelu") && !is_l0 && !is_none) {
        snprintf(msg, sizeof msg, "model.arch = jumprelu is trained with train.penalty = l0 "
                 "(or none); '%s' is a penalty on ReLU activations", pen->name);
        return msg;
    }
    if (is_l0 && strcmp(arch, "jumprelu") != 0) {
        snprintf(msg, sizeof msg, "train.penalty = l0 is the L0 penalty of model.arch = "
                 "jumprelu (its threshold has a straight-through gradient); model.arch = %s "
                 "has none", arch);
        return msg;
    }
    int dl = !strcmp(arch, "dl"), dl_omp = dl && c->coder == 1;
    if (dl_omp && !is_none) {
        snprintf(msg, sizeof msg, "model.arch = dl with model.coder = omp codes with model.k "
                 "atoms and takes no penalty: train.penalty = '%s' (set train.penalty = none, "
                 "or model.coder = fista for an L1 penalty)", pen->name);
        return msg;
    }
    if ((dl && !dl_omp) || !strcmp(arch, "rica")) {
        if (strcmp(pen->name, "l1") != 0) {
            snprintf(msg, sizeof msg, "model.arch = %s is trained with train.penalty = l1 "
                     "(%s, weighted by train.coef); '%s' is not supported", arch,
                     dl ? "the LASSO of its FISTA coder" : "smoothed as log cosh", pen->name);
            return msg;
        }
    }
    if (!strcmp(arch, "pca") && !is_none)
        return "model.arch = pca has no sparsity penalty (set train.penalty = none)";
    if ((by_rank || dl_omp) && c->k < 1)
        return "model.k must be >= 1 (active latents per sample)";
    if (dl && !(c->forget > 0 && c->forget <= 1))
        return "model.forget must be in (0, 1] (decay of the dictionary statistics per step)";
    int family = a <= 3;
    const char *extra = c->tied ? "model.tied" : c->mlp ? "model.encoder = mlp"
                      : c->prefixes[0] || c->prefix_samples ? "Matryoshka prefixes"
                      : c->prestd > 0 ? "model.prestd" : NULL;
    if (!family && extra) {
        snprintf(msg, sizeof msg, "%s is not supported by model.arch = %s (only by relu, "
                 "topk, batchtopk and jumprelu)", extra, arch);
        return msg;
    }
    if (a >= 6 && (c->orth > 0 || c->pre_bias)) {
        snprintf(msg, sizeof msg, "%s is not supported by model.arch = %s",
                 c->orth > 0 ? "model.orth" : "model.pre_bias", arch);
        return msg;
    }
    if (c->tied && c->mlp)
        return "model.tied = true cannot be combined with model.encoder = mlp (the encoder "
               "is not the decoder's transpose)";
    if (c->prefixes[0] && c->prefix_samples > 0)
        return "model.prefixes and model.prefix_samples exclude each other (fixed or "
               "sampled Matryoshka prefixes)";
    if (c->prefixes[0]) {
        size_t tmp[MAX_PREFIXES], n;
        if ((bad = parse_prefixes(c->prefixes, tmp, &n)))
            return bad;
    }
    if (c->prefix_samples < 0 || c->prefix_samples > MAX_PREFIXES - 1)
        return "model.prefix_samples must be in [0, 63]";
    if (c->hidden < 0)
        return "model.hidden must be >= 0 (0: the input dimension)";
    if (!(c->ema > 0 && c->ema < 1) && !strcmp(arch, "batchtopk"))
        return "model.ema must be in (0, 1) (decay of the inference threshold's average)";
    if (!strcmp(arch, "jumprelu") && !(c->theta0 > 0 && isfinite(c->theta0)))
        return "model.theta0 must be > 0 (initial JumpReLU threshold)";
    if (!strcmp(arch, "jumprelu") && !(c->bandwidth > 0 && isfinite(c->bandwidth)))
        return "model.bandwidth must be > 0 (width of the straight-through rectangle)";
    if (!(c->aux_coef >= 0 && isfinite(c->aux_coef)))
        return "model.aux_coef must be a finite value >= 0";
    if (c->dead_steps < 1 && c->aux_coef > 0 && (!strcmp(arch, "topk") || !strcmp(arch, "batchtopk")))
        return "model.dead_steps must be >= 1 (steps without firing before AuxK counts a latent as dead)";
    if (c->k_aux < 0)
        return "model.k_aux must be >= 0 (0: d / 2)";
    if (c->layers < 1 && !strcmp(arch, "stacked"))
        return "model.layers must be >= 1";
    if (!(c->orth >= 0 && isfinite(c->orth)))
        return "model.orth must be a finite value >= 0";
    if (!(c->prestd >= 0 && isfinite(c->prestd)))
        return "model.prestd must be a finite value >= 0";
    return NULL;
}

const char *sp_sae_check_latents(const sp_sae_cfg *c, size_t m, size_t d)
{
    static _Thread_local char msg[400];
    const char *arch = c->arch;
    if (!strcmp(arch, "stacked")) {
        if (c->layers < 1 || m % (size_t)c->layers != 0) {
            snprintf(msg, sizeof msg, "model.layers = %d must divide the number of latents "
                     "m = %zu", c->layers, m);
            return msg;
        }
        if ((size_t)c->k > m / (size_t)c->layers) {
            snprintf(msg, sizeof msg, "model.k = %d is more than the %zu latents of a layer",
                     c->k, m / (size_t)c->layers);
            return msg;
        }
    } else if ((!strcmp(arch, "topk") || !strcmp(arch, "batchtopk") ||
                (!strcmp(arch, "dl") && c->coder == 1)) && (size_t)c->k > m) {
        snprintf(msg, sizeof msg, "model.k = %d is more than the m = %zu latents", c->k, m);
        return msg;
    }
    if (c->prefixes[0]) {
        size_t tmp[MAX_PREFIXES], n;
        const char *bad = parse_prefixes(c->prefixes, tmp, &n);
        if (bad)
            return bad;
        if (n > 0 && tmp[n - 1] > m) {
            snprintf(msg, sizeof msg, "model.prefixes = '%s': the largest prefix %zu exceeds "
                     "the m = %zu latents", c->prefixes, tmp[n - 1], m);
            return msg;
        }
    }
    if (c->prefix_samples > 0 && m < 2)
        return "model.prefix_samples needs at least 2 latents";
    (void)d;
    return NULL;
}

static gsl_matrix_float_view rows(gsl_matrix_float *a, size_t B)
{
    return gsl_matrix_float_submatrix(a, 0, 0, B, a->size2);
}

static gsl_matrix_float *enc_w(fam_sae *s) { return s->cfg.tied ? s->wd : s->we; }

/* u = encoder input of x: xc = x - b_d, then the MLP's hidden layer. */
static const gsl_matrix_float *encoder_input(fam_sae *s, const gsl_matrix_float *x,
                                            const gsl_matrix_float **xin_out)
{
    size_t B = x->size1, d = s->base.d;
    const gsl_matrix_float *xin = x;
    if (s->bd) {
        gsl_matrix_float_view XC = rows(s->xc, B);
        for (size_t b = 0; b < B; b++) {
            const float *xr = gsl_matrix_float_const_ptr(x, b, 0);
            float *cr = gsl_matrix_float_ptr(&XC.matrix, b, 0);
            for (size_t j = 0; j < d; j++)
                cr[j] = xr[j] - s->bd[j];
        }
        s->xcv = XC;
        xin = &s->xcv.matrix;
    }
    *xin_out = xin;
    if (!s->H)
        return xin;
    gsl_matrix_float_view HP = rows(s->hpre, B), HA = rows(s->hact, B);
    gsl_blas_sgemm(CblasNoTrans, CblasTrans, 1.0f, xin, s->w1, 0.0f, &HP.matrix);
    for (size_t b = 0; b < B; b++) {
        float *hp = gsl_matrix_float_ptr(&HP.matrix, b, 0);
        float *ha = gsl_matrix_float_ptr(&HA.matrix, b, 0);
        for (size_t h = 0; h < s->H; h++) {
            float v = hp[h] + s->b1[h];
            hp[h] = v;
            ha[h] = v > 0 ? v : 0.0f;
        }
    }
    s->hav = HA;
    return &s->hav.matrix;
}

/* The bias added to the product: b_e, or in an ensemble with a pre-encoder
 * bias, b_e - W_e b_d (see preact). */
static const float *enc_bias(fam_sae *s)
{
    if (!s->ext || !s->bd)
        return s->be;
    for (size_t i = 0; i < s->base.m; i++) {
        const float *w = gsl_matrix_float_const_ptr(s->we, i, 0);
        float acc = 0;
        for (size_t t = 0; t < s->base.d; t++)
            acc += w[t] * s->bd[t];
        s->ext_c[i] = s->be[i] - acc;
    }
    return s->ext_c;
}

/* The product u W_e^T into P, or the ensemble's (s->ext), which then
 * holds it (x W_e^T). */
static const gsl_matrix_float *enc_product(fam_sae *s, const gsl_matrix_float *u,
                                           gsl_matrix_float *P)
{
    if (s->ext)
        return s->ext;
    gsl_blas_sgemm(CblasNoTrans, CblasTrans, 1.0f, u, enc_w(s), 0.0f, P);
    return P;
}

/* P = u W_e^T + b_e. In an ensemble, x W_e^T is given (s->ext), and
 * (x - b_d) W_e^T + b_e = x W_e^T + (b_e - W_e b_d). */
static void preact(fam_sae *s, const gsl_matrix_float *u, gsl_matrix_float *P)
{
    size_t B = P->size1, m = s->base.m;
    const gsl_matrix_float *prod = enc_product(s, u, P);
    const float *c = enc_bias(s);
    for (size_t b = 0; b < B; b++) {
        const float *er = gsl_matrix_float_const_ptr(prod, b, 0);
        float *pr = gsl_matrix_float_ptr(P, b, 0);
        for (size_t i = 0; i < m; i++)
            pr[i] = er[i] + c[i];
    }
}

/* The positive entries of e + c over n floats, appended to idx and val;
 * returns how many. Codes are mostly zero, so blocks of 16 are tested at
 * once and only a block with a positive entry is walked. Two builds of the
 * same arithmetic (one float addition per entry, IEEE, so the same bits):
 * the block test as a max (vectorises on any x86-64), and with AVX2 as two
 * 8-float vector compares. */
/* Appends the positive entries of e + c over [lo, hi) at a; returns the
 * new count. */
static inline size_t relu_scan_range(const float *restrict e, const float *restrict c,
                                     size_t lo, size_t hi, unsigned *restrict idx,
                                     float *restrict val, size_t a)
{
    for (size_t q = lo; q < hi; q++) {
        float v = e[q] + c[q];
        if (v > 0) {
            idx[a] = (unsigned)q;
            val[a++] = v;
        }
    }
    return a;
}

#define RELU_SCAN_BODY(BLOCK_TEST)                                                              \
    size_t a = 0, i = 0;                                                                        \
    for (; i + 16 <= n; i += 16) {                                                              \
        BLOCK_TEST                                                                              \
        a = relu_scan_range(e, c, i, i + 16, idx, val, a);                                      \
    }                                                                                           \
    return relu_scan_range(e, c, i, n, idx, val, a);

static size_t relu_scan_max(const float *restrict e, const float *restrict c, size_t n,
                            unsigned *restrict idx, float *restrict val)
{
    /* mx starts at 0 so that a NaN entry (never > 0) cannot hide the others */
    RELU_SCAN_BODY(float mx = 0; for (size_t q = i; q < i + 16; q++) {
        float v = e[q] + c[q];
        mx = v > mx ? v : mx;
    } if (!(mx > 0)) continue;)
}

#if defined(__x86_64__) && defined(__GNUC__)
typedef float v8f __attribute__((vector_size(32), aligned(4)));
typedef int v8i __attribute__((vector_size(32)));

__attribute__((target("avx2"))) static size_t
relu_scan_avx2(const float *restrict e, const float *restrict c, size_t n, unsigned *restrict idx,
               float *restrict val)
{
    RELU_SCAN_BODY(v8i pos = (*(const v8f *)(e + i) + *(const v8f *)(c + i) > 0) |
                             (*(const v8f *)(e + i + 8) + *(const v8f *)(c + i + 8) > 0);
                   unsigned long long h[4]; memcpy(h, &pos, sizeof h);
                   if (!((h[0] | h[1]) | (h[2] | h[3]))) continue;)
}
#endif

typedef size_t (*relu_scan_fn)(const float *, const float *, size_t, unsigned *, float *);

static relu_scan_fn relu_scan(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (sp_cpu_avx2())
        return relu_scan_avx2;
#endif
    return relu_scan_max;
}

/* relu training with the sparse kernels at hand: the codes ReLU(u W_e^T +
 * b_e) listed by sample (cidx, cval, cptr), firing counted, in one pass
 * over the product (P is left without the bias and F is not written).
 * The same codes, by the same float additions, as preact + activate.
 * Returns the number of active entries. */
static size_t relu_list(fam_sae *s, const gsl_matrix_float *u, gsl_matrix_float *P)
{
    sp_learner *L = &s->base;
    size_t B = P->size1, m = L->m, active = 0;
    const gsl_matrix_float *prod = enc_product(s, u, P);
    const float *c = enc_bias(s);
    relu_scan_fn scan = relu_scan();
    for (size_t b = 0; b < B; b++) {
        s->cptr[b] = active;
        active += scan(gsl_matrix_float_const_ptr(prod, b, 0), c, m, s->cidx + active,
                       s->cval + active);
        for (size_t e = s->cptr[b]; e < active; e++) {
            L->fires[s->cidx[e]]++;
            s->last_fired[s->cidx[e]] = L->step;
        }
    }
    s->cptr[B] = active;
    return active;
}

/* Batch top B*k of P (flattened) into F; returns the smallest kept value,
 * or INFINITY if nothing is kept (no pre-activation of the batch > 0). */
static float batch_topk(fam_sae *s, const gsl_matrix_float *P, gsl_matrix_float *F)
{
    size_t B = P->size1, m = s->base.m, n = B * m, want = B * s->k;
    for (size_t b = 0; b < B; b++)
        memcpy(s->scratch + b * m, gsl_matrix_float_const_ptr(P, b, 0), m * sizeof(float));
    if (want > n)
        want = n;
    float t = sp_kth_largest(s->scratch, n, want);
    size_t above = 0;
    for (size_t b = 0; b < B; b++) {
        const float *pr = gsl_matrix_float_const_ptr(P, b, 0);
        for (size_t i = 0; i < m; i++)
            above += pr[i] > t;
    }
    size_t ties = want - above;
    float lo = INFINITY;
    for (size_t b = 0; b < B; b++) {
        const float *pr = gsl_matrix_float_const_ptr(P, b, 0);
        float *fr = gsl_matrix_float_ptr(F, b, 0);
        for (size_t i = 0; i < m; i++) {
            float v = pr[i];
            int keep = v > t || (v == t && ties > 0 && (ties--, 1));
            keep = keep && v > 0;
            fr[i] = keep ? v : 0.0f;
            if (keep && v < lo)
                lo = v;
        }
    }
    return lo;
}

/* Codes F of pre-activations P; training = 1 uses the batch rule of
 * batchtopk (and updates its threshold). */
static void activate(fam_sae *s, const gsl_matrix_float *P, gsl_matrix_float *F, int training)
{
    size_t B = P->size1, m = s->base.m;
    if (s->kind == K_BATCHTOPK && (training || !s->thr_set)) {
        float lo = batch_topk(s, P, F);
        /* a batch that keeps nothing has no smallest kept value: folding in
         * 0 would drag the threshold down, so it leaves theta alone */
        if (training && isfinite(lo)) {
            s->thr = s->thr_set ? (float)(s->cfg.ema * s->thr + (1 - s->cfg.ema) * lo) : lo;
            s->thr_set = 1;
        }
        return;
    }
    for (size_t b = 0; b < B; b++) {
        const float *pr = gsl_matrix_float_const_ptr(P, b, 0);
        float *fr = gsl_matrix_float_ptr(F, b, 0);
        switch (s->kind) {
        case K_RELU:
            for (size_t i = 0; i < m; i++)
                fr[i] = pr[i] > 0 ? pr[i] : 0.0f;
            break;
        case K_TOPK:
            sp_topk_row(pr, m, s->k, fr, s->scratch);
            break;
        case K_BATCHTOPK:
            for (size_t i = 0; i < m; i++)
                fr[i] = pr[i] > s->thr ? pr[i] : 0.0f;
            break;
        case K_JUMPRELU:
            for (size_t i = 0; i < m; i++)
                fr[i] = pr[i] > s->theta[i] ? pr[i] : 0.0f;
            break;
        }
    }
}

/* The prefix ends of this step: fixed, sampled, or just m. */
static void draw_prefixes(fam_sae *s)
{
    size_t m = s->base.m;
    s->n_pref = 0;
    if (s->cfg.prefix_samples > 0) {
        size_t n = (size_t)s->cfg.prefix_samples;
        for (size_t j = 0; j < n; j++)
            s->pref[j] = 1 + (size_t)gsl_rng_uniform_int(s->rng, m - 1);
        /* insertion sort, then drop repeats */
        for (size_t j = 1; j < n; j++)
            for (size_t i = j; i > 0 && s->pref[i - 1] > s->pref[i]; i--) {
                size_t t = s->pref[i];
                s->pref[i] = s->pref[i - 1];
                s->pref[i - 1] = t;
            }
        for (size_t j = 0; j < n; j++)
            if (s->n_pref == 0 || s->pref[s->n_pref - 1] != s->pref[j])
                s->pref[s->n_pref++] = s->pref[j];
    } else {
        for (size_t j = 0; j < s->n_fixed; j++)
            s->pref[s->n_pref++] = s->fixed[j];
    }
    if (s->n_pref == 0 || s->pref[s->n_pref - 1] != m)
        s->pref[s->n_pref++] = m;
}

/* AuxK (Gao et al. 2024): reconstructs the constant residual e = x - x_hat
 * with the k_aux largest pre-activations among dead latents; adds its
 * gradient to dP (B, m) and gW_d (DP NULL: dp into aux_dp at the entries
 * aux_idx). Returns the term's value. */
static double auxk(fam_sae *s, const gsl_matrix_float *P, const gsl_matrix_float *R,
                   gsl_matrix_float *DP, size_t n_dead, double c)
{
    size_t B = P->size1, d = s->base.d;
    size_t ka = s->k_aux < n_dead ? s->k_aux : n_dead;
    const float g = (float)(2.0 * c * s->cfg.aux_coef);
    double total = 0;
    for (size_t b = 0; b < B; b++) {
        const float *pr = gsl_matrix_float_const_ptr(P, b, 0);
        for (size_t j = 0; j < n_dead; j++)
            s->dead_z[j] = pr[s->dead[j]];
        sp_topk_row(s->dead_z, n_dead, ka, s->dead_f, s->scratch);
        /* resid = e - e_hat = -r - sum_j a_j w_j */
        const float *rr = gsl_matrix_float_const_ptr(R, b, 0);
        for (size_t t = 0; t < d; t++)
            s->ebuf[t] = -rr[t];
        size_t na = 0, *ai = s->aux_idx + b * s->k_aux;
        float *av = s->aux_val + b * s->k_aux;
        for (size_t j = 0; j < n_dead; j++)
            if (s->dead_f[j] != 0) {
                ai[na] = s->dead[j];
                av[na++] = s->dead_f[j];
                const float *w = gsl_matrix_float_const_ptr(s->wd, s->dead[j], 0);
                for (size_t t = 0; t < d; t++)
                    s->ebuf[t] -= s->dead_f[j] * w[t];
            }
        double acc = 0;
        for (size_t t = 0; t < d; t++)
            acc += (double)s->ebuf[t] * s->ebuf[t];
        total += acc;
        /* d/de_hat = -g resid: dW_d[i] += a_i (-g resid); dp_bi += <-g resid, w_i> */
        float *dpr = DP ? gsl_matrix_float_ptr(DP, b, 0) : NULL;
        s->aux_n[b] = na;
        for (size_t j = 0; j < na; j++) {
            size_t i = ai[j];
            const float *w = gsl_matrix_float_const_ptr(s->wd, i, 0);
            float *gw = gsl_matrix_float_ptr(s->gwd, i, 0);
            float dot = 0, a = av[j];
            for (size_t t = 0; t < d; t++) {
                dot += w[t] * s->ebuf[t];
                gw[t] -= g * a * s->ebuf[t];
            }
            if (DP)
                dpr[i] -= g * dot;
            else
                s->aux_dp[b * s->k_aux + j] = -(g * dot);
        }
    }
    return s->cfg.aux_coef * c * total;
}

/* ---- sparse kernels ----------------------------------------------------
 * After the encoder GEMM the codes are sparse: with the active entries of
 * each sample listed (cidx, cptr), the decoder forward, dW_d, df and dW_e
 * cost B L0 d instead of B m d. They compute the same sums as the GEMMs,
 * in another order (float32 rounding apart). */

/* measured crossover (superpose bench, d = 256, batch 256): sparse wins below
 * density 0.12 at m = 512, 0.07 at m = 2048, 0.05 at m = 8192 */
const double sp_sae_sparse_threshold = 0.05;

/* y += a x over n floats. */
static inline void axpy(float a, const float *restrict x, float *restrict y, size_t n)
{
    for (size_t t = 0; t < n; t++)
        y[t] += a * x[t];
}

/* <a, b> over n floats, eight partial sums (vectorisable without
 * reassociation flags). */
static inline float dot(const float *restrict a, const float *restrict b, size_t n)
{
    float acc[8] = {0};
    size_t t = 0;
    for (; t + 8 <= n; t += 8)
        for (size_t q = 0; q < 8; q++)
            acc[q] += a[t + q] * b[t + q];
    float sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; t < n; t++)
        sum += a[t] * b[t];
    return sum;
}

/* Zeroes the rows of gW_d and gW_e that the last steps wrote (all after a
 * dense step or with orthogonality, which writes every row of gW_d), then
 * marks those of this step's active latents. */
static void sparse_zero_grads(fam_sae *s)
{
    size_t m = s->base.m, d = s->base.d;
    if (s->all_dirty) {
        gsl_matrix_float_set_zero(s->gwd);
        gsl_matrix_float_set_zero(s->gwe);
    } else {
        for (size_t i = 0; i < m; i++)
            if (s->dirty[i]) {
                memset(gsl_matrix_float_ptr(s->gwd, i, 0), 0, d * sizeof(float));
                memset(gsl_matrix_float_ptr(s->gwe, i, 0), 0, d * sizeof(float));
            }
    }
    memset(s->dirty, 0, m);
    s->all_dirty = s->base.orth > 0;
}

/* Forward and decoder backward on the active codes (one prefix), codes
 * cval at cidx by rows cptr:
 * R = F W_d + b_d - x, returns sum ||R_b||^2; S = 2c R; gW_d = F^T S
 * (gW_d zeroed before); dp = 0 at the active entries (the penalty and df
 * are added by the caller). x, R, S: (B, d). */
static double sparse_decoder(fam_sae *s, const gsl_matrix_float *x, gsl_matrix_float *R,
                             gsl_matrix_float *S, float *dpv, float g2)
{
    size_t B = x->size1, d = s->base.d;
    double sse = 0;
    for (size_t b = 0; b < B; b++) {
        float *rr = gsl_matrix_float_ptr(R, b, 0), *sr = gsl_matrix_float_ptr(S, b, 0);
        const float *xr = gsl_matrix_float_const_ptr(x, b, 0);
        for (size_t t = 0; t < d; t++)
            rr[t] = (s->bd ? s->bd[t] : 0.0f) - xr[t];
        for (size_t e = s->cptr[b]; e < s->cptr[b + 1]; e++) {
            size_t j = s->cidx[e];
            s->dirty[j] = 1;
            axpy(s->cval[e], gsl_matrix_float_const_ptr(s->wd, j, 0), rr, d);
        }
        float acc = 0;
        for (size_t t = 0; t < d; t++) {
            acc += rr[t] * rr[t];
            sr[t] = g2 * rr[t];
        }
        sse += acc;
        for (size_t e = s->cptr[b]; e < s->cptr[b + 1]; e++)
            axpy(s->cval[e], sr, gsl_matrix_float_ptr(s->gwd, s->cidx[e], 0), d);
    }
    memset(dpv, 0, s->cptr[B] * sizeof *dpv);
    return sse;
}

/* dp += <S_b, W_d[j]> at the active entries (df where dp needs it). */
static void sparse_df(fam_sae *s, const gsl_matrix_float *S, float *dpv)
{
    size_t B = S->size1, d = s->base.d;
    for (size_t b = 0; b < B; b++) {
        const float *sr = gsl_matrix_float_const_ptr(S, b, 0);
        for (size_t e = s->cptr[b]; e < s->cptr[b + 1]; e++)
            dpv[e] += dot(sr, gsl_matrix_float_const_ptr(s->wd, s->cidx[e], 0), d);
    }
}

/* db_e = sum_b dp, dW_e = dp^T u and, if DX is not NULL, DX = dp W_e,
 * where dp is dpv at the active entries plus aux_dp at the AuxK entries
 * (n_dead > 0). u, DX: (B, d); DX may share storage with u (pre_bias). */
static void sparse_encoder(fam_sae *s, const gsl_matrix_float *u, const float *dpv,
                           gsl_matrix_float *DX, size_t n_dead)
{
    size_t B = u->size1, d = s->base.d;
    memset(s->gbe, 0, s->base.m * sizeof *s->gbe);
    for (size_t b = 0; b < B; b++) {
        const float *ur = gsl_matrix_float_const_ptr(u, b, 0);
        float *dx = s->ebuf;
        if (DX)
            memset(dx, 0, d * sizeof *dx);
        size_t n_act = s->cptr[b + 1] - s->cptr[b];
        size_t n_aux = n_dead > 0 ? s->aux_n[b] : 0;
        for (size_t e = 0; e < n_act + n_aux; e++) {
            size_t j;
            float g;
            if (e < n_act) {
                j = s->cidx[s->cptr[b] + e];
                g = dpv[s->cptr[b] + e];
            } else {
                j = s->aux_idx[b * s->k_aux + (e - n_act)];
                g = s->aux_dp[b * s->k_aux + (e - n_act)];
                s->dirty[j] = 1; /* AuxK wrote this row of gW_d */
            }
            s->gbe[j] += g;
            if (g == 0)
                continue;
            axpy(g, ur, gsl_matrix_float_ptr(s->gwe, j, 0), d);
            if (DX)
                axpy(g, gsl_matrix_float_const_ptr(s->we, j, 0), dx, d);
        }
        if (DX)
            memcpy(gsl_matrix_float_ptr(DX, b, 0), dx, d * sizeof *dx);
    }
}

static void fam_loss_and_grad(sp_learner *L, const gsl_matrix_float *x, sp_loss *out)
{
    fam_sae *s = (fam_sae *)L;
    size_t B = x->size1, d = L->d, m = L->m;
    memset(out, 0, sizeof *out);
    sp_penalty_set_step(s->pen, L->step);
    gsl_matrix_float_view P = rows(s->p, B), F = rows(s->f, B), DF = rows(s->df, B);
    gsl_matrix_float_view S = rows(s->sacc, B);

    const gsl_matrix_float *xin;
    const gsl_matrix_float *u = encoder_input(s, x, &xin);
    int listed = s->sparse_ok && s->cfg.sparse != SP_SPARSE_DENSE;
    int fused = listed && s->kind == K_RELU;
    size_t active = 0;
    if (fused) {
        active = relu_list(s, u, &P.matrix);
    } else {
        preact(s, u, &P.matrix);
        activate(s, &P.matrix, &F.matrix, 1);
    }

    /* dead latents (AuxK) before this batch's firing is recorded */
    size_t n_dead = 0;
    if ((s->kind == K_TOPK || s->kind == K_BATCHTOPK) && s->cfg.aux_coef > 0)
        for (size_t i = 0; i < m; i++)
            if (L->step - s->last_fired[i] >= s->cfg.dead_steps)
                s->dead[n_dead++] = i;
    /* firing, and the list of active entries for the sparse kernels */
    for (size_t b = 0; b < B && !fused; b++) {
        const float *fr = gsl_matrix_float_const_ptr(&F.matrix, b, 0);
        if (listed)
            s->cptr[b] = active;
        for (size_t i = 0; i < m; i++)
            if (fr[i] != 0) {
                if (listed) {
                    s->cidx[active] = (unsigned)i;
                    s->cval[active] = fr[i];
                }
                active++;
                L->fires[i]++;
                s->last_fired[i] = L->step;
            }
    }
    int sparse = 0;
    if (listed) {
        s->cptr[B] = active;
        sparse = s->cfg.sparse == SP_SPARSE_SPARSE ||
                 (double)active < sp_sae_sparse_threshold * (double)B * (double)m;
    }
    if (fused && !sparse) { /* the dense kernels need F */
        gsl_matrix_float_set_zero(&F.matrix);
        for (size_t b = 0; b < B; b++) {
            float *fr = gsl_matrix_float_ptr(&F.matrix, b, 0);
            for (size_t e = s->cptr[b]; e < s->cptr[b + 1]; e++)
                fr[s->cidx[e]] = s->cval[e];
        }
    }
    s->last_sparse = sparse;
    /* the optimizer may skip the rows this step leaves zero; orthogonality
     * (sp_train_step) writes every row of gW_d after this */
    s->mask_e.rows = s->mask_d.rows = s->dirty;
    s->mask_e.valid = sparse;
    s->mask_d.valid = sparse && !(L->orth > 0);
    float *dpv = s->df->data; /* sparse steps: dp at the active entries, compressed */
    if (sparse)
        sparse_zero_grads(s);
    else
        s->all_dirty = 1;

    /* residuals of the nested prefixes: r_j = x_hat_j - x */
    draw_prefixes(s);
    double c = s->cfg.mse_per_sample ? 1.0 / (double)B : 1.0 / ((double)B * (double)d);
    const float g2 = (float)(2.0 * c);
    double mse = 0;
    size_t start = 0;
    if (sparse) {
        gsl_matrix_float_view R = rows(s->r[0], B);
        mse = c * sparse_decoder(s, x, &R.matrix, &S.matrix, dpv, g2);
    }
    for (size_t j = 0; j < s->n_pref && !sparse; j++) {
        size_t end = s->pref[j];
        gsl_matrix_float_view R = rows(s->r[j], B);
        gsl_matrix_float_view Fg = gsl_matrix_float_submatrix(&F.matrix, 0, start, B, end - start);
        gsl_matrix_float_view Wg = gsl_matrix_float_submatrix(s->wd, start, 0, end - start, d);
        if (j == 0) {
            for (size_t b = 0; b < B; b++) {
                float *rr = gsl_matrix_float_ptr(&R.matrix, b, 0);
                const float *xr = gsl_matrix_float_const_ptr(x, b, 0);
                for (size_t t = 0; t < d; t++)
                    rr[t] = (s->bd ? s->bd[t] : 0.0f) - xr[t];
            }
        } else {
            gsl_matrix_float_view Rp = rows(s->r[j - 1], B);
            gsl_matrix_float_memcpy(&R.matrix, &Rp.matrix);
        }
        gsl_blas_sgemm(CblasNoTrans, CblasNoTrans, 1.0f, &Fg.matrix, &Wg.matrix, 1.0f, &R.matrix);
        double sse = 0;
        for (size_t b = 0; b < B; b++) {
            const float *rr = gsl_matrix_float_const_ptr(&R.matrix, b, 0);
            float acc = 0;
            for (size_t t = 0; t < d; t++)
                acc += rr[t] * rr[t];
            sse += acc;
        }
        mse += c * sse;
        start = end;
    }

    /* backward through the prefixes, last group first */
    if (!sparse)
        gsl_matrix_float_set_zero(&S.matrix);
    size_t end = m;
    for (size_t jj = s->n_pref; jj-- > 0 && !sparse;) {
        size_t beg = jj ? s->pref[jj - 1] : 0;
        gsl_matrix_float_view R = rows(s->r[jj], B);
        for (size_t b = 0; b < B; b++) {
            float *sr = gsl_matrix_float_ptr(&S.matrix, b, 0);
            const float *rr = gsl_matrix_float_const_ptr(&R.matrix, b, 0);
            for (size_t t = 0; t < d; t++)
                sr[t] += g2 * rr[t];
        }
        gsl_matrix_float_view Fg = gsl_matrix_float_submatrix(&F.matrix, 0, beg, B, end - beg);
        gsl_matrix_float_view Wg = gsl_matrix_float_submatrix(s->wd, beg, 0, end - beg, d);
        gsl_matrix_float_view Gg = gsl_matrix_float_submatrix(s->gwd, beg, 0, end - beg, d);
        gsl_matrix_float_view Dg = gsl_matrix_float_submatrix(&DF.matrix, 0, beg, B, end - beg);
        gsl_blas_sgemm(CblasTrans, CblasNoTrans, 1.0f, &Fg.matrix, &S.matrix, 0.0f, &Gg.matrix);
        gsl_blas_sgemm(CblasNoTrans, CblasTrans, 1.0f, &S.matrix, &Wg.matrix, 0.0f, &Dg.matrix);
        end = beg;
    }

    /* sparsity penalty */
    double pen = 0;
    if (s->kind == K_RELU) {
        if (s->use_dnorm)
            for (size_t i = 0; i < m; i++) {
                const float *w = gsl_matrix_float_const_ptr(s->wd, i, 0);
                double n2 = 0;
                for (size_t t = 0; t < d; t++)
                    n2 += (double)w[t] * w[t];
                s->dnorm[i] = (float)sqrt(n2);
                s->ddnorm[i] = 0;
            }
        if (sparse)
            pen = sp_penalty_eval_rows(s->pen, s->cval, s->cptr, B, m, dpv);
        else if (fused) /* the same bits, at the listed entries only */
            pen = sp_penalty_eval_list(s->pen, s->cval, s->cidx, s->cptr, B, m, DF.matrix.data,
                                       DF.matrix.tda);
        else
            pen = sp_penalty_eval(s->pen, F.matrix.data, B, m, F.matrix.tda,
                                  s->use_dnorm ? s->dnorm : NULL, DF.matrix.data,
                                  s->use_dnorm ? s->ddnorm : NULL);
    }
    if (sparse)
        sparse_df(s, &S.matrix, dpv);
    /* dp = df * [active]; JumpReLU threshold by the straight-through estimator */
    if (s->kind == K_JUMPRELU) {
        double coef = sp_penalty_coef(s->pen);
        int l0 = !strcmp(s->pen_name, "l0");
        double sc = coef / (double)B / (s->pen_per_latent ? (double)m : 1.0);
        const float eps = (float)s->cfg.bandwidth, inv = 1.0f / eps;
        memset(s->gtheta, 0, m * sizeof *s->gtheta);
        size_t on = 0;
        for (size_t b = 0; b < B; b++) {
            const float *pr = gsl_matrix_float_const_ptr(&P.matrix, b, 0);
            float *dr = gsl_matrix_float_ptr(&DF.matrix, b, 0);
            for (size_t i = 0; i < m; i++) {
                float th = s->theta[i], z = pr[i];
                int kern = fabsf(z - th) * inv < 0.5f;
                if (kern)
                    s->gtheta[i] += -(th * inv) * dr[i] - (l0 ? (float)sc * inv : 0.0f);
                int act = z > th;
                on += (size_t)act;
                dr[i] = act ? dr[i] : 0.0f;
            }
        }
        if (l0)
            pen = sc * (double)on;
    } else if (fused && !sparse) {
        /* dp = df at the listed entries, 0 between them, and db_e = sum_b dp
         * over the listed entries in the same order as the dense pass below
         * (the others would add +0, which leaves a sum that is never -0
         * unchanged): one pass instead of two */
        memset(s->gbe, 0, m * sizeof *s->gbe);
        for (size_t b = 0; b < B; b++) {
            float *dr = gsl_matrix_float_ptr(&DF.matrix, b, 0);
            size_t next = 0;
            for (size_t e = s->cptr[b]; e < s->cptr[b + 1]; e++) {
                size_t i = s->cidx[e];
                memset(dr + next, 0, (i - next) * sizeof *dr);
                s->gbe[i] += dr[i];
                next = i + 1;
            }
            memset(dr + next, 0, (m - next) * sizeof *dr);
        }
    } else if (!sparse) { /* sparse: dp is kept at the active entries only */
        for (size_t b = 0; b < B; b++) {
            const float *fr = gsl_matrix_float_const_ptr(&F.matrix, b, 0);
            float *dr = gsl_matrix_float_ptr(&DF.matrix, b, 0);
            for (size_t i = 0; i < m; i++)
                dr[i] = fr[i] != 0 ? dr[i] : 0.0f;
        }
    }
    double aux = 0;
    if (n_dead > 0) {
        gsl_matrix_float_view Rl = rows(s->r[s->n_pref - 1], B);
        aux = auxk(s, &P.matrix, &Rl.matrix, sparse ? NULL : &DF.matrix, n_dead, c);
    }
    double reg = 0;
    if (s->cfg.prestd > 0)
        reg = sp_reg_prestd(P.matrix.data, B, m, P.matrix.tda, s->cfg.prestd, DF.matrix.data);

    /* encoder: db_e, dW_e (tied: into dW_d), du */
    gsl_matrix_float_view DX = rows(s->xc, B); /* dxc, once xc is no longer needed */
    if (!sparse && !fused) { /* fused: summed in the pass above */
        memset(s->gbe, 0, m * sizeof *s->gbe);
        for (size_t b = 0; b < B; b++) {
            const float *dr = gsl_matrix_float_const_ptr(&DF.matrix, b, 0);
            for (size_t i = 0; i < m; i++)
                s->gbe[i] += dr[i];
        }
    }
    if (sparse)
        sparse_encoder(s, u, dpv, s->bd ? &DX.matrix : NULL, n_dead);
    else if (s->cfg.tied)
        gsl_blas_sgemm(CblasTrans, CblasNoTrans, 1.0f, &DF.matrix, u, 1.0f, s->gwd);
    else
        gsl_blas_sgemm(CblasTrans, CblasNoTrans, 1.0f, &DF.matrix, u, 0.0f, s->gwe);
    if (s->use_dnorm)
        for (size_t i = 0; i < m; i++) {
            if (!(s->dnorm[i] > 0))
                continue;
            const float *w = gsl_matrix_float_const_ptr(s->wd, i, 0);
            float *gw = gsl_matrix_float_ptr(s->gwd, i, 0);
            float a = s->ddnorm[i] / s->dnorm[i];
            for (size_t t = 0; t < d; t++)
                gw[t] += a * w[t];
        }
    if (s->H) {
        gsl_matrix_float_view DH = rows(s->hact, B);
        gsl_matrix_float_view HP = rows(s->hpre, B);
        gsl_blas_sgemm(CblasNoTrans, CblasNoTrans, 1.0f, &DF.matrix, s->we, 0.0f, &DH.matrix);
        memset(s->gb1, 0, s->H * sizeof *s->gb1);
        for (size_t b = 0; b < B; b++) {
            float *dh = gsl_matrix_float_ptr(&DH.matrix, b, 0);
            const float *hp = gsl_matrix_float_const_ptr(&HP.matrix, b, 0);
            for (size_t h = 0; h < s->H; h++) {
                dh[h] = hp[h] > 0 ? dh[h] : 0.0f;
                s->gb1[h] += dh[h];
            }
        }
        gsl_blas_sgemm(CblasTrans, CblasNoTrans, 1.0f, &DH.matrix, xin, 0.0f, s->gw1);
        if (s->bd)
            gsl_blas_sgemm(CblasNoTrans, CblasNoTrans, 1.0f, &DH.matrix, s->w1, 0.0f, &DX.matrix);
    } else if (s->bd && !sparse) {
        gsl_blas_sgemm(CblasNoTrans, CblasNoTrans, 1.0f, &DF.matrix, enc_w(s), 0.0f, &DX.matrix);
    }
    if (s->bd) {
        memset(s->gbd, 0, d * sizeof *s->gbd);
        for (size_t b = 0; b < B; b++) {
            const float *sr = gsl_matrix_float_const_ptr(&S.matrix, b, 0);
            const float *cr = gsl_matrix_float_const_ptr(&DX.matrix, b, 0);
            for (size_t t = 0; t < d; t++)
                s->gbd[t] += sr[t] - cr[t];
        }
    }
    out->mse = mse;
    out->penalty = pen;
    out->aux = aux;
    out->reg = reg;
    out->loss = mse + pen + aux + reg;
    out->l0 = (double)active / (double)B;
}

static void fam_encode(sp_learner *L, const gsl_matrix_float *x, gsl_matrix_float *f)
{
    fam_sae *s = (fam_sae *)L;
    gsl_matrix_float_view P = rows(s->p, x->size1);
    const gsl_matrix_float *xin;
    const gsl_matrix_float *u = encoder_input(s, x, &xin);
    preact(s, u, &P.matrix);
    activate(s, &P.matrix, f, 0);
}

static void fam_decode(sp_learner *L, const gsl_matrix_float *f, gsl_matrix_float *xhat)
{
    fam_sae *s = (fam_sae *)L;
    sp_decode_affine(s->wd, s->bd, f, xhat);
}


/* The unit-norm projection of the decoder gradient. After a sparse step
 * only the rows written this step (dirty) can be nonzero, and projecting
 * a zero row leaves it zero, so only those are projected (the same
 * numbers; at ratio 32 this was 7% of the step). */
static void fam_pre_step(sp_learner *L)
{
    fam_sae *s = (fam_sae *)L;
    if (!L->unit_norm)
        return;
    if (s->last_sparse != 1 || L->orth > 0) {
        sp_rows_project(L->decoder, L->decoder_grad);
        return;
    }
    for (size_t i = 0; i < L->m; i++)
        if (s->dirty[i]) {
            gsl_matrix_float_const_view w = gsl_matrix_float_const_submatrix(s->wd, i, 0, 1, L->d);
            gsl_matrix_float_view g = gsl_matrix_float_submatrix(s->gwd, i, 0, 1, L->d);
            sp_rows_project(&w.matrix, &g.matrix);
        }
}

static void fam_post_step(sp_learner *L)
{
    fam_sae *s = (fam_sae *)L;
    /* unit norm: the optimizer renormalised W_d's rows (unit_rows) */
    if (s->theta)
        for (size_t i = 0; i < L->m; i++)
            if (!(s->theta[i] > 1e-6f))
                s->theta[i] = 1e-6f;
}

static void reset_row(sp_optim *opt, int p, const sp_param *pr, size_t i)
{
    if (opt && p >= 0)
        sp_optim_reset(opt, (size_t)p, i * pr[p].cols, pr[p].cols);
}

static void fam_reinit(sp_learner *L, sp_optim *opt, size_t i, const float *dir, float enc_norm)
{
    fam_sae *s = (fam_sae *)L;
    size_t d = L->d;
    memcpy(gsl_matrix_float_ptr(s->wd, i, 0), dir, d * sizeof *dir);
    /* tied: the shared row is the unit atom, so enc_norm cannot apply */
    if (!s->cfg.tied) {
        float *we = gsl_matrix_float_ptr(s->we, i, 0);
        if (s->H) {
            /* the hidden code of dir, at the requested norm */
            double n2 = 0;
            for (size_t h = 0; h < s->H; h++) {
                const float *w1 = gsl_matrix_float_const_ptr(s->w1, h, 0);
                float v = s->b1[h];
                for (size_t t = 0; t < d; t++)
                    v += w1[t] * dir[t];
                we[h] = v > 0 ? v : 0.0f;
                n2 += (double)we[h] * we[h];
            }
            float sc = n2 > 0 ? (float)(enc_norm / sqrt(n2)) : 0.0f;
            for (size_t h = 0; h < s->H; h++)
                we[h] *= sc;
        } else {
            for (size_t t = 0; t < d; t++)
                we[t] = dir[t] * enc_norm;
        }
    }
    s->be[i] = 0;
    if (s->theta)
        s->theta[i] = (float)s->cfg.theta0;
    s->last_fired[i] = L->step;
    reset_row(opt, s->i_wd, s->params, i);
    reset_row(opt, s->i_we, s->params, i);
    if (opt) {
        sp_optim_reset(opt, (size_t)s->i_be, i, 1);
        if (s->i_theta >= 0)
            sp_optim_reset(opt, (size_t)s->i_theta, i, 1);
    }
}

static void fam_free(sp_learner *L)
{
    fam_sae *s = (fam_sae *)L;
    free(s->ext_c);
    free(s->dirty);
    free(s->aux_dp);
    free(s->cptr);
    free(s->cval);
    free(s->cidx);
    free(s->aux_n);
    free(s->ebuf);
    free(s->dead_f);
    free(s->dead_z);
    free(s->dead);
    free(s->aux_val);
    free(s->aux_idx);
    free(s->ddnorm);
    free(s->dnorm);
    free(s->scratch);
    gsl_matrix_float_free(s->sacc);
    for (size_t j = 0; j < MAX_PREFIXES; j++)
        gsl_matrix_float_free(s->r[j]);
    gsl_matrix_float_free(s->df);
    gsl_matrix_float_free(s->f);
    gsl_matrix_float_free(s->p);
    gsl_matrix_float_free(s->hact);
    gsl_matrix_float_free(s->hpre);
    gsl_matrix_float_free(s->xc);
    gsl_rng_free(s->rng);
    free(s->last_fired);
    free(s->gtheta);
    free(s->theta);
    free(s->gb1);
    free(s->b1);
    gsl_matrix_float_free(s->gw1);
    gsl_matrix_float_free(s->w1);
    free(s->gbd);
    free(s->bd);
    gsl_matrix_float_free(s->gwd);
    gsl_matrix_float_free(s->wd);
    free(s->gbe);
    free(s->be);
    gsl_matrix_float_free(s->gwe);
    gsl_matrix_float_free(s->we);
    sp_penalty_free(s->pen);
    sp_learner_base_free(L);
    free(s);
}

static const sp_learner_ops fam_ops;

int sp_sae_last_sparse(const sp_learner *L)
{
    if (!L || L->ops != &fam_ops)
        return -1;
    return ((const fam_sae *)L)->last_sparse;
}

int sp_sae_set_sparse(sp_learner *L, int mode)
{
    if (!L || L->ops != &fam_ops || mode < SP_SPARSE_AUTO || mode > SP_SPARSE_SPARSE)
        return -1;
    ((fam_sae *)L)->cfg.sparse = mode;
    return 0;
}

int sp_sae_can_share(const sp_learner *L)
{
    if (!L || L->ops != &fam_ops)
        return 0;
    const fam_sae *s = (const fam_sae *)L;
    return s->we && !s->H && !s->cfg.tied;
}

int sp_sae_share_encoder(sp_learner *L, float *rows)
{
    if (!sp_sae_can_share(L))
        return -1;
    fam_sae *s = (fam_sae *)L;
    size_t n = L->m * L->d;
    if (s->bd && !s->ext_c && !(s->ext_c = malloc(L->m * sizeof *s->ext_c)))
        return -1;
    memcpy(rows, s->we->data, n * sizeof *rows);
    /* the matrix keeps its struct and block; only the values move */
    free(s->we->block->data);
    s->we->block->data = NULL;
    s->we->data = rows;
    s->params[s->i_we].w = rows;
    return 0;
}

void sp_sae_set_product(sp_learner *L, const gsl_matrix_float *xw)
{
    if (sp_sae_can_share(L))
        ((fam_sae *)L)->ext = xw;
}

static const sp_learner_ops fam_ops = {
    .name = "sae",
    .loss_and_grad = fam_loss_and_grad,
    .encode = fam_encode,
    .decode = fam_decode,
    .pre_step = fam_pre_step,
    .post_step = fam_post_step,
    .reinit = fam_reinit,
    .free = fam_free,
};

static float uniform_pm(gsl_rng *rng, double bound)
{
    return (float)(bound * (2.0 * gsl_rng_uniform(rng) - 1.0));
}

sp_learner *sp_sae_alloc(const sp_sae_cfg *cfg, const sp_penalty_cfg *pen, size_t d,
                         size_t m, size_t max_batch, long total_steps, gsl_rng *rng,
                         sp_err *err)
{
    const char *bad = sp_sae_check(cfg, pen);
    if (!bad)
        bad = sp_sae_check_latents(cfg, m, d);
    if (!bad && arch_index(cfg->arch) > 3)
        bad = "sp_sae_alloc builds relu, topk, batchtopk and jumprelu learners";
    if (bad) {
        sp_err_set(err, "%s", bad);
        return NULL;
    }
    fam_sae *s = calloc(1, sizeof *s);
    if (!s) {
        sp_err_set(err, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->kind = (act_kind)arch_index(cfg->arch);
    sp_learner *L = &s->base;
    L->ops = &fam_ops;
    int ok = sp_learner_base_init(L, cfg, d, m, max_batch, total_steps) == 0;
    s->pen = sp_penalty_alloc(pen, total_steps);
    s->pen_per_latent = pen->per_latent;
    snprintf(s->pen_name, sizeof s->pen_name, "%s", pen->name);
    s->use_dnorm = s->kind == K_RELU && sp_penalty_uses_dnorm(pen);
    L->unit_norm = !s->use_dnorm;
    s->H = cfg->mlp ? (cfg->hidden > 0 ? (size_t)cfg->hidden : d) : 0;
    s->k = (size_t)(cfg->k > 0 ? cfg->k : 1);
    s->k_aux = cfg->k_aux > 0 ? (size_t)cfg->k_aux : (d / 2 > 0 ? d / 2 : 1);
    size_t width = s->H ? s->H : d;
    if (cfg->prefixes[0])
        parse_prefixes(cfg->prefixes, s->fixed, &s->n_fixed);
    size_t max_pref = cfg->prefix_samples > 0 ? (size_t)cfg->prefix_samples + 1 : s->n_fixed + 1;
    size_t B = max_batch;
    if (!cfg->tied) {
        s->we = gsl_matrix_float_alloc(m, width);
        s->gwe = gsl_matrix_float_alloc(m, width);
        ok = ok && s->we && s->gwe;
    }
    s->be = calloc(m, sizeof *s->be);
    s->gbe = calloc(m, sizeof *s->gbe);
    s->wd = gsl_matrix_float_alloc(m, d);
    s->gwd = gsl_matrix_float_alloc(m, d);
    ok = ok && s->pen && s->be && s->gbe && s->wd && s->gwd;
    if (cfg->pre_bias) {
        s->bd = calloc(d, sizeof *s->bd);
        s->gbd = calloc(d, sizeof *s->gbd);
        ok = ok && s->bd && s->gbd;
    }
    if (s->H) {
        s->w1 = gsl_matrix_float_alloc(s->H, d);
        s->gw1 = gsl_matrix_float_alloc(s->H, d);
        s->b1 = calloc(s->H, sizeof *s->b1);
        s->gb1 = calloc(s->H, sizeof *s->gb1);
        s->hpre = gsl_matrix_float_alloc(B, s->H);
        s->hact = gsl_matrix_float_alloc(B, s->H);
        ok = ok && s->w1 && s->gw1 && s->b1 && s->gb1 && s->hpre && s->hact;
    }
    if (s->kind == K_JUMPRELU) {
        s->theta = malloc(m * sizeof *s->theta);
        s->gtheta = calloc(m, sizeof *s->gtheta);
        ok = ok && s->theta && s->gtheta;
    }
    s->last_fired = calloc(m, sizeof *s->last_fired);
    if (cfg->prefix_samples > 0 && (s->rng = gsl_rng_alloc(gsl_rng_mt19937)))
        gsl_rng_set(s->rng, gsl_rng_get(rng));
    s->xc = gsl_matrix_float_alloc(B, d);
    s->p = gsl_matrix_float_alloc(B, m);
    s->f = gsl_matrix_float_alloc(B, m);
    s->df = gsl_matrix_float_alloc(B, m);
    s->sacc = gsl_matrix_float_alloc(B, d);
    ok = ok && s->last_fired && (cfg->prefix_samples <= 0 || s->rng) && s->xc && s->p && s->f &&
         s->df && s->sacc;
    for (size_t j = 0; j < max_pref && ok; j++)
        ok = (s->r[j] = gsl_matrix_float_alloc(B, d)) != NULL;
    size_t sc = B * m > width ? B * m : width;
    s->scratch = malloc((sc > m ? sc : m) * sizeof *s->scratch);
    s->dnorm = calloc(m, sizeof *s->dnorm);
    s->ddnorm = calloc(m, sizeof *s->ddnorm);
    s->aux_idx = malloc(B * s->k_aux * sizeof *s->aux_idx);
    s->aux_val = malloc(B * s->k_aux * sizeof *s->aux_val);
    s->dead = malloc(m * sizeof *s->dead);
    s->dead_z = malloc(m * sizeof *s->dead_z);
    s->dead_f = malloc(m * sizeof *s->dead_f);
    s->ebuf = malloc(d * sizeof *s->ebuf);
    s->aux_n = malloc(B * sizeof *s->aux_n);
    s->sparse_ok = (s->kind == K_RELU || s->kind == K_TOPK || s->kind == K_BATCHTOPK) &&
                   !cfg->tied && !s->H && !s->n_fixed && cfg->prefix_samples <= 0 &&
                   !(cfg->prestd > 0) && !s->use_dnorm;
    s->last_sparse = -1;
    if (s->sparse_ok) {
        s->cidx = malloc(B * m * sizeof *s->cidx);
        s->cval = malloc(B * m * sizeof *s->cval);
        s->cptr = malloc((B + 1) * sizeof *s->cptr);
        s->aux_dp = malloc(B * s->k_aux * sizeof *s->aux_dp);
        s->dirty = calloc(m, 1);
        s->all_dirty = 1;
        ok = ok && s->cidx && s->cval && s->cptr && s->aux_dp && s->dirty;
    }
    ok = ok && s->aux_n && s->scratch && s->dnorm && s->ddnorm && s->aux_idx && s->aux_val && s->dead &&
         s->dead_z && s->dead_f && s->ebuf;
    if (!ok) {
        sp_err_set(err, "out of memory for an SAE with %zu latents", m);
        fam_free(L);
        return NULL;
    }

    /* Initialisation. relu: W_e, b_e ~ U(-1/sqrt(d), 1/sqrt(d)) (torch's
     * Linear, as in the Sharkey reimplementation), atoms ~ N(0, I) unit.
     * topk, batchtopk, jumprelu: atoms N(0, I) unit, W_e = W_d, b_e = 0
     * (Gao et al. 2024: encoder initialised to the decoder's transpose).
     * MLP: W_1, b_1 ~ U(+-1/sqrt(d)), W_e ~ U(+-1/sqrt(H)).
     * model.init = transpose: relu as topk (W_e = W_d, b_e = 0). */
    double bound = 1.0 / sqrt((double)width);
    int relu_init = s->kind == K_RELU && !cfg->init_transpose;
    if (s->H)
        for (size_t t = 0; t < s->H * d; t++)
            s->w1->data[t] = uniform_pm(rng, 1.0 / sqrt((double)d));
    if (s->H)
        for (size_t h = 0; h < s->H; h++)
            s->b1[h] = uniform_pm(rng, 1.0 / sqrt((double)d));
    if (s->we && (relu_init || s->H))
        for (size_t t = 0; t < m * width; t++)
            s->we->data[t] = uniform_pm(rng, bound);
    if (relu_init)
        for (size_t i = 0; i < m; i++)
            s->be[i] = uniform_pm(rng, bound);
    for (size_t t = 0; t < m * d; t++)
        s->wd->data[t] = (float)gsl_ran_gaussian_ziggurat(rng, 1.0);
    sp_rows_normalise(s->wd);
    if (s->we && !relu_init && !s->H)
        gsl_matrix_float_memcpy(s->we, s->wd);
    if (s->theta)
        for (size_t i = 0; i < m; i++)
            s->theta[i] = (float)cfg->theta0;

    size_t np = 0;
    s->i_we = s->i_theta = -1;
    if (s->we) {
        s->i_we = (int)np;
        s->params[np++] =
            (sp_param){"W_e", s->we->data, s->gwe->data, m * width, 1, m, width, &s->mask_e, 0};
    }
    s->i_be = (int)np;
    s->params[np++] = (sp_param){"b_e", s->be, s->gbe, m, 0, 1, m, NULL, 0};
    s->i_wd = (int)np;
    /* the optimizer keeps the decoder's rows at unit norm (fam_post_step) */
    s->params[np++] = (sp_param){cfg->tied ? "W" : "W_d", s->wd->data, s->gwd->data, m * d, 1,
                                 m, d, &s->mask_d, L->unit_norm};
    if (s->bd)
        s->params[np++] = (sp_param){"b_d", s->bd, s->gbd, d, 0, 1, d, NULL, 0};
    if (s->H) {
        s->params[np++] = (sp_param){"W_1", s->w1->data, s->gw1->data, s->H * d, 1, s->H, d, NULL, 0};
        s->params[np++] = (sp_param){"b_1", s->b1, s->gb1, s->H, 0, 1, s->H, NULL, 0};
    }
    if (s->theta) {
        s->i_theta = (int)np;
        s->params[np++] = (sp_param){"theta", s->theta, s->gtheta, m, 0, 1, m, NULL, 0};
    }
    L->params = s->params;
    L->n_params = np;
    L->decoder = s->wd;
    L->decoder_grad = s->gwd;
    L->encoder = s->H ? NULL : enc_w(s);
    L->enc_rows = s->H ? s->we : enc_w(s);
    return L;
}
