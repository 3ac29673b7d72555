/* check_figure.c: heatmap files and rendering, template lookup, errors.
 * gnuplot is a declared dependency, so these tests run it. */
#include <math.h>
#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"
#include "superpose/figure.h"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    fclose(f);
    if (s) {
        s[n] = '\0';
        if (len)
            *len = (size_t)n;
    }
    return s;
}

static void path_of(char *out, size_t len, const char *dir, const char *file)
{
    snprintf(out, len, "%s/%s", dir, file);
}

/* Saves and restores one environment variable around a test. */
typedef struct {
    const char *name;
    char *old;
} env_save;

static env_save env_set(const char *name, const char *value)
{
    env_save s = {name, NULL};
    const char *o = getenv(name);
    if (o)
        s.old = strdup(o);
    setenv(name, value, 1);
    return s;
}

static void env_restore(env_save *s)
{
    if (s->old)
        setenv(s->name, s->old, 1);
    else
        unsetenv(s->name);
    free(s->old);
}

/* A 3 x 2 map: x = 3 columns, y = 2 rows, one NaN, awkward numbers and
 * strings that need escaping. */
static const char *const xt[] = {"0.25", "0.5", "1"};
static const char *const yt[] = {"0.01", "x \"q\" \\ y"};
static const double zv[] = {0.1, 0.123456789, -2.5e-7, NAN, 12345678.9, 1.0};

static sp_heatmap small_map(void)
{
    sp_heatmap h = {
        .name = "mmcs",
        .title = "MMCS \"quoted\" back\\slash_and_underscore",
        .xlabel = "ratio m/d",
        .ylabel = "L1 coefficient",
        .cblabel = "mean max cosine similarity",
        .nx = 3, .ny = 2,
        .xtics = xt, .ytics = yt,
        .z = zv,
        .zmin = NAN, .zmax = NAN,
        .label_cells = 1,
        .label_fmt = "%.2f",
        .header = "experiment: test\nseed: 7",
    };
    return h;
}

START_TEST(test_heatmap_files)
{
    char tmp[256], p[512];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    sp_heatmap h = small_map();
    sp_err e = {{0}};
    int rc = sp_figure_heatmap(tmp, &h, &e);
    ck_assert_msg(rc == 0, "sp_figure_heatmap: %s", e.msg);

    size_t n = 0;
    path_of(p, sizeof p, tmp, "mmcs.png");
    char *png = slurp(p, &n);
    ck_assert_ptr_nonnull(png);
    ck_assert_uint_gt(n, 8);
    ck_assert_int_eq(memcmp(png, "\x89PNG\r\n\x1a\n", 8), 0);
    free(png);

    path_of(p, sizeof p, tmp, "mmcs.svg");
    char *svg = slurp(p, NULL);
    ck_assert_ptr_nonnull(svg);
    ck_assert_ptr_nonnull(strstr(svg, "<svg"));
    free(svg);

    /* The script is standalone: relative names, no placeholder left. */
    path_of(p, sizeof p, tmp, "mmcs.gp");
    char *gp = slurp(p, NULL);
    ck_assert_ptr_nonnull(gp);
    ck_assert_ptr_nonnull(strstr(gp, "'mmcs.dat'"));
    ck_assert_ptr_nonnull(strstr(gp, "MMCS \\\"quoted\\\" back\\\\slash"));
    ck_assert_ptr_null(strstr(gp, "@DATA@"));
    ck_assert_ptr_null(strstr(gp, "\n##"));
    ck_assert_ptr_null(strstr(gp, tmp));
    free(gp);

    /* The data parse back to the same numbers, NaN included. */
    path_of(p, sizeof p, tmp, "mmcs.dat");
    char *dat = slurp(p, NULL);
    ck_assert_ptr_nonnull(dat);
    ck_assert_ptr_nonnull(strstr(dat, "# experiment: test\n# seed: 7\n"));
    size_t k = 0;
    for (char *line = strtok(dat, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        char *q = line, *end;
        for (;;) {
            double v = strtod(q, &end);
            if (end == q)
                break;
            ck_assert_uint_lt(k, 6);
            if (isnan(zv[k]))
                ck_assert_msg(isnan(v), "value %zu: %g, want NaN", k, v);
            else
                ck_assert_msg(fabs(v - zv[k]) <= 1e-8 * fabs(zv[k]),
                              "value %zu: %.17g, want %.17g", k, v, zv[k]);
            k++;
            q = end;
        }
        while (*q == ' ')
            q++;
        ck_assert_msg(*q == '\0', "junk in data row: '%s'", q);
        ck_assert_uint_eq(k % 3, 0); /* rows of nx values */
    }
    ck_assert_uint_eq(k, 6);
    free(dat);

    /* Re-rendering the written script recreates the PNG. */
    path_of(p, sizeof p, tmp, "mmcs.png");
    ck_assert_int_eq(unlink(p), 0);
    rc = sp_figure_render(tmp, "mmcs", &e);
    ck_assert_msg(rc == 0, "sp_figure_render: %s", e.msg);
    struct stat st;
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_gt(st.st_size, 0);
}
END_TEST

START_TEST(test_template_not_found)
{
    char tmp[256];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    env_save s = env_set("SUPERPOSE_PLOTS", tmp);
    ck_assert_str_eq(sp_figure_template_dir(), tmp);
    sp_heatmap h = small_map();
    sp_err e = {{0}};
    ck_assert_int_eq(sp_figure_heatmap(tmp, &h, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "template 'heatmap.gp' not found"));
    ck_assert_ptr_nonnull(strstr(e.msg, tmp));
    ck_assert_ptr_nonnull(strstr(e.msg, "SUPERPOSE_PLOTS"));
    env_restore(&s);

    /* Without the override the source tree's plots/ is found. */
    if (!getenv("SUPERPOSE_PLOTS")) {
        const char *d = sp_figure_template_dir();
        ck_assert_ptr_nonnull(d);
        ck_assert_str_eq(d, SP_SOURCE_DIR "/plots");
    }
}
END_TEST

START_TEST(test_bad_folder)
{
    char tmp[256], p[512];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    sp_heatmap h = small_map();
    sp_err e = {{0}};

    path_of(p, sizeof p, tmp, "no/such/folder");
    ck_assert_int_eq(sp_figure_heatmap(p, &h, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "does not exist"));
    ck_assert_ptr_nonnull(strstr(e.msg, p));

    path_of(p, sizeof p, tmp, "plain-file");
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    ck_assert_int_eq(sp_figure_heatmap(p, &h, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "is not a folder"));

    /* Permissions do not stop root, so this part only runs as a user. */
    if (geteuid() != 0) {
        path_of(p, sizeof p, tmp, "ro");
        ck_assert_int_eq(mkdir(p, 0555), 0);
        ck_assert_int_eq(sp_figure_heatmap(p, &h, &e), -1);
        ck_assert_ptr_nonnull(strstr(e.msg, "cannot write in figure folder"));
    }

    ck_assert_int_eq(sp_figure_render(tmp, "absent", &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "absent.gp"));
}
END_TEST

START_TEST(test_bad_input)
{
    char tmp[256];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    sp_err e = {{0}};
    sp_heatmap h = small_map();
    h.label_fmt = "%d";
    ck_assert_int_eq(sp_figure_heatmap(tmp, &h, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "label_fmt"));
    h.label_fmt = "%.2f %s";
    ck_assert_int_eq(sp_figure_heatmap(tmp, &h, &e), -1);
    h = small_map();
    h.name = "../escape";
    ck_assert_int_eq(sp_figure_heatmap(tmp, &h, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "figure name"));
    h = small_map();
    h.zmin = 1;
    h.zmax = 0;
    ck_assert_int_eq(sp_figure_heatmap(tmp, &h, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "zmin"));
}
END_TEST

START_TEST(test_gnuplot_errors)
{
    char tmp[256], p[512];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    sp_err e = {{0}};

    /* A failing script: the message quotes gnuplot's error line. */
    path_of(p, sizeof p, tmp, "bad.gp");
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs("set terminal svg\nset output 'bad.svg'\nplot no_such_function(x)\n", f);
    fclose(f);
    ck_assert_int_eq(sp_figure_render(tmp, "bad", &e), -1);
    ck_assert_msg(strstr(e.msg, "gnuplot failed") && strstr(e.msg, "line 3:"),
                  "message: %s", e.msg);

    /* No gnuplot on PATH. */
    env_save s = env_set("PATH", tmp);
    ck_assert_int_eq(sp_figure_render(tmp, "bad", &e), -1);
    env_restore(&s);
    ck_assert_str_eq(e.msg, "gnuplot not found: install the Debian package gnuplot-nox");
}
END_TEST

/* Reads the png signature of dir/name.png. */
static void expect_png(const char *dir, const char *name)
{
    char p[512], file[128];
    snprintf(file, sizeof file, "%s.png", name);
    path_of(p, sizeof p, dir, file);
    size_t n = 0;
    char *png = slurp(p, &n);
    ck_assert_msg(png && n > 8 && !memcmp(png, "\x89PNG\r\n\x1a\n", 8), "%s is not a PNG", p);
    free(png);
    snprintf(file, sizeof file, "%s.gp", name);
    path_of(p, sizeof p, dir, file);
    char *gp = slurp(p, NULL);
    ck_assert_ptr_nonnull(gp);
    /* no placeholder left: a '@' followed by a capital letter */
    for (char *q = strchr(gp, '@'); q; q = strchr(q + 1, '@'))
        ck_assert_msg(!(q[1] >= 'A' && q[1] <= 'Z'), "unfilled placeholder in %s: %.20s", p, q);
    free(gp);
}

START_TEST(test_lines_files)
{
    char tmp[256], p[512];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    const double x1[] = {1, 2, 4}, y1[] = {0.5, NAN, 0.25};
    const double x2[] = {1, 3}, y2[] = {0.75, 2.0 / 3};
    sp_series ser[2] = {{"first \"one\"", 3, x1, y1, SP_STYLE_LINESPOINTS},
                        {NULL, 2, x2, y2, SP_STYLE_POINTS}};
    const double refs[] = {0.5, 0.375};
    const char *const rl[] = {"1/2", "3/8"};
    sp_lines L = {.name = "dims", .title = "t", .xlabel = "x", .ylabel = "y", .logx = 1,
                  .xmin = NAN, .xmax = NAN, .ymin = 0, .ymax = NAN, .series = ser,
                  .n_series = 2, .hlines = refs, .hline_labels = rl, .n_hlines = 2,
                  .header = "seed 3"};
    sp_err e = {{0}};
    ck_assert_msg(sp_figure_lines(tmp, &L, &e) == 0, "%s", e.msg);
    expect_png(tmp, "dims");
    path_of(p, sizeof p, tmp, "dims.dat");
    char *dat = slurp(p, NULL);
    ck_assert_ptr_nonnull(dat);
    ck_assert_ptr_nonnull(strstr(dat, "# seed 3\n"));
    /* two blocks, NaN kept as NaN, numbers round-trip */
    ck_assert_ptr_nonnull(strstr(dat, "1 0.5\n2 NaN\n4 0.25\n\n\n# series 1"));
    ck_assert_ptr_nonnull(strstr(dat, "3 0.666666667\n"));
    free(dat);
    path_of(p, sizeof p, tmp, "dims.gp");
    char *gp = slurp(p, NULL);
    ck_assert_ptr_nonnull(strstr(gp, "index 1 using 1:2 with points"));
    ck_assert_ptr_nonnull(strstr(gp, "title \"first \\\"one\\\"\""));
    ck_assert_ptr_nonnull(strstr(gp, "set label \"3/8\""));
    ck_assert_ptr_nonnull(strstr(gp, "set logscale x"));
    free(gp);
    /* a non-positive value on a log axis is refused, naming the point */
    const double xb[] = {0, 1};
    sp_series bad = {NULL, 2, xb, y2, SP_STYLE_LINES};
    L.series = &bad;
    L.n_series = 1;
    ck_assert_int_eq(sp_figure_lines(tmp, &L, &e), -1);
    ck_assert_msg(strstr(e.msg, "log axis") && strstr(e.msg, "point 0"), "%s", e.msg);
    L.n_series = 0;
    ck_assert_int_eq(sp_figure_lines(tmp, &L, &e), -1);
    L.n_series = 1;
    L.name = "../x";
    ck_assert_int_eq(sp_figure_lines(tmp, &L, &e), -1);
}
END_TEST

START_TEST(test_vectors_and_bars)
{
    char tmp[256], p[512];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    double x[5], y[5];
    for (int i = 0; i < 5; i++) {
        x[i] = cos(2 * M_PI * i / 5);
        y[i] = sin(2 * M_PI * i / 5);
    }
    sp_vectors v = {.name = "pent", .title = "pentagon", .n = 5, .x = x, .y = y};
    sp_err e = {{0}};
    ck_assert_msg(sp_figure_vectors(tmp, &v, &e) == 0, "%s", e.msg);
    expect_png(tmp, "pent");
    path_of(p, sizeof p, tmp, "pent.dat");
    char *dat = slurp(p, NULL);
    ck_assert_ptr_nonnull(strstr(dat, "\n1 0 \"0\"\n"));
    ck_assert_ptr_nonnull(strstr(dat, "0.309016994 0.951056516 \"1\""));
    free(dat);
    x[2] = NAN;
    ck_assert_int_eq(sp_figure_vectors(tmp, &v, &e), -1);
    ck_assert_msg(strstr(e.msg, "vector 2"), "%s", e.msg);

    const char *const groups[] = {"a", "b", "c"}, *const series[] = {"expected", "seen"};
    const double vals[] = {0.25, 0.05, 0.05, 0.26, 0.049, NAN};
    sp_bars b = {.name = "rates", .title = "rates", .xlabel = "feature", .ylabel = "p",
                 .n_groups = 3, .group_labels = groups, .n_series = 2,
                 .series_labels = series, .values = vals};
    ck_assert_msg(sp_figure_bars(tmp, &b, &e) == 0, "%s", e.msg);
    expect_png(tmp, "rates");
    path_of(p, sizeof p, tmp, "rates.dat");
    dat = slurp(p, NULL);
    ck_assert_ptr_nonnull(strstr(dat, "\"group\" \"expected\" \"seen\"\n\"a\" 0.25 0.26\n"
                                      "\"b\" 0.05 0.049\n\"c\" 0.05 NaN\n"));
    free(dat);
    b.logy = 1;
    const double neg[] = {0.25, 0, 0.05, 0.26, 0.049, 0.1};
    b.values = neg;
    ck_assert_int_eq(sp_figure_bars(tmp, &b, &e), -1);
    ck_assert_msg(strstr(e.msg, "log axis"), "%s", e.msg);
}
END_TEST

Suite *make_figure_suite(void)
{
    Suite *s = suite_create("figure");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_heatmap_files);
    tcase_add_test(tc, test_template_not_found);
    tcase_add_test(tc, test_bad_folder);
    tcase_add_test(tc, test_bad_input);
    tcase_add_test(tc, test_gnuplot_errors);
    tcase_add_test(tc, test_lines_files);
    tcase_add_test(tc, test_vectors_and_bars);
    suite_add_tcase(s, tc);
    return s;
}
