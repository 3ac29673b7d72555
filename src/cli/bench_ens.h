/* bench_ens.h: the ensemble case of `superpose bench` (bench_ens.c). */
#ifndef SUPERPOSE_CLI_BENCH_ENS_H
#define SUPERPOSE_CLI_BENCH_ENS_H

typedef struct {
    int models;         /* 17 */
    double samples;     /* samples trained in each timed phase, over all models */
    double flops;       /* dense-equivalent FLOPs of each phase (10 B m d per model-step) */
    double l0;          /* mean L0 per sample over the models, ensemble phase */
    double t_ensemble;  /* seconds: as one ensemble */
    double t_auto;      /* one after another, model.sparse = auto */
    double t_dense;     /* one after another, dense GEMMs */
    /* What an ensemble can share, timed alone: the generation of the
     * batches the one-after-another phases draw (models x steps), and the
     * encoder products x W_e^T of those steps, one model's at a time */
    double t_gen;       /* seconds for models x steps batches */
    double t_enc;       /* seconds for models x steps encoder products */
    double enc_flops;   /* their FLOPs, 2 B d m each */
} sp_bench_ens;

/* Warm-up steps, then `steps` steps of each model in each phase. 0 or 1
 * (with a message on stderr). Single-threaded BLAS is the caller's. */
int sp_bench_ensemble(long warmup, long steps, sp_bench_ens *out);

#endif
