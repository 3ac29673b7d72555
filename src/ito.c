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
#include "superpose/recovery.h"
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

#define MAX_PAIRS 64

/* The parent:child pairs of absorption: metrics.pairs, or the tree's links. */
static int absorb_pairs(const sp_run_cfg *cfg, sp_gen *gen, size_t nt, size_t *par, size_t *chi,
                        sp_err *err)
{
    if (cfg->pairs[0])
        return sp_config_pairs(cfg->pairs, nt, par, chi, MAX_PAIRS, err);
    long *up = malloc(nt * sizeof *up);
    if (!up)
        return sp_err_set(err, "out of memory");
    sp_gen_parent_rows(gen, up);
    int n = 0;
    for (size_t t = 0; t < nt && n < MAX_PAIRS; t++)
        if (up[t] >= 0) {
            par[n] = (size_t)up[t];
            chi[n++] = t;
        }
    free(up);
    return n;
}

/* One parent's absorption accumulator per scored configuration. */
typedef struct {
    size_t parent, children[MAX_PAIRS], n_children, main;
} absorb_group;

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
    sp_firing_acc **fire = calloc(n, sizeof *fire);
    sp_absorb_acc **absorbs = NULL;
    absorb_group groups[MAX_PAIRS];
    size_t n_groups = 0;
    long *t2l = malloc(nt * sizeof *t2l);
    size_t *counts = malloc(nt * sizeof *counts);
    unsigned char *fired = calloc(nt, 1), *alive = calloc(m, 1);
    int rc = -1;
    if (!specs || !spec_of || !acc || !sup || !gap || !match || !kvec || !bias || !dnorm ||
        !fire || !t2l || !counts || !fired || !alive || !x || !fe ||
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
    /* absorption: one group per parent, its main latent the MCC match */
    {
        size_t par[MAX_PAIRS], chi[MAX_PAIRS];
        int np = absorb_pairs(c0, gen, nt, par, chi, err);
        if (np < 0)
            goto out;
        if (np > 0 && isnan(sp_metric_mcc(L->decoder, G, t2l))) {
            sp_err_set(err, "cannot match %zu latents to %zu truth features", m, nt);
            goto out;
        }
        for (int k = 0; k < np; k++) {
            if (t2l[par[k]] < 0)
                continue; /* more features than latents: the parent has none */
            size_t g;
            for (g = 0; g < n_groups && groups[g].parent != par[k]; g++)
                ;
            if (g == n_groups)
                groups[n_groups++] = (absorb_group){.parent = par[k],
                                                    .main = (size_t)t2l[par[k]]};
            groups[g].children[groups[g].n_children++] = chi[k];
        }
        if (n_groups && !(absorbs = calloc(n * n_groups, sizeof *absorbs))) {
            sp_err_set(err, "out of memory");
            goto out;
        }
        for (size_t r = 0; r < n; r++)
            for (size_t g = 0; g < n_groups; g++)
                if (!(absorbs[r * n_groups + g] = sp_absorb_acc_alloc(
                          L->decoder, G, groups[g].parent, groups[g].children,
                          groups[g].n_children, &groups[g].main, 1))) {
                    sp_err_set(err, "out of memory for absorption");
                    goto out;
                }
    }
    /* the decoder's bias: its output for the zero code */
    {
        gsl_matrix_float_view f1 = gsl_matrix_float_submatrix(fe, 0, 0, 1, m);
        gsl_matrix_float_view h1 = gsl_matrix_float_submatrix(xh, 0, 0, 1, d);
        gsl_matrix_float_set_zero(&f1.matrix);
        L->ops->decode(L, &f1.matrix, &h1.matrix);
        memcpy(bias, gsl_matrix_float_ptr(xh, 0, 0), d * sizeof *bias);
    }
    for (size_t r = 0; r < n; r++)
        if (!(fire[r] = sp_firing_acc_alloc(match, dnorm, m, nt))) {
            sp_err_set(err, "out of memory for firing statistics");
            goto out;
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
        for (size_t q = 0; q < codes->nnz; q++)
            fired[codes->idx[q]] = 1;
        L->ops->encode(L, &xv.matrix, &fv.matrix);
        for (size_t b = 0; b < nb; b++) {
            const float *fr = gsl_matrix_float_const_ptr(&fv.matrix, b, 0);
            for (size_t i = 0; i < m; i++)
                alive[i] |= fr[i] != 0;
        }
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
            sp_firing_acc_add(fire[r], a, codes->row, codes->idx, codes->val);
            for (size_t g = 0; g < n_groups; g++)
                sp_absorb_acc_add(absorbs[r * n_groups + g], &xv.matrix, a, codes->row, codes->idx);
            double sse, l1, lam = isfinite(sp->lambda) ? sp->lambda : 0;
            batch_terms(&xv.matrix, &hv.matrix, a, dnorm, &sse, &l1);
            gap[r] += (sse_enc + 2 * lam * l1_enc) - (sse + 2 * lam * l1);
        }
    }
    /* splitting: live latents (the encoder fired them in the window) per
     * truth feature that fired; dead latents split nothing */
    double split = NAN;
    size_t n_alive = 0;
    for (size_t i = 0; i < m; i++)
        n_alive += alive[i];
    gsl_matrix_float *live = n_alive ? gsl_matrix_float_alloc(n_alive, d) : NULL;
    for (size_t i = 0, k = 0; live && i < m; i++)
        if (alive[i]) {
            gsl_vector_float_const_view row = gsl_matrix_float_const_row(L->decoder, i);
            gsl_matrix_float_set_row(live, k++, &row.vector);
        }
    if (!live && n_alive) {
        sp_err_set(err, "out of memory");
        goto out;
    }
    if (!live) {
        split = 0;
    } else if (!isnan(sp_metric_split_count(live, G, c0->tau, counts))) {
        double sum = 0;
        size_t nf = 0;
        for (size_t u = 0; u < nt; u++)
            if (fired[u])
                sum += (double)counts[u], nf++;
        split = nf ? sum / (double)nf : NAN;
    }
    gsl_matrix_float_free(live);
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
        mt[slots->split] = split;
        sp_firing_stats fs;
        sp_firing_acc_finish(fire[r], &fs, NULL);
        mt[slots->lat_f1] = fs.f1;
        mt[slots->shrinkage] = fs.shrinkage;
        double fr = 0, full = 0, hole = 0;
        size_t nf = 0, nh = 0;
        for (size_t g = 0; g < n_groups; g++) {
            sp_absorb_stats as;
            sp_absorb_acc_finish(absorbs[r * n_groups + g], &as);
            if (as.samples > 0)
                fr += as.fraction, nf++;
            if (as.with_child > 0)
                full += as.full_rate_child, hole += as.recall_hole, nh++;
        }
        mt[slots->absorption] = nf ? fr / (double)nf : NAN;
        mt[slots->full_absorption] = nh ? full / (double)nh : NAN;
        mt[slots->recall_hole] = nh ? hole / (double)nh : NAN;
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
    for (size_t r = 0; r < n && fire; r++)
        sp_firing_acc_free(fire[r]);
    for (size_t q = 0; absorbs && q < n * n_groups; q++)
        sp_absorb_acc_free(absorbs[q]);
    free(absorbs);
    free(fire);
    free(fired);
    free(alive);
    free(counts);
    free(t2l);
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

void sp_score_dictionary(const sp_run_cfg *cfg, const sp_learner *L, sp_gen *gen,
                         const sp_dict_slots *slots, double *metric)
{
    const gsl_matrix_float *G = sp_gen_truth(gen), *D = L->decoder, *E = L->encoder;
    size_t nt = G->size1, m = D->size1, d = D->size2;
    long *t2l = malloc(nt * sizeof *t2l);
    metric[slots->mcc] = t2l ? sp_metric_mcc(D, G, t2l) : NAN;
    metric[slots->uniqueness] = sp_metric_uniqueness(D, G);
    /* off-diagonal: the largest |cos| of a matched latent with another feature */
    double off = NAN;
    if (t2l && !isnan(metric[slots->mcc])) {
        off = 0;
        for (size_t t = 0; t < nt; t++) {
            if (t2l[t] < 0)
                continue;
            const float *row = gsl_matrix_float_const_ptr(D, (size_t)t2l[t], 0);
            for (size_t u = 0; u < nt; u++) {
                double c = u == t ? 0 : fabs(sp_cos(row, gsl_matrix_float_const_ptr(G, u, 0), d));
                off = c > off ? c : off;
            }
        }
    }
    metric[slots->offdiag] = off;
    /* the weight signature of absorption, mean over parent:child pairs */
    size_t par[MAX_PAIRS], chi[MAX_PAIRS];
    sp_err err;
    int np = t2l ? absorb_pairs(cfg, gen, nt, par, chi, &err) : -1;
    double s_cdp = 0, s_pec = 0, s_pdc = 0;
    size_t used = 0;
    size_t used_p = 0;
    for (int k = 0; k < np; k++) {
        long lp = t2l[par[k]], lc = t2l[chi[k]];
        if (lp >= 0 && (lc < 0 || (size_t)lc >= m)) {
            /* fewer latents than features (hedging toy, 1 latent): only the
             * parent's latent can be scored */
            sp_absorb_weights wp;
            sp_absorb_weights_of(D, NULL, G, chi[k], par[k], (size_t)lp, (size_t)lp, &wp);
            s_pdc += wp.child_dec_parent;
            used_p++;
            continue;
        }
        if (lp < 0 || lc < 0 || (size_t)lp >= m || (size_t)lc >= m)
            continue;
        sp_absorb_weights w;
        sp_absorb_weights_of(D, E, G, par[k], chi[k], (size_t)lp, (size_t)lc, &w);
        /* the parent latent's decoder along the child: hedging's signature */
        sp_absorb_weights wp;
        sp_absorb_weights_of(D, NULL, G, chi[k], par[k], (size_t)lc, (size_t)lp, &wp);
        s_cdp += w.child_dec_parent;
        s_pec += w.parent_enc_child;
        s_pdc += wp.child_dec_parent;
        used++;
        used_p++;
    }
    metric[slots->child_dec_parent] = used ? s_cdp / (double)used : NAN;
    metric[slots->parent_enc_child] = used && E ? s_pec / (double)used : NAN;
    metric[slots->parent_dec_child] = used_p ? s_pdc / (double)used_p : NAN;
    free(t2l);
}
