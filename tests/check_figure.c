/* check_figure.c: heatmap, lines, vectors and bars files and rendering,
 * template lookup, errors.
 * gnuplot is a declared dependency, so these tests run it. */
#include <locale.h>
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

/* ------------------------------------------------------------------ */
/* lines, vectors, bars */

static char *slurp_in(const char *dir, const char *name, const char *ext)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s%s", dir, name, ext);
    char *s = slurp(p, NULL);
    ck_assert_msg(s != NULL, "cannot read %s", p);
    return s;
}

/* dir/NAME.png is a PNG, NAME.svg an SVG, NAME.gp has no @KEY@ left. */
static void expect_rendered(const char *dir, const char *name)
{
    char p[512];
    size_t n = 0;
    snprintf(p, sizeof p, "%s/%s.png", dir, name);
    char *png = slurp(p, &n);
    ck_assert_msg(png && n > 8 && memcmp(png, "\x89PNG\r\n\x1a\n", 8) == 0, "%s is not a PNG", p);
    free(png);
    char *svg = slurp_in(dir, name, ".svg");
    ck_assert_msg(strstr(svg, "<svg") != NULL, "%s/%s.svg is not an SVG", dir, name);
    free(svg);
    char *gp = slurp_in(dir, name, ".gp");
    for (const char *q = strchr(gp, '@'); q; q = strchr(q + 1, '@')) {
        size_t k = 1;
        while ((q[k] >= 'A' && q[k] <= 'Z') || (q[k] >= '0' && q[k] <= '9') || q[k] == '_')
            k++;
        ck_assert_msg(!(k > 1 && q[k] == '@'), "unfilled placeholder in %s.gp: %.*s", name,
                      (int)k + 1, q);
    }
    ck_assert_ptr_null(strstr(gp, "\n##"));
    ck_assert_ptr_null(strstr(gp, dir)); /* standalone: relative names only */
    free(gp);
}

/* The numbers of a data file: '#' lines skipped, blocks separated by two
 * or more blank lines (gnuplot's `index`), every row `cols` numbers. */
#define MAX_PARSED 4096
typedef struct {
    size_t n, rows, blocks;
    double v[MAX_PARSED];
    size_t block[MAX_PARSED]; /* block of each value */
} parsed;

static void parse_dat(const char *text, size_t cols, parsed *out)
{
    memset(out, 0, sizeof *out);
    size_t blank = 0;
    int any = 0;
    for (const char *p = text; *p;) {
        const char *eol = strchr(p, '\n');
        ck_assert_msg(eol != NULL, "data file does not end with a newline");
        if (p == eol) {
            blank++;
        } else if (*p != '#') {
            if (any && blank >= 2)
                out->blocks++;
            blank = 0;
            any = 1;
            char line[512];
            ck_assert_uint_lt((size_t)(eol - p), sizeof line);
            memcpy(line, p, (size_t)(eol - p));
            line[eol - p] = '\0';
            size_t k = 0;
            char *end = line;
            for (const char *q = line;; q = end) {
                double v = strtod(q, &end);
                if (end == q)
                    break;
                ck_assert_uint_lt(out->n, MAX_PARSED);
                out->block[out->n] = out->blocks;
                out->v[out->n++] = v;
                k++;
            }
            while (*end == ' ')
                end++;
            ck_assert_msg(*end == '\0', "junk in data row: '%s'", end);
            ck_assert_msg(k == cols, "row %zu has %zu numbers, want %zu", out->rows, k, cols);
            out->rows++;
        }
        p = eol + 1;
    }
    if (any)
        out->blocks++;
}

static void expect_value(double got, double want, size_t i)
{
    if (!isfinite(want))
        ck_assert_msg(isnan(got), "value %zu: %.17g, want NaN (non-finite)", i, got);
    else
        ck_assert_msg(fabs(got - want) <= 1e-8 * fabs(want), "value %zu: %.17g, want %.17g", i,
                      got, want);
}

/* Writes dir/NAME.gp and renders it: a probe script. */
static void run_script(const char *dir, const char *name, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s.gp", dir, name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    sp_err e = {{0}};
    ck_assert_msg(sp_figure_render(dir, name, &e) == 0, "%s", e.msg);
}

/* Three series: one with a NaN and an Inf, one empty (its block must still
 * exist so that `index 2` is series 2), one points-only cloud. */
static const double lx0[] = {1, 2, 4, 8}, ly0[] = {0.5, NAN, 0.123456789, INFINITY};
static const double lx2[] = {1, 3, 1e5}, ly2[] = {0.75, 2.0 / 3, 3e-9};
static const double refs[] = {0.375, 1, 0.5};
static const char *const ref_labels[] = {"3/8", "\"1\"", NULL};

static sp_lines small_lines(sp_series ser[3])
{
    ser[0] = (sp_series){"first \"one\"", 4, lx0, ly0, SP_STYLE_LINESPOINTS};
    ser[1] = (sp_series){"empty", 0, NULL, NULL, SP_STYLE_LINES};
    ser[2] = (sp_series){NULL, 3, lx2, ly2, SP_STYLE_POINTS};
    sp_lines L = {.name = "dims", .title = "dims\nsecond line", .xlabel = "1 / (1 - S)",
                  .ylabel = "D", .logx = 1, .xmin = NAN, .xmax = NAN, .ymin = NAN, .ymax = NAN,
                  .series = ser, .n_series = 3, .hlines = refs, .hline_labels = ref_labels,
                  .n_hlines = 3, .header = "experiment: geometry\nseed: 3"};
    return L;
}

START_TEST(test_lines_files)
{
    char tmp[256];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    sp_series ser[3];
    sp_lines L = small_lines(ser);
    sp_err e = {{0}};
    ck_assert_msg(sp_figure_lines(tmp, &L, &e) == 0, "sp_figure_lines: %s", e.msg);
    expect_rendered(tmp, "dims");

    char *dat = slurp_in(tmp, "dims", ".dat");
    ck_assert_ptr_nonnull(strstr(dat, "# superpose lines data: dims\n# title: dims second line\n"
                                      "# experiment: geometry\n# seed: 3\n"));
    ck_assert_ptr_nonnull(strstr(dat, "# Columns: x y."));
    ck_assert_ptr_nonnull(strstr(dat, "# series 0: first \"one\" (4 points, drawn with "
                                      "linespoints)\n# x y\n"));
    ck_assert_ptr_nonnull(strstr(dat, "# series 2: (untitled) (3 points, drawn with points)"));
    ck_assert_ptr_nonnull(strstr(dat, "#   0.375: 3/8\n"));
    /* Non-finite y: NaN, never 0 or Inf. */
    ck_assert_ptr_nonnull(strstr(dat, "\n2 NaN\n"));
    ck_assert_ptr_nonnull(strstr(dat, "\n8 NaN\n"));
    ck_assert_ptr_null(strstr(dat, "Inf"));
    parsed p;
    parse_dat(dat, 2, &p);
    ck_assert_uint_eq(p.blocks, 3);
    ck_assert_uint_eq(p.rows, 4 + 1 + 3);
    for (size_t i = 0; i < 4; i++) {
        ck_assert_uint_eq(p.block[2 * i], 0);
        expect_value(p.v[2 * i], lx0[i], 2 * i);
        expect_value(p.v[2 * i + 1], ly0[i], 2 * i + 1);
    }
    ck_assert_uint_eq(p.block[8], 1); /* the empty series' NaN row */
    ck_assert(isnan(p.v[8]) && isnan(p.v[9]));
    for (size_t i = 0; i < 3; i++) {
        ck_assert_uint_eq(p.block[10 + 2 * i], 2);
        expect_value(p.v[10 + 2 * i], lx2[i], i);
        expect_value(p.v[11 + 2 * i], ly2[i], i);
    }
    free(dat);

    char *gp = slurp_in(tmp, "dims", ".gp");
    ck_assert_ptr_nonnull(strstr(gp, "'dims.dat' index 0 using 1:2 with linespoints ls 1 "
                                     "title \"first \\\"one\\\"\""));
    ck_assert_ptr_nonnull(strstr(gp, "'dims.dat' index 1 using 1:2 with lines ls 2 title "
                                     "\"empty\""));
    ck_assert_ptr_nonnull(strstr(gp, "'dims.dat' index 2 using 1:2 with points ls 13 notitle"));
    ck_assert_ptr_nonnull(strstr(gp, "set title \"dims\\nsecond line\""));
    ck_assert_ptr_nonnull(strstr(gp, "\nlogx = 1\nlogy = 0\nshow_key = 1\n"));
    /* Reference lines highest first, a missing label replaced by the value. */
    ck_assert_ptr_nonnull(strstr(gp, "nh = 3\narray hy[3] = [1, 0.5, 0.375]\n"
                                     "array hlabel[3] = [\"\\\"1\\\"\", \"0.5\", \"3/8\"]\n"));
    ck_assert_ptr_null(strstr(gp, "datafile missing"));
    free(gp);
}
END_TEST

/* The NaN rows a lines figure writes are undefined points for gnuplot:
 * skipped, the line broken there, never drawn at 0. */
START_TEST(test_lines_nan_not_drawn)
{
    char tmp[256];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    sp_series ser[3];
    sp_lines L = small_lines(ser);
    L.logx = 0;
    sp_err e = {{0}};
    ck_assert_msg(sp_figure_lines(tmp, &L, &e) == 0, "%s", e.msg);
    run_script(tmp, "probe", "set table 'probe.txt'\n"
                             "plot 'dims.dat' index 0 using 1:2 with lines\n"
                             "unset table\n");
    char *t = slurp_in(tmp, "probe", ".txt");
    size_t inrange = 0, undefined = 0;
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
        double x, y;
        char type;
        if (line[0] == '#' || sscanf(line, "%lf %lf %c", &x, &y, &type) != 3)
            continue;
        if (type == 'i')
            inrange++, ck_assert_msg(y != 0 && isfinite(y), "drawn point (%g, %g)", x, y);
        else if (type == 'u')
            undefined++;
    }
    ck_assert_uint_eq(inrange, 2);
    ck_assert_uint_eq(undefined, 2);
    free(t);
}
END_TEST

START_TEST(test_lines_errors)
{
    char tmp[256];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    sp_series ser[3];
    sp_lines L = small_lines(ser);
    sp_err e = {{0}};

    /* Log axes: a non-positive value is refused, naming it. */
    const double xz[] = {0, 1}, yz[] = {1, -2};
    ser[2] = (sp_series){"cloud", 2, xz, ly2, SP_STYLE_POINTS};
    ck_assert_int_eq(sp_figure_lines(tmp, &L, &e), -1);
    ck_assert_msg(strstr(e.msg, "log x axis") && strstr(e.msg, "series 2 ('cloud') point 0") &&
                  strstr(e.msg, "x = 0"), "%s", e.msg);
    L.logx = 0;
    ck_assert_msg(sp_figure_lines(tmp, &L, &e) == 0, "%s", e.msg);
    L.logy = 1;
    ser[2] = (sp_series){NULL, 2, lx2, yz, SP_STYLE_POINTS};
    ck_assert_int_eq(sp_figure_lines(tmp, &L, &e), -1);
    ck_assert_msg(strstr(e.msg, "log y axis") && strstr(e.msg, "point 1 has y = -2"), "%s",
                  e.msg);
    ser[2] = (sp_series){NULL, 3, lx2, ly2, SP_STYLE_POINTS};
    const double zero_ref[] = {0};
    L.hlines = zero_ref;
    L.n_hlines = 1;
    ck_assert_int_eq(sp_figure_lines(tmp, &L, &e), -1);
    ck_assert_msg(strstr(e.msg, "reference line 0") && strstr(e.msg, "log"), "%s", e.msg);
    L.n_hlines = 0;
    L.ymin = 0;
    ck_assert_int_eq(sp_figure_lines(tmp, &L, &e), -1);
    ck_assert_msg(strstr(e.msg, "log y axis") && strstr(e.msg, "range"), "%s", e.msg);
    /* NaN on a log axis is just a missing point. */
    L.ymin = NAN;
    const double ynan[] = {NAN, 0.5, 0.25};
    ser[2] = (sp_series){NULL, 3, lx2, ynan, SP_STYLE_POINTS};
    ck_assert_msg(sp_figure_lines(tmp, &L, &e) == 0, "%s", e.msg);

    /* Ranges. */
    L = small_lines(ser);
    L.xmin = 10;
    L.xmax = 1;
    ck_assert_int_eq(sp_figure_lines(tmp, &L, &e), -1);
    ck_assert_msg(strstr(e.msg, "xmin (10) must be below xmax (1)"), "%s", e.msg);
    L.xmax = NAN;
    L.ymax = INFINITY;
    ck_assert_int_eq(sp_figure_lines(tmp, &L, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "finite or NaN"));

    /* Series. */
    L = small_lines(ser);
    L.n_series = 0;
    ck_assert_int_eq(sp_figure_lines(tmp, &L, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "0 series"));
    L.n_series = 65;
    ck_assert_int_eq(sp_figure_lines(tmp, &L, &e), -1);
    L.n_series = 3;
    ser[1].style = (sp_line_style)7;
    ck_assert_int_eq(sp_figure_lines(tmp, &L, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "style 7"));
    ser[1].style = SP_STYLE_LINES;
    ser[1].n = 2; /* points but NULL arrays */
    ck_assert_int_eq(sp_figure_lines(tmp, &L, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "NULL"));
    const double all_nan[] = {NAN, NAN};
    sp_series only = {"nan", 2, all_nan, all_nan, SP_STYLE_LINES};
    L.series = &only;
    L.n_series = 1;
    ck_assert_int_eq(sp_figure_lines(tmp, &L, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "nothing to draw"));
}
END_TEST

/* Reference lines outside a fixed y range are left out; the figure still
 * renders without any, and with a single series there is no key. */
START_TEST(test_lines_reference_range)
{
    char tmp[256];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    sp_series ser[3];
    sp_lines L = small_lines(ser);
    L.ymin = 0;
    L.ymax = 0.6;
    L.logx = 0;
    sp_err e = {{0}};
    ck_assert_msg(sp_figure_lines(tmp, &L, &e) == 0, "%s", e.msg);
    char *gp = slurp_in(tmp, "dims", ".gp");
    ck_assert_ptr_nonnull(strstr(gp, "nh = 2\narray hy[2] = [0.5, 0.375]\n"));
    ck_assert_ptr_nonnull(strstr(gp, "set yrange [0:0.6]\n"));
    ck_assert_ptr_nonnull(strstr(gp, "set xrange [*:*]\n"));
    free(gp);

    L.n_hlines = 0;
    L.n_series = 1;
    ck_assert_msg(sp_figure_lines(tmp, &L, &e) == 0, "%s", e.msg);
    expect_rendered(tmp, "dims");
    gp = slurp_in(tmp, "dims", ".gp");
    ck_assert_ptr_nonnull(strstr(gp, "show_key = 0\nnh = 0\narray hy[1] = [NaN]\n"));
    ck_assert_ptr_nonnull(strstr(gp, "set rmargin -1\n"));
    free(gp);
}
END_TEST

static double px[5], py[5];
static void pentagon(void)
{
    for (int i = 0; i < 5; i++) {
        px[i] = cos(2 * M_PI * i / 5);
        py[i] = sin(2 * M_PI * i / 5);
    }
}

START_TEST(test_vectors_files)
{
    char tmp[256];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    pentagon();
    sp_vectors v = {.name = "pent", .title = "pentagon", .n = 5, .x = px, .y = py,
                    .header = "seed: 1"};
    sp_err e = {{0}};
    ck_assert_msg(sp_figure_vectors(tmp, &v, &e) == 0, "%s", e.msg);
    expect_rendered(tmp, "pent");
    char *dat = slurp_in(tmp, "pent", ".dat");
    ck_assert_ptr_nonnull(strstr(dat, "# superpose vectors data: pent\n# title: pentagon\n"
                                      "# seed: 1\n"));
    ck_assert_ptr_nonnull(strstr(dat, "# panel 0: (untitled)\n# x y\n1 0\n"));
    parsed p;
    parse_dat(dat, 2, &p);
    ck_assert_uint_eq(p.blocks, 1);
    ck_assert_uint_eq(p.rows, 5);
    for (size_t i = 0; i < 5; i++) {
        ck_assert_msg(fabs(p.v[2 * i] - px[i]) <= 1e-8 && fabs(p.v[2 * i + 1] - py[i]) <= 1e-8,
                      "vector %zu: (%g, %g)", i, p.v[2 * i], p.v[2 * i + 1]);
    }
    free(dat);
    char *gp = slurp_in(tmp, "pent", ".gp");
    ck_assert_ptr_nonnull(strstr(gp, "np = 1\nn = 5\nr = 1.2\n"));
    ck_assert_ptr_nonnull(strstr(gp, "array vlabel[5] = [\"0\", \"1\", \"2\", \"3\", \"4\"]"));
    ck_assert_ptr_nonnull(strstr(gp, "set size ratio -1"));
    ck_assert_ptr_nonnull(strstr(gp, "set multiplot layout 1,1 title \"pentagon\""));
    free(gp);

    /* Panels: a common view fitted to the longest vector of all, a grid,
     * labels escaped, a non-finite vector written NaN and counted. */
    double x[15], y[15];
    for (int k = 0; k < 15; k++) {
        x[k] = 0.5 * px[k % 5] * (1 + k / 5);
        y[k] = 0.5 * py[k % 5] * (1 + k / 5);
    }
    x[7] = NAN;
    y[13] = -INFINITY;
    const char *const labels[] = {"a \"b\"", "c\\d", NULL, "\xc3\xa9", "e"};
    const char *const titles[] = {"run 1", "run 2", "run 3"};
    v = (sp_vectors){.name = "cols", .title = "W", .n = 5, .x = x, .y = y, .labels = labels,
                     .panels = 3, .panel_titles = titles};
    ck_assert_msg(sp_figure_vectors(tmp, &v, &e) == 0, "%s", e.msg);
    expect_rendered(tmp, "cols");
    gp = slurp_in(tmp, "cols", ".gp");
    ck_assert_ptr_nonnull(strstr(gp, "np = 3\nn = 5\nr = 1.8\n"));
    ck_assert_ptr_nonnull(strstr(gp, "[\"a \\\"b\\\"\", \"c\\\\d\", \"2\", \"\xc3\xa9\", \"e\"]"));
    ck_assert_ptr_nonnull(strstr(gp, "array ptitle[3] = [\"run 1\", \"run 2\", \"run 3\"]"));
    ck_assert_ptr_nonnull(strstr(gp, "[\"\", \"1 of 5 vectors not finite: not drawn\", "
                                     "\"1 of 5 vectors not finite: not drawn\"]"));
    ck_assert_ptr_nonnull(strstr(gp, "layout 2,2 "));
    free(gp);
    dat = slurp_in(tmp, "cols", ".dat");
    parse_dat(dat, 2, &p);
    ck_assert_uint_eq(p.blocks, 3);
    ck_assert_uint_eq(p.rows, 15);
    for (size_t k = 0; k < 15; k++) {
        ck_assert_uint_eq(p.block[2 * k], k / 5);
        int bad = k == 7 || k == 13;
        expect_value(p.v[2 * k], bad ? NAN : x[k], 2 * k);
        expect_value(p.v[2 * k + 1], bad ? NAN : y[k], 2 * k + 1);
    }
    ck_assert_ptr_nonnull(strstr(dat, "#   i 0: a \"b\"\n"));
    free(dat);
}
END_TEST

START_TEST(test_vectors_errors)
{
    char tmp[256];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    pentagon();
    sp_vectors v = {.name = "pent", .title = "pentagon", .n = 0, .x = px, .y = py};
    sp_err e = {{0}};
    ck_assert_int_eq(sp_figure_vectors(tmp, &v, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "0 vectors"));
    v.n = 5;
    v.panels = 65;
    ck_assert_int_eq(sp_figure_vectors(tmp, &v, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "65 panels"));
    v.panels = 0;
    v.y = NULL;
    ck_assert_int_eq(sp_figure_vectors(tmp, &v, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "NULL"));
    v.y = py;
    const char *const labels[] = {"0", "1", "tab\tok", "bell\a", "4"};
    v.labels = labels;
    ck_assert_int_eq(sp_figure_vectors(tmp, &v, &e), -1);
    ck_assert_msg(strstr(e.msg, "label 3") && strstr(e.msg, "control character 0x07"), "%s",
                  e.msg);
}
END_TEST

static const char *const bar_groups[] = {"a", "b \"2\"", "c"};
static const char *const bar_series[] = {"expected", "measured"};
/* (2 series, 3 groups): values[s * 3 + g] */
static const double bar_vals[] = {0.25, 0.05, 0.05, 0.26, 0.049, NAN};

static sp_bars small_bars(void)
{
    sp_bars b = {.name = "rates", .title = "rates", .xlabel = "feature", .ylabel = "p",
                 .n_groups = 3, .group_labels = bar_groups, .n_series = 2,
                 .series_labels = bar_series, .values = bar_vals, .header = "seed: 9"};
    return b;
}

START_TEST(test_bars_files)
{
    char tmp[256];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    sp_bars b = small_bars();
    sp_err e = {{0}};
    ck_assert_msg(sp_figure_bars(tmp, &b, &e) == 0, "%s", e.msg);
    expect_rendered(tmp, "rates");
    char *dat = slurp_in(tmp, "rates", ".dat");
    ck_assert_ptr_nonnull(strstr(dat, "# superpose bars data: rates\n# title: rates\n"
                                      "# seed: 9\n"));
    ck_assert_ptr_nonnull(strstr(dat, "#   s 0: expected\n#   s 1: measured\n"));
    ck_assert_ptr_nonnull(strstr(dat, "#   g 1: b \"2\"\n"));
    /* Rows are groups, columns series: the transpose of values. */
    parsed p;
    parse_dat(dat, 2, &p);
    ck_assert_uint_eq(p.rows, 3);
    for (size_t g = 0; g < 3; g++)
        for (size_t s = 0; s < 2; s++)
            expect_value(p.v[g * 2 + s], bar_vals[s * 3 + g], g * 2 + s);
    free(dat);
    char *gp = slurp_in(tmp, "rates", ".gp");
    ck_assert_ptr_nonnull(strstr(gp, "set xtics (\"a\" 0, \"b \\\"2\\\"\" 1, \"c\" 2) norotate"));
    ck_assert_ptr_nonnull(strstr(gp, "array slabel[2] = [\"expected\", \"measured\"]"));
    ck_assert_ptr_nonnull(strstr(gp, "set yrange [0:*]"));
    ck_assert_ptr_nonnull(strstr(gp, "show_key = 1"));
    free(gp);

    /* A log axis refuses 0, naming the series and group. */
    const double zero[] = {0.25, 0, 0.05, 0.26, 0.049, 0.1};
    b.values = zero;
    b.logy = 1;
    ck_assert_int_eq(sp_figure_bars(tmp, &b, &e), -1);
    ck_assert_msg(strstr(e.msg, "log y axis") && strstr(e.msg, "series 0 group 1"), "%s",
                  e.msg);
    const double pos[] = {0.25, 1e-4, 0.05, 0.26, 0.049, NAN};
    b.values = pos;
    ck_assert_msg(sp_figure_bars(tmp, &b, &e) == 0, "%s", e.msg);
    expect_rendered(tmp, "rates");

    b = small_bars();
    const char *const with_null[] = {"a", NULL, "c"};
    b.group_labels = with_null;
    ck_assert_int_eq(sp_figure_bars(tmp, &b, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "group label 1 is NULL"));
    b = small_bars();
    b.n_series = 17;
    ck_assert_int_eq(sp_figure_bars(tmp, &b, &e), -1);
    const double nans[] = {NAN, NAN, NAN, NAN, NAN, NAN};
    b = small_bars();
    b.values = nans;
    ck_assert_int_eq(sp_figure_bars(tmp, &b, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "nothing to draw"));
}
END_TEST

/* Crowded tic labels rotate; beyond that only every k-th is shown. */
START_TEST(test_bars_tics)
{
    char tmp[256];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    enum { G = 600 };
    static char lab[G][24];
    static const char *labp[G];
    static double vals[G];
    for (size_t g = 0; g < G; g++) {
        snprintf(lab[g], sizeof lab[g], "feature number %zu", g);
        labp[g] = lab[g];
        vals[g] = 1.0 / (double)(g + 1);
    }
    sp_bars b = {.name = "wide", .title = "t", .n_groups = 20, .group_labels = labp,
                 .n_series = 1, .values = vals};
    sp_err e = {{0}};
    ck_assert_msg(sp_figure_bars(tmp, &b, &e) == 0, "%s", e.msg);
    char *gp = slurp_in(tmp, "wide", ".gp");
    ck_assert_ptr_nonnull(strstr(gp, "rotate by 45 right"));
    ck_assert_ptr_nonnull(strstr(gp, "\"feature number 1\" 1,")); /* all 20 shown */
    ck_assert_ptr_nonnull(strstr(gp, "show_key = 0"));
    free(gp);
    b.n_groups = G;
    ck_assert_msg(sp_figure_bars(tmp, &b, &e) == 0, "%s", e.msg);
    expect_rendered(tmp, "wide");
    gp = slurp_in(tmp, "wide", ".gp");
    ck_assert_ptr_nonnull(strstr(gp, "(\"feature number 0\" 0, \"feature number 10\" 10,"));
    ck_assert_ptr_null(strstr(gp, "\"feature number 1\" 1,"));
    free(gp);
    b.n_groups = 5;
    b.group_labels = NULL; /* "0".."4", short: not rotated */
    ck_assert_msg(sp_figure_bars(tmp, &b, &e) == 0, "%s", e.msg);
    gp = slurp_in(tmp, "wide", ".gp");
    ck_assert_ptr_nonnull(strstr(gp, "(\"0\" 0, \"1\" 1, \"2\" 2, \"3\" 3, \"4\" 4) norotate"));
    free(gp);
}
END_TEST

/* Every kind: names validated like the heatmap's, texts must be UTF-8
 * without control characters, and text reaches gnuplot escaped: quotes,
 * backslashes, and '@' (left alone, never taken for a placeholder). */
START_TEST(test_kinds_bad_text)
{
    char tmp[256];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    sp_err e = {{0}};
    sp_series ser[3];
    sp_lines L = small_lines(ser);
    pentagon();
    sp_vectors v = {.name = "pent", .title = "t", .n = 5, .x = px, .y = py};
    sp_bars b = small_bars();
    static const char *const bad_names[] = {"../x", "a b", "", ".hidden", "x'y"};
    for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++) {
        L.name = v.name = b.name = bad_names[i];
        ck_assert_int_eq(sp_figure_lines(tmp, &L, &e), -1);
        ck_assert_msg(strstr(e.msg, "figure name"), "%s", e.msg);
        ck_assert_int_eq(sp_figure_vectors(tmp, &v, &e), -1);
        ck_assert_msg(strstr(e.msg, "figure name"), "%s", e.msg);
        ck_assert_int_eq(sp_figure_bars(tmp, &b, &e), -1);
        ck_assert_msg(strstr(e.msg, "figure name"), "%s", e.msg);
    }
    L.name = "l";
    v.name = "v";
    b.name = "b";
    L.title = v.title = b.title = "escape \x1b[31m";
    ck_assert_int_eq(sp_figure_lines(tmp, &L, &e), -1);
    ck_assert_msg(strstr(e.msg, "lines 'l': title has the control character 0x1b"), "%s",
                  e.msg);
    ck_assert_int_eq(sp_figure_vectors(tmp, &v, &e), -1);
    ck_assert_msg(strstr(e.msg, "vectors 'v': title"), "%s", e.msg);
    ck_assert_int_eq(sp_figure_bars(tmp, &b, &e), -1);
    ck_assert_msg(strstr(e.msg, "bars 'b': title"), "%s", e.msg);
    L.title = v.title = b.title = "latin-1 caf\xe9";
    ck_assert_int_eq(sp_figure_lines(tmp, &L, &e), -1);
    ck_assert_msg(strstr(e.msg, "not valid UTF-8"), "%s", e.msg);
    L.title = "ok";
    ser[0].title = "overlong \xc0\xaf";
    ck_assert_int_eq(sp_figure_lines(tmp, &L, &e), -1);
    ck_assert_msg(strstr(e.msg, "series 0 title is not valid UTF-8"), "%s", e.msg);
    ser[0].title = "ok";
    L.xlabel = "x\x7f";
    ck_assert_int_eq(sp_figure_lines(tmp, &L, &e), -1);
    ck_assert_msg(strstr(e.msg, "xlabel"), "%s", e.msg);
    L.xlabel = "x";
    const char *const bad_ref[] = {"ok", "a\rb", "ok"};
    L.hline_labels = bad_ref;
    ck_assert_int_eq(sp_figure_lines(tmp, &L, &e), -1);
    ck_assert_msg(strstr(e.msg, "reference line 1 label"), "%s", e.msg);
    b.title = "ok";
    const char *const bad_series[] = {"ok", "\x01"};
    b.series_labels = bad_series;
    ck_assert_int_eq(sp_figure_bars(tmp, &b, &e), -1);
    ck_assert_msg(strstr(e.msg, "series label 1"), "%s", e.msg);

    /* Hard text renders, escaped. */
    const char *hard = "@TITLE@ \"q\" back\\slash 10% caf\xc3\xa9 @x";
    L = small_lines(ser);
    L.name = "hard";
    L.title = hard;
    ser[0].title = hard;
    ck_assert_msg(sp_figure_lines(tmp, &L, &e) == 0, "%s", e.msg);
    char *gp = slurp_in(tmp, "hard", ".gp");
    ck_assert_ptr_nonnull(strstr(gp, "set title \"@TITLE@ \\\"q\\\" back\\\\slash 10% "
                                     "caf\xc3\xa9 @x\""));
    free(gp);
    char *svg = slurp_in(tmp, "hard", ".svg");
    ck_assert_ptr_nonnull(strstr(svg, "@TITLE@"));
    ck_assert_ptr_nonnull(strstr(svg, "caf\xc3\xa9 @x"));
    free(svg);
}
END_TEST

START_TEST(test_kinds_template_not_found)
{
    char tmp[256];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    env_save s = env_set("SUPERPOSE_PLOTS", tmp);
    sp_err e = {{0}};
    sp_series ser[3];
    sp_lines L = small_lines(ser);
    pentagon();
    sp_vectors v = {.name = "pent", .title = "t", .n = 5, .x = px, .y = py};
    sp_bars b = small_bars();
    char want[512];
    ck_assert_int_eq(sp_figure_lines(tmp, &L, &e), -1);
    snprintf(want, sizeof want, "template 'lines.gp' not found: looked in '%s' (from "
                                "$SUPERPOSE_PLOTS)", tmp);
    ck_assert_str_eq(e.msg, want);
    ck_assert_int_eq(sp_figure_vectors(tmp, &v, &e), -1);
    snprintf(want, sizeof want, "template 'vectors.gp' not found: looked in '%s' (from "
                                "$SUPERPOSE_PLOTS)", tmp);
    ck_assert_str_eq(e.msg, want);
    ck_assert_int_eq(sp_figure_bars(tmp, &b, &e), -1);
    snprintf(want, sizeof want, "template 'bars.gp' not found: looked in '%s' (from "
                                "$SUPERPOSE_PLOTS)", tmp);
    ck_assert_str_eq(e.msg, want);
    /* Nothing was written. */
    char p[512];
    path_of(p, sizeof p, tmp, "dims.dat");
    ck_assert_int_ne(access(p, F_OK), 0);

    /* A template with an unknown placeholder names file and line. */
    path_of(p, sizeof p, tmp, "bars.gp");
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs("## doc\nset title \"@TITLE@\"\nplot @NOSUCH@\n", f);
    fclose(f);
    ck_assert_int_eq(sp_figure_bars(tmp, &b, &e), -1);
    ck_assert_msg(strstr(e.msg, "bars.gp:3: unknown placeholder @NOSUCH@"), "%s", e.msg);
    env_restore(&s);
}
END_TEST

/* Numbers are written in the C locale even when the program switched to
 * one with a decimal comma. Only runs where such a locale is installed. */
START_TEST(test_kinds_c_locale)
{
    static const char *const comma[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8",
                                        "fr_FR.utf8", "nl_NL.UTF-8"};
    const char *got = NULL;
    for (size_t i = 0; !got && i < sizeof comma / sizeof *comma; i++)
        got = setlocale(LC_NUMERIC, comma[i]);
    if (!got) {
        fprintf(stderr, "check_figure: no decimal-comma locale installed (tried de_DE, "
                        "fr_FR, nl_NL): the C-locale test is skipped\n");
        return;
    }
    char tmp[256];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    sp_series ser[3];
    sp_lines L = small_lines(ser);
    sp_err e = {{0}};
    int rc = sp_figure_lines(tmp, &L, &e);
    setlocale(LC_NUMERIC, "C");
    ck_assert_msg(rc == 0, "%s", e.msg);
    char *dat = slurp_in(tmp, "dims", ".dat");
    ck_assert_ptr_nonnull(strstr(dat, "\n1 0.5\n"));
    ck_assert_ptr_null(strstr(dat, "0,5"));
    free(dat);
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
    tcase_add_test(tc, test_lines_nan_not_drawn);
    tcase_add_test(tc, test_lines_errors);
    tcase_add_test(tc, test_lines_reference_range);
    tcase_add_test(tc, test_vectors_files);
    tcase_add_test(tc, test_vectors_errors);
    tcase_add_test(tc, test_bars_files);
    tcase_add_test(tc, test_bars_tics);
    tcase_add_test(tc, test_kinds_bad_text);
    tcase_add_test(tc, test_kinds_template_not_found);
    tcase_add_test(tc, test_kinds_c_locale);
    suite_add_tcase(s, tc);
    return s;
}
