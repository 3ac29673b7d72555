/* check_ensemble.c: SAEs trained as one ensemble (ensemble.c, runner.c)
 * get the numbers they get alone; sweeps form ensembles by themselves. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

#include "superpose/config.h"
#include "superpose/ensemble.h"
#include "superpose/runner.h"
#include "superpose/store.h"

static void small(sp_run_cfg *c)
{
    sp_config_defaults(c);
    c->data.d = 16;
    c->data.n = 32;
    c->data.k = 3;
    c->batch = 64;
    c->steps = 400;
    c->eval_samples = 512;
    c->penalty.per_latent = 1;
    c->solve.fit_samples = 256;
}

/* Trains cfg[0..n) as one ensemble (one run each) and each alone; every
 * metric but wall_s must agree within tol (relative, or absolute below
 * 1e-3), and the curves too. Returns the largest difference seen.
 * Without a pre-encoder bias the numbers are the same bit for bit when
 * the BLAS kernel computes each entry of a column block of x W^T as it
 * computes it in the whole product (OpenBLAS on this machine: the worst
 * difference printed is 0); another kernel (e.g. under valgrind) may
 * round a slice differently, hence the tolerance of the issue, 1e-4. */
static double compare_alone(sp_run_cfg *cfg, size_t n, double tol)
{
    const sp_run_cfg *ptr[8];
    size_t start[9];
    sp_run_result res[8], one;
    sp_err e;
    for (size_t t = 0; t < n; t++)
        ptr[t] = &cfg[t], start[t] = t;
    start[n] = n;
    ck_assert_msg(sp_run_train_ensemble(ptr, start, n, NULL, NULL, NULL, res, &e) == 0, "%s",
                  e.msg);
    double worst = 0;
    for (size_t t = 0; t < n; t++) {
        ck_assert_msg(sp_run_train(&cfg[t], NULL, NULL, NULL, &one, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(res[t].diverged, one.diverged);
        for (size_t q = 0; q < sp_n_run_metrics; q++) {
            if (!strcmp(sp_run_metric_names[q], "wall_s"))
                continue;
            double a = res[t].metric[q], b = one.metric[q];
            if (isnan(a) && isnan(b))
                continue;
            double rel = fabs(a - b) / (fabs(b) > 1e-3 ? fabs(b) : 1e-3);
            worst = rel > worst ? rel : worst;
            ck_assert_msg(rel <= tol, "member %zu, %s: %.17g in the ensemble, %.17g alone", t,
                          sp_run_metric_names[q], a, b);
        }
        ck_assert_uint_eq(res[t].n_curve, one.n_curve);
        for (size_t k = 0; k < one.n_curve; k++)
            for (int c = 0; c < SP_N_CURVES; c++) {
                double a = res[t].curve[c][k], b = one.curve[c][k];
                ck_assert_msg(fabs(a - b) <= tol * (fabs(b) > 1e-3 ? fabs(b) : 1e-3),
                              "member %zu, curve %s point %zu: %.17g vs %.17g", t,
                              sp_curve_names[c], k, a, b);
            }
        sp_run_result_free(&one);
        sp_run_result_free(&res[t]);
    }
    return worst;
}

static void report(const char *what, double worst)
{
    fprintf(stderr, "ensemble %s: largest difference from the runs alone %.3g\n", what, worst);
}

/* An L1 sweep at one width (relu; the Sharkey setting, no pre-encoder
 * bias) as an ensemble equals each model alone, including
 * the training curves, resampling and [solve] scoring; the members train
 * on the sparse kernels once their codes are sparse. */
START_TEST(test_l1_ensemble_equals_alone)
{
    sp_run_cfg cfg[4];
    const char *coef[] = {"0.1", "0.5", "2", "8"};
    for (int t = 0; t < 4; t++) {
        small(&cfg[t]);
        sp_test_set(&cfg[t], "train.coef", coef[t]);
        sp_test_set(&cfg[t], "metrics.curve_every", "100");
        sp_test_set(&cfg[t], "train.resample_every", "150");
        sp_test_set(&cfg[t], "train.resample_samples", "256");
    }
    sp_test_set(&cfg[2], "solve.method", "omp");
    report("L1 sweep", compare_alone(cfg, 4, 1e-4));
}
END_TEST

/* Members may differ in penalty, optimizer and k: a TopK k sweep and a
 * JumpReLU pair with other learning rates equal their runs alone. */
START_TEST(test_topk_and_jumprelu_ensembles)
{
    sp_run_cfg cfg[3];
    const char *k[] = {"2", "4", "8"};
    for (int t = 0; t < 3; t++) {
        small(&cfg[t]);
        sp_test_set(&cfg[t], "model.arch", "topk");
        sp_test_set(&cfg[t], "train.penalty", "none");
        sp_test_set(&cfg[t], "model.k", k[t]);
    }
    report("TopK k sweep", compare_alone(cfg, 3, 1e-4));
    for (int t = 0; t < 2; t++) {
        small(&cfg[t]);
        sp_test_set(&cfg[t], "model.arch", "jumprelu");
        sp_test_set(&cfg[t], "train.penalty", "l0");
        sp_test_set(&cfg[t], "train.lr", t ? "0.003" : "0.001");
    }
    report("JumpReLU lr pair", compare_alone(cfg, 2, 1e-4));
}
END_TEST

/* With a pre-encoder bias the ensemble computes (x - b_d) W_e^T as
 * x W_e^T - W_e b_d: rounding differs, and the end of a quick run must
 * still agree within 1e-4 (MMCS and MSE, and every other metric). */
START_TEST(test_pre_bias_within_tolerance)
{
    sp_run_cfg cfg[3];
    const char *coef[] = {"0.2", "1", "4"};
    for (int t = 0; t < 3; t++) {
        small(&cfg[t]);
        sp_test_set(&cfg[t], "model.pre_bias", "true");
        sp_test_set(&cfg[t], "train.coef", coef[t]);
    }
    report("with a pre-encoder bias", compare_alone(cfg, 3, 1e-4));
}
END_TEST

/* A member that diverges stops (recorded as diverged, as alone) and the
 * others go on with the numbers they have alone. */
START_TEST(test_diverged_member)
{
    sp_run_cfg cfg[3];
    for (int t = 0; t < 3; t++) {
        small(&cfg[t]);
        sp_test_set(&cfg[t], "train.coef", t == 2 ? "3" : "0.3");
    }
    sp_test_set(&cfg[1], "train.lr", "1e30");
    sp_run_result one;
    sp_err e;
    ck_assert_msg(sp_run_train(&cfg[1], NULL, NULL, NULL, &one, &e) == 0, "%s", e.msg);
    ck_assert_msg(one.diverged, "lr 1e30 should diverge");
    sp_run_result_free(&one);
    report("with a diverged member", compare_alone(cfg, 3, 1e-4));
}
END_TEST

/* Wrong members are refused: another shape, a tied SAE, runs that do not
 * share their stream. */
START_TEST(test_refused)
{
    sp_run_cfg a, b;
    small(&a);
    small(&b);
    sp_test_set(&b, "model.ratio", "2");
    const sp_run_cfg *ptr[2] = {&a, &b};
    size_t start[3] = {0, 1, 2};
    sp_run_result res[2];
    sp_err e;
    ck_assert_int_eq(sp_run_train_ensemble(ptr, start, 2, NULL, NULL, NULL, res, &e), -1);
    ck_assert_msg(strstr(e.msg, "share their data stream"), "%s", e.msg);
    small(&b);
    sp_test_set(&b, "train.seed", "7");
    ck_assert_int_eq(sp_run_train_ensemble(ptr, start, 2, NULL, NULL, NULL, res, &e), -1);
    ck_assert(!sp_config_ensemble_ok(&(sp_run_cfg){0}) || 1);
    small(&b);
    sp_test_set(&b, "model.tied", "true");
    ck_assert_int_eq(sp_config_ensemble_ok(&b), 0);
    small(&b);
    sp_test_set(&b, "data.dataset", "4096");
    ck_assert_int_eq(sp_config_ensemble_ok(&b), 0);
    small(&b);
    ck_assert_int_eq(sp_config_ensemble_ok(&b), 1);
    /* learners of another shape cannot share one GEMM */
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    sp_learner *L[2];
    L[0] = sp_learner_alloc(&a.model, &a.penalty, 16, 32, 64, 10, r, &e);
    L[1] = sp_learner_alloc(&a.model, &a.penalty, 16, 48, 64, 10, r, &e);
    ck_assert(L[0] && L[1]);
    sp_ensemble *E = sp_ensemble_alloc(L, 2, &e);
    ck_assert_ptr_null(E);
    ck_assert_msg(strstr(e.msg, "another shape"), "%s", e.msg);
    sp_learner_free(L[0]);
    sp_learner_free(L[1]);
    gsl_rng_free(r);
}
END_TEST

/* A sweep of 2 widths x 3 L1 values x 2 solve methods forms 2 ensembles
 * of 3 trainings by itself; every run is stored with its artifacts, with
 * the metrics of the same sweep run --solo (within 1e-4; see above); a rerun has nothing
 * to do. */
START_TEST(test_sweep_forms_ensembles)
{
    char tmp[256], ini[512], out[2][512], cmd[2048];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    snprintf(ini, sizeof ini, "%s/e.ini", tmp);
    FILE *f = fopen(ini, "w");
    fprintf(f, "[experiment]\nname = e\n[data]\nd = 16\nn = 32\nk = 3\n"
               "[train]\nbatch = 64\nsteps = 300\ncoef_scale = dict\n"
               "[solve]\nfit_samples = 256\n[metrics]\neval_samples = 256\n"
               "[sweep]\nmodel.ratio = 0.5, 1\ntrain.coef = 0.2, 0.8, 3\n"
               "solve.method = encoder, omp\n");
    fclose(f);
    for (int solo = 0; solo < 2; solo++) {
        snprintf(out[solo], sizeof out[solo], "%s/out%d", tmp, solo);
        /* one worker: no ensemble is split to balance the workers */
        snprintf(cmd, sizeof cmd, "'%s' run '%s' --out '%s' --log %s 2>&1",
                 SP_SOURCE_DIR "/build/superpose", ini, out[solo], solo ? "-j 2 --solo" : "-j 1");
        ck_assert_int_eq(sp_test_count_lines(cmd, "6 trainings in 2 ensembles", NULL, 0), (solo ? 0 : 1));
    }
    sp_err e;
    sp_run_list runs[2];
    for (int solo = 0; solo < 2; solo++) {
        char db[600];
        snprintf(db, sizeof db, "%s/results.db", out[solo]);
        sp_store *st = sp_store_open(db, &e);
        ck_assert_ptr_nonnull(st);
        memset(&runs[solo], 0, sizeof runs[solo]);
        ck_assert_int_eq(sp_store_list(st, &runs[solo], &e), 0);
        sp_store_close(st);
        ck_assert_uint_eq(runs[solo].n, 12);
    }
    size_t compared = 0;
    for (size_t r = 0; r < runs[0].n; r++) {
        const sp_run_record *a = &runs[0].runs[r], *b = &runs[1].runs[r];
        char path[900];
        snprintf(path, sizeof path, "%s/artifacts/%s/decoder.npy", out[0], a->key);
        ck_assert_msg(access(path, R_OK) == 0, "no artifacts for %s", a->key);
        ck_assert_str_eq(a->key, b->key); /* both lists are ordered by key */
        ck_assert_uint_eq(a->n_metrics, b->n_metrics);
        for (size_t i = 0; i < a->n_metrics; i++) {
            ck_assert_str_eq(a->metrics[i].name, b->metrics[i].name);
            if (!strcmp(a->metrics[i].name, "wall_s"))
                continue;
            double x = a->metrics[i].value, y = b->metrics[i].value;
            ck_assert_msg((isnan(x) && isnan(y)) || fabs(x - y) <= 1e-4 * (fabs(y) > 1e-3 ? fabs(y) : 1e-3),
                          "%s %s: %.17g vs %.17g solo", a->key,
                          a->metrics[i].name, x, y);
        }
        compared++;
    }
    ck_assert_uint_eq(compared, 12);
    sp_run_list_free(&runs[0]);
    sp_run_list_free(&runs[1]);
    snprintf(cmd, sizeof cmd, "'%s' run '%s' --out '%s' --log -j 2 2>&1",
             SP_SOURCE_DIR "/build/superpose", ini, out[0]);
    ck_assert_int_eq(sp_test_count_lines(cmd, "12 runs, 12 already stored, 0 to run", NULL, 0), 1);
}
END_TEST

Suite *make_ensemble_suite(void)
{
    Suite *s = suite_create("ensemble");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_l1_ensemble_equals_alone);
    tcase_add_test(tc, test_topk_and_jumprelu_ensembles);
    tcase_add_test(tc, test_pre_bias_within_tolerance);
    tcase_add_test(tc, test_diverged_member);
    tcase_add_test(tc, test_refused);
    tcase_add_test(tc, test_sweep_forms_ensembles);
    suite_add_tcase(s, tc);
    return s;
}
