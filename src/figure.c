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
 * - Library code never prints: every failure is one sp_err message. */
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

static char *heatmap_data(const sp_heatmap *h)
{
    sbuf b = {0};
    sb_puts(&b, "# superpose heatmap data: ");
    sb_puts(&b, h->name);
    sb_puts(&b, "\n");
    if (h->title && *h->title) {
        sb_puts(&b, "# title: ");
        sb_put_comment(&b, h->title);
        sb_puts(&b, "\n");
    }
    if (h->header && *h->header) {
        const char *p = h->header;
        while (*p) {
            const char *eol = strchr(p, '\n');
            size_t n = eol ? (size_t)(eol - p) : strlen(p);
            char *line = malloc(n + 1);
            if (!line) {
                b.oom = 1;
                break;
            }
            memcpy(line, p, n);
            line[n] = '\0';
            sb_puts(&b, "# ");
            sb_put_comment(&b, line);
            sb_puts(&b, "\n");
            free(line);
            if (!eol)
                break;
            p = eol + 1;
        }
    }
    sb_printf(&b, "#\n# A %zu x %zu matrix: data row iy = 0..%zu (the first row is drawn at "
              "the bottom),\n# column ix = 0..%zu; entry (iy, ix) is the value of cell "
              "(ix, iy). NaN marks a missing cell.\n", h->ny, h->nx, h->ny - 1, h->nx - 1);
    sb_puts(&b, "# value: ");
    sb_put_comment(&b, h->cblabel && *h->cblabel ? h->cblabel : "(no label)");
    sb_puts(&b, "\n");
    sb_put_tic_comments(&b, "x (columns)", "ix", h->xlabel, h->xtics, h->nx);
    sb_put_tic_comments(&b, "y (rows)", "iy", h->ylabel, h->ytics, h->ny);
    for (size_t iy = 0; iy < h->ny; iy++) {
        for (size_t ix = 0; ix < h->nx; ix++) {
            if (ix)
                sb_puts(&b, " ");
            sb_put_number(&b, h->z[iy * h->nx + ix]);
        }
        sb_puts(&b, "\n");
    }
    return sb_take(&b);
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
    char tpath[PATH_MAX];
    if (find_template("heatmap.gp", tpath, sizeof tpath, err) != 0)
        return -1;
    char *tmpl = read_small_file(tpath, MAX_TEMPLATE_BYTES, err);
    if (!tmpl)
        return -1;

    c_locale_guard loc;
    if (c_locale_enter(&loc, err) != 0) {
        free(tmpl);
        return -1;
    }
    const char *fmt = h->label_fmt ? h->label_fmt : "%.3g";
    double lo, hi;
    heatmap_range(h, &lo, &hi);

    enum { V_NAME, V_DATA, V_PNG, V_SVG, V_TITLE, V_XLABEL, V_YLABEL, V_CBLABEL, V_NX,
           V_NY, V_XTICS, V_YTICS, V_XROTATE, V_CBMIN, V_CBMAX, V_LABELS, V_LABELFMT,
           V_CELLFONT, V_COUNT };
    static const char *const keys[V_COUNT] = {
        "NAME", "DATA", "PNG", "SVG", "TITLE", "XLABEL", "YLABEL", "CBLABEL", "NX",
        "NY", "XTICS", "YTICS", "XROTATE", "CBMIN", "CBMAX", "LABELS", "LABELFMT",
        "CELLFONT"};
    sbuf v[V_COUNT];
    memset(v, 0, sizeof v);
    sb_puts(&v[V_NAME], h->name);
    sb_printf(&v[V_DATA], "%s.dat", h->name);
    sb_printf(&v[V_PNG], "%s.png", h->name);
    sb_printf(&v[V_SVG], "%s.svg", h->name);
    sb_put_gpstring(&v[V_TITLE], h->title);
    sb_put_gpstring(&v[V_XLABEL], h->xlabel);
    sb_put_gpstring(&v[V_YLABEL], h->ylabel);
    sb_put_gpstring(&v[V_CBLABEL], h->cblabel);
    sb_printf(&v[V_NX], "%zu", h->nx);
    sb_printf(&v[V_NY], "%zu", h->ny);
    sb_put_tics(&v[V_XTICS], h->xtics, h->nx);
    sb_put_tics(&v[V_YTICS], h->ytics, h->ny);
    sb_puts(&v[V_XROTATE], xtics_need_rotation(h) ? "rotate by 45 right" : "norotate");
    sb_put_number(&v[V_CBMIN], lo);
    sb_put_number(&v[V_CBMAX], hi);
    double font = cell_font(h, fmt);
    sb_puts(&v[V_LABELS], h->label_cells && font > 0 ? "1" : "0");
    sb_put_gpstring(&v[V_LABELFMT], fmt);
    sb_printf(&v[V_CELLFONT], "%g", font > 0 ? font : 6);

    subst subs[V_COUNT];
    int oom = 0;
    for (int i = 0; i < V_COUNT; i++) {
        oom |= v[i].oom;
        subs[i].key = keys[i];
        subs[i].val = v[i].p ? v[i].p : "";
    }
    char *script = oom ? NULL : fill_template(tpath, tmpl, subs, V_COUNT, err);
    char *data = script ? heatmap_data(h) : NULL;
    c_locale_leave(&loc);
    for (int i = 0; i < V_COUNT; i++)
        free(v[i].p);
    free(tmpl);

    int rc = -1;
    char file[256];
    if (oom || (script && !data)) {
        sp_err_set(err, "out of memory writing heatmap '%s'", h->name);
    } else if (script) {
        snprintf(file, sizeof file, "%s.dat", h->name);
        if (write_file_atomic(dir, file, data, strlen(data), err) == 0) {
            snprintf(file, sizeof file, "%s.gp", h->name);
            if (write_file_atomic(dir, file, script, strlen(script), err) == 0)
                rc = sp_figure_render(dir, h->name, err);
        }
    }
    free(script);
    free(data);
    return rc;
}

/* ------------------------------------------------------------------ */
/* lines, vectors, bars: the same pattern as the heatmap (template with
 * placeholders, data file, render), the plot list built here. */

static int render_with(const char *dir, const char *name, const char *template_file,
                       const char *const *keys, sbuf *v, size_t nv, sbuf *data, sp_err *err)
{
    char tpath[PATH_MAX];
    if (find_template(template_file, tpath, sizeof tpath, err) != 0)
        return -1;
    char *tmpl = read_small_file(tpath, MAX_TEMPLATE_BYTES, err);
    if (!tmpl)
        return -1;
    subst subs[16];
    int oom = data->oom;
    for (size_t i = 0; i < nv; i++) {
        oom |= v[i].oom;
        subs[i].key = keys[i];
        subs[i].val = v[i].p ? v[i].p : "";
    }
    char *script = oom ? NULL : fill_template(tpath, tmpl, subs, (int)nv, err);
    free(tmpl);
    int rc = -1;
    char file[256];
    if (oom) {
        sp_err_set(err, "out of memory writing figure '%s'", name);
    } else if (script) {
        snprintf(file, sizeof file, "%s.dat", name);
        const char *d = data->p ? data->p : "";
        if (write_file_atomic(dir, file, d, strlen(d), err) == 0) {
            snprintf(file, sizeof file, "%s.gp", name);
            if (write_file_atomic(dir, file, script, strlen(script), err) == 0)
                rc = sp_figure_render(dir, name, err);
        }
    }
    free(script);
    return rc;
}

static void common_subs(sbuf *v, const char *name, const char *title)
{
    sb_puts(&v[0], name);
    sb_printf(&v[1], "%s.dat", name);
    sb_printf(&v[2], "%s.png", name);
    sb_printf(&v[3], "%s.svg", name);
    sb_put_gpstring(&v[4], title);
}

static void put_header(sbuf *b, const char *what, const char *header)
{
    sb_printf(b, "# %s\n", what);
    if (header && *header) {
        sb_puts(b, "# ");
        for (const char *p = header; *p; p++) {
            if (*p == '\n')
                sb_puts(b, "\n# ");
            else
                sb_putn(b, (*p < 0x20 && *p != '\t') ? " " : p, 1);
        }
        sb_puts(b, "\n");
    }
}

static void put_range(sbuf *b, double lo, double hi)
{
    sb_puts(b, "[");
    if (isfinite(lo))
        sb_put_number(b, lo);
    else
        sb_puts(b, "*");
    sb_puts(b, ":");
    if (isfinite(hi))
        sb_put_number(b, hi);
    else
        sb_puts(b, "*");
    sb_puts(b, "]");
}

static void free_subs(sbuf *v, size_t n, sbuf *data)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].p);
    free(data->p);
}

int sp_figure_lines(const char *dir, const sp_lines *f, sp_err *err)
{
    if (!f || check_name(f->name, err) != 0 || check_dir(dir, err) != 0)
        return -1;
    if (f->n_series == 0 || f->n_series > 64 || !f->series)
        return sp_err_set(err, "figure '%s': between 1 and 64 series are needed", f->name);
    if (f->n_hlines > 32 || (f->n_hlines && !f->hlines))
        return sp_err_set(err, "figure '%s': at most 32 reference lines", f->name);
    for (size_t s = 0; s < f->n_series; s++) {
        const sp_series *se = &f->series[s];
        if (se->n && (!se->x || !se->y))
            return sp_err_set(err, "figure '%s': series %zu has no data", f->name, s);
        for (size_t i = 0; i < se->n; i++)
            if ((f->logx && isfinite(se->x[i]) && se->x[i] <= 0) ||
                (f->logy && isfinite(se->y[i]) && se->y[i] <= 0))
                return sp_err_set(err, "figure '%s': series %zu point %zu (%g, %g) is not "
                                       "positive on a log axis", f->name, s, i, se->x[i],
                                  se->y[i]);
    }
    c_locale_guard loc;
    if (c_locale_enter(&loc, err) != 0)
        return -1;
    enum { N_V = 12 };
    static const char *const keys[N_V] = {"NAME", "DATA", "PNG", "SVG", "TITLE", "XLABEL",
                                          "YLABEL", "LOGX", "LOGY", "XRANGE", "YRANGE", "KEY"};
    sbuf v[N_V + 2], data;
    memset(v, 0, sizeof v);
    memset(&data, 0, sizeof data);
    common_subs(v, f->name, f->title);
    sb_put_gpstring(&v[5], f->xlabel);
    sb_put_gpstring(&v[6], f->ylabel);
    sb_puts(&v[7], f->logx ? "set logscale x" : "unset logscale x");
    sb_puts(&v[8], f->logy ? "set logscale y" : "unset logscale y");
    put_range(&v[9], f->xmin, f->xmax);
    put_range(&v[10], f->ymin, f->ymax);
    size_t titled = 0;
    for (size_t s = 0; s < f->n_series; s++)
        titled += f->series[s].title != NULL;
    sb_puts(&v[11], titled > 1 || (titled == 1 && f->n_series > 1)
                        ? "set key outside top center horizontal"
                        : "unset key");
    /* @REFS@ and @PLOT@ */
    sbuf *refs = &v[12], *plot = &v[13];
    for (size_t h = 0; h < f->n_hlines; h++) {
        sb_puts(refs, "set arrow from graph 0, first ");
        sb_put_number(refs, f->hlines[h]);
        sb_puts(refs, " to graph 1, first ");
        sb_put_number(refs, f->hlines[h]);
        sb_puts(refs, " nohead dt 2 lw 1 lc rgb \"#888888\" back\n");
        sb_puts(refs, "set label \"");
        sb_put_gpstring(refs, f->hline_labels && f->hline_labels[h] ? f->hline_labels[h] : "");
        sb_puts(refs, "\" at graph 1.01, first ");
        sb_put_number(refs, f->hlines[h]);
        sb_puts(refs, " left font \",11\" tc rgb \"#555555\"\n");
    }
    static const char *const colors[] = {"#0072b2", "#d55e00", "#009e73", "#cc79a7",
                                         "#e69f00", "#56b4e9", "#000000", "#f0e442"};
    put_header(&data, "x y: one block per series (index 0, 1, ...), NaN = missing", f->header);
    for (size_t s = 0; s < f->n_series; s++) {
        const sp_series *se = &f->series[s];
        const char *col = colors[s % 8];
        if (s)
            sb_puts(plot, ", \\\n     ");
        sb_printf(plot, "'%s.dat' index %zu using 1:2 ", f->name, s);
        if (se->style == SP_STYLE_POINTS)
            sb_printf(plot, "with points pt 7 ps 0.5 lc rgb \"#60%s\"", col + 1);
        else if (se->style == SP_STYLE_LINES)
            sb_printf(plot, "with lines lw 2 lc rgb \"%s\"", col);
        else
            sb_printf(plot, "with linespoints pt 7 ps 0.9 lw 2 lc rgb \"%s\"", col);
        if (se->title) {
            sb_puts(plot, " title \"");
            sb_put_gpstring(plot, se->title);
            sb_puts(plot, "\"");
        } else {
            sb_puts(plot, " notitle");
        }
        if (s)
            sb_puts(&data, "\n\n");
        sb_puts(&data, "# series ");
        sb_printf(&data, "%zu: ", s);
        sb_put_comment(&data, se->title ? se->title : "(untitled)");
        sb_puts(&data, "\n");
        for (size_t i = 0; i < se->n; i++) {
            sb_put_number(&data, se->x[i]);
            sb_puts(&data, " ");
            sb_put_number(&data, se->y[i]);
            sb_puts(&data, "\n");
        }
    }
    if (!refs->p)
        sb_puts(refs, "# (no reference lines)");
    c_locale_leave(&loc);
    const char *keys2[N_V + 2];
    for (int i = 0; i < N_V; i++)
        keys2[i] = keys[i];
    keys2[N_V] = "REFS";
    keys2[N_V + 1] = "PLOT";
    int rc = render_with(dir, f->name, "lines.gp", keys2, v, N_V + 2, &data, err);
    free_subs(v, N_V + 2, &data);
    return rc;
}

int sp_figure_vectors(const char *dir, const sp_vectors *f, sp_err *err)
{
    if (!f || check_name(f->name, err) != 0 || check_dir(dir, err) != 0)
        return -1;
    if (f->n == 0 || !f->x || !f->y)
        return sp_err_set(err, "figure '%s': no vectors", f->name);
    double r = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (!isfinite(f->x[i]) || !isfinite(f->y[i]))
            return sp_err_set(err, "figure '%s': vector %zu is not finite", f->name, i);
        r = fmax(r, hypot(f->x[i], f->y[i]));
    }
    c_locale_guard loc;
    if (c_locale_enter(&loc, err) != 0)
        return -1;
    static const char *const keys[6] = {"NAME", "DATA", "PNG", "SVG", "TITLE", "R"};
    sbuf v[6], data;
    memset(v, 0, sizeof v);
    memset(&data, 0, sizeof data);
    common_subs(v, f->name, f->title);
    sb_put_number(&v[5], 1.25 * fmax(r, 1.0));
    put_header(&data, "x y \"label\": one arrow from the origin per row", f->header);
    for (size_t i = 0; i < f->n; i++) {
        sb_put_number(&data, f->x[i]);
        sb_puts(&data, " ");
        sb_put_number(&data, f->y[i]);
        sb_puts(&data, " \"");
        if (f->labels && f->labels[i])
            sb_put_gpstring(&data, f->labels[i]);
        else
            sb_printf(&data, "%zu", i);
        sb_puts(&data, "\"\n");
    }
    c_locale_leave(&loc);
    int rc = render_with(dir, f->name, "vectors.gp", keys, v, 6, &data, err);
    free_subs(v, 6, &data);
    return rc;
}

int sp_figure_bars(const char *dir, const sp_bars *f, sp_err *err)
{
    if (!f || check_name(f->name, err) != 0 || check_dir(dir, err) != 0)
        return -1;
    if (f->n_groups == 0 || f->n_groups > MAX_GRID || f->n_series == 0 || f->n_series > 16 ||
        !f->values)
        return sp_err_set(err, "figure '%s': %zu groups x %zu series is empty or too large",
                          f->name, f->n_groups, f->n_series);
    for (size_t i = 0; f->logy && i < f->n_series * f->n_groups; i++)
        if (isfinite(f->values[i]) && f->values[i] <= 0)
            return sp_err_set(err, "figure '%s': value %zu (%g) is not positive on a log axis",
                              f->name, i, f->values[i]);
    c_locale_guard loc;
    if (c_locale_enter(&loc, err) != 0)
        return -1;
    static const char *const keys[10] = {"NAME", "DATA", "PNG", "SVG", "TITLE",
                                         "XLABEL", "YLABEL", "NCOL", "LOGY", "XROTATE"};
    sbuf v[10], data;
    memset(v, 0, sizeof v);
    memset(&data, 0, sizeof data);
    common_subs(v, f->name, f->title);
    sb_put_gpstring(&v[5], f->xlabel);
    sb_put_gpstring(&v[6], f->ylabel);
    sb_printf(&v[7], "%zu", f->n_series + 1);
    sb_puts(&v[8], f->logy ? "set logscale y\nset yrange [*:*]" : "unset logscale y\nset yrange [0:*]");
    size_t width = 0;
    for (size_t g = 0; f->group_labels && g < f->n_groups; g++)
        width += f->group_labels[g] ? text_width(f->group_labels[g]) + 1 : 3;
    sb_puts(&v[9], width > 80 ? "rotate by 45 right" : "norotate");
    put_header(&data, "one row per group: label, then one value per series", f->header);
    sb_puts(&data, "\"group\"");
    for (size_t s = 0; s < f->n_series; s++) {
        sb_puts(&data, " \"");
        sb_put_gpstring(&data, f->series_labels && f->series_labels[s] ? f->series_labels[s]
                                                                       : "series");
        sb_puts(&data, "\"");
    }
    sb_puts(&data, "\n");
    for (size_t g = 0; g < f->n_groups; g++) {
        sb_puts(&data, "\"");
        if (f->group_labels && f->group_labels[g])
            sb_put_gpstring(&data, f->group_labels[g]);
        else
            sb_printf(&data, "%zu", g);
        sb_puts(&data, "\"");
        for (size_t s = 0; s < f->n_series; s++) {
            sb_puts(&data, " ");
            sb_put_number(&data, f->values[s * f->n_groups + g]);
        }
        sb_puts(&data, "\n");
    }
    c_locale_leave(&loc);
    int rc = render_with(dir, f->name, "bars.gp", keys, v, 10, &data, err);
    free_subs(v, 10, &data);
    return rc;
}
