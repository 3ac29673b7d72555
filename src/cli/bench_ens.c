/* bench_ens.c: `superpose bench`'s ensemble case (ensemble.h): an L1 sweep
 * of 17 ReLU SAEs at one width (Sharkey generator d = 256, G = 512, ratio
 * 1, batch 256, coef = logspace(-2, 2, 17) with coef_scale = dict, Adam),
 * trained one step at a time as one ensemble (one generated batch and one
 * encoder GEMM per step for all 17), against the same 17 models trained
 * one after another (each its own batches and GEMMs), with the sparse
 * kernels (model.sparse = auto) and with dense GEMMs only. All phases
 * continue the same models after a common warm-up, so the codes are as
 * sparse as the coefficients make them; generation is included.
 *
 * Then what an ensemble can share is timed on its own: generating the
 * models x steps batches that the models alone draw (an ensemble draws
 * steps), and models x steps encoder products x W_e^T of one model (an
 * ensemble computes them as one GEMM, at best at the sgemm peak). Everything
 * else a step does (codes, decoder, backward, penalty, Adam) depends on
 * each model's own weights and codes, so it is the same work in an ensemble
 * as alone; bench.c turns these times into the highest speed-up any
 * ensemble could reach on this machine. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <gsl/gsl_blas.h>
#include <gsl/gsl_rng.h>

#include "bench_ens.h"
#include "superpose/config.h"
#include "superpose/ensemble.h"
#include "superpose/gen.h"
#include "superpose/optim.h"
#include "superpose/sae.h"

enum { NE = 17 };

int sp_bench_ensemble(long warmup, long steps, sp_bench_ens *out)
{
    const size_t d = 256, n = 512, B = 256, m = 512;
    sp_run_cfg cfg[NE];
    sp_learner *L[NE] = {0};
    sp_optim *opt[NE] = {0};
    sp_err err = {0};
    int rc = 1;
    gsl_rng *r_truth = gsl_rng_alloc(gsl_rng_mt19937), *r_init = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng *r_stream = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, d), *w = NULL, *p = NULL;
    sp_gen *gen = NULL;
    sp_ensemble *E = NULL;
    for (int e = 0; e < NE; e++) {
        sp_config_defaults(&cfg[e]);
        cfg[e].data.d = (int)d;
        cfg[e].data.n = (int)n;
        cfg[e].data.k = 5;
        cfg[e].batch = (int)B;
        cfg[e].penalty.per_latent = 1;
        cfg[e].penalty.coef = pow(10.0, -2.0 + 4.0 * e / (NE - 1));
    }
    if (!r_truth || !r_init || !r_stream || !x ||
        !(gen = sp_gen_alloc(&cfg[0].data, B, r_truth, &err)))
        goto out;
    for (int e = 0; e < NE; e++) {
        gsl_rng_set(r_init, 1234); /* as in a sweep: one initialisation for all */
        if (!(L[e] = sp_learner_alloc(&cfg[e].model, &cfg[e].penalty, d, m, B,
                                      warmup + 3 * steps * NE, r_init, &err)))
            goto out;
    }
    if (!(E = sp_ensemble_alloc(L, NE, &err)))
        goto out;
    for (int e = 0; e < NE; e++)
        if (!(opt[e] = sp_optim_alloc(&cfg[e].optim, L[e]->params, L[e]->n_params,
                                      warmup + 3 * steps * NE)))
            goto out;
    int live[NE];
    sp_loss ls[NE];
    double loss[NE];
    for (int e = 0; e < NE; e++)
        live[e] = 1;
    for (long s = 0; s < warmup; s++) {
        sp_gen_batch(gen, r_stream, B, NULL, x);
        sp_ensemble_step(E, opt, x, live, ls, loss);
    }
    /* ensemble */
    double l0 = 0, t0 = sp_now();
    for (long s = 0; s < steps; s++) {
        sp_gen_batch(gen, r_stream, B, NULL, x);
        sp_ensemble_step(E, opt, x, live, ls, loss);
        for (int e = 0; e < NE; e++)
            l0 += ls[e].l0;
    }
    out->t_ensemble = sp_now() - t0;
    out->l0 = l0 / (double)(steps * NE);
    /* one after another, sparse kernels (auto), then dense */
    for (int mode = 0; mode < 2; mode++) {
        t0 = sp_now();
        for (int e = 0; e < NE; e++) {
            sp_sae_set_sparse(L[e], mode ? SP_SPARSE_DENSE : SP_SPARSE_AUTO);
            for (long s = 0; s < steps; s++) {
                sp_gen_batch(gen, r_stream, B, NULL, x);
                sp_train_step(L[e], opt[e], x, &ls[e]);
            }
            sp_sae_set_sparse(L[e], SP_SPARSE_AUTO);
        }
        *(mode ? &out->t_dense : &out->t_auto) = sp_now() - t0;
    }
    /* the shareable work, timed alone */
    t0 = sp_now();
    for (long s = 0; s < steps * NE; s++)
        sp_gen_batch(gen, r_stream, B, NULL, x);
    out->t_gen = sp_now() - t0;
    w = gsl_matrix_float_alloc(m, d);
    p = gsl_matrix_float_alloc(B, m);
    if (!w || !p) {
        sp_err_set(&err, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < m * d; i++)
        w->data[i] = (float)(gsl_rng_uniform(r_init) - 0.5);
    t0 = sp_now();
    for (long s = 0; s < steps * NE; s++)
        gsl_blas_sgemm(CblasNoTrans, CblasTrans, 1.0f, x, w, 0.0f, p);
    out->t_enc = sp_now() - t0;
    out->enc_flops = 2.0 * (double)B * (double)d * (double)m * (double)(steps * NE);
    out->models = NE;
    out->samples = (double)(steps * NE) * (double)B;
    out->flops = 10.0 * (double)B * (double)m * (double)d * (double)(steps * NE);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "superpose: bench: ensemble: %s\n", err.msg);
    for (int e = 0; e < NE; e++) {
        sp_optim_free(opt[e]);
        sp_learner_free(L[e]);
    }
    sp_ensemble_free(E);
    sp_gen_free(gen);
    gsl_matrix_float_free(x);
    gsl_matrix_float_free(w);
    gsl_matrix_float_free(p);
    gsl_rng_free(r_stream);
    gsl_rng_free(r_init);
    gsl_rng_free(r_truth);
    return rc;
}
