/* ito.c: scoring a trained dictionary with the encoder's codes, baselines
 * and sparse solvers, in one pass over the evaluation window (ito.h).
 *
 * Sources: the debate this settles is Smith 2024 ("Replacing SAE encoders
 * with inference-time optimisation", LessWrong) and Nanda et al. 2024
 * (GDM progress update: gradient pursuit on SAE decoders); the baselines
 * separating selection from shrinkage are Wright & Sharkey 2024 ("Addressing
 * feature suppression in SAEs": post-hoc scale) and the support refit of
 * Rajamanoharan et al. 2024a (gated SAEs, App.: "frozen decoder, refit
 * magnitudes"); the amortisation gap is that of Cremer, Li & Duvenaud 2018
 * ("Inference suboptimality in VAEs"), REFERENCE.md 4. Formulas in ito.h. */
#include "superpose/ito.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_blas.h>

#include "superpose/metrics.h"
#include "superpose/solve.h"

enum { C_ENC, C_REFIT, C_SCALE, C_SCALE_LAT, C_SOLVER };

static const char *const methods[] = {"encoder", "refit", "scale", "scale_latent"};

/* Kind of a method name: C_ENC..C_SCALE_LAT, or C_SOLVER + solver index, or -1. */
static int method_kind(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, methods[i]))
            return i;
    int s = sp_solver_find(name);
    return s < 0 ? -1 : C_SOLVER + s;
}

static int is_lasso(int kind)
{
    return kind == C_SOLVER + SP_SOLVE_ISTA || kind == C_SOLVER + SP_SOLVE_FISTA;
}

int sp_ito_active(const sp_run_cfg *cfg)
{
    return strcmp(cfg->solve.method, "encoder") != 0 || cfg->solve.threshold > 0;
}

const char *sp_ito_check(const sp_run_cfg *cfg, size_t m)
{
    static _Thread_local char msg[400];
    const sp_solve_run_cfg *s = &cfg->solve;
    int kind = method_kind(s->method);
    if (kind < 0) {
        snprintf(msg, sizeof msg, "solve.method = '%s': must be one of: encoder, refit, scale, "
                 "scale_latent, mp, omp, gp, ista, fista", s->method);
        return msg;
    }
    if (!strcmp(cfg->learner, "none") && sp_ito_active(cfg))
        return "solve.method and solve.threshold score a learner's codes: train.learner = none "
               "has none";
    if (s->match == 2 && !is_lasso(kind)) {
        snprintf(msg, sizeof msg, "solve.match = coef (the SAE's own L1 objective) needs "
                 "solve.method = ista or fista, not '%s'", s->method);
        return msg;
    }
    if (s->match == 2 && strcmp(cfg->penalty.name, "l1") != 0) {
        snprintf(msg, sizeof msg, "solve.match = coef needs a learner trained with "
                 "train.penalty = l1 (its objective is MSE + coef L1), not '%s'",
                 cfg->penalty.name);
        return msg;
    }
    if (s->match == 1 && kind >= C_SOLVER && !is_lasso(kind) && (size_t)s->l0 > m) {
        snprintf(msg, sizeof msg, "solve.l0 = %d is more than the m = %zu atoms of the "
                 "dictionary", s->l0, m);
        return msg;
    }
    if (!(s->tol >= 0 && s->tol < 1))
        return "solve.tol must be in [0, 1)";
    return NULL;
}

/* One distinct way of computing codes (the runs may share it and differ in
 * the threshold only). */
typedef struct {
    const sp_solve_run_cfg *s; /* the first configuration using it */
    int kind;
    double lambda;             /* ista/fista: the lambda used, else 0 */
    float *scale;              /* scale: 1 factor; scale_latent: m */
    gsl_matrix_float *A;       /* (B, m) codes of the current batch */
} spec;

static int same_codes(const sp_solve_run_cfg *a, const sp_solve_run_cfg *b)
{
    return !strcmp(a->method, b->method) && a->match == b->match && a->l0 == b->l0 &&
           a->lambda == b->lambda && a->nonneg == b->nonneg && a->iters == b->iters &&
           a->tol == b->tol && a->fit_samples == b->fit_samples;
}

static sp_solve_cfg solver_cfg(const spec *sp)
{
    return (sp_solve_cfg){
        .kind = sp->kind - C_SOLVER,
        .nonneg = sp->s->nonneg,
        .k = (size_t)sp->s->l0,
        .lambda = sp->lambda,
        .max_iter = sp->s->iters,
        .tol = sp->s->tol,
        .use_gram = -1,
    };
}

/* Number of nonzero codes per row of f into k; returns their sum. */
static double count_rows(const gsl_matrix_float *f, size_t *k)
{
    double total = 0;
    for (size_t b = 0; b < f->size1; b++) {
        const float *r = gsl_matrix_float_const_ptr(f, b, 0);
        size_t c = 0;
        for (size_t i = 0; i < f->size2; i++)
            c += r[i] != 0;
        k[b] = c;
        total += (double)c;
    }
    return total;
}

/* Sum over the batch of ||x - xh||^2 and of sum_i ||d_i|| |a_i| (the L1
 * that solve.h's LASSO weighs: plain L1 for unit atoms). */
static void batch_terms(const gsl_matrix_float *x, const gsl_matrix_float *xh,
                        const gsl_matrix_float *a, const double *dnorm, double *sse, double *l1)
{
    double s = 0, l = 0;
    for (size_t b = 0; b < x->size1; b++) {
        const float *xr = gsl_matrix_float_const_ptr(x, b, 0);
        const float *hr = gsl_matrix_float_const_ptr(xh, b, 0);
        for (size_t j = 0; j < x->size2; j++) {
            double e = (double)xr[j] - hr[j];
            s += e * e;
        }
        const float *ar = gsl_matrix_float_const_ptr(a, b, 0);
        for (size_t i = 0; i < a->size2; i++)
            l += dnorm[i] * fabs((double)ar[i]);
    }
    *sse = s;
    *l1 = l;
}

/* Codes of spec sp for the batch x, given the encoder's codes fe. */
static int compute_codes(spec *sp, sp_solver *S, const gsl_matrix_float *x,
                         const gsl_matrix_float *fe, size_t *kvec, sp_err *err)
{
    size_t B = x->size1, m = fe->size2;
    gsl_matrix_float_view av = gsl_matrix_float_submatrix(sp->A, 0, 0, B, m);
    gsl_matrix_float *A = &av.matrix;
    switch (sp->kind) {
    case C_ENC:
        gsl_matrix_float_memcpy(A, fe);
        return 0;
    case C_REFIT:
        return sp_solve_refit(S, x, fe, sp->s->nonneg, A, err);
    case C_SCALE:
    case C_SCALE_LAT:
        for (size_t b = 0; b < B; b++) {
            const float *er = gsl_matrix_float_const_ptr(fe, b, 0);
            float *ar = gsl_matrix_float_ptr(A, b, 0);
            for (size_t i = 0; i < m; i++)
                ar[i] = er[i] * sp->scale[sp->kind == C_SCALE ? 0 : i];
        }
        return 0;
    default: {
        if (!isfinite(sp->lambda)) { /* the encoder fired nothing: neither may the solver */
            gsl_matrix_float_set_zero(A);
            return 0;
        }
        sp_solve_cfg sc = solver_cfg(sp);
        const size_t *kv = NULL;
        if (!is_lasso(sp->kind) && sp->s->match == 0) {
            count_rows(fe, kvec);
            kv = kvec;
        }
        return sp_solve(S, &sc, x, kv, 0, A, NULL, err);
    }
    }
}

int sp_ito_eval(const sp_run_cfg *const *cfgs, size_t n, sp_learner *L, sp_gen *gen,
                gsl_rng *r_fit, gsl_rng *r_eval, const sp_ito_slots *slots, double **metric,
                sp_err *err)
{
    const sp_run_cfg *c0 = cfgs[0];
    size_t d = L->d, m = L->m, B = (size_t)c0->batch;
    const gsl_matrix_float *G = sp_gen_truth(gen);
    size_t nt = G->size1;
    spec *specs = calloc(n, sizeof *specs);
    size_t *spec_of = calloc(n, sizeof *spec_of), n_specs = 0;
    sp_recon_acc **acc = calloc(n, sizeof *acc);
    sp_support_acc **sup = calloc(n, sizeof *sup);
    double *gap = calloc(n, sizeof *gap);
    size_t *match = malloc(m * sizeof *match), *kvec = malloc(B * sizeof *kvec);
    float *bias = calloc(d, sizeof *bias);
    double *dnorm = malloc(m * sizeof *dnorm);
    gsl_matrix_float *x = gsl_matrix_float_alloc(B, d), *fe = gsl_matrix_float_alloc(B, m);
    gsl_matrix_float *xh = gsl_matrix_float_alloc(B, d), *t = gsl_matrix_float_alloc(B, m);
    sp_codes *codes = sp_codes_alloc(B, B * nt);
    sp_solver *S = NULL;
    sp_scale_fit **fits = NULL;
    int rc = -1;
    if (!specs || !spec_of || !acc || !sup || !gap || !match || !kvec || !bias || !dnorm || !x || !fe ||
        !xh || !t || !codes) {
        sp_err_set(err, "out of memory scoring %zu latents", m);
        goto out;
    }
    /* distinct code methods */
    int need_solver = 0, need_fit = 0, need_scale = 0;
    for (size_t r = 0; r < n; r++) {
        size_t k;
        for (k = 0; k < n_specs && !same_codes(specs[k].s, &cfgs[r]->solve); k++)
            ;
        if (k == n_specs) {
            specs[k].s = &cfgs[r]->solve;
            specs[k].kind = method_kind(cfgs[r]->solve.method);
            if (specs[k].kind < 0) {
                sp_err_set(err, "%s", sp_ito_check(cfgs[r], m));
                goto out;
            }
            if (!(specs[k].A = gsl_matrix_float_alloc(B, m))) {
                sp_err_set(err, "out of memory for codes");
                goto out;
            }
            int kind = specs[k].kind;
            need_solver |= kind == C_REFIT || kind >= C_SOLVER;
            need_scale |= kind == C_SCALE || kind == C_SCALE_LAT;
            need_fit |= need_scale || (is_lasso(kind) && specs[k].s->match == 0);
            n_specs++;
        }
        spec_of[r] = k;
        if (!(acc[r] = sp_recon_acc_alloc(d, m)) || !(sup[r] = sp_support_acc_alloc(match, m, nt))) {
            sp_err_set(err, "out of memory for metrics");
            goto out;
        }
    }
    if (sp_metric_best_match(L->decoder, G, match, NULL) != 0) {
        sp_err_set(err, "cannot match %zu latents to %zu truth features", m, nt);
        goto out;
    }
    for (size_t i = 0; i < m; i++) {
        const float *row = gsl_matrix_float_const_ptr(L->decoder, i, 0);
        double n2 = 0;
        for (size_t j = 0; j < d; j++)
            n2 += (double)row[j] * row[j];
        dnorm[i] = sqrt(n2);
    }
    /* the decoder's bias: its output for the zero code */
    {
        gsl_matrix_float_view f1 = gsl_matrix_float_submatrix(fe, 0, 0, 1, m);
        gsl_matrix_float_view h1 = gsl_matrix_float_submatrix(xh, 0, 0, 1, d);
        gsl_matrix_float_set_zero(&f1.matrix);
        L->ops->decode(L, &f1.matrix, &h1.matrix);
        memcpy(bias, gsl_matrix_float_ptr(xh, 0, 0), d * sizeof *bias);
    }
    if (need_solver && !(S = sp_solver_alloc(L->decoder, bias, B, err)))
        goto out;
    for (size_t k = 0; k < n_specs; k++) {
        spec *sp = &specs[k];
        if (sp->kind == C_SCALE || sp->kind == C_SCALE_LAT) {
            if (!(sp->scale = malloc((sp->kind == C_SCALE ? 1 : m) * sizeof(float)))) {
                sp_err_set(err, "out of memory");
                goto out;
            }
        }
        if (is_lasso(sp->kind)) {
            if (sp->s->match == 1)
                sp->lambda = sp->s->lambda;
            else if (sp->s->match == 2)
                sp->lambda = c0->penalty.coef * (c0->model.mse_per_sample ? 0.5 : 0.5 * (double)d) /
                             (c0->penalty.per_latent ? (double)m : 1.0);
        }
    }
    /* fitting window: inputs of the training stream */
    if (need_fit) {
        if (!(fits = calloc(n_specs, sizeof *fits))) {
            sp_err_set(err, "out of memory");
            goto out;
        }
        for (size_t k = 0; k < n_specs; k++)
            if ((specs[k].kind == C_SCALE || specs[k].kind == C_SCALE_LAT) &&
                !(fits[k] = sp_scale_fit_alloc(L->decoder, bias, specs[k].kind == C_SCALE_LAT,
                                               B))) {
                sp_err_set(err, "out of memory for the scale fit");
                goto out;
            }
        /* matching lambda needs the first batch only; scale fits the whole window */
        long N = need_scale ? c0->solve.fit_samples
                            : (c0->solve.fit_samples < (long)B ? c0->solve.fit_samples : (long)B);
        for (long done = 0; done < N; done += (long)B) {
            size_t nb = (size_t)(N - done < (long)B ? N - done : (long)B);
            gsl_matrix_float_view xv = gsl_matrix_float_submatrix(x, 0, 0, nb, d);
            gsl_matrix_float_view fv = gsl_matrix_float_submatrix(fe, 0, 0, nb, m);
            sp_gen_batch(gen, r_fit, nb, NULL, &xv.matrix);
            L->ops->encode(L, &xv.matrix, &fv.matrix);
            for (size_t k = 0; k < n_specs; k++) {
                spec *sp = &specs[k];
                if (fits[k])
                    sp_scale_fit_add(fits[k], &xv.matrix, &fv.matrix);
                if (done == 0 && is_lasso(sp->kind) && sp->s->match == 0) {
                    double target = count_rows(&fv.matrix, kvec) / (double)nb;
                    sp_solve_cfg sc = solver_cfg(sp);
                    gsl_matrix_float_view av = gsl_matrix_float_submatrix(sp->A, 0, 0, nb, m);
                    sp->lambda = target > 0 ? sp_solve_match_lambda(S, &sc, &xv.matrix, target,
                                                                    &av.matrix, err)
                                            : HUGE_VAL;
                    if (isnan(sp->lambda))
                        goto out;
                }
            }
        }
        for (size_t k = 0; k < n_specs; k++)
            if (fits[k] && sp_scale_fit_finish(fits[k], specs[k].scale, err) != 0)
                goto out;
    }
    /* evaluation window */
    sp_gen_use_split(gen, SP_SPLIT_EVAL);
    double l0_true = 0;
    long N = c0->eval_samples;
    for (long done = 0; done < N; done += (long)B) {
        size_t nb = (size_t)(N - done < (long)B ? N - done : (long)B);
        gsl_matrix_float_view xv = gsl_matrix_float_submatrix(x, 0, 0, nb, d);
        gsl_matrix_float_view fv = gsl_matrix_float_submatrix(fe, 0, 0, nb, m);
        gsl_matrix_float_view hv = gsl_matrix_float_submatrix(xh, 0, 0, nb, d);
        gsl_matrix_float_view tv = gsl_matrix_float_submatrix(t, 0, 0, nb, m);
        sp_gen_batch(gen, r_eval, nb, codes, &xv.matrix);
        l0_true += (double)codes->nnz;
        L->ops->encode(L, &xv.matrix, &fv.matrix);
        double sse_enc, l1_enc;
        L->ops->decode(L, &fv.matrix, &hv.matrix);
        batch_terms(&xv.matrix, &hv.matrix, &fv.matrix, dnorm, &sse_enc, &l1_enc);
        for (size_t k = 0; k < n_specs; k++)
            if (compute_codes(&specs[k], S, &xv.matrix, &fv.matrix, kvec, err) != 0)
                goto out;
        for (size_t r = 0; r < n; r++) {
            const spec *sp = &specs[spec_of[r]];
            gsl_matrix_float_const_view av = gsl_matrix_float_const_submatrix(sp->A, 0, 0, nb, m);
            const gsl_matrix_float *a = &av.matrix;
            double thr = cfgs[r]->solve.threshold;
            if (thr > 0) {
                gsl_matrix_float_memcpy(&tv.matrix, a);
                for (size_t b = 0; b < nb; b++) {
                    float *tr = gsl_matrix_float_ptr(&tv.matrix, b, 0);
                    for (size_t i = 0; i < m; i++)
                        tr[i] = fabsf(tr[i]) < (float)thr ? 0.0f : tr[i];
                }
                a = &tv.matrix;
            }
            L->ops->decode(L, a, &hv.matrix);
            sp_recon_acc_add(acc[r], &xv.matrix, &hv.matrix, a);
            sp_support_acc_add(sup[r], a, codes->row, codes->idx);
            double sse, l1, lam = isfinite(sp->lambda) ? sp->lambda : 0;
            batch_terms(&xv.matrix, &hv.matrix, a, dnorm, &sse, &l1);
            gap[r] += (sse_enc + 2 * lam * l1_enc) - (sse + 2 * lam * l1);
        }
    }
    for (size_t r = 0; r < n; r++) {
        sp_recon_stats st;
        sp_recon_acc_finish(acc[r], &st);
        double *mt = metric[r];
        mt[slots->dead] = (double)st.dead;
        mt[slots->l0] = st.l0;
        mt[slots->mse] = st.mse;
        mt[slots->fve] = st.fve;
        sp_support_acc_finish(sup[r], &mt[slots->precision], &mt[slots->recall], &mt[slots->f1]);
        mt[slots->gap] = gap[r] / ((double)N * (double)d);
        const spec *sp = &specs[spec_of[r]];
        mt[slots->lambda] = is_lasso(sp->kind) ? sp->lambda : NAN;
        mt[slots->l0_true] = l0_true / (double)N;
    }
    rc = 0;
out:
    for (size_t k = 0; specs && k < n_specs; k++) {
        gsl_matrix_float_free(specs[k].A);
        free(specs[k].scale);
        if (fits)
            sp_scale_fit_free(fits[k]);
    }
    for (size_t r = 0; r < n && acc && sup; r++) {
        sp_recon_acc_free(acc[r]);
        sp_support_acc_free(sup[r]);
    }
    free(fits);
    sp_solver_free(S);
    sp_codes_free(codes);
    gsl_matrix_float_free(t);
    gsl_matrix_float_free(xh);
    gsl_matrix_float_free(fe);
    gsl_matrix_float_free(x);
    free(dnorm);
    free(bias);
    free(kvec);
    free(match);
    free(gap);
    free(sup);
    free(acc);
    free(spec_of);
    free(specs);
    return rc;
}
