/* bench.c: `superpose bench` (make bench). Measures, in one run, the
 * machine's sgemm peak through OpenBLAS and the SAE training throughput,
 * so that the fraction of peak is visible:
 *   dense-equivalent GFLOP/s = 10 B m d / t_step: five GEMMs of 2 B m d
 *   FLOPs each (forward: encoder, decoder; backward: dW_d, df, dW_e)
 * Training is single-threaded, as in `superpose run -j N`. Every case runs
 * in its own forked child, so that its peak resident memory (wait4's
 * ru_maxrss) is its own; an idle child gives the baseline every child
 * starts from (process, libraries, OpenBLAS). The sparse-vs-dense step is
 * timed at the Goldilocks L1 coefficient of each ratio (table below) after
 * a warm-up long enough for L0 to settle. One real run at ratio 32
 * (sp_run_train, evaluation included) is measured against the bytes of its
 * parameters, gradients, Adam state and batch buffers. The last table
 * times the solvers on a fixed dictionary (OMP, GP, FISTA) against one SAE
 * step of the same shape. With --markdown FILE, everything is also written
 * as Markdown (BENCHMARKS.md) with a description of the machine. */
#define _DEFAULT_SOURCE /* wait4 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <gsl/gsl_blas.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "superpose/blas.h"
#include "superpose/config.h"
#include "superpose/experiment.h"
#include "superpose/gen.h"
#include "superpose/runner.h"
#include "superpose/sae.h"
#include "superpose/solve.h"
#include "bench_ens.h"

void openblas_set_num_threads(int num_threads);
int openblas_get_num_procs(void);
char *openblas_get_config(void);
char *openblas_get_corename(void);

#ifndef SP_SOURCE_DIR
#define SP_SOURCE_DIR "."
#endif

/* Goldilocks L1 coefficients (train.coef_scale = dict: loss = MSE over B d
 * + coef mean_b |f|_1 / m) of a relu SAE on the Sharkey generator, d = 256,
 * G = 512, k = 5 (true L0 5.0), Adam lr 1e-3, batch 256, measured with
 *   superpose train data.d=256 data.n=512 data.k=5 coef_scale=dict coef=C ratio=R steps=S
 * (L0 and MMCS on the 8192-sample evaluation window; dead of m latents):
 *   ratio  coef  steps    L0   MMCS  dead
 *       1   0.1   3000  13.6  0.766     0
 *       1   0.3   3000   7.0  0.823    18
 *       1   0.3   6000   6.4  0.885    25
 *       1   0.4   3000   6.1  0.778    57  <-
 *       1   0.4   6000   5.7  0.845    57
 *       1   0.5   3000   5.2  0.689   114
 *       4   0.3   3000  17.2  0.894   186
 *       4   1     3000   8.6  0.955   861
 *       4   1.5   3000   6.7  0.896  1089  <-
 *       4   3     3000   3.7  0.530  1494
 *       8   2     3000   8.7  0.959  2396
 *       8   3     3000   6.8  0.908  2735  <-
 *      16   5     3000   7.9  0.919  5555
 *      16   6     3000   7.0  0.890  5832  <-
 *      32  10     3000   7.7  0.879 10811
 *      32  12     3000   6.9  0.853 11508  <-
 * The chosen ones (<-, coef about 0.375 ratio: the same L1 weight per
 * latent) end near L0 = 5-7 with MMCS 0.78-0.91; a smaller coefficient
 * buys MMCS at the price of L0 (ratio 4, coef 1: 0.955 at L0 8.6).
 * l0_end: the L0 of the chosen coefficient after 3000 steps. warmup: steps
 * of the same training (this stream, 1 thread) before timing: the first
 * multiple of 100 at which the mean training L0 of the last 50 steps was
 * within 30% of l0_end: 1: 7.6 at 1100; 4: 8.5 at 1200; 8: 8.5 at 1400;
 * 16: 8.8 at 1600; 32: 8.9 at 2000 (12.1 at 1400, 7.9 at 2500). */
static const struct {
    double ratio, coef, l0_end;
    long warmup;
} goldilocks[] = {
    {1, 0.4, 6.07, 1100}, {4, 1.5, 6.72, 1200}, {8, 3, 6.79, 1400},
    {16, 6, 6.96, 1600}, {32, 12, 6.94, 2000},
};
#define N_RATIOS (sizeof goldilocks / sizeof goldilocks[0])

/* ------------------------------------------------------------ children */

#define CHILD_OUT 32

typedef int (*child_fn)(const void *arg, double *out);

/* Runs fn(arg, out) in a forked child. Returns 0 with out[0..CHILD_OUT)
 * and *peak_mib, the child's peak resident set (ru_maxrss: its own
 * high-water mark, which starts at the anonymous memory it shares with
 * this process at fork), or -1 if the child failed (it prints why). */
static int in_child(child_fn fn, const void *arg, double *out, double *peak_mib)
{
    int fd[2];
    fflush(stdout);
    fflush(stderr);
    if (pipe(fd) != 0) {
        fprintf(stderr, "superpose: bench: pipe: %s\n", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "superpose: bench: fork: %s\n", strerror(errno));
        close(fd[0]);
        close(fd[1]);
        return -1;
    }
    if (pid == 0) {
        close(fd[0]);
        double o[CHILD_OUT];
        for (int i = 0; i < CHILD_OUT; i++)
            o[i] = NAN;
        int rc = fn(arg, o);
        if (rc == 0 && write(fd[1], o, sizeof o) != (ssize_t)sizeof o)
            rc = 1;
        fflush(stdout);
        fflush(stderr);
        _exit(rc ? 1 : 0);
    }
    close(fd[1]);
    size_t got = 0;
    char *dst = (char *)out;
    while (got < CHILD_OUT * sizeof(double)) {
        ssize_t r = read(fd[0], dst + got, CHILD_OUT * sizeof(double) - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd[0]);
    int status = 0;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0)
        if (errno != EINTR) {
            fprintf(stderr, "superpose: bench: wait4: %s\n", strerror(errno));
            return -1;
        }
    *peak_mib = (double)ru.ru_maxrss / 1024.0; /* KiB on Linux */
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || got != CHILD_OUT * sizeof(double)) {
        fprintf(stderr, "superpose: bench: a benchmark child failed\n");
        return -1;
    }
    return 0;
}


/* --------------------------------------------------------- Markdown */

#define MD_COLS 18
#define MD_ROWS 24
#define MD_CELL 48

typedef struct {
    size_t ncol, nrow;
    char head[MD_COLS][MD_CELL];
    char cell[MD_ROWS][MD_COLS][MD_CELL];
} md_table;

/* Splits the '|'-separated fields of text into row (at most MD_COLS). */
static size_t md_split(const char *text, char row[MD_COLS][MD_CELL])
{
    size_t n = 0;
    const char *s = text;
    while (n < MD_COLS) {
        const char *e = strchr(s, '|');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        while (len > 0 && *s == ' ')
            s++, len--;
        while (len > 0 && s[len - 1] == ' ')
            len--;
        snprintf(row[n++], MD_CELL, "%.*s", (int)len, s);
        if (!e)
            break;
        s = e + 1;
    }
    return n;
}

/* Column headers, '|'-separated: "ratio|L0|samples/s". */
static void md_init(md_table *t, const char *heads)
{
    memset(t, 0, sizeof *t);
    t->ncol = md_split(heads, t->head);
}

/* Appends a row: the '|'-separated fields of the formatted text (missing
 * cells stay empty). -1 when the table is full. */
static int md_row(md_table *t, const char *fmt, ...)
{
    if (t->nrow >= MD_ROWS)
        return -1;
    char buf[MD_COLS * MD_CELL];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    md_split(buf, t->cell[t->nrow++]);
    return 0;
}

/* t as a Markdown table: the first column left-aligned, the others
 * (numbers) right-aligned. */
static void md_write(FILE *f, const md_table *t)
{
    fputc('|', f);
    for (size_t c = 0; c < t->ncol; c++)
        fprintf(f, " %s |", t->head[c]);
    fputs("\n|", f);
    for (size_t c = 0; c < t->ncol; c++)
        fputs(c ? "---:|" : ":---|", f);
    fputc('\n', f);
    for (size_t r = 0; r < t->nrow; r++) {
        fputc('|', f);
        for (size_t c = 0; c < t->ncol; c++)
            fprintf(f, " %s |", t->cell[r][c]);
        fputc('\n', f);
    }
}

/* One section of BENCHMARKS.md: heading, paragraph, table. */
typedef struct {
    char title[128];
    char text[2048];
    md_table table;
} md_section;

#define MAX_SECTIONS 12

typedef struct {
    md_section sec[MAX_SECTIONS];
    size_t n;
} md_doc;

static md_section *md_section_add(md_doc *doc, const char *title, const char *heads,
                                  const char *fmt, ...)
{
    if (!doc || doc->n >= MAX_SECTIONS)
        return NULL;
    md_section *s = &doc->sec[doc->n++];
    snprintf(s->title, sizeof s->title, "%s", title);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->text, sizeof s->text, fmt, ap);
    va_end(ap);
    md_init(&s->table, heads);
    return s;
}

/* ------------------------------------------------------------ machine */

typedef struct {
    char cpu[128];
    int cores, avx2, avx512f;
    double mem_gib;
    char blas_config[256], blas_core[128], compiler[128], date[40], commit[64];
} bench_machine;

/* Whether the flags line holds word as a whole word. */
static int has_flag(const char *line, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = strstr(line, word); p; p = strstr(p + 1, word))
        if ((p == line || p[-1] == ' ' || p[-1] == '\t') &&
            (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
            return 1;
    return 0;
}

/* The first line of a command's output (trailing newline cut), or "". */
static void first_line(const char *cmd, char *buf, size_t len)
{
    buf[0] = '\0';
    FILE *p = popen(cmd, "r");
    if (!p)
        return;
    if (!fgets(buf, (int)len, p))
        buf[0] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    pclose(p);
}

static void machine_describe(bench_machine *mc)
{
    memset(mc, 0, sizeof *mc);
    snprintf(mc->cpu, sizeof mc->cpu, "unknown");
    static char line[16384];
    FILE *f = fopen("/proc/cpuinfo", "r");
    int have_model = 0, have_flags = 0;
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "processor", 9)) {
            mc->cores++;
        } else if (!have_model && !strncmp(line, "model name", 10) && strchr(line, ':')) {
            const char *v = strchr(line, ':') + 1;
            while (*v == ' ')
                v++;
            snprintf(mc->cpu, sizeof mc->cpu, "%.*s", (int)strcspn(v, "\n"), v);
            have_model = 1;
        } else if (!have_flags && !strncmp(line, "flags", 5)) {
            mc->avx2 = has_flag(line, "avx2");
            mc->avx512f = has_flag(line, "avx512f");
            have_flags = 1;
        }
    }
    if (f)
        fclose(f);
    if ((f = fopen("/proc/meminfo", "r"))) {
        double kib;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemTotal: %lf kB", &kib) == 1)
                mc->mem_gib = kib / (1024.0 * 1024.0);
        fclose(f);
    }
    const char *cfg = openblas_get_config(), *core = openblas_get_corename();
    snprintf(mc->blas_config, sizeof mc->blas_config, "%s", cfg ? cfg : "?");
    /* whose choice the kernels are: superpose's re-exec (sp_blas_init), the
     * user's OPENBLAS_CORETYPE, or OpenBLAS's detection */
    const char *how = getenv("SUPERPOSE_BLAS_REEXEC")
                          ? ", chosen by superpose: OpenBLAS did not recognise the CPU"
                      : getenv("OPENBLAS_CORETYPE") ? ", set by OPENBLAS_CORETYPE in the environment"
                                                    : "";
    snprintf(mc->blas_core, sizeof mc->blas_core, "%s%s", core ? core : "?", how);
#if defined(__GNUC__) && !defined(__clang__)
    snprintf(mc->compiler, sizeof mc->compiler, "gcc %s", __VERSION__);
#else
    snprintf(mc->compiler, sizeof mc->compiler, "%s", __VERSION__);
#endif
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(mc->date, sizeof mc->date, "%Y-%m-%d %H:%M UTC", &tm);
    first_line("git -C '" SP_SOURCE_DIR "' rev-parse --short HEAD 2>/dev/null", mc->commit,
               sizeof mc->commit);
    char dirty[8];
    first_line("git -C '" SP_SOURCE_DIR "' status --porcelain --untracked-files=no "
               "2>/dev/null | head -c 1", dirty, sizeof dirty);
    if (mc->commit[0] && dirty[0])
        strncat(mc->commit, " + uncommitted changes", sizeof mc->commit - strlen(mc->commit) - 1);
}

/* ------------------------------------------------ bytes of a learner */

/* What sp_sae_alloc (src/sae.c) and sp_optim_alloc (Adam) allocate for a
 * relu, topk or batchtopk learner with a linear untied encoder and one
 * prefix (no Matryoshka, MLP or Muon), in bytes:
 *   params  W_e (m, d), b_e (m), W_d (m, d), b_d (d, with pre_bias): floats
 *   grads   the same again (gW_e, gb_e, gW_d, gb_d)
 *   optim   Adam: two moments per parameter entry (one calloc; +1 float);
 *           without weight decay, a step count per row of W_e and W_d
 *           (m long each: idle rows, src/optim.c)
 *   batch   the workspaces of max_batch B rows:
 *             xc, sacc, r[0] (B, d) floats;
 *             p, f, df (B, m) floats, scratch max(B m, d, m) floats;
 *             aux_idx (B k_aux) size_t, aux_val (B k_aux) float,
 *             aux_n (B) size_t;
 *             sparse kernels (sparse_ok: untied, no MLP, one prefix, no
 *             prestd, no decoder norms in the penalty): cidx (B m)
 *             unsigned, cval (B m) float, cptr (B + 1) size_t, aux_dp
 *             (B k_aux) float
 *   other   per-latent state, not part of the targets: fires (m) unsigned
 *           long, last_fired (m) long, dnorm, ddnorm, dead_z, dead_f (m)
 *           float, dead (m) size_t, ebuf (d) float, dirty (m) bytes
 * Structs, the penalty and the optimizer's slot tables (< 4 KiB) are not
 * counted. k_aux = model.k_aux, or d / 2. */
typedef struct {
    size_t params, grads, optim, batch, other;
} sae_bytes;

static int sae_count_bytes(const sp_run_cfg *cfg, sae_bytes *out)
{
    const sp_sae_cfg *mc = &cfg->model;
    int relu = !strcmp(mc->arch, "relu");
    if ((!relu && strcmp(mc->arch, "topk") && strcmp(mc->arch, "batchtopk")) || mc->tied ||
        mc->mlp || mc->prefixes[0] || mc->prefix_samples > 0 || strcmp(cfg->optim.name, "adam"))
        return -1;
    size_t d = (size_t)cfg->data.d, m = sp_config_latents(cfg), B = (size_t)cfg->batch;
    size_t k_aux = mc->k_aux > 0 ? (size_t)mc->k_aux : (d / 2 > 0 ? d / 2 : 1);
    int use_dnorm = relu && sp_penalty_uses_dnorm(&cfg->penalty);
    int sparse_ok = !(mc->prestd > 0) && !use_dnorm;
    size_t n_par = 2 * m * d + m + (mc->pre_bias ? d : 0);
    out->params = n_par * sizeof(float);
    out->grads = n_par * sizeof(float);
    out->optim = (2 * n_par + 1) * sizeof(float) +
                 (cfg->optim.weight_decay > 0 ? 0 : 2 * m * sizeof(long));
    size_t scratch = B * m > d ? B * m : d;
    scratch = scratch > m ? scratch : m;
    out->batch = (3 * B * d + 3 * B * m + scratch + B * k_aux) * sizeof(float) +
                 (B * k_aux + B) * sizeof(size_t);
    if (sparse_ok)
        out->batch += B * m * sizeof(unsigned) + (B * m + B * k_aux) * sizeof(float) +
                      (B + 1) * sizeof(size_t);
    out->other = m * (sizeof(unsigned long) + sizeof(long) + 4 * sizeof(float) + sizeof(size_t)) +
                 d * sizeof(float) + (sparse_ok ? m : 0);
    return 0;
}

/* ------------------------------------------------------------ cases */

static double sgemm_gflops(size_t n, int threads, double min_s)
{
    openblas_set_num_threads(threads);
    gsl_matrix_float *a = gsl_matrix_float_alloc(n, n), *b = gsl_matrix_float_alloc(n, n),
                     *c = gsl_matrix_float_alloc(n, n);
    for (size_t i = 0; i < n * n; i++) {
        a->data[i] = (float)((i * 7919) % 1000) / 1000.0f;
        b->data[i] = (float)((i * 104729) % 1000) / 1000.0f;
    }
    /* the best of at least 5 products and min_s seconds: a peak, not an
     * average */
    double best = 0, start = sp_now();
    for (int rep = 0; rep < 5 || sp_now() - start < min_s; rep++) {
        double t0 = sp_now();
        gsl_blas_sgemm(CblasNoTrans, CblasNoTrans, 1.0f, a, b, 0.0f, c);
        double t = sp_now() - t0;
        double g = 2.0 * (double)n * n * n / t / 1e9;
        best = g > best ? g : best;
    }
    gsl_matrix_float_free(c);
    gsl_matrix_float_free(b);
    gsl_matrix_float_free(a);
    return best;
}

/* The baseline: a child that only loads what every case loads (OpenBLAS
 * kernels and buffers, through one small sgemm). */
static int child_idle(const void *arg, double *out)
{
    openblas_set_num_threads(1);
    gsl_matrix_float *a = gsl_matrix_float_calloc(64, 64), *c = gsl_matrix_float_alloc(64, 64);
    gsl_blas_sgemm(CblasNoTrans, CblasNoTrans, 1.0f, a, a, 0.0f, c);
    out[0] = c->data[0];
    gsl_matrix_float_free(c);
    gsl_matrix_float_free(a);
    return 0;
}

typedef struct {
    size_t n;
    int threads;
} sgemm_arg;

static int child_sgemm(const void *arg, double *out)
{
    const sgemm_arg *a = arg;
    out[0] = sgemm_gflops(a->n, a->threads, 1.0);
    return 0;
}

/* Dense-equivalent GFLOP/s of one step of B samples, m latents, d inputs
 * taking t seconds. */
static double dense_gflops(size_t B, size_t m, size_t d, double t)
{
    return 10.0 * (double)B * (double)m * (double)d / t / 1e9;
}

/* Solvers on a fixed dictionary (solve.h): m = 512 random unit atoms in
 * d = 256, batch 256, inputs the sum of L0 distinct atoms with U[0,1)
 * weights plus N(0, 0.01^2) noise; non-negative codes; pursuits with
 * K = L0, FISTA with lambda matched to a mean L0 of L0 on the same batch
 * (defaults of [solve]: 500 iterations, tol 1e-6). One child per L0; out,
 * per solver (OMP, GP, FISTA), 6 numbers: seconds per batch, iterations
 * (FISTA), mean L0 of the codes, FVU, lambda, seconds to match lambda. */
static const size_t solver_l0s[2] = {5, 32};
static const int solver_kinds[3] = {SP_SOLVE_OMP, SP_SOLVE_GP, SP_SOLVE_FISTA};

static int child_solvers(const void *arg, double *out)
{
    const size_t L0 = *(const size_t *)arg;
    const size_t m = 512, d = 256, B = 256;
    openblas_set_num_threads(1);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_matrix_float *D = gsl_matrix_float_alloc(m, d), *X = gsl_matrix_float_alloc(B, d);
    gsl_matrix_float *A = gsl_matrix_float_alloc(B, m);
    size_t all[512], pick[32];
    for (size_t i = 0; i < m; i++) {
        all[i] = i;
        gsl_vector_float_view row = gsl_matrix_float_row(D, i);
        for (size_t q = 0; q < d; q++)
            gsl_vector_float_set(&row.vector, q, (float)gsl_ran_gaussian(rng, 1.0));
        gsl_vector_float_scale(&row.vector, 1.0f / gsl_blas_snrm2(&row.vector));
    }
    sp_err err;
    sp_solver *S = sp_solver_alloc(D, NULL, B, &err);
    if (!S) {
        fprintf(stderr, "superpose: bench: %s\n", err.msg);
        return 1;
    }
    gsl_rng_set(rng, 1000 + L0);
    gsl_matrix_float_set_zero(X);
    double x2 = 0;
    for (size_t b = 0; b < B; b++) {
        float *x = gsl_matrix_float_ptr(X, b, 0);
        gsl_ran_choose(rng, pick, L0, all, m, sizeof *all);
        for (size_t n = 0; n < L0; n++) {
            float w = (float)gsl_rng_uniform(rng);
            const float *atom = gsl_matrix_float_const_ptr(D, pick[n], 0);
            for (size_t q = 0; q < d; q++)
                x[q] += w * atom[q];
        }
        for (size_t q = 0; q < d; q++) {
            x[q] += (float)gsl_ran_gaussian(rng, 0.01);
            x2 += (double)x[q] * x[q];
        }
    }
    for (int ki = 0; ki < 3; ki++) {
        double *o = out + 6 * ki;
        sp_solve_cfg cfg = {.kind = solver_kinds[ki], .nonneg = 1, .k = L0, .max_iter = 500,
                            .tol = 1e-6, .use_gram = -1};
        if (solver_kinds[ki] == SP_SOLVE_FISTA) {
            double t0 = sp_now();
            cfg.lambda = sp_solve_match_lambda(S, &cfg, X, (double)L0, A, &err);
            if (!isfinite(cfg.lambda)) {
                fprintf(stderr, "superpose: bench: %s\n", err.msg);
                return 1;
            }
            o[4] = cfg.lambda;
            o[5] = sp_now() - t0;
        }
        sp_solve_stats st = {0};
        long reps = 0;
        double t0 = sp_now(), t = 0;
        while (t < 0.3 || reps < 3) {
            if (sp_solve(S, &cfg, X, NULL, 0, A, &st, &err)) {
                fprintf(stderr, "superpose: bench: %s\n", err.msg);
                return 1;
            }
            reps++;
            t = sp_now() - t0;
        }
        size_t nnz = 0;
        for (size_t k = 0; k < B * m; k++)
            nnz += A->data[k] != 0;
        o[0] = t / (double)reps;
        o[1] = solver_kinds[ki] == SP_SOLVE_FISTA ? st.iters : NAN;
        o[2] = (double)nnz / (double)B;
        o[3] = 2 * sp_solve_objective(S, 0, X, A) / x2;
    }
    sp_solver_free(S);
    gsl_matrix_float_free(A);
    gsl_matrix_float_free(X);
    gsl_matrix_float_free(D);
    gsl_rng_free(rng);
    return 0;
}

/* step: seconds per dense SAE step at the same shape (ratio 1), for the
 * last column. */
static int bench_solvers(double step, double base_mib, md_doc *doc)
{
    printf("\nSolvers on a fixed dictionary: 512 random unit atoms, d = 256, batch 256, inputs =\n"
           "L0 atoms x U[0,1) + noise 0.01, non-negative codes, 1 thread; pursuits K = L0, FISTA\n"
           "lambda matched to mean L0 (max 500 iterations, tol 1e-6; time of the match in\n"
           "brackets); FVU = |x - aD|^2 / |x|^2; x SAE = time / one SAE step at ratio 1;\n"
           "peak MiB: the child running both L0 values' three solvers\n");
    printf("%-28s %4s %11s %9s %7s %7s %9s %9s %9s\n", "solver", "L0", "samples/s", "ms/batch",
           "iters", "L0 out", "FVU", "x SAE", "peak MiB");
    md_section *sec = md_section_add(
        doc, "Solvers on a fixed dictionary",
        "solver|L0|samples/s|ms/batch|iterations|L0 out|FVU|x SAE step|peak MiB",
        "512 random unit atoms, d = 256, batch 256, inputs = L0 atoms x U[0,1) + noise 0.01, "
        "non-negative codes, 1 thread; pursuits K = L0, FISTA lambda matched to the mean L0 "
        "(max 500 iterations, tol 1e-6; time of the match in brackets); FVU = |x - aD|^2 / "
        "|x|^2; x SAE step = time / one dense SAE step at ratio 1. One child per L0 (peak "
        "memory of that child; baseline %.1f MiB).", base_mib);
    for (int li = 0; li < 2; li++) {
        size_t L0 = solver_l0s[li];
        double o[CHILD_OUT], peak;
        if (in_child(child_solvers, &L0, o, &peak))
            return 1;
        for (int ki = 0; ki < 3; ki++) {
            const double *r = o + 6 * ki;
            char label[64], iters[16] = "-";
            snprintf(label, sizeof label, "%s K = %zu", sp_solver_names[solver_kinds[ki]], L0);
            if (solver_kinds[ki] == SP_SOLVE_FISTA) {
                snprintf(label, sizeof label, "fista lambda %.3g [%.1fs]", r[4], r[5]);
                snprintf(iters, sizeof iters, "%.0f", r[1]);
            }
            printf("%-28s %4zu %11.0f %9.3f %7s %7.2f %9.2e %9.2f %9.1f\n", label, L0,
                   256.0 / r[0], 1e3 * r[0], iters, r[2], r[3], r[0] / step, peak);
            if (sec)
                md_row(&sec->table, "%s|%zu|%.0f|%.3f|%s|%.2f|%.2e|%.2f|%.1f", label, L0,
                       256.0 / r[0], 1e3 * r[0], iters, r[2], r[3], r[0] / step, peak);
        }
    }
    return 0;
}

/* Crossover: one loss_and_grad of topk (density = k / m exactly), dense
 * then sparse kernels. out: seconds dense, seconds sparse, k. */
typedef struct {
    size_t m;
    double density;
} cross_arg;

static int child_cross(const void *arg, double *out)
{
    const cross_arg *a = arg;
    const size_t d = 256, B = 256;
    openblas_set_num_threads(1);
    sp_run_cfg cfg;
    sp_config_defaults(&cfg);
    snprintf(cfg.model.arch, sizeof cfg.model.arch, "topk");
    snprintf(cfg.penalty.name, sizeof cfg.penalty.name, "none");
    cfg.model.aux_coef = 0;
    size_t m = a->m;
    cfg.model.k = (int)(a->density * (double)m + 0.5);
    sp_err err;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    sp_learner *L = sp_learner_alloc(&cfg.model, &cfg.penalty, d, m, B, 1000, rng, &err);
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, d);
    if (!L || !x) {
        fprintf(stderr, "superpose: bench: %s\n", err.msg);
        return 1;
    }
    for (size_t t = 0; t < B * d; t++)
        x->data[t] = (float)gsl_ran_gaussian(rng, 1.0);
    for (int mode = 0; mode < 2; mode++) {
        sp_sae_set_sparse(L, mode ? SP_SPARSE_SPARSE : SP_SPARSE_DENSE);
        sp_loss ls;
        L->ops->loss_and_grad(L, x, &ls);
        long reps = 0;
        double t0 = sp_now(), t = 0;
        while (t < 0.15 || reps < 3) {
            L->ops->loss_and_grad(L, x, &ls);
            reps++;
            t = sp_now() - t0;
        }
        out[mode] = t / (double)reps;
    }
    out[2] = cfg.model.k;
    gsl_matrix_float_free(x);
    sp_learner_free(L);
    gsl_rng_free(rng);
    return 0;
}

/* The training step of relu L1 on the Sharkey generator at one ratio and
 * coefficient, after `warmup` steps of training in auto mode (with
 * warm_threads BLAS threads: the warm-up is not timed), timed with one
 * thread on 8 pre-generated batches (generation excluded), dense, then
 * auto, in five rounds (the best round of each mode counts for the
 * speeds). out: 0 L0 of the timed auto steps, 1 seconds per dense step, 2
 * per auto step, 3 share of auto steps on the sparse kernels, 4 mean L0 of
 * the last 100 warm-up steps, 5 warm-up seconds, 6 m, 7 the highest
 * 1-thread sgemm peak the child measured (before and after each round's
 * auto steps), 8 the median over the rounds of the auto step's
 * dense-equivalent GFLOP/s over the peak measured around it. */
typedef struct {
    double ratio, coef;
    long warmup, steps;
    int warm_threads;
} step_arg;

static int child_step(const void *arg, double *out)
{
    const step_arg *a = arg;
    const size_t d = 256, B = 256;
    sp_run_cfg cfg;
    sp_config_defaults(&cfg);
    cfg.model.ratio = a->ratio;
    cfg.penalty.coef = a->coef;
    cfg.penalty.per_latent = 1;
    size_t m = sp_config_latents(&cfg);
    sp_err err;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    sp_gen *g = sp_gen_alloc(&cfg.data, B, rng, &err);
    sp_learner *L = g ? sp_learner_alloc(&cfg.model, &cfg.penalty, d, m, B, 1000000, rng, &err) : NULL;
    sp_optim *o = L ? sp_optim_alloc(&cfg.optim, L->params, L->n_params, 1000000) : NULL;
    gsl_matrix_float *x[8] = {0};
    for (int q = 0; q < 8; q++)
        x[q] = gsl_matrix_float_alloc(B, d);
    if (!o || !x[7]) {
        fprintf(stderr, "superpose: bench: %s\n", err.msg);
        return 1;
    }
    openblas_set_num_threads(a->warm_threads);
    double t0 = sp_now(), l0_tail = 0;
    long tail = a->warmup < 100 ? a->warmup : 100;
    for (long w = 0; w < a->warmup; w++) {
        sp_loss ls;
        sp_gen_batch(g, rng, B, NULL, x[0]);
        sp_train_step(L, o, x[0], &ls);
        if (w >= a->warmup - tail)
            l0_tail += ls.l0;
    }
    out[4] = tail ? l0_tail / (double)tail : NAN;
    out[5] = sp_now() - t0;
    openblas_set_num_threads(1);
    for (int q = 0; q < 8; q++)
        sp_gen_batch(g, rng, B, NULL, x[q]);
    /* five rounds of dense then auto, the best round of each for the
     * speeds: a job started elsewhere on the machine spoils one round, not
     * the result */
    long n = a->steps / (long)(m / 512 > 0 ? m / 512 : 1);
    n = n < 30 ? 6 : (n + 4) / 5;
    double l0 = 0;
    long n_sparse = 0;
    out[1] = out[2] = INFINITY;
    /* this machine's sgemm speed drifts by 10-20% from second to second
     * (measured: 123-155 GFLOP/s in six 1-s windows, and whole minutes
     * slower): each round's auto steps are compared with the peak measured
     * right before and after them (the higher), and the median of the five
     * rounds' ratios is the result (out[8]) */
    double ratio[5];
    out[7] = 0;
    for (int round = 0; round < 5; round++)
        for (int mode = 0; mode < 2; mode++) {
            double pk = 0;
            if (mode) {
                pk = sgemm_gflops(1024, 1, 0.3);
                openblas_set_num_threads(1);
            }
            sp_sae_set_sparse(L, mode ? SP_SPARSE_AUTO : SP_SPARSE_DENSE);
            sp_train_step(L, o, x[0], NULL);
            t0 = sp_now();
            for (long st = 0; st < n; st++) {
                sp_loss ls;
                sp_train_step(L, o, x[st % 8], &ls);
                if (mode) {
                    l0 += ls.l0;
                    n_sparse += sp_sae_last_sparse(L) == 1;
                }
            }
            double per = (sp_now() - t0) / (double)n;
            out[1 + mode] = per < out[1 + mode] ? per : out[1 + mode];
            if (mode) {
                double after = sgemm_gflops(1024, 1, 0.3);
                openblas_set_num_threads(1);
                pk = after > pk ? after : pk;
                out[7] = pk > out[7] ? pk : out[7];
                ratio[round] = 10.0 * (double)B * (double)m * (double)d / per / 1e9 / pk;
            }
        }
    /* the median of five */
    for (int i = 1; i < 5; i++)
        for (int j = i; j > 0 && ratio[j - 1] > ratio[j]; j--) {
            double t = ratio[j];
            ratio[j] = ratio[j - 1];
            ratio[j - 1] = t;
        }
    out[8] = ratio[2];
    out[0] = l0 / (double)(5 * n);
    out[3] = (double)n_sparse / (double)(5 * n);
    out[6] = (double)m;
    for (int q = 0; q < 8; q++)
        gsl_matrix_float_free(x[q]);
    sp_optim_free(o);
    sp_learner_free(L);
    sp_gen_free(g);
    gsl_rng_free(rng);
    return 0;
}

/* Auto-mode x peak1 of the Goldilocks step at each ratio (targets). */
typedef struct {
    double xpeak[N_RATIOS];
    double peak[N_RATIOS]; /* the 1-thread sgemm peak each ratio is divided by */
} step_result;

static int bench_sparse(double peak1, int procs, long steps, long warmup, double coef,
                        step_result *sr, md_doc *doc)
{
    const size_t d = 256, B = 256;
    printf("\nSparse vs dense kernels, crossover: topk loss_and_grad (no optimizer), d = 256, "
           "batch 256,\n1 thread; density = k / m; auto takes sparse below %.3g\n",
           sp_sae_sparse_threshold);
    printf("%8s %8s %11s %11s %9s %9s\n", "latents", "density", "dense ms", "sparse ms", "speedup",
           "peak MiB");
    md_section *sec = md_section_add(
        doc, "Sparse vs dense kernels: crossover",
        "latents|density|dense samples/s|dense GFLOP/s*|dense x peak|sparse samples/s|"
        "sparse GFLOP/s*|sparse x peak|speedup|peak MiB",
        "One loss_and_grad of topk (no optimizer), d = 256, batch 256, 1 thread; density = "
        "k / m; model.sparse = auto takes the sparse kernels below a density of %.3g. "
        "GFLOP/s* = 10 B m d / t, x peak against the 1-thread sgemm peak.",
        sp_sae_sparse_threshold);
    const size_t ms[3] = {512, 2048, 8192};
    const double dens[7] = {0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4};
    for (size_t mi = 0; mi < 3; mi++)
        for (size_t di = 0; di < 7; di++) {
            cross_arg a = {ms[mi], dens[di]};
            double o[CHILD_OUT], peak;
            if (in_child(child_cross, &a, o, &peak))
                return 1;
            size_t m = ms[mi];
            double kd = o[2] / (double)m;
            printf("%8zu %8.3f %11.3f %11.3f %9.2f %9.1f\n", m, kd, 1e3 * o[0], 1e3 * o[1],
                   o[0] / o[1], peak);
            double g0 = dense_gflops(B, m, d, o[0]), g1 = dense_gflops(B, m, d, o[1]);
            if (sec)
                md_row(&sec->table, "%zu|%.3f|%.0f|%.1f|%.2f|%.0f|%.1f|%.2f|%.2f|%.1f", m, kd,
                       (double)B / o[0], g0, g0 / peak1, (double)B / o[1], g1, g1 / peak1,
                       o[0] / o[1], peak);
        }

    printf("\nSAE training step at the Goldilocks L1, sparse vs dense: Sharkey generator d = 256, "
           "G = 512,\nbatch 256, relu L1 (train.coef_scale = dict, coef per ratio), Adam, 1 thread, "
           "after\n`warmup` training steps (%d BLAS threads, not timed; L0 warm = mean L0 of the "
           "last 100);\ngeneration excluded; best of 5 rounds of dense then auto; L0 = mean "
           "active latents\nper sample in the timed auto steps; GFLOP/s* = 10 B m d / t; auto x "
           "peak1: the median\nround's ratio to the sgemm peak measured just before and after "
           "it; peak1: the child's highest\n",
           procs);
    printf("%6s %8s %6s %6s %6s %7s %7s %9s | %11s %9s %8s | %11s %9s %8s %7s | %8s %9s %6s\n",
           "ratio", "latents", "coef", "warmup", "warm s", "L0 warm", "L0", "density",
           "dense sa/s", "GFLOP/s*",
           "x peak1", "auto sa/s", "GFLOP/s*", "x peak1", "sparse", "speedup", "peak MiB", "peak1");
    sec = md_section_add(
        doc, "SAE training step at the Goldilocks L1: sparse vs dense",
        "ratio|latents|L1 coef|warm-up steps|warm-up s|L0 warm|L0|dense samples/s|dense GFLOP/s*|"
        "dense x peak|auto samples/s|auto GFLOP/s*|auto x peak|sparse steps|speedup|peak MiB|"
        "sgemm peak",
        "Sharkey generator d = 256, G = 512 (k = 5), batch 256, relu L1 with train.coef_scale "
        "= dict at the Goldilocks coefficient of each ratio (measured: see the table in "
        "src/cli/bench.c), Adam, 1 thread. Each ratio trains for the warm-up steps first (%d "
        "BLAS threads, not timed) until L0 has settled (L0 warm: mean of the last 100 "
        "warm-up steps), then 1 thread is timed on 8 pre-generated batches, first with the "
        "dense kernels, then in auto mode (model.sparse = auto, the default; sparse steps: "
        "share of auto steps on the sparse kernels), five rounds, the best round of each "
        "mode counting for the speeds. L0 = mean active latents per sample in "
        "the timed auto steps. GFLOP/s* = 10 B m d / t. As this machine's sgemm speed "
        "drifts by 10-20%% from second to second (and is slower for whole minutes), each "
        "round's auto steps are compared with the 1-thread sgemm peak measured just before "
        "and after them (the higher); auto x peak is the median round's ratio, dense x peak "
        "is against the child's highest peak (sgemm peak). One child per ratio.", procs);
    for (size_t r = 0; r < N_RATIOS; r++) {
        step_arg a = {goldilocks[r].ratio, coef > 0 ? coef : goldilocks[r].coef,
                      warmup >= 0 ? warmup : goldilocks[r].warmup, steps, procs};
        double o[CHILD_OUT], peak;
        if (in_child(child_step, &a, o, &peak))
            return 1;
        size_t m = (size_t)o[6];
        double gf[2];
        for (int mode = 0; mode < 2; mode++)
            gf[mode] = dense_gflops(B, m, d, o[1 + mode]);
        /* the child's own peaks, measured around its rounds: the target is
         * the median round's ratio to its adjacent peak (out[8]) */
        peak1 = o[7];
        sr->xpeak[r] = o[8];
        sr->peak[r] = peak1;
        printf("%6g %8zu %6g %6ld %6.0f %7.1f %7.1f %9.4f | %11.0f %9.1f %8.2f | %11.0f %9.1f "
               "%8.2f %6.0f%% | %8.2f %9.1f %6.1f\n",
               a.ratio, m, a.coef, a.warmup, o[5], o[4], o[0], o[0] / (double)m, (double)B / o[1], gf[0],
               gf[0] / peak1, (double)B / o[2], gf[1], o[8], 100.0 * o[3], o[1] / o[2],
               peak, peak1);
        if (sec)
            md_row(&sec->table,
                   "%g|%zu|%g|%ld|%.0f|%.1f|%.1f|%.0f|%.1f|%.2f|%.0f|%.1f|%.2f|%.0f%%|%.2f|%.1f|%.1f",
                   a.ratio, m, a.coef, a.warmup, o[5], o[4], o[0], (double)B / o[1], gf[0],
                   gf[0] / peak1, (double)B / o[2], gf[1], o[8], 100.0 * o[3],
                   o[1] / o[2], peak, peak1);
    }
    return 0;
}

/* ------------------------------------------------- memory of one run */

/* The memory target's run: ratio 32 at its Goldilocks coefficient, as
 * `superpose train` would run it (experiments/sharkey-recovery.ini's
 * evaluation of 8192 samples), with few steps. */
static void mem_cfg(sp_run_cfg *cfg)
{
    sp_config_defaults(cfg);
    cfg->model.ratio = goldilocks[N_RATIOS - 1].ratio;
    cfg->penalty.coef = goldilocks[N_RATIOS - 1].coef;
    cfg->penalty.per_latent = 1;
    cfg->steps = 30;
    cfg->eval_samples = 8192;
}

static double run_metric(const sp_run_result *res, const char *name)
{
    for (size_t i = 0; i < sp_n_run_metrics; i++)
        if (!strcmp(sp_run_metric_names[i], name))
            return res->metric[i];
    return NAN;
}

/* The whole run: training and evaluation. out: L0, MMCS, seconds. */
static int child_memrun(const void *arg, double *out)
{
    sp_run_cfg cfg;
    mem_cfg(&cfg);
    openblas_set_num_threads(1);
    sp_err err;
    sp_run_result res = {0};
    if (sp_config_check(&cfg, &err) != 0 || sp_run_train(&cfg, NULL, NULL, NULL, &res, &err) != 0) {
        fprintf(stderr, "superpose: bench: %s\n", err.msg);
        return 1;
    }
    out[0] = run_metric(&res, "l0");
    out[1] = run_metric(&res, "mmcs");
    out[2] = run_metric(&res, "wall_s");
    sp_run_result_free(&res);
    return 0;
}

/* The same training without the evaluation: generator, learner, Adam and
 * the steps, to tell training memory from evaluation memory. */
static int child_memtrain(const void *arg, double *out)
{
    sp_run_cfg cfg;
    mem_cfg(&cfg);
    openblas_set_num_threads(1);
    size_t d = (size_t)cfg.data.d, m = sp_config_latents(&cfg), B = (size_t)cfg.batch;
    sp_err err;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    sp_gen *g = sp_gen_alloc(&cfg.data, B, rng, &err);
    sp_learner *L = g ? sp_learner_alloc(&cfg.model, &cfg.penalty, d, m, B, cfg.steps, rng, &err) : NULL;
    sp_optim *o = L ? sp_optim_alloc(&cfg.optim, L->params, L->n_params, cfg.steps) : NULL;
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, d);
    if (!o || !x) {
        fprintf(stderr, "superpose: bench: %s\n", err.msg);
        return 1;
    }
    for (long s = 0; s < cfg.steps; s++) {
        sp_gen_batch(g, rng, B, NULL, x);
        sp_train_step(L, o, x, NULL);
    }
    out[0] = 0;
    gsl_matrix_float_free(x);
    sp_optim_free(o);
    sp_learner_free(L);
    sp_gen_free(g);
    gsl_rng_free(rng);
    return 0;
}

typedef struct {
    sae_bytes b;
    double counted_mib, base_mib, train_mib, run_mib, ratio;
    double l0, mmcs, wall;
} mem_result;

static double mib(size_t bytes) { return (double)bytes / (1024.0 * 1024.0); }

static int bench_memory(double base_mib, mem_result *mr)
{
    sp_run_cfg cfg;
    mem_cfg(&cfg);
    if (sae_count_bytes(&cfg, &mr->b) != 0) {
        fprintf(stderr, "superpose: bench: no byte count for this learner\n");
        return 1;
    }
    double o[CHILD_OUT];
    if (in_child(child_memtrain, NULL, o, &mr->train_mib) || in_child(child_memrun, NULL, o, &mr->run_mib))
        return 1;
    mr->l0 = o[0];
    mr->mmcs = o[1];
    mr->wall = o[2];
    mr->base_mib = base_mib;
    mr->counted_mib = mib(mr->b.params + mr->b.grads + mr->b.optim + mr->b.batch);
    mr->ratio = mr->run_mib / mr->counted_mib;
    printf("\nMemory of one run at ratio 32 (sp_run_train: d = 256, G = 512, batch 256, relu L1 "
           "coef %g,\nAdam, %ld steps, evaluation on %ld samples; L0 %.1f, MMCS %.3f, %.1f s), "
           "peak resident set\nof its child against the bytes its learner allocates "
           "(src/sae.c, src/optim.c):\n",
           cfg.penalty.coef, cfg.steps, cfg.eval_samples, mr->l0, mr->mmcs, mr->wall);
    printf("  parameters W_e, b_e, W_d             %9.1f MiB\n", mib(mr->b.params));
    printf("  gradients                            %9.1f MiB\n", mib(mr->b.grads));
    printf("  Adam moments                         %9.1f MiB\n", mib(mr->b.optim));
    printf("  batch buffers (B x m, B x d, AuxK)   %9.1f MiB\n", mib(mr->b.batch));
    printf("  counted                              %9.1f MiB\n", mr->counted_mib);
    printf("  (per-latent state, not counted)      %9.1f MiB\n", mib(mr->b.other));
    printf("  idle child (process, libraries)      %9.1f MiB\n", base_mib);
    printf("  training alone, no evaluation        %9.1f MiB = %.2f x counted\n", mr->train_mib,
           mr->train_mib / mr->counted_mib);
    printf("  the run, training and evaluation     %9.1f MiB = %.2f x counted (%.2f x above "
           "the idle child)\n",
           mr->run_mib, mr->ratio, (mr->run_mib - base_mib) / mr->counted_mib);
    return 0;
}

/* ------------------------------------------------------- other tables */

/* SAE step with generation included (coef 0.1 per latent, 20 warm-up
 * steps: the codes are still dense). out: seconds per step, share of
 * generation, seconds per step without generation. */
static const double gen_ratios[3] = {1, 4, 16};

typedef struct {
    double ratio;
    long steps;
} gstep_arg;

static int child_gstep(const void *arg, double *out)
{
    const gstep_arg *a = arg;
    openblas_set_num_threads(1);
    sp_run_cfg cfg;
    sp_config_defaults(&cfg);
    cfg.model.ratio = a->ratio;
    cfg.penalty.coef = 0.1;
    cfg.penalty.per_latent = 1;
    size_t d = 256, m = sp_config_latents(&cfg), B = 256;
    sp_err err;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    sp_gen *g = sp_gen_alloc(&cfg.data, B, rng, &err);
    sp_learner *L = g ? sp_learner_alloc(&cfg.model, &cfg.penalty, d, m, B, 1000000, rng, &err) : NULL;
    sp_optim *o = L ? sp_optim_alloc(&cfg.optim, L->params, L->n_params, 1000000) : NULL;
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, d);
    if (!o || !x) {
        fprintf(stderr, "superpose: bench: %s\n", err.msg);
        return 1;
    }
    for (int w = 0; w < 20; w++) {
        sp_gen_batch(g, rng, B, NULL, x);
        sp_train_step(L, o, x, NULL);
    }
    long n = a->steps / (long)(m / 512 > 0 ? m / 512 : 1);
    n = n < 50 ? 50 : n;
    double tgen = 0, t0 = sp_now();
    for (long s = 0; s < n; s++) {
        double tg = sp_now();
        sp_gen_batch(g, rng, B, NULL, x);
        tgen += sp_now() - tg;
        sp_train_step(L, o, x, NULL);
    }
    double t = sp_now() - t0;
    out[0] = t / (double)n;
    out[1] = tgen / t;
    out[2] = (t - tgen) / (double)n;
    out[3] = (double)m;
    gsl_matrix_float_free(x);
    sp_optim_free(o);
    sp_learner_free(L);
    sp_gen_free(g);
    gsl_rng_free(rng);
    return 0;
}

static const struct {
    const char *label;
    const char *kv[6][2];
} learners[] = {
    {"relu L1, ratio 1", {{"model.ratio", "1"}}},
    {"topk k = 5, ratio 1", {{"model.arch", "topk"}, {"train.penalty", "none"}, {"model.k", "5"}}},
    {"topk k = 32, ratio 1", {{"model.arch", "topk"}, {"train.penalty", "none"}, {"model.k", "32"}}},
    {"topk k = 5, ratio 4", {{"model.arch", "topk"}, {"train.penalty", "none"}, {"model.k", "5"}, {"model.ratio", "4"}}},
    {"topk k = 32, ratio 4", {{"model.arch", "topk"}, {"train.penalty", "none"}, {"model.k", "32"}, {"model.ratio", "4"}}},
    {"batchtopk k = 32, ratio 1", {{"model.arch", "batchtopk"}, {"train.penalty", "none"}, {"model.k", "32"}}},
    {"jumprelu L0, ratio 1", {{"model.arch", "jumprelu"}, {"train.penalty", "l0"}}},
    {"gated L1, ratio 1", {{"model.arch", "gated"}}},
    {"relu L1, ratio 4", {{"model.ratio", "4"}}},
    {"matryoshka relu, ratio 4 (4 prefixes)", {{"model.ratio", "4"}, {"model.prefixes", "128, 512, 1024"}}},
    {"matryoshka relu, ratio 4 (sampled 5)", {{"model.ratio", "4"}, {"model.prefix_samples", "5"}}},
    {"stacked topk, 2 layers k = 16", {{"model.arch", "stacked"}, {"train.penalty", "none"}, {"model.k", "16"}, {"model.layers", "2"}}},
    {"relu, mlp encoder (hidden 256)", {{"model.encoder", "mlp"}}},
    {"relu L1 + muon, ratio 1", {{"train.optimizer", "muon"}}},
    {"relu L1 + orth 0.01, ratio 1", {{"model.orth", "0.01"}}},
};
#define N_LEARNERS (sizeof learners / sizeof learners[0])

typedef struct {
    size_t li;
    long steps;
} learner_arg;

/* One learner on one fixed batch. out: seconds per step, m. */
static int child_learner(const void *arg, double *out)
{
    const learner_arg *a = arg;
    openblas_set_num_threads(1);
    sp_run_cfg cfg;
    sp_config_defaults(&cfg);
    cfg.penalty.coef = 0.1;
    cfg.penalty.per_latent = 1;
    sp_err err;
    for (int q = 0; q < 6 && learners[a->li].kv[q][0]; q++) {
        const sp_opt *op = sp_config_find(learners[a->li].kv[q][0]);
        if (!op || sp_config_set(&cfg, op, learners[a->li].kv[q][1], &err) != 0) {
            fprintf(stderr, "superpose: bench: %s\n", op ? err.msg : "unknown key");
            return 1;
        }
    }
    size_t d = 256, m = sp_config_latents(&cfg), B = 256;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    sp_gen *g = sp_gen_alloc(&cfg.data, B, rng, &err);
    sp_learner *L = g ? sp_learner_alloc(&cfg.model, &cfg.penalty, d, m, B, 1000000, rng, &err) : NULL;
    sp_optim *o = L ? sp_optim_alloc(&cfg.optim, L->params, L->n_params, 1000000) : NULL;
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, d);
    if (!o || !x) {
        fprintf(stderr, "superpose: bench: %s: %s\n", learners[a->li].label, err.msg);
        return 1;
    }
    sp_gen_batch(g, rng, B, NULL, x);
    for (int w = 0; w < 10; w++)
        sp_train_step(L, o, x, NULL);
    long n = a->steps / (long)(m / 512 > 0 ? m / 512 : 1);
    n = n < 20 ? 20 : n;
    double t0 = sp_now();
    for (long st = 0; st < n; st++)
        sp_train_step(L, o, x, NULL);
    out[0] = (sp_now() - t0) / (double)n;
    out[1] = (double)m;
    gsl_matrix_float_free(x);
    sp_optim_free(o);
    sp_learner_free(L);
    sp_gen_free(g);
    gsl_rng_free(rng);
    return 0;
}

static const struct {
    const char *label;
    const char *kv[4][2];
} gens[] = {
    {"sharkey, uncorrelated", {{"data.correlation", "none"}}},
    {"sharkey, copula (full rank)", {{"data.correlation", "copula"}}},
    {"sharkey, low-rank copula (rank 8)", {{"data.correlation", "lowrank"}, {"data.rank", "8"}}},
    {"features, zipf, k = 5", {{"data.generator", "features"}, {"data.firing", "zipf"}}},
    {"sharkey + noise 0.05", {{"data.noise", "0.05"}}},
};
#define N_GENS (sizeof gens / sizeof gens[0])

typedef struct {
    size_t k;
    long steps;
} gen_arg;

/* One generator alone. out: seconds per batch. */
static int child_gen(const void *arg, double *out)
{
    const gen_arg *a = arg;
    openblas_set_num_threads(1);
    sp_run_cfg cfg;
    sp_config_defaults(&cfg);
    sp_err err;
    for (int j = 0; j < 4 && gens[a->k].kv[j][0]; j++)
        sp_config_set(&cfg, sp_config_find(gens[a->k].kv[j][0]), gens[a->k].kv[j][1], &err);
    size_t B = 256;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    sp_gen *g = sp_gen_alloc(&cfg.data, B, rng, &err);
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, 256);
    if (!g || !x) {
        fprintf(stderr, "superpose: bench: %s\n", err.msg);
        return 1;
    }
    long reps = 4 * a->steps;
    for (int w = 0; w < 10; w++)
        sp_gen_batch(g, rng, B, NULL, x);
    double t0 = sp_now();
    for (long s = 0; s < reps; s++)
        sp_gen_batch(g, rng, B, NULL, x);
    out[0] = (sp_now() - t0) / (double)reps;
    gsl_matrix_float_free(x);
    sp_gen_free(g);
    gsl_rng_free(rng);
    return 0;
}

static int bench_rest(double peak1, long steps, double base_mib, md_doc *doc)
{
    printf("\nSAE training step, Sharkey generator d = 256, G = 512, batch 256, L1 (coef 0.1, "
           "dict), Adam,\n1 thread, after 20 steps (dense codes)\n");
    printf("%6s %8s %11s %11s %11s %9s %9s %9s\n", "ratio", "latents", "samples/s", "steps/s",
           "GFLOP/s*", "x peak1", "gen %", "peak MiB");
    md_section *sec = md_section_add(
        doc, "SAE training step, generation included",
        "ratio|latents|samples/s|steps/s|GFLOP/s*|x peak|generation %|peak MiB",
        "Sharkey generator d = 256, G = 512, batch 256, relu L1 (coef 0.1, coef_scale = "
        "dict), Adam, 1 thread, after 20 steps (the codes are still dense, so the dense "
        "kernels run); the generator's time is included in the step. GFLOP/s* = 10 B m d / "
        "t.");
    double step_ratio1 = NAN; /* seconds per SAE step at ratio 1, generation excluded */
    for (size_t r = 0; r < 3; r++) {
        gstep_arg a = {gen_ratios[r], steps};
        double o[CHILD_OUT], peak;
        if (in_child(child_gstep, &a, o, &peak))
            return 1;
        size_t m = (size_t)o[3];
        if (r == 0)
            step_ratio1 = o[2];
        double sps = 1.0 / o[0], gf = dense_gflops(256, m, 256, o[0]);
        printf("%6g %8zu %11.0f %11.1f %11.1f %9.2f %9.1f %9.1f\n", a.ratio, m, sps * 256.0, sps,
               gf, gf / peak1, 100.0 * o[1], peak);
        if (sec)
            md_row(&sec->table, "%g|%zu|%.0f|%.1f|%.1f|%.2f|%.1f|%.1f", a.ratio, m, sps * 256.0,
                   sps, gf, gf / peak1, 100.0 * o[1], peak);
    }

    printf("\nLearners, d = 256, G = 512, batch 256, 1 thread, one fixed batch (generation "
           "excluded);\nGFLOP/s* counts the 10 B m d flops of a dense SAE step, whatever the "
           "learner does\n");
    printf("%-36s %8s %11s %9s %11s %9s %9s %9s\n", "learner", "latents", "samples/s", "ms/step",
           "GFLOP/s*", "x peak1", "x relu", "peak MiB");
    sec = md_section_add(
        doc, "Learners",
        "learner|latents|samples/s|ms/step|GFLOP/s*|x peak|x relu|peak MiB",
        "d = 256, G = 512, batch 256, 1 thread, one fixed batch (generation excluded), after "
        "10 steps; GFLOP/s* counts the 10 B m d FLOPs of a dense SAE step whatever the "
        "learner does; x relu = time / the relu L1 step of the same size.");
    double relu1 = NAN;
    for (size_t li = 0; li < N_LEARNERS; li++) {
        learner_arg a = {li, steps};
        double o[CHILD_OUT], peak;
        if (in_child(child_learner, &a, o, &peak))
            return 1;
        double t = o[0];
        size_t m = (size_t)o[1];
        if (li == 0)
            relu1 = t * 512.0 / (double)m;
        double gf = dense_gflops(256, m, 256, t);
        double xr = t / (relu1 * (double)m / 512.0);
        printf("%-36s %8zu %11.0f %9.3f %11.1f %9.2f %9.2f %9.1f\n", learners[li].label, m,
               256.0 / t, 1e3 * t, gf, gf / peak1, xr, peak);
        if (sec)
            md_row(&sec->table, "%s|%zu|%.0f|%.3f|%.1f|%.2f|%.2f|%.1f", learners[li].label, m,
                   256.0 / t, 1e3 * t, gf, gf / peak1, xr, peak);
    }

    printf("\nGenerators, d = 256, G = 512, batch 256, 1 thread (cost relative to one SAE "
           "step at ratio 1,\ngeneration excluded: %.3f ms)\n", 1e3 * step_ratio1);
    printf("%-34s %11s %11s %9s %9s\n", "generator", "samples/s", "ms/batch", "% step",
           "peak MiB");
    sec = md_section_add(doc, "Generators", "generator|samples/s|ms/batch|% of a step|peak MiB",
                         "d = 256, G = 512, batch 256, 1 thread; %% of a step: against one "
                         "dense SAE step at ratio 1 without generation (%.3f ms).",
                         1e3 * step_ratio1);
    for (size_t k = 0; k < N_GENS; k++) {
        gen_arg a = {k, steps};
        double o[CHILD_OUT], peak;
        if (in_child(child_gen, &a, o, &peak))
            return 1;
        double per = o[0];
        printf("%-34s %11.0f %11.3f %9.1f %9.1f\n", gens[k].label, 256.0 / per, 1e3 * per,
               100.0 * per / step_ratio1, peak);
        if (sec)
            md_row(&sec->table, "%s|%.0f|%.3f|%.1f|%.1f", gens[k].label, 256.0 / per, 1e3 * per,
                   100.0 * per / step_ratio1, peak);
    }
    return bench_solvers(step_ratio1, base_mib, doc);
}

/* ------------------------------------------------------------ report */

static const char *met(int ok) { return ok ? "met" : "not met"; }

/* ----------------------------------------------------------- ensemble */

static int child_ens(const void *arg, double *out)
{
    (void)arg;
    openblas_set_num_threads(1); /* as the heading says (until 2026-12-05 it ran with the
                                    default, all cores) */
    sp_bench_ens e;
    if (sp_bench_ensemble(300, 60, &e) != 0)
        return 1;
    out[0] = e.samples, out[1] = e.flops, out[2] = e.l0;
    out[3] = e.t_ensemble, out[4] = e.t_auto, out[5] = e.t_dense, out[6] = e.models;
    out[7] = e.t_gen, out[8] = e.t_enc, out[9] = e.enc_flops;
    return 0;
}

/* The most an ensemble could reach, as throughput / one after another
 * (auto): the models alone save all generation but one model's share, and
 * their encoder products brought to the sgemm peak (at_peak) or dropped
 * altogether (at_free); the rest of a step is each model's own work
 * (bench_ens.c). */
static void ens_bounds(const sp_bench_ens *e, double peak1, double *at_peak, double *at_free)
{
    double gen_saved = e->t_gen * (e->models - 1) / e->models;
    double enc_slack = e->t_enc - e->enc_flops / (peak1 * 1e9);
    *at_peak = e->t_auto / (e->t_auto - gen_saved - (enc_slack > 0 ? enc_slack : 0));
    *at_free = e->t_auto / (e->t_auto - gen_saved - e->t_enc);
}

/* The 17-model L1 sweep at ratio 1 as one ensemble against the same
 * models one after another (bench_ens.c), and the bounds of ens_bounds. */
static int bench_ensemble(double peak1, md_doc *doc, sp_bench_ens *out)
{
    double o[CHILD_OUT], pk;
    if (in_child(child_ens, NULL, o, &pk))
        return 1;
    sp_bench_ens e = {.samples = o[0], .flops = o[1], .l0 = o[2], .t_ensemble = o[3],
                      .t_auto = o[4], .t_dense = o[5], .models = (int)o[6],
                      .t_gen = o[7], .t_enc = o[8], .enc_flops = o[9]};
    *out = e;
    double at_peak, at_free;
    ens_bounds(&e, peak1, &at_peak, &at_free);
    const char *what = "L1 sweep of 17 ReLU SAEs at ratio 1 (Sharkey d = 256, G = 512, k = 5, "
                       "batch 256, coef = logspace(-2, 2, 17), coef_scale = dict, Adam, 1 thread), "
                       "after 300 common warm-up steps; 60 steps of each model per row, "
                       "generation included";
    double gen_pc = 100 * e.t_gen / e.t_auto, enc_pc = 100 * e.t_enc / e.t_auto,
           enc_x = e.enc_flops / e.t_enc / 1e9 / peak1;
    printf("\nEnsemble: %s; mean L0 %.1f\n", what, e.l0);
    printf("timed alone: generation %.1f%% and encoder products %.1f%% (at %.2f x peak) of one "
           "after another (auto)\n",
           gen_pc, enc_pc, enc_x);
    printf("%-34s %11s %9s %8s %9s %9s\n", "training", "samples/s", "GFLOP/s*", "x peak",
           "x alone", "peak MiB");
    md_section *sec = md_section_add(
        doc, "Ensembles", "training|samples/s|GFLOP/s*|x peak|throughput / one after another (auto)",
        "%s (bench_ens.c; mean L0 %.1f over the models). The rows are phases of one child "
        "(peak %.1f MiB). What an ensemble shares was then timed alone: generating the batches "
        "the models draw one after another is %.1f%% of that phase, and their encoder products "
        "x W_e^T %.1f%% (at %.2f x peak). The rest of a step (codes, decoder, backward, penalty, "
        "Adam) depends on each model's own weights and codes, the same work in an ensemble, so "
        "the bound rows are the most any ensemble could reach here: generation shared, and the "
        "encoder GEMMs at the sgemm peak or free.",
        what, e.l0, pk, gen_pc, enc_pc, enc_x);
    const char *label[5] = {"one ensemble", "one after another, auto", "one after another, dense",
                            "bound: encoder GEMMs at peak", "bound: encoder GEMMs free"};
    double t[5] = {e.t_ensemble, e.t_auto, e.t_dense, e.t_auto / at_peak, e.t_auto / at_free};
    for (int r = 0; r < 5; r++) {
        double gf = e.flops / t[r] / 1e9;
        printf("%-34s %11.0f %9.1f %8.2f %9.2f %9.1f\n", label[r], e.samples / t[r], gf,
               gf / peak1, e.t_auto / t[r], pk);
        if (sec)
            md_row(&sec->table, "%s|%.0f|%.1f|%.2f|%.2f", label[r], e.samples / t[r], gf,
                   gf / peak1, e.t_auto / t[r]);
    }
    return 0;
}

static int write_markdown(const char *path, const bench_machine *mc, int procs, double peak1,
                          double peakn, const step_result *sr, const mem_result *mr,
                          const sp_bench_ens *ens, const md_doc *doc, double seconds)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "superpose: bench: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    fprintf(f, "# Benchmarks\n\n"
               "Written by `make bench` (`build/superpose bench --markdown BENCHMARKS.md`) "
               "on %s%s%s, in %.0f s. Regenerate with `make bench`; every number below is "
               "from that one run on this machine. Every case runs in its own forked child; "
               "peak MiB is that child's peak resident set (ru_maxrss), which includes the "
               "%.1f MiB of an idle child (process, libraries, OpenBLAS). GFLOP/s* is "
               "dense-equivalent: the 10 B m d FLOPs a dense SAE step spends (five GEMMs: "
               "encoder and decoder forward, dW_d, df and dW_e backward) divided by the "
               "time; x peak is against the 1-thread sgemm peak of the same run (training "
               "is single-threaded, as in `superpose run -j N`); as this machine's sgemm "
               "speed drifts by 10-20%% from second to second, the training-step rows "
               "compare each timed round with the peak measured around it.\n\n",
            mc->date, mc->commit[0] ? ", commit " : "", mc->commit, seconds, mr->base_mib);
    fprintf(f, "## Machine\n\n"
               "- CPU: %s, %d logical cores, AVX2 %s, AVX-512F %s\n"
               "- memory: %.1f GiB\n"
               "- OpenBLAS: %s; kernels %s\n"
               "- compiler: %s\n\n",
            mc->cpu, mc->cores, mc->avx2 ? "yes" : "no", mc->avx512f ? "yes" : "no",
            mc->mem_gib, mc->blas_config, mc->blas_core, mc->compiler);
    double hi = peak1;
    for (size_t r = 0; r < N_RATIOS; r++)
        hi = sr->peak[r] > hi ? sr->peak[r] : hi;
    fprintf(f, "## sgemm peak\n\n"
               "| threads | size | GFLOP/s |\n|:---|---:|---:|\n"
               "| 1 | 1024^3 | %.1f |\n| %d | 2048^3 | %.1f |\n"
               "| 1, highest of the training-step children (around their rounds) | 1024^3 | %.1f "
               "|\n\n",
            peak1, procs, peakn, hi);
    double lo = INFINITY;
    for (size_t r = 0; r < N_RATIOS; r++)
        if (goldilocks[r].ratio >= 8)
            lo = sr->xpeak[r] < lo ? sr->xpeak[r] : lo;
    fprintf(f, "## Targets\n\n"
               "| target | measured | required | |\n|:---|---:|---:|:---|\n"
               "| SAE step, ratio 1, Goldilocks L1 (auto) | %.2f x peak | >= 0.6 x peak | %s |\n"
               "| SAE step, ratios 8-32, Goldilocks L1 (auto, lowest) | %.2f x peak | >= 2 x "
               "peak | %s |\n"
               "| peak memory of one run at ratio 32 | %.2f x counted | <= 1.5 x counted | %s "
               "|\n",
            sr->xpeak[0], met(sr->xpeak[0] >= 0.6), lo, met(lo >= 2), mr->ratio,
            met(mr->ratio <= 1.5));
    if (ens && ens->models > 0) {
        double at_peak, at_free;
        ens_bounds(ens, peak1, &at_peak, &at_free);
        fprintf(f, "| 17-model L1 sweep at ratio 1 as one ensemble, throughput / one after "
                   "another (auto) | %.2f x | >= 3 x | %s |\n"
                   "| the same, / one after another with dense GEMMs | %.2f x | | |\n"
                   "| the most any ensemble could reach here (generation shared; encoder "
                   "GEMMs at the sgemm peak / free; see Ensembles) | %.2f x / %.2f x | | |\n",
                ens->t_auto / ens->t_ensemble, met(ens->t_auto / ens->t_ensemble >= 3),
                ens->t_dense / ens->t_ensemble, at_peak, at_free);
    }
    fprintf(f, "\n");
    sp_run_cfg mcfg;
    mem_cfg(&mcfg);
    fprintf(f, "### Memory of one run at ratio 32\n\n"
               "One `sp_run_train` (as `superpose train` runs it): d = 256, G = 512, batch 256, "
               "relu L1 (coef %g, coef_scale = dict), Adam, m = %zu latents, %ld steps, "
               "evaluation on %ld samples (L0 %.1f, MMCS %.3f after so few steps, %.1f s). "
               "Counted: the bytes the learner and Adam allocate (src/sae.c, src/optim.c; see "
               "sae_count_bytes in src/cli/bench.c).\n\n",
            mcfg.penalty.coef, sp_config_latents(&mcfg), mcfg.steps, mcfg.eval_samples, mr->l0,
            mr->mmcs, mr->wall);
    fprintf(f, "| | MiB |\n|:---|---:|\n"
               "| parameters W_e, b_e, W_d | %.1f |\n| gradients | %.1f |\n"
               "| Adam moments | %.1f |\n| batch buffers (B x m, B x d, AuxK) | %.1f |\n"
               "| **counted** | **%.1f** |\n| per-latent state (not counted) | %.1f |\n"
               "| idle child (process, libraries, OpenBLAS) | %.1f |\n"
               "| training alone, no evaluation: peak | %.1f (%.2f x counted) |\n"
               "| the run, training and evaluation: peak | %.1f (%.2f x counted; %.2f x "
               "above the idle child) |\n\n",
            mib(mr->b.params), mib(mr->b.grads), mib(mr->b.optim), mib(mr->b.batch),
            mr->counted_mib, mib(mr->b.other), mr->base_mib, mr->train_mib,
            mr->train_mib / mr->counted_mib, mr->run_mib, mr->ratio,
            (mr->run_mib - mr->base_mib) / mr->counted_mib);
    for (size_t s = 0; s < doc->n; s++) {
        fprintf(f, "## %s\n\n%s\n\n", doc->sec[s].title, doc->sec[s].text);
        md_write(f, &doc->sec[s].table);
        fputc('\n', f);
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "superpose: bench: cannot write %s\n", path);
        return 1;
    }
    return 0;
}

int sp_cli_bench(int argc, char **argv)
{
    long steps = 200, warmup = -1;
    double coef = 0;
    int only_sparse = 0;
    const char *markdown = NULL;
    static const struct option longopts[] = {{"steps", required_argument, 0, 's'},
                                              {"warmup", required_argument, 0, 'w'},
                                              {"coef", required_argument, 0, 'c'},
                                              {"sparse", no_argument, 0, 'S'},
                                              {"markdown", required_argument, 0, 'm'},
                                              {"help", no_argument, 0, 'h'},
                                              {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:w:c:Sm:h", longopts, NULL)) != -1) {
        if (c == 'w') {
            warmup = strtol(optarg, NULL, 10);
        } else if (c == 'c') {
            coef = strtod(optarg, NULL);
        } else if (c == 'S') {
            only_sparse = 1;
        } else if (c == 'm') {
            markdown = optarg;
        } else if (c == 's') {
            steps = strtol(optarg, NULL, 10);
            if (steps < 1) {
                fprintf(stderr, "superpose: --steps must be >= 1\n");
                return 2;
            }
        } else {
            fprintf(stderr, "usage: superpose bench [--steps N] [--warmup N] [--coef C] "
                            "[--sparse] [--markdown FILE]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    double t_start = sp_now();
    bench_machine mc;
    machine_describe(&mc);
    int procs = openblas_get_num_procs();
    double o[CHILD_OUT], base_mib, pk;
    if (in_child(child_idle, NULL, o, &base_mib))
        return 1;
    sgemm_arg s1 = {1024, 1}, sn = {2048, procs};
    if (in_child(child_sgemm, &s1, o, &pk))
        return 1;
    double peak1 = o[0];
    if (in_child(child_sgemm, &sn, o, &pk))
        return 1;
    double peakn = o[0];
    printf("Machine: %s, %d logical cores, AVX2 %s, AVX-512F %s, %.1f GiB\n", mc.cpu, mc.cores,
           mc.avx2 ? "yes" : "no", mc.avx512f ? "yes" : "no", mc.mem_gib);
    printf("OpenBLAS: %s (kernels %s); %s; %s%s%s\n", mc.blas_config, mc.blas_core, mc.compiler,
           mc.date, mc.commit[0] ? "; commit " : "", mc.commit);
    printf("sgemm peak (OpenBLAS, 1024^3, 1 thread):  %7.1f GFLOP/s\n", peak1);
    printf("sgemm peak (OpenBLAS, 2048^3, %d threads): %7.1f GFLOP/s\n", procs, peakn);
    printf("every case runs in a forked child; peak MiB = its peak resident set, of which an "
           "idle child has %.1f\n", base_mib);
    md_doc *doc = markdown ? calloc(1, sizeof *doc) : NULL;
    if (markdown && !doc) {
        fprintf(stderr, "superpose: bench: out of memory\n");
        return 1;
    }
    step_result sr;
    mem_result mr;
    sp_bench_ens ens = {0};
    int rc = bench_sparse(peak1, procs, steps, warmup, coef, &sr, doc) ||
             bench_memory(base_mib, &mr) ||
             (!only_sparse && (bench_ensemble(peak1, doc, &ens) ||
                               bench_rest(peak1, steps, base_mib, doc)));
    if (rc) {
        free(doc);
        return 1;
    }
    double lo = INFINITY;
    for (size_t r = 0; r < N_RATIOS; r++)
        if (goldilocks[r].ratio >= 8)
            lo = sr.xpeak[r] < lo ? sr.xpeak[r] : lo;
    printf("\nTargets (dense-equivalent throughput of the auto step at the Goldilocks L1, "
           "against the\n1-thread sgemm peak: the median round against the peak measured around it):\n");
    printf("  SAE step, ratio 1:            %5.2f x peak (>= 0.6): %s\n", sr.xpeak[0],
           met(sr.xpeak[0] >= 0.6));
    printf("  SAE step, ratios 8-32 (min):  %5.2f x peak (>= 2):   %s\n", lo, met(lo >= 2));
    printf("  peak memory, run at ratio 32: %5.2f x counted (<= 1.5): %s\n", mr.ratio,
           met(mr.ratio <= 1.5));
    if (ens.models > 0) {
        double at_peak, at_free;
        ens_bounds(&ens, peak1, &at_peak, &at_free);
        printf("  17-model L1 ensemble, ratio 1: %4.2f x one after another (auto; >= 3): %s; "
               "%.2f x with dense GEMMs;\n    the most any ensemble could reach here: %.2f x "
               "(encoder GEMMs at peak), %.2f x (free)\n",
               ens.t_auto / ens.t_ensemble, met(ens.t_auto / ens.t_ensemble >= 3),
               ens.t_dense / ens.t_ensemble, at_peak, at_free);
    }
    printf("\n* dense-equivalent: 10 B m d FLOPs per step (five GEMMs: encoder and decoder\n"
           "  forward, dW_d, df and dW_e backward)\n");
    double seconds = sp_now() - t_start;
    printf("bench took %.0f s\n", seconds);
    if (markdown) {
        rc = write_markdown(markdown, &mc, procs, peak1, peakn, &sr, &mr, &ens, doc, seconds);
        if (!rc)
            printf("wrote %s\n", markdown);
    }
    free(doc);
    return rc;
}
