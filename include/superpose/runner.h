/* runner.h: one run (generate, train, evaluate, save), and sweeps of runs.
 *
 * Seeds: the truth is drawn from data.seed; the training stream and the
 * initialisation from (data.seed, train.seed); the evaluation window from
 * data.seed alone, so every run of a sweep is scored on the same samples
 * and all runs with the same seeds see the same training stream. */
#ifndef SUPERPOSE_RUNNER_H
#define SUPERPOSE_RUNNER_H

#include "superpose/config.h"
#include "superpose/experiment.h"
#include "superpose/util.h"

/* Training curves (metrics.curve_every > 0): at each recorded step, the
 * mean training loss and L0 since the previous point, the latents that did
 * not fire since the previous point, and the MMCS of the decoder. */
enum { SP_CURVE_LOSS, SP_CURVE_L0, SP_CURVE_DEAD, SP_CURVE_MMCS, SP_N_CURVES };
extern const char *const sp_curve_names[SP_N_CURVES];

#define SP_MAX_METRICS 40
/* A sweep runs a training with -j BLAS threads, alone, when its GEMMs have
 * B m d >= this (e.g. d = 256, batch 256, m >= 4096); smaller ones run -j
 * at a time with one thread each. */
#define SP_THREADED_GEMM (256.0 * 1024 * 1024)
/* Sweeps train small models (m d <= this) of one ensemble key as
 * ensembles (ensemble.h). Measured on 2 cores (Xeon 2.1 GHz, 1 worker, 9
 * L1 values, relu, batch 256), time of the ensemble / of the runs one
 * after another: m d = 32 x 64: 0.54; 64 x 64: 0.74; 128 x 64: 0.84;
 * 256 x 64: 0.88; 512 x 64: 1.02; 512 x 256 (17 values): 1.11. What an
 * ensemble saves is per-training overhead and the data generation; past
 * this size each member's state no longer stays in cache between its
 * steps, and that costs more than the shared GEMM and batch save. */
#define SP_ENSEMBLE_MAX_MD 16384.0
/* Most trainings in one ensemble of a sweep. */
#define SP_MAX_ENSEMBLE 32
/* Most runs that sp_run_train_multi scores from one training. */
#define SP_MAX_EVALS 256

typedef struct {
    int diverged;        /* the loss became NaN or Inf */
    double metric[SP_MAX_METRICS]; /* in the order of sp_run_metric_names */
    size_t n_curve;      /* points of the training curves */
    long *curve_step;    /* (n_curve), heap; NULL without curves */
    double *curve[SP_N_CURVES]; /* (n_curve) each */
} sp_run_result;

/* Frees the curves of a result (safe on a result without curves). */
void sp_run_result_free(sp_run_result *res);

/* Called every few steps with the number of steps done. */
typedef void (*sp_progress_fn)(void *user, long step, long steps, double loss);

/* Trains and evaluates one run. If artifact_dir is not NULL, writes
 * decoder.npy (m x d), encoder.npy (m x d), encoder_bias.npy (m) and
 * truth.npy (n x d) there. Returns 0 (also when the run diverged: see
 * res->diverged) or -1 with err. */
int sp_run_train(const sp_run_cfg *cfg, const char *artifact_dir, sp_progress_fn progress,
                 void *user, sp_run_result *res, sp_err *err);
/* Trains once for n runs that differ only in [solve] (see
 * sp_config_same_training) and scores each (ito.h) into res[0..n), in one
 * pass over the evaluation window. Artifacts are those of the training. */
int sp_run_train_multi(const sp_run_cfg *const *cfgs, size_t n, const char *artifact_dir,
                       sp_progress_fn progress, void *user, sp_run_result *res, sp_err *err);

/* Trains nt trainings as one ensemble (ensemble.h; nt = 1: alone, as
 * sp_run_train_multi). Training t is scored as the runs cfgs[start[t] ..
 * start[t + 1]), which share their training, into the same entries of
 * res; its artifacts go to artifact_dirs[t] (artifact_dirs or an entry may
 * be NULL). With nt > 1 every training must pass sp_config_ensemble_ok and
 * share one sp_config_ensemble_key. Each training gets the numbers it
 * would get alone (bitwise without a pre-encoder bias; see ensemble.h), and
 * as wall_s its share of the ensemble's training time plus its own scoring
 * time. 0 (also when trainings diverged) or -1 with err. */
int sp_run_train_ensemble(const sp_run_cfg *const *cfgs, const size_t *start, size_t nt,
                          const char *const *artifact_dirs, sp_progress_fn progress, void *user,
                          sp_run_result *res, sp_err *err);

/* Writes a dataset of the run's data section into dir: truth.npy
 * (n_truth x d), rates.npy (expected firing rate per truth row, when the
 * generator has a closed form), W.npy and b.npy (generator = tms), and
 * X.npy (samples x d) with codes.npy (samples x n_truth, dense) drawn from
 * the run's training stream; with data.dataset = N, the fixed dataset
 * instead: X_train.npy, codes_train.npy (the training split, shuffled
 * once) and X_eval.npy, codes_eval.npy (the held-out split). */
int sp_run_generate(const sp_run_cfg *cfg, const char *dir, long samples, sp_err *err);

typedef struct {
    int jobs;              /* worker processes */
    int tty;               /* 1: live progress line; 0: one log line per event */
    const char *out_dir;   /* results/<name> by default */
    int plot;              /* render figures at the end */
    int solo;              /* 1: train every training alone, never in an ensemble */
    int estimate;          /* 1: for a sweep of more than a few minutes, time pilot
                            * runs first and print the estimated total; 2: always;
                            * 3: always, then stop (run nothing) */
} sp_sweep_opts;

/* Seconds a training should take from step P to step S, from a pilot's
 * first P steps: rate[w] (seconds a step) over each of their n_windows
 * equal windows, and floor, the seconds of the least work of a step (its
 * encoder GEMM). The second half's rates are fitted as
 *   r(s) = floor + c (s / P)^-a
 * (least squares on log(r - floor) against log s, a clamped to [0, 2])
 * and r integrated from P to S; with a <= 0 or fewer than three windows
 * above the floor, the second half's mean rate holds to S. A sparse
 * SAE's step gets cheaper as its codes thin and its latents stop firing:
 * measured at ratio 16, L1 = 1, 19.2 ms a step at step 2000, 15.4 at
 * 4000, 12.9 at 8000 (2 threads), which such a curve with a = 0.95
 * follows. */
double sp_pilot_rest(const double *rate, int n_windows, long P, double floor, long S);

/* A pilot run's first P steps of a training, for the sweep's estimate. */
#define SP_PILOT_WINDOWS 8
typedef struct {
    long steps;                      /* P */
    double train;                    /* seconds of the P steps (set-up included) */
    double rate[SP_PILOT_WINDOWS];   /* seconds a step in each eighth of them */
    double l0[SP_PILOT_WINDOWS];     /* mean L0 in each (NAN: not tracked) */
    double l0_sparse;                /* L0 below which its steps are sparse */
    double floor;                    /* seconds of a step's encoder GEMM */
} sp_pilot_times;

/* Seconds a training of S steps should take, from its pilot p: p->train
 * plus sp_pilot_rest, except for a relu training whose codes are still
 * too dense for sparse steps at the pilot's end but thinning. Such a
 * training would cost its dense rate until its L0, on a line through the
 * second half's windows, crosses l0_sparse, then as `ref` (a pilot of the
 * same shape whose codes turned sparse, or NULL) went on from its own
 * first sparse window; it is costed halfway between that and staying
 * dense, because when L0 crosses is not known from P steps: measured on
 * the paper's sharkey-recovery runs, the line crossed at 1.5-2.2 P where
 * the runs crossed near 5 P (ratios 1-4, L1 = 0.0316), but at 3.5 P where
 * the run crossed near 3 P (ratio 16, L1 = 0.1); a power law through the
 * same windows misses by more (7 to 60 P, and never). The line is trusted
 * up to 4 P; beyond, or without ref, the training is costed as staying
 * dense. */
double sp_pilot_predict(const sp_pilot_times *p, const sp_pilot_times *ref, long S);

/* The experiment's output folder (opts->out_dir or results/<name>). */
void sp_sweep_out_dir(const sp_experiment *ex, const char *out_dir, char *buf, size_t len);

/* Runs every run of the sweep that the store does not hold yet, in worker
 * processes, then renders the figures. Returns 0, -1 on error, or 130
 * when interrupted (every finished run is kept). Prints progress. */
int sp_sweep_run(const sp_experiment *ex, const sp_sweep_opts *opts, sp_err *err);

/* Renders every figure of the experiment from the store into
 * <out>/figures (or figures-<preset> for a non-default preset). Prints one
 * line per figure written. Returns 0 or -1. */
int sp_sweep_plot(const sp_experiment *ex, const char *out_dir, sp_err *err);

/* Writes one finished run to the store at db_path (used by sweeps and by
 * `superpose train --out`). */
int sp_run_store(const char *db_path, const char *experiment, const sp_run_cfg *cfg,
                 const sp_run_result *res, sp_err *err);

#endif
