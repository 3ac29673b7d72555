/* superpose: the command-line front end. All science lives in the library;
 * this file parses arguments, prints, and picks exit codes:
 * 0 success, 1 a run or I/O failed, 2 bad input (usage, experiment file,
 * option value), 130 interrupted (finished runs are kept). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "superpose/blas.h"
#include "superpose/config.h"
#include "superpose/experiment.h"
#include "superpose/runner.h"
#include "superpose/store.h"

int sp_cli_bench(int argc, char **argv);
int sp_cli_encode(int argc, char **argv);
int sp_cli_eval(int argc, char **argv);

static const char *usage_main =
    "superpose: toy-model experiments on superposition and feature recovery\n"
    "\n"
    "usage: superpose <command> [options]\n"
    "\n"
    "commands:\n"
    "  run FILE.ini      run an experiment's sweep (resumable), then draw its figures\n"
    "  train key=value   train and score one SAE with option overrides\n"
    "  gen FILE.ini      write an experiment's data (inputs, true codes, truth) as .npy\n"
    "  results FILE.db   print the runs of a results store as a table\n"
    "  plot FILE.ini     re-draw an experiment's figures from its store\n"
    "  encode            sparse codes of .npy inputs on a .npy dictionary (MP, OMP, GP, FISTA)\n"
    "  eval              score a .npy dictionary (and codes) against a .npy truth\n"
    "  bench             measure training throughput against this machine's sgemm peak\n"
    "  help [COMMAND]    this text, a command's options, or `help options`\n";

static const char *usage_run =
    "usage: superpose run FILE.ini [options]\n"
    "\n"
    "Runs every run of the experiment's sweep that its store does not hold yet,\n"
    "then renders its figures. Kill it at any time; rerun to resume.\n"
    "\n"
    "  -p, --preset NAME   preset of the file to apply (default: the file's\n"
    "                      default_preset; 'none' for the bare file)\n"
    "  -j, --jobs N        worker processes (default: 1)\n"
    "  -o, --out DIR       output folder (default: results/<experiment name>)\n"
    "      --no-plot       do not render figures at the end\n"
    "      --solo          train every model alone (by default, an L1 or k sweep\n"
    "                      at one width trains as ensembles: one data stream and\n"
    "                      one encoder GEMM for several models; same numbers)\n"
    "      --no-estimate   skip the pilot runs that time each shape of the sweep\n"
    "                      and print its estimated total before it starts\n"
    "      --estimate      run the pilots even for a sweep of a few minutes\n"
    "      --estimate-only run the pilots, print the estimate (and, with --log,\n"
    "                      each job's), and stop without running the sweep\n"
    "      --log           plain log lines even on a terminal\n";

static const char *usage_train =
    "usage: superpose train [options] [section.key=value ...]\n"
    "\n"
    "Trains one learner on fresh generator samples and prints its metrics\n"
    "(with solve.* set, scored with other codes on its decoder: see [solve]).\n"
    "Keys are those of `superpose help options` (section.key, or the bare key\n"
    "when it is unique), e.g.  superpose train data.d=64 data.n=128 l1=0.1 steps=2000\n"
    "\n"
    "  -o, --out DIR       save artifacts (.npy) and the run in DIR/results.db\n"
    "                      (default: nothing is saved)\n"
    "  -q, --quiet         no progress line\n";

static const char *usage_gen =
    "usage: superpose gen FILE.ini [options] [section.key=value ...]\n"
    "\n"
    "Writes the data of one run of the experiment as NumPy arrays, so any tool\n"
    "can use them: truth.npy (n x d unit rows), X.npy (samples x d inputs),\n"
    "codes.npy (samples x n true codes, X = codes @ truth + noise), rates.npy\n"
    "(expected firing rates), W.npy and b.npy for the toy model (tms). With\n"
    "data.dataset = N: X_train/codes_train and X_eval/codes_eval instead.\n"
    "The samples are those the run trains on (same seeds).\n"
    "\n"
    "  -p, --preset NAME   preset of the file to apply (as for `run`)\n"
    "  -r, --run I         which run of the sweep (default: 0, the first)\n"
    "  -n, --samples N     samples to write when streaming (default: 10000)\n"
    "  -o, --out DIR       output folder (default: results/<experiment>/data)\n";

static const char *usage_results =
    "usage: superpose results FILE.db [options]\n"
    "\n"
    "Prints one row per stored run: key, status, the options that differ\n"
    "between runs, and every metric.\n"
    "\n"
    "      --csv           comma-separated values instead of a table\n";

static const char *usage_plot =
    "usage: superpose plot FILE.ini [options]\n"
    "\n"
    "Re-renders the experiment's figures from its results store.\n"
    "\n"
    "  -p, --preset NAME   as for `superpose run`\n"
    "  -o, --out DIR       output folder (default: results/<experiment name>)\n";

static const char *usage_bench =
    "usage: superpose bench [options]\n"
    "\n"
    "Measures this machine's sgemm peak (OpenBLAS, 1 and all threads) and the\n"
    "SAE training throughput at d = 256, G = 512, batch 256, single-threaded as\n"
    "in `run -j N`, with the fraction of peak and each case's peak memory (every\n"
    "case runs in a forked child); the sparse-vs-dense step at the Goldilocks L1\n"
    "of ratios 1-32, and the memory of one run at ratio 32.\n"
    "\n"
    "  -s, --steps N       timed steps per case at ratio 1 (default: 200)\n"
    "  -w, --warmup N      training steps before timing the sparse-vs-dense step\n"
    "                      (default: per ratio, until L0 has settled)\n"
    "  -c, --coef C        L1 coefficient of that step (default: per ratio, the\n"
    "                      Goldilocks value)\n"
    "  -S, --sparse        only the sparse-vs-dense tables and the memory run\n"
    "  -m, --markdown FILE also write the results as Markdown with the machine's\n"
    "                      description (make bench: BENCHMARKS.md)\n";

static void print_options(FILE *out)
{
    size_t n;
    const sp_opt *o = sp_config_options(&n);
    const char *sec = "";
    for (size_t i = 0; i < n; i++) {
        if (strcmp(sec, o[i].section)) {
            sec = o[i].section;
            fprintf(out, "%s[%s]\n", i ? "\n" : "", sec);
        }
        char allowed[120];
        if (o[i].choices) {
            snprintf(allowed, sizeof allowed, "%s", o[i].choices);
        } else if (o[i].type == SP_OPT_BOOL) {
            snprintf(allowed, sizeof allowed, "true|false");
        } else if (o[i].type == SP_OPT_TEXT) {
            snprintf(allowed, sizeof allowed, "text");
        } else if (o[i].type == SP_OPT_REAL && o[i].min <= -1e299) {
            snprintf(allowed, sizeof allowed, "any number");
        } else if (o[i].type == SP_OPT_REAL && o[i].max >= 1e299) {
            snprintf(allowed, sizeof allowed, ">= %g", o[i].min);
        } else if (o[i].type != SP_OPT_REAL) { /* %g would print 1048576 as 1.04858e+06 */
            snprintf(allowed, sizeof allowed, "%.0f..%.0f", o[i].min, o[i].max);
        } else {
            snprintf(allowed, sizeof allowed, "%g..%g", o[i].min, o[i].max);
        }
        char name[64];
        snprintf(name, sizeof name, "%s.%s", o[i].section, o[i].key);
        fprintf(out, "  %-20s = %-8s  %s (%s)\n", name, o[i].def[0] ? o[i].def : "\"\"",
                o[i].help, allowed);
    }
}

static int cmd_help(int argc, char **argv)
{
    const char *c = argc > 1 ? argv[1] : NULL;
    if (!c)
        fputs(usage_main, stdout);
    else if (!strcmp(c, "run"))
        fputs(usage_run, stdout);
    else if (!strcmp(c, "train")) {
        fputs(usage_train, stdout);
        printf("\noptions (key = default  meaning (allowed)):\n");
        print_options(stdout);
    } else if (!strcmp(c, "results"))
        fputs(usage_results, stdout);
    else if (!strcmp(c, "plot"))
        fputs(usage_plot, stdout);
    else if (!strcmp(c, "bench"))
        fputs(usage_bench, stdout);
    else if (!strcmp(c, "gen"))
        fputs(usage_gen, stdout);
    else if (!strcmp(c, "options"))
        print_options(stdout);
    else if (!strcmp(c, "encode"))
        return sp_cli_encode(2, (char *[]){"encode", "--help", NULL});
    else if (!strcmp(c, "eval"))
        return sp_cli_eval(2, (char *[]){"eval", "--help", NULL});
    else {
        fprintf(stderr, "superpose: no help for '%s' (commands: run, train, results, plot, "
                        "bench, gen, encode, options)\n",
                c);
        return 2;
    }
    return 0;
}

static int parse_jobs(const char *s, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 1 || v > 256)
        return -1;
    *out = (int)v;
    return 0;
}

static int cmd_run(int argc, char **argv, int plot_only)
{
    static const struct option longopts[] = {
        {"preset", required_argument, 0, 'p'}, {"jobs", required_argument, 0, 'j'},
        {"out", required_argument, 0, 'o'},    {"no-plot", no_argument, 0, 'P'},
        {"log", no_argument, 0, 'L'},          {"help", no_argument, 0, 'h'},
        {"solo", no_argument, 0, 'S'},         {"no-estimate", no_argument, 0, 'E'},
        {"estimate", no_argument, 0, 'e'},     {"estimate-only", no_argument, 0, 'O'},
        {0, 0, 0, 0}};
    const char *preset = NULL, *out = NULL;
    int jobs = 1, plot = 1, log = 0, solo = 0, estimate = 1, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "p:j:o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'p': preset = optarg; break;
        case 'j':
            if (parse_jobs(optarg, &jobs) != 0) {
                fprintf(stderr, "superpose: -j '%s': must be an integer in [1, 256]\n", optarg);
                return 2;
            }
            break;
        case 'o': out = optarg; break;
        case 'P': plot = 0; break;
        case 'L': log = 1; break;
        case 'S': solo = 1; break;
        case 'E': estimate = 0; break;
        case 'e': estimate = 2; break;
        case 'O': estimate = 3, plot = 0; break;
        case 'h': fputs(plot_only ? usage_plot : usage_run, stdout); return 0;
        default: fputs(plot_only ? usage_plot : usage_run, stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "superpose: expected one experiment file\n%s",
                plot_only ? usage_plot : usage_run);
        return 2;
    }
    sp_err err;
    sp_experiment *ex = sp_experiment_load(argv[optind], preset, &err);
    if (!ex) {
        fprintf(stderr, "superpose: %s\n", err.msg);
        return 2;
    }
    int rc;
    if (plot_only) {
        rc = sp_sweep_plot(ex, out, &err);
    } else {
        sp_sweep_opts o = {.jobs = jobs, .tty = !log && isatty(STDOUT_FILENO), .out_dir = out,
                           .plot = plot, .solo = solo, .estimate = estimate};
        rc = sp_sweep_run(ex, &o, &err);
    }
    if (rc == 130) {
        sp_experiment_free(ex);
        return 130;
    }
    if (rc != 0)
        fprintf(stderr, "superpose: %s\n", err.msg);
    sp_experiment_free(ex);
    return rc == 0 ? 0 : 1;
}

static int cmd_gen(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"preset", required_argument, 0, 'p'}, {"run", required_argument, 0, 'r'},
        {"samples", required_argument, 0, 'n'}, {"out", required_argument, 0, 'o'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    const char *preset = NULL, *out = NULL;
    long run = 0, samples = 10000;
    int c;
    char *end;
    optind = 1;
    while ((c = getopt_long(argc, argv, "p:r:n:o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'p': preset = optarg; break;
        case 'r':
            run = strtol(optarg, &end, 10);
            if (*end || run < 0) {
                fprintf(stderr, "superpose: --run '%s': must be an integer >= 0\n", optarg);
                return 2;
            }
            break;
        case 'n':
            samples = strtol(optarg, &end, 10);
            if (*end || samples < 1 || samples > 100000000) {
                fprintf(stderr, "superpose: --samples '%s': must be an integer in [1, 1e8]\n",
                        optarg);
                return 2;
            }
            break;
        case 'o': out = optarg; break;
        case 'h': fputs(usage_gen, stdout); return 0;
        default: fputs(usage_gen, stderr); return 2;
        }
    }
    if (optind >= argc || strchr(argv[optind], '=')) {
        fprintf(stderr, "superpose: expected an experiment file\n%s", usage_gen);
        return 2;
    }
    sp_err err;
    sp_experiment *ex = sp_experiment_load(argv[optind], preset, &err);
    if (!ex) {
        fprintf(stderr, "superpose: %s\n", err.msg);
        return 2;
    }
    size_t total = sp_experiment_n_runs(ex);
    sp_run_cfg cfg;
    int rc = 2;
    if ((size_t)run >= total) {
        fprintf(stderr, "superpose: --run %ld: the sweep has %zu runs (0..%zu)\n", run, total,
                total - 1);
        goto done;
    }
    if (sp_experiment_run_cfg(ex, (size_t)run, &cfg, NULL, &err) != 0)
        goto bad;
    for (int i = optind + 1; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        char name[96];
        if (!eq) {
            fprintf(stderr, "superpose: '%s': expected section.key=value\n", argv[i]);
            goto done;
        }
        snprintf(name, sizeof name, "%.*s", (int)(eq - argv[i]), argv[i]);
        const sp_opt *o = sp_config_lookup(name, &err);
        if (!o || sp_config_set(&cfg, o, eq + 1, &err) != 0)
            goto bad;
    }
    if (sp_config_check(&cfg, &err) != 0)
        goto bad;
    char dir[1100];
    if (out)
        snprintf(dir, sizeof dir, "%s", out);
    else
        snprintf(dir, sizeof dir, "results/%s/data", ex->name);
    double t0 = sp_now();
    if (sp_run_generate(&cfg, dir, samples, &err) != 0) {
        fprintf(stderr, "superpose: %s\n", err.msg);
        rc = 1;
        goto done;
    }
    printf("wrote %s/{truth,X,codes}.npy: %s generator, d=%d, n=%zu truth rows, %ld samples "
           "(%.1fs)\n",
           dir, cfg.data.generator, cfg.data.d, sp_gen_truth_rows(&cfg.data),
           cfg.data.dataset > 0 ? cfg.data.dataset : samples, sp_now() - t0);
    rc = 0;
    goto done;
bad:
    fprintf(stderr, "superpose: %s\n", err.msg);
done:
    sp_experiment_free(ex);
    return rc;
}

static void train_progress(void *user, long step, long steps, double loss)
{
    double t0 = *(double *)user, el = sp_now() - t0;
    char eta[32];
    sp_fmt_duration(el / (double)step * (double)(steps - step), eta, sizeof eta);
    fprintf(stderr, "\r\033[Kstep %ld/%ld  loss %.6g  ETA %s", step, steps, loss, eta);
}

static int cmd_train(int argc, char **argv)
{
    static const struct option longopts[] = {{"out", required_argument, 0, 'o'},
                                              {"quiet", no_argument, 0, 'q'},
                                              {"help", no_argument, 0, 'h'},
                                              {0, 0, 0, 0}};
    const char *out = NULL;
    int quiet = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': return cmd_help(2, (char *[]){"help", "train"});
        default: fputs(usage_train, stderr); return 2;
        }
    }
    sp_run_cfg cfg;
    sp_config_defaults(&cfg);
    sp_err err;
    for (int i = optind; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) {
            fprintf(stderr, "superpose: '%s': expected key=value (see `superpose help train`)\n",
                    argv[i]);
            return 2;
        }
        char name[96];
        snprintf(name, sizeof name, "%.*s", (int)(eq - argv[i]), argv[i]);
        const sp_opt *o = sp_config_lookup(name, &err);
        if (!o) {
            fprintf(stderr, "superpose: %s\n", err.msg);
            return 2;
        }
        if (sp_config_set(&cfg, o, eq + 1, &err) != 0) {
            fprintf(stderr, "superpose: %s\n", err.msg);
            return 2;
        }
    }
    if (sp_config_check(&cfg, &err) != 0) {
        fprintf(stderr, "superpose: %s\n", err.msg);
        return 2;
    }
    char key[17], art[1200] = "", db[1100] = "";
    sp_config_key(&cfg, key);
    if (out) {
        if (sp_mkdirs(out, &err) != 0 || access(out, W_OK) != 0) {
            fprintf(stderr, "superpose: output folder '%s' is not writable%s%s\n", out,
                    err.msg[0] ? ": " : "", err.msg);
            return 1;
        }
        snprintf(art, sizeof art, "%s/artifacts/%s", out, key);
        snprintf(db, sizeof db, "%s/results.db", out);
    }
    /* BLAS threads only pay for large models; small GEMMs lose time to them */
    double gemm = (double)sp_config_latents(&cfg) * cfg.data.d * cfg.batch;
    if (gemm < SP_THREADED_GEMM)
        sp_blas_set_threads(1);
    printf("run %s: d=%d n=%d arch=%s latents=%zu %s=%g steps=%ld batch=%d\n", key, cfg.data.d,
           cfg.data.n, cfg.model.arch, sp_config_latents(&cfg), cfg.penalty.name, cfg.penalty.coef, cfg.steps, cfg.batch);
    fflush(stdout);
    double t0 = sp_now();
    sp_run_result res;
    int show = !quiet && isatty(STDERR_FILENO);
    if (sp_run_train(&cfg, out ? art : NULL, show ? train_progress : NULL, &t0, &res, &err) != 0) {
        if (show)
            fprintf(stderr, "\r\033[K");
        fprintf(stderr, "superpose: %s\n", err.msg);
        return 1;
    }
    if (show)
        fprintf(stderr, "\r\033[K");
    printf("status %s\n", res.diverged ? "diverged" : "ok");
    for (size_t i = 0; i < sp_n_run_metrics; i++)
        printf("%-12s %.6g\n", sp_run_metric_names[i], res.metric[i]);
    if (res.n_curve > 0) {
        printf("\n%10s", "step");
        for (int q = 0; q < SP_N_CURVES; q++)
            printf(" %12s", sp_curve_names[q]);
        printf("\n");
        for (size_t k = 0; k < res.n_curve; k++) {
            printf("%10ld", res.curve_step[k]);
            for (int q = 0; q < SP_N_CURVES; q++)
                printf(" %12.6g", res.curve[q][k]);
            printf("\n");
        }
    }
    int rc = 0;
    if (out) {
        if (sp_run_store(db, "train", &cfg, &res, &err) != 0) {
            fprintf(stderr, "superpose: %s\n", err.msg);
            rc = 1;
        } else {
            printf("saved %s and %s\n", art, db);
        }
    }
    sp_run_result_free(&res);
    return rc;
}

/* A CSV field: quoted (RFC 4180) when it holds a comma, a quote or a line break. */
static void put_csv_field(const char *v)
{
    if (!strpbrk(v, ",\"\n\r")) {
        fputs(v, stdout);
        return;
    }
    putchar('"');
    for (; *v; v++) {
        if (*v == '"')
            putchar('"');
        putchar(*v);
    }
    putchar('"');
}

static int cmd_results(int argc, char **argv)
{
    int csv = 0;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--csv"))
            csv = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage_results, stdout);
            return 0;
        } else if (argv[i][0] == '-' || path) {
            fputs(usage_results, stderr);
            return 2;
        } else
            path = argv[i];
    }
    if (!path) {
        fputs(usage_results, stderr);
        return 2;
    }
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "superpose: cannot read results store '%s'\n", path);
        return 1;
    }
    sp_err err;
    sp_store *st = sp_store_open(path, &err);
    if (!st) {
        fprintf(stderr, "superpose: %s\n", err.msg);
        return 1;
    }
    sp_run_list runs = {0};
    if (sp_store_list(st, &runs, &err) != 0) {
        fprintf(stderr, "superpose: %s\n", err.msg);
        sp_store_close(st);
        return 1;
    }
    sp_store_close(st);
    /* columns: parameters whose value differs between runs */
    size_t np = runs.n ? runs.runs[0].n_params : 0;
    int *vary = calloc(np + 1, sizeof *vary);
    for (size_t p = 0; p < np; p++)
        for (size_t r = 1; r < runs.n; r++) {
            const char *v = sp_run_param(&runs.runs[r], runs.runs[0].params[p].name);
            if (!v || strcmp(v, runs.runs[0].params[p].value)) {
                vary[p] = 1;
                break;
            }
        }
    const char *sep = csv ? "," : " ";
    printf(csv ? "%s%s%s" : "%-16s%s%-8s", "key", sep, "status");
    for (size_t p = 0; p < np; p++)
        if (vary[p])
            printf(csv ? "%s%s" : "%s%13s", sep, runs.runs[0].params[p].name);
    for (size_t m = 0; m < sp_n_run_metrics; m++)
        printf(csv ? "%s%s" : "%s%10s", sep, sp_run_metric_names[m]);
    printf("\n");
    for (size_t r = 0; r < runs.n; r++) {
        const sp_run_record *rr = &runs.runs[r];
        printf(csv ? "%s%s%s" : "%-16s%s%-8s", rr->key, sep, rr->status);
        for (size_t p = 0; p < np; p++)
            if (vary[p]) {
                const char *v = sp_run_param(rr, runs.runs[0].params[p].name);
                char shortv[32];
                char *end;
                double d = v ? strtod(v, &end) : NAN;
                if (!csv && v && *end == '\0' && strchr(v, '.'))
                    snprintf(shortv, sizeof shortv, "%.4g", d);
                else
                    snprintf(shortv, sizeof shortv, "%s", v ? v : "-");
                if (csv) {
                    fputs(sep, stdout);
                    put_csv_field(v ? v : shortv);
                } else {
                    printf("%s%13s", sep, shortv);
                }
            }
        for (size_t m = 0; m < sp_n_run_metrics; m++)
            printf(csv ? "%s%.9g" : "%s%10.4g", sep, sp_run_metric(rr, sp_run_metric_names[m]));
        printf("\n");
    }
    if (!csv)
        printf("(%zu runs)\n", runs.n);
    free(vary);
    sp_run_list_free(&runs);
    return 0;
}

int main(int argc, char **argv)
{
    sp_blas_init(argv);
    if (argc < 2) {
        fputs(usage_main, stderr);
        return 2;
    }
    const char *c = argv[1];
    if (!strcmp(c, "help") || !strcmp(c, "-h") || !strcmp(c, "--help"))
        return cmd_help(argc - 1, argv + 1);
    if (!strcmp(c, "run"))
        return cmd_run(argc - 1, argv + 1, 0);
    if (!strcmp(c, "plot"))
        return cmd_run(argc - 1, argv + 1, 1);
    if (!strcmp(c, "train"))
        return cmd_train(argc - 1, argv + 1);
    if (!strcmp(c, "gen"))
        return cmd_gen(argc - 1, argv + 1);
    if (!strcmp(c, "results"))
        return cmd_results(argc - 1, argv + 1);
    if (!strcmp(c, "bench"))
        return sp_cli_bench(argc - 1, argv + 1);
    if (!strcmp(c, "encode"))
        return sp_cli_encode(argc - 1, argv + 1);
    if (!strcmp(c, "eval"))
        return sp_cli_eval(argc - 1, argv + 1);
    fprintf(stderr, "superpose: unknown command '%s'\n\n%s", c, usage_main);
    return 2;
}
