/* runner.c: one run end to end, and sweeps of runs in worker processes.
 *
 * A sweep forks one worker process per job (at most -j at a time), each
 * with single-threaded BLAS. A job is one training, scored as every run
 * that differs from it only in [solve], or an ensemble of small trainings
 * that share a data stream and a shape (ensemble.h; SP_ENSEMBLE_MAX_MD).
 * A worker trains, writes its artifacts (temp name + rename), then each
 * run's row in the store in one transaction, and exits; it reports
 * progress to the parent through a pipe. Killing the sweep at any moment
 * loses only the runs in flight: a rerun skips every run whose key is in
 * the store. Jobs are started largest first so that the workers finish
 * together. Every job has one BLAS thread, except when the sweep has fewer
 * jobs than workers: then a large training (B m d >= SP_THREADED_GEMM)
 * takes the idle cores as BLAS threads. Side by side, single-threaded
 * trainings do more steps than one training with every core: only the
 * GEMMs run in threads, the sparse step's listing, loss and Adam do not
 * (measured, 2 cores, d = 256: 1.5x the steps at ratio 16, 1.75x at ratio
 * 32, dense phase included). A run's numbers must not depend on its BLAS
 * threads, so not on the schedule: OpenBLAS splits a GEMM by rows and
 * columns of C, never along the sum, and its SkylakeX and Cooperlake
 * kernels give the same bits with any thread count, but its Haswell
 * kernels do not; the runner threads a training only where a probe finds
 * the bits equal (sp_blas_threads_exact; checked bit for bit by check_ito).
 * Before a long sweep, pilot runs time each job shape and the schedule is
 * simulated to print an estimated total (estimate_sweep). */
#include "superpose/runner.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <gsl/gsl_cblas.h>
#include <gsl/gsl_rng.h>

#include "superpose/blas.h"
#include "superpose/ensemble.h"
#include "superpose/figure.h"
#include "superpose/gen.h"
#include "superpose/geometry.h"
#include "superpose/ito.h"
#include "superpose/metrics.h"
#include "superpose/npy.h"
#include "superpose/sae.h"
#include "superpose/store.h"
#include "superpose/tms.h"

void openblas_set_num_threads(int num_threads);

enum { M_MMCS, M_MMCS_REV, M_DEAD, M_L0, M_MSE, M_FVE, M_LOSS, M_STEPS, M_WALL, M_L0_TRUE,
       M_MAX_COS, M_DSTAR, M_RESAMPLED, M_PRECISION, M_RECALL, M_F1, M_GAP, M_LAMBDA, M_MCC,
       M_UNIQUENESS, M_SPLIT, M_OFFDIAG, M_LAT_F1, M_SHRINKAGE, M_ABSORPTION, M_FULL_ABSORPTION,
       M_RECALL_HOLE, M_CHILD_DEC_PARENT, M_PARENT_ENC_CHILD, M_PARENT_DEC_CHILD };

const char *const sp_curve_names[SP_N_CURVES] = {"loss", "l0", "dead", "mmcs"};

void sp_run_result_free(sp_run_result *res)
{
    free(res->curve_step);
    for (int c = 0; c < SP_N_CURVES; c++)
        free(res->curve[c]);
    res->curve_step = NULL;
    memset(res->curve, 0, sizeof res->curve);
    res->n_curve = 0;
}

/* Latents whose fire count did not move since snap; snap <- fires. */
static size_t dead_since(const sp_learner *L, unsigned long *snap, size_t *dead)
{
    size_t n = 0;
    for (size_t i = 0; i < L->m; i++) {
        if (L->fires[i] == snap[i] && dead)
            dead[n] = i;
        n += L->fires[i] == snap[i];
        snap[i] = L->fires[i];
    }
    return n;
}

/* Resampling (Bricken et al. 2023): scores N fresh inputs by the SAE's
 * squared error and hands the dead latents to sp_resample. */
static size_t resample(sp_learner *L, sp_optim *opt, sp_gen *gen, gsl_rng *rng,
                       const size_t *dead, size_t n_dead, gsl_matrix_float *X, double *loss,
                       gsl_matrix_float *f, gsl_matrix_float *xh)
{
    size_t N = X->size1, B = f->size1, d = L->d;
    for (size_t s = 0; s < N; s += B) {
        size_t nb = N - s < B ? N - s : B;
        gsl_matrix_float_view xv = gsl_matrix_float_submatrix(X, s, 0, nb, d);
        gsl_matrix_float_view fv = gsl_matrix_float_submatrix(f, 0, 0, nb, L->m);
        gsl_matrix_float_view hv = gsl_matrix_float_submatrix(xh, 0, 0, nb, d);
        sp_gen_batch(gen, rng, nb, NULL, &xv.matrix);
        L->ops->encode(L, &xv.matrix, &fv.matrix);
        L->ops->decode(L, &fv.matrix, &hv.matrix);
        for (size_t b = 0; b < nb; b++) {
            const float *xr = gsl_matrix_float_const_ptr(&xv.matrix, b, 0);
            const float *hr = gsl_matrix_float_const_ptr(&hv.matrix, b, 0);
            double acc = 0;
            for (size_t t = 0; t < d; t++)
                acc += ((double)hr[t] - xr[t]) * ((double)hr[t] - xr[t]);
            loss[s + b] = acc;
        }
    }
    const float *bd = NULL;
    for (size_t p = 0; p < L->n_params; p++)
        if (!strcmp(L->params[p].name, "b_d"))
            bd = L->params[p].w;
    return sp_resample(L, opt, dead, n_dead, X, loss, bd, rng);
}

static gsl_rng *rng_from(uint64_t a, uint64_t b, const char *tag)
{
    uint64_t s = sp_mix64(sp_hash64(tag, strlen(tag), sp_mix64(a) ^ sp_mix64(b + 0x51ed27)));
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (r)
        gsl_rng_set(r, (unsigned long)(s & 0xffffffffUL) ? (unsigned long)(s & 0xffffffffUL) : 1);
    return r;
}

static int save_artifacts(const char *dir, const sp_learner *L, const sp_gen *g,
                          sp_err *err)
{
    if (sp_mkdirs(dir, err) != 0)
        return -1;
    char path[1200];
    const gsl_matrix_float *t = sp_gen_truth(g);
    snprintf(path, sizeof path, "%s/decoder.npy", dir);
    if (sp_npy_write_f32(path, L->decoder->data, L->m, L->d, err) != 0)
        return -1;
    if (L->encoder) {
        snprintf(path, sizeof path, "%s/encoder.npy", dir);
        if (sp_npy_write_f32(path, L->encoder->data, L->m, L->d, err) != 0)
            return -1;
    }
    for (size_t p = 0; p < L->n_params; p++)
        if (!strcmp(L->params[p].name, "b_e")) {
            snprintf(path, sizeof path, "%s/encoder_bias.npy", dir);
            if (sp_npy_write_f32(path, L->params[p].w, L->params[p].n, 0, err) != 0)
                return -1;
        }
    snprintf(path, sizeof path, "%s/truth.npy", dir);
    return sp_npy_write_f32(path, t->data, t->size1, t->size2, err);
}

/* truth.npy, and W.npy (m x n) with b.npy (n) for a toy-model generator. */
static int write_truth(const char *dir, const sp_gen *gen, const sp_run_cfg *cfg, sp_err *err)
{
    char path[1200];
    const gsl_matrix_float *G = sp_gen_truth(gen);
    snprintf(path, sizeof path, "%s/truth.npy", dir);
    if (sp_npy_write_f32(path, G->data, G->size1, G->size2, err) != 0)
        return -1;
    if (!sp_gen_tms_w(gen))
        return 0;
    size_t n = (size_t)cfg->data.n, m = (size_t)cfg->data.d;
    snprintf(path, sizeof path, "%s/W.npy", dir);
    if (sp_npy_write_f32(path, sp_gen_tms_w(gen), m, n, err) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/b.npy", dir);
    return sp_npy_write_f32(path, sp_gen_tms_b(gen), n, 0, err);
}

/* train.learner = none: the statistics of the data themselves, measured
 * on eval_samples samples of the evaluation stream (REFERENCE.md 1):
 * per-feature firing rates against the expected ones, pairwise co-firing,
 * the true L0, the coherence of the truth, and for a toy model D* and D_i
 * (Elhage et al. 2022). Artifacts: truth.npy, rates.npy (2 x n: expected,
 * measured), cofire.npy (n x n: P(i and j active), n <= 2048), and for
 * generator = tms W.npy (m x n), b.npy (n), dims.npy (n: D_i). */
static int run_truth(const sp_run_cfg *cfg, sp_gen *gen, gsl_rng *r_eval,
                     const char *artifact_dir, sp_run_result *res, sp_err *err)
{
    const gsl_matrix_float *G = sp_gen_truth(gen);
    size_t nt = G->size1, d = G->size2, B = (size_t)cfg->batch;
    int with_co = nt <= 2048;
    double *rates = calloc(2 * nt, sizeof *rates);
    double *co = with_co ? calloc(nt * nt, sizeof *co) : NULL;
    float *buf = malloc((with_co ? nt * nt : 2 * nt) * sizeof *buf);
    sp_codes *codes = sp_codes_alloc(B, B * nt);
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, d);
    int rc = -1;
    if (!rates || (with_co && !co) || !buf || !codes || !x) {
        sp_err_set(err, "out of memory measuring %zu features", nt);
        goto out;
    }
    double *expect = rates, *seen = rates + nt;
    if (sp_gen_rates(gen, expect) != 0)
        for (size_t i = 0; i < nt; i++)
            expect[i] = NAN;
    double l0 = 0;
    long N = cfg->eval_samples;
    sp_gen_use_split(gen, SP_SPLIT_EVAL);
    for (long done = 0; done < N; done += (long)B) {
        size_t nb = (size_t)(N - done < (long)B ? N - done : (long)B);
        sp_gen_batch(gen, r_eval, nb, codes, x);
        l0 += (double)codes->nnz;
        for (size_t b = 0; b < nb; b++)
            for (size_t t = codes->row[b]; t < codes->row[b + 1]; t++) {
                uint32_t i = codes->idx[t];
                seen[i] += 1;
                for (size_t u = codes->row[b]; with_co && u < codes->row[b + 1]; u++)
                    co[(size_t)i * nt + codes->idx[u]] += 1;
            }
    }
    for (size_t i = 0; i < nt; i++)
        seen[i] /= (double)N;
    res->metric[M_L0_TRUE] = l0 / (double)N;
    res->metric[M_MAX_COS] = sp_geom_max_cos(G);
    const float *W = sp_gen_tms_w(gen);
    if (W) {
        res->metric[M_DSTAR] = sp_tms_dstar(W, cfg->data.d, cfg->data.n);
        res->metric[M_LOSS] = sp_gen_tms_loss(gen);
    }
    if (artifact_dir) {
        char path[1200];
        if (sp_mkdirs(artifact_dir, err) != 0)
            goto out;
        if (write_truth(artifact_dir, gen, cfg, err) != 0)
            goto out;
        for (size_t i = 0; i < 2 * nt; i++)
            buf[i] = (float)rates[i];
        snprintf(path, sizeof path, "%s/rates.npy", artifact_dir);
        if (sp_npy_write_f32(path, buf, 2, nt, err) != 0)
            goto out;
        if (with_co) {
            for (size_t i = 0; i < nt * nt; i++)
                buf[i] = (float)(co[i] / (double)N);
            snprintf(path, sizeof path, "%s/cofire.npy", artifact_dir);
            if (sp_npy_write_f32(path, buf, nt, nt, err) != 0)
                goto out;
        }
        if (W) {
            size_t n = (size_t)cfg->data.n, m = (size_t)cfg->data.d;
            double *Di = malloc(n * sizeof *Di);
            if (!Di) {
                sp_err_set(err, "out of memory");
                goto out;
            }
            sp_tms_dims(W, (int)m, (int)n, Di);
            for (size_t i = 0; i < n; i++)
                buf[i] = (float)Di[i];
            free(Di);
            snprintf(path, sizeof path, "%s/dims.npy", artifact_dir);
            if (sp_npy_write_f32(path, buf, n, 0, err) != 0)
                goto out;
        }
    }
    rc = 0;
out:
    gsl_matrix_float_free(x);
    sp_codes_free(codes);
    free(buf);
    free(co);
    free(rates);
    return rc;
}

/* One training of a run group (the runs that differ only in [solve]):
 * its learner, optimizer, resampling and curve state. A group trains
 * alone, or as a member of an ensemble that shares the generator, the
 * training stream and the encoder GEMM (sp_run_train_ensemble). */
typedef struct {
    const sp_run_cfg *const *cfgs; /* the group's runs, [0] the training's */
    size_t n_eval;
    sp_run_result *res;            /* (n_eval) */
    sp_learner *L;
    sp_optim *opt;
    gsl_rng *r_init, *r_eval, *r_res;
    gsl_matrix_float *f, *xh;      /* (B, m), (B, d): resampling's workspace */
    unsigned long *rs_snap, *cv_snap;
    size_t *rs_dead;
    gsl_matrix_float *rs_x;
    double *rs_loss;
    long steps, tail, every, cev, resample_last, step;
    double tail_loss, cv_loss, cv_l0, resampled;
    long cv_n;
    int live;                      /* still training (not finished, not diverged) */
} trainer;

static void trainer_free(trainer *T)
{
    gsl_rng_free(T->r_res);
    free(T->rs_loss);
    gsl_matrix_float_free(T->rs_x);
    free(T->rs_dead);
    free(T->cv_snap);
    free(T->rs_snap);
    sp_optim_free(T->opt);
    sp_learner_free(T->L);
    gsl_matrix_float_free(T->xh);
    gsl_matrix_float_free(T->f);
    gsl_rng_free(T->r_eval);
    gsl_rng_free(T->r_init);
    memset(T, 0, sizeof *T);
}

/* Checks the group's runs, clears their results and allocates the
 * learner (not yet its optimizer: see trainer_optim). 0 or -1. */
static int trainer_init(trainer *T, const sp_run_cfg *const *cfgs, size_t n_eval,
                        sp_run_result *results, sp_err *err)
{
    memset(T, 0, sizeof *T);
    const sp_run_cfg *cfg = cfgs[0];
    T->cfgs = cfgs, T->n_eval = n_eval, T->res = results;
    if (n_eval > SP_MAX_EVALS)
        return sp_err_set(err, "internal: at most %d evaluations per run", SP_MAX_EVALS);
    for (size_t r = 0; r < n_eval; r++) {
        if (sp_config_check(cfgs[r], err) != 0)
            return -1;
        if (!sp_config_same_training(cfg, cfgs[r]))
            return sp_err_set(err, "internal: runs scored together must share their training");
        for (size_t i = 0; i < SP_MAX_METRICS; i++)
            results[r].metric[i] = NAN;
        results[r].diverged = 0;
        results[r].n_curve = 0;
        results[r].curve_step = NULL;
        memset(results[r].curve, 0, sizeof results[r].curve);
    }
    size_t d = (size_t)cfg->data.d, m = sp_config_latents(cfg), B = (size_t)cfg->batch;
    uint64_t ds = (uint64_t)cfg->data.seed, ts = (uint64_t)cfg->seed;
    T->r_init = rng_from(ds, ts, "init");
    T->r_eval = rng_from(ds, 0, "eval");
    if (!T->r_init || !T->r_eval)
        return sp_err_set(err, "out of memory (run with %zu latents)", m);
    if (!strcmp(cfg->learner, "none"))
        return 0;
    if (!(T->L = sp_learner_alloc(&cfg->model, &cfg->penalty, d, m, B, cfg->steps, T->r_init,
                                  err)))
        return -1;
    T->steps = cfg->steps;
    T->tail = T->steps < 100 ? T->steps : 100;
    T->every = cfg->resample_every;
    T->cev = cfg->curve_every;
    T->resample_last = (long)floor(cfg->resample_until * (double)T->steps);
    T->live = 1;
    if (T->every > 0) {
        size_t N = (size_t)cfg->resample_samples;
        if (!(T->rs_snap = calloc(m, sizeof *T->rs_snap)) ||
            !(T->rs_dead = malloc(m * sizeof *T->rs_dead)) ||
            !(T->rs_x = gsl_matrix_float_alloc(N, d)) ||
            !(T->rs_loss = malloc(N * sizeof *T->rs_loss)) ||
            !(T->r_res = rng_from(ds, ts, "resample")) || !(T->f = gsl_matrix_float_alloc(B, m)) ||
            !(T->xh = gsl_matrix_float_alloc(B, d)))
            return sp_err_set(err, "out of memory for resampling (%zu inputs)", N);
    }
    if (T->cev > 0) {
        sp_run_result *res = &results[0];
        size_t cap = (size_t)(T->steps / T->cev) + 2;
        res->curve_step = malloc(cap * sizeof *res->curve_step);
        int ok = res->curve_step && (T->cv_snap = calloc(m, sizeof *T->cv_snap));
        for (int c = 0; c < SP_N_CURVES && ok; c++)
            ok = (res->curve[c] = malloc(cap * sizeof(double))) != NULL;
        if (!ok)
            return sp_err_set(err, "out of memory for training curves");
    }
    return 0;
}

static int trainer_optim(trainer *T, sp_err *err)
{
    const sp_run_cfg *cfg = T->cfgs[0];
    if (!(T->opt = sp_optim_alloc(&cfg->optim, T->L->params, T->L->n_params, cfg->steps)))
        return sp_err_set(err, "out of memory for optimizer state");
    return 0;
}

/* After the training step `step` (0-based) that returned loss: divergence,
 * the loss tail, curves, resampling. */
static void trainer_after_step(trainer *T, sp_gen *gen, long step, double loss,
                               const sp_loss *ls)
{
    sp_run_result *res = &T->res[0];
    sp_learner *L = T->L;
    if (!isfinite(loss)) {
        res->diverged = 1;
        T->live = 0;
        T->step = step;
        return;
    }
    T->step = step + 1;
    if (T->step == T->steps)
        T->live = 0;
    if (step >= T->steps - T->tail)
        T->tail_loss += loss;
    T->cv_loss += loss, T->cv_l0 += ls->l0, T->cv_n++;
    if (T->cev > 0 && ((step + 1) % T->cev == 0 || step + 1 == T->steps)) {
        size_t k = res->n_curve++;
        res->curve_step[k] = step + 1;
        res->curve[SP_CURVE_LOSS][k] = T->cv_loss / (double)T->cv_n;
        res->curve[SP_CURVE_L0][k] = T->cv_l0 / (double)T->cv_n;
        res->curve[SP_CURVE_DEAD][k] = (double)dead_since(L, T->cv_snap, NULL);
        res->curve[SP_CURVE_MMCS][k] = sp_metric_mmcs(sp_gen_truth(gen), L->decoder, NULL);
        T->cv_loss = T->cv_l0 = 0, T->cv_n = 0;
    }
    if (T->every > 0 && (step + 1) % T->every == 0 && step + 1 <= T->resample_last) {
        size_t n_dead = dead_since(L, T->rs_snap, T->rs_dead);
        if (n_dead > 0)
            T->resampled += (double)resample(L, T->opt, gen, T->r_res, T->rs_dead, n_dead,
                                             T->rs_x, T->rs_loss, T->f, T->xh);
    }
}

/* Scores every run of the group (r_stream: the training stream where
 * training ended, for the fitting inputs), saves the artifacts, and copies
 * what the runs share. wall: the seconds to record. 0 or -1. */
static int trainer_finish(trainer *T, sp_gen *gen, gsl_rng *r_stream, const char *artifact_dir,
                          double wall, sp_err *err)
{
    const sp_run_cfg *cfg = T->cfgs[0];
    sp_run_result *res = &T->res[0];
    sp_learner *L = T->L;
    res->metric[M_STEPS] = (double)T->step;
    if (!res->diverged) {
        static const sp_ito_slots slots = {
            M_DEAD,       M_L0,        M_MSE,        M_FVE,          M_PRECISION,
            M_RECALL,     M_F1,        M_GAP,        M_LAMBDA,       M_L0_TRUE,
            M_LAT_F1,     M_SHRINKAGE, M_ABSORPTION, M_FULL_ABSORPTION, M_RECALL_HOLE,
            M_SPLIT};
        static const sp_dict_slots dslots = {M_MCC, M_UNIQUENESS, M_OFFDIAG, M_CHILD_DEC_PARENT,
                                             M_PARENT_ENC_CHILD, M_PARENT_DEC_CHILD};
        double *mt[SP_MAX_EVALS];
        for (size_t r = 0; r < T->n_eval; r++)
            mt[r] = T->res[r].metric;
        /* fitting inputs continue the training stream; the evaluation
         * window is the same for every run */
        if (sp_ito_eval(T->cfgs, T->n_eval, L, gen, r_stream, T->r_eval, &slots, mt, err) != 0)
            return -1;
        sp_score_dictionary(cfg, L, gen, &dslots, res->metric);
        res->metric[M_MMCS] = sp_metric_mmcs(sp_gen_truth(gen), L->decoder, NULL);
        res->metric[M_MMCS_REV] = sp_metric_mmcs(L->decoder, sp_gen_truth(gen), NULL);
        res->metric[M_LOSS] = T->tail_loss / (double)T->tail;
        res->metric[M_MAX_COS] = sp_geom_max_cos(sp_gen_truth(gen));
        res->metric[M_RESAMPLED] = T->resampled;
        if (artifact_dir && save_artifacts(artifact_dir, L, gen, err) != 0)
            return -1;
    }
    res->metric[M_WALL] = wall;
    /* what the runs share: training, decoder metrics and curves */
    for (size_t r = 1; r < T->n_eval; r++) {
        sp_run_result *o = &T->res[r];
        o->diverged = res->diverged;
        const int shared[] = {M_MMCS,          M_MMCS_REV,         M_LOSS,
                              M_STEPS,         M_WALL,             M_MAX_COS,
                              M_DSTAR,         M_RESAMPLED,        M_MCC,
                              M_UNIQUENESS,    M_OFFDIAG,
                              M_CHILD_DEC_PARENT, M_PARENT_ENC_CHILD, M_PARENT_DEC_CHILD};
        for (size_t i = 0; i < sizeof shared / sizeof shared[0]; i++)
            o->metric[shared[i]] = res->metric[shared[i]];
        if (res->n_curve > 0) {
            size_t bytes = res->n_curve * sizeof(double);
            if (!(o->curve_step = malloc(res->n_curve * sizeof *o->curve_step)))
                return sp_err_set(err, "out of memory");
            memcpy(o->curve_step, res->curve_step, res->n_curve * sizeof *o->curve_step);
            o->n_curve = res->n_curve;
            for (int c = 0; c < SP_N_CURVES; c++) {
                if (!(o->curve[c] = malloc(bytes)))
                    return sp_err_set(err, "out of memory");
                memcpy(o->curve[c], res->curve[c], bytes);
            }
        }
    }
    return 0;
}

int sp_run_train_ensemble(const sp_run_cfg *const *cfgs, const size_t *start, size_t nt,
                          const char *const *artifact_dirs, sp_progress_fn progress, void *user,
                          sp_run_result *results, sp_err *err)
{
    trainer *T = calloc(nt ? nt : 1, sizeof *T);
    sp_learner **Ls = malloc((nt ? nt : 1) * sizeof *Ls);
    sp_optim **opts = malloc((nt ? nt : 1) * sizeof *opts);
    sp_loss *ls = malloc((nt ? nt : 1) * sizeof *ls);
    double *loss = malloc((nt ? nt : 1) * sizeof *loss);
    int *live = malloc((nt ? nt : 1) * sizeof *live);
    gsl_rng *r_truth = NULL, *r_stream = NULL, *r_fit = NULL;
    sp_gen *gen = NULL;
    sp_ensemble *E = NULL;
    gsl_matrix_float *x = NULL;
    size_t nT = 0;
    int rc = -1;
    if (!T || !Ls || !opts || !ls || !loss || !live) {
        sp_err_set(err, "out of memory");
        goto out;
    }
    if (nt == 0 || start[0] != 0) {
        sp_err_set(err, "internal: no trainings, or runs before the first");
        goto out;
    }
    for (size_t r = 0; r < start[nt]; r++) /* nothing to free yet, whatever fails */
        memset(&results[r], 0, sizeof results[r]);
    const sp_run_cfg *cfg = cfgs[0];
    char k0[17], kt[17];
    sp_config_ensemble_key(cfg, k0);
    for (size_t t = 0; t < nt; t++) {
        if (start[t + 1] <= start[t]) {
            sp_err_set(err, "internal: training %zu has no runs", t);
            goto out;
        }
        sp_config_ensemble_key(cfgs[start[t]], kt);
        if (nt > 1 && (strcmp(k0, kt) != 0 || !sp_config_ensemble_ok(cfgs[start[t]]))) {
            sp_err_set(err, "internal: trainings of one ensemble must share their data stream "
                            "and shape (sp_config_ensemble_key, sp_config_ensemble_ok)");
            goto out;
        }
        nT = t + 1;
        if (trainer_init(&T[t], cfgs + start[t], start[t + 1] - start[t], results + start[t],
                         err) != 0)
            goto out;
    }
    double t0 = sp_now();
    size_t d = (size_t)cfg->data.d, B = (size_t)cfg->batch;
    uint64_t ds = (uint64_t)cfg->data.seed, ts = (uint64_t)cfg->seed;
    r_truth = rng_from(ds, 0, "truth");
    r_stream = rng_from(ds, ts, "stream");
    x = gsl_matrix_float_alloc(B, d);
    if (!r_truth || !r_stream || !x) {
        sp_err_set(err, "out of memory (run with %zu latents)", sp_config_latents(cfg));
        goto out;
    }
    if (!(gen = sp_gen_alloc_ex(&cfg->data, B, r_truth, progress, user, err)))
        goto out;
    if (!T[0].L) { /* train.learner = none: data statistics only */
        sp_run_result *res = &results[0];
        if (run_truth(cfg, gen, T[0].r_eval, artifact_dirs ? artifact_dirs[0] : NULL, res,
                      err) != 0)
            goto out;
        res->metric[M_STEPS] = 0;
        res->metric[M_WALL] = sp_now() - t0;
        rc = 0;
        goto out;
    }
    for (size_t t = 0; t < nt; t++)
        Ls[t] = T[t].L;
    if (nt > 1 && !(E = sp_ensemble_alloc(Ls, nt, err)))
        goto out;
    for (size_t t = 0; t < nt; t++) {
        if (trainer_optim(&T[t], err) != 0)
            goto out;
        opts[t] = T[t].opt;
    }
    long steps = cfg->steps;
    double last_report = sp_now();
    for (long step = 0; step < steps; step++) {
        int any = 0;
        for (size_t t = 0; t < nt; t++)
            any |= live[t] = T[t].live;
        if (!any)
            break;
        sp_gen_batch(gen, r_stream, B, NULL, x);
        if (E)
            sp_ensemble_step(E, opts, x, live, ls, loss);
        else
            loss[0] = sp_train_step(T[0].L, T[0].opt, x, &ls[0]);
        for (size_t t = 0; t < nt; t++)
            if (live[t])
                trainer_after_step(&T[t], gen, step, loss[t], &ls[t]);
        if (progress && (step % 16 == 15 || step + 1 == steps)) {
            double now = sp_now();
            if (now - last_report > 0.25 || step + 1 == steps) {
                progress(user, step + 1, steps, loss[0]);
                last_report = now;
            }
        }
    }
    /* each training is scored from the stream where training ended, as if
     * it had trained alone; its wall time is its share of the training
     * plus its own scoring */
    double share = (sp_now() - t0) / (double)nt;
    for (size_t t = 0; t < nt; t++) {
        double te = sp_now();
        gsl_rng_free(r_fit);
        r_fit = NULL;
        if (nt > 1 && !(r_fit = gsl_rng_clone(r_stream))) {
            sp_err_set(err, "out of memory");
            goto out;
        }
        if (trainer_finish(&T[t], gen, nt > 1 ? r_fit : r_stream,
                           artifact_dirs ? artifact_dirs[t] : NULL, share + (sp_now() - te),
                           err) != 0)
            goto out;
    }
    rc = 0;
out:
    if (rc != 0 && nt > 0)
        for (size_t r = 0; r < start[nt]; r++)
            sp_run_result_free(&results[r]);
    for (size_t t = 0; t < nT; t++)
        trainer_free(&T[t]);
    sp_ensemble_free(E);
    sp_gen_free(gen);
    gsl_matrix_float_free(x);
    gsl_rng_free(r_fit);
    gsl_rng_free(r_stream);
    gsl_rng_free(r_truth);
    free(live);
    free(loss);
    free(ls);
    free(opts);
    free(Ls);
    free(T);
    return rc;
}

int sp_run_train_multi(const sp_run_cfg *const *cfgs, size_t n_eval, const char *artifact_dir,
                       sp_progress_fn progress, void *user, sp_run_result *results, sp_err *err)
{
    size_t start[2] = {0, n_eval};
    return sp_run_train_ensemble(cfgs, start, 1, &artifact_dir, progress, user, results, err);
}

int sp_run_train(const sp_run_cfg *cfg, const char *artifact_dir, sp_progress_fn progress,
                 void *user, sp_run_result *res, sp_err *err)
{
    const sp_run_cfg *one[1] = {cfg};
    return sp_run_train_multi(one, 1, artifact_dir, progress, user, res, err);
}

/* Writes split `sp` (or n fresh samples of the stream) as X and dense codes. */
static int write_split(sp_gen *gen, gsl_rng *rng, size_t n, size_t B, const char *dir,
                       const char *suffix, sp_err *err)
{
    const gsl_matrix_float *G = sp_gen_truth(gen);
    size_t nt = G->size1, d = G->size2;
    float *X = malloc(n * d * sizeof *X), *A = calloc(n * nt, sizeof *A);
    sp_codes *codes = sp_codes_alloc(B, B * nt);
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, d);
    int rc = -1;
    if (!X || !A || !codes || !x) {
        sp_err_set(err, "out of memory for %zu samples (%zu x %zu inputs, %zu x %zu codes)", n,
                   n, d, n, nt);
        goto out;
    }
    for (size_t done = 0; done < n; done += B) {
        size_t nb = n - done < B ? n - done : B;
        sp_gen_batch(gen, rng, nb, codes, x);
        for (size_t b = 0; b < nb; b++) {
            memcpy(X + (done + b) * d, gsl_matrix_float_ptr(x, b, 0), d * sizeof *X);
            for (size_t q = codes->row[b]; q < codes->row[b + 1]; q++)
                A[(done + b) * nt + codes->idx[q]] = codes->val[q];
        }
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/X%s.npy", dir, suffix);
    if (sp_npy_write_f32(path, X, n, d, err) != 0)
        goto out;
    snprintf(path, sizeof path, "%s/codes%s.npy", dir, suffix);
    if (sp_npy_write_f32(path, A, n, nt, err) != 0)
        goto out;
    rc = 0;
out:
    gsl_matrix_float_free(x);
    sp_codes_free(codes);
    free(A);
    free(X);
    return rc;
}

int sp_run_generate(const sp_run_cfg *cfg, const char *dir, long samples, sp_err *err)
{
    if (sp_config_check(cfg, err) != 0)
        return -1;
    size_t B = 1024, nt = sp_gen_truth_rows(&cfg->data), d = (size_t)cfg->data.d;
    long N = cfg->data.dataset > 0 ? cfg->data.dataset : samples;
    if ((double)N * (double)(nt + d) * 4.0 > 4.0 * 1024 * 1024 * 1024)
        return sp_err_set(err, "%ld samples of %zu inputs and %zu codes need more than 4 GiB; "
                               "ask for fewer samples", N, d, nt);
    uint64_t ds = (uint64_t)cfg->data.seed, ts = (uint64_t)cfg->seed;
    gsl_rng *r_truth = rng_from(ds, 0, "truth"), *r_stream = rng_from(ds, ts, "stream");
    sp_gen *gen = NULL;
    int rc = -1;
    if (!r_truth || !r_stream) {
        sp_err_set(err, "out of memory");
        goto out;
    }
    if (sp_mkdirs(dir, err) != 0 || !(gen = sp_gen_alloc(&cfg->data, B, r_truth, err)))
        goto out;
    char path[1200];
    if (write_truth(dir, gen, cfg, err) != 0)
        goto out;
    double *rates = malloc(nt * sizeof *rates);
    float *fr = malloc(nt * sizeof *fr);
    int have = rates && fr && sp_gen_rates(gen, rates) == 0;
    for (size_t i = 0; have && i < nt; i++)
        fr[i] = (float)rates[i];
    snprintf(path, sizeof path, "%s/rates.npy", dir);
    int bad = have && sp_npy_write_f32(path, fr, nt, 0, err) != 0;
    free(fr);
    free(rates);
    if (bad)
        goto out;
    if (cfg->data.dataset > 0) {
        /* the training split in its stored order, then the held-out split */
        size_t ntr = sp_gen_split_size(gen, SP_SPLIT_TRAIN), nev = sp_gen_split_size(gen, SP_SPLIT_EVAL);
        sp_gen_use_split(gen, SP_SPLIT_EVAL);
        if (nev && write_split(gen, r_stream, nev, B, dir, "_eval", err) != 0)
            goto out;
        sp_gen_use_split(gen, SP_SPLIT_TRAIN);
        if (write_split(gen, r_stream, ntr, B, dir, "_train", err) != 0)
            goto out;
    } else if (write_split(gen, r_stream, (size_t)samples, B, dir, "", err) != 0) {
        goto out;
    }
    rc = 0;
out:
    sp_gen_free(gen);
    gsl_rng_free(r_stream);
    gsl_rng_free(r_truth);
    return rc;
}

int sp_run_store(const char *db_path, const char *experiment, const sp_run_cfg *cfg,
                 const sp_run_result *res, sp_err *err)
{
    size_t n_opts;
    const sp_opt *opts = sp_config_options(&n_opts);
    char key[17];
    sp_config_key(cfg, key);
    char *config = sp_config_canonical(cfg);
    sp_kv *params = calloc(n_opts, sizeof *params);
    char(*vals)[128] = calloc(n_opts, sizeof *vals);
    char(*names)[80] = calloc(n_opts, sizeof *names);
    sp_metric metrics[SP_MAX_METRICS];
    int rc = -1;
    if (!config || !params || !vals || !names) {
        sp_err_set(err, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n_opts; i++) {
        snprintf(names[i], sizeof names[i], "%s.%s", opts[i].section, opts[i].key);
        sp_config_format(cfg, &opts[i], vals[i], sizeof vals[i]);
        params[i].name = names[i];
        params[i].value = vals[i];
    }
    for (size_t i = 0; i < sp_n_run_metrics; i++)
        metrics[i] = (sp_metric){sp_run_metric_names[i], res->metric[i]};
    sp_run_record rec = {
        .key = key,
        .experiment = (char *)experiment,
        .status = res->diverged ? "diverged" : "ok",
        .seed = cfg->seed,
        .config = config,
        .wall_s = res->metric[M_WALL],
        .params = params,
        .n_params = n_opts,
        .metrics = metrics,
        .n_metrics = sp_n_run_metrics,
    };
    sp_curve curves[SP_N_CURVES];
    if (res->n_curve > 0) {
        for (int c = 0; c < SP_N_CURVES; c++)
            curves[c] = (sp_curve){sp_curve_names[c], res->n_curve, res->curve_step,
                                   res->curve[c]};
        rec.curves = curves;
        rec.n_curves = SP_N_CURVES;
    }
    sp_store *st = sp_store_open(db_path, err);
    if (!st)
        goto out;
    rc = sp_store_put_run(st, &rec, err);
    sp_store_close(st);
out:
    free(names);
    free(vals);
    free(params);
    free(config);
    return rc;
}

void sp_sweep_out_dir(const sp_experiment *ex, const char *out_dir, char *buf, size_t len)
{
    if (out_dir && *out_dir)
        snprintf(buf, len, "%s", out_dir);
    else
        snprintf(buf, len, "results/%s", ex->name);
}

/* ---- sweep ---------------------------------------------------------- */

typedef struct {
    size_t *index;      /* run indices in the experiment, grouped by training */
    char (*key)[17];    /* their keys */
    size_t n;           /* runs in the job */
    size_t *start;      /* (n_train + 1): training t has runs start[t] .. start[t + 1) */
    size_t n_train;     /* trainings: 1, or the members of an ensemble */
    double cost;
    int threads;        /* BLAS threads of the worker */
    double est;         /* estimated seconds (estimate_sweep), or 0 */
    double t_start;     /* when its worker started */
    pid_t pid;
    int fd;             /* pipe from the worker */
    char buf[4096];
    size_t blen;
    long step, steps;
    size_t reported;    /* runs the worker reported */
    char error[1100];
    int state;          /* 0 pending, 1 running, 2 done, 3 failed */
} job;

static volatile sig_atomic_t interrupted = 0;
static void on_signal(int sig) { interrupted = sig; }

static void worker_progress(void *user, long step, long steps, double loss)
{
    char line[96];
    int n = snprintf(line, sizeof line, "P %ld %ld %.6g\n", step, steps, loss);
    if (write(*(int *)user, line, (size_t)n) < 0) {
        /* parent gone: PR_SET_PDEATHSIG ends us */
    }
}

static void write_all(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* The worker process: trains the group's model once, scores every run of
 * the group, stores each, reports "R <i> ..." per run. Never returns. */
static void worker(const sp_experiment *ex, job *jb, const char *out, int fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    openblas_set_num_threads(jb->threads > 1 ? jb->threads : 1);
    sp_err err;
    char db[1100], msg[1400];
    snprintf(db, sizeof db, "%s/results.db", out);
    sp_run_cfg *cfgs = malloc(jb->n * sizeof *cfgs);
    const sp_run_cfg **ptrs = malloc(jb->n * sizeof *ptrs);
    sp_run_result *res = calloc(jb->n, sizeof *res);
    char(*art)[1200] = malloc(jb->n_train * sizeof *art);
    const char **arts = malloc(jb->n_train * sizeof *arts);
    int ok = cfgs && ptrs && res && art && arts;
    if (!ok)
        sp_err_set(&err, "out of memory");
    for (size_t r = 0; r < jb->n && ok; r++) {
        ok = sp_experiment_run_cfg(ex, jb->index[r], &cfgs[r], NULL, &err) == 0;
        ptrs[r] = &cfgs[r];
    }
    for (size_t t = 0; t < jb->n_train && ok; t++) {
        snprintf(art[t], sizeof art[t], "%s/artifacts/%s", out, jb->key[jb->start[t]]);
        arts[t] = art[t];
    }
    ok = ok && sp_run_train_ensemble(ptrs, jb->start, jb->n_train, arts, worker_progress, &fd,
                                     res, &err) == 0;
    for (size_t t = 0; t < jb->n_train && ok; t++)
        for (size_t r = jb->start[t]; r < jb->start[t + 1] && ok; r++) {
            if (r > jb->start[t] && !res[r].diverged) {
                /* the runs of a training share its artifacts */
                char link[1200];
                snprintf(link, sizeof link, "%s/artifacts/%s", out, jb->key[r]);
                unlink(link);
                if (symlink(jb->key[jb->start[t]], link) != 0 && errno != EEXIST) {
                    sp_err_set(&err, "cannot link %s: %s", link, strerror(errno));
                    ok = 0;
                    break;
                }
            }
            if (sp_run_store(db, ex->name, &cfgs[r], &res[r], &err) != 0) {
                ok = 0;
                break;
            }
            snprintf(msg, sizeof msg,
                     "R %zu status=%s mmcs=%.4f dead=%.0f l0=%.2f mse=%.3g f1=%.3f wall_s=%.1f\n",
                     r, res[r].diverged ? "diverged" : "ok", res[r].metric[M_MMCS],
                     res[r].metric[M_DEAD], res[r].metric[M_L0], res[r].metric[M_MSE],
                     res[r].metric[M_F1], res[r].metric[M_WALL]);
            write_all(fd, msg);
        }
    if (!ok) {
        for (char *c = err.msg; *c; c++)
            if (*c == '\n')
                *c = ' ';
        snprintf(msg, sizeof msg, "E %s\n", err.msg);
        write_all(fd, msg);
        _exit(1);
    }
    _exit(0);
}

static int spawn(const sp_experiment *ex, job *jb, const char *out, sp_err *err)
{
    int p[2];
    if (pipe(p) != 0)
        return sp_err_set(err, "pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return sp_err_set(err, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(p[0]);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        worker(ex, jb, out, p[1]);
    }
    close(p[1]);
    jb->pid = pid;
    jb->fd = p[0];
    jb->state = 1;
    jb->t_start = sp_now();
    jb->blen = 0;
    jb->step = 0;
    return 0;
}

static void describe_point(const sp_experiment *ex, size_t index, char *buf, size_t len)
{
    sp_run_cfg cfg;
    size_t coords[SP_MAX_AXES];
    buf[0] = '\0';
    if (sp_experiment_run_cfg(ex, index, &cfg, coords, NULL) != 0)
        return;
    size_t used = 0;
    for (size_t a = 0; a < ex->n_axes && used < len; a++) {
        int w = snprintf(buf + used, len - used, "%s%s=%s", a ? " " : "", ex->axes[a].name,
                         ex->axes[a].labels[coords[a]]);
        if (w > 0)
            used += (size_t)w;
    }
}

static int cmp_cost_desc(const void *a, const void *b)
{
    const job *x = a, *y = b;
    if (x->cost != y->cost)
        return x->cost < y->cost ? 1 : -1;
    return x->index[0] < y->index[0] ? -1 : (x->index[0] > y->index[0]);
}

/* Approximate extra work of scoring one run beyond the training's own
 * evaluation (for progress estimates only). */
static double eval_cost(const sp_run_cfg *cfg)
{
    double m = (double)sp_config_latents(cfg), d = cfg->data.d;
    const char *meth = cfg->solve.method;
    double factor = !strcmp(meth, "encoder") || !strncmp(meth, "scale", 5) ? 1
                  : !strcmp(meth, "ista") || !strcmp(meth, "fista") ? 100 : 10;
    return 2.0 * m * d * factor * (double)cfg->eval_samples;
}

typedef struct {
    const sp_experiment *ex;
    const sp_sweep_opts *o;
    size_t n_todo, done, failed, diverged;
    double work_total, work_done, t0;
} sweep_state;

/* One finished run reported by a worker: print its line. */
static void report_run(sweep_state *sw, job *jb, size_t r, const char *text)
{
    char where[400];
    describe_point(sw->ex, jb->index[r], where, sizeof where);
    sw->done++;
    if (strstr(text, "status=diverged"))
        sw->diverged++;
    if (sw->o->tty)
        printf("\r\033[K");
    printf("run %zu/%zu %s key=%s %s\n", sw->done, sw->n_todo, where, jb->key[r], text);
    fflush(stdout);
}

static void handle_line(sweep_state *sw, job *jb, const char *line)
{
    if (line[0] == 'P') {
        sscanf(line + 2, "%ld %ld", &jb->step, &jb->steps);
    } else if (line[0] == 'R') {
        char *end;
        unsigned long r = strtoul(line + 2, &end, 10);
        if (r < jb->n && *end == ' ') {
            report_run(sw, jb, r, end + 1);
            jb->reported++;
        }
    } else if (line[0] == 'E') {
        snprintf(jb->error, sizeof jb->error, "%s", line + 2);
    }
}

/* Reads what the worker wrote; returns 1 at end of file. */
static int pump(sweep_state *sw, job *jb)
{
    ssize_t n = read(jb->fd, jb->buf + jb->blen, sizeof jb->buf - 1 - jb->blen);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (n <= 0)
        return 1;
    jb->blen += (size_t)n;
    jb->buf[jb->blen] = '\0';
    char *start = jb->buf, *nl;
    while ((nl = strchr(start, '\n'))) {
        *nl = '\0';
        handle_line(sw, jb, start);
        start = nl + 1;
    }
    jb->blen = strlen(start);
    memmove(jb->buf, start, jb->blen + 1);
    if (jb->blen == sizeof jb->buf - 1)
        jb->blen = 0; /* an overlong line: drop it */
    return 0;
}

static void free_jobs(job *jobs, size_t n)
{
    for (size_t i = 0; jobs && i < n; i++) {
        free(jobs[i].start);
        free(jobs[i].index);
        free(jobs[i].key);
    }
    free(jobs);
}

/* Appends run i (key) to job jb. 0 or -1. */
static int job_add(job *jb, size_t i, const char *key)
{
    size_t *ni = realloc(jb->index, (jb->n + 1) * sizeof *ni);
    if (ni)
        jb->index = ni;
    char(*nk)[17] = ni ? realloc(jb->key, (jb->n + 1) * sizeof *nk) : NULL;
    if (nk)
        jb->key = nk;
    if (!ni || !nk)
        return -1;
    jb->index[jb->n] = i;
    memcpy(jb->key[jb->n], key, 17);
    jb->n++;
    return 0;
}

/* Plans the runs that the store does not hold. Runs with one training key
 * form one training (trained once, scored several ways). Trainings that
 * can be ensemble members (sp_config_ensemble_ok), are small enough to run
 * single-threaded and share an ensemble key train together, as one job,
 * in ensembles of at most SP_MAX_ENSEMBLE; an ensemble whose work exceeds
 * 1/jobs of the sweep's is split so that the workers finish together.
 * Only small models join ensembles (m d <= SP_ENSEMBLE_MAX_MD): every other
 * training is a job of its own. With solo, every training is
 * its own job. Jobs are sorted largest first. */
static int plan_jobs(const sp_experiment *ex, sp_store *st, int threads, int solo,
                     job **out_jobs, size_t *n_jobs, size_t *n_todo, size_t *n_stored,
                     double *work_total, int *unthreaded, sp_err *err)
{
    size_t total = sp_experiment_n_runs(ex);
    job *tr = calloc(total ? total : 1, sizeof *tr); /* one per training */
    job *jobs = NULL;
    char(*tkey)[17] = calloc(total ? total : 1, sizeof *tkey);
    char(*ekey)[17] = calloc(total ? total : 1, sizeof *ekey);
    int *ens = calloc(total ? total : 1, sizeof *ens);
    size_t ntr = 0, nj = 0;
    *n_todo = *n_stored = 0;
    *work_total = 0;
    if (!tr || !tkey || !ekey || !ens) {
        sp_err_set(err, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < total; i++) {
        sp_run_cfg cfg;
        char key[17], tk[17];
        if (sp_experiment_run_cfg(ex, i, &cfg, NULL, err) != 0)
            goto fail;
        sp_config_key(&cfg, key);
        int has = sp_store_has_run(st, key, err);
        if (has < 0)
            goto fail;
        if (has) {
            (*n_stored)++;
            continue;
        }
        sp_config_training_key(&cfg, tk);
        size_t j;
        for (j = 0; j < ntr && (strcmp(tkey[j], tk) != 0 || tr[j].n >= SP_MAX_EVALS); j++)
            ;
        job *jb = &tr[j];
        if (j == ntr) {
            ntr++;
            memcpy(tkey[j], tk, sizeof tk);
            jb->cost = sp_config_cost(&cfg);
            int big = (double)cfg.batch * (double)cfg.data.d * (double)sp_config_latents(&cfg) >=
                      SP_THREADED_GEMM;
            jb->threads = big ? threads : 1;
            ens[j] = !solo && !big && sp_config_ensemble_ok(&cfg) &&
                     (double)sp_config_latents(&cfg) * (double)cfg.data.d <= SP_ENSEMBLE_MAX_MD;
            sp_config_ensemble_key(&cfg, ekey[j]);
            *work_total += jb->cost;
        } else {
            double c = eval_cost(&cfg);
            jb->cost += c;
            *work_total += c;
        }
        if (job_add(jb, i, key) != 0) {
            sp_err_set(err, "out of memory");
            goto fail;
        }
        (*n_todo)++;
    }
    if (!(jobs = calloc(ntr ? ntr : 1, sizeof *jobs))) {
        sp_err_set(err, "out of memory");
        goto fail;
    }
    /* ensembles: the trainings of one ensemble key, in chunks */
    int *taken = ens; /* 1: may join an ensemble; set to 2 when placed */
    double per_worker = *work_total / (double)(threads > 0 ? threads : 1);
    for (size_t j = 0; j < ntr; j++) {
        if (taken[j] == 2)
            continue;
        size_t mem[4096], nm = 0;
        double cost = 0;
        if (taken[j] == 1) {
            for (size_t q = j; q < ntr && nm < 4096; q++)
                if (taken[q] == 1 && !strcmp(ekey[q], ekey[j])) {
                    mem[nm++] = q;
                    cost += tr[q].cost;
                }
        } else {
            mem[nm++] = j;
        }
        size_t chunks = (size_t)ceil(cost / (per_worker > 0 ? per_worker : 1));
        size_t by_size = (nm + SP_MAX_ENSEMBLE - 1) / SP_MAX_ENSEMBLE;
        chunks = chunks > by_size ? chunks : by_size;
        chunks = chunks < 1 ? 1 : chunks > nm ? nm : chunks;
        for (size_t c = 0; c < chunks; c++) {
            size_t lo = nm * c / chunks, hi = nm * (c + 1) / chunks;
            job *jb = &jobs[nj++];
            jb->fd = -1;
            jb->threads = tr[mem[lo]].threads;
            if (!(jb->start = malloc((hi - lo + 1) * sizeof *jb->start))) {
                sp_err_set(err, "out of memory");
                goto fail;
            }
            for (size_t q = lo; q < hi; q++) {
                job *t = &tr[mem[q]];
                jb->start[jb->n_train++] = jb->n;
                jb->cost += t->cost;
                for (size_t r = 0; r < t->n; r++)
                    if (job_add(jb, t->index[r], t->key[r]) != 0) {
                        sp_err_set(err, "out of memory");
                        goto fail;
                    }
                taken[mem[q]] = 2;
            }
            jb->start[jb->n_train] = jb->n;
        }
    }
    free_jobs(tr, ntr);
    free(ens);
    free(ekey);
    free(tkey);
    qsort(jobs, nj, sizeof *jobs, cmp_cost_desc);
    /* BLAS threads (see the header): the cores no job would use go to the
     * large trainings */
    int spare = nj > 0 && nj < (size_t)threads ? threads / (int)nj : 1;
    int big = 0;
    for (size_t j = 0; j < nj; j++)
        big |= jobs[j].threads > 1;
    *unthreaded = big && spare > 1 && !sp_blas_threads_exact(spare);
    if (*unthreaded)
        spare = 1;
    for (size_t j = 0; j < nj; j++)
        jobs[j].threads = jobs[j].threads > 1 ? spare : 1;
    *out_jobs = jobs;
    *n_jobs = nj;
    return 0;
fail:
    free(ens);
    free(ekey);
    free(tkey);
    free_jobs(tr, ntr);
    free_jobs(jobs, nj);
    return -1;
}

/* ---- the sweep's estimated total ------------------------------------- */

/* Times of a pilot run's training progress reports (its own steps only). */
#define PILOT_MARKS 4096
typedef struct {
    long steps;
    double t0;
    size_t n;
    long step[PILOT_MARKS];
    double t[PILOT_MARKS];
} pilot_clock;

static void pilot_progress(void *user, long step, long steps, double loss)
{
    pilot_clock *c = user;
    (void)loss;
    if (steps != c->steps || c->n == PILOT_MARKS)
        return; /* the generator's own progress (the toy model's training) */
    c->step[c->n] = step;
    c->t[c->n++] = sp_now() - c->t0;
}

/* Seconds at step s, interpolated between the reports (0 at step 0). */
static double clock_at(const pilot_clock *c, double s)
{
    double s0 = 0, t0 = 0;
    for (size_t k = 0; k < c->n; k++) {
        if ((double)c->step[k] >= s) {
            double ds = (double)c->step[k] - s0;
            return ds > 0 ? t0 + (c->t[k] - t0) * (s - s0) / ds : c->t[k];
        }
        s0 = (double)c->step[k], t0 = c->t[k];
    }
    return t0;
}

#define PILOT_WINDOWS SP_PILOT_WINDOWS
typedef struct {
    char key[17];     /* ensemble key */
    int threads;
    sp_pilot_times t; /* its steps' times (and L0) */
    double eval;      /* seconds of its scoring, per training */
    size_t n;         /* trainings (ensemble members) */
} pilot;

/* Seconds of an sgemm of (B x d) by (d x m), the least a training step of
 * B samples, d dimensions and m latents does, timed with the BLAS threads
 * in force (best of three after a warm-up). */
static double gemm_seconds(size_t B, size_t m, size_t d)
{
    float *a = calloc(B * d, sizeof *a), *w = calloc(m * d, sizeof *w),
          *c = calloc(B * m, sizeof *c);
    double best = 0;
    if (a && w && c) {
        best = INFINITY;
        for (int r = 0; r < 4; r++) {
            double t0 = sp_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)m, (int)d, 1.0f, a,
                        (int)d, w, (int)d, 0.0f, c, (int)m);
            double t = sp_now() - t0;
            best = r > 0 && t < best ? t : best; /* the first warms up */
        }
    }
    free(a);
    free(w);
    free(c);
    return isfinite(best) ? best : 0;
}

/* Runs a short copy of the trainings cfg[0..n) as the job will (alone, or
 * as one ensemble): their first steps, then their scoring (solve at its
 * defaults), with `threads` BLAS threads, and times it. 0 or -1. */
static int run_pilot(const sp_run_cfg *cfg, size_t n, int threads, pilot *p, sp_err *err)
{
    sp_run_cfg *c = malloc(n * sizeof *c);
    const sp_run_cfg **ptr = malloc(n * sizeof *ptr);
    size_t *start = malloc((n + 1) * sizeof *start);
    sp_run_result *res = calloc(n, sizeof *res);
    pilot_clock *clk = calloc(1, sizeof *clk);
    int rc = -1;
    if (!c || !ptr || !start || !res || !clk) {
        sp_err_set(err, "out of memory");
        goto out;
    }
    sp_run_cfg defaults;
    sp_config_defaults(&defaults);
    /* 1/10 of the training, at most 2000 steps, at least 10 (at d = 256,
     * ratio 4, L1 at its Goldilocks value, L0 falls from 520 to 105 by
     * step 200, 35 by step 400, 10 by step 2000) */
    long P = cfg->steps / 10 < 2000 ? cfg->steps / 10 : 2000;
    P = P > 10 ? P : 10;
    P = P < cfg->steps ? P : cfg->steps;
    if (P >= 10 * PILOT_WINDOWS)
        P -= P % PILOT_WINDOWS;
    /* L0 by window, where the step switches from dense to sparse on it */
    int track = !strcmp(cfg->learner, "sae") && !strcmp(cfg->model.arch, "relu") &&
                cfg->model.sparse == SP_SPARSE_AUTO && P % PILOT_WINDOWS == 0;
    for (size_t t = 0; t < n; t++) {
        c[t] = cfg[t];
        c[t].solve = defaults.solve;
        c[t].steps = P;
        c[t].curve_every = track ? P / PILOT_WINDOWS : 0;
        ptr[t] = &c[t];
        start[t] = t;
    }
    start[n] = n;
    clk->steps = P;
    clk->t0 = sp_now();
    openblas_set_num_threads(threads);
    rc = sp_run_train_ensemble(ptr, start, n, NULL, pilot_progress, clk, res, err);
    double total = sp_now() - clk->t0;
    if (rc == 0)
        p->t.floor = (double)n * gemm_seconds((size_t)cfg->batch, sp_config_latents(cfg),
                                            (size_t)cfg->data.d);
    openblas_set_num_threads(1);
    if (rc != 0)
        goto out;
    p->t.steps = P;
    p->t.train = clk->n ? clk->t[clk->n - 1] : total;
    for (int w = 0; w < PILOT_WINDOWS; w++) {
        double s0 = (double)P * w / PILOT_WINDOWS, s1 = (double)P * (w + 1) / PILOT_WINDOWS;
        p->t.rate[w] = clk->n ? (clock_at(clk, s1) - clock_at(clk, s0)) / (s1 - s0)
                            : total / (double)P;
    }
    if (!clk->n) /* no training (train.learner = none) */
        p->t.floor = 0;
    p->t.l0_sparse = sp_sae_sparse_threshold * (double)sp_config_latents(cfg);
    for (int w = 0; w < PILOT_WINDOWS; w++) {
        double sum = 0;
        for (size_t t = 0; t < n; t++)
            sum += track && res[t].n_curve == PILOT_WINDOWS ? res[t].curve[SP_CURVE_L0][w] : NAN;
        p->t.l0[w] = sum / (double)n; /* members: their mean */
    }
    p->eval = (total - p->t.train) / (double)n;
out:
    for (size_t t = 0; res && t < n; t++)
        sp_run_result_free(&res[t]);
    free(clk);
    free(res);
    free(start);
    free(ptr);
    free(c);
    return rc;
}

/* A least-squares line through points added one by one. */
typedef struct {
    double sx, sy, sxx, sxy, k;
} line_fit;

static void line_add(line_fit *L, double x, double y)
{
    L->sx += x, L->sy += y, L->sxx += x * x, L->sxy += x * y, L->k++;
}

/* Its slope (0 with fewer than two distinct x). */
static double line_slope(const line_fit *L)
{
    double den = L->k * L->sxx - L->sx * L->sx;
    return den > 0 ? (L->k * L->sxy - L->sx * L->sy) / den : 0;
}

/* Its value at x. */
static double line_at(const line_fit *L, double x)
{
    return L->sy / L->k + line_slope(L) * (x - L->sx / L->k);
}

/* Mean of the second half of n values. */
static double second_half_mean(const double *v, int n)
{
    double sum = 0;
    for (int w = n / 2; w < n; w++)
        sum += v[w];
    return sum / (double)(n - n / 2);
}

double sp_pilot_rest(const double *rate, int n_windows, long P, double floor, long S)
{
    if (S <= P || P <= 0 || n_windows < 1)
        return 0;
    line_fit L = {0};
    for (int w = n_windows / 2; w < n_windows; w++)
        if (rate[w] > floor && isfinite(rate[w]))
            line_add(&L, log((w + 0.5) / n_windows), log(rate[w] - floor));
    const double a = L.k >= 3 ? -line_slope(&L) : 0, rest = (double)(S - P);
    if (!(a > 0)) /* flat or rising: the rate of the second half */
        return second_half_mean(rate, n_windows) * rest;
    /* r - floor = c (s / P)^-a, c on the fitted line at s = P */
    const double ac = a > 2 ? 2 : a, c = exp(line_at(&L, 0)), u = (double)S / (double)P;
    double tail = fabs(1 - ac) < 1e-9 ? log(u) : (pow(u, 1 - ac) - 1) / (1 - ac);
    return floor * rest + c * (double)P * tail;
}

static double pilot_rest(const sp_pilot_times *p, long S)
{
    return sp_pilot_rest(p->rate, PILOT_WINDOWS, p->steps, p->floor, S);
}

/* Is the pilot's step sparse in window w (its mean L0 below the switch)? */
static int pilot_sparse(const sp_pilot_times *p, int w)
{
    return isfinite(p->l0[w]) && p->l0[w] < p->l0_sparse;
}

/* Seconds of the pilot's steps a .. b (within its P), from its window rates. */
static double pilot_span(const sp_pilot_times *p, double a, double b)
{
    const double W = (double)p->steps / PILOT_WINDOWS;
    double t = 0;
    for (int w = 0; w < PILOT_WINDOWS; w++) {
        double lo = w * W > a ? w * W : a, hi = (w + 1) * W < b ? (w + 1) * W : b;
        if (hi > lo)
            t += p->rate[w] * (hi - lo);
    }
    return t;
}

/* Seconds a training of S steps should take, from its pilot p. A relu
 * training whose codes are still too dense for the sparse steps at the
 * pilot's end, but thinning, is costed at its dense rate until its L0,
 * extrapolated on a line through the pilot's second half, crosses the
 * switch, and from there as the nearest pilot of its shape whose codes did
 * turn sparse went on from its own crossing (`ref`). At ratio 16, L1 = 0.1
 * (d = 256), L0 fell from 1319 to 1100 between steps 1000 and 2000 and
 * crossed 410 near step 6000 (the line: 5100), after which a step cost half
 * as much within 2000 steps. The line is trusted up to three pilot lengths
 * past the pilot; beyond, and without such a `ref`, the training is costed
 * as if it stayed dense (pilot_rest). */
double sp_pilot_predict(const sp_pilot_times *p, const sp_pilot_times *ref, long S)
{
    const double P = (double)p->steps, W = P / PILOT_WINDOWS;
    double t = p->train;
    if (ref && !pilot_sparse(p, PILOT_WINDOWS - 1) && isfinite(p->l0[PILOT_WINDOWS - 1])) {
        line_fit L = {0};
        for (int w = PILOT_WINDOWS / 2; w < PILOT_WINDOWS; w++)
            line_add(&L, (w + 0.5) * W, p->l0[w]);
        const double slope = line_slope(&L), r_end = second_half_mean(p->rate, PILOT_WINDOWS);
        double cross = slope < 0 ? P + (line_at(&L, P) - p->l0_sparse) / -slope : INFINITY;
        if (cross < P)
            cross = P;
        if (cross < (double)S && cross <= 4 * P) {
            int w1 = 0; /* where ref turned sparse */
            while (w1 < PILOT_WINDOWS - 1 && !pilot_sparse(ref, w1))
                w1++;
            double s1 = w1 * (double)ref->steps / PILOT_WINDOWS, u = (double)S - cross;
            double Pr = (double)ref->steps, crossed = t + r_end * (cross - P);
            if (s1 + u <= Pr)
                crossed += pilot_span(ref, s1, s1 + u);
            else
                crossed += pilot_span(ref, s1, Pr) + pilot_rest(ref, (long)(s1 + u));
            /* halfway between crossing on the line and staying dense */
            return 0.5 * (crossed + t + pilot_rest(p, S));
        }
    }
    return t + pilot_rest(p, S);
}

/* 1 if job `other` has the shape of job jb, whose ensemble key is `key`:
 * the same BLAS threads, ensemble size and ensemble key (it gets the same
 * pilot). */
static int same_shape(const sp_experiment *ex, const job *other, const job *jb, const char *key)
{
    if (other->threads != jb->threads || other->n_train != jb->n_train)
        return 0;
    sp_run_cfg cfg;
    char k[17];
    sp_err err;
    if (sp_experiment_run_cfg(ex, other->index[0], &cfg, NULL, &err) != 0)
        return 0;
    sp_config_ensemble_key(&cfg, k);
    return strcmp(k, key) == 0;
}

/* The pilots of one job shape and where they sit in its list: up to four,
 * evenly from its first job to its last (an L1 sweep turns from trainings
 * that stay dense to ones sparse within the pilot's steps somewhere along
 * its list; its ends are its costliest and cheapest jobs, and pilots at
 * 1/8 and 7/8 held their predictions beyond them: measured on the paper's
 * sharkey-recovery at ratios 0.25-4, the two lowest L1 values, costed from
 * the pilot at L1 = 0.0316, took 1.7-2.8x their estimate). */
#define SHAPE_PILOTS 4
typedef struct {
    pilot runs[SHAPE_PILOTS];
    double pos[SHAPE_PILOTS];  /* their positions in the shape's list */
    size_t n_runs;             /* pilots */
    size_t seen;               /* jobs of this shape costed so far */
} shape_est;

/* The nearest pilot of the shape to pilot h whose codes turned sparse
 * (its last window), or NULL. */
static const sp_pilot_times *sparse_ref(const shape_est *se, size_t h)
{
    for (size_t dist = 1; dist < se->n_runs; dist++) {
        if (h + dist < se->n_runs && pilot_sparse(&se->runs[h + dist].t, PILOT_WINDOWS - 1))
            return &se->runs[h + dist].t;
        if (h >= dist && pilot_sparse(&se->runs[h - dist].t, PILOT_WINDOWS - 1))
            return &se->runs[h - dist].t;
    }
    return NULL;
}

/* One log line of a pilot's timings: its steps, seconds, encoder-GEMM
 * floor and sparse switch, then its seconds a step (ms) and mean L0 in
 * each eighth of its steps. */
static void log_pilot(size_t job_no, const pilot *p)
{
    const sp_pilot_times *t = &p->t;
    printf("pilot job=%zu steps=%ld train_s=%.2f eval_s=%.2f floor_ms=%.3f l0_sparse=%.1f rate_ms=",
           job_no, t->steps, t->train, p->eval, 1e3 * t->floor, t->l0_sparse);
    for (int w = 0; w < PILOT_WINDOWS; w++)
        printf("%s%.3f", w ? "," : "", 1e3 * t->rate[w]);
    printf(" l0=");
    for (int w = 0; w < PILOT_WINDOWS; w++)
        printf("%s%.1f", w ? "," : "", t->l0[w]);
    printf("\n");
}

/* The run configurations of job jb's trainings (tc: n_train). 0 or -1. */
static int job_cfgs(const sp_experiment *ex, const job *jb, sp_run_cfg *tc, sp_err *err)
{
    for (size_t tr = 0; tr < jb->n_train; tr++)
        if (sp_experiment_run_cfg(ex, jb->index[jb->start[tr]], &tc[tr], NULL, err) != 0)
            return -1;
    return 0;
}

/* Runs the pilots of jobs[want[i]] into out[i], i < n, in forked children,
 * as many at a time as the sweep will run jobs (workers / BLAS threads),
 * so that they share the machine as the jobs will. 0 or -1. */
static int run_pilots(const sp_experiment *ex, const job *jobs, const size_t *want, size_t n,
                      int workers, pilot *out, sp_err *err)
{
    size_t next = 0;
    while (next < n) {
        int par = workers / (jobs[want[next]].threads > 0 ? jobs[want[next]].threads : 1);
        par = par < 1 ? 1 : par;
        pid_t pid[64];
        int fd[64];
        size_t at[64], k = 0;
        for (; k < (size_t)par && k < 64 && next < n; k++, next++) {
            int pfd[2];
            if (pipe(pfd) != 0)
                return sp_err_set(err, "pipe: %s", strerror(errno));
            fflush(NULL);
            pid[k] = fork();
            if (pid[k] < 0)
                return sp_err_set(err, "fork: %s", strerror(errno));
            if (pid[k] == 0) {
                close(pfd[0]);
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                const job *jb = &jobs[want[next]];
                sp_run_cfg *tc = malloc(jb->n_train * sizeof *tc);
                pilot pl = {0};
                sp_err e;
                int ok = tc && job_cfgs(ex, jb, tc, &e) == 0 &&
                         run_pilot(tc, jb->n_train, jb->threads, &pl, &e) == 0;
                char buf[sizeof pl + sizeof e.msg];
                size_t len;
                if (ok) {
                    buf[0] = 1;
                    memcpy(buf + 1, &pl, sizeof pl);
                    len = 1 + sizeof pl;
                } else {
                    buf[0] = 0;
                    len = 1 + (size_t)snprintf(buf + 1, sizeof buf - 1, "%s",
                                               tc ? e.msg : "out of memory");
                }
                for (size_t o = 0; o < len;) {
                    ssize_t w = write(pfd[1], buf + o, len - o);
                    if (w <= 0)
                        break;
                    o += (size_t)w;
                }
                _exit(0);
            }
            close(pfd[1]);
            fd[k] = pfd[0];
            at[k] = next;
        }
        int rc = 0;
        for (size_t q = 0; q < k; q++) {
            char buf[sizeof(pilot) + sizeof err->msg + 1];
            size_t len = 0;
            ssize_t r;
            while (len < sizeof buf && (r = read(fd[q], buf + len, sizeof buf - len)) != 0) {
                if (r < 0 && errno == EINTR)
                    continue;
                if (r < 0)
                    break;
                len += (size_t)r;
            }
            close(fd[q]);
            waitpid(pid[q], NULL, 0);
            if (rc)
                continue;
            if (len == 1 + sizeof(pilot) && buf[0] == 1)
                memcpy(&out[at[q]], buf + 1, sizeof(pilot));
            else
                rc = sp_err_set(err, "pilot run: %.*s", (int)(len > 1 ? len - 1 : 0),
                                len > 1 ? buf + 1 : "worker failed");
        }
        if (rc)
            return -1;
    }
    return 0;
}

/* Seconds the sweep's jobs should take: each distinct shape (ensemble
 * key, BLAS threads) is timed by up to four pilot runs, of the jobs at
 * 0, 1/3, 2/3 and 1 of its list (their first steps and their scoring;
 * an ensemble as an ensemble of its size), run side by side as the jobs
 * will be. A pilot
 * predicts a job's training as its own time plus the rest of the steps on
 * the curve fitted to its rates (pilot_rest), and each run's scoring (times
 * the method's factor of eval_cost). Each job takes the predictions of
 * the pilots on either side interpolated linearly by its position in its
 * shape's list (the list follows the sweep's order, e.g. L1 from low
 * to high, whose low end stays dense longer). The schedule of sp_sweep_run
 * (largest first, -j workers) is then simulated. */
static int estimate_sweep(const sp_experiment *ex, job *jobs, size_t n_jobs, int workers,
                          int log, double *total, double *pilot_s, size_t *n_pilots, sp_err *err)
{
    double t0 = sp_now();
    shape_est *pl = calloc(n_jobs ? n_jobs : 1, sizeof *pl);
    size_t *shape = calloc(n_jobs ? n_jobs : 1, sizeof *shape);
    size_t *want = calloc(SHAPE_PILOTS * n_jobs + 1, sizeof *want);
    pilot *got = calloc(SHAPE_PILOTS * n_jobs + 1, sizeof *got);
    double *free_at = calloc((size_t)workers, sizeof *free_at);
    sp_run_cfg *tc = NULL;
    size_t np = 0, nw = 0, max_train = 1;
    int rc = -1;
    if (!pl || !shape || !want || !got || !free_at) {
        sp_err_set(err, "out of memory");
        goto out;
    }
    for (size_t j = 0; j < n_jobs; j++)
        max_train = jobs[j].n_train > max_train ? jobs[j].n_train : max_train;
    if (!(tc = malloc(max_train * sizeof *tc))) {
        sp_err_set(err, "out of memory");
        goto out;
    }
    /* the shapes, and the jobs their pilots copy */
    for (size_t j = 0; j < n_jobs; j++) {
        job *jb = &jobs[j];
        if (job_cfgs(ex, jb, tc, err) != 0)
            goto out;
        char key[17];
        sp_config_ensemble_key(&tc[0], key);
        size_t q;
        for (q = 0; q < np && (strcmp(pl[q].runs[0].key, key) ||
                               pl[q].runs[0].threads != jb->threads ||
                               pl[q].runs[0].n != jb->n_train);
             q++)
            ;
        shape[j] = q;
        if (q < np)
            continue;
        size_t same = 0, k;
        for (k = j; k < n_jobs; k++)
            same += same_shape(ex, &jobs[k], jb, key);
        shape_est *se = &pl[np++];
        se->n_runs = same < SHAPE_PILOTS ? same : SHAPE_PILOTS;
        for (size_t h = 0; h < se->n_runs; h++) {
            size_t at = se->n_runs > 1 ? (h * (same - 1) + (se->n_runs - 1) / 2) / (se->n_runs - 1)
                                       : 0,
                   seen = 0;
            se->pos[h] = (double)at;
            for (k = j; k < n_jobs; k++)
                if (same_shape(ex, &jobs[k], jb, key) && seen++ == at)
                    break;
            want[nw++] = k < n_jobs ? k : j; /* the job this pilot copies */
            memcpy(se->runs[h].key, key, sizeof key);
            se->runs[h].threads = jb->threads;
            se->runs[h].n = jb->n_train;
        }
    }
    if (run_pilots(ex, jobs, want, nw, workers, got, err) != 0)
        goto out;
    for (size_t q = 0, w = 0; q < np; q++)
        for (size_t h = 0; h < pl[q].n_runs; h++, w++) {
            pl[q].runs[h].t = got[w].t;
            pl[q].runs[h].eval = got[w].eval;
            if (log) /* what the estimate is made of, for checking it afterwards */
                log_pilot(want[w] + 1, &got[w]);
        }
    for (size_t j = 0; j < n_jobs; j++) {
        job *jb = &jobs[j];
        if (job_cfgs(ex, jb, tc, err) != 0)
            goto out;
        /* this job's prediction: its neighbouring pilots' interpolated by
         * its position */
        shape_est *se = &pl[shape[j]];
        double wt = 0, x = (double)se->seen++;
        size_t h = 0;
        while (h + 2 < se->n_runs && x > se->pos[h + 1])
            h++;
        size_t h2 = h + 1 < se->n_runs ? h + 1 : h;
        if (se->pos[h2] > se->pos[h]) {
            wt = (x - se->pos[h]) / (se->pos[h2] - se->pos[h]);
            wt = wt < 0 ? 0 : (wt > 1 ? 1 : wt);
        }
        const pilot *a = &se->runs[h], *b = &se->runs[h2];
        double ta = sp_pilot_predict(&a->t, sparse_ref(se, h), tc[0].steps),
               tb = sp_pilot_predict(&b->t, sparse_ref(se, h2), tc[0].steps);
        double eval = (1 - wt) * a->eval + wt * b->eval;
        double t = (1 - wt) * ta + wt * tb + eval * (double)jb->n_train;
        /* runs scored beyond each training's own scoring */
        for (size_t tr = 0; tr < jb->n_train; tr++)
            for (size_t r = jb->start[tr] + 1; r < jb->start[tr + 1]; r++) {
                sp_run_cfg cfg;
                if (sp_experiment_run_cfg(ex, jb->index[r], &cfg, NULL, err) != 0)
                    goto out;
                t += eval * eval_cost(&cfg) /
                     (2.0 * (double)sp_config_latents(&cfg) * cfg.data.d *
                      (double)cfg.eval_samples);
            }
        jb->est = t;
        /* the runner's schedule: the next job on the first free worker */
        size_t w = 0;
        for (size_t k = 0; k < (size_t)workers; k++)
            if (free_at[k] < free_at[w])
                w = k;
        free_at[w] += t;
    }
    *total = 0;
    for (size_t k = 0; k < (size_t)workers; k++)
        *total = free_at[k] > *total ? free_at[k] : *total;
    *pilot_s = sp_now() - t0;
    *n_pilots = np;
    rc = 0;
out:
    free(tc);
    free(free_at);
    free(got);
    free(want);
    free(shape);
    free(pl);
    return rc;
}

int sp_sweep_run(const sp_experiment *ex, const sp_sweep_opts *o, sp_err *err)
{
    char out[1024], db[1100];
    sp_sweep_out_dir(ex, o->out_dir, out, sizeof out);
    sp_err inner;
    if (sp_mkdirs(out, &inner) != 0)
        return sp_err_set(err, "output folder '%s' cannot be used: %s", out, inner.msg);
    snprintf(db, sizeof db, "%s/results.db", out);
    if (access(out, W_OK) != 0)
        return sp_err_set(err, "output folder '%s' is not writable: %s", out, strerror(errno));
    double t_start = sp_now();
    sp_store *st = sp_store_open(db, err);
    if (!st)
        return -1;
    size_t total = sp_experiment_n_runs(ex), n_jobs = 0, n_todo = 0, n_stored = 0;
    double work_total = 0;
    job *jobs = NULL;
    int jobs_max = o->jobs < 1 ? 1 : o->jobs;
    int unthreaded = 0;
    int planned = plan_jobs(ex, st, jobs_max, o->solo, &jobs, &n_jobs, &n_todo, &n_stored,
                            &work_total, &unthreaded, err);
    sp_store_close(st); /* workers open their own connections */
    if (planned != 0)
        return -1;

    size_t n_threaded = 0, n_train = 0, n_ens = 0, n_in_ens = 0;
    int max_threads = 1;
    for (size_t i = 0; i < n_jobs; i++) {
        n_threaded += jobs[i].threads > 1;
        max_threads = jobs[i].threads > max_threads ? jobs[i].threads : max_threads;
        n_train += jobs[i].n_train;
        if (jobs[i].n_train > 1)
            n_ens++, n_in_ens += jobs[i].n_train;
    }
    printf("%s%s%s: %zu runs, %zu already stored, %zu to run", ex->name,
           ex->preset[0] ? " --preset " : "", ex->preset, total, n_stored, n_todo);
    if (n_train != n_todo)
        printf(" (%zu trainings, each scored several ways)", n_train);
    printf(" with %d worker%s -> %s\n", jobs_max, jobs_max == 1 ? "" : "s", out);
    if (n_ens)
        printf("%zu trainings in %zu ensembles (one data stream and encoder GEMM each)\n",
               n_in_ens, n_ens);
    if (n_threaded)
        printf("%zu large training%s with %d BLAS threads each (fewer jobs than workers)\n",
               n_threaded, n_threaded == 1 ? "" : "s", max_threads);
    else if (unthreaded)
        printf("large trainings keep one BLAS thread: OpenBLAS's %s kernels give other bits "
               "with threads, and numbers must not depend on -j\n",
               sp_blas_core());
    fflush(stdout);
    double estimate = NAN;
    /* pilots only for sweeps of more than a few minutes (the FLOP count at
     * 20 GFLOP/s a worker), where they cost a few per cent */
    if (n_jobs > 0 &&
        (o->estimate >= 2 || (o->estimate && work_total / (2e10 * jobs_max) > 300))) {
        double pilot_s = 0;
        size_t n_pilots = 0;
        if (estimate_sweep(ex, jobs, n_jobs, jobs_max, !o->tty, &estimate, &pilot_s, &n_pilots,
                           err) != 0) {
            free_jobs(jobs, n_jobs);
            return -1;
        }
        char est_s[32];
        sp_fmt_duration(estimate + pilot_s, est_s, sizeof est_s);
        printf("estimated total: %s (pilot runs of %zu shapes took %.1f s)\n", est_s, n_pilots,
               pilot_s);
        /* progress and ETA from here on count the estimated seconds of the
         * jobs rather than their FLOPs (dense early steps cost more) */
        work_total = 0;
        for (size_t j = 0; j < n_jobs; j++) {
            jobs[j].cost = jobs[j].est;
            work_total += jobs[j].est;
            if (!o->tty) {
                char where[400];
                describe_point(ex, jobs[j].index[0], where, sizeof where);
                printf("estimate job=%zu runs=%zu first: %s est_s=%.0f\n", j + 1, jobs[j].n,
                       where, jobs[j].est);
            }
        }
        if (o->estimate == 3) { /* --estimate-only */
            fflush(stdout);
            free_jobs(jobs, n_jobs);
            return 0;
        }
        fflush(stdout);
    }

    struct sigaction sa = {0}, old_int, old_term, old_hup;
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGHUP, &sa, &old_hup);
    interrupted = 0;

    sweep_state sw = {.ex = ex, .o = o, .n_todo = n_todo, .work_total = work_total,
                      .t0 = sp_now()};
    double t0 = sw.t0, last_draw = 0, last_log = t0;
    size_t next = 0, running = 0;
    int rc = 0, cores = 0; /* BLAS threads of the running jobs */
    while ((next < n_jobs || running > 0) && !interrupted) {
        while (running < (size_t)jobs_max && next < n_jobs && !interrupted) {
            if (cores + jobs[next].threads > jobs_max && running > 0)
                break;
            if (spawn(ex, &jobs[next], out, err) != 0) {
                rc = -1;
                break;
            }
            cores += jobs[next].threads;
            next++;
            running++;
        }
        if (rc)
            break;
        struct pollfd pfd[64];
        job *pj[64];
        size_t np = 0;
        for (size_t i = 0; i < next && np < 64; i++)
            if (jobs[i].state == 1) {
                pfd[np] = (struct pollfd){.fd = jobs[i].fd, .events = POLLIN};
                pj[np++] = &jobs[i];
            }
        int pr = poll(pfd, np, 200);
        if (pr < 0 && errno != EINTR) {
            rc = sp_err_set(err, "poll: %s", strerror(errno));
            break;
        }
        for (size_t k = 0; k < np && pr > 0; k++) {
            if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            job *jb = pj[k];
            if (!pump(&sw, jb))
                continue;
            close(jb->fd);
            jb->fd = -1;
            int status = 0;
            waitpid(jb->pid, &status, 0);
            running--;
            cores -= jb->threads;
            sw.work_done += jb->cost;
            if (!o->tty && jb->est > 0)
                printf("job %zu took %.0f s, estimated %.0f s\n", (size_t)(jb - jobs) + 1,
                       sp_now() - jb->t_start, jb->est);
            int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && jb->reported == jb->n;
            jb->state = ok ? 2 : 3;
            if (!ok) {
                if (!jb->error[0])
                    snprintf(jb->error, sizeof jb->error, "worker %s (signal %d)",
                             WIFSIGNALED(status) ? "was killed" : "failed",
                             WIFSIGNALED(status) ? WTERMSIG(status) : 0);
                for (size_t r = jb->reported; r < jb->n; r++) {
                    char where[400];
                    describe_point(ex, jb->index[r], where, sizeof where);
                    sw.done++;
                    sw.failed++;
                    if (o->tty)
                        printf("\r\033[K");
                    printf("run %zu/%zu %s key=%s FAILED: %s\n", sw.done, n_todo, where,
                           jb->key[r], jb->error);
                }
            }
            double el = sp_now() - t0;
            double rate = sw.work_done > 0 ? sw.work_done / el : 0;
            double eta = rate > 0 ? (work_total - sw.work_done) / rate : NAN;
            if (!o->tty)
                printf("progress done=%zu/%zu work=%.1f%% elapsed_s=%.0f eta_s=%.0f\n", sw.done,
                       n_todo, 100.0 * sw.work_done / (work_total > 0 ? work_total : 1), el, eta);
            fflush(stdout);
        }
        double now = sp_now();
        double partial = 0;
        for (size_t i = 0; i < next; i++)
            if (jobs[i].state == 1 && jobs[i].steps > 0)
                partial += jobs[i].cost * (double)jobs[i].step / (double)jobs[i].steps;
        double el = now - t0, wd = sw.work_done + partial;
        double eta = wd > 0 && el > 1 ? (work_total - wd) / (wd / el) : NAN;
        char el_s[32], eta_s[32];
        sp_fmt_duration(el, el_s, sizeof el_s);
        sp_fmt_duration(eta, eta_s, sizeof eta_s);
        if (o->tty && now - last_draw > 0.2) {
            printf("\r\033[K[%s] %zu/%zu runs done, %zu running | %.2f%% of work | elapsed %s | "
                   "ETA %s",
                   ex->name, sw.done, n_todo, running,
                   100.0 * wd / (work_total > 0 ? work_total : 1), el_s, eta_s);
            fflush(stdout);
            last_draw = now;
        } else if (!o->tty && now - last_log > 30) {
            printf("progress done=%zu/%zu running=%zu work=%.1f%% elapsed_s=%.0f eta_s=%.0f\n",
                   sw.done, n_todo, running, 100.0 * wd / (work_total > 0 ? work_total : 1), el,
                   eta);
            fflush(stdout);
            last_log = now;
        }
    }
    if (interrupted || rc) {
        for (size_t i = 0; i < next; i++)
            if (jobs[i].state == 1) {
                kill(jobs[i].pid, SIGKILL);
                waitpid(jobs[i].pid, NULL, 0);
                close(jobs[i].fd);
            }
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    if (o->tty)
        printf("\r\033[K");
    char el_s[32];
    sp_fmt_duration(sp_now() - t0, el_s, sizeof el_s);
    size_t failed = sw.failed;
    printf("%s: %zu of %zu runs finished in %s (%zu diverged, %zu failed); %zu stored in %s\n",
           ex->name, sw.done - failed, n_todo, el_s, sw.diverged, failed,
           n_stored + sw.done - failed, db);
    if (!isnan(estimate) && !interrupted && !rc)
        printf("took %.1f s against %.1f s estimated (%.2f x)\n", sp_now() - t_start,
               estimate + (sw.t0 - t_start), (sp_now() - t_start) / (estimate + (sw.t0 - t_start)));
    free_jobs(jobs, n_jobs);
    if (interrupted) {
        printf("interrupted: every finished run is stored; rerun the same command to resume\n");
        return 130;
    }
    if (rc)
        return rc;
    if (o->plot && sp_sweep_plot(ex, out, err) != 0)
        return -1;
    if (failed)
        return sp_err_set(err, "%zu run%s failed (see the messages above)", failed,
                          failed == 1 ? "" : "s");
    return 0;
}
