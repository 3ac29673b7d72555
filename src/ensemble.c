/* ensemble.c: one batch and one encoder GEMM for several SAEs of one shape
 * (ensemble.h). The concatenated product is a single B x d x (n m) sgemm,
 * which runs nearer the machine's peak than n small ones; each member then
 * adds its biases to its slice in place of its own GEMM (sae.c, preact). */
#include <stdlib.h>
#include <gsl/gsl_blas.h>

#include "superpose/ensemble.h"

struct sp_ensemble {
    size_t n, m, d, max_batch;
    sp_learner **L;
    gsl_matrix_float *W;  /* (n m) x d: the members' encoders, member e at rows e m.. */
    gsl_matrix_float *XW; /* max_batch x (n m) */
};

void sp_ensemble_free(sp_ensemble *E)
{
    if (!E)
        return;
    gsl_matrix_float_free(E->XW);
    gsl_matrix_float_free(E->W);
    free(E->L);
    free(E);
}

sp_ensemble *sp_ensemble_alloc(sp_learner *const *L, size_t n, sp_err *err)
{
    if (n == 0) {
        sp_err_set(err, "an ensemble needs at least one member");
        return NULL;
    }
    for (size_t e = 0; e < n; e++) {
        if (!sp_sae_can_share(L[e])) {
            sp_err_set(err, "ensemble member %zu is not an SAE with an untied linear encoder", e);
            return NULL;
        }
        if (L[e]->m != L[0]->m || L[e]->d != L[0]->d || L[e]->max_batch != L[0]->max_batch) {
            sp_err_set(err, "ensemble member %zu has another shape (m %zu, d %zu, batch %zu) "
                            "than member 0 (m %zu, d %zu, batch %zu)",
                       e, L[e]->m, L[e]->d, L[e]->max_batch, L[0]->m, L[0]->d, L[0]->max_batch);
            return NULL;
        }
    }
    sp_ensemble *E = calloc(1, sizeof *E);
    size_t m = L[0]->m, d = L[0]->d, B = L[0]->max_batch;
    if (E) {
        E->n = n, E->m = m, E->d = d, E->max_batch = B;
        E->L = malloc(n * sizeof *E->L);
        E->W = gsl_matrix_float_alloc(n * m, d);
        E->XW = gsl_matrix_float_alloc(B, n * m);
    }
    if (!E || !E->L || !E->W || !E->XW) {
        sp_ensemble_free(E);
        sp_err_set(err, "out of memory for an ensemble of %zu SAEs with %zu latents", n, m);
        return NULL;
    }
    for (size_t e = 0; e < n; e++) {
        E->L[e] = L[e];
        if (sp_sae_share_encoder(L[e], E->W->data + e * m * d) != 0) {
            sp_ensemble_free(E);
            sp_err_set(err, "out of memory for an ensemble of %zu SAEs", n);
            return NULL;
        }
    }
    return E;
}

void sp_ensemble_step(sp_ensemble *E, sp_optim *const *opt, const gsl_matrix_float *x,
                      const int *live, sp_loss *out, double *loss)
{
    size_t B = x->size1, m = E->m;
    /* the live members form runs of consecutive slices: one GEMM per run
     * (a single one unless a member diverged) */
    for (size_t a = 0; a < E->n;) {
        if (!live[a]) {
            a++;
            continue;
        }
        size_t z = a;
        while (z < E->n && live[z])
            z++;
        gsl_matrix_float_const_view W =
            gsl_matrix_float_const_submatrix(E->W, a * m, 0, (z - a) * m, E->d);
        gsl_matrix_float_view P = gsl_matrix_float_submatrix(E->XW, 0, a * m, B, (z - a) * m);
        gsl_blas_sgemm(CblasNoTrans, CblasTrans, 1.0f, x, &W.matrix, 0.0f, &P.matrix);
        a = z;
    }
    for (size_t e = 0; e < E->n; e++) {
        if (!live[e])
            continue;
        gsl_matrix_float_view P = gsl_matrix_float_submatrix(E->XW, 0, e * m, B, m);
        sp_sae_set_product(E->L[e], &P.matrix);
        loss[e] = sp_train_step(E->L[e], opt[e], x, &out[e]);
        sp_sae_set_product(E->L[e], NULL);
    }
}
