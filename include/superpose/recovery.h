/* recovery.h: metrics of feature recovery beyond MMCS (REFERENCE.md 4):
 * one-to-one matching (Hungarian) and MCC, uniqueness, per-latent firing
 * precision/recall/F1, shrinkage, splitting, absorption, hedging. Pure
 * functions of their arguments (plus explicit accumulators); formulas and
 * sources in recovery.c. Conventions:
 *   - dictionaries are m x d with one atom per row (decoder rows, encoder
 *     rows), truth n x d with unit rows;
 *   - codes f (B x m) are folded with the decoder norms where a magnitude
 *     matters (z_j = f_j ||d_j||), as REFERENCE.md 4 asks;
 *   - true codes of a batch come in compressed rows (sp_codes of gen.h:
 *     row[b]..row[b+1] index idx/val). */
#ifndef SUPERPOSE_RECOVERY_H
#define SUPERPOSE_RECOVERY_H

#include <stddef.h>
#include <stdint.h>
#include <gsl/gsl_matrix_float.h>

/* ---- matching ---------------------------------------------------------- */

/* Minimum-cost one-to-one assignment (Hungarian / Kuhn-Munkres with
 * potentials, O(r^2 c) for r <= c, rectangular in either direction): cost
 * is r x c row-major; min(r, c) pairs are assigned. row_to_col[i] is the
 * column of row i or -1 (rows left over when r > c). Returns the total cost
 * of the assignment, NaN if out of memory or a cost is not finite. */
double sp_hungarian(const double *cost, size_t r, size_t c, long *row_to_col);

/* MCC (SynthSAEBench; Hungarian on |cos|): the one-to-one matching of
 * truth features to decoder rows maximising the sum of |cos|, and the mean
 * |cos| over the min(n, m) matched pairs. truth_to_latent (n entries, may
 * be NULL) receives each truth feature's latent or -1. NaN on bad shapes
 * (empty, widths differ). */
double sp_metric_mcc(const gsl_matrix_float *dec, const gsl_matrix_float *truth,
                     long *truth_to_latent);

/* Uniqueness: the number of distinct truth features that are some latent's
 * best match (largest cosine), divided by the number of latents m. 1 when
 * every latent stands for its own feature; low when latents pile onto few. */
double sp_metric_uniqueness(const gsl_matrix_float *dec, const gsl_matrix_float *truth);

/* ---- firing against the truth ------------------------------------------ */

/* Per latent j with best-matched truth feature t(j) (metrics.h
 * sp_metric_best_match): precision_j = P(t active | j active), recall_j =
 * P(j active | t active), F1_j; shrinkage = mean over (sample, latent) pairs
 * where both j and t(j) are active of z_j / c_t (learned magnitude, folded
 * with ||d_j||, over the true magnitude): 1 means no shrinkage. */
typedef struct sp_firing_acc sp_firing_acc;
/* match: (m) truth feature of each latent, referenced; dnorm: (m) decoder
 * row norms, copied. */
sp_firing_acc *sp_firing_acc_alloc(const size_t *match, const double *dnorm, size_t m,
                                   size_t n_truth);
void sp_firing_acc_free(sp_firing_acc *a);
void sp_firing_acc_add(sp_firing_acc *a, const gsl_matrix_float *f, const size_t *row,
                       const uint32_t *idx, const float *val);
typedef struct {
    double precision, recall, f1; /* means over latents that fired at least once and whose
                                   * feature fired (the per_latent rows that are defined;
                                   * NaN if none) */
    double shrinkage;             /* NaN when no pair was seen */
} sp_firing_stats;
/* per_latent (may be NULL): m x 3 (precision, recall, F1; NaN for a latent
 * that never fired or whose feature never fired). */
void sp_firing_acc_finish(const sp_firing_acc *a, sp_firing_stats *out, double *per_latent);

/* ---- splitting ------------------------------------------------------------ */

/* For each truth feature, the number of decoder rows with cos > tau with
 * it (counts: n entries, may be NULL). Returns the mean count over truth
 * features: 1 for a clean dictionary, k when each feature is split into k
 * latents. */
double sp_metric_split_count(const gsl_matrix_float *dec, const gsl_matrix_float *truth,
                             double tau, size_t *counts);

/* k-sparse probing count (Chanin et al. 2024, feature splitting): with the
 * true label y_b (feature active on sample b) and the latent activations
 * F (N x m, N samples), latents are ranked by probe weight (the mean
 * activation difference between y = 1 and y = 0 samples, the selection rule
 * of Gurnee et al. 2023's k-sparse probes); for k = 1, 2, ... a probe on the
 * sum of the top k latents with the F1-maximising threshold is fitted, and
 * latents are added while F1 rises by more than min_gain (0.03). Returns the
 * number of latents kept (>= 1), or 0 when the feature never fires or no
 * latent correlates with it (also when y = 1 on every sample: no contrast).
 * max_k 0 means no limit. best_f1 (may be NULL) receives that probe's
 * F1 (NaN when 0 is returned). F is row-major N x m; y has N entries. */
size_t sp_metric_probe_count(const float *F, size_t N, size_t m, const uint8_t *y,
                             double min_gain, size_t max_k, double *best_f1);

/* ---- absorption (REFERENCE.md 4; SAEBench, with the exact truth direction) */

/* For a parent feature p (truth row g_p) with main latents `main` (the
 * latents standing for p: n_main indices) and children: per sample where p
 * is truly active,
 *   P = x . g_p, c_j = z_j cos(d_j, g_p) (z_j = f_j ||d_j||),
 *   M = sum of c_j over the main latents,
 *   absorbers: other latents with cos(d_j, g_p) >= 0.1 and c_j > 0, the
 *   top 3 by c_j, S = their sum;
 *   fraction = 0 if P <= 0, M >= P or S / P < 0.4; 1 if M <= 0; else
 *              min(S, P - M) / (min(S, P - M) + M);
 *   full absorption: every main latent silent (f = 0), P > 0, and the
 *   top latent by c_j over all latents (SAEBench's top projecting latent,
 *   not only the absorbers) has cos >= 0.025 and c_top / P >= 0.4.
 * g_p is used normalised (truth rows are unit anyway).
 * Recall holes: P(no main latent fires | p active and some child active). */
typedef struct sp_absorb_acc sp_absorb_acc;
/* dec: m x d; truth n x d; parent: truth row of p; children: truth rows
 * (n_children); main: latent indices (n_main >= 1). Everything is copied. */
sp_absorb_acc *sp_absorb_acc_alloc(const gsl_matrix_float *dec, const gsl_matrix_float *truth,
                                   size_t parent, const size_t *children, size_t n_children,
                                   const size_t *main, size_t n_main);
void sp_absorb_acc_free(sp_absorb_acc *a);
/* x: (B, d) inputs; f: (B, m) codes; the batch's true codes (compressed rows). */
void sp_absorb_acc_add(sp_absorb_acc *a, const gsl_matrix_float *x, const gsl_matrix_float *f,
                       const size_t *row, const uint32_t *idx);
typedef struct {
    double fraction;      /* mean absorption fraction over samples with p active */
    double full_rate;     /* share of those samples fully absorbed */
    double full_rate_child; /* ... among the samples where a child is also active */
    double recall_hole;   /* P(no main latent fires | p and a child active) */
    size_t samples, with_child;
} sp_absorb_stats;
void sp_absorb_acc_finish(const sp_absorb_acc *a, sp_absorb_stats *out);

/* The weight signature of absorption (Chanin et al. 2024, Fig. 2): for
 * parent p with main latent lp and child c with main latent lc,
 *   child_dec_parent = cos(decoder row lc, g_p)   (~0.7 when absorbed),
 *   child_dec_child  = cos(decoder row lc, g_c),
 *   parent_enc_parent = cos(encoder row lp, g_p),
 *   parent_enc_child = cos(encoder row lp, g_c)  (< 0 when absorbed).
 * enc may be NULL (the encoder entries are then NaN). */
typedef struct {
    double child_dec_parent, child_dec_child, parent_enc_parent, parent_enc_child;
} sp_absorb_weights;
void sp_absorb_weights_of(const gsl_matrix_float *dec, const gsl_matrix_float *enc,
                          const gsl_matrix_float *truth, size_t parent, size_t child,
                          size_t lp, size_t lc, sp_absorb_weights *out);

/* ---- hedging (Chanin et al. 2025) ---------------------------------------- */

/* Between a narrow dictionary (W x d) and a wider one whose first W rows are
 * the same latents (W2 x d, W2 > W): for each of the first W latents the
 * change delta_i = wide_i - narrow_i (rows normalised first), and the share
 * of ||delta_i||^2 that lies in the span of the new rows W..W2-1. Returns
 * the mean share over the W latents with ||delta_i|| > 1e-6 (hedging: the
 * old latents moved towards the new ones; 0 when none moved), and
 * *baseline (may be NULL) the share expected for a random direction,
 * rank(new rows) / d. NaN on bad shapes. */
double sp_metric_hedging(const gsl_matrix_float *narrow, const gsl_matrix_float *wide,
                         double *baseline);

#endif
