/* check_config.c: the option table (config.c), experiment files and their
 * sweeps (experiment.c), and the CLI's answers to bad input (main.c).
 * Known answers: Sharkey defaults, logspace grids, the real experiment file;
 * bad input: every error names FILE:LINE (when there is one), the key, the
 * bad value and what is allowed. */
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "superpose/config.h"
#include "superpose/npy.h"
#include "superpose/experiment.h"
#include "superpose/npy.h"

#define SP_BIN SP_SOURCE_DIR "/build/superpose"
#define SP_REAL_INI SP_SOURCE_DIR "/experiments/sharkey-recovery.ini"

/* ------------------------------------------------------------- helpers */

/* One temporary folder per test (checked fixture: runs in the test's own
 * process, forked or not), emptied and removed afterwards. */
static char dir[256];

static void setup_dir(void)
{
    ck_assert_ptr_nonnull(sp_test_tmpdir(dir, sizeof dir));
}

static void teardown_dir(void)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        char p[600];
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* Writes text to dir/name; path receives the full path. */
static const char *write_file(const char *name, const char *text, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
    return path;
}

/* Loads text (written to dir/name) and expects success. */
static sp_experiment *load_ok(const char *name, const char *text, const char *preset)
{
    char path[512];
    sp_err err = {{0}};
    sp_experiment *ex = sp_experiment_load(write_file(name, text, path, sizeof path), preset, &err);
    ck_assert_msg(ex != NULL, "load failed: %s", err.msg);
    return ex;
}

/* Loads text and expects failure with a message that starts with
 * "<path>:<line>: " (line 0: "<path>: ") and contains every string of the
 * NULL-terminated list. */
static void expect_fail(const char *text, const char *preset, int line, ...)
{
    char path[512], prefix[600];
    sp_err err = {{0}};
    write_file("bad.ini", text, path, sizeof path);
    sp_experiment *ex = sp_experiment_load(path, preset, &err);
    ck_assert_msg(ex == NULL, "loaded a bad file:\n%s", text);
    if (line > 0)
        snprintf(prefix, sizeof prefix, "%s:%d: ", path, line);
    else
        snprintf(prefix, sizeof prefix, "%s: ", path);
    ck_assert_msg(strncmp(err.msg, prefix, strlen(prefix)) == 0,
                  "message '%s' does not start with '%s'", err.msg, prefix);
    va_list ap;
    va_start(ap, line);
    for (const char *sub; (sub = va_arg(ap, const char *));)
        ck_assert_msg(strstr(err.msg, sub) != NULL, "message '%s' lacks '%s'", err.msg, sub);
    va_end(ap);
}

/* Expects sp_config_set(name = value) to fail, leave cfg unchanged, and
 * name the option, the value and what is allowed. */
static void expect_bad_value(const char *name, const char *value, const char *allowed)
{
    sp_run_cfg cfg, before;
    sp_config_defaults(&cfg);
    before = cfg;
    const sp_opt *o = sp_config_find(name);
    ck_assert_ptr_nonnull(o);
    sp_err err = {{0}};
    ck_assert_msg(sp_config_set(&cfg, o, value, &err) == -1, "%s = '%s' accepted", name, value);
    ck_assert_msg(memcmp(&cfg, &before, sizeof cfg) == 0, "%s = '%s' changed cfg", name, value);
    char quoted[300];
    snprintf(quoted, sizeof quoted, "%s = '%s'", name, value);
    ck_assert_msg(strstr(err.msg, quoted) != NULL, "message '%s' lacks '%s'", err.msg, quoted);
    ck_assert_msg(strstr(err.msg, allowed) != NULL, "message '%s' lacks '%s'", err.msg, allowed);
}

static int set(sp_run_cfg *cfg, const char *name, const char *value)
{
    const sp_opt *o = sp_config_find(name);
    ck_assert_msg(o != NULL, "no option %s", name);
    sp_err err = {{0}};
    int rc = sp_config_set(cfg, o, value, &err);
    ck_assert_msg(rc == 0, "%s = '%s': %s", name, value, err.msg);
    return rc;
}

static void key_of(const sp_experiment *ex, size_t i, char key[17])
{
    sp_run_cfg cfg;
    sp_err err = {{0}};
    ck_assert_msg(sp_experiment_run_cfg(ex, i, &cfg, NULL, &err) == 0, "%s", err.msg);
    sp_config_key(&cfg, key);
}

static int rel_close(double got, double want, double tol)
{
    return fabs(got - want) <= tol * fabs(want);
}

/* Runs the CLI through the shell (stderr folded into out) from the test
 * folder; returns its exit status, -1 if it did not exit. */
static int cli(char *out, size_t len, const char *fmt, ...)
{
    char args[1500], cmd[2000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    ck_assert_msg(access(SP_BIN, X_OK) == 0, "%s is missing: build it with `make` first",
                  SP_BIN);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s 2>&1", dir, SP_BIN, args);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    while (fread(args, 1, sizeof args, p) > 0)
        ; /* drain */
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#define HEAD "[experiment]\nname = t\n"  /* lines 1-2 of every small file */
/* A tiny valid run: fails fast if it fails, finishes fast if it does not. */
#define TINY HEAD "[data]\nd = 4\nn = 8\nk = 2\n[train]\nsteps = 1\nbatch = 2\n" \
                  "[metrics]\neval_samples = 4\n"

/* ------------------------------------------------------- option table */

START_TEST(test_defaults_sharkey)
{
    sp_run_cfg c;
    sp_config_defaults(&c);
    ck_assert_int_eq(c.data.d, 256);
    ck_assert_int_eq(c.data.n, 512);
    ck_assert_double_eq(c.data.k, 5);
    ck_assert_double_eq(c.data.decay, 0.99);
    ck_assert_double_eq(c.optim.lr, 1e-3);
    ck_assert_int_eq(c.batch, 256);
    ck_assert_int_eq(c.steps, 20000);
    ck_assert_str_eq(c.data.generator, "sharkey");
    ck_assert_str_eq(c.model.arch, "relu");
    ck_assert_str_eq(c.data.correlation, "none");
    ck_assert_str_eq(c.data.geometry, "gaussian");
    ck_assert_str_eq(c.data.mag.law, "uniform");
    ck_assert_double_eq(c.data.mag.min, 0);
    ck_assert_double_eq(c.data.mag.max, 1);
    ck_assert_str_eq(c.learner, "sae");
}
END_TEST

START_TEST(test_defaults_roundtrip)
{
    size_t n;
    const sp_opt *o = sp_config_options(&n);
    ck_assert_uint_gt(n, 20);
    for (size_t i = 0; i < n; i++) {
        sp_run_cfg a, b;
        sp_err err = {{0}};
        char t1[128], t2[128];
        sp_config_defaults(&a);
        ck_assert_msg(sp_config_set(&a, &o[i], o[i].def, &err) == 0, "default of %s.%s: %s",
                      o[i].section, o[i].key, err.msg);
        ck_assert_ptr_nonnull(o[i].help);
        sp_config_format(&a, &o[i], t1, sizeof t1);
        /* the formatted text parses back to the same bytes and text */
        sp_config_defaults(&b);
        ck_assert_msg(sp_config_set(&b, &o[i], t1, &err) == 0, "%s.%s = '%s': %s", o[i].section,
                      o[i].key, t1, err.msg);
        sp_config_format(&b, &o[i], t2, sizeof t2);
        ck_assert_str_eq(t1, t2);
        ck_assert_msg(memcmp(&a, &b, sizeof a) == 0, "%s.%s: '%s' does not round-trip",
                      o[i].section, o[i].key, t1);
    }
}
END_TEST

START_TEST(test_canonical_lists_every_option)
{
    size_t n;
    const sp_opt *o = sp_config_options(&n);
    sp_run_cfg c;
    sp_config_defaults(&c);
    char *text = sp_config_canonical(&c);
    ck_assert_ptr_nonnull(text);
    size_t lines = 0;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    ck_assert_uint_eq(lines, n);
    for (size_t i = 0; i < n; i++) {
        char name[80];
        snprintf(name, sizeof name, "%s.%s=", o[i].section, o[i].key);
        int count = 0;
        for (const char *p = text; (p = strstr(p, name)); p++)
            count += p == text || p[-1] == '\n';
        ck_assert_msg(count == 1, "%s appears %d times", name, count);
    }
    ck_assert_ptr_nonnull(strstr(text, "data.d=256\n"));
    ck_assert_ptr_nonnull(strstr(text, "train.coef_scale=none\n"));
    free(text);
}
END_TEST

/* A valid value of o different from its default. */
static int other_value(const sp_opt *o, char *buf, size_t len)
{
    switch (o->type) {
    case SP_OPT_BOOL:
        snprintf(buf, len, "%s", strcmp(o->def, "true") ? "true" : "false");
        return 1;
    case SP_OPT_NAME:
    case SP_OPT_CHOICE: {
        const char *bar = strchr(o->choices, '|');
        if (!bar)
            return 0; /* a single choice: nothing else to set */
        if (strncmp(o->choices, o->def, (size_t)(bar - o->choices)) == 0 &&
            o->def[bar - o->choices] == '\0') {
            const char *end = strchr(bar + 1, '|');
            snprintf(buf, len, "%.*s", end ? (int)(end - bar - 1) : (int)strlen(bar + 1),
                     bar + 1);
        } else {
            snprintf(buf, len, "%.*s", (int)(bar - o->choices), o->choices);
        }
        return 1;
    }
    case SP_OPT_TEXT:
        snprintf(buf, len, "%s", o->def[0] ? "" : "x.npy");
        return 1;
    default: {
        double d = strtod(o->def, NULL);
        double cand[] = {d + 1, d - 1, d / 2, o->min, o->max};
        for (size_t k = 0; k < sizeof cand / sizeof cand[0]; k++)
            if (cand[k] != d && cand[k] >= o->min && cand[k] <= o->max) {
                snprintf(buf, len, "%.17g", cand[k]);
                return 1;
            }
        return 0;
    }
    }
}

START_TEST(test_key_stable_and_sensitive)
{
    sp_run_cfg a, b;
    char ka[17], kb[17];
    sp_config_defaults(&a);
    sp_config_defaults(&b);
    sp_config_key(&a, ka);
    sp_config_key(&b, kb);
    ck_assert_uint_eq(strlen(ka), 16);
    ck_assert_uint_eq(strspn(ka, "0123456789abcdef"), 16);
    ck_assert_str_eq(ka, kb);
    size_t n, changed = 0;
    const sp_opt *o = sp_config_options(&n);
    for (size_t i = 0; i < n; i++) {
        char v[64], kc[17];
        if (!other_value(&o[i], v, sizeof v))
            continue;
        sp_run_cfg c;
        sp_err err = {{0}};
        sp_config_defaults(&c);
        ck_assert_msg(sp_config_set(&c, &o[i], v, &err) == 0, "%s.%s = %s: %s", o[i].section,
                      o[i].key, v, err.msg);
        sp_config_key(&c, kc);
        ck_assert_msg(strcmp(kc, ka) != 0, "changing %s.%s to %s keeps the key", o[i].section,
                      o[i].key, v);
        changed++;
    }
    /* only the single-choice names (arch, penalty, optimizer) are skipped */
    ck_assert_uint_ge(changed, n - 3);
}
END_TEST

START_TEST(test_find)
{
    const sp_opt *lr = sp_config_find("train.lr");
    ck_assert_ptr_nonnull(lr);
    ck_assert_str_eq(lr->section, "train");
    ck_assert_str_eq(lr->key, "lr");
    ck_assert_ptr_eq(sp_config_find("lr"), lr);
    ck_assert_ptr_eq(sp_config_find_in("train", "lr"), lr);
    ck_assert_ptr_null(sp_config_find("train.nope"));
    ck_assert_ptr_null(sp_config_find("nope"));
    ck_assert_ptr_null(sp_config_find("data.lr"));
    ck_assert_ptr_null(sp_config_find("seed")); /* data.seed and train.seed */
    ck_assert_ptr_nonnull(sp_config_find("data.seed"));
    ck_assert_ptr_nonnull(sp_config_find("train.seed"));
    ck_assert_ptr_null(sp_config_find(""));
    ck_assert_ptr_null(sp_config_find("train."));
}
END_TEST

START_TEST(test_value_errors)
{
    expect_bad_value("train.lr", "abc", "a number >= 1e-12");
    expect_bad_value("data.d", "12x", "an integer in [1, 65536]");
    expect_bad_value("train.batch", "-5", "an integer in [1, 1048576]");
    expect_bad_value("train.batch", "0", "an integer in [1, 1048576]");
    expect_bad_value("train.batch", "2.5", "an integer in [1, 1048576]");
    expect_bad_value("train.batch", "", "an integer");
    expect_bad_value("data.decay", "1.5", "a number in [1e-09, 1]");
    expect_bad_value("train.coef", "inf", "a number >= 0");
    expect_bad_value("train.coef", "nan", "a number >= 0");
    expect_bad_value("train.coef", "-0.1", "a number >= 0");
    expect_bad_value("train.coef", "1e999", "a number >= 0");
    expect_bad_value("train.steps", "1e13", "an integer in [1, 1000000000000]");
    expect_bad_value("data.correlation", "maybe", "one of: none, copula, lowrank");
    expect_bad_value("data.generator", "trees", "one of: sharkey, features, tree, tms");
    expect_bad_value("data.magnitude", "gauss",
                     "one of: constant, uniform, exponential, folded_normal");
    expect_bad_value("model.arch", "foo", "one of: relu");
    expect_bad_value("train.coef_scale", "foo", "one of: none, dict");
    expect_bad_value("train.coef_scale", "none|dict", "one of: none, dict");
    expect_bad_value("train.mse", "Element", "one of: element, sample");

    /* accepted spellings */
    sp_run_cfg c;
    sp_config_defaults(&c);
    set(&c, "train.batch", " 64 ");
    ck_assert_int_eq(c.batch, 64);
    set(&c, "train.steps", "1e3");
    ck_assert_int_eq(c.steps, 1000);
    set(&c, "data.correlation", "copula");
    ck_assert_str_eq(c.data.correlation, "copula");
    set(&c, "data.probs", " 0.5, 0.25 ");
    ck_assert_str_eq(c.data.probs, "0.5, 0.25");
    set(&c, "train.coef_scale", "dict");
    ck_assert_int_eq(c.penalty.per_latent, 1);
}
END_TEST

START_TEST(test_negative_zero_is_zero)
{
    /* "-0" and "0" are the same numbers, so the same run */
    sp_run_cfg a, b;
    char ka[17], kb[17], t[64];
    sp_config_defaults(&a);
    sp_config_defaults(&b);
    set(&a, "train.coef", "0");
    set(&b, "train.coef", "-0");
    sp_config_format(&b, sp_config_find("train.coef"), t, sizeof t);
    ck_assert_str_eq(t, "0");
    sp_config_key(&a, ka);
    sp_config_key(&b, kb);
    ck_assert_str_eq(ka, kb);
}
END_TEST

/* --------------------------------------------------- experiment errors */

START_TEST(test_load_unknown_key)
{
    expect_fail(HEAD "[train]\nlr = 0.01\nlearning_rate = 0.1\n", NULL, 5,
                "[train] learning_rate", "unknown key 'learning_rate'",
                "allowed: penalty, coef, coef_scale", "lr", "batch, steps, seed", NULL);
    expect_fail(HEAD "[experiment]\nauthor = me\n", NULL, 4, "unknown key 'author'",
                "allowed: name, description, reference, default_preset", NULL);
}
END_TEST

START_TEST(test_load_bad_values)
{
    expect_fail(HEAD "[train]\nlr = abc\n", NULL, 4, "[train] train.lr = 'abc'",
                "a number >= 1e-12", NULL);
    expect_fail(HEAD "[train]\nbatch = -5\n", NULL, 4, "[train] train.batch = '-5'",
                "an integer in [1, 1048576]", NULL);
    expect_fail(HEAD "\n; comment\n[data]\nd = 2.5\n", NULL, 6, "data.d = '2.5'", "integer",
                NULL);
    expect_fail(HEAD "[model]\narch = foo\n", NULL, 4, "model.arch = 'foo'", "one of: relu",
                NULL);
    expect_fail(HEAD "[train]\nlr =\n", NULL, 4, "train.lr = ''", NULL);
    expect_fail("[experiment]\nname = my experiment\n", NULL, 2, "name = 'my experiment'",
                "letters, digits, - and _", NULL);
}
END_TEST

START_TEST(test_load_unknown_section)
{
    expect_fail(HEAD "[trian]\nlr = 0.1\n", NULL, 4, "unknown section [trian]",
                "allowed: experiment, data, model, train", NULL);
    expect_fail(HEAD "[figure.a b]\nmetric = mmcs\n", NULL, 4, "unknown section [figure.a b]",
                NULL);
}
END_TEST

START_TEST(test_load_syntax_error)
{
    expect_fail(HEAD "[train]\nlr 0.1\n", NULL, 4, "syntax error", NULL);
    expect_fail(HEAD "[train\nlr = 0.1\n", NULL, 3, "syntax error", NULL);
}
END_TEST

START_TEST(test_load_missing_name)
{
    expect_fail("[experiment]\ndescription = x\n[train]\nlr = 0.1\n", NULL, 0,
                "[experiment] name is missing", NULL);
    expect_fail("[train]\nlr = 0.1\n", NULL, 0, "[experiment] name is missing", NULL);
}
END_TEST

START_TEST(test_load_unknown_preset)
{
    const char *text = HEAD "[preset.quick]\ntrain.steps = 10\n[preset.paper]\n"
                            "train.steps = 20000\n";
    expect_fail(text, "huge", 0, "no preset 'huge'", "presets: quick, paper)", NULL);
    expect_fail(HEAD, "quick", 0, "no preset 'quick'", "this file defines none", NULL);
    /* a default_preset that does not exist points at its own line */
    expect_fail("[experiment]\nname = t\ndefault_preset = quik\n[preset.quick]\n"
                "train.steps = 10\n",
                NULL, 3, "default_preset = 'quik'", "no such preset", "presets: quick)", NULL);
    /* "none" always means the bare file */
    sp_experiment *ex = load_ok("a.ini", text, "none");
    ck_assert_str_eq(ex->preset, "");
    ck_assert_int_eq(ex->base.steps, 20000);
    sp_experiment_free(ex);
}
END_TEST

START_TEST(test_load_error_in_unchosen_preset)
{
    const char *opt = HEAD "[preset.a]\ntrain.steps = 10\n[preset.b]\ntrain.steps = 10\n"
                           "train.batch = -5\n";
    expect_fail(opt, "a", 7, "[preset.b] train.batch = '-5'", "[1, 1048576]", NULL);
    expect_fail(opt, "none", 7, "[preset.b] train.batch = '-5'", NULL);
    const char *sweep = HEAD "[preset.a]\ntrain.steps = 10\n[preset.b]\n"
                             "sweep.train.coef = 0.1, oops\n";
    expect_fail(sweep, "a", 6, "[preset.b] sweep.train.coef", "train.coef = 'oops'", NULL);
    expect_fail(HEAD "[preset.a]\ntrain.steps = 10\n[preset.b]\nsteps = 10\n", "a", 6,
                "[preset.b] steps", "write section.key", NULL);
    expect_fail(HEAD "[preset.a]\nfoo.bar = 1\n", "none", 4, "[preset.a] foo.bar",
                "unknown section 'foo'", "allowed: data, model, train, metrics", NULL);
    expect_fail(HEAD "[preset.a]\ntrain.bogus = 1\n", "none", 4, "[preset.a] train.bogus",
                "unknown key 'bogus'", "allowed: penalty, coef", NULL);
}
END_TEST

START_TEST(test_load_bad_list)
{
    expect_fail(HEAD "[sweep]\ntrain.coef = 0.1, , 1\n", NULL, 4, "[sweep] train.coef",
                "value 2 of the list is empty", NULL);
    expect_fail(HEAD "[sweep]\ntrain.coef = 0.1,,1\n", NULL, 4, "value 2 of the list is empty",
                NULL);
    expect_fail(HEAD "[sweep]\ntrain.coef = 0.1, 1,\n", NULL, 4, "value 3 of the list is empty",
                NULL);
    expect_fail(HEAD "[sweep]\ntrain.coef = ,0.1\n", NULL, 4, "value 1 of the list is empty",
                NULL);
    expect_fail(HEAD "[sweep]\ntrain.coef =\n", NULL, 4, "empty list", NULL);
    expect_fail(HEAD "[sweep]\ntrain.coef = 0.1, 0.10\n", NULL, 4, "appears twice", NULL);
    expect_fail(HEAD "[sweep]\ntrain.batch = 16, -5\n", NULL, 4, "train.batch = '-5'",
                "[1, 1048576]", NULL);
    expect_fail(HEAD "[sweep]\ncoef = 0.1, 1\n", NULL, 4, "unknown option 'coef' to sweep",
                "section.key", NULL);
    expect_fail(HEAD "[sweep]\ntrain.nope = 0.1, 1\n", NULL, 4, "unknown option 'train.nope'",
                NULL);
}
END_TEST

START_TEST(test_load_bad_logspace)
{
    static const char *bad[] = {
        "logspace(-2, 2, 0)",   "logspace(-2, 2, 2.5)",  "logspace(-2, 2, 300)",
        "logspace(-2, 2)",      "logspace(-2, 2, 17",    "logspace(-2, 2, 17) x",
        "logspace(a, 2, 17)",   "logspace(-2, 2, 5, 0)", "linspace(0, 1, 5, 2)",
        "logspace(-2, 2, 5, 2, 3)",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[256], quoted[64];
        snprintf(text, sizeof text, HEAD "[sweep]\ntrain.coef = %s\n", bad[i]);
        snprintf(quoted, sizeof quoted, "train.coef = '%s'", bad[i]);
        expect_fail(text, NULL, 4, quoted, "logspace(a, b, n[, base])", "1 <= n <= 256", NULL);
    }
    /* values out of the option's range are the option's error */
    expect_fail(HEAD "[sweep]\ntrain.batch = linspace(0, 4, 5)\n", NULL, 4,
                "train.batch = '0'", NULL);
}
END_TEST

START_TEST(test_load_figure_errors)
{
#define SWEPT HEAD "[sweep]\ntrain.coef = 0.1, 1\nmodel.ratio = 1, 2\n" /* lines 3-5 */
    expect_fail(SWEPT "[figure.f]\nmetric = mmcs\nx = data.d\ny = train.coef\n", NULL, 8,
                "[figure.f] x = 'data.d'", "must be a sweep axis (train.coef, model.ratio)", NULL);
    expect_fail(SWEPT "[figure.f]\nx = model.ratio\ny = coef\nmetric = mmcs\n", NULL, 8,
                "[figure.f] y = 'coef'", "must be a sweep axis", NULL);
    expect_fail(HEAD "[figure.f]\nx = train.coef\n", NULL, 4, "x = 'train.coef'",
                "this file sweeps nothing", NULL);
    expect_fail(SWEPT "[figure.f]\nx = model.ratio\ny = train.coef\nmetric = accuracy\n", NULL, 9,
                "[figure.f] metric = 'accuracy'", "unknown metric",
                "allowed: mmcs, mmcs_rev, dead", "mmcs_next", NULL);
    expect_fail(SWEPT "[figure.f]\nx = model.ratio\ny = train.coef\n", NULL, 7,
                "[figure.f] metric is missing", NULL);
    expect_fail(SWEPT "[figure.f]\nx = model.ratio\nmetric = mmcs\n", NULL, 7,
                "[figure.f] y is missing", "train.coef, model.ratio", NULL);
    expect_fail(SWEPT "[figure.f]\nkind = scatter\n", NULL, 7, "kind = 'scatter'", "heatmap",
                NULL);
    expect_fail(SWEPT "[figure.f]\ncolour = red\n", NULL, 7, "unknown key 'colour'",
                "allowed: kind, x, y", NULL);
    expect_fail(SWEPT "[figure.f]\nzmax = high\n", NULL, 7, "zmax = 'high'", "number", NULL);
    static const char *bad_fmt[] = {"%d", "%s", "%n", "%.2f%.2f", "x", "%", "%.2"};
    for (size_t i = 0; i < sizeof bad_fmt / sizeof bad_fmt[0]; i++) {
        char text[300], quoted[32];
        snprintf(text, sizeof text, SWEPT "[figure.f]\nx = model.ratio\nformat = %s\n",
                 bad_fmt[i]);
        snprintf(quoted, sizeof quoted, "format = '%s'", bad_fmt[i]);
        expect_fail(text, NULL, 8, quoted, "%e, %f or %g", NULL);
    }
    sp_experiment *ex = load_ok("ok.ini", SWEPT "[figure.f]\nx = model.ratio\ny = train.coef\n"
                                                "metric = dead\nformat = %+8.1e %%\n",
                                "none");
    ck_assert_uint_eq(ex->n_figs, 1);
    ck_assert_str_eq(ex->figs[0].format, "%+8.1e %%");
    ck_assert_str_eq(ex->figs[0].x, "model.ratio");
    ck_assert(isnan(ex->figs[0].cap));
    sp_experiment_free(ex);
#undef SWEPT
}
END_TEST

START_TEST(test_load_cross_check_names_point)
{
    expect_fail(HEAD "[data]\nd = 4\nn = 8\n[sweep]\ndata.k = 2, 9\ntrain.seed = 1, 2\n", NULL,
                0, "invalid run (data.k=9, train.seed=1)", "data.k", "data.n", NULL);
    expect_fail(HEAD "[data]\nn = 8\nk = 9\n", NULL, 0, "invalid run: ", "data.k", NULL);
}
END_TEST

START_TEST(test_load_missing_file)
{
    char path[512];
    sp_err err = {{0}};
    snprintf(path, sizeof path, "%s/nope.ini", dir);
    ck_assert_ptr_null(sp_experiment_load(path, NULL, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, path));
    ck_assert_ptr_nonnull(strstr(err.msg, "cannot open"));
    ck_assert_ptr_null(sp_experiment_load(dir, NULL, &err)); /* a folder opens, reads fail */
    ck_assert_ptr_nonnull(strstr(err.msg, dir));
    ck_assert_msg(strstr(err.msg, "cannot read") != NULL, "%s", err.msg);
}
END_TEST

/* --------------------------------------------------------------- sweeps */

START_TEST(test_logspace_decimal)
{
    sp_experiment *ex = load_ok("a.ini", HEAD "[sweep]\ntrain.coef = logspace(-2, 2, 17)\n", NULL);
    ck_assert_uint_eq(ex->n_axes, 1);
    const sp_axis *ax = &ex->axes[0];
    ck_assert_str_eq(ax->name, "train.coef");
    ck_assert_int_eq(ax->line, 4);
    ck_assert_uint_eq(ax->n, 17);
    for (int k = -8; k <= 8; k++) {
        double v = strtod(ax->values[k + 8], NULL);
        ck_assert_msg(rel_close(v, pow(10, k / 4.0), 1e-12), "10^(%d/4): %s", k,
                      ax->values[k + 8]);
    }
    ck_assert_str_eq(ax->values[0], "0.01");
    ck_assert_str_eq(ax->values[8], "1");
    ck_assert_str_eq(ax->values[16], "100");
    ck_assert_str_eq(ax->labels[1], "0.0178");
    ck_assert_uint_eq(sp_experiment_n_runs(ex), 17);
    sp_experiment_free(ex);
}
END_TEST

START_TEST(test_logspace_base2)
{
    sp_experiment *ex = load_ok("a.ini",
                                HEAD "[sweep]\nmodel.ratio = logspace(-2, 5, 8, 2)\n"
                                     "train.coef = linspace(0, 1, 11)\n",
                                NULL);
    const sp_axis *ax = &ex->axes[0];
    ck_assert_uint_eq(ax->n, 8);
    static const char *want[] = {"0.25", "0.5", "1", "2", "4", "8", "16", "32"};
    for (size_t i = 0; i < 8; i++) {
        ck_assert_str_eq(ax->values[i], want[i]);
        ck_assert_double_eq(strtod(ax->values[i], NULL), ldexp(1, (int)i - 2));
    }
    ck_assert_uint_eq(ex->axes[1].n, 11);
    ck_assert_str_eq(ex->axes[1].values[0], "0");
    ck_assert_double_eq(strtod(ex->axes[1].values[3], NULL), 0.3);
    ck_assert_str_eq(ex->axes[1].values[10], "1");
    ck_assert_uint_eq(sp_experiment_n_runs(ex), 88);
    sp_experiment_free(ex);
}
END_TEST

START_TEST(test_list_order)
{
    sp_experiment *ex = load_ok("a.ini",
                                HEAD "[sweep]\ntrain.coef = 3, 1, 2.5\n"
                                     "train.coef_scale = dict, none\n"
                                     "data.correlation = copula, none\n",
                                NULL);
    ck_assert_uint_eq(ex->n_axes, 3);
    ck_assert_str_eq(ex->axes[0].values[0], "3");
    ck_assert_str_eq(ex->axes[0].values[1], "1");
    ck_assert_str_eq(ex->axes[0].values[2], "2.5");
    ck_assert_str_eq(ex->axes[1].values[0], "dict");
    ck_assert_str_eq(ex->axes[1].values[1], "none");
    ck_assert_str_eq(ex->axes[2].values[0], "copula");
    ck_assert_str_eq(ex->axes[2].values[1], "none");
    ck_assert_uint_eq(sp_experiment_n_runs(ex), 12);
    sp_experiment_free(ex);
}
END_TEST

START_TEST(test_preset_replaces_axis)
{
    const char *text = HEAD "[train]\nsteps = 100\n[sweep]\ntrain.coef = 1, 2, 3\n"
                            "model.ratio = 1, 2\n[preset.p]\ntrain.steps = 7\n"
                            "sweep.train.coef = 5, 6\nsweep.data.seed = 1, 2, 3, 4\n"
                            "[preset.q]\ntrain.steps = 9\n";
    sp_experiment *ex = load_ok("a.ini", text, "p");
    ck_assert_str_eq(ex->preset, "p");
    ck_assert_int_eq(ex->base.steps, 7);
    ck_assert_uint_eq(ex->n_axes, 3);
    ck_assert_int_eq(sp_experiment_axis(ex, "train.coef"), 0); /* replaced in place */
    ck_assert_uint_eq(ex->axes[0].n, 2);
    ck_assert_str_eq(ex->axes[0].values[0], "5");
    ck_assert_int_eq(ex->axes[0].line, 10);
    ck_assert_int_eq(sp_experiment_axis(ex, "model.ratio"), 1);
    ck_assert_int_eq(sp_experiment_axis(ex, "data.seed"), 2);
    ck_assert_int_eq(sp_experiment_axis(ex, "data.d"), -1);
    ck_assert_uint_eq(sp_experiment_n_runs(ex), 2 * 2 * 4);
    sp_experiment_free(ex);

    ex = load_ok("a.ini", text, "q"); /* the other preset leaves the axes alone */
    ck_assert_int_eq(ex->base.steps, 9);
    ck_assert_uint_eq(ex->n_axes, 2);
    ck_assert_uint_eq(ex->axes[0].n, 3);
    ck_assert_uint_eq(sp_experiment_n_runs(ex), 6);
    sp_experiment_free(ex);
}
END_TEST

START_TEST(test_grid_walk)
{
    sp_experiment *ex = load_ok("a.ini",
                                HEAD "[train]\nbatch = 32\n[sweep]\ndata.seed = 10, 20\n"
                                     "train.coef = 0.5, 0.25, 0.125\ntrain.seed = 7, 8\n",
                                NULL);
    ck_assert_uint_eq(sp_experiment_n_runs(ex), 12);
    static const double l1[] = {0.5, 0.25, 0.125};
    char keys[12][17];
    for (size_t i = 0; i < 12; i++) {
        sp_run_cfg c;
        size_t coords[SP_MAX_AXES];
        sp_err err = {{0}};
        ck_assert_int_eq(sp_experiment_run_cfg(ex, i, &c, coords, &err), 0);
        ck_assert_uint_eq(coords[0], i / 6);
        ck_assert_uint_eq(coords[1], (i / 2) % 3);
        ck_assert_uint_eq(coords[2], i % 2); /* last axis fastest */
        ck_assert_int_eq(c.data.seed, 10 * (long)(coords[0] + 1));
        ck_assert_double_eq(c.penalty.coef, l1[coords[1]]);
        ck_assert_int_eq(c.seed, 7 + (long)coords[2]);
        ck_assert_int_eq(c.batch, 32); /* the base holds the rest */
        sp_config_key(&c, keys[i]);
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(keys[i], keys[j]);
    }
    sp_experiment_free(ex);
}
END_TEST

START_TEST(test_canonical_values_same_key)
{
    sp_experiment *a = load_ok("a.ini", HEAD "[train]\ncoef = 0.1\nlr = 0.001\n"
                                             "[sweep]\nmodel.ratio = 0.5, 2\n",
                               NULL);
    sp_experiment *b = load_ok("b.ini", HEAD "[train]\ncoef = 0.10\nlr = 1e-3\n"
                                             "[sweep]\nmodel.ratio = 0.50, 2.0\n",
                               NULL);
    sp_experiment *c = load_ok("c.ini", HEAD "[train]\ncoef = .1\n[sweep]\n"
                                             "model.ratio = 5e-1, 20e-1\n",
                               NULL);
    ck_assert_str_eq(a->axes[0].values[0], b->axes[0].values[0]);
    for (size_t i = 0; i < 2; i++) {
        char ka[17], kb[17], kc[17];
        key_of(a, i, ka);
        key_of(b, i, kb);
        key_of(c, i, kc);
        ck_assert_str_eq(ka, kb);
        ck_assert_str_eq(ka, kc);
    }
    sp_experiment_free(a);
    sp_experiment_free(b);
    sp_experiment_free(c);
}
END_TEST

/* ------------------------------------------------ the real experiment */

START_TEST(test_real_paper)
{
    sp_err err = {{0}};
    sp_experiment *ex = sp_experiment_load(SP_REAL_INI, "paper", &err);
    ck_assert_msg(ex != NULL, "%s", err.msg);
    ck_assert_str_eq(ex->name, "sharkey-recovery");
    ck_assert_str_eq(ex->preset, "paper");
    ck_assert_int_eq(ex->preset_is_default, 0);
    ck_assert_uint_eq(ex->n_axes, 2);
    ck_assert_uint_eq(sp_experiment_n_runs(ex), 136);
    const sp_axis *l1 = &ex->axes[sp_experiment_axis(ex, "train.coef")];
    const sp_axis *ratio = &ex->axes[sp_experiment_axis(ex, "model.ratio")];
    ck_assert_uint_eq(l1->n, 17);
    ck_assert_uint_eq(ratio->n, 8);
    ck_assert_str_eq(l1->values[0], "0.01");
    ck_assert_str_eq(l1->values[16], "100");
    ck_assert_str_eq(ratio->values[0], "0.25");
    ck_assert_str_eq(ratio->values[7], "32");
    const sp_run_cfg *b = &ex->base;
    ck_assert_int_eq(b->data.d, 256);
    ck_assert_int_eq(b->data.n, 512);
    ck_assert_int_eq(b->steps, 20000);
    ck_assert_int_eq(b->batch, 256);
    ck_assert_double_eq(b->optim.lr, 0.001);
    ck_assert_int_eq(b->penalty.per_latent, 1); /* l1_scale = dict */
    ck_assert_uint_eq(ex->n_figs, 3);
    ck_assert_str_eq(ex->figs[1].metric, "dead");
    ck_assert_double_eq(ex->figs[1].cap, 100);
    /* the last run: largest l1, largest ratio */
    sp_run_cfg c;
    size_t coords[SP_MAX_AXES];
    ck_assert_int_eq(sp_experiment_run_cfg(ex, 135, &c, coords, &err), 0);
    ck_assert_double_eq(c.penalty.coef, 100);
    ck_assert_double_eq(c.model.ratio, 32);
    ck_assert_uint_eq(sp_config_latents(&c), 32 * 512);
    sp_experiment_free(ex);
}
END_TEST

START_TEST(test_real_quick)
{
    sp_err err = {{0}};
    sp_experiment *ex = sp_experiment_load(SP_REAL_INI, NULL, &err);
    ck_assert_msg(ex != NULL, "%s", err.msg);
    ck_assert_str_eq(ex->preset, "quick");
    ck_assert_int_eq(ex->preset_is_default, 1);
    ck_assert_int_eq(ex->base.data.d, 64);
    ck_assert_int_eq(ex->base.data.n, 128);
    ck_assert_int_eq(ex->base.steps, 3000);
    ck_assert_uint_eq(sp_experiment_n_runs(ex), 9 * 5);
    sp_experiment_free(ex);

    ex = sp_experiment_load(SP_REAL_INI, "none", &err);
    ck_assert_msg(ex != NULL, "%s", err.msg);
    ck_assert_int_eq(ex->base.data.d, 256);
    ck_assert_uint_eq(sp_experiment_n_runs(ex), 136);
    sp_experiment_free(ex);
}
END_TEST

/* ------------------------------------------------------------------ CLI */

START_TEST(test_cli_run_missing)
{
    char out[4096];
    ck_assert_int_eq(cli(out, sizeof out, "run missing.ini"), 2);
    ck_assert_msg(strstr(out, "missing.ini") && strstr(out, "cannot open"), "%s", out);
    ck_assert_int_eq(cli(out, sizeof out, "run"), 2);
    ck_assert_ptr_nonnull(strstr(out, "usage: superpose run"));
}
END_TEST

START_TEST(test_cli_run_bad_file)
{
    char out[4096], path[512], want[600];
    write_file("bad.ini", HEAD "[train]\nlr = 0.01\nfoo = 1\n", path, sizeof path);
    ck_assert_int_eq(cli(out, sizeof out, "run bad.ini"), 2);
    ck_assert_msg(strstr(out, "bad.ini:5:") && strstr(out, "unknown key 'foo'"), "%s", out);
    snprintf(want, sizeof want, "%s/bad.ini:5:", dir);
    ck_assert_int_eq(cli(out, sizeof out, "run '%s' --no-plot", path), 2);
    ck_assert_msg(strstr(out, want) != NULL, "%s", out);
    ck_assert_int_eq(cli(out, sizeof out, "run '%s' --preset nope", path), 2);
}
END_TEST

START_TEST(test_cli_train_bad_input)
{
    char out[4096];
    ck_assert_int_eq(cli(out, sizeof out, "train batch=-5"), 2);
    ck_assert_msg(strstr(out, "train.batch = '-5'") && strstr(out, "[1, 1048576]"), "%s", out);
    ck_assert_int_eq(cli(out, sizeof out, "train foo=1"), 2);
    ck_assert_msg(strstr(out, "unknown key 'foo'"), "%s", out);
    ck_assert_int_eq(cli(out, sizeof out, "train seed=1"), 2);
    ck_assert_msg(strstr(out, "ambiguous key 'seed'") && strstr(out, "data.seed or train.seed"),
                  "%s", out);
    ck_assert_int_eq(cli(out, sizeof out, "train steps"), 2);
    ck_assert_msg(strstr(out, "expected key=value"), "%s", out);
    ck_assert_int_eq(cli(out, sizeof out, "train data.n=8 data.k=9"), 2); /* cross check */
    ck_assert_msg(strstr(out, "data.k"), "%s", out);
}
END_TEST

START_TEST(test_cli_unwritable_out)
{
    char out[4096], path[512];
    write_file("tiny.ini", TINY, path, sizeof path);
    write_file("afile", "a regular file\n", path, sizeof path);
    int rc = cli(out, sizeof out, "run tiny.ini --no-plot --out afile/sub");
    ck_assert_msg(rc == 1, "exit %d: %s", rc, out);
    ck_assert_msg(strstr(out, "afile/sub") && strstr(out, "folder"), "%s", out);
    if (access("/proc/self", F_OK) == 0) { /* else /proc/forbidden could be created */
        rc = cli(out, sizeof out, "run tiny.ini --no-plot --out /proc/forbidden");
        ck_assert_msg(rc == 1, "exit %d: %s", rc, out);
        ck_assert_msg(strstr(out, "/proc/forbidden") && strstr(out, "folder"), "%s", out);
    }
}
END_TEST

START_TEST(test_cli_help_train)
{
    static char out[32768];
    ck_assert_int_eq(cli(out, sizeof out, "help train"), 0);
    size_t n;
    const sp_opt *o = sp_config_options(&n);
    for (size_t i = 0; i < n; i++) {
        char name[80];
        int found = 0;
        snprintf(name, sizeof name, "%s.%s", o[i].section, o[i].key);
        for (char *line = out; line && *line && !found;) {
            char *nl = strchr(line, '\n');
            char got_name[80], eq[4], got_def[80];
            if (sscanf(line, " %79s %3s %79s", got_name, eq, got_def) == 3 &&
                !strcmp(got_name, name)) {
                ck_assert_str_eq(eq, "=");
                ck_assert_msg(!strcmp(got_def, o[i].def[0] ? o[i].def : "\"\""),
                              "%s: default '%s', listed '%s'", name,
                              o[i].def, got_def);
                found = 1;
            }
            line = nl ? nl + 1 : NULL;
        }
        ck_assert_msg(found, "`superpose help train` does not list %s", name);
    }
    ck_assert_ptr_nonnull(strstr(out, "train.lr"));
    ck_assert_ptr_nonnull(strstr(out, "0.001"));
    ck_assert_ptr_nonnull(strstr(out, "(1..1048576)")); /* integer ranges in full */
    ck_assert_ptr_nonnull(strstr(out, "(none|dict)"));
    ck_assert_int_eq(cli(out, sizeof out, "help nosuch"), 2);
}
END_TEST

START_TEST(test_cli_results_missing)
{
    char out[4096], path[512];
    int rc = cli(out, sizeof out, "results /nonexistent.db");
    ck_assert_msg(rc != 0, "exit 0: %s", out);
    ck_assert_msg(strstr(out, "/nonexistent.db") && strstr(out, "cannot read"), "%s", out);
    write_file("junk.db", "not a database\n", path, sizeof path);
    rc = cli(out, sizeof out, "results junk.db");
    ck_assert_msg(rc != 0, "exit 0: %s", out);
    ck_assert_msg(strstr(out, "junk.db"), "%s", out);
    ck_assert_int_eq(cli(out, sizeof out, "results"), 2);
}
END_TEST

/* ------------------------------------------------------ feature trees */

#define TREE HEAD "[data]\ngenerator = tree\nd = 8\n" /* lines 1-5 */

START_TEST(test_tree_loads)
{
    sp_experiment *ex = load_ok("tree.ini",
                                TREE "[feature.p]\np = 0.15\ncount = 3\nexclusive = yes\n"
                                     "[feature.c]\nparent = p\np = 0.2\ncount = 3\n"
                                     "[feature.free]\np = 0.05\ncount = 2\n"
                                     "magnitude = folded_normal\nmag_mean = 1\nmag_std = 0.3\n",
                                NULL);
    const sp_gen_cfg *d = &ex->base.data;
    ck_assert_int_eq(d->n_nodes, 3);
    ck_assert_int_eq(d->n, 3 + 9 + 2); /* data.n comes from the tree */
    ck_assert_str_eq(d->nodes[1].parent, "p");
    ck_assert_int_eq(d->nodes[0].exclusive, 1);
    ck_assert_int_eq(d->nodes[0].line, 7); /* the node's first key */
    ck_assert_str_eq(d->nodes[2].mag.law, "folded_normal");
    ck_assert_double_eq(d->nodes[2].mag.std, 0.3);
    /* the tree is part of the run key */
    char k1[17], k2[17];
    sp_config_key(&ex->base, k1);
    sp_run_cfg c = ex->base;
    c.data.nodes[1].p = 0.25;
    sp_config_key(&c, k2);
    ck_assert_str_ne(k1, k2);
    char *canon = sp_config_canonical(&ex->base);
    ck_assert_ptr_nonnull(strstr(canon, "data.node.c=parent:p p:0.20000000000000001"));
    free(canon);
    sp_experiment_free(ex);
}
END_TEST

START_TEST(test_tree_errors_name_node)
{
    /* a cycle: the message names the node, its file line and the loop */
    expect_fail(TREE "[feature.a]\nparent = b\np = 0.5\n[feature.b]\nparent = a\np = 0.5\n", NULL,
                7, "[feature.a]", "cycle", "a -> b -> a", NULL);
    /* a probability outside [0, 1], at its own line */
    expect_fail(TREE "[feature.a]\np = 0.5\n[feature.b]\nparent = a\np = 1.5\n", NULL, 10,
                "[feature.b] p = '1.5'", "[0, 1]", NULL);
    /* an unknown law */
    expect_fail(TREE "[feature.a]\np = 0.5\nmagnitude = lognormal\n", NULL, 8,
                "[feature.a] magnitude = 'lognormal'", "constant, uniform, exponential",
                NULL);
    /* exclusive children summing past 1: the parent is named */
    expect_fail(TREE "[feature.a]\np = 0.5\nexclusive = true\n[feature.b]\nparent = a\n"
                     "p = 0.6\n[feature.c]\nparent = a\np = 0.5\n",
                NULL, 7, "[feature.a]", "exclusive", "1.1", NULL);
    /* an unknown parent */
    expect_fail(TREE "[feature.a]\np = 0.5\n[feature.b]\nparent = x\np = 0.1\n", NULL, 9,
                "[feature.b]", "parent 'x'", NULL);
    /* a missing p, an unknown key, feature sections without a tree */
    expect_fail(TREE "[feature.a]\ncount = 2\n", NULL, 7, "[feature.a]", "p is missing", NULL);
    expect_fail(TREE "[feature.a]\np = 0.5\nprob = 3\n", NULL, 8, "unknown key 'prob'",
                "parent, p, exclusive", NULL);
    expect_fail(HEAD "[data]\nd = 8\n[feature.a]\np = 0.5\n", NULL, 6,
                "data.generator = tree", NULL);
    expect_fail(TREE, NULL, 0, "needs [feature.NAME] sections", NULL);
    expect_fail(TREE "[feature.a]\np = 0.5\ncount = 0\n", NULL, 8, "count = '0'", NULL);
}
END_TEST

/* Bad values of the new data keys name file, line and key. */
START_TEST(test_data_law_errors)
{
    expect_fail(HEAD "[data]\ngenerator = features\nfiring = poisson\n", NULL, 5,
                "data.firing = 'poisson'", "constant, decay, zipf, list", NULL);
    expect_fail(HEAD "[data]\ngenerator = features\nd = 8\nn = 3\nfiring = list\n"
                     "probs = 0.1, 0.2\n",
                NULL, 0, "data.probs", "2 values", NULL);
    expect_fail(HEAD "[data]\ngenerator = features\nd = 4\nn = 8\ngeometry = orthonormal\n",
                NULL, 0, "orthonormal", NULL);
    expect_fail(HEAD "[data]\ngenerator = tms\ncorrelation = copula\nd = 2\nn = 5\n", NULL, 0,
                "tms", NULL);
}
END_TEST

/* `superpose gen` writes X = codes @ truth (checked here from the files)
 * and refuses bad input with exit code 2. */
START_TEST(test_cli_gen)
{
    static char out[8192];
    char path[512];
    write_file("g.ini",
               HEAD "[data]\ngenerator = features\nd = 6\nn = 5\nfiring = constant\np = 0.4\n"
                    "continuous = 1\ncontinuous_dim = 2\n",
               path, sizeof path);
    int rc = cli(out, sizeof out, "gen g.ini -n 300 -o gdata");
    ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
    char f[600];
    float *X, *A, *G;
    size_t xr, xc, ar, ac, gr, gc;
    sp_err e;
    snprintf(f, sizeof f, "%s/gdata/X.npy", dir);
    ck_assert_int_eq(sp_npy_read_f32(f, &X, &xr, &xc, &e), 0);
    snprintf(f, sizeof f, "%s/gdata/codes.npy", dir);
    ck_assert_int_eq(sp_npy_read_f32(f, &A, &ar, &ac, &e), 0);
    snprintf(f, sizeof f, "%s/gdata/truth.npy", dir);
    ck_assert_int_eq(sp_npy_read_f32(f, &G, &gr, &gc, &e), 0);
    ck_assert_uint_eq(xr, 300);
    ck_assert_uint_eq(xc, 6);
    ck_assert_uint_eq(ar, 300);
    ck_assert_uint_eq(ac, 7); /* 5 point features + a 2-D continuous one */
    ck_assert_uint_eq(gr, 7);
    double worst = 0, active = 0;
    for (size_t b = 0; b < 300; b++)
        for (size_t j = 0; j < 6; j++) {
            double v = 0;
            for (size_t i = 0; i < 7; i++)
                v += (double)A[b * 7 + i] * G[i * 6 + j];
            worst = fmax(worst, fabs(v - X[b * 6 + j]));
        }
    for (size_t t = 0; t < 300 * 7; t++)
        active += A[t] != 0;
    ck_assert_msg(worst < 1e-5, "X differs from codes @ truth by %g", worst);
    ck_assert_msg(active > 300, "only %g active codes", active);
    free(X);
    free(A);
    free(G);
    rc = cli(out, sizeof out, "gen g.ini --run 3");
    ck_assert_msg(rc == 2 && strstr(out, "the sweep has 1 runs"), "exit %d: %s", rc, out);
    rc = cli(out, sizeof out, "gen g.ini data.p=2");
    ck_assert_msg(rc == 2 && strstr(out, "data.p"), "exit %d: %s", rc, out);
    rc = cli(out, sizeof out, "gen g.ini -n 0");
    ck_assert_msg(rc == 2 && strstr(out, "--samples"), "exit %d: %s", rc, out);
}
END_TEST

/* Variants and levels: the variant axis comes first, a variant's list is
 * indexed by the level, its scalars are set on every run, and it wins over
 * the base settings; lists need a level axis of the same length. */
START_TEST(test_variants_and_levels)
{
    sp_experiment *ex = load_ok("v.ini", HEAD "[sweep]\nlevel = 3\ntrain.seed = 0, 1\n"
                                "[variant.l1]\ntrain.penalty = l1\ntrain.coef = 0.1, 0.2, 0.4\n"
                                "[variant.top]\nmodel.arch = topk\ntrain.penalty = none\n"
                                "model.k = 8, 4, 2\n"
                                "[figure.f]\nkind = frontier\nx = l0\ny = mse\nseries = variant\n",
                                NULL);
    ck_assert_uint_eq(ex->n_axes, 3);
    ck_assert_str_eq(ex->axes[0].name, "variant");
    ck_assert_str_eq(ex->axes[1].name, "level");
    ck_assert_uint_eq(sp_experiment_n_runs(ex), 12);
    size_t coords[SP_MAX_AXES];
    sp_run_cfg c;
    sp_err e;
    /* run 0..5: l1 with levels 1..3 x seeds 0, 1; run 6..11: top */
    ck_assert_int_eq(sp_experiment_run_cfg(ex, 3, &c, coords, &e), 0);
    ck_assert_str_eq(c.penalty.name, "l1");
    ck_assert_double_eq(c.penalty.coef, 0.2);
    ck_assert_int_eq(c.seed, 1);
    ck_assert_int_eq(sp_experiment_run_cfg(ex, 10, &c, coords, &e), 0);
    ck_assert_str_eq(c.model.arch, "topk");
    ck_assert_str_eq(c.penalty.name, "none");
    ck_assert_int_eq(c.model.k, 2);
    ck_assert_uint_eq(coords[0], 1);
    ck_assert_uint_eq(coords[1], 2);
    ck_assert_int_eq(sp_config_check(&c, &e), 0);
    sp_experiment_free(ex);
    expect_fail(HEAD "[variant.a]\ntrain.coef = 1, 2\n", NULL, 4, "[variant.a] train.coef",
                "a list needs [sweep] level = N", NULL);
    expect_fail(HEAD "[sweep]\nlevel = 3\n[variant.a]\ntrain.coef = 1, 2\n", NULL, 6,
                "2 values", NULL);
    expect_fail(HEAD "[sweep]\nlevel = 0\n", NULL, 4, "number of levels", NULL);
    expect_fail(HEAD "[variant.a]\nmodel.archh = relu\n", NULL, 4, "unknown option", NULL);
    expect_fail(HEAD "[variant.a]\nmodel.arch = relux\n", NULL, 4, "model.arch = 'relux'",
                "relu, topk", NULL);
    expect_fail(HEAD "[figure.f]\nkind = frontier\nx = l0\ny = nope\n", NULL, 6,
                "y = 'nope'", NULL);
    expect_fail(HEAD "[figure.f]\nkind = curves\nmetric = mmcs\n", NULL, 4,
                "metrics.curve_every", NULL);
}
END_TEST

Suite *make_config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("options");
    tcase_add_test(tc, test_defaults_sharkey);
    tcase_add_test(tc, test_defaults_roundtrip);
    tcase_add_test(tc, test_canonical_lists_every_option);
    tcase_add_test(tc, test_key_stable_and_sensitive);
    tcase_add_test(tc, test_find);
    tcase_add_test(tc, test_value_errors);
    tcase_add_test(tc, test_negative_zero_is_zero);
    suite_add_tcase(s, tc);

    tc = tcase_create("experiment errors");
    tcase_add_checked_fixture(tc, setup_dir, teardown_dir);
    tcase_add_test(tc, test_load_unknown_key);
    tcase_add_test(tc, test_load_bad_values);
    tcase_add_test(tc, test_load_unknown_section);
    tcase_add_test(tc, test_load_syntax_error);
    tcase_add_test(tc, test_load_missing_name);
    tcase_add_test(tc, test_load_unknown_preset);
    tcase_add_test(tc, test_load_error_in_unchosen_preset);
    tcase_add_test(tc, test_load_bad_list);
    tcase_add_test(tc, test_load_bad_logspace);
    tcase_add_test(tc, test_load_figure_errors);
    tcase_add_test(tc, test_load_cross_check_names_point);
    tcase_add_test(tc, test_load_missing_file);
    suite_add_tcase(s, tc);

    tc = tcase_create("sweeps");
    tcase_add_checked_fixture(tc, setup_dir, teardown_dir);
    tcase_add_test(tc, test_logspace_decimal);
    tcase_add_test(tc, test_logspace_base2);
    tcase_add_test(tc, test_list_order);
    tcase_add_test(tc, test_preset_replaces_axis);
    tcase_add_test(tc, test_grid_walk);
    tcase_add_test(tc, test_canonical_values_same_key);
    tcase_add_test(tc, test_real_paper);
    tcase_add_test(tc, test_real_quick);
    suite_add_tcase(s, tc);

    tc = tcase_create("cli");
    tcase_add_checked_fixture(tc, setup_dir, teardown_dir);
    tcase_add_test(tc, test_cli_run_missing);
    tcase_add_test(tc, test_cli_run_bad_file);
    tcase_add_test(tc, test_cli_train_bad_input);
    tcase_add_test(tc, test_cli_unwritable_out);
    tcase_add_test(tc, test_cli_help_train);
    tcase_add_test(tc, test_cli_results_missing);
    tcase_add_test(tc, test_cli_gen);
    suite_add_tcase(s, tc);
    TCase *tt = tcase_create("trees and laws");
    tcase_add_checked_fixture(tt, setup_dir, teardown_dir);
    tcase_add_test(tt, test_tree_loads);
    tcase_add_test(tt, test_variants_and_levels);
    tcase_add_test(tt, test_tree_errors_name_node);
    tcase_add_test(tt, test_data_law_errors);
    suite_add_tcase(s, tt);
    return s;
}
