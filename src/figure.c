/* figure.c: figures as data plus a gnuplot script.
 *
 * A figure is three things in one folder: NAME.dat (the numbers, with a '#'
 * header saying what they are), NAME.gp (a template from plots/ with its
 * @PLACEHOLDER@ tokens filled in) and the NAME.png / NAME.svg that gnuplot
 * renders from them. NAME.gp names its files relative to the folder and
 * gnuplot runs with the folder as its working directory, so a user can
 * restyle the script and re-run `gnuplot NAME.gp` there by hand.
 *
 * Design choices:
 * - Templates hold all the styling; this file only computes what depends on
 *   the data (ranges, tic lists, font sizes) and escapes strings. Lines of a
 *   template that start with "##" document it and are not copied. A token
 *   @WORD@ the code does not know is an error, so template typos fail.
 * - Template lookup: $SUPERPOSE_PLOTS if set (then it is the only place
 *   looked, so that a wrong override is reported, not silently bypassed),
 *   else SP_SOURCE_DIR/plots (compiled in by the Makefile), else ./plots.
 * - Numbers are written under a thread-local C locale (uselocale), so a
 *   program that called setlocale(LC_ALL, "") in, say, de_DE still writes
 *   0.5, never 0,5. NaN is written "NaN", infinities "Inf" / "-Inf".
 * - Files are written to a temporary name in the same folder and renamed,
 *   so a crash never leaves half a NAME.dat or NAME.gp behind.
 * - gnuplot is found on PATH by us (so "not installed" is a clear message),
 *   then run with fork + chdir + execv; its stderr is captured and, when it
 *   exits non-zero, its first error line goes into the message. Between
 *   fork and exec the child only makes async-signal-safe calls.
 * - Library code never prints: every failure is one sp_err message.
 *
 * Kinds: heatmap, lines, vectors, bars. Each checks its input (name, texts,
 * sizes, log axes) before touching the disk, then goes through fig_begin /
 * fig_val / fig_finish: template, placeholder values and data file are
 * formatted under the C locale, then written and rendered. Texts must be
 * UTF-8 without control characters (newline and tab allowed) for the new
 * kinds; the heatmap, older, turns control characters into spaces. Lists of
 * strings (labels, titles) reach the script as gnuplot arrays, not as
 * quoted columns of the data file, so the data files stay plain numbers. */
#include "superpose/figure.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define SP_FIGURE_ENV "SUPERPOSE_PLOTS"
#define SP_GNUPLOT_MISSING "gnuplot not found: install the Debian package gnuplot-nox"
#define MAX_TEMPLATE_BYTES (1u << 20)
#define MAX_STDERR_BYTES 16384
#define MAX_GRID 100000

/* ------------------------------------------------------------------ */
/* A growable string. Out-of-memory is sticky and checked once at the end. */

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_reserve(sbuf *b, size_t extra)
{
    if (b->oom || b->n + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void sb_putn(sbuf *b, const char *s, size_t len)
{
    sb_reserve(b, len);
    if (b->oom)
        return;
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (len < 0) {
        b->oom = 1;
        return;
    }
    sb_reserve(b, (size_t)len);
    if (b->oom)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)len + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)len;
}

/* Detaches the string (never NULL unless out of memory). */
static char *sb_take(sbuf *b)
{
    if (b->oom) {
        free(b->p);
        return NULL;
    }
    if (!b->p)
        return sp_strdup("");
    return b->p;
}

/* For the inside of a gnuplot "..." string: \ and " escaped, newline and
 * tab as \n and \t, other control characters as spaces. UTF-8 passes. */
static void sb_put_gpstring(sbuf *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '\\')
            sb_puts(b, "\\\\");
        else if (*p == '"')
            sb_puts(b, "\\\"");
        else if (*p == '\n')
            sb_puts(b, "\\n");
        else if (*p == '\t')
            sb_puts(b, "\\t");
        else if (*p < 0x20 || *p == 0x7f)
            sb_puts(b, " ");
        else
            sb_putn(b, (const char *)p, 1);
    }
}

/* For the rest of a '#' comment line: control characters become spaces. */
static void sb_put_comment(sbuf *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++)
        sb_putn(b, (*p < 0x20 || *p == 0x7f) ? " " : (const char *)p, 1);
}

/* %.9g in the C locale (the caller has switched to it), NaN/Inf spelled
 * the way gnuplot and strtod both read them. */
static void sb_put_number(sbuf *b, double v)
{
    if (isnan(v))
        sb_puts(b, "NaN");
    else if (isinf(v))
        sb_puts(b, v > 0 ? "Inf" : "-Inf");
    else
        sb_printf(b, "%.9g", v);
}

/* ------------------------------------------------------------------ */
/* The C locale for number formatting, restored afterwards. */

typedef struct {
    locale_t c, old;
} c_locale_guard;

static int c_locale_enter(c_locale_guard *g, sp_err *err)
{
    g->old = uselocale((locale_t)0);
    g->c = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    if (g->c == (locale_t)0)
        return sp_err_set(err, "cannot create the C locale: %s", strerror(errno));
    g->old = uselocale(g->c);
    return 0;
}

static void c_locale_leave(c_locale_guard *g)
{
    uselocale(g->old);
    freelocale(g->c);
}

/* ------------------------------------------------------------------ */
/* Names, folders, files. */

/* File stems end up inside gnuplot '...' strings and file names. */
static int check_name(const char *name, sp_err *err)
{
    if (!name || !*name)
        return sp_err_set(err, "figure name is empty");
    if (strlen(name) > 200)
        return sp_err_set(err, "figure name '%.40s...' is longer than 200 characters", name);
    for (const char *p = name; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.' || c == '+';
        if (!ok)
            return sp_err_set(err, "figure name '%s' has the character '%c': use only "
                              "letters, digits and . _ - +", name, c);
    }
    if (name[0] == '.')
        return sp_err_set(err, "figure name '%s' starts with '.'", name);
    return 0;
}

static int check_dir(const char *dir, sp_err *err)
{
    struct stat st;
    if (!dir || !*dir)
        return sp_err_set(err, "figure folder name is empty");
    if (stat(dir, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return sp_err_set(err, "figure folder '%s' does not exist", dir);
        return sp_err_set(err, "cannot use figure folder '%s': %s", dir, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode))
        return sp_err_set(err, "figure folder '%s' is not a folder", dir);
    if (access(dir, W_OK | X_OK) != 0)
        return sp_err_set(err, "cannot write in figure folder '%s': %s", dir,
                          strerror(errno));
    return 0;
}

static int join_path(char *out, size_t len, const char *dir, const char *file,
                     const char *ext, sp_err *err)
{
    int n = snprintf(out, len, "%s/%s%s", dir, file, ext ? ext : "");
    if (n < 0 || (size_t)n >= len)
        return sp_err_set(err, "path '%s/%s%s' is too long", dir, file, ext ? ext : "");
    return 0;
}

/* Writes data to dir/file via a temporary file in dir and a rename. */
static int write_file_atomic(const char *dir, const char *file, const char *data,
                             size_t len, sp_err *err)
{
    char tmp[PATH_MAX], final[PATH_MAX];
    if (join_path(final, sizeof final, dir, file, NULL, err) != 0)
        return -1;
    int n = snprintf(tmp, sizeof tmp, "%s/.%s.XXXXXX", dir, file);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return sp_err_set(err, "path '%s' is too long", final);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return sp_err_set(err, "cannot write in figure folder '%s': %s", dir,
                          strerror(errno));
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return sp_err_set(err, "cannot write '%s': %s", final, strerror(e));
        }
        off += (size_t)w;
    }
    /* mkstemp makes the file private; figures are meant to be shared. */
    if (fchmod(fd, 0644) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return sp_err_set(err, "cannot write '%s': %s", final, strerror(e));
    }
    if (rename(tmp, final) != 0) {
        int e = errno;
        unlink(tmp);
        return sp_err_set(err, "cannot write '%s': %s", final, strerror(e));
    }
    return 0;
}

static char *read_small_file(const char *path, size_t max, sp_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        sp_err_set(err, "cannot read '%s': %s", path, strerror(errno));
        return NULL;
    }
    sbuf b = {0};
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.n + got > max) {
            fclose(f);
            free(b.p);
            sp_err_set(err, "'%s' is larger than %zu bytes", path, max);
            return NULL;
        }
        sb_putn(&b, chunk, got);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(b.p);
        sp_err_set(err, "cannot read '%s'", path);
        return NULL;
    }
    char *s = sb_take(&b);
    if (!s)
        sp_err_set(err, "out of memory reading '%s'", path);
    return s;
}

/* ------------------------------------------------------------------ */
/* Templates. */

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_readable_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, R_OK) == 0;
}

/* The folders looked in, in order; returns how many (at most 2). */
static size_t template_candidates(const char *out[2], int *from_env)
{
    const char *env = getenv(SP_FIGURE_ENV);
    if (env && *env) {
        out[0] = env;
        *from_env = 1;
        return 1;
    }
    *from_env = 0;
    size_t n = 0;
#ifdef SP_SOURCE_DIR
    out[n++] = SP_SOURCE_DIR "/plots";
#endif
    out[n++] = "./plots";
    return n;
}

const char *sp_figure_template_dir(void)
{
    const char *cand[2];
    int from_env;
    size_t n = template_candidates(cand, &from_env);
    for (size_t i = 0; i < n; i++)
        if (is_dir(cand[i]))
            return cand[i];
    return NULL;
}

static int find_template(const char *file, char *out, size_t len, sp_err *err)
{
    const char *cand[2];
    int from_env;
    size_t n = template_candidates(cand, &from_env);
    for (size_t i = 0; i < n; i++) {
        if (join_path(out, len, cand[i], file, NULL, err) != 0)
            return -1;
        if (is_readable_file(out))
            return 0;
    }
    if (from_env)
        return sp_err_set(err, "template '%s' not found: looked in '%s' (from $"
                          SP_FIGURE_ENV ")", file, cand[0]);
    if (n == 2)
        return sp_err_set(err, "template '%s' not found: looked in '%s' and '%s' (set $"
                          SP_FIGURE_ENV " to the folder holding the templates)",
                          file, cand[0], cand[1]);
    return sp_err_set(err, "template '%s' not found: looked in '%s' (set $"
                      SP_FIGURE_ENV " to the folder holding the templates)", file, cand[0]);
}

typedef struct {
    const char *key;
    const char *val;
} subst;

static int is_key_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Copies the template with "##" lines dropped and @KEY@ tokens replaced
 * (one pass: replaced text is never rescanned). */
static char *fill_template(const char *path, const char *text, const subst *subs,
                           size_t nsubs, sp_err *err)
{
    sbuf b = {0};
    int line = 0;
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) + 1 : strlen(p);
        line++;
        if (len >= 2 && p[0] == '#' && p[1] == '#') {
            p += len;
            continue;
        }
        for (size_t i = 0; i < len; i++) {
            if (p[i] != '@') {
                sb_putn(&b, p + i, 1);
                continue;
            }
            size_t j = i + 1;
            while (j < len && is_key_char(p[j]))
                j++;
            if (j == i + 1 || j >= len || p[j] != '@') {
                sb_putn(&b, p + i, 1); /* a lone '@', e.g. a gnuplot macro */
                continue;
            }
            size_t klen = j - i - 1;
            const subst *s = NULL;
            for (size_t k = 0; k < nsubs; k++)
                if (strlen(subs[k].key) == klen && memcmp(subs[k].key, p + i + 1, klen) == 0)
                    s = &subs[k];
            if (!s) {
                free(b.p);
                sp_err_set(err, "%s:%d: unknown placeholder @%.*s@", path, line,
                           (int)klen, p + i + 1);
                return NULL;
            }
            sb_puts(&b, s->val);
            i = j;
        }
        p += len;
    }
    char *out = sb_take(&b);
    if (!out)
        sp_err_set(err, "out of memory filling template '%s'", path);
    return out;
}

/* ------------------------------------------------------------------ */
/* Running gnuplot. */

static int find_program(const char *prog, char *out, size_t len)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    const char *p = path;
    for (;;) {
        const char *end = strchr(p, ':');
        size_t dlen = end ? (size_t)(end - p) : strlen(p);
        const char *d = dlen ? p : ".";
        int dl = dlen ? (int)dlen : 1;
        int n = snprintf(out, len, "%.*s/%s", dl, d, prog);
        struct stat st;
        if (n > 0 && (size_t)n < len && stat(out, &st) == 0 && S_ISREG(st.st_mode) &&
            access(out, X_OK) == 0) {
            /* The child changes folder before exec: make the path absolute. */
            char cwd[PATH_MAX], abs[PATH_MAX];
            if (out[0] != '/' && getcwd(cwd, sizeof cwd)) {
                int m = snprintf(abs, sizeof abs, "%s/%s", cwd, out);
                if (m > 0 && (size_t)m < len && (size_t)m < sizeof abs)
                    memcpy(out, abs, (size_t)m + 1);
            }
            return 0;
        }
        if (!end)
            return -1;
        p = end + 1;
    }
}

/* gnuplot reports errors as `"NAME.gp" line 12: message`, often after the
 * offending command and a caret line; warnings look the same with
 * "warning:". Picks the first real error line, else the first line with
 * text in it. */
static void first_error_line(const char *text, char *out, size_t len)
{
    const char *fallback = NULL;
    size_t fallback_len = 0;
    for (const char *p = text; *p;) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        int has_text = 0;
        for (size_t i = 0; i < n; i++)
            if (p[i] != ' ' && p[i] != '\t' && p[i] != '^')
                has_text = 1;
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), p);
        const char *at = strstr(line, " line ");
        if (has_text && at && strchr(at, ':') && !strstr(line, "warning:")) {
            size_t k = strlen(line) < len ? strlen(line) : len - 1;
            memcpy(out, line, k);
            out[k] = '\0';
            return;
        }
        if (has_text && !fallback) {
            fallback = p;
            fallback_len = n;
        }
        if (!eol)
            break;
        p = eol + 1;
    }
    if (fallback)
        snprintf(out, len, "%.*s", (int)(fallback_len < len ? fallback_len : len - 1), fallback);
    else
        snprintf(out, len, "no message on stderr");
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static int make_pipe(int fds[2])
{
    if (pipe(fds) != 0)
        return -1;
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    return 0;
}

/* What the child reports through the exec pipe when it cannot exec. */
enum { STAGE_CHDIR = 1, STAGE_EXEC = 2 };

int sp_figure_render(const char *dir, const char *name, sp_err *err)
{
    char script[PATH_MAX], gnuplot[PATH_MAX], file[256];
    if (check_name(name, err) != 0)
        return -1;
    if (check_dir(dir, err) != 0)
        return -1;
    if (join_path(script, sizeof script, dir, name, ".gp", err) != 0)
        return -1;
    if (!is_readable_file(script))
        return sp_err_set(err, "cannot render '%s': %s", script,
                          access(script, F_OK) == 0 ? "not a readable file"
                                                     : "no such file");
    if (find_program("gnuplot", gnuplot, sizeof gnuplot) != 0)
        return sp_err_set(err, SP_GNUPLOT_MISSING);
    snprintf(file, sizeof file, "%s.gp", name);

    int execp[2] = {-1, -1}, errp[2] = {-1, -1};
    if (make_pipe(execp) != 0 || make_pipe(errp) != 0) {
        int e = errno;
        close_fd(&execp[0]);
        close_fd(&execp[1]);
        return sp_err_set(err, "cannot run gnuplot: pipe: %s", strerror(e));
    }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close_fd(&execp[0]);
        close_fd(&execp[1]);
        close_fd(&errp[0]);
        close_fd(&errp[1]);
        return sp_err_set(err, "cannot run gnuplot: fork: %s", strerror(e));
    }
    if (pid == 0) {
        /* Child: async-signal-safe calls only. */
        int report[2];
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
        }
        dup2(errp[1], 2);
        report[0] = STAGE_CHDIR;
        if (chdir(dir) == 0) {
            char *const argv[] = {"gnuplot", file, NULL};
            execv(gnuplot, argv);
            report[0] = STAGE_EXEC;
        }
        report[1] = errno;
        if (write(execp[1], report, sizeof report) < 0)
            _exit(126);
        _exit(127);
    }
    close_fd(&execp[1]);
    close_fd(&errp[1]);

    /* The exec pipe closes on a successful exec, or carries the failure. */
    int report[2] = {0, 0};
    size_t got = 0;
    while (got < sizeof report) {
        ssize_t r = read(execp[0], (char *)report + got, sizeof report - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close_fd(&execp[0]);

    sbuf out = {0};
    char chunk[4096];
    for (;;) {
        ssize_t r = read(errp[0], chunk, sizeof chunk);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (out.n < MAX_STDERR_BYTES)
            sb_putn(&out, chunk, (size_t)r); /* beyond that, drain only */
    }
    close_fd(&errp[0]);

    int status = 0;
    pid_t w;
    while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    int rc = 0;
    if (got == sizeof report) {
        if (report[0] == STAGE_CHDIR)
            rc = sp_err_set(err, "cannot enter figure folder '%s': %s", dir,
                            strerror(report[1]));
        else
            rc = sp_err_set(err, "cannot run %s: %s", gnuplot, strerror(report[1]));
    } else if (w < 0) {
        rc = sp_err_set(err, "cannot wait for gnuplot: %s", strerror(errno));
    } else if (WIFSIGNALED(status)) {
        rc = sp_err_set(err, "gnuplot was killed by signal %d while rendering '%s'",
                        WTERMSIG(status), script);
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char line[768];
        first_error_line(out.p && !out.oom ? out.p : "", line, sizeof line);
        rc = sp_err_set(err, "gnuplot failed on '%s' (exit status %d): %s", script,
                        WIFEXITED(status) ? WEXITSTATUS(status) : -1, line);
    }
    free(out.p);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Heatmap. */

/* The cell label format must be one floating-point conversion
 * (%[flags][width][.prec]{e,E,f,F,g,G}) plus literal text and %%: both C
 * and gnuplot's sprintf accept that, and nothing else reaches printf. */
int sp_figure_check_label_fmt(const char *fmt, sp_err *err)
{
    int conversions = 0;
    for (const char *p = fmt; *p; p++) {
        if ((unsigned char)*p < 0x20)
            return sp_err_set(err, "label_fmt \"%s\" has a control character", fmt);
        if (*p != '%')
            continue;
        if (p[1] == '%') {
            p++;
            continue;
        }
        const char *q = p + 1;
        while (*q && strchr("-+ #0", *q))
            q++;
        while (*q >= '0' && *q <= '9')
            q++;
        if (*q == '.') {
            q++;
            while (*q >= '0' && *q <= '9')
                q++;
        }
        if (!*q || !strchr("eEfFgG", *q))
            return sp_err_set(err, "label_fmt \"%s\": only one floating-point conversion "
                              "(%%e, %%f or %%g with flags, width, precision) is allowed", fmt);
        conversions++;
        p = q;
    }
    if (conversions != 1)
        return sp_err_set(err, "label_fmt \"%s\" must hold exactly one %%e, %%f or %%g "
                          "conversion", fmt);
    return 0;
}

/* Display width in characters of a UTF-8 string (code points). */
static size_t text_width(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++)
        if ((*p & 0xc0) != 0x80)
            n++;
    return n;
}

static void sb_put_tics(sbuf *b, const char *const *tics, size_t n)
{
    sb_puts(b, "(");
    for (size_t i = 0; i < n; i++) {
        sb_puts(b, i ? ", \"" : "\"");
        if (tics)
            sb_put_gpstring(b, tics[i]);
        else
            sb_printf(b, "%zu", i);
        sb_printf(b, "\" %zu", i);
    }
    sb_puts(b, ")");
}

static void sb_put_tic_comments(sbuf *b, const char *axis, const char *idx,
                                const char *label, const char *const *tics, size_t n)
{
    sb_printf(b, "# %s: ", axis);
    sb_put_comment(b, label && *label ? label : "(no label)");
    sb_printf(b, "; tic labels by %s:\n", idx);
    for (size_t i = 0; i < n; i++) {
        sb_printf(b, "#   %s %zu: ", idx, i);
        if (tics)
            sb_put_comment(b, tics[i]);
        else
            sb_printf(b, "%zu", i);
        sb_puts(b, "\n");
    }
}

/* The tic list with only every step-th label, for axes too crowded to show
 * them all. */
static void sb_put_tics_every(sbuf *b, const char *const *tics, size_t n, size_t step)
{
    sb_puts(b, "(");
    for (size_t i = 0; i < n; i += step) {
        sb_puts(b, i ? ", \"" : "\"");
        if (tics)
            sb_put_gpstring(b, tics[i]);
        else
            sb_printf(b, "%zu", i);
        sb_printf(b, "\" %zu", i);
    }
    sb_puts(b, ")");
}

/* ------------------------------------------------------------------ */
/* Shared by every figure kind. */

/* Text for a gnuplot string and a '#' comment: valid UTF-8 (the SVG is
 * XML, which invalid bytes would make unreadable) and no control character
 * but newline and tab. NULL is allowed (no text). fig names the figure,
 * what the text, for the message. */
static int check_text(const char *fig, const char *what, const char *s, sp_err *err)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    for (size_t i = 0; p[i];) {
        unsigned c = p[i];
        if (c < 0x80) {
            if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
                return sp_err_set(err, "%s: %s has the control character 0x%02x at byte %zu "
                                  "(only newline and tab are allowed)", fig, what, c, i);
            i++;
            continue;
        }
        size_t len = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        unsigned long cp = len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                len = 0;
                break;
            }
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        static const unsigned long min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (len == 0 || cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return sp_err_set(err, "%s: %s is not valid UTF-8 (byte %zu)", fig, what, i);
        i += len;
    }
    return 0;
}

/* Axis limits: each finite or NaN (automatic), lo below hi when both are
 * given, both positive on a log axis. */
static int check_range(const char *fig, char axis, double lo, double hi, int logscale,
                       sp_err *err)
{
    if (isinf(lo) || isinf(hi))
        return sp_err_set(err, "%s: %cmin and %cmax must be finite or NaN (automatic)", fig,
                          axis, axis);
    if (!isnan(lo) && !isnan(hi) && !(lo < hi))
        return sp_err_set(err, "%s: %cmin (%g) must be below %cmax (%g)", fig, axis, lo, axis,
                          hi);
    if (logscale && ((!isnan(lo) && lo <= 0) || (!isnan(hi) && hi <= 0)))
        return sp_err_set(err, "%s: log %c axis, but the %c range [%g, %g] is not positive "
                          "(a log axis shows only positive values)", fig, axis, axis, lo, hi);
    return 0;
}

/* [lo:hi] for gnuplot, * where NaN. */
static void sb_put_range(sbuf *b, double lo, double hi)
{
    sb_puts(b, "[");
    if (isnan(lo))
        sb_puts(b, "*");
    else
        sb_put_number(b, lo);
    sb_puts(b, ":");
    if (isnan(hi))
        sb_puts(b, "*");
    else
        sb_put_number(b, hi);
    sb_puts(b, "]");
}

/* A value of a lines or vectors data file: non-finite values are written NaN,
 * which gnuplot reads as undefined and does not draw. */
static void sb_put_drawn(sbuf *b, double v)
{
    if (isfinite(v))
        sb_printf(b, "%.9g", v);
    else
        sb_puts(b, "NaN");
}

/* The first lines of every data file: kind, name, title, the caller's
 * header (each line behind "# "). */
static void sb_put_data_header(sbuf *b, const char *kind, const char *name, const char *title,
                               const char *header)
{
    sb_printf(b, "# superpose %s data: %s\n", kind, name);
    if (title && *title) {
        sb_puts(b, "# title: ");
        sb_put_comment(b, title);
        sb_puts(b, "\n");
    }
    for (const char *p = header; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        sb_puts(b, "# ");
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)p[i];
            sb_putn(b, (c < 0x20 || c == 0x7f) ? " " : p + i, 1);
        }
        sb_puts(b, "\n");
        if (!eol)
            break;
        p = eol + 1;
    }
}

/* One line of a '#' comment: prefix, then text (or fallback when empty). */
static void sb_put_comment_line(sbuf *b, const char *prefix, const char *text,
                                const char *fallback)
{
    sb_puts(b, prefix);
    sb_put_comment(b, text && *text ? text : fallback);
    sb_puts(b, "\n");
}

/* A gnuplot array initializer ["a", "b", ...] of n escaped strings: texts[i],
 * or "" when texts or texts[i] is NULL, or the index when numbered. An empty
 * array is written as one "" (gnuplot arrays have at least one element). */
static void sb_put_string_array(sbuf *b, const char *const *texts, size_t n, int numbered)
{
    sb_puts(b, "[");
    for (size_t i = 0; i < n; i++) {
        sb_puts(b, i ? ", \"" : "\"");
        if (texts && texts[i])
            sb_put_gpstring(b, texts[i]);
        else if (numbered)
            sb_printf(b, "%zu", i);
        sb_puts(b, "\"");
    }
    if (n == 0)
        sb_puts(b, "\"\"");
    sb_puts(b, "]");
}

/* Builds one figure: the template, the placeholder values and the data file
 * are formatted under the C locale between fig_begin and fig_finish. */
#define MAX_PLACEHOLDERS 32

typedef struct {
    char tpath[PATH_MAX];
    char *tmpl;
    c_locale_guard loc;
    size_t n;
    const char *keys[MAX_PLACEHOLDERS];
    sbuf vals[MAX_PLACEHOLDERS];
    sbuf data;
    sbuf overflow; /* handed out when keys is full; marked out of memory */
} fig_build;

/* The buffer for placeholder @key@'s value. */
static sbuf *fig_val(fig_build *fb, const char *key)
{
    if (fb->n == MAX_PLACEHOLDERS) {
        fb->overflow.oom = 1;
        return &fb->overflow;
    }
    fb->keys[fb->n] = key;
    return &fb->vals[fb->n++];
}

/* Finds and reads the template, enters the C locale and fills the
 * placeholders every kind has: NAME, DATA, PNG, SVG, TITLE. */
static int fig_begin(fig_build *fb, const char *template_file, const char *name,
                     const char *title, sp_err *err)
{
    memset(fb, 0, sizeof *fb);
    if (find_template(template_file, fb->tpath, sizeof fb->tpath, err) != 0)
        return -1;
    fb->tmpl = read_small_file(fb->tpath, MAX_TEMPLATE_BYTES, err);
    if (!fb->tmpl)
        return -1;
    if (c_locale_enter(&fb->loc, err) != 0) {
        free(fb->tmpl);
        return -1;
    }
    sb_puts(fig_val(fb, "NAME"), name);
    sb_printf(fig_val(fb, "DATA"), "%s.dat", name);
    sb_printf(fig_val(fb, "PNG"), "%s.png", name);
    sb_printf(fig_val(fb, "SVG"), "%s.svg", name);
    sb_put_gpstring(fig_val(fb, "TITLE"), title);
    return 0;
}

/* Leaves the C locale, fills the template, writes NAME.dat and NAME.gp,
 * renders, and frees everything fig_begin and fig_val made. */
static int fig_finish(fig_build *fb, const char *dir, const char *kind, const char *name,
                      sp_err *err)
{
    c_locale_leave(&fb->loc);
    subst subs[MAX_PLACEHOLDERS];
    int oom = fb->data.oom || fb->overflow.oom;
    for (size_t i = 0; i < fb->n; i++) {
        oom |= fb->vals[i].oom;
        subs[i].key = fb->keys[i];
        subs[i].val = fb->vals[i].p ? fb->vals[i].p : "";
    }
    char *script = oom ? NULL : fill_template(fb->tpath, fb->tmpl, subs, fb->n, err);
    int rc = -1;
    char file[256];
    if (oom) {
        sp_err_set(err, "out of memory writing %s '%s'", kind, name);
    } else if (script) {
        const char *data = fb->data.p ? fb->data.p : "";
        snprintf(file, sizeof file, "%s.dat", name);
        if (write_file_atomic(dir, file, data, strlen(data), err) == 0) {
            snprintf(file, sizeof file, "%s.gp", name);
            if (write_file_atomic(dir, file, script, strlen(script), err) == 0)
                rc = sp_figure_render(dir, name, err);
        }
    }
    free(script);
    for (size_t i = 0; i < fb->n; i++)
        free(fb->vals[i].p);
    free(fb->overflow.p);
    free(fb->data.p);
    free(fb->tmpl);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Heatmap (continued). */

static void heatmap_data(sbuf *b, const sp_heatmap *h)
{
    sb_put_data_header(b, "heatmap", h->name, h->title, h->header);
    sb_printf(b, "#\n# A %zu x %zu matrix: data row iy = 0..%zu (the first row is drawn at "
              "the bottom),\n# column ix = 0..%zu; entry (iy, ix) is the value of cell "
              "(ix, iy). NaN marks a missing cell.\n", h->ny, h->nx, h->ny - 1, h->nx - 1);
    sb_put_comment_line(b, "# value: ", h->cblabel, "(no label)");
    sb_put_tic_comments(b, "x (columns)", "ix", h->xlabel, h->xtics, h->nx);
    sb_put_tic_comments(b, "y (rows)", "iy", h->ylabel, h->ytics, h->ny);
    for (size_t iy = 0; iy < h->ny; iy++) {
        for (size_t ix = 0; ix < h->nx; ix++) {
            if (ix)
                sb_puts(b, " ");
            sb_put_number(b, h->z[iy * h->nx + ix]);
        }
        sb_puts(b, "\n");
    }
}

static int check_heatmap(const sp_heatmap *h, sp_err *err)
{
    if (!h)
        return sp_err_set(err, "no heatmap given");
    if (check_name(h->name, err) != 0)
        return -1;
    if (h->nx == 0 || h->ny == 0 || h->nx > MAX_GRID || h->ny > MAX_GRID ||
        h->nx * h->ny > 10u * MAX_GRID)
        return sp_err_set(err, "heatmap '%s': grid %zu x %zu is empty or too large",
                          h->name, h->nx, h->ny);
    if (!h->z)
        return sp_err_set(err, "heatmap '%s': no values (z is NULL)", h->name);
    for (size_t i = 0; h->xtics && i < h->nx; i++)
        if (!h->xtics[i])
            return sp_err_set(err, "heatmap '%s': x tic label %zu is NULL", h->name, i);
    for (size_t i = 0; h->ytics && i < h->ny; i++)
        if (!h->ytics[i])
            return sp_err_set(err, "heatmap '%s': y tic label %zu is NULL", h->name, i);
    if (h->label_fmt && sp_figure_check_label_fmt(h->label_fmt, err) != 0)
        return -1;
    if (!isnan(h->zmin) && !isnan(h->zmax) && !(h->zmin < h->zmax))
        return sp_err_set(err, "heatmap '%s': zmin (%g) must be below zmax (%g)", h->name,
                          h->zmin, h->zmax);
    if (isinf(h->zmin) || isinf(h->zmax))
        return sp_err_set(err, "heatmap '%s': zmin and zmax must be finite or NaN", h->name);
    return 0;
}

/* Colour range: zmin/zmax where given, else the finite data range. */
static void heatmap_range(const sp_heatmap *h, double *lo, double *hi)
{
    double dmin = INFINITY, dmax = -INFINITY;
    for (size_t i = 0; i < h->nx * h->ny; i++) {
        if (!isfinite(h->z[i]))
            continue;
        if (h->z[i] < dmin)
            dmin = h->z[i];
        if (h->z[i] > dmax)
            dmax = h->z[i];
    }
    if (dmin > dmax) { /* no finite value */
        dmin = 0;
        dmax = 1;
    }
    *lo = isnan(h->zmin) ? dmin : h->zmin;
    *hi = isnan(h->zmax) ? dmax : h->zmax;
    if (*lo >= *hi) { /* a constant map, or one bound given beyond the data */
        double pad = *lo != 0 ? 0.05 * fabs(*lo) : 0.5;
        if (isnan(h->zmin) && isnan(h->zmax)) {
            *lo -= pad;
            *hi += pad;
        } else if (isnan(h->zmin)) {
            *lo = *hi - 2 * pad;
        } else {
            *hi = *lo + 2 * pad;
        }
    }
}

/* Sizes in pixels for the 900 x 700 canvas of heatmap.gp: the plot area is
 * about 640 x 520 once the title, tics, labels and colour box are placed,
 * and a 13-pt DejaVu Sans digit is about 9.5 px wide. */
#define PLOT_W 640.0
#define PLOT_H 520.0

static int xtics_need_rotation(const sp_heatmap *h)
{
    size_t w = 1;
    for (size_t i = 0; i < h->nx; i++) {
        size_t t = h->xtics ? text_width(h->xtics[i]) : 6;
        if (t > w)
            w = t;
    }
    return (double)h->nx * (9.5 * (double)w + 12.0) > PLOT_W;
}

/* The largest font (6..13 pt) whose widest cell label fits its cell, or 0
 * when a fit would need under 5 pt: then the labels are left off (the script
 * still has them, behind show_labels = 0), since overlapping text is worse
 * than none. */
static double cell_font(const sp_heatmap *h, const char *fmt)
{
    size_t w = 3; /* "n/a" */
    char buf[64];
    for (size_t i = 0; i < h->nx * h->ny; i++) {
        if (isnan(h->z[i]))
            continue;
        snprintf(buf, sizeof buf, fmt, h->z[i]);
        if (strlen(buf) > w)
            w = strlen(buf);
    }
    double cw = PLOT_W / (double)h->nx, ch = PLOT_H / (double)h->ny;
    double by_w = cw / (0.75 * (double)w + 1.0);
    double by_h = ch / 1.6;
    double fs = by_w < by_h ? by_w : by_h;
    if (fs > 13)
        fs = 13;
    if (fs < 6)
        return fs < 5 ? 0 : 6;
    return floor(fs * 2) / 2;
}


int sp_figure_heatmap(const char *dir, const sp_heatmap *h, sp_err *err)
{
    if (check_heatmap(h, err) != 0 || check_dir(dir, err) != 0)
        return -1;
    fig_build fb;
    if (fig_begin(&fb, "heatmap.gp", h->name, h->title, err) != 0)
        return -1;
    const char *fmt = h->label_fmt ? h->label_fmt : "%.3g";
    double lo, hi;
    heatmap_range(h, &lo, &hi);
    double font = cell_font(h, fmt);
    sb_put_gpstring(fig_val(&fb, "XLABEL"), h->xlabel);
    sb_put_gpstring(fig_val(&fb, "YLABEL"), h->ylabel);
    sb_put_gpstring(fig_val(&fb, "CBLABEL"), h->cblabel);
    sb_printf(fig_val(&fb, "NX"), "%zu", h->nx);
    sb_printf(fig_val(&fb, "NY"), "%zu", h->ny);
    sb_put_tics(fig_val(&fb, "XTICS"), h->xtics, h->nx);
    sb_put_tics(fig_val(&fb, "YTICS"), h->ytics, h->ny);
    sb_puts(fig_val(&fb, "XROTATE"), xtics_need_rotation(h) ? "rotate by 45 right" : "norotate");
    sb_put_number(fig_val(&fb, "CBMIN"), lo);
    sb_put_number(fig_val(&fb, "CBMAX"), hi);
    sb_puts(fig_val(&fb, "LABELS"), h->label_cells && font > 0 ? "1" : "0");
    sb_put_gpstring(fig_val(&fb, "LABELFMT"), fmt);
    sb_printf(fig_val(&fb, "CELLFONT"), "%g", font > 0 ? font : 6);
    heatmap_data(&fb.data, h);
    return fig_finish(&fb, dir, "heatmap", h->name, err);
}

/* ------------------------------------------------------------------ */
/* Lines. */

#define MAX_SERIES 64
#define MAX_HLINES 32
#define MAX_POINTS 50000000u
#define N_COLOURS 8 /* line styles 1..8 (and 11..18 for points) in lines.gp */

static const char *const style_names[] = {"linespoints", "points", "lines", "points"};

/* "series 2" or "series 2 ('D_i')", for messages. */
static void series_label(char *out, size_t len, size_t s, const char *title)
{
    if (title && *title)
        snprintf(out, len, "series %zu ('%.40s')", s, title);
    else
        snprintf(out, len, "series %zu", s);
}

static int check_lines(const sp_lines *f, char *fig, size_t figlen, sp_err *err)
{
    if (!f)
        return sp_err_set(err, "no lines figure given");
    if (check_name(f->name, err) != 0)
        return -1;
    snprintf(fig, figlen, "lines '%s'", f->name);
    if (check_text(fig, "title", f->title, err) != 0 ||
        check_text(fig, "xlabel", f->xlabel, err) != 0 ||
        check_text(fig, "ylabel", f->ylabel, err) != 0)
        return -1;
    if (f->n_series == 0 || f->n_series > MAX_SERIES || !f->series)
        return sp_err_set(err, "%s: %zu series given%s: 1 to %d are allowed", fig, f->n_series,
                          f->series ? "" : " (series is NULL)", MAX_SERIES);
    if (check_range(fig, 'x', f->xmin, f->xmax, f->logx, err) != 0 ||
        check_range(fig, 'y', f->ymin, f->ymax, f->logy, err) != 0)
        return -1;
    size_t total = 0, drawn = 0;
    for (size_t s = 0; s < f->n_series; s++) {
        const sp_series *se = &f->series[s];
        char what[96];
        snprintf(what, sizeof what, "series %zu title", s);
        if (check_text(fig, what, se->title, err) != 0)
            return -1;
        series_label(what, sizeof what, s, se->title);
        if ((unsigned)se->style > (unsigned)SP_STYLE_MARKERS)
            return sp_err_set(err, "%s: %s has style %d: use SP_STYLE_LINESPOINTS, "
                              "SP_STYLE_POINTS, SP_STYLE_LINES or SP_STYLE_MARKERS", fig, what,
                              (int)se->style);
        if (se->n && (!se->x || !se->y))
            return sp_err_set(err, "%s: %s has %zu points but x or y is NULL", fig, what, se->n);
        if (se->n > MAX_POINTS || total + se->n > MAX_POINTS)
            return sp_err_set(err, "%s: more than %u points in all", fig, MAX_POINTS);
        total += se->n;
        for (size_t i = 0; i < se->n; i++) {
            double x = se->x[i], y = se->y[i];
            if (f->logx && isfinite(x) && x <= 0)
                return sp_err_set(err, "%s: log x axis, but %s point %zu has x = %g (a log "
                                  "axis shows only positive values)", fig, what, i, x);
            if (f->logy && isfinite(y) && y <= 0)
                return sp_err_set(err, "%s: log y axis, but %s point %zu has y = %g (a log "
                                  "axis shows only positive values)", fig, what, i, y);
            drawn += isfinite(x) && isfinite(y);
        }
    }
    if (drawn == 0)
        return sp_err_set(err, "%s: no point has a finite x and y: nothing to draw", fig);
    if (f->n_hlines > MAX_HLINES || (f->n_hlines && !f->hlines))
        return sp_err_set(err, "%s: %zu reference lines given%s: at most %d are allowed", fig,
                          f->n_hlines, f->hlines ? "" : " (hlines is NULL)", MAX_HLINES);
    for (size_t h = 0; h < f->n_hlines; h++) {
        double y = f->hlines[h];
        if (!isfinite(y))
            return sp_err_set(err, "%s: reference line %zu is at y = %g: it must be finite",
                              fig, h, y);
        if (f->logy && y <= 0)
            return sp_err_set(err, "%s: log y axis, but reference line %zu is at y = %g (a "
                              "log axis shows only positive values)", fig, h, y);
        char what[64];
        snprintf(what, sizeof what, "reference line %zu label", h);
        if (f->hline_labels && check_text(fig, what, f->hline_labels[h], err) != 0)
            return -1;
    }
    return 0;
}

/* The reference lines inside the y range the caller fixed (an automatic
 * bound is stretched by gnuplot to include them), highest first: the
 * template places their labels top down. */
static size_t visible_hlines(const sp_lines *f, size_t idx[MAX_HLINES])
{
    size_t n = 0;
    for (size_t h = 0; h < f->n_hlines; h++) {
        double y = f->hlines[h];
        if ((!isnan(f->ymin) && y < f->ymin) || (!isnan(f->ymax) && y > f->ymax))
            continue;
        size_t j = n++;
        for (; j > 0 && f->hlines[idx[j - 1]] < y; j--)
            idx[j] = idx[j - 1];
        idx[j] = h;
    }
    return n;
}

/* A reference line's label: the caller's, else the value. */
static void hline_label(char *out, size_t len, const sp_lines *f, size_t h)
{
    if (f->hline_labels && f->hline_labels[h])
        snprintf(out, len, "%s", f->hline_labels[h]);
    else
        snprintf(out, len, "%.4g", f->hlines[h]);
}

static void lines_data(sbuf *b, const sp_lines *f)
{
    sb_put_data_header(b, "lines", f->name, f->title, f->header);
    sb_printf(b, "#\n# %zu series, one block each (gnuplot: index 0..%zu), blocks separated by "
              "two blank lines.\n# Columns: x y. NaN marks a non-finite value: that point is "
              "not drawn.\n", f->n_series, f->n_series - 1);
    sb_put_comment_line(b, "# x: ", f->xlabel, "(no label)");
    if (f->logx)
        sb_puts(b, "#    (log scale)\n");
    sb_put_comment_line(b, "# y: ", f->ylabel, "(no label)");
    if (f->logy)
        sb_puts(b, "#    (log scale)\n");
    if (f->n_hlines)
        sb_puts(b, "# reference lines (y: label):\n");
    for (size_t h = 0; h < f->n_hlines; h++) {
        char label[256];
        hline_label(label, sizeof label, f, h);
        sb_puts(b, "#   ");
        sb_put_number(b, f->hlines[h]);
        sb_put_comment_line(b, ": ", label, "");
    }
    for (size_t s = 0; s < f->n_series; s++) {
        const sp_series *se = &f->series[s];
        sb_printf(b, "%s# series %zu: ", s ? "\n\n" : "", s);
        sb_put_comment(b, se->title && *se->title ? se->title : "(untitled)");
        sb_printf(b, " (%zu points, drawn with %s)\n# x y\n", se->n, style_names[se->style]);
        if (se->n == 0)
            sb_puts(b, "# (no points: this NaN row keeps the block, so that index numbers "
                       "match series numbers)\nNaN NaN\n");
        for (size_t i = 0; i < se->n; i++) {
            sb_put_drawn(b, se->x[i]);
            sb_puts(b, " ");
            sb_put_drawn(b, se->y[i]);
            sb_puts(b, "\n");
        }
    }
}

int sp_figure_lines(const char *dir, const sp_lines *f, sp_err *err)
{
    char fig[240];
    if (check_lines(f, fig, sizeof fig, err) != 0 || check_dir(dir, err) != 0)
        return -1;
    size_t hidx[MAX_HLINES];
    size_t nh = visible_hlines(f, hidx);
    fig_build fb;
    if (fig_begin(&fb, "lines.gp", f->name, f->title, err) != 0)
        return -1;
    sb_put_gpstring(fig_val(&fb, "XLABEL"), f->xlabel);
    sb_put_gpstring(fig_val(&fb, "YLABEL"), f->ylabel);
    sb_puts(fig_val(&fb, "LOGX"), f->logx ? "1" : "0");
    sb_puts(fig_val(&fb, "LOGY"), f->logy ? "1" : "0");
    sb_put_range(fig_val(&fb, "XRANGE"), f->xmin, f->xmax);
    sb_put_range(fig_val(&fb, "YRANGE"), f->ymin, f->ymax);
    size_t titled = 0;
    for (size_t s = 0; s < f->n_series; s++)
        titled += f->series[s].title && *f->series[s].title;
    sb_puts(fig_val(&fb, "KEY"), titled > 1 ? "1" : "0");
    /* The key under the plot wraps into rows of entries (sample line and
     * title, about 8 characters more than the title) across the ~95
     * characters of the canvas: room for the tic labels, the x label and
     * every row. */
    size_t tw = 0;
    for (size_t s = 0; s < f->n_series; s++)
        if (f->series[s].title && text_width(f->series[s].title) > tw)
            tw = text_width(f->series[s].title);
    size_t cols = 95 / (tw + 8), rows;
    cols = cols < 1 ? 1 : cols;
    rows = (titled + cols - 1) / cols;
    sb_printf(fig_val(&fb, "BMARGIN"), "%.1f", 3.5 + (double)(rows < 2 ? 2 : rows));

    sb_printf(fig_val(&fb, "NH"), "%zu", nh);
    sb_printf(fig_val(&fb, "NHA"), "%zu", nh ? nh : 1);
    sbuf *hy = fig_val(&fb, "HY"), *hl = fig_val(&fb, "HLABELS");
    sb_puts(hy, nh ? "[" : "[NaN");
    sb_puts(hl, nh ? "[" : "[\"\"");
    size_t width = 0;
    for (size_t k = 0; k < nh; k++) {
        char label[256];
        hline_label(label, sizeof label, f, hidx[k]);
        if (text_width(label) > width)
            width = text_width(label);
        sb_puts(hy, k ? ", " : "");
        sb_put_number(hy, f->hlines[hidx[k]]);
        sb_puts(hl, k ? ", \"" : "\"");
        sb_put_gpstring(hl, label);
        sb_puts(hl, "\"");
    }
    sb_puts(hy, "]");
    sb_puts(hl, "]");
    /* Labels are drawn at 11 pt, about 0.85 of a 13-pt character. */
    sb_printf(fig_val(&fb, "RMARGIN"), "%d", nh ? (int)(0.85 * (double)width + 2.5) : -1);

    sbuf *plot = fig_val(&fb, "PLOT");
    for (size_t s = 0; s < f->n_series; s++) {
        const sp_series *se = &f->series[s];
        sb_printf(plot, "%s'%s.dat' index %zu using 1:2 with %s ls %zu ", s ? ", \\\n     " : "",
                  f->name, s, style_names[se->style],
                  s % N_COLOURS + (se->style == SP_STYLE_POINTS ? 11 : 1) +
                      (s / N_COLOURS % 2 ? 20 : 0)); /* series 9-16: squares, dashed */
        if (se->title && *se->title) {
            sb_puts(plot, "title \"");
            sb_put_gpstring(plot, se->title);
            sb_puts(plot, "\"");
        } else {
            sb_puts(plot, "notitle");
        }
    }
    lines_data(&fb.data, f);
    return fig_finish(&fb, dir, "lines", f->name, err);
}

/* ------------------------------------------------------------------ */
/* Vectors. */

#define MAX_PANELS 64
#define MAX_VECTORS 10000

static int check_vectors(const sp_vectors *v, char *fig, size_t figlen, sp_err *err)
{
    if (!v)
        return sp_err_set(err, "no vectors figure given");
    if (check_name(v->name, err) != 0)
        return -1;
    snprintf(fig, figlen, "vectors '%s'", v->name);
    if (check_text(fig, "title", v->title, err) != 0)
        return -1;
    if (v->n == 0 || v->n > MAX_VECTORS)
        return sp_err_set(err, "%s: %zu vectors per panel: 1 to %d are allowed", fig, v->n,
                          MAX_VECTORS);
    if (v->panels > MAX_PANELS)
        return sp_err_set(err, "%s: %zu panels: at most %d are allowed", fig, v->panels,
                          MAX_PANELS);
    if (!v->x || !v->y)
        return sp_err_set(err, "%s: no coordinates (x or y is NULL)", fig);
    char what[64];
    for (size_t i = 0; v->labels && i < v->n; i++) {
        snprintf(what, sizeof what, "label %zu", i);
        if (check_text(fig, what, v->labels[i], err) != 0)
            return -1;
    }
    size_t np = v->panels ? v->panels : 1;
    for (size_t p = 0; v->panel_titles && p < np; p++) {
        snprintf(what, sizeof what, "panel %zu title", p);
        if (check_text(fig, what, v->panel_titles[p], err) != 0)
            return -1;
    }
    return 0;
}

static void vectors_data(sbuf *b, const sp_vectors *v, size_t np)
{
    sb_put_data_header(b, "vectors", v->name, v->title, v->header);
    sb_printf(b, "#\n# %zu panel%s of %zu vectors from the origin: one block per panel "
              "(gnuplot: index 0..%zu),\n# blocks separated by two blank lines. Columns: x y, "
              "the tip of the vector; row i is vector i.\n# NaN marks a non-finite "
              "coordinate: that vector is not drawn.\n# vector labels by row i:\n", np,
              np == 1 ? "" : "s", v->n, np - 1);
    for (size_t i = 0; i < v->n; i++) {
        sb_printf(b, "#   i %zu: ", i);
        if (v->labels && v->labels[i])
            sb_put_comment(b, v->labels[i]);
        else
            sb_printf(b, "%zu", i);
        sb_puts(b, "\n");
    }
    for (size_t p = 0; p < np; p++) {
        sb_printf(b, "%s# panel %zu: ", p ? "\n\n" : "", p);
        sb_put_comment(b, v->panel_titles && v->panel_titles[p] && *v->panel_titles[p]
                              ? v->panel_titles[p] : "(untitled)");
        sb_puts(b, "\n# x y\n");
        for (size_t i = 0; i < v->n; i++) {
            double x = v->x[p * v->n + i], y = v->y[p * v->n + i];
            int ok = isfinite(x) && isfinite(y);
            sb_put_drawn(b, ok ? x : NAN);
            sb_puts(b, " ");
            sb_put_drawn(b, ok ? y : NAN);
            sb_puts(b, "\n");
        }
    }
}

int sp_figure_vectors(const char *dir, const sp_vectors *v, sp_err *err)
{
    char fig[240];
    if (check_vectors(v, fig, sizeof fig, err) != 0 || check_dir(dir, err) != 0)
        return -1;
    size_t np = v->panels ? v->panels : 1;
    double longest = 0;
    for (size_t i = 0; i < np * v->n; i++)
        if (isfinite(v->x[i]) && isfinite(v->y[i]) && hypot(v->x[i], v->y[i]) > longest)
            longest = hypot(v->x[i], v->y[i]);
    size_t cols = 1;
    while (cols * cols < np)
        cols++;
    size_t rows = (np + cols - 1) / cols;

    fig_build fb;
    if (fig_begin(&fb, "vectors.gp", v->name, v->title, err) != 0)
        return -1;
    sb_printf(fig_val(&fb, "NP"), "%zu", np);
    sb_printf(fig_val(&fb, "N"), "%zu", v->n);
    /* Room beyond the longest tip for its label. */
    sb_put_number(fig_val(&fb, "R"), longest > 0 ? 1.2 * longest : 1.0);
    sb_printf(fig_val(&fb, "ROWS"), "%zu", rows);
    sb_printf(fig_val(&fb, "COLS"), "%zu", cols);
    sb_printf(fig_val(&fb, "WIDTH"), "%zu", np == 1 ? (size_t)700 : 440 * cols);
    sb_printf(fig_val(&fb, "HEIGHT"), "%zu", np == 1 ? (size_t)720 : 440 * rows + 60);
    sb_put_string_array(fig_val(&fb, "LABELS"), v->labels, v->n, 1);
    sb_put_string_array(fig_val(&fb, "PTITLES"), v->panel_titles, np, 0);
    sbuf *notes = fig_val(&fb, "PNOTES");
    for (size_t p = 0; p < np; p++) {
        size_t bad = 0;
        for (size_t i = 0; i < v->n; i++)
            bad += !isfinite(v->x[p * v->n + i]) || !isfinite(v->y[p * v->n + i]);
        sb_puts(notes, p ? ", \"" : "[\"");
        if (bad)
            sb_printf(notes, "%zu of %zu vectors not finite: not drawn", bad, v->n);
        sb_puts(notes, "\"");
    }
    sb_puts(notes, "]");
    vectors_data(&fb.data, v, np);
    return fig_finish(&fb, dir, "vectors", v->name, err);
}

/* ------------------------------------------------------------------ */
/* Bars. */

#define MAX_BAR_SERIES 16

static int check_bars(const sp_bars *f, char *fig, size_t figlen, sp_err *err)
{
    if (!f)
        return sp_err_set(err, "no bars figure given");
    if (check_name(f->name, err) != 0)
        return -1;
    snprintf(fig, figlen, "bars '%s'", f->name);
    if (check_text(fig, "title", f->title, err) != 0 ||
        check_text(fig, "xlabel", f->xlabel, err) != 0 ||
        check_text(fig, "ylabel", f->ylabel, err) != 0)
        return -1;
    if (f->n_groups == 0 || f->n_groups > MAX_GRID || f->n_series == 0 ||
        f->n_series > MAX_BAR_SERIES)
        return sp_err_set(err, "%s: %zu groups x %zu series: 1 to %d groups and 1 to %d "
                          "series are allowed", fig, f->n_groups, f->n_series, MAX_GRID,
                          MAX_BAR_SERIES);
    if (!f->values)
        return sp_err_set(err, "%s: no values (values is NULL)", fig);
    char what[64];
    for (size_t g = 0; f->group_labels && g < f->n_groups; g++) {
        snprintf(what, sizeof what, "group label %zu", g);
        if (!f->group_labels[g])
            return sp_err_set(err, "%s: %s is NULL", fig, what);
        if (check_text(fig, what, f->group_labels[g], err) != 0)
            return -1;
    }
    for (size_t s = 0; f->series_labels && s < f->n_series; s++) {
        snprintf(what, sizeof what, "series label %zu", s);
        if (check_text(fig, what, f->series_labels[s], err) != 0)
            return -1;
    }
    size_t drawn = 0;
    for (size_t s = 0; s < f->n_series; s++)
        for (size_t g = 0; g < f->n_groups; g++) {
            double y = f->values[s * f->n_groups + g];
            if (f->logy && isfinite(y) && y <= 0)
                return sp_err_set(err, "%s: log y axis, but series %zu group %zu has the value "
                                  "%g (a log axis shows only positive values)", fig, s, g, y);
            drawn += isfinite(y) != 0;
        }
    if (drawn == 0)
        return sp_err_set(err, "%s: no value is finite: nothing to draw", fig);
    return 0;
}

static void bars_data(sbuf *b, const sp_bars *f)
{
    sb_put_data_header(b, "bars", f->name, f->title, f->header);
    sb_printf(b, "#\n# %zu groups x %zu series: row g = 0..%zu is a group, column s = 0..%zu a "
              "series\n# (row g holds values[s * n_groups + g]). NaN marks a missing value: "
              "no bar.\n", f->n_groups, f->n_series, f->n_groups - 1, f->n_series - 1);
    sb_put_comment_line(b, "# value: ", f->ylabel, "(no label)");
    if (f->logy)
        sb_puts(b, "#    (log scale)\n");
    sb_puts(b, "# columns (series) by s:\n");
    for (size_t s = 0; s < f->n_series; s++) {
        sb_printf(b, "#   s %zu: ", s);
        sb_put_comment(b, f->series_labels && f->series_labels[s] && *f->series_labels[s]
                              ? f->series_labels[s] : "(untitled)");
        sb_puts(b, "\n");
    }
    sb_put_tic_comments(b, "x (rows, groups)", "g", f->xlabel, f->group_labels, f->n_groups);
    for (size_t g = 0; g < f->n_groups; g++) {
        for (size_t s = 0; s < f->n_series; s++) {
            if (s)
                sb_puts(b, " ");
            sb_put_number(b, f->values[s * f->n_groups + g]);
        }
        sb_puts(b, "\n");
    }
}

int sp_figure_bars(const char *dir, const sp_bars *f, sp_err *err)
{
    char fig[240];
    if (check_bars(f, fig, sizeof fig, err) != 0 || check_dir(dir, err) != 0)
        return -1;
    /* Canvas: about 12 px per bar and 10 px between groups, 900..2000 px
     * wide; the plot area is about 170 px narrower. A 13-pt digit is about
     * 9.5 px wide and a line of text about 20 px high. */
    double ng = (double)f->n_groups, ns = (double)f->n_series;
    double width = fmin(2000, fmax(900, 170 + ng * (12 * ns + 10)));
    double plot_w = width - 170;
    size_t w = 1;
    for (size_t g = 0; g < f->n_groups; g++) {
        size_t t = f->group_labels ? text_width(f->group_labels[g]) : (size_t)log10(ng) + 1;
        if (t > w)
            w = t;
    }
    int rotate = ng * (9.5 * (double)w + 12) > plot_w;
    /* Rotated labels need a line height each; beyond that, label every
     * step-th group, step from 1, 2, 5, 10, 20, 50, ... */
    double need = ng * (rotate ? 20 : 9.5 * (double)w + 12) / plot_w;
    size_t step = 1;
    for (size_t k = 0; (double)step < need; k++)
        step = (size_t)(k % 3 == 1 ? 2.5 * (double)step : 2.0 * (double)step);
    double height = 600 + (rotate ? fmin(400, 0.7 * 9.5 * (double)w) : 0);
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < f->n_groups * f->n_series; i++)
        if (isfinite(f->values[i])) {
            lo = fmin(lo, f->values[i]);
            hi = fmax(hi, f->values[i]);
        }
    size_t titled = 0;
    for (size_t s = 0; f->series_labels && s < f->n_series; s++)
        titled += f->series_labels[s] && *f->series_labels[s];

    fig_build fb;
    if (fig_begin(&fb, "bars.gp", f->name, f->title, err) != 0)
        return -1;
    sb_put_gpstring(fig_val(&fb, "XLABEL"), f->xlabel);
    sb_put_gpstring(fig_val(&fb, "YLABEL"), f->ylabel);
    sb_printf(fig_val(&fb, "NG"), "%zu", f->n_groups);
    sb_printf(fig_val(&fb, "NS"), "%zu", f->n_series);
    sb_put_string_array(fig_val(&fb, "SLABELS"), f->series_labels, f->n_series, 0);
    sb_put_tics_every(fig_val(&fb, "XTICS"), f->group_labels, f->n_groups, step);
    sb_puts(fig_val(&fb, "XROTATE"), rotate ? "rotate by 45 right" : "norotate");
    sb_puts(fig_val(&fb, "LOGY"), f->logy ? "1" : "0");
    /* Bars grow from 0, so a linear axis includes it. */
    sb_puts(fig_val(&fb, "YRANGE"), f->logy ? "[*:*]" : lo >= 0 ? "[0:*]" : hi <= 0 ? "[*:0]"
                                                                                   : "[*:*]");
    sb_puts(fig_val(&fb, "KEY"), titled > 1 ? "1" : "0");
    /* gnuplot's automatic bottom margin leaves no room for a key there:
     * tic labels (rotated: about 0.7 of their width, in 18-px lines), the
     * x label, the key. */
    double tic_lines = rotate ? (0.7 * 9.5 * (double)w + 12) / 18 : 1;
    if (titled > 1)
        sb_printf(fig_val(&fb, "BMARGIN"), "%.1f", tic_lines + 4.5);
    else
        sb_puts(fig_val(&fb, "BMARGIN"), "-1");
    sb_printf(fig_val(&fb, "WIDTH"), "%.0f", width);
    sb_printf(fig_val(&fb, "HEIGHT"), "%.0f", height);
    bars_data(&fb.data, f);
    return fig_finish(&fb, dir, "bars", f->name, err);
}
