/* bench.c: `superpose bench` (make bench). Measures, in one run, the
 * machine's sgemm peak through OpenBLAS and the SAE training throughput,
 * so that the fraction of peak is visible:
 *   dense-equivalent GFLOP/s = 10 B m d / t_step: five GEMMs of 2 B m d
 *   FLOPs each (forward: encoder, decoder; backward: dW_d, df, dW_e)
 * Training is single-threaded, as in `superpose run -j N`. The last table
 * times the solvers on a fixed dictionary (OMP, GP, FISTA) against one SAE
 * step of the same shape. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <gsl/gsl_blas.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "superpose/blas.h"
#include "superpose/config.h"
#include "superpose/gen.h"
#include "superpose/sae.h"
#include "superpose/solve.h"

void openblas_set_num_threads(int num_threads);
int openblas_get_num_procs(void);

static double sgemm_gflops(size_t n, int threads)
{
    openblas_set_num_threads(threads);
    gsl_matrix_float *a = gsl_matrix_float_alloc(n, n), *b = gsl_matrix_float_alloc(n, n),
                     *c = gsl_matrix_float_alloc(n, n);
    for (size_t i = 0; i < n * n; i++) {
        a->data[i] = (float)((i * 7919) % 1000) / 1000.0f;
        b->data[i] = (float)((i * 104729) % 1000) / 1000.0f;
    }
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
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

/* Solvers on a fixed dictionary (solve.h): m = 512 random unit atoms in
 * d = 256, batch 256, inputs the sum of L0 distinct atoms with U[0,1)
 * weights plus N(0, 0.01^2) noise; non-negative codes; pursuits with
 * K = L0, FISTA with lambda matched to a mean L0 of L0 on the same batch
 * (defaults of [solve]: 500 iterations, tol 1e-6). step: seconds per dense
 * SAE step at the same shape (ratio 1), for the last column. */
static int bench_solvers(double step)
{
    const size_t m = 512, d = 256, B = 256;
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
    printf("\nSolvers on a fixed dictionary: 512 random unit atoms, d = 256, batch 256, inputs =\n"
           "L0 atoms x U[0,1) + noise 0.01, non-negative codes, 1 thread; pursuits K = L0, FISTA\n"
           "lambda matched to mean L0 (max 500 iterations, tol 1e-6; time of the match in\n"
           "brackets); FVU = |x - aD|^2 / |x|^2; x SAE = time / one SAE step at ratio 1\n");
    printf("%-28s %4s %11s %9s %7s %7s %9s %9s\n", "solver", "L0", "samples/s", "ms/batch",
           "iters", "L0 out", "FVU", "x SAE");
    const size_t l0s[2] = {5, 32};
    for (int li = 0; li < 2; li++) {
        size_t L0 = l0s[li];
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
        const int kinds[3] = {SP_SOLVE_OMP, SP_SOLVE_GP, SP_SOLVE_FISTA};
        for (int ki = 0; ki < 3; ki++) {
            sp_solve_cfg cfg = {.kind = kinds[ki], .nonneg = 1, .k = L0, .max_iter = 500,
                                .tol = 1e-6, .use_gram = -1};
            char label[64], iters[16] = "-";
            snprintf(label, sizeof label, "%s K = %zu", sp_solver_names[kinds[ki]], L0);
            if (kinds[ki] == SP_SOLVE_FISTA) {
                double t0 = sp_now();
                cfg.lambda = sp_solve_match_lambda(S, &cfg, X, (double)L0, A, &err);
                if (!isfinite(cfg.lambda)) {
                    fprintf(stderr, "superpose: bench: %s\n", err.msg);
                    return 1;
                }
                snprintf(label, sizeof label, "fista lambda %.3g [%.1fs]", cfg.lambda,
                         sp_now() - t0);
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
            double per = t / (double)reps;
            size_t nnz = 0;
            for (size_t k = 0; k < B * m; k++)
                nnz += A->data[k] != 0;
            double fvu = 2 * sp_solve_objective(S, 0, X, A) / x2;
            if (kinds[ki] == SP_SOLVE_FISTA)
                snprintf(iters, sizeof iters, "%d", st.iters);
            printf("%-28s %4zu %11.0f %9.3f %7s %7.2f %9.2e %9.2f\n", label, L0, (double)B / per,
                   1e3 * per, iters, (double)nnz / (double)B, fvu, per / step);
        }
    }
    sp_solver_free(S);
    gsl_matrix_float_free(A);
    gsl_matrix_float_free(X);
    gsl_matrix_float_free(D);
    gsl_rng_free(rng);
    return 0;
}

/* Sparse against dense kernels of the SAE step (model.sparse), d = 256,
 * batch 256, 1 thread. First the crossover: one loss_and_grad of topk
 * (density = k / m exactly) with each kernel. Then the training step
 * (Adam included) of relu L1 on the Sharkey generator after `warmup`
 * steps of training in auto mode, timed on 8 pre-generated batches
 * (generation excluded), dense against auto. */
static int bench_sparse(double peak1, long steps, long warmup, double coef)
{
    const size_t d = 256, B = 256;
    printf("\nSparse vs dense kernels, crossover: topk loss_and_grad (no optimizer), d = 256, "
           "batch 256,\n1 thread; density = k / m; auto takes sparse below %.3g\n",
           sp_sae_sparse_threshold);
    printf("%8s %8s %11s %11s %9s\n", "latents", "density", "dense ms", "sparse ms", "speedup");
    const size_t ms[3] = {512, 2048, 8192};
    const double dens[7] = {0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4};
    for (size_t mi = 0; mi < 3; mi++)
        for (size_t di = 0; di < 7; di++) {
            sp_run_cfg cfg;
            sp_config_defaults(&cfg);
            snprintf(cfg.model.arch, sizeof cfg.model.arch, "topk");
            snprintf(cfg.penalty.name, sizeof cfg.penalty.name, "none");
            cfg.model.aux_coef = 0;
            size_t m = ms[mi];
            cfg.model.k = (int)(dens[di] * (double)m + 0.5);
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
            double per[2];
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
                per[mode] = t / (double)reps;
            }
            printf("%8zu %8.3f %11.3f %11.3f %9.2f\n", m, (double)cfg.model.k / (double)m,
                   1e3 * per[0], 1e3 * per[1], per[0] / per[1]);
            gsl_matrix_float_free(x);
            sp_learner_free(L);
            gsl_rng_free(rng);
        }

    printf("\nSAE training step, sparse vs dense: Sharkey generator d = 256, G = 512, batch 256, "
           "relu L1\n(coef %g), Adam, 1 thread, after %ld training steps; generation excluded; "
           "L0 = mean active\nlatents per sample in the timed steps; GFLOP/s* = 10 B m d / t\n",
           coef, warmup);
    printf("%6s %8s %7s %9s | %11s %9s %8s | %11s %9s %8s %7s | %8s\n", "ratio", "latents", "L0",
           "density", "dense sa/s", "GFLOP/s*", "x peak1", "auto sa/s", "GFLOP/s*", "x peak1",
           "sparse", "speedup");
    const double ratios[] = {1, 4, 8, 16, 32};
    for (size_t r = 0; r < 5; r++) {
        sp_run_cfg cfg;
        sp_config_defaults(&cfg);
        cfg.model.ratio = ratios[r];
        cfg.penalty.coef = coef;
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
        for (long w = 0; w < warmup; w++) {
            sp_gen_batch(g, rng, B, NULL, x[0]);
            sp_train_step(L, o, x[0], NULL);
        }
        for (int q = 0; q < 8; q++)
            sp_gen_batch(g, rng, B, NULL, x[q]);
        long n = steps / (long)(m / 512 > 0 ? m / 512 : 1);
        n = n < 16 ? 16 : n;
        double per[2], l0 = 0;
        long n_sparse = 0;
        for (int mode = 0; mode < 2; mode++) {
            sp_sae_set_sparse(L, mode ? SP_SPARSE_AUTO : SP_SPARSE_DENSE);
            sp_train_step(L, o, x[0], NULL);
            double t0 = sp_now();
            for (long st = 0; st < n; st++) {
                sp_loss ls;
                sp_train_step(L, o, x[st % 8], &ls);
                if (mode) {
                    l0 += ls.l0;
                    n_sparse += sp_sae_last_sparse(L) == 1;
                }
            }
            per[mode] = (sp_now() - t0) / (double)n;
        }
        l0 /= (double)n;
        double gf[2];
        for (int mode = 0; mode < 2; mode++)
            gf[mode] = 10.0 * (double)B * (double)m * (double)d / per[mode] / 1e9;
        printf("%6g %8zu %7.1f %9.4f | %11.0f %9.1f %8.2f | %11.0f %9.1f %8.2f %6.0f%% | %8.2f\n",
               ratios[r], m, l0, l0 / (double)m, (double)B / per[0], gf[0], gf[0] / peak1,
               (double)B / per[1], gf[1], gf[1] / peak1, 100.0 * (double)n_sparse / (double)n,
               per[0] / per[1]);
        for (int q = 0; q < 8; q++)
            gsl_matrix_float_free(x[q]);
        sp_optim_free(o);
        sp_learner_free(L);
        sp_gen_free(g);
        gsl_rng_free(rng);
    }
    return 0;
}

int sp_cli_bench(int argc, char **argv)
{
    long steps = 200, warmup = 300;
    double coef = 0.1;
    int only_sparse = 0;
    static const struct option longopts[] = {{"steps", required_argument, 0, 's'},
                                              {"warmup", required_argument, 0, 'w'},
                                              {"coef", required_argument, 0, 'c'},
                                              {"sparse", no_argument, 0, 'S'},
                                              {"help", no_argument, 0, 'h'},
                                              {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:w:c:Sh", longopts, NULL)) != -1) {
        if (c == 'w') {
            warmup = strtol(optarg, NULL, 10);
        } else if (c == 'c') {
            coef = strtod(optarg, NULL);
        } else if (c == 'S') {
            only_sparse = 1;
        } else if (c == 's') {
            steps = strtol(optarg, NULL, 10);
            if (steps < 1) {
                fprintf(stderr, "superpose: --steps must be >= 1\n");
                return 2;
            }
        } else {
            fprintf(stderr, "usage: superpose bench [--steps N]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    int procs = openblas_get_num_procs();
    double peak1 = sgemm_gflops(1024, 1);
    double peakn = sgemm_gflops(2048, procs);
    printf("OpenBLAS kernels: %s\n", sp_blas_core());
    printf("sgemm peak (OpenBLAS, 1024^3, 1 thread):  %7.1f GFLOP/s\n", peak1);
    printf("sgemm peak (OpenBLAS, 2048^3, %d threads): %7.1f GFLOP/s\n", procs, peakn);
    openblas_set_num_threads(1);
    if (bench_sparse(peak1, steps, warmup, coef))
        return 1;
    if (only_sparse)
        return 0;

    printf("\nSAE training step, Sharkey generator d = 256, G = 512, batch 256, L1, Adam, "
           "1 thread\n");
    printf("%6s %8s %11s %11s %11s %9s %9s\n", "ratio", "latents", "samples/s", "steps/s",
           "GFLOP/s*", "x peak1", "gen %");
    const double ratios[] = {1, 4, 16};
    double step_ratio1 = NAN; /* seconds per SAE step at ratio 1, generation excluded */
    for (size_t r = 0; r < 3; r++) {
        sp_run_cfg cfg;
        sp_config_defaults(&cfg);
        cfg.model.ratio = ratios[r];
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
        double tgen = 0, t0 = sp_now();
        for (long s = 0; s < steps; s++) {
            double tg = sp_now();
            sp_gen_batch(g, rng, B, NULL, x);
            tgen += sp_now() - tg;
            sp_train_step(L, o, x, NULL);
        }
        double t = sp_now() - t0;
        if (r == 0)
            step_ratio1 = (t - tgen) / (double)steps;
        double sps = (double)steps / t;
        double gf = 10.0 * (double)B * (double)m * (double)d * sps / 1e9;
        printf("%6g %8zu %11.0f %11.1f %11.1f %9.2f %9.1f\n", ratios[r], m, sps * (double)B, sps,
               gf, gf / peak1, 100.0 * tgen / t);
        gsl_matrix_float_free(x);
        sp_optim_free(o);
        sp_learner_free(L);
        sp_gen_free(g);
        gsl_rng_free(rng);
    }
    printf("\nLearners, d = 256, G = 512, batch 256, 1 thread, one fixed batch (generation "
           "excluded);\nGFLOP/s* counts the 10 B m d flops of a dense SAE step, whatever the "
           "learner does\n");
    printf("%-36s %8s %11s %9s %11s %9s %9s\n", "learner", "latents", "samples/s", "ms/step",
           "GFLOP/s*", "x peak1", "x relu");
    struct {
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
    double relu1 = NAN;
    for (size_t li = 0; li < sizeof learners / sizeof learners[0]; li++) {
        sp_run_cfg cfg;
        sp_config_defaults(&cfg);
        cfg.penalty.coef = 0.1;
        cfg.penalty.per_latent = 1;
        sp_err err;
        for (int q = 0; q < 6 && learners[li].kv[q][0]; q++) {
            const sp_opt *op = sp_config_find(learners[li].kv[q][0]);
            if (!op || sp_config_set(&cfg, op, learners[li].kv[q][1], &err) != 0) {
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
            fprintf(stderr, "superpose: bench: %s: %s\n", learners[li].label, err.msg);
            return 1;
        }
        sp_gen_batch(g, rng, B, NULL, x);
        for (int w = 0; w < 10; w++)
            sp_train_step(L, o, x, NULL);
        long n = steps / (long)(m / 512 > 0 ? m / 512 : 1);
        n = n < 20 ? 20 : n;
        double t0 = sp_now();
        for (long st = 0; st < n; st++)
            sp_train_step(L, o, x, NULL);
        double t = (sp_now() - t0) / (double)n;
        if (li == 0)
            relu1 = t * 512.0 / (double)m;
        double gf = 10.0 * (double)B * (double)m * (double)d / t / 1e9;
        printf("%-36s %8zu %11.0f %9.3f %11.1f %9.2f %9.2f\n", learners[li].label, m,
               (double)B / t, 1e3 * t, gf, gf / peak1, t / (relu1 * (double)m / 512.0));
        gsl_matrix_float_free(x);
        sp_optim_free(o);
        sp_learner_free(L);
        sp_gen_free(g);
        gsl_rng_free(rng);
    }

    printf("\nGenerators, d = 256, G = 512, batch 256, 1 thread (cost relative to one SAE "
           "step at ratio 1,\ngeneration excluded: %.3f ms)\n", 1e3 * step_ratio1);
    printf("%-34s %11s %11s %9s\n", "generator", "samples/s", "ms/batch", "% step");
    struct {
        const char *label;
        const char *kv[4][2];
    } gens[] = {
        {"sharkey, uncorrelated", {{"data.correlation", "none"}}},
        {"sharkey, copula (full rank)", {{"data.correlation", "copula"}}},
        {"sharkey, low-rank copula (rank 8)",
         {{"data.correlation", "lowrank"}, {"data.rank", "8"}}},
        {"features, zipf, k = 5", {{"data.generator", "features"}, {"data.firing", "zipf"}}},
        {"sharkey + noise 0.05", {{"data.noise", "0.05"}}},
    };
    for (size_t k = 0; k < sizeof gens / sizeof gens[0]; k++) {
        sp_run_cfg cfg;
        sp_config_defaults(&cfg);
        sp_err err;
        for (int j = 0; j < 4 && gens[k].kv[j][0]; j++)
            sp_config_set(&cfg, sp_config_find(gens[k].kv[j][0]), gens[k].kv[j][1], &err);
        size_t B = 256;
        gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
        sp_gen *g = sp_gen_alloc(&cfg.data, B, rng, &err);
        gsl_matrix_float *x = gsl_matrix_float_alloc(B, 256);
        if (!g || !x) {
            fprintf(stderr, "superpose: bench: %s\n", err.msg);
            return 1;
        }
        long reps = 4 * steps;
        for (int w = 0; w < 10; w++)
            sp_gen_batch(g, rng, B, NULL, x);
        double t0 = sp_now();
        for (long s = 0; s < reps; s++)
            sp_gen_batch(g, rng, B, NULL, x);
        double per = (sp_now() - t0) / (double)reps;
        printf("%-34s %11.0f %11.3f %9.1f\n", gens[k].label, (double)B / per, 1e3 * per,
               100.0 * per / step_ratio1);
        gsl_matrix_float_free(x);
        sp_gen_free(g);
        gsl_rng_free(rng);
    }
    if (bench_solvers(step_ratio1))
        return 1;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("\n* dense-equivalent: 10 B m d FLOPs per step (five GEMMs: encoder and decoder\n"
           "  forward, dW_d, df and dW_e backward); generator time included in the step.\n"
           "peak resident memory: %.1f MiB\n",
           (double)ru.ru_maxrss / 1024.0);
    return 0;
}
