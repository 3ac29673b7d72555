/* check_eval.c: `superpose eval` through the binary: known answers on
 * dictionaries and codes built by hand, the table and the JSON, every bad
 * input, and a fuzz of damaged and forged .npy files (a clean exit 1 or 2
 * with a message, never a signal). */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "superpose/npy.h"

#define BIN SP_SOURCE_DIR "/build/superpose"

/* ------------------------------------------------------------- helpers */

/* Runs `superpose eval ARGS...` (NULL-terminated), stdout and stderr
 * together into out (cap bytes, NUL-terminated). Returns the exit code, or
 * 1000 + the signal that killed it. */
static int run_eval(char *out, size_t cap, ...)
{
    const char *argv[40] = {BIN, "eval"};
    size_t n = 2;
    va_list ap;
    va_start(ap, cap);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 39)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    int fd[2];
    ck_assert_int_eq(pipe(fd), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fd[1], 1);
        dup2(fd[1], 2);
        close(fd[0]);
        close(fd[1]);
        execv(BIN, (char *const *)argv);
        _exit(127);
    }
    close(fd[1]);
    size_t len = 0;
    char buf[4096];
    ssize_t r;
    while ((r = read(fd[0], buf, sizeof buf)) > 0 || (r < 0 && errno == EINTR)) {
        if (r < 0)
            continue;
        size_t k = (size_t)r < cap - 1 - len ? (size_t)r : cap - 1 - len;
        memcpy(out + len, buf, k);
        len += k;
    }
    out[len] = '\0';
    close(fd[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        ck_assert_int_eq(errno, EINTR);
    return WIFSIGNALED(st) ? 1000 + WTERMSIG(st) : WEXITSTATUS(st);
}

/* The value on the table line of metric name (NaN for "n/a"); fails the
 * test when the line is missing. */
static double table_value(const char *out, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, name, len) == 0 && p[len] == ' ') {
            char v[64];
            ck_assert_int_eq(sscanf(p + len, "%63s", v), 1);
            return strcmp(v, "n/a") == 0 ? NAN : strtod(v, NULL);
        }
    ck_abort_msg("no line '%s' in:\n%s", name, out);
    return NAN;
}

static void skip_ws(const char **p)
{
    while (**p == ' ' || **p == '\n' || **p == '\t' || **p == '\r')
        (*p)++;
}

/* Parses a flat JSON object of numbers and nulls: -1 if it is malformed,
 * else the number of keys; *val receives key's value (NaN for null, and
 * stays untouched when the key is absent). */
static int json_flat(const char *s, const char *key, double *val)
{
    const char *p = s;
    int keys = 0;
    skip_ws(&p);
    if (*p++ != '{')
        return -1;
    skip_ws(&p);
    if (*p == '}')
        p++;
    else
        for (;;) {
            skip_ws(&p);
            if (*p++ != '"')
                return -1;
            const char *k0 = p;
            while (*p && *p != '"' && *p != '\\')
                p++;
            if (*p != '"')
                return -1;
            size_t klen = (size_t)(p++ - k0);
            skip_ws(&p);
            if (*p++ != ':')
                return -1;
            skip_ws(&p);
            double v;
            if (strncmp(p, "null", 4) == 0) {
                v = NAN;
                p += 4;
            } else {
                if (*p != '-' && (*p < '0' || *p > '9'))
                    return -1;
                char *end;
                v = strtod(p, &end);
                if (end == p || !isfinite(v))
                    return -1;
                p = end;
            }
            if (strlen(key) == klen && strncmp(k0, key, klen) == 0)
                *val = v;
            keys++;
            skip_ws(&p);
            if (*p == '}') {
                p++;
                break;
            }
            if (*p++ != ',')
                return -1;
        }
    skip_ws(&p);
    return *p ? -1 : keys;
}

static void put(const char *dir, const char *name, const float *a, size_t r, size_t c,
                char *path, size_t len)
{
    snprintf(path, len, "%s/%s", dir, name);
    sp_err e;
    ck_assert_msg(sp_npy_write_f32(path, a, r, c, &e) == 0, "%s", e.msg);
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    unsigned char *b = malloc((size_t)len);
    ck_assert_uint_eq(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* A .npy image by hand (as check_npy.c): preamble of version major, the
 * dict padded to 64 bytes, then the data. */
static size_t make_npy(unsigned char *out, int major, const char *dict, const void *data,
                       size_t data_len)
{
    size_t pre = major == 1 ? 10 : 12, len = strlen(dict);
    size_t pad = (64 - (pre + len + 1) % 64) % 64, hlen = len + pad + 1;
    memcpy(out, "\x93NUMPY", 6);
    out[6] = (unsigned char)major;
    out[7] = 0;
    for (size_t k = 0; k < pre - 8; k++)
        out[8 + k] = (unsigned char)(hlen >> (8 * k));
    memcpy(out + pre, dict, len);
    memset(out + pre + len, ' ', pad);
    out[pre + len + pad] = '\n';
    memcpy(out + pre + hlen, data, data_len);
    return pre + hlen + data_len;
}

/* 4 truth features in 6-D: rows of an orthogonal matrix built from Givens
 * rotations (cosines between rows ~1e-8), and its remaining 2 rows. */
static void rotated_basis(float q[6][6])
{
    double Q[6][6] = {{0}};
    for (int i = 0; i < 6; i++)
        Q[i][i] = 1;
    static const int pairs[][2] = {{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}, {0, 3}, {1, 5}};
    for (int r = 0; r < 7; r++) {
        double t = 0.3 + 0.7 * r, c = cos(t), s = sin(t);
        int a = pairs[r][0], b = pairs[r][1];
        for (int j = 0; j < 6; j++) {
            double x = Q[a][j], y = Q[b][j];
            Q[a][j] = c * x - s * y;
            Q[b][j] = s * x + c * y;
        }
    }
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 6; j++)
            q[i][j] = (float)Q[i][j];
}

/* Removes a test's folder of files. */
static void rm_dir(const char *dir)
{
    DIR *dp = opendir(dir);
    if (!dp)
        return;
    struct dirent *e;
    char path[1024];
    while ((e = readdir(dp)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(dp);
    rmdir(dir);
}

#define OUT_CAP 16384

/* ------------------------------------------------------- known answers */

/* A permuted copy of the truth with atoms of norm 2: every measure of
 * recovery is 1. The same copy with atom 2 negated (it stands for feature 3,
 * orthogonal to every other feature): MCC (|cos|) is still 1, but the
 * signed measures lose that feature: its best cosine with any atom is ~0
 * (the negated atom has -1), so MMCS = MMCS_rev = 3/4; no atom has cos > tau
 * with it, so split = 3/4; the negated atom's best match is a feature
 * another atom already stands for, so uniqueness = 3/4. */
START_TEST(test_permuted_flipped)
{
    char tmp[256], G[512], D[512], F[512], out[OUT_CAP];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    float q[6][6], dict[4][6];
    rotated_basis(q);
    put(tmp, "G.npy", &q[0][0], 4, 6, G, sizeof G);
    static const int perm[4] = {2, 0, 3, 1}; /* atom i = 2 * feature perm[i] */
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 6; j++)
            dict[i][j] = 2 * q[perm[i]][j];
    put(tmp, "D.npy", &dict[0][0], 4, 6, D, sizeof D);
    ck_assert_int_eq(run_eval(out, sizeof out, "--dict", D, "--truth", G, NULL), 0);
    static const char *const one[] = {"mmcs", "mmcs_rev", "mcc", "uniqueness", "split"};
    for (size_t k = 0; k < 5; k++)
        ck_assert_msg(fabs(table_value(out, one[k]) - 1) < 1e-6, "%s:\n%s", one[k], out);
    ck_assert_double_eq(table_value(out, "atoms"), 4);
    ck_assert_double_eq(table_value(out, "truth_features"), 4);
    ck_assert_double_eq(table_value(out, "d"), 6);
    ck_assert_double_eq(table_value(out, "tau"), 0.5);
    ck_assert_double_lt(table_value(out, "max_cos_dict"), 1e-6);
    ck_assert_double_lt(table_value(out, "max_cos_truth"), 1e-6);

    for (int j = 0; j < 6; j++)
        dict[2][j] = -dict[2][j];
    put(tmp, "F.npy", &dict[0][0], 4, 6, F, sizeof F);
    ck_assert_int_eq(run_eval(out, sizeof out, "--dict", F, "--truth", G, NULL), 0);
    ck_assert_msg(fabs(table_value(out, "mcc") - 1) < 1e-6, "%s", out);
    static const char *const three4[] = {"mmcs", "mmcs_rev", "uniqueness", "split"};
    for (size_t k = 0; k < 4; k++)
        ck_assert_msg(fabs(table_value(out, three4[k]) - 0.75) < 1e-6, "%s:\n%s", three4[k],
                      out);
    rm_dir(tmp);
}
END_TEST

/* Feature 0 split in two: the truth plus an atom (g_0 + 0.5 q_4) / |.|
 * with q_4 orthogonal to the truth: cos 1 / sqrt(1.25) = 0.894427 with
 * g_0, 0 with the rest. split = 5/4, uniqueness = 4/5, MCC = MMCS = 1,
 * MMCS_rev = (4 + 0.894427) / 5, max |cos| between atoms 0.894427. */
START_TEST(test_split_atom)
{
    char tmp[256], G[512], D[512], out[OUT_CAP];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    float q[6][6], dict[5][6];
    rotated_basis(q);
    put(tmp, "G.npy", &q[0][0], 4, 6, G, sizeof G);
    memcpy(dict, q, sizeof(float) * 24);
    for (int j = 0; j < 6; j++)
        dict[4][j] = (float)((q[0][j] + 0.5 * q[4][j]) / sqrt(1.25));
    put(tmp, "D.npy", &dict[0][0], 5, 6, D, sizeof D);
    ck_assert_int_eq(run_eval(out, sizeof out, "-D", D, "-G", G, NULL), 0);
    double c = 1 / sqrt(1.25);
    struct { const char *name; double want; } want[] = {
        {"split", 1.25}, {"uniqueness", 0.8}, {"mcc", 1}, {"mmcs", 1},
        {"mmcs_rev", (4 + c) / 5}, {"max_cos_dict", c}, {"atoms", 5}};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++)
        ck_assert_msg(fabs(table_value(out, want[k].name) - want[k].want) < 1e-5,
                      "%s = %g, want %g\n%s", want[k].name, table_value(out, want[k].name),
                      want[k].want, out);
    /* at tau 0.9 the extra atom (cos 0.894) no longer counts */
    ck_assert_int_eq(run_eval(out, sizeof out, "-D", D, "-G", G, "--tau", "0.9", NULL), 0);
    ck_assert_double_eq(table_value(out, "tau"), 0.9);
    ck_assert_msg(fabs(table_value(out, "split") - 1) < 1e-6, "%s", out);
    rm_dir(tmp);
}
END_TEST

/* Exact codes: truth = 4 standard basis vectors of R^6 (permuted), the
 * dictionary the truth at norm 2, the encoder the truth at norm 1/2, the
 * inputs X = A G + b_d with hand-made non-negative sparse A and b_d
 * orthogonal to the truth. Then f = A / 2 exactly, x_hat = f D + b_d = X:
 * MSE 0, FVE 1, support precision = recall = 1, firing precision = recall
 * = 1, shrinkage (f ||d|| / a) = 1. Each feature's probe keeps one latent
 * (the latent of largest mean difference already separates it: by hand,
 * feature 1's is latent 2, w = 1.125 against its own 1.0, and it ranks
 * feature 1's samples 1 and 4 above the rest). Feature 3 never fires, so
 * its atom is dead. The same codes given as --codes-latent give
 * the same JSON. */
START_TEST(test_exact_codes)
{
    char tmp[256], G[512], D[512], E[512], X[512], A[512], Z[512], BD[512], BE[512];
    char out[OUT_CAP], out2[OUT_CAP];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    static const int axis[4] = {3, 0, 2, 1};
    float g[4][6] = {{0}}, dict[4][6] = {{0}}, enc[4][6] = {{0}}, be[4] = {0};
    for (int i = 0; i < 4; i++) {
        g[i][axis[i]] = 1;
        dict[i][axis[i]] = 2;
        enc[i][axis[i]] = 0.5f;
    }
    float bd[6] = {0, 0, 0, 0, 0.25f, -1.5f};
    float a[5][4] = {{1, 0, 0, 0}, {0, 2.5f, 3, 0}, {3, 0, 0.75f, 0},
                     {0, 0, 0, 0}, {0.5f, 1.5f, 2, 0}};
    float x[5][6], z[5][4];
    for (int b = 0; b < 5; b++) {
        for (int j = 0; j < 6; j++)
            x[b][j] = bd[j];
        for (int i = 0; i < 4; i++) {
            x[b][axis[i]] += a[b][i];
            z[b][i] = a[b][i] / 2;
        }
    }
    put(tmp, "G.npy", &g[0][0], 4, 6, G, sizeof G);
    put(tmp, "D.npy", &dict[0][0], 4, 6, D, sizeof D);
    put(tmp, "E.npy", &enc[0][0], 4, 6, E, sizeof E);
    put(tmp, "X.npy", &x[0][0], 5, 6, X, sizeof X);
    put(tmp, "A.npy", &a[0][0], 5, 4, A, sizeof A);
    put(tmp, "Z.npy", &z[0][0], 5, 4, Z, sizeof Z);
    put(tmp, "bd.npy", bd, 6, 0, BD, sizeof BD);
    put(tmp, "be.npy", be, 1, 4, BE, sizeof BE); /* (1, m) is a vector too */
    int rc = run_eval(out, sizeof out, "--dict", D, "--truth", G, "--encoder", E,
                      "--encoder-bias", BE, "--data", X, "--decoder-bias", BD, "--codes", A,
                      NULL);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
    struct { const char *name; double want; } want[] = {
        {"samples", 5}, {"l0", 8.0 / 5}, {"dead", 1}, {"mse", 0}, {"fve", 1},
        {"precision", 1}, {"recall", 1}, {"f1", 1}, {"firing_precision", 1},
        {"firing_recall", 1}, {"firing_f1", 1}, {"shrinkage", 1}, {"features_on", 3},
        {"probed", 3}, {"probe_count", 1}, {"probe_f1", 1}, {"mcc", 1}, {"mmcs", 1}};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++)
        ck_assert_msg(fabs(table_value(out, want[k].name) - want[k].want) < 1e-6,
                      "%s = %g, want %g\n%s", want[k].name, table_value(out, want[k].name),
                      want[k].want, out);
    /* the table: a header, then one aligned line per metric with its meaning */
    ck_assert_msg(strncmp(out, "metric ", 7) == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "\nmse "));
    ck_assert_ptr_nonnull(strstr(out, "lower is better"));
    for (const char *l = strchr(out, '\n'); l && l[1]; l = strchr(l + 1, '\n'))
        ck_assert_msg(strlen(l) > 34 && l[31] != ' ' && l[32] == ' ' && l[33] == ' ' &&
                      l[34] != ' ', "not aligned: %.60s", l + 1);

    /* JSON, from the encoder and from the same codes given directly */
    ck_assert_int_eq(run_eval(out, sizeof out, "--dict", D, "--truth", G, "--encoder", E,
                              "--data", X, "--decoder-bias", BD, "--codes", A, "--json", NULL),
                     0);
    ck_assert_int_eq(run_eval(out2, sizeof out2, "--json", "--dict", D, "--truth", G,
                              "--codes-latent", Z, "--data", X, "-b", BD, "-A", A, NULL), 0);
    ck_assert_str_eq(out, out2);
    double v = -1, shrink = -1, missing = -7;
    int keys = json_flat(out, "fve", &v);
    ck_assert_msg(keys >= 25, "%d keys: %s", keys, out);
    ck_assert_double_eq_tol(v, 1, 1e-9);
    ck_assert_int_eq(json_flat(out, "shrinkage", &shrink), keys);
    ck_assert_double_eq_tol(shrink, 1, 1e-6);
    ck_assert_int_eq(json_flat(out, "no_such_metric", &missing), keys);
    ck_assert_double_eq(missing, -7);
    static const char *const all[] = {"atoms", "truth_features", "mmcs", "mmcs_rev", "mcc",
                                      "uniqueness", "split", "max_cos_dict", "l0", "dead",
                                      "mse", "precision", "recall", "firing_f1",
                                      "probe_count"};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
        char pat[64];
        snprintf(pat, sizeof pat, "\"%s\": ", all[k]);
        ck_assert_msg(strstr(out, pat), "%s missing: %s", all[k], out);
    }
    /* NaN is written as null: one atom has no pair of atoms for max |cos| */
    char D1[512], G1[512];
    put(tmp, "D1.npy", &dict[0][0], 1, 6, D1, sizeof D1);
    put(tmp, "G1.npy", &g[0][0], 1, 6, G1, sizeof G1);
    ck_assert_int_eq(run_eval(out, sizeof out, "--dict", D1, "--truth", G1, "--json", NULL),
                     0);
    v = 0;
    ck_assert_int_gt(json_flat(out, "max_cos_dict", &v), 0);
    ck_assert_msg(isnan(v) && strstr(out, "\"max_cos_dict\": null"), "%s", out);
    ck_assert_int_eq(run_eval(out, sizeof out, "--dict", D1, "--truth", G1, NULL), 0);
    ck_assert_msg(isnan(table_value(out, "max_cos_dict")), "%s", out);
    rm_dir(tmp);
}
END_TEST

/* ----------------------------------------------------------- bad input */

START_TEST(test_bad_inputs)
{
    char tmp[256], p[24][512], out[OUT_CAP];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    float z[64] = {0};
    for (int i = 0; i < 64; i++)
        z[i] = (float)(i % 7) * 0.25f;
    enum { D, G, E, X, A, Z, BE, BD, V, G5, X5, E45, ET, A44, A53, BE3, BD4, Z53, EMPTY, XNAN,
           GINF, BDNAN, NONE };
    static const char *names[] = {"D", "G", "E", "X", "A", "Z", "be", "bd", "v", "g5", "x5",
                                  "e45", "et", "a44", "a53", "be3", "bd4", "z53", "empty",
                                  "xnan", "ginf", "bdnan", "none"};
    static const size_t shape[][2] = {{4, 6}, {4, 6}, {4, 6}, {5, 6}, {5, 4}, {5, 4}, {4, 0},
                                      {6, 0}, {6, 0}, {4, 5}, {5, 5}, {4, 5}, {6, 4}, {4, 4},
                                      {5, 3}, {3, 0}, {4, 0}, {5, 3}, {0, 6}, {5, 6}, {4, 6},
                                      {6, 0}};
    for (int k = 0; k <= NONE; k++) {
        char file[32];
        snprintf(file, sizeof file, "%s.npy", names[k]);
        if (k == NONE) {
            snprintf(p[k], sizeof p[k], "%s/%s", tmp, file);
            break;
        }
        float *a = z;
        float bad[64];
        if (k == XNAN || k == GINF || k == BDNAN) {
            memcpy(bad, z, sizeof bad);
            if (k == XNAN)
                bad[2 * 6 + 3] = NAN;
            else if (k == GINF)
                bad[1 * 6 + 0] = -INFINITY;
            else
                bad[5] = NAN;
            a = bad;
        }
        put(tmp, file, a, shape[k][0], shape[k][1], p[k], sizeof p[k]);
    }
    struct {
        const char *args[16];
        const char *expect;
        int code;
    } cases[] = {
        {{"--dict", p[NONE], "--truth", p[G]}, "none.npy: cannot open", 2},
        {{"--dict", p[D], "--truth", p[NONE]}, "none.npy: cannot open", 2},
        {{"--dict", p[V], "--truth", p[G]}, "must be a 2-D array (atoms x d)", 2},
        {{"--dict", p[D], "--truth", p[V]}, "must be a 2-D array (features x d)", 2},
        {{"--dict", p[D], "--truth", p[G5]}, "g5.npy has rows of 5 values but the atoms of", 2},
        {{"--dict", p[D], "--truth", p[G], "-E", p[E], "-X", p[X5]}, "x5.npy has rows of 5", 2},
        {{"--dict", p[D], "--truth", p[G], "-E", p[V], "-X", p[X]},
         "the encoder must be a 2-D array", 2},
        {{"--dict", p[D], "--truth", p[G], "-E", p[E45], "-X", p[X]},
         "the encoder must be atoms x d = (4, 6)", 2},
        {{"--dict", p[D], "--truth", p[G], "-E", p[ET], "-X", p[X]}, "save its transpose", 2},
        {{"--dict", p[D], "--truth", p[G], "-E", p[E], "-X", p[X], "-A", p[A44]},
         "a44.npy: the true codes must be samples x features = (5, 4)", 2},
        {{"--dict", p[D], "--truth", p[G], "-E", p[E], "-X", p[X], "-A", p[A53]},
         "its shape is (5, 3)", 2},
        {{"--dict", p[D], "--truth", p[G], "-E", p[E], "--encoder-bias", p[BE3], "-X", p[X]},
         "be3.npy: the encoder bias must hold atoms = 4 values; its shape is (3,)", 2},
        {{"--dict", p[D], "--truth", p[G], "-E", p[E], "-X", p[X], "-b", p[BD4]},
         "bd4.npy: the decoder bias must hold d = 6 values", 2},
        {{"--dict", p[D], "--truth", p[G], "-Z", p[Z53], "-X", p[X]},
         "z53.npy: the latent codes must be samples x atoms = (5, 4)", 2},
        {{"--dict", p[EMPTY], "--truth", p[G]}, "at least one row; its shape is (0, 6)", 2},
        {{"--dict", p[D], "--truth", p[G], "-Z", p[Z], "-X", p[EMPTY]},
         "empty.npy: the data must be a 2-D array", 2},
        {{"--dict", p[D], "--truth", p[G], "-E", p[E], "-X", p[XNAN]},
         "xnan.npy: row 2, column 3 is nan", 2},
        {{"--dict", p[D], "--truth", p[GINF]}, "ginf.npy: row 1, column 0 is -inf", 2},
        {{"--dict", p[D], "--truth", p[G], "-E", p[E], "-X", p[X], "-b", p[BDNAN]},
         "bdnan.npy: entry 5 is nan", 2},
        {{"--dict", p[D], "--truth", p[G], "-E", p[E]}, "--encoder needs --data", 2},
        {{"--dict", p[D], "--truth", p[G], "-Z", p[Z]}, "--codes-latent needs --data", 2},
        {{"--dict", p[D], "--truth", p[G], "-X", p[X]}, "--data needs --encoder or", 2},
        {{"--dict", p[D], "--truth", p[G], "-A", p[A]}, "--codes (the true codes) needs", 2},
        {{"--dict", p[D], "--truth", p[G], "--encoder-bias", p[BE]},
         "--encoder-bias needs --encoder", 2},
        {{"--dict", p[D], "--truth", p[G], "-b", p[BD]}, "--decoder-bias needs --data", 2},
        {{"--dict", p[D], "--truth", p[G], "-E", p[E], "-Z", p[Z], "-X", p[X]}, "give one", 2},
        {{"--dict", p[D], "--truth", p[G], "--tau", "1"}, "--tau '1': must be a number in", 2},
        {{"--dict", p[D], "--truth", p[G], "--tau", "x"}, "--tau 'x'", 2},
        {{"--dict", p[D]}, "eval needs --dict and --truth", 2},
        {{"--dict", p[D], "--truth", p[G], "extra"}, "no positional argument ('extra')", 2},
        {{"--dict", p[D], "--truth", p[G], "--bogus"}, "usage: superpose eval", 2},
        {{"--help"}, "--codes-latent FILE", 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const char *const *a = cases[k].args;
        int rc = run_eval(out, sizeof out, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8],
                          a[9], a[10], a[11], NULL);
        ck_assert_msg(rc == cases[k].code && strstr(out, cases[k].expect),
                      "case %zu: exit %d (want %d), want '%s' in:\n%s", k, rc, cases[k].code,
                      cases[k].expect, out);
        if (rc)
            ck_assert_msg(strncmp(out, "superpose: ", 11) == 0 || strstr(out, "usage"),
                          "case %zu: %s", k, out);
    }
    rm_dir(tmp);
}
END_TEST

/* ---------------------------------------------------------------- fuzz */

/* A damaged input: a clean exit with a message naming the file, or, when
 * the damage left a valid file, a normal table. */
static void expect_clean(const char *path, int rc, const char *out, const char *what)
{
    ck_assert_msg(rc < 1000, "%s: killed by signal %d:\n%s", what, rc - 1000, out);
    if (rc == 0) {
        ck_assert_msg(strstr(out, "\nmmcs "), "%s: exit 0 without a table:\n%s", what, out);
        return;
    }
    ck_assert_msg(rc == 1 || rc == 2, "%s: exit %d:\n%s", what, rc, out);
    ck_assert_msg(strncmp(out, "superpose: ", 11) == 0 && strstr(out, path), "%s:\n%s", what,
                  out);
}

START_TEST(test_fuzz)
{
    char tmp[256], G[512], G1[512], D[512], E[512], X[512], A[512], bad[512];
    char out[OUT_CAP], what[128];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    float q[6][6], x[3][6] = {{1, 0, 0, 0, 0, 0}, {0, 1, 2, 0, 0, 0}, {0, 0, 0, 0, 0.5f, 1}};
    float a[3][4] = {{1, 0, 0, 0}, {0, 1, 2, 0}, {0, 0, 0, 1}};
    rotated_basis(q);
    put(tmp, "G.npy", &q[0][0], 4, 6, G, sizeof G);
    put(tmp, "G1.npy", &q[0][0], 1, 6, G1, sizeof G1);
    put(tmp, "D.npy", &q[0][0], 4, 6, D, sizeof D);
    put(tmp, "E.npy", &q[1][0], 4, 6, E, sizeof E);
    put(tmp, "X.npy", &x[0][0], 3, 6, X, sizeof X);
    put(tmp, "A.npy", &a[0][0], 3, 4, A, sizeof A);
    snprintf(bad, sizeof bad, "%s/bad.npy", tmp);

    /* every truncation of a 1 x 6 truth */
    size_t n;
    unsigned char *img = slurp(G1, &n);
    for (size_t len = 0; len < n; len++) {
        write_bytes(bad, img, len);
        int rc = run_eval(out, sizeof out, "--dict", D, "--truth", bad, NULL);
        snprintf(what, sizeof what, "truth truncated to %zu bytes", len);
        ck_assert_msg(rc != 0, "%s: accepted", what);
        expect_clean(bad, rc, out, what);
    }
    free(img);

    /* random header bytes of each input of a full command (fixed seed) */
    const char *role[4] = {D, E, X, A};
    uint64_t s = 0x9e3779b97f4a7c15u;
    for (int t = 0; t < 120; t++) {
        int r = t % 4;
        img = slurp(role[r], &n);
        int flips = 1 + t % 3;
        for (int f = 0; f < flips; f++) {
            s = s * 6364136223846793005u + 1442695040888963407u;
            size_t at = (size_t)(s >> 33) % 128;
            img[at] = (unsigned char)(s >> 17);
        }
        write_bytes(bad, img, n);
        free(img);
        const char *arg[4] = {D, E, X, A};
        arg[r] = bad;
        int rc = run_eval(out, sizeof out, "--dict", arg[0], "--truth", G, "--encoder", arg[1],
                          "--data", arg[2], "--codes", arg[3], NULL);
        snprintf(what, sizeof what, "flip %d (input %d)", t, r);
        expect_clean(bad, rc, out, what);
    }

    /* forged headers over the 24 data bytes of a 1 x 6 truth */
    static const char *const forged[] = {
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 6), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 4611686018427387904), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1073741824, 1073741824), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551615, 6), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999, 6), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 6), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 6, 1), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 6), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (), }",
        "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 6), }",
        "{'descr': '>f4', 'fortran_order': False, 'shape': (1, 6), }",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 6), }",
        "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 6), }",
        "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1, 6), }",
        "{'descr': '<f4', 'fortran_order': False}",
    };
    unsigned char big[512];
    for (size_t k = 0; k < sizeof forged / sizeof forged[0]; k++)
        for (int major = 1; major <= 3; major++) {
            n = make_npy(big, major, forged[k], q[0], 24);
            write_bytes(bad, big, n);
            int rc = run_eval(out, sizeof out, "--dict", D, "--truth", bad, NULL);
            snprintf(what, sizeof what, "forged %zu, version %d", k, major);
            ck_assert_msg(rc != 0, "%s: accepted:\n%s", what, out);
            expect_clean(bad, rc, out, what);
        }
    /* a valid version 2.0 header is read; 3.0 is refused by name */
    const char *ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 6), }";
    write_bytes(bad, big, make_npy(big, 2, ok, q[0], 24));
    ck_assert_int_eq(run_eval(out, sizeof out, "--dict", D, "--truth", bad, NULL), 0);
    write_bytes(bad, big, make_npy(big, 3, ok, q[0], 24));
    ck_assert_int_eq(run_eval(out, sizeof out, "--dict", D, "--truth", bad, NULL), 2);
    ck_assert_msg(strstr(out, "version 3.0"), "%s", out);
    /* header lengths past the end of the file */
    static const uint32_t hl[] = {0, 1, 65535, 0x7fffffffu, 0xffffffffu};
    for (size_t k = 0; k < sizeof hl / sizeof hl[0]; k++) {
        n = make_npy(big, 2, ok, q[0], 24);
        for (int b = 0; b < 4; b++)
            big[8 + b] = (unsigned char)(hl[k] >> (8 * b));
        write_bytes(bad, big, n);
        int rc = run_eval(out, sizeof out, "--dict", bad, "--truth", G, NULL);
        snprintf(what, sizeof what, "header length %u", hl[k]);
        ck_assert_msg(rc != 0, "%s: accepted", what);
        expect_clean(bad, rc, out, what);
    }
    /* not a .npy at all; a folder */
    write_bytes(bad, "PK\3\4 not numpy", 15);
    expect_clean(bad, run_eval(out, sizeof out, "--dict", bad, "--truth", G, NULL), out,
                 "zip");
    expect_clean(tmp, run_eval(out, sizeof out, "--dict", tmp, "--truth", G, NULL), out,
                 "folder");
    rm_dir(tmp);
}
END_TEST

Suite *make_eval_suite(void)
{
    Suite *s = suite_create("eval");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_permuted_flipped);
    tcase_add_test(tc, test_split_atom);
    tcase_add_test(tc, test_exact_codes);
    tcase_add_test(tc, test_bad_inputs);
    tcase_add_test(tc, test_fuzz);
    suite_add_tcase(s, tc);
    return s;
}
