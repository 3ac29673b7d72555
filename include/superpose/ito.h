/* ito.h: scoring a trained learner's dictionary with other codes than its
 * encoder's: inference-time optimisation and the baselines that separate
 * selection from shrinkage (REFERENCE.md 3 and 4; section [solve]).
 *
 * For one trained learner, several evaluations (the runs of a sweep that
 * differ only in solve.*) are scored in one pass over the evaluation
 * window: every distinct code method is computed once per batch and every
 * threshold applied to it. Methods (solve.method):
 *   encoder       the learner's own codes
 *   refit         the encoder's support, weights refit by least squares
 *                 (NNLS when solve.nonneg)
 *   scale         the encoder's codes times one factor, fitted by least
 *                 squares on solve.fit_samples inputs of the training stream
 *   scale_latent  ... times one factor per latent
 *   mp omp gp     pursuits on the decoder (solve.h); solve.match = l0 gives
 *                 each sample as many atoms as the encoder activates on it
 *                 (exactly matched L0), fixed gives solve.l0
 *   ista fista    the (non-negative) LASSO on the decoder; match = l0
 *                 bisects lambda on fit samples to the encoder's mean L0,
 *                 fixed uses solve.lambda, coef uses the SAE's own L1
 *                 objective: lambda = coef * d / 2 (train.mse = element) or
 *                 coef / 2 (sample), divided by m with train.coef_scale =
 *                 dict, so that F / d (or F) is its loss
 * Decoder bias: the decoder's output for the zero code.
 * Threshold test: codes with |a| < solve.threshold are zeroed, then every
 * metric is measured on what is left.
 * Metrics (in addition to l0, mse, fve, dead of the scored codes):
 *   precision, recall, f1   support against the truth (metrics.h)
 *   gap     mean over samples of F(encoder codes) - F(scored codes),
 *           divided by d, with F(a) = ||x - x_hat(a)||^2 + 2 lambda sum_i
 *           ||d_i|| |a_i| (twice solve.h's LASSO objective; lambda = 0
 *           except for ista/fista): in the units of mse; with
 *           solve.match = coef and train.mse = element it is the
 *           amortisation gap of the SAE's own loss (positive: the encoder
 *           is worse than the optimum)
 *   lambda  the lambda used (ista/fista)
 *   lat_f1, shrinkage   per-latent firing F1 against the latent's
 *           best-matched feature (mean over latents), learned over true
 *           magnitude (recovery.h)
 *   absorption, full_absorption, recall_hole   for the parent:child pairs
 *           of metrics.pairs or of the tree, each parent's main latent being
 *           its MCC (Hungarian) match: mean over parents of the absorption
 *           fraction, of the full-absorption rate on samples where a child
 *           fires too, and of P(main latent silent | parent and child on)
 *   split   live latents (fired by the encoder in the window) whose
 *           decoder has cos > metrics.tau with a truth feature, mean over
 *           the features that fired in the window */
#ifndef SUPERPOSE_ITO_H
#define SUPERPOSE_ITO_H

#include <gsl/gsl_rng.h>

#include "superpose/config.h"
#include "superpose/gen.h"
#include "superpose/sae.h"
#include "superpose/util.h"

/* Indices into the result metrics for the entries this module fills. */
typedef struct {
    int dead, l0, mse, fve, precision, recall, f1, gap, lambda, l0_true;
    int lat_f1, shrinkage, absorption, full_absorption, recall_hole, split;
} sp_ito_slots;

/* Scores the trained learner L under each of the n configurations cfgs
 * (identical except for solve.*). gen: the run's generator, still on its
 * training split; r_fit draws the fitting inputs from it (training stream);
 * then the generator is switched to its evaluation split and r_eval draws
 * cfgs[0]->eval_samples inputs. metric[i] (one array per configuration)
 * receives the entries named by slots. 0, or -1 with err. */
int sp_ito_eval(const sp_run_cfg *const *cfgs, size_t n, sp_learner *L, sp_gen *gen,
                gsl_rng *r_fit, gsl_rng *r_eval, const sp_ito_slots *slots, double **metric,
                sp_err *err);

/* Scores of the dictionary alone (REFERENCE.md 4; recovery.h):
 *   mcc, uniqueness     one-to-one Hungarian matching on |cos|; distinct
 *                       best-matched features over latents
 *   offdiag             the largest |cos| of a matched latent's decoder
 *                       with any other feature (Matryoshka: <~ 0.25)
 *   child_dec_parent    cos(child's latent decoder, parent feature) (~0.7
 *                       when absorbed), mean over parent:child pairs
 *   parent_enc_child    cos(parent's latent encoder, child feature) (< 0
 *                       when absorbed)
 *   parent_dec_child    cos(parent's latent decoder, child feature) (> 0:
 *                       the parent latent hedges towards the child)
 * Latents of a pair are the features' MCC matches. */
typedef struct {
    int mcc, uniqueness, offdiag, child_dec_parent, parent_enc_child, parent_dec_child;
} sp_dict_slots;
void sp_score_dictionary(const sp_run_cfg *cfg, const sp_learner *L, sp_gen *gen,
                         const sp_dict_slots *slots, double *metric);

/* NULL if the [solve] settings are valid for this run (method known,
 * match = coef only with ista/fista on a train.penalty = l1 learner,
 * fixed solve.l0 at most the number of latents m), else a message. */
const char *sp_ito_check(const sp_run_cfg *cfg, size_t m);

/* 1 if the configuration scores codes other than the encoder's raw ones. */
int sp_ito_active(const sp_run_cfg *cfg);

#endif
