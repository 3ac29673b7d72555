/* check_runner.c: one run end to end (deterministic, artifacts, diverged
 * runs recorded), and a sweep killed with SIGKILL half way that resumes
 * with only the missing runs. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "superpose/config.h"
#include "superpose/npy.h"
#include "superpose/runner.h"
#include "superpose/store.h"

static void tiny(sp_run_cfg *c)
{
    sp_config_defaults(c);
    c->data.d = 16;
    c->data.n = 32;
    c->batch = 64;
    c->steps = 200;
    c->eval_samples = 512;
    c->penalty.per_latent = 1;
    c->penalty.coef = 0.3;
}

START_TEST(test_run_deterministic_with_artifacts)
{
    char tmp[256], art[512];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    snprintf(art, sizeof art, "%s/art", tmp);
    sp_run_cfg c;
    tiny(&c);
    sp_run_result r1, r2;
    sp_err e;
    ck_assert_int_eq(sp_run_train(&c, art, NULL, NULL, &r1, &e), 0);
    ck_assert_int_eq(sp_run_train(&c, NULL, NULL, NULL, &r2, &e), 0);
    ck_assert_int_eq(r1.diverged, 0);
    /* same configuration and seeds: the same numbers, bit for bit */
    for (size_t i = 0; i < sp_n_run_metrics; i++)
        if (strcmp(sp_run_metric_names[i], "wall_s"))
            ck_assert_msg(memcmp(&r1.metric[i], &r2.metric[i], sizeof(double)) == 0,
                          "%s differs: %.17g vs %.17g", sp_run_metric_names[i], r1.metric[i],
                          r2.metric[i]);
    ck_assert(r1.metric[0] > 0 && r1.metric[0] <= 1);
    c.seed = 1;
    ck_assert_int_eq(sp_run_train(&c, NULL, NULL, NULL, &r2, &e), 0);
    ck_assert(r1.metric[0] != r2.metric[0]);
    /* artifacts: decoder m x d with unit rows, truth n x d */
    char path[600];
    float *data;
    size_t rows, cols;
    snprintf(path, sizeof path, "%s/decoder.npy", art);
    ck_assert_int_eq(sp_npy_read_f32(path, &data, &rows, &cols, &e), 0);
    ck_assert_uint_eq(rows, 32);
    ck_assert_uint_eq(cols, 16);
    double n2 = 0;
    for (size_t j = 0; j < cols; j++)
        n2 += (double)data[j] * data[j];
    ck_assert_double_eq_tol(n2, 1.0, 1e-5);
    free(data);
    snprintf(path, sizeof path, "%s/truth.npy", art);
    ck_assert_int_eq(sp_npy_read_f32(path, &data, &rows, &cols, &e), 0);
    ck_assert_uint_eq(rows, 32);
    free(data);
    snprintf(path, sizeof path, "%s/encoder.npy", art);
    ck_assert_int_eq(access(path, R_OK), 0);
}
END_TEST

/* Training curves: one point per curve_every steps (and at the end), the
 * last MMCS point equal to the run's final MMCS (same decoder), stored and
 * read back through the store. Resampling: with a short window and a
 * strong penalty some latents go quiet and are reinitialised; without
 * resampling none are, and the two runs see the same data stream. */
START_TEST(test_curves_and_resampling)
{
    char tmp[256], db[512];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    snprintf(db, sizeof db, "%s/results.db", tmp);
    sp_run_cfg c;
    tiny(&c);
    c.model.ratio = 4;
    c.penalty.coef = 10;
    c.steps = 500;
    c.curve_every = 200;
    sp_run_result r, r0;
    sp_err e;
    ck_assert_msg(sp_run_train(&c, NULL, NULL, NULL, &r0, &e) == 0, "%s", e.msg);
    ck_assert_double_eq(r0.metric[12], 0); /* resampled */
    c.resample_every = 20;
    ck_assert_msg(sp_run_train(&c, NULL, NULL, NULL, &r, &e) == 0, "%s", e.msg);
    ck_assert_msg(r.metric[12] >= 1, "resampled %g", r.metric[12]);
    ck_assert_uint_eq(r.n_curve, 3);
    ck_assert_int_eq(r.curve_step[0], 200);
    ck_assert_int_eq(r.curve_step[1], 400);
    ck_assert_int_eq(r.curve_step[2], 500);
    ck_assert_double_eq(r.curve[SP_CURVE_MMCS][2], r.metric[0]);
    for (size_t k = 0; k < 3; k++) {
        ck_assert(r.curve[SP_CURVE_LOSS][k] > 0 && isfinite(r.curve[SP_CURVE_LOSS][k]));
        ck_assert(r.curve[SP_CURVE_DEAD][k] >= 0 && r.curve[SP_CURVE_DEAD][k] <= 128);
        ck_assert(r.curve[SP_CURVE_L0][k] >= 0);
    }
    ck_assert_int_eq(sp_run_store(db, "t", &c, &r, &e), 0);
    sp_store *st = sp_store_open(db, &e);
    ck_assert_ptr_nonnull(st);
    char key[17];
    sp_config_key(&c, key);
    long *step;
    double *val;
    size_t n;
    ck_assert_int_eq(sp_store_curve(st, key, "mmcs", &step, &val, &n, &e), 0);
    ck_assert_uint_eq(n, 3);
    for (size_t k = 0; k < n; k++) {
        ck_assert_int_eq(step[k], r.curve_step[k]);
        ck_assert_double_eq(val[k], r.curve[SP_CURVE_MMCS][k]);
    }
    free(step);
    free(val);
    ck_assert_int_eq(sp_store_curve(st, key, "nope", &step, &val, &n, &e), 0);
    ck_assert_uint_eq(n, 0);
    /* rewriting the run replaces its curves */
    ck_assert_int_eq(sp_run_store(db, "t", &c, &r, &e), 0);
    ck_assert_int_eq(sp_store_curve(st, key, "dead", &step, &val, &n, &e), 0);
    ck_assert_uint_eq(n, 3);
    free(step);
    free(val);
    sp_store_close(st);
    sp_run_result_free(&r);
    sp_run_result_free(&r0);
}
END_TEST

START_TEST(test_diverged_is_recorded)
{
    char tmp[256], db[512];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    snprintf(db, sizeof db, "%s/results.db", tmp);
    sp_run_cfg c;
    tiny(&c);
    c.optim.lr = 1e30; /* Adam steps of 1e30: squares overflow to Inf */
    sp_run_result r;
    sp_err e;
    ck_assert_int_eq(sp_run_train(&c, NULL, NULL, NULL, &r, &e), 0);
    ck_assert_int_eq(r.diverged, 1);
    ck_assert(r.metric[7] < (double)c.steps); /* steps_done */
    ck_assert_int_eq(sp_run_store(db, "t", &c, &r, &e), 0);
    sp_store *st = sp_store_open(db, &e);
    sp_run_list l = {0};
    ck_assert_int_eq(sp_store_list(st, &l, &e), 0);
    ck_assert_uint_eq(l.n, 1);
    ck_assert_str_eq(l.runs[0].status, "diverged");
    ck_assert(isnan(sp_run_metric(&l.runs[0], "mmcs")));
    sp_run_list_free(&l);
    sp_store_close(st);
}
END_TEST

static int count_runs(const char *db)
{
    sp_err e;
    sp_store *st = sp_store_open(db, &e);
    if (!st)
        return -1;
    sp_run_list l = {0};
    int n = sp_store_list(st, &l, &e) == 0 ? (int)l.n : -1;
    sp_run_list_free(&l);
    sp_store_close(st);
    return n;
}

/* `superpose run` killed with SIGKILL after its second finished run, then
 * rerun: it runs only the missing runs, and the figures are complete. */
START_TEST(test_sweep_kill_and_resume)
{
    char tmp[256], ini[512], out[512], db[600], cmd[2048];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    snprintf(ini, sizeof ini, "%s/tiny.ini", tmp);
    snprintf(out, sizeof out, "%s/out", tmp);
    snprintf(db, sizeof db, "%s/results.db", out);
    FILE *f = fopen(ini, "w");
    fprintf(f, "[experiment]\nname = tiny\n[data]\nd = 16\nn = 32\n"
               "[train]\nbatch = 64\nsteps = 1500\ncoef_scale = dict\n[metrics]\neval_samples = 256\n"
               "[sweep]\ntrain.coef = 0.1, 1, 10\nmodel.ratio = 0.5, 1\n"
               "[figure.mmcs]\nx = model.ratio\ny = train.coef\nmetric = mmcs\n"
               "[figure.next]\nx = model.ratio\ny = train.coef\nmetric = mmcs_next\n");
    fclose(f);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        close(p[0]);
        execl(SP_SOURCE_DIR "/build/superpose", "superpose", "run", ini, "--out", out, "--log",
              "-j", "1", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    FILE *rd = fdopen(p[0], "r");
    char line[1024];
    int finished = 0;
    while (fgets(line, sizeof line, rd))
        if (!strncmp(line, "run ", 4) && ++finished == 2)
            break;
    ck_assert_int_eq(finished, 2);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    fclose(rd);
    ck_assert(WIFSIGNALED(status));
    int stored = count_runs(db);
    ck_assert_msg(stored >= 2 && stored < 6, "%d runs stored after the kill", stored);
    /* the killed worker cannot finish behind our back (PR_SET_PDEATHSIG) */
    nanosleep(&(struct timespec){0, 300000000L}, NULL);
    ck_assert_int_eq(count_runs(db), stored);

    snprintf(cmd, sizeof cmd, "'%s' run '%s' --out '%s' --log -j 2 2>&1", SP_SOURCE_DIR "/build/superpose",
             ini, out);
    FILE *pp = popen(cmd, "r");
    char expect[64];
    snprintf(expect, sizeof expect, "6 runs, %d already stored, %d to run", stored, 6 - stored);
    int saw = 0, ran = 0;
    while (fgets(line, sizeof line, pp)) {
        saw |= strstr(line, expect) != NULL;
        ran += !strncmp(line, "run ", 4);
    }
    ck_assert_int_eq(pclose(pp), 0);
    ck_assert_msg(saw, "resume did not report '%s'", expect);
    ck_assert_int_eq(ran, 6 - stored);
    ck_assert_int_eq(count_runs(db), 6);
    const char *figs[] = {"mmcs.png", "mmcs.svg", "mmcs.dat", "mmcs.gp", "next.png"};
    for (size_t i = 0; i < 5; i++) {
        char path[700];
        struct stat st;
        snprintf(path, sizeof path, "%s/figures/%s", out, figs[i]);
        ck_assert_msg(stat(path, &st) == 0 && st.st_size > 0, "missing %s", path);
    }
    /* the data file holds every cell: no "NaN" in the mmcs figure */
    char path[700];
    snprintf(path, sizeof path, "%s/figures/mmcs.dat", out);
    FILE *df = fopen(path, "r");
    int nan_cells = 0;
    while (fgets(line, sizeof line, df))
        if (line[0] != '#')
            nan_cells += strstr(line, "nan") != NULL || strstr(line, "NaN") != NULL;
    fclose(df);
    ck_assert_int_eq(nan_cells, 0);
    /* a third run has nothing to do */
    pp = popen(cmd, "r");
    saw = 0;
    while (fgets(line, sizeof line, pp))
        saw |= strstr(line, "6 runs, 6 already stored, 0 to run") != NULL;
    ck_assert_int_eq(pclose(pp), 0);
    ck_assert(saw);
}
END_TEST

/* train.learner = none on a tree: the truth statistics a run records.
 * Hedging toy (REFERENCE.md 1.3): parent p = 0.25, child 0.2 given the
 * parent, orthonormal directions: true L0 = 0.25 + 0.05 = 0.3, max |cos| 0,
 * rates.npy = (expected 0.25, 0.05; measured), and in cofire.npy the child
 * never fires without its parent: P(child and parent) = P(child). */
START_TEST(test_learner_none_tree)
{
    char tmp[256], art[512], f[600];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    snprintf(art, sizeof art, "%s/art", tmp);
    sp_run_cfg c;
    sp_config_defaults(&c);
    strcpy(c.learner, "none");
    strcpy(c.data.generator, "tree");
    strcpy(c.data.geometry, "orthonormal");
    c.data.d = 10;
    c.data.n = 2;
    c.data.n_nodes = 2;
    memset(c.data.nodes, 0, 2 * sizeof c.data.nodes[0]);
    strcpy(c.data.nodes[0].name, "parent");
    c.data.nodes[0].p = 0.25;
    strcpy(c.data.nodes[1].name, "child");
    strcpy(c.data.nodes[1].parent, "parent");
    c.data.nodes[1].p = 0.2;
    for (int k = 0; k < 2; k++) {
        c.data.nodes[k].readout = 1;
        c.data.nodes[k].count = 1;
    }
    c.eval_samples = 40000;
    sp_run_result r;
    sp_err e = {{0}};
    ck_assert_msg(sp_run_train(&c, art, NULL, NULL, &r, &e) == 0, "%s", e.msg);
    double l0 = r.metric[9], maxcos = r.metric[10];
    /* Var(L0) = Var(parent) + Var(child) + 2 Cov = .1875 + .0475 + 2 (.05 - .0125) */
    ck_assert_msg(fabs(l0 - 0.3) < 5 * sqrt(0.31 / 40000), "true L0 %g", l0);
    ck_assert_msg(maxcos < 1e-6, "max |cos| %g", maxcos);
    ck_assert(isnan(r.metric[0])); /* no SAE: no MMCS */
    float *R, *C;
    size_t rr, rc, cr, cc;
    snprintf(f, sizeof f, "%s/rates.npy", art);
    ck_assert_int_eq(sp_npy_read_f32(f, &R, &rr, &rc, &e), 0);
    snprintf(f, sizeof f, "%s/cofire.npy", art);
    ck_assert_int_eq(sp_npy_read_f32(f, &C, &cr, &cc, &e), 0);
    ck_assert_uint_eq(rr, 2);
    ck_assert_uint_eq(rc, 2);
    ck_assert_float_eq(R[0], 0.25f);
    ck_assert_float_eq_tol(R[1], 0.05f, 1e-7);
    ck_assert_msg(fabs(R[2] - 0.25) < 5 * sqrt(0.1875 / 40000), "parent rate %g", R[2]);
    ck_assert_msg(fabs(R[3] - 0.05) < 5 * sqrt(0.0475 / 40000), "child rate %g", R[3]);
    ck_assert_float_eq(C[1 * 2 + 0], C[1 * 2 + 1]); /* P(child, parent) = P(child) */
    ck_assert_float_eq(C[0], R[2]);
    free(R);
    free(C);
}
END_TEST

/* model.sparse: the same quick run with the sparse kernels forced and with
 * the GEMMs forced ends with MMCS and MSE within 1e-4 (issue 7: every
 * speed-up keeps results equal). The two runs differ only by float32
 * rounding in each step, which training does not amplify over 200 steps
 * at this size (the learned atoms are the same). */
START_TEST(test_run_sparse_equals_dense)
{
    const char *kv[3][4][2] = {
        {{"model.ratio", "1"}},
        {{"model.ratio", "4"}, {"model.pre_bias", "true"}},
        {{"model.arch", "topk"}, {"train.penalty", "none"}, {"model.k", "3"},
         {"model.dead_steps", "20"}},
    };
    for (int q = 0; q < 3; q++) {
        sp_run_result r[2];
        for (int mode = 0; mode < 2; mode++) {
            sp_run_cfg c;
            tiny(&c);
            sp_err e;
            for (int i = 0; i < 4 && kv[q][i][0]; i++)
                ck_assert_int_eq(sp_config_set(&c, sp_config_find(kv[q][i][0]), kv[q][i][1], &e), 0);
            ck_assert_int_eq(sp_config_set(&c, sp_config_find("model.sparse"),
                                           mode ? "sparse" : "dense", &e), 0);
            ck_assert_msg(sp_run_train(&c, NULL, NULL, NULL, &r[mode], &e) == 0, "%s", e.msg);
            ck_assert_int_eq(r[mode].diverged, 0);
        }
        const char *names[] = {"mmcs", "mse", "l0"};
        for (int k = 0; k < 3; k++)
            for (size_t i = 0; i < sp_n_run_metrics; i++)
                if (!strcmp(sp_run_metric_names[i], names[k])) {
                    double a = r[0].metric[i], b = r[1].metric[i];
                    double tol = k < 2 ? 1e-4 : 1e-2 * fmax(1.0, fabs(a));
                    ck_assert_msg(fabs(a - b) <= tol, "case %d: %s dense %.9g sparse %.9g", q,
                                  names[k], a, b);
                }
        sp_run_result_free(&r[0]);
        sp_run_result_free(&r[1]);
    }
}
END_TEST

/* sp_pilot_rest against closed forms. Window rates are the exact means of
 * r(s) = f + c (s / P)^-a over each eighth of the pilot's P steps; the
 * rest of a 20,000-step training after P = 2000 is then
 *   f (S - P) + c P ((S / P)^(1 - a) - 1) / (1 - a)   (c P ln(S / P) at a = 1),
 * by hand: f = 2 ms, c = 8 ms: 36 + 36.841 = 72.841 s at a = 1, 36 +
 * 69.193 = 105.193 s at a = 0.5. The fit takes the windows' midpoints
 * for their means, within 2% here. Flat rates, and rates that rise (a
 * training still dense), hold the second half's mean. */
static void power_windows(double f, double c, double a, long P, double *rate)
{
    for (int w = 0; w < 8; w++) {
        double u0 = w / 8.0, u1 = (w + 1) / 8.0, mean;
        if (w == 0) /* not used by the fit: any finite value */
            mean = f + c * 8;
        else if (fabs(a - 1) < 1e-12)
            mean = f + c * log(u1 / u0) / (u1 - u0);
        else
            mean = f + c * (pow(u1, 1 - a) - pow(u0, 1 - a)) / ((1 - a) * (u1 - u0));
        rate[w] = mean;
    }
    (void)P;
}

START_TEST(test_pilot_rest)
{
    double rate[8];
    power_windows(0.002, 0.008, 1.0, 2000, rate);
    ck_assert_double_eq_tol(sp_pilot_rest(rate, 8, 2000, 0.002, 20000), 72.841, 72.841 * 0.02);
    power_windows(0.002, 0.008, 0.5, 2000, rate);
    ck_assert_double_eq_tol(sp_pilot_rest(rate, 8, 2000, 0.002, 20000), 105.193, 105.193 * 0.02);
    /* flat: 10 ms a step for 18,000 steps */
    for (int w = 0; w < 8; w++)
        rate[w] = 0.010;
    ck_assert_double_eq_tol(sp_pilot_rest(rate, 8, 2000, 0.002, 20000), 180.0, 1e-9);
    /* rising (second half 10, 11, 12, 13 ms): their mean, 11.5 ms */
    for (int w = 0; w < 8; w++)
        rate[w] = 0.010 + 0.001 * (w - 4);
    ck_assert_double_eq_tol(sp_pilot_rest(rate, 8, 2000, 0.002, 20000), 18000 * 0.0115, 1e-9);
    /* below the floor: no fit, the mean */
    for (int w = 0; w < 8; w++)
        rate[w] = 0.001 * (8 - w);
    ck_assert_double_eq_tol(sp_pilot_rest(rate, 8, 2000, 0.005, 20000), 18000 * 0.0025, 1e-9);
    /* nothing left */
    ck_assert_double_eq(sp_pilot_rest(rate, 8, 2000, 0.002, 2000), 0);
}
END_TEST

/* sp_pilot_predict by hand, S = 20,000, both pilots P = 2000 steps
 * (windows of 250, second-half midpoints x = 1125, 1375, 1625, 1875):
 * p dense at 80 ms a step, 100 s for its 2000 steps, L0 = 1400 - 0.2 x
 * (1000 at P), switch at 400: the line crosses at 2000 + 600 / 0.2 =
 * 5000. ref: 80 ms a step in its first two windows (L0 900, 500), then
 * sparse (L0 100) at 20 ms, flat, so its own crossing is at step 500.
 * Prediction: 100 + 0.08 x 3000 + ref from 500 to 500 + 15000 steps =
 * 100 + 240 + 0.02 x 1500 + 0.02 x 13500 = 640 s. Without ref, with L0
 * falling ten times slower (the line crosses at 32,000 > 4 P), or with L0
 * not tracked: dense throughout, 100 + 0.08 x 18000 = 1540 s. */
START_TEST(test_pilot_predict)
{
    sp_pilot_times p = {.steps = 2000, .train = 100, .l0_sparse = 400, .floor = 0.01};
    sp_pilot_times ref = {.steps = 2000, .train = 60, .l0_sparse = 400, .floor = 0.01};
    for (int w = 0; w < SP_PILOT_WINDOWS; w++) {
        double x = (w + 0.5) * 250;
        p.rate[w] = 0.08;
        p.l0[w] = 1400 - 0.2 * x;
        ref.rate[w] = w < 2 ? 0.08 : 0.02;
        ref.l0[w] = w == 0 ? 900 : w == 1 ? 500 : 100;
    }
    /* crossing at 5000 (L0 1000 at P, falling 0.2 a step to 400): 100 + 0.08
     * x 3000 dense, then ref from its first sparse window (500): 0.02 x 15000;
     * 640 s, and staying dense 1540 s: costed halfway */
    ck_assert_double_eq_tol(sp_pilot_predict(&p, &ref, 20000), 0.5 * (640 + 1540), 1e-9);
    ck_assert_double_eq_tol(sp_pilot_predict(&p, NULL, 20000), 1540, 1e-9);
    /* ref itself is sparse at its end: its own time plus its flat rest */
    ck_assert_double_eq_tol(sp_pilot_predict(&ref, &p, 20000), 60 + 0.02 * 18000, 1e-9);
    for (int w = 0; w < SP_PILOT_WINDOWS; w++)
        p.l0[w] = 1040 - 0.02 * ((w + 0.5) * 250);
    ck_assert_double_eq_tol(sp_pilot_predict(&p, &ref, 20000), 1540, 1e-9);
    for (int w = 0; w < SP_PILOT_WINDOWS; w++)
        p.l0[w] = NAN;
    ck_assert_double_eq_tol(sp_pilot_predict(&p, &ref, 20000), 1540, 1e-9);
}
END_TEST

Suite *make_runner_suite(void)
{
    Suite *s = suite_create("runner");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_run_deterministic_with_artifacts);
    tcase_add_test(tc, test_run_sparse_equals_dense);
    tcase_add_test(tc, test_pilot_rest);
    tcase_add_test(tc, test_pilot_predict);
    tcase_add_test(tc, test_diverged_is_recorded);
    tcase_add_test(tc, test_curves_and_resampling);
    tcase_add_test(tc, test_learner_none_tree);
    tcase_add_test(tc, test_sweep_kill_and_resume);
    suite_add_tcase(s, tc);
    return s;
}
