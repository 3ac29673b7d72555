/* recovery.c: feature-recovery metrics beyond MMCS, REFERENCE.md 4.
 * Everything accumulates in double; cosines of whole dictionaries come from
 * one float GEMM of unit rows (as metrics.c), then widen to double.
 *
 * Assignment (sp_hungarian). Kuhn 1955 ("The Hungarian method for the
 * assignment problem"), Munkres 1957; solved in the potentials form of
 * Jonker & Volgenant 1987 (shortest augmenting paths, Dijkstra on reduced
 * costs a(i, j) - u_i - v_j >= 0):
 *   min over injections s: rows -> cols of sum_i a(i, s(i))   (r <= c)
 * Rows are added one at a time; each addition grows a shortest path tree
 * over the columns, shifts the potentials by the smallest slack and
 * augments along the path: O(r^2 c). When r > c the same is run on the
 * transpose (read through strides, no copy). Ties go to the lower column
 * index (the first strict minimum), so the result is deterministic. The
 * total is summed from the chosen costs, not from the potentials. Empty
 * problems (r or c = 0) assign nothing and cost 0.
 *
 * MCC (SynthSAEBench, Chanin et al. 2025): cost(t, j) = -|cos(g_t, d_j)|
 * on the n x m truth-by-latent matrix; MCC = (1 / min(n, m)) sum over the
 * matched pairs of |cos| (each clamped to 1 against rounding).
 *
 * Uniqueness: |{ t(j) : j = 1..m }| / m, t(j) = argmax_t cos(d_j, g_t)
 * (sp_metric_best_match).
 *
 * Firing (Sharkey et al. 2022; Bricken et al. 2023, "Towards
 * monosemanticity", per-feature specificity and sensitivity): latent j
 * stands for t(j); over the window
 *   precision_j = #(j on, t(j) on) / #(j on),
 *   recall_j    = #(j on, t(j) on) / #(t(j) on),
 *   F1_j        = 2 P R / (P + R)  (0 when P = R = 0),
 * "on" meaning f != 0 for a latent and listed in the sample's compressed
 * row for a truth feature. A latent's values are defined when it fired and
 * its feature fired; the stats are means over those latents.
 *   shrinkage = mean over (sample, j) with j and t(j) on of f_j ||d_j|| / c_t
 * (pairs with a listed c_t = 0 are skipped).
 *
 * Splitting. split count: per truth feature #{ j : cos(d_j, g_t) > tau }.
 * k-sparse probing count (Chanin et al. 2024, "A is for Absorption",
 * section on feature splitting; Gurnee et al. 2023, "Finding neurons in a
 * haystack", mean-difference selection for k-sparse probes):
 *   w_j = mean(F_bj | y_b = 1) - mean(F_bj | y_b = 0), candidates w_j > 0
 *   ranked by w_j (ties to the lower index); probe_k(b) = sum of F_bj over
 *   the top k; F1_k = max over thresholds h of the F1 of [probe_k >= h]
 *   (every distinct score is tried, so "all positive" is one option);
 *   k grows from 1 while F1_{k+1} - F1_k > min_gain (0.03 in the paper).
 *
 * Absorption (Chanin et al. 2024; the SAEBench form, Karvonen et al. 2025,
 * sae_bench/evals/absorption/feature_absorption_calculator.py, with the
 * exact truth direction as the probe): per sample with p active,
 *   P = x . g_p / ||g_p||, c_j = f_j ||d_j|| cos(d_j, g_p),
 *   M = sum_{j in main} c_j, absorbers A = { j not main : cos_j >= 0.1,
 *   c_j > 0 }, S = sum of the 3 largest c_j in A;
 *   frac = 0 if P <= 0 or M >= P or S / P < 0.4; 1 if M <= 0;
 *          else a / (a + M), a = min(S, P - M)   (clipped to [0, 1]);
 *   full = all main f_j = 0, P > 0, and for j* = argmax_j c_j over all
 *          latents: cos_j* >= 0.025 and c_j* / P >= 0.4.
 * SAEBench computes P <= 0 to frac 0 as well except P = 0 with M < 0,
 * where it divides by zero; the guard makes that 0 too.
 * Recall holes: #(p on, a child on, every main f_j = 0) / #(p on, child on).
 * Weight signature (Chanin et al. 2024, Fig. 2 and App. A.2): the cosines
 * of the child latent's decoder with g_p, g_c and of the parent latent's
 * encoder with g_p, g_c.
 *
 * Hedging (Chanin et al. 2025, "Feature hedging"): with unit rows,
 *   delta_i = wide_i - narrow_i, Q an orthonormal basis of span(wide_W..),
 *   share_i = ||Q^T delta_i||^2 / ||delta_i||^2 over i with ||delta_i|| > 1e-6,
 *   baseline = rank(Q) / d (the expected share of a uniformly random
 *   direction). Q by modified Gram-Schmidt in double, twice per row; a row
 *   whose residual is below 1e-4 (rows are unit) adds nothing to the rank.
 */
#include "superpose/recovery.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_blas.h>

#include "superpose/metrics.h"

/* ---- helpers -------------------------------------------------------------- */

static int shapes_ok(const gsl_matrix_float *a, const gsl_matrix_float *b)
{
    return a && b && a->size1 > 0 && b->size1 > 0 && a->size2 > 0 && a->size2 == b->size2;
}

/* cos(a_i, b_j) as a rows(a) x rows(b) float matrix, or NULL. */
static gsl_matrix_float *cos_matrix(const gsl_matrix_float *a, const gsl_matrix_float *b)
{
    gsl_matrix_float *ua = sp_unit_rows(a), *ub = sp_unit_rows(b);
    gsl_matrix_float *c = gsl_matrix_float_alloc(a->size1, b->size1);
    if (ua && ub && c)
        gsl_blas_sgemm(CblasNoTrans, CblasTrans, 1.0f, ua, ub, 0.0f, c);
    else {
        gsl_matrix_float_free(c);
        c = NULL;
    }
    gsl_matrix_float_free(ub);
    gsl_matrix_float_free(ua);
    return c;
}

/* ---- matching ------------------------------------------------------------- */

double sp_hungarian(const double *cost, size_t r, size_t c, long *row_to_col)
{
    if (row_to_col)
        for (size_t i = 0; i < r; i++)
            row_to_col[i] = -1;
    if (r == 0 || c == 0)
        return 0.0;
    if (!cost)
        return NAN;
    for (size_t t = 0; t < r * c; t++)
        if (!isfinite(cost[t]))
            return NAN;
    /* internal problem: n rows <= m columns, a(i, j) = cost[i rs + j cs] */
    int tr = r > c;
    size_t n = tr ? c : r, m = tr ? r : c;
    size_t rs = tr ? 1 : c, cs = tr ? c : 1;
    /* 1-based as in the textbook form: column 0 is the virtual root */
    double *u = malloc((n + 1 + 2 * (m + 1)) * sizeof *u);
    size_t *p = malloc(2 * (m + 1) * sizeof *p);
    unsigned char *used = malloc(m + 1);
    double total = NAN;
    if (!u || !p || !used)
        goto out;
    double *v = u + n + 1, *minv = v + m + 1;
    size_t *way = p + m + 1; /* p[j]: row on column j (0 = none) */
    for (size_t i = 0; i <= n; i++)
        u[i] = 0;
    for (size_t j = 0; j <= m; j++) {
        v[j] = 0;
        p[j] = 0;
        way[j] = 0;
    }
    for (size_t i = 1; i <= n; i++) {
        p[0] = i;
        size_t j0 = 0;
        for (size_t j = 0; j <= m; j++) {
            minv[j] = INFINITY;
            used[j] = 0;
        }
        do {
            used[j0] = 1;
            size_t i0 = p[j0], j1 = 0;
            double delta = INFINITY;
            const double *arow = cost + (i0 - 1) * rs;
            for (size_t j = 1; j <= m; j++) {
                if (used[j])
                    continue;
                double cur = arow[(j - 1) * cs] - u[i0] - v[j];
                if (cur < minv[j]) {
                    minv[j] = cur;
                    way[j] = j0;
                }
                if (minv[j] < delta) {
                    delta = minv[j];
                    j1 = j;
                }
            }
            if (j1 == 0) /* only if the potentials overflowed */
                goto out;
            for (size_t j = 0; j <= m; j++) {
                if (used[j]) {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
        } while (p[j0] != 0);
        do { /* augment along the path back to the root */
            size_t j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
        } while (j0);
    }
    total = 0;
    for (size_t j = 1; j <= m; j++) {
        if (!p[j])
            continue;
        size_t row = tr ? j - 1 : p[j] - 1, col = tr ? p[j] - 1 : j - 1;
        total += cost[row * c + col];
        if (row_to_col)
            row_to_col[row] = (long)col;
    }
out:
    free(used);
    free(p);
    free(u);
    return total;
}

double sp_metric_mcc(const gsl_matrix_float *dec, const gsl_matrix_float *truth,
                     long *truth_to_latent)
{
    if (truth_to_latent && truth)
        for (size_t t = 0; t < truth->size1; t++)
            truth_to_latent[t] = -1;
    if (!shapes_ok(dec, truth))
        return NAN;
    size_t n = truth->size1, m = dec->size1;
    gsl_matrix_float *cm = cos_matrix(truth, dec);
    double *cost = calloc(n * m, sizeof *cost); /* calloc: -O1 cannot see the fill */
    long *match = truth_to_latent ? truth_to_latent : malloc(n * sizeof *match);
    double mcc = NAN;
    if (cm && cost && match) {
        for (size_t t = 0; t < n; t++) {
            const float *row = gsl_matrix_float_const_ptr(cm, t, 0);
            for (size_t j = 0; j < m; j++)
                cost[t * m + j] = -fabs((double)row[j]);
        }
        if (!isnan(sp_hungarian(cost, n, m, match))) {
            double s = 0;
            for (size_t t = 0; t < n; t++)
                if (match[t] >= 0)
                    s += fmin(1.0, -cost[t * m + (size_t)match[t]]);
            mcc = s / (double)(n < m ? n : m);
        }
    }
    if (match != truth_to_latent)
        free(match);
    free(cost);
    gsl_matrix_float_free(cm);
    return mcc;
}

double sp_metric_uniqueness(const gsl_matrix_float *dec, const gsl_matrix_float *truth)
{
    if (!shapes_ok(dec, truth))
        return NAN;
    size_t n = truth->size1, m = dec->size1;
    size_t *match = malloc(m * sizeof *match);
    unsigned char *seen = calloc(n, 1);
    double u = NAN;
    if (match && seen && sp_metric_best_match(dec, truth, match, NULL) == 0) {
        size_t distinct = 0;
        for (size_t j = 0; j < m; j++) {
            distinct += !seen[match[j]];
            seen[match[j]] = 1;
        }
        u = (double)distinct / (double)m;
    }
    free(seen);
    free(match);
    return u;
}

/* ---- firing ----------------------------------------------------------------- */

struct sp_firing_acc {
    size_t m, n;
    const size_t *match; /* (m) referenced */
    double *dnorm;       /* (m) */
    double *fired, *both; /* (m) samples with j on; with j and t(j) on */
    double *on;          /* (n) samples with t on */
    double *mag;         /* (n) c_t of the current sample */
    size_t *stamp;       /* (n) sample stamp of the last time t was on */
    size_t sample;
    double shrink, pairs;
};

sp_firing_acc *sp_firing_acc_alloc(const size_t *match, const double *dnorm, size_t m,
                                   size_t n_truth)
{
    if (!match || !dnorm || m == 0 || n_truth == 0)
        return NULL;
    for (size_t j = 0; j < m; j++)
        if (match[j] >= n_truth)
            return NULL;
    sp_firing_acc *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->m = m;
    a->n = n_truth;
    a->match = match;
    a->dnorm = malloc(m * sizeof *a->dnorm);
    a->fired = calloc(m, sizeof *a->fired);
    a->both = calloc(m, sizeof *a->both);
    a->on = calloc(n_truth, sizeof *a->on);
    a->mag = calloc(n_truth, sizeof *a->mag);
    a->stamp = calloc(n_truth, sizeof *a->stamp);
    if (!a->dnorm || !a->fired || !a->both || !a->on || !a->mag || !a->stamp) {
        sp_firing_acc_free(a);
        return NULL;
    }
    memcpy(a->dnorm, dnorm, m * sizeof *dnorm);
    return a;
}

void sp_firing_acc_free(sp_firing_acc *a)
{
    if (!a)
        return;
    free(a->stamp);
    free(a->mag);
    free(a->on);
    free(a->both);
    free(a->fired);
    free(a->dnorm);
    free(a);
}

/* f: (B, m); true codes of the B samples: idx/val[row[b] .. row[b+1]). */
void sp_firing_acc_add(sp_firing_acc *a, const gsl_matrix_float *f, const size_t *row,
                       const uint32_t *idx, const float *val)
{
    for (size_t b = 0; b < f->size1; b++) {
        size_t s = ++a->sample; /* stamps start at 1: calloc'ed 0 never matches */
        for (size_t q = row[b]; q < row[b + 1]; q++) {
            uint32_t t = idx[q];
            if (t >= a->n || a->stamp[t] == s)
                continue;
            a->stamp[t] = s;
            a->mag[t] = val[q];
            a->on[t] += 1;
        }
        const float *fr = gsl_matrix_float_const_ptr(f, b, 0);
        for (size_t j = 0; j < a->m; j++) {
            if (fr[j] == 0)
                continue;
            a->fired[j] += 1;
            size_t t = a->match[j];
            if (a->stamp[t] != s)
                continue;
            a->both[j] += 1;
            if (a->mag[t] != 0) {
                a->shrink += (double)fr[j] * a->dnorm[j] / a->mag[t];
                a->pairs += 1;
            }
        }
    }
}

void sp_firing_acc_finish(const sp_firing_acc *a, sp_firing_stats *out, double *per_latent)
{
    double sp = 0, sr = 0, sf = 0, k = 0;
    for (size_t j = 0; j < a->m; j++) {
        double on = a->on[a->match[j]];
        double p = NAN, r = NAN, f1 = NAN;
        if (a->fired[j] > 0 && on > 0) {
            p = a->both[j] / a->fired[j];
            r = a->both[j] / on;
            f1 = p + r > 0 ? 2 * p * r / (p + r) : 0.0;
            sp += p;
            sr += r;
            sf += f1;
            k += 1;
        }
        if (per_latent) {
            per_latent[3 * j] = p;
            per_latent[3 * j + 1] = r;
            per_latent[3 * j + 2] = f1;
        }
    }
    out->precision = k > 0 ? sp / k : NAN;
    out->recall = k > 0 ? sr / k : NAN;
    out->f1 = k > 0 ? sf / k : NAN;
    out->shrinkage = a->pairs > 0 ? a->shrink / a->pairs : NAN;
}

/* ---- splitting ---------------------------------------------------------------- */

double sp_metric_split_count(const gsl_matrix_float *dec, const gsl_matrix_float *truth,
                             double tau, size_t *counts)
{
    if (!shapes_ok(dec, truth))
        return NAN;
    size_t n = truth->size1, m = dec->size1;
    gsl_matrix_float *cm = cos_matrix(truth, dec);
    if (!cm)
        return NAN;
    double total = 0;
    for (size_t t = 0; t < n; t++) {
        const float *row = gsl_matrix_float_const_ptr(cm, t, 0);
        size_t k = 0;
        for (size_t j = 0; j < m; j++)
            k += (double)row[j] > tau;
        if (counts)
            counts[t] = k;
        total += (double)k;
    }
    gsl_matrix_float_free(cm);
    return total / (double)n;
}

typedef struct {
    double s;
    uint8_t y;
} scored;

static int by_score_desc(const void *pa, const void *pb)
{
    double a = ((const scored *)pa)->s, b = ((const scored *)pb)->s;
    return (a < b) - (a > b);
}

/* F1 of the best threshold [s >= h] over the distinct scores; sorts sc. */
static double best_threshold_f1(scored *sc, size_t N, double n1)
{
    qsort(sc, N, sizeof *sc, by_score_desc);
    double tp = 0, fp = 0, best = 0;
    for (size_t b = 0; b < N;) {
        size_t e = b;
        while (e < N && sc[e].s == sc[b].s) {
            tp += sc[e].y;
            fp += !sc[e].y;
            e++;
        }
        double f1 = 2 * tp / (tp + fp + n1);
        best = f1 > best ? f1 : best;
        b = e;
    }
    return best;
}

/* Candidate latents by probe weight: descending, lower index first. */
typedef struct {
    double w;
    size_t j;
} weighted;

static int by_weight_desc(const void *pa, const void *pb)
{
    const weighted *a = pa, *b = pb;
    if (a->w != b->w)
        return a->w > b->w ? -1 : 1;
    return (a->j > b->j) - (a->j < b->j);
}

size_t sp_metric_probe_count(const float *F, size_t N, size_t m, const uint8_t *y,
                             double min_gain, size_t max_k, double *best_f1)
{
    if (best_f1)
        *best_f1 = NAN;
    if (!F || !y || N == 0 || m == 0)
        return 0;
    double n1 = 0;
    for (size_t b = 0; b < N; b++)
        n1 += y[b] != 0;
    if (n1 == 0 || n1 == (double)N)
        return 0;
    double *w = calloc(m, sizeof *w), *s = calloc(N, sizeof *s);
    weighted *order = malloc(m * sizeof *order);
    scored *sc = malloc(N * sizeof *sc);
    size_t kept = 0;
    if (!w || !s || !order || !sc)
        goto out;
    /* w_j = mean over y = 1 minus mean over y = 0 */
    double n0 = (double)N - n1;
    for (size_t b = 0; b < N; b++) {
        const float *fr = F + b * m;
        double sgn = y[b] ? 1.0 / n1 : -1.0 / n0;
        for (size_t j = 0; j < m; j++)
            w[j] += sgn * fr[j];
    }
    size_t K = 0;
    for (size_t j = 0; j < m; j++)
        if (w[j] > 0)
            order[K++] = (weighted){w[j], j};
    if (K == 0)
        goto out;
    qsort(order, K, sizeof *order, by_weight_desc);
    size_t limit = max_k && max_k < K ? max_k : K;
    double prev = 0;
    for (size_t k = 1; k <= limit; k++) {
        size_t j = order[k - 1].j;
        for (size_t b = 0; b < N; b++) {
            s[b] += F[b * m + j];
            sc[b].s = s[b];
            sc[b].y = y[b] != 0;
        }
        double f1 = best_threshold_f1(sc, N, n1);
        if (k > 1 && !(f1 - prev > min_gain))
            break;
        kept = k;
        prev = f1;
    }
    if (best_f1)
        *best_f1 = prev;
out:
    free(sc);
    free(order);
    free(s);
    free(w);
    return kept;
}

/* ---- absorption --------------------------------------------------------------- */

struct sp_absorb_acc {
    size_t m, n, d, parent, n_main;
    double *gp;              /* (d) unit g_p */
    double *cosp;            /* (m) cos(d_j, g_p) */
    double *dnorm;           /* (m) */
    size_t *main;            /* (n_main) */
    unsigned char *is_main;  /* (m) */
    unsigned char *is_child; /* (n) */
    double frac;
    size_t samples, with_child, full, full_child, holes;
};

sp_absorb_acc *sp_absorb_acc_alloc(const gsl_matrix_float *dec, const gsl_matrix_float *truth,
                                   size_t parent, const size_t *children, size_t n_children,
                                   const size_t *main, size_t n_main)
{
    if (!shapes_ok(dec, truth) || parent >= truth->size1 || !main || n_main == 0 ||
        (n_children && !children))
        return NULL;
    size_t m = dec->size1, n = truth->size1, d = dec->size2;
    for (size_t k = 0; k < n_main; k++)
        if (main[k] >= m)
            return NULL;
    for (size_t k = 0; k < n_children; k++)
        if (children[k] >= n)
            return NULL;
    sp_absorb_acc *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->m = m;
    a->n = n;
    a->d = d;
    a->parent = parent;
    a->n_main = n_main;
    a->gp = malloc(d * sizeof *a->gp);
    a->cosp = malloc(m * sizeof *a->cosp);
    a->dnorm = malloc(m * sizeof *a->dnorm);
    a->main = malloc(n_main * sizeof *a->main);
    a->is_main = calloc(m, 1);
    a->is_child = calloc(n, 1);
    if (!a->gp || !a->cosp || !a->dnorm || !a->main || !a->is_main || !a->is_child) {
        sp_absorb_acc_free(a);
        return NULL;
    }
    const float *g = gsl_matrix_float_const_ptr(truth, parent, 0);
    double g2 = 0;
    for (size_t k = 0; k < d; k++)
        g2 += (double)g[k] * g[k];
    double gi = g2 > 0 ? 1.0 / sqrt(g2) : 0.0;
    for (size_t k = 0; k < d; k++)
        a->gp[k] = g[k] * gi;
    for (size_t j = 0; j < m; j++) {
        const float *r = gsl_matrix_float_const_ptr(dec, j, 0);
        double n2 = 0;
        for (size_t k = 0; k < d; k++)
            n2 += (double)r[k] * r[k];
        a->dnorm[j] = sqrt(n2);
        a->cosp[j] = sp_cos(r, g, d);
    }
    memcpy(a->main, main, n_main * sizeof *main);
    for (size_t k = 0; k < n_main; k++)
        a->is_main[main[k]] = 1;
    for (size_t k = 0; k < n_children; k++)
        a->is_child[children[k]] = 1;
    return a;
}

void sp_absorb_acc_free(sp_absorb_acc *a)
{
    if (!a)
        return;
    free(a->is_child);
    free(a->is_main);
    free(a->main);
    free(a->dnorm);
    free(a->cosp);
    free(a->gp);
    free(a);
}

/* x: (B, d); f: (B, m); true supports of the B samples: idx[row[b] .. row[b+1]). */
void sp_absorb_acc_add(sp_absorb_acc *a, const gsl_matrix_float *x, const gsl_matrix_float *f,
                       const size_t *row, const uint32_t *idx)
{
    for (size_t b = 0; b < f->size1; b++) {
        int p_on = 0, c_on = 0;
        for (size_t q = row[b]; q < row[b + 1]; q++) {
            p_on |= idx[q] == a->parent;
            c_on |= idx[q] < a->n && a->is_child[idx[q]];
        }
        if (!p_on)
            continue;
        const float *xr = gsl_matrix_float_const_ptr(x, b, 0);
        const float *fr = gsl_matrix_float_const_ptr(f, b, 0);
        double P = 0;
        for (size_t k = 0; k < a->d; k++)
            P += xr[k] * a->gp[k];
        double M = 0, top[3] = {0, 0, 0}, ctop = -INFINITY;
        size_t jtop = 0;
        int silent = 1;
        for (size_t j = 0; j < a->m; j++) {
            double cj = fr[j] * a->dnorm[j] * a->cosp[j];
            if (cj > ctop) {
                ctop = cj;
                jtop = j;
            }
            if (a->is_main[j]) {
                M += cj;
                silent &= fr[j] == 0;
            } else if (a->cosp[j] >= 0.1 && cj > 0) {
                /* keep the three largest, descending */
                if (cj > top[2]) {
                    top[2] = cj;
                    for (int i = 2; i > 0 && top[i] > top[i - 1]; i--) {
                        double t = top[i];
                        top[i] = top[i - 1];
                        top[i - 1] = t;
                    }
                }
            }
        }
        double S = top[0] + top[1] + top[2], fr_abs;
        if (P <= 0 || M >= P || S / P < 0.4)
            fr_abs = 0;
        else if (M <= 0)
            fr_abs = 1;
        else {
            double ab = fmin(S, P - M);
            fr_abs = fmin(1.0, fmax(0.0, ab / (ab + M)));
        }
        int full = silent && P > 0 && a->cosp[jtop] >= 0.025 && ctop / P >= 0.4;
        a->samples++;
        a->frac += fr_abs;
        a->full += (size_t)full;
        if (c_on) {
            a->with_child++;
            a->full_child += (size_t)full;
            a->holes += (size_t)silent;
        }
    }
}

void sp_absorb_acc_finish(const sp_absorb_acc *a, sp_absorb_stats *out)
{
    double ns = (double)a->samples, nc = (double)a->with_child;
    out->fraction = ns > 0 ? a->frac / ns : NAN;
    out->full_rate = ns > 0 ? (double)a->full / ns : NAN;
    out->full_rate_child = nc > 0 ? (double)a->full_child / nc : NAN;
    out->recall_hole = nc > 0 ? (double)a->holes / nc : NAN;
    out->samples = a->samples;
    out->with_child = a->with_child;
}

void sp_absorb_weights_of(const gsl_matrix_float *dec, const gsl_matrix_float *enc,
                          const gsl_matrix_float *truth, size_t parent, size_t child,
                          size_t lp, size_t lc, sp_absorb_weights *out)
{
    out->child_dec_parent = out->child_dec_child = NAN;
    out->parent_enc_parent = out->parent_enc_child = NAN;
    if (!shapes_ok(dec, truth) || parent >= truth->size1 || child >= truth->size1)
        return;
    size_t d = truth->size2;
    const float *gp = gsl_matrix_float_const_ptr(truth, parent, 0);
    const float *gc = gsl_matrix_float_const_ptr(truth, child, 0);
    if (lc < dec->size1) {
        const float *r = gsl_matrix_float_const_ptr(dec, lc, 0);
        out->child_dec_parent = sp_cos(r, gp, d);
        out->child_dec_child = sp_cos(r, gc, d);
    }
    if (enc && enc->size2 == d && lp < enc->size1) {
        const float *r = gsl_matrix_float_const_ptr(enc, lp, 0);
        out->parent_enc_parent = sp_cos(r, gp, d);
        out->parent_enc_child = sp_cos(r, gc, d);
    }
}

/* ---- hedging ------------------------------------------------------------------ */

/* Unit copy of row i of a into dst (d doubles); zero rows stay zero. */
static void unit_row(const gsl_matrix_float *a, size_t i, double *dst)
{
    const float *r = gsl_matrix_float_const_ptr(a, i, 0);
    double n2 = 0;
    for (size_t k = 0; k < a->size2; k++) {
        dst[k] = r[k];
        n2 += dst[k] * dst[k];
    }
    double inv = n2 > 0 ? 1.0 / sqrt(n2) : 0.0;
    for (size_t k = 0; k < a->size2; k++)
        dst[k] *= inv;
}

double sp_metric_hedging(const gsl_matrix_float *narrow, const gsl_matrix_float *wide,
                         double *baseline)
{
    if (baseline)
        *baseline = NAN;
    if (!shapes_ok(narrow, wide) || wide->size1 <= narrow->size1)
        return NAN;
    size_t W = narrow->size1, W2 = wide->size1, d = wide->size2;
    size_t kmax = W2 - W < d ? W2 - W : d;
    double *Q = malloc(kmax * d * sizeof *Q); /* orthonormal basis, one row each */
    double *v = malloc(d * sizeof *v), *w = malloc(d * sizeof *w);
    double share = NAN;
    if (!Q || !v || !w)
        goto out;
    size_t rank = 0;
    for (size_t i = W; i < W2 && rank < d; i++) {
        unit_row(wide, i, v);
        double n2 = 0;
        for (int pass = 0; pass < 2; pass++) { /* twice is enough (Kahan, Parlett) */
            for (size_t q = 0; q < rank; q++) {
                const double *e = Q + q * d;
                double dot = 0;
                for (size_t k = 0; k < d; k++)
                    dot += e[k] * v[k];
                for (size_t k = 0; k < d; k++)
                    v[k] -= dot * e[k];
            }
        }
        for (size_t k = 0; k < d; k++)
            n2 += v[k] * v[k];
        if (sqrt(n2) <= 1e-4)
            continue;
        double inv = 1.0 / sqrt(n2);
        for (size_t k = 0; k < d; k++)
            Q[rank * d + k] = v[k] * inv;
        rank++;
    }
    double sum = 0;
    size_t moved = 0;
    for (size_t i = 0; i < W; i++) {
        unit_row(wide, i, v);
        unit_row(narrow, i, w);
        double n2 = 0;
        for (size_t k = 0; k < d; k++) {
            v[k] -= w[k];
            n2 += v[k] * v[k];
        }
        if (sqrt(n2) <= 1e-6)
            continue;
        double in = 0;
        for (size_t q = 0; q < rank; q++) {
            const double *e = Q + q * d;
            double dot = 0;
            for (size_t k = 0; k < d; k++)
                dot += e[k] * v[k];
            in += dot * dot;
        }
        sum += fmin(1.0, in / n2);
        moved++;
    }
    share = moved ? sum / (double)moved : 0.0;
    if (baseline)
        *baseline = (double)rank / (double)d;
out:
    free(w);
    free(v);
    free(Q);
    return share;
}
