/* check_ito.c: scoring trained decoders with other codes (ito.c), runs that
 * share one training, and `superpose encode`. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"
#include "superpose/blas.h"
#include <gsl/gsl_rng.h>

#include "superpose/config.h"
#include "superpose/gen.h"
#include "superpose/sae.h"
#include "superpose/experiment.h"
#include "superpose/npy.h"
#include "superpose/runner.h"
#include "superpose/store.h"

/* Index of a metric by name. */
static size_t mi(const char *name)
{
    for (size_t i = 0; i < sp_n_run_metrics; i++)
        if (!strcmp(sp_run_metric_names[i], name))
            return i;
    ck_abort_msg("no metric %s", name);
    return 0;
}

static void small(sp_run_cfg *c)
{
    sp_config_defaults(c);
    c->data.d = 24;
    c->data.n = 48;
    c->data.k = 3;
    c->batch = 128;
    c->steps = 2000;
    c->eval_samples = 1024;
    c->penalty.per_latent = 1;
    c->penalty.coef = 1;
    c->solve.fit_samples = 1024;
}

/* One training scored eight ways in one pass gives, for each way, exactly
 * the numbers of a run scored that way alone (same seeds: bit for bit).
 * Then what follows from the definitions, independently of the solvers:
 *   - refit minimises the squared error on the encoder's support, where
 *     the encoder's own codes are feasible: MSE(refit) <= MSE(encoder);
 *   - the pursuits with matched L0 use at most the encoder's count on each
 *     sample, so L0 <= the encoder's;
 *   - FISTA on the SAE's own L1 objective (match = coef) is the optimum
 *     of that objective: the amortisation gap is >= 0;
 *   - a threshold above every code leaves L0 = 0, recall 0, and the MSE of
 *     the decoder bias alone, which is the same for every method. */
START_TEST(test_multi_equals_single_and_orders)
{
    const char *meth[] = {"encoder", "refit", "scale", "scale_latent", "gp", "omp", "mp",
                          "fista"};
    enum { NM = 8 };
    sp_run_cfg cfgs[NM + 2];
    const sp_run_cfg *ptr[NM + 2];
    for (int i = 0; i < NM + 2; i++) {
        small(&cfgs[i]);
        sp_test_set(&cfgs[i], "solve.method", i < NM ? meth[i] : i == NM ? "fista" : "gp");
        ptr[i] = &cfgs[i];
    }
    sp_test_set(&cfgs[NM], "solve.match", "coef");
    sp_test_set(&cfgs[NM + 1], "solve.threshold", "1e9");
    sp_run_result res[NM + 2], one;
    sp_err e;
    ck_assert_msg(sp_run_train_multi(ptr, NM + 2, NULL, NULL, NULL, res, &e) == 0, "%s", e.msg);
    for (int i = 0; i < NM + 2; i += 3) {
        ck_assert_msg(sp_run_train(&cfgs[i], NULL, NULL, NULL, &one, &e) == 0, "%s", e.msg);
        for (size_t q = 0; q < sp_n_run_metrics; q++) {
            if (!strcmp(sp_run_metric_names[q], "wall_s"))
                continue;
            double a = res[i].metric[q], b = one.metric[q];
            ck_assert_msg((isnan(a) && isnan(b)) || a == b, "%s, %s: %.17g grouped, %.17g alone",
                          cfgs[i].solve.method, sp_run_metric_names[q], a, b);
        }
        sp_run_result_free(&one);
    }
    size_t MSE = mi("mse"), L0 = mi("l0"), GAP = mi("gap"), REC = mi("recall");
    const double *enc = res[0].metric;
    ck_assert(enc[L0] > 1 && enc[mi("f1")] > 0.3);
    ck_assert_double_eq(enc[GAP], 0);
    ck_assert_msg(res[1].metric[MSE] <= enc[MSE] * (1 + 1e-5), "refit %g > encoder %g",
                  res[1].metric[MSE], enc[MSE]);
    ck_assert(res[1].metric[GAP] >= -1e-7 * enc[MSE]);
    for (int i = 4; i <= 6; i++) {
        ck_assert_msg(res[i].metric[L0] <= enc[L0] + 1e-12, "%s L0 %g > %g", meth[i],
                      res[i].metric[L0], enc[L0]);
        ck_assert_msg(res[i].metric[L0] >= 0.9 * enc[L0], "%s L0 %g << %g", meth[i],
                      res[i].metric[L0], enc[L0]);
    }
    /* fista with lambda bisected to the encoder's mean L0 */
    ck_assert_msg(fabs(res[7].metric[L0] - enc[L0]) < 0.15 * enc[L0], "fista L0 %g vs %g",
                  res[7].metric[L0], enc[L0]);
    ck_assert(isfinite(res[7].metric[mi("lambda")]) && isnan(enc[mi("lambda")]));
    /* amortisation gap: lambda = coef d / 2 / m (coef_scale = dict), and the gap is
     * positive */
    ck_assert_double_eq_tol(res[NM].metric[mi("lambda")], 1.0 * 24 / 2 / 48, 1e-12);
    ck_assert_msg(res[NM].metric[GAP] > 0, "amortisation gap %g", res[NM].metric[GAP]);
    /* nothing survives the threshold */
    const double *thr = res[NM + 1].metric;
    ck_assert_double_eq(thr[L0], 0);
    ck_assert_double_eq(thr[REC], 0);
    ck_assert(isnan(thr[mi("precision")]));
    ck_assert(thr[MSE] > enc[MSE]);
    /* shared training metrics */
    for (int i = 1; i < NM + 2; i++) {
        ck_assert(res[i].metric[mi("mmcs")] == enc[mi("mmcs")]);
        ck_assert(res[i].metric[mi("loss")] == enc[mi("loss")]);
    }
    for (int i = 0; i < NM + 2; i++)
        sp_run_result_free(&res[i]);
}
END_TEST

/* Bad [solve] settings are refused before any training. */
START_TEST(test_solve_checks)
{
    sp_run_cfg c;
    sp_err e;
    small(&c);
    sp_test_set(&c, "solve.method", "gp");
    sp_test_set(&c, "solve.match", "fixed");
    sp_test_set(&c, "solve.l0", "100"); /* m = 48 */
    ck_assert_int_eq(sp_config_check(&c, &e), -1);
    ck_assert_msg(strstr(e.msg, "solve.l0 = 100") && strstr(e.msg, "48"), "%s", e.msg);
    small(&c);
    sp_test_set(&c, "solve.match", "coef");
    sp_test_set(&c, "solve.method", "omp");
    ck_assert_int_eq(sp_config_check(&c, &e), -1);
    ck_assert_msg(strstr(e.msg, "ista or fista"), "%s", e.msg);
    small(&c);
    sp_test_set(&c, "solve.match", "coef");
    sp_test_set(&c, "solve.method", "fista");
    sp_test_set(&c, "model.arch", "topk");
    sp_test_set(&c, "train.penalty", "none");
    ck_assert_int_eq(sp_config_check(&c, &e), -1);
    ck_assert_msg(strstr(e.msg, "train.penalty = l1"), "%s", e.msg);
    const sp_opt *o = sp_config_lookup("solve.method", &e);
    ck_assert_int_eq(sp_config_set(&c, o, "lasso", &e), -1);
    ck_assert_msg(strstr(e.msg, "encoder") && strstr(e.msg, "fista"), "%s", e.msg);
    small(&c);
    sp_test_set(&c, "train.learner", "none");
    sp_test_set(&c, "solve.threshold", "0.1");
    ck_assert_int_eq(sp_config_check(&c, &e), -1);
    small(&c);
    sp_test_set(&c, "model.arch", "pca");
    sp_test_set(&c, "train.penalty", "none");
    sp_test_set(&c, "train.resample_every", "100");
    ck_assert_int_eq(sp_config_check(&c, &e), -1);
    ck_assert_msg(strstr(e.msg, "pca has no latents to resample"), "%s", e.msg);
    /* the training key ignores [solve], the run key does not */
    sp_run_cfg a, b;
    small(&a);
    small(&b);
    sp_test_set(&b, "solve.method", "omp");
    sp_test_set(&b, "solve.threshold", "0.2");
    char ka[17], kb[17];
    sp_config_key(&a, ka);
    sp_config_key(&b, kb);
    ck_assert_str_ne(ka, kb);
    ck_assert(sp_config_same_training(&a, &b));
    sp_test_set(&b, "train.coef", "0.5");
    ck_assert(!sp_config_same_training(&a, &b));
}
END_TEST

/* A sweep over solve.method and solve.threshold trains once per training
 * key: 2 coefficients x 3 methods x 2 thresholds = 12 runs from 2
 * trainings, all stored; the runs share the training's artifacts; the
 * `where` figure draws only the runs it names. */
START_TEST(test_sweep_groups_trainings)
{
    char tmp[256], ini[512], out[512], cmd[2048], line[2048];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    snprintf(ini, sizeof ini, "%s/g.ini", tmp);
    snprintf(out, sizeof out, "%s/out", tmp);
    FILE *f = fopen(ini, "w");
    fprintf(f, "[experiment]\nname = g\n[data]\nd = 16\nn = 32\nk = 3\n"
               "[train]\nbatch = 64\nsteps = 300\ncoef_scale = dict\n"
               "[solve]\nfit_samples = 256\n[metrics]\neval_samples = 256\n"
               "[sweep]\ntrain.coef = 0.2, 0.8\nsolve.method = encoder, omp, scale\n"
               "solve.threshold = 0, 0.2\n"
               "[figure.f]\nkind = frontier\nx = l0\ny = mse\nseries = solve.method\n"
               "where = solve.threshold = 0\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' run '%s' --out '%s' --log -j 2 2>&1",
             SP_SOURCE_DIR "/build/superpose", ini, out);
    ck_assert_int_eq(sp_test_count_lines(cmd, "(2 trainings, each scored several ways)", line,
                                      sizeof line), 1);
    char db[600];
    snprintf(db, sizeof db, "%s/results.db", out);
    sp_err e;
    sp_store *st = sp_store_open(db, &e);
    sp_run_list runs = {0};
    ck_assert_int_eq(sp_store_list(st, &runs, &e), 0);
    ck_assert_uint_eq(runs.n, 12);
    /* per training: the training keys agree, the artifacts are shared */
    size_t with_art = 0;
    for (size_t r = 0; r < runs.n; r++) {
        char path[900];
        snprintf(path, sizeof path, "%s/artifacts/%s/decoder.npy", out, runs.runs[r].key);
        with_art += access(path, R_OK) == 0;
    }
    ck_assert_uint_eq(with_art, 12);
    sp_run_list_free(&runs);
    sp_store_close(st);
    /* the figure: 3 methods x 2 coefficients at threshold 0 */
    char path[700];
    snprintf(path, sizeof path, "%s/figures/f.dat", out);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    int points = 0;
    while (fgets(line, sizeof line, f))
        points += line[0] != '#' && line[0] != '\n';
    fclose(f);
    ck_assert_int_eq(points, 6);
    /* nothing left to do on a rerun */
    ck_assert_int_eq(sp_test_count_lines(cmd, "12 runs, 12 already stored, 0 to run", NULL, 0), 1);
}
END_TEST

/* A `where` naming an axis that is not swept, or a value it does not take,
 * and an unknown style are refused with the file and line. */
START_TEST(test_where_errors)
{
    char tmp[256], ini[512];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    snprintf(ini, sizeof ini, "%s/w.ini", tmp);
    const char *bad[] = {"where = solve.iters = 5\n", "where = solve.threshold = 0.7\n",
                         "where = solve.threshold\n", "style = dots\n"};
    const char *expect[] = {"not a sweep axis", "not one of the axis's values", "AXIS = VALUE",
                            "allowed: linespoints (default), points"};
    for (int i = 0; i < 4; i++) {
        FILE *f = fopen(ini, "w");
        fprintf(f, "[experiment]\nname = w\n[sweep]\nsolve.threshold = 0, 0.2\n"
                   "[figure.f]\nkind = lines\nx = solve.threshold\nmetric = mse\n%s", bad[i]);
        fclose(f);
        sp_err e;
        sp_experiment *ex = sp_experiment_load(ini, NULL, &e);
        ck_assert_ptr_null(ex);
        ck_assert_msg(strstr(e.msg, expect[i]) && strstr(e.msg, ":9:"), "%s", e.msg);
    }
}
END_TEST

/* Writes a raw file (for forged .npy inputs). */
static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    fwrite(p, 1, n, f);
    fclose(f);
}

/* `superpose encode`: on an orthonormal dictionary (the identity, 8 atoms
 * in 8-D, the atoms scaled by 2 to exercise the norms), OMP with L0 = 2
 * keeps the two largest positive entries of each input, as codes for the
 * scaled atoms (value / 2). Bad inputs are refused with clear messages. */
START_TEST(test_encode_cli)
{
    char tmp[256], D[512], X[512], Z[512], cmd[3000], line[2048];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    snprintf(D, sizeof D, "%s/D.npy", tmp);
    snprintf(X, sizeof X, "%s/X.npy", tmp);
    snprintf(Z, sizeof Z, "%s/Z.npy", tmp);
    float dict[64] = {0}, xs[3 * 8] = {0.5f, -3, 0.2f, 1, 0, 0, 0, 0,   /* keeps 1, 0.5 */
                                       0, 0, 0, 0, 0, 0, 0.1f, 0,       /* keeps 0.1 only */
                                       2, 2.5f, 0, 0, 0, 0, 0, 3};      /* keeps 3, 2.5 */
    for (int i = 0; i < 8; i++)
        dict[i * 8 + i] = 2;
    sp_err e;
    ck_assert_int_eq(sp_npy_write_f32(D, dict, 8, 8, &e), 0);
    ck_assert_int_eq(sp_npy_write_f32(X, xs, 3, 8, &e), 0);
    const char *bin = SP_SOURCE_DIR "/build/superpose";
    snprintf(cmd, sizeof cmd, "'%s' encode --dict '%s' --data '%s' --solver omp --l0 2 -o '%s' 2>&1",
             bin, D, X, Z);
    ck_assert_int_eq(sp_test_count_lines(cmd, "wrote", line, sizeof line), 1);
    ck_assert_msg(strstr(line, "3 x 8 codes") && strstr(line, "mean L0 1.667"), "%s", line);
    float *z;
    size_t r, c;
    ck_assert_int_eq(sp_npy_read_f32(Z, &z, &r, &c, &e), 0);
    ck_assert_uint_eq(r, 3);
    ck_assert_uint_eq(c, 8);
    float want[24] = {0.25f, 0, 0, 0.5f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.05f, 0,
                      0, 1.25f, 0, 0, 0, 0, 0, 1.5f};
    for (int i = 0; i < 24; i++)
        ck_assert_msg(fabsf(z[i] - want[i]) < 1e-6f, "z[%d] = %g, want %g", i, z[i], want[i]);
    free(z);

    /* bad inputs */
    char V[512], N[512], I[512], W[512];
    snprintf(V, sizeof V, "%s/v.npy", tmp);
    snprintf(N, sizeof N, "%s/nan.npy", tmp);
    snprintf(I, sizeof I, "%s/int.npy", tmp);
    snprintf(W, sizeof W, "%s/wide.npy", tmp);
    ck_assert_int_eq(sp_npy_write_f32(V, dict, 8, 0, &e), 0); /* 1-D */
    float xn[16] = {0};
    xn[8 + 3] = NAN;
    ck_assert_int_eq(sp_npy_write_f32(N, xn, 2, 8, &e), 0);
    ck_assert_int_eq(sp_npy_write_f32(W, xn, 1, 16, &e), 0);
    /* an int32 array: a valid .npy header with descr '<i4' */
    char hdr[128] = "\x93NUMPY\x01\x00\x76\x00{'descr': '<i4', 'fortran_order': False, "
                    "'shape': (2, 8), }";
    size_t hl = strlen(hdr + 10) + 10;
    memset(hdr + hl, ' ', 127 - hl);
    hdr[127] = '\n';
    char filebuf[128 + 64] = {0};
    memcpy(filebuf, hdr, 128);
    write_bytes(I, filebuf, sizeof filebuf);
    struct {
        const char *args, *expect;
    } cases[] = {
        {"--dict '%s/v.npy' --data '%s/X.npy' --l0 2", "must be a 2-D array (atoms x d)"},
        {"--dict '%s/D.npy' --data '%s/wide.npy' --l0 2", "rows of 16 values"},
        {"--dict '%s/D.npy' --data '%s/X.npy' --l0 9", "--l0 9 is more than the 8 atoms"},
        {"--dict '%s/D.npy' --data '%s/nan.npy' --l0 2", "sample 1 has a non-finite value"},
        {"--dict '%s/int.npy' --data '%s/X.npy' --l0 2", "<i4"},
        {"--dict '%s/D.npy' --data '%s/X.npy' --solver lars --l0 2", "must be one of"},
        {"--dict '%s/D.npy' --data '%s/X.npy' --solver fista", "needs --lambda"},
        {"--dict '%s/none.npy' --data '%s/X.npy' --l0 2", "none.npy"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char args[1200];
        snprintf(args, sizeof args, cases[k].args, tmp, tmp);
        snprintf(cmd, sizeof cmd, "'%s' encode %s -o '%s/bad.npy' 2>&1; echo \"exit=$?\"", bin,
                 args, tmp);
        FILE *p = popen(cmd, "r");
        char all[4096] = "";
        while (fgets(line, sizeof line, p))
            strncat(all, line, sizeof all - strlen(all) - 1);
        pclose(p);
        ck_assert_msg(strstr(all, cases[k].expect), "case %zu: %s", k, all);
        ck_assert_msg(strstr(all, "exit=2") || strstr(all, "exit=1"), "case %zu: %s", k, all);
        char badp[600];
        snprintf(badp, sizeof badp, "%s/bad.npy", tmp);
        ck_assert_msg(access(badp, F_OK) != 0, "case %zu wrote its output", k);
    }
}
END_TEST

/* Writes text to path. */
static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static const char *toy_ini =
    "[experiment]\nname = toy\n"
    "[data]\ngenerator = tree\nd = 12\ngeometry = orthonormal\nmagnitude = constant\n"
    "mag_mean = 1\n"
    "[feature.z]\np = 1\nreadout = false\n"
    "[feature.f0]\nparent = z\np = 0.25\n"
    "[feature.f1]\nparent = f0\np = 0.2\n"
    "[feature.f2]\np = 0.05\n"
    "[feature.f3]\np = 0.05\n"
    "[model]\nlatents = 4\ninit = transpose\n"
    "[train]\ncoef = 0.003\nmse = sample\nlr = 0.0003\nbatch = 256\nsteps = 20000\n"
    "resample_every = 1000\nresample_until = 0.5\n"
    "[metrics]\neval_samples = 4096\n"
    "[variant.independent]\nfeature.f1.parent =\nfeature.f1.p = 0.05\n"
    "[variant.hierarchical]\nmodel.tied = false\n"
    "[figure.cos]\nkind = cosmatrix\n";

/* The absorption toy of Chanin et al. 2024 end to end (REFERENCE.md 5.4),
 * with a variant that rewires the tree (feature.f1.parent). Hierarchical:
 * the child's latent decoder lies between parent and child (cos with the
 * parent 1/sqrt 2 when it carries both at magnitude 1), the parent's
 * encoder has a negative child component, every sample with both features
 * is fully absorbed and the parent latent is silent on it. Independent:
 * none of that. Also: the truth rows' parents seen by the generator, the
 * cosine-matrix figures, and model.init = transpose. */
START_TEST(test_absorption_toy_runs)
{
    char tmp[256], ini[512], out[512], cmd[2048];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    snprintf(ini, sizeof ini, "%s/toy.ini", tmp);
    snprintf(out, sizeof out, "%s/out", tmp);
    write_text(ini, toy_ini);
    sp_err e;
    sp_experiment *ex = sp_experiment_load(ini, NULL, &e);
    ck_assert_msg(ex != NULL, "%s", e.msg);
    ck_assert_uint_eq(sp_experiment_n_runs(ex), 2);
    /* the generator's parent rows: f1 (row 1) under f0 (row 0) when
     * hierarchical; no parent when independent; the latent z is skipped */
    for (size_t v = 0; v < 2; v++) {
        sp_run_cfg c;
        ck_assert_int_eq(sp_experiment_run_cfg(ex, v, &c, NULL, &e), 0);
        gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
        sp_gen *g = sp_gen_alloc(&c.data, 16, r, &e);
        ck_assert_msg(g != NULL, "%s", e.msg);
        long par[4];
        size_t with = sp_gen_parent_rows(g, par);
        ck_assert_uint_eq(with, v == 1 ? 1 : 0);
        ck_assert_int_eq(par[0], -1);
        ck_assert_int_eq(par[1], v == 1 ? 0 : -1);
        ck_assert_int_eq(par[2], -1);
        sp_gen_free(g);
        gsl_rng_free(r);
    }
    sp_run_cfg hc;
    ck_assert_int_eq(sp_experiment_run_cfg(ex, 1, &hc, NULL, &e), 0);
    sp_experiment_free(ex);
    /* model.init = transpose: W_e = W_d and b_e = 0 before training */
    {
        gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
        sp_learner *L = sp_learner_alloc(&hc.model, &hc.penalty, 12, 4, 8, 10, r, &e);
        ck_assert_msg(L != NULL, "%s", e.msg);
        for (size_t t = 0; t < 4 * 12; t++)
            ck_assert(L->encoder->data[t] == L->decoder->data[t]);
        for (size_t p = 0; p < L->n_params; p++)
            if (!strcmp(L->params[p].name, "b_e"))
                for (size_t i = 0; i < 4; i++)
                    ck_assert(L->params[p].w[i] == 0);
        sp_learner_free(L);
        gsl_rng_free(r);
    }
    snprintf(cmd, sizeof cmd, "'%s' run '%s' --out '%s' --log -j 2 2>&1",
             SP_SOURCE_DIR "/build/superpose", ini, out);
    ck_assert_int_eq(sp_test_count_lines(cmd, "figure ", NULL, 0), 2);
    char db[600];
    snprintf(db, sizeof db, "%s/results.db", out);
    sp_store *st = sp_store_open(db, &e);
    sp_run_list runs = {0};
    ck_assert_int_eq(sp_store_list(st, &runs, &e), 0);
    ck_assert_uint_eq(runs.n, 2);
    for (size_t r = 0; r < runs.n; r++) {
        const sp_run_record *rr = &runs.runs[r];
        double cdp = sp_run_metric(rr, "child_dec_parent"), pec = sp_run_metric(rr, "parent_enc_child");
        double full = sp_run_metric(rr, "full_absorption"), hole = sp_run_metric(rr, "recall_hole");
        double mcc = sp_run_metric(rr, "mcc");
        if (!isnan(full)) { /* hierarchical: a pair exists */
            ck_assert_msg(fabs(cdp - 1 / sqrt(2.0)) < 0.05, "child_dec_parent %g", cdp);
            ck_assert_msg(pec < -0.3, "parent_enc_child %g", pec);
            ck_assert_msg(full > 0.9 && hole > 0.9, "full %g hole %g", full, hole);
            ck_assert_msg(fabs(mcc - (3 + 1 / sqrt(2.0)) / 4) < 0.02, "mcc %g", mcc);
        } else { /* independent: no pair, a clean dictionary */
            ck_assert(isnan(cdp) && isnan(hole));
            ck_assert_msg(mcc > 0.99, "mcc %g", mcc);
            ck_assert_msg(sp_run_metric(rr, "lat_f1") > 0.99, "lat_f1");
        }
    }
    sp_run_list_free(&runs);
    sp_store_close(st);
    char png[700];
    snprintf(png, sizeof png, "%s/figures/cos-2.png", out);
    ck_assert_int_eq(access(png, R_OK), 0);
}
END_TEST

/* Variant settings of tree nodes and metrics.pairs are checked at load. */
START_TEST(test_node_override_errors)
{
    char tmp[256], ini[512];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    snprintf(ini, sizeof ini, "%s/t.ini", tmp);
    const char *bad[] = {"[variant.a]\nfeature.nope.p = 0.1\n",
                         "[variant.a]\nfeature.f1.p = 2\n",
                         "[variant.a]\nfeature.f1.parent = f9\n",
                         "[metrics]\npairs = 0:7\n", "[metrics]\npairs = 0-1\n"};
    const char *expect[] = {"no [feature.nope] section", "probability", "f9",
                            "0:7 is not a pair", "expected parent:child"};
    for (int i = 0; i < 5; i++) {
        char text[2048];
        snprintf(text, sizeof text,
                 "[experiment]\nname = t\n[data]\ngenerator = tree\nd = 8\n"
                 "[feature.f0]\np = 0.25\n[feature.f1]\nparent = f0\np = 0.2\n%s", bad[i]);
        write_text(ini, text);
        sp_err e;
        sp_experiment *ex = sp_experiment_load(ini, NULL, &e);
        if (ex) { /* pairs are checked with the run's configuration */
            sp_run_cfg c;
            ck_assert_int_eq(sp_experiment_run_cfg(ex, 0, &c, NULL, &e), 0);
            ck_assert_int_eq(sp_config_check(&c, &e), -1);
            sp_experiment_free(ex);
        }
        ck_assert_msg(strstr(e.msg, expect[i]), "case %d: %s", i, e.msg);
    }
}
END_TEST

/* `superpose results --csv` quotes a value holding a comma (model.prefixes). */
START_TEST(test_results_csv_quotes)
{
    char tmp[256], db[512], cmd[1024], line[2048];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    snprintf(db, sizeof db, "%s/r.db", tmp);
    sp_run_cfg a, b;
    small(&a);
    small(&b);
    sp_test_set(&b, "model.prefixes", "8, 16");
    sp_run_result res;
    memset(&res, 0, sizeof res);
    for (size_t i = 0; i < SP_MAX_METRICS; i++)
        res.metric[i] = 0.5;
    sp_err e;
    ck_assert_int_eq(sp_run_store(db, "x", &a, &res, &e), 0);
    ck_assert_int_eq(sp_run_store(db, "x", &b, &res, &e), 0);
    snprintf(cmd, sizeof cmd, "'%s' results '%s' --csv", SP_SOURCE_DIR "/build/superpose", db);
    ck_assert_int_eq(sp_test_count_lines(cmd, "\"8, 16\"", line, sizeof line), 1);
}
END_TEST

/* --estimate runs the pilots even for a short sweep: side by side in
 * forked children, up to four per shape (here: ensembles of L1 values at two
 * ratios), then the estimate before the runs (in log mode, each job's
 * too) and the time against it after (and each job's). */
START_TEST(test_sweep_estimate_forced)
{
    char tmp[256], ini[512], out[512], log[512], cmd[2048], line[2048];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    snprintf(ini, sizeof ini, "%s/est.ini", tmp);
    snprintf(out, sizeof out, "%s/o", tmp);
    snprintf(log, sizeof log, "%s/log.txt", tmp);
    write_text(ini, "[experiment]\nname = est\n[data]\nd = 16\nn = 32\n"
                    "[train]\nbatch = 32\nsteps = 300\ncoef_scale = dict\n"
                    "[metrics]\neval_samples = 256\n"
                    "[sweep]\ntrain.coef = 0.1, 1, 10\nmodel.ratio = 1, 2\n");
    snprintf(cmd, sizeof cmd, "'%s' run '%s' --out '%s' --log -j 2 --no-plot --estimate > '%s' 2>&1",
             SP_SOURCE_DIR "/build/superpose", ini, out, log);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "cat '%s'", log);
    ck_assert_int_eq(sp_test_count_lines(cmd, "estimated total: ", line, sizeof line), 1);
    ck_assert_msg(strstr(line, "pilot runs of ") != NULL, "%s", line);
    ck_assert_int_eq(sp_test_count_lines(cmd, " s estimated (", NULL, 0), 1);
    /* each job's estimate, and each job's time against it (log mode) */
    int n_est = sp_test_count_lines(cmd, "estimate job=", NULL, 0);
    ck_assert_int_ge(n_est, 2);
    ck_assert_int_eq(sp_test_count_lines(cmd, " s, estimated ", NULL, 0), n_est);
    /* --estimate-only: the estimate, then nothing run or stored */
    snprintf(out, sizeof out, "%s/o4", tmp);
    snprintf(cmd, sizeof cmd, "'%s' run '%s' --out '%s' --log -j 2 --estimate-only 2>&1",
             SP_SOURCE_DIR "/build/superpose", ini, out);
    ck_assert_int_eq(sp_test_count_lines(cmd, "estimate job=", NULL, 0), n_est);
    ck_assert_int_eq(sp_test_count_lines(cmd, " key=", NULL, 0), 0);
    /* without --estimate, a sweep this short has no pilots */
    snprintf(out, sizeof out, "%s/o3", tmp);
    snprintf(cmd, sizeof cmd, "'%s' run '%s' --out '%s' --log -j 2 --no-plot 2>&1",
             SP_SOURCE_DIR "/build/superpose", ini, out);
    ck_assert_int_eq(sp_test_count_lines(cmd, "estimate", NULL, 0), 0);
}
END_TEST

/* The numbers of one sweep's runs, keyed: the metrics of run `key`. */
static const sp_run_record *find_run(const sp_run_list *l, const char *key)
{
    for (size_t q = 0; q < l->n; q++)
        if (!strcmp(l->runs[q].key, key))
            return &l->runs[q];
    return NULL;
}

static void load_runs(const char *out, sp_run_list *l)
{
    char db[600];
    sp_err e;
    snprintf(db, sizeof db, "%s/results.db", out);
    sp_store *st = sp_store_open(db, &e);
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(sp_store_list(st, l, &e), 0);
    sp_store_close(st);
}

/* BLAS threads go to a large training (B m d >= SP_THREADED_GEMM: m =
 * 4096, d = 256, batch 256) only when the sweep has fewer jobs than
 * workers and threads keep the bits (sp_blas_threads_exact): with two runs
 * and -j 2 each has one thread, a lone large run gets both cores. Its
 * numbers are the same every way (they must not depend on the schedule). */
START_TEST(test_large_runs_threaded)
{
    char tmp[256], ini1[512], ini2[512], out[3][512], cmd[2048], line[2048];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    snprintf(ini1, sizeof ini1, "%s/one.ini", tmp);
    snprintf(ini2, sizeof ini2, "%s/two.ini", tmp);
    for (int k = 0; k < 3; k++)
        snprintf(out[k], sizeof out[k], "%s/o%d", tmp, k);
    const char *body = "[experiment]\nname = thr\n[data]\nd = 256\nn = 512\n"
                       "[train]\nbatch = 256\nsteps = 8\ncoef_scale = dict\n"
                       "[metrics]\neval_samples = 256\n[sweep]\n";
    char text[1024];
    snprintf(text, sizeof text, "%smodel.ratio = 8\n", body);
    write_text(ini1, text);
    snprintf(text, sizeof text, "%smodel.ratio = 0.5, 8\n", body);
    write_text(ini2, text);
    const char *bin = SP_SOURCE_DIR "/build/superpose";
    snprintf(cmd, sizeof cmd, "'%s' run '%s' --out '%s' --log -j 2 2>&1", bin, ini1, out[0]);
    /* where two threads change the bits (OpenBLAS's Haswell kernels), the
     * lone run keeps one thread and says why */
    const char *said = sp_blas_threads_exact(2) ? "1 large training with 2 BLAS threads each"
                                                : "large trainings keep one BLAS thread";
    ck_assert_int_eq(sp_test_count_lines(cmd, said, line, sizeof line), 1);
    snprintf(cmd, sizeof cmd, "'%s' run '%s' --out '%s' --log -j 1 2>&1", bin, ini1, out[1]);
    ck_assert_int_eq(sp_test_count_lines(cmd, "BLAS threads", NULL, 0), 0);
    snprintf(cmd, sizeof cmd, "'%s' run '%s' --out '%s' --log -j 2 2>&1", bin, ini2, out[2]);
    ck_assert_int_eq(sp_test_count_lines(cmd, "BLAS threads", NULL, 0), 0);
    sp_run_list l[3] = {{0}};
    for (int k = 0; k < 3; k++)
        load_runs(out[k], &l[k]);
    ck_assert_uint_eq(l[0].n, 1);
    ck_assert_uint_eq(l[1].n, 1);
    ck_assert_uint_eq(l[2].n, 2);
    const sp_run_record *r[3] = {&l[0].runs[0], find_run(&l[1], l[0].runs[0].key),
                                 find_run(&l[2], l[0].runs[0].key)};
    ck_assert_ptr_nonnull(r[1]);
    ck_assert_ptr_nonnull(r[2]);
    for (int k = 1; k < 3; k++)
        for (size_t i = 0; i < sp_n_run_metrics; i++) {
            const char *mname = sp_run_metric_names[i];
            double x = sp_run_metric(r[0], mname), y = sp_run_metric(r[k], mname);
            if (strcmp(mname, "wall_s"))
                ck_assert_msg((isnan(x) && isnan(y)) || x == y, "%s: %.17g vs %.17g", mname, x, y);
        }
    for (int k = 0; k < 3; k++)
        sp_run_list_free(&l[k]);
}
END_TEST

Suite *make_ito_suite(void)
{
    Suite *s = suite_create("ito");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_solve_checks);
    tcase_add_test(tc, test_where_errors);
    tcase_add_test(tc, test_multi_equals_single_and_orders);
    tcase_add_test(tc, test_sweep_groups_trainings);
    tcase_add_test(tc, test_encode_cli);
    tcase_add_test(tc, test_absorption_toy_runs);
    tcase_add_test(tc, test_node_override_errors);
    tcase_add_test(tc, test_results_csv_quotes);
    tcase_add_test(tc, test_large_runs_threaded);
    tcase_add_test(tc, test_sweep_estimate_forced);
    suite_add_tcase(s, tc);
    return s;
}
