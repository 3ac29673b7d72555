/* check_tms.c: the toy model of superposition. Gradients against a double
 * precision reference by central differences, D* and D_i on hand-solved
 * geometries, the sampler's rates, and the paper's pentagon (n = 5, m = 2)
 * and dense results. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "helpers.h"
#include "superpose/tms.h"

#define PI 3.14159265358979323846

/* Loss of the model in double, written from the definition
 * L = (1/B) sum_{b,i} r^i (x_bi - ReLU(sum_k W_ki h_bk + b_i))^2,
 * h_bk = sum_j W_kj x_bj. Also returns min |pre-activation| and the number
 * of positive pre-activations. */
static double ref_loss(const double *W, const double *b, const float *x, size_t B, size_t n,
                       size_t m, double r, double *min_abs, size_t *n_pos)
{
    double L = 0, mn = INFINITY;
    size_t pos = 0;
    double h[16];
    for (size_t s = 0; s < B; s++) {
        for (size_t k = 0; k < m; k++) {
            h[k] = 0;
            for (size_t j = 0; j < n; j++)
                h[k] += W[k * n + j] * x[s * n + j];
        }
        for (size_t i = 0; i < n; i++) {
            double o = b[i];
            for (size_t k = 0; k < m; k++)
                o += W[k * n + i] * h[k];
            mn = fmin(mn, fabs(o));
            pos += o > 0;
            double y = o > 0 ? o : 0;
            L += pow(r, (double)i) * (x[s * n + i] - y) * (x[s * n + i] - y);
        }
    }
    if (min_abs)
        *min_abs = mn;
    if (n_pos)
        *n_pos = pos;
    return L / (double)B;
}

/* Central differences of the double reference. The loss is smooth (a
 * polynomial of degree 4 in W) away from ReLU kinks, so with h = 1e-5 the
 * truncation error is ~h^2 and the rounding error ~1e-16 / h = 1e-11. Cases
 * are redrawn until every pre-activation is at least 1e-3 from the kink (a
 * +-h step moves them by < 1e-4, so no coordinate crosses one), with at
 * least a quarter on each side. The analytic gradient is float32 summed
 * over 16 samples, good to ~1e-6 absolute; we require relative error
 * < 1e-3 on every coordinate, relative to max(|fd|, 1e-2 max|fd|). */
START_TEST(test_grad_fd)
{
    const size_t n = 6, m = 3, B = 16;
    sp_tms_cfg c = sp_tms_default();
    c.n = (int)n, c.m = (int)m, c.p = 0.6, c.importance = 0.8;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 3);
    float W[18], b[6], x[96], gW[18], gb[6];
    double Wd[18], bd[6], mn = 0;
    size_t pos = 0;
    int tries = 0;
    do {
        ck_assert_int_lt(tries++, 100);
        for (size_t k = 0; k < m * n; k++)
            Wd[k] = W[k] = (float)gsl_ran_gaussian(rng, 0.7);
        for (size_t i = 0; i < n; i++)
            bd[i] = b[i] = (float)(0.6 * gsl_rng_uniform(rng) - 0.3);
        sp_tms_sample(&c, rng, B, x);
        ref_loss(Wd, bd, x, B, n, m, c.importance, &mn, &pos);
    } while (mn < 1e-3 || pos < B * n / 4 || pos > 3 * B * n / 4);

    sp_tms_ws *ws = sp_tms_ws_alloc((int)n, (int)m, 2 * B);
    ck_assert_ptr_nonnull(ws);
    /* garbage in the outputs: they must be overwritten, not accumulated */
    for (size_t k = 0; k < m * n; k++)
        gW[k] = 1e3f;
    for (size_t i = 0; i < n; i++)
        gb[i] = -1e3f;
    double L = sp_tms_loss_grad(&c, W, b, x, B, gW, gb, ws);
    double Lref = ref_loss(Wd, bd, x, B, n, m, c.importance, NULL, NULL);
    ck_assert_msg(fabs(L - Lref) <= 1e-5 * Lref, "loss %.9g, reference %.9g", L, Lref);

    const double h = 1e-5;
    double fdW[18], fdb[6], gmaxW = 0, gmaxb = 0;
    for (size_t k = 0; k < m * n; k++) {
        double w0 = Wd[k];
        Wd[k] = w0 + h;
        double lp = ref_loss(Wd, bd, x, B, n, m, c.importance, NULL, NULL);
        Wd[k] = w0 - h;
        double lm = ref_loss(Wd, bd, x, B, n, m, c.importance, NULL, NULL);
        Wd[k] = w0;
        fdW[k] = (lp - lm) / (2 * h);
        gmaxW = fmax(gmaxW, fabs(fdW[k]));
    }
    for (size_t i = 0; i < n; i++) {
        double b0 = bd[i];
        bd[i] = b0 + h;
        double lp = ref_loss(Wd, bd, x, B, n, m, c.importance, NULL, NULL);
        bd[i] = b0 - h;
        double lm = ref_loss(Wd, bd, x, B, n, m, c.importance, NULL, NULL);
        bd[i] = b0;
        fdb[i] = (lp - lm) / (2 * h);
        gmaxb = fmax(gmaxb, fabs(fdb[i]));
    }
    ck_assert(gmaxW > 1e-2 && gmaxb > 1e-2);
    double worstW = 0, worstb = 0;
    for (size_t k = 0; k < m * n; k++)
        worstW = fmax(worstW, fabs(gW[k] - fdW[k]) / fmax(fabs(fdW[k]), 1e-2 * gmaxW));
    for (size_t i = 0; i < n; i++)
        worstb = fmax(worstb, fabs(gb[i] - fdb[i]) / fmax(fabs(fdb[i]), 1e-2 * gmaxb));
    ck_assert_msg(worstW < 1e-3, "dW: worst relative error %g", worstW);
    ck_assert_msg(worstb < 1e-3, "db: worst relative error %g", worstb);

    /* a batch larger than the workspace is refused, not overrun */
    ck_assert(isnan(sp_tms_loss_grad(&c, W, b, x, 2 * B + 1, gW, gb, ws)));

    sp_tms_ws_free(ws);
    gsl_rng_free(rng);
}
END_TEST

START_TEST(test_dims_known)
{
    double D[5];
    /* orthonormal columns, a rotation of the identity: D* = 1, D_i = 1 */
    const double a = 0.6, s = 0.8;
    float Q[9] = {(float)a, (float)-s, 0, (float)s, (float)a, 0, 0, 0, 1};
    ck_assert_double_eq_tol(sp_tms_dstar(Q, 3, 3), 1.0, 1e-6);
    sp_tms_dims(Q, 3, 3, D);
    for (int i = 0; i < 3; i++)
        ck_assert_double_eq_tol(D[i], 1.0, 1e-6);

    /* antipodal pair in 1-D, W = (1, -1): (W_0_hat . W_1)^2 = 1, so
     * D_i = 1 / (1 + 1) = 1/2; D* = 1 / 2 */
    float A[2] = {1, -1};
    ck_assert_double_eq_tol(sp_tms_dstar(A, 1, 2), 0.5, 1e-12);
    sp_tms_dims(A, 1, 2, D);
    ck_assert_double_eq_tol(D[0], 0.5, 1e-12);
    ck_assert_double_eq_tol(D[1], 0.5, 1e-12);
    /* D_i does not depend on the scale of the pair */
    A[0] = 0.3f, A[1] = -0.3f;
    sp_tms_dims(A, 1, 2, D);
    ck_assert_double_eq_tol(D[0], 0.5, 1e-12);

    /* regular pentagon of unit columns (any rotation): sum_k cos^2(72 k deg)
     * = 1 + 2 cos^2 72 + 2 cos^2 144 = 5/2, so D_i = 2/5; ||W||_F^2 = 5 so
     * D* = 2/5 */
    float P[10];
    for (int k = 0; k < 5; k++) {
        P[k] = (float)cos(0.3 + 2 * PI * k / 5);
        P[5 + k] = (float)sin(0.3 + 2 * PI * k / 5);
    }
    ck_assert_double_eq_tol(sp_tms_dstar(P, 2, 5), 0.4, 1e-6);
    sp_tms_dims(P, 2, 5, D);
    for (int i = 0; i < 5; i++)
        ck_assert_double_eq_tol(D[i], 0.4, 1e-6);

    /* two unit columns 60 degrees apart: D_i = 1 / (1 + cos^2 60) = 4/5 */
    float T[4] = {1, 0.5f, 0, (float)(sqrt(3.0) / 2)};
    sp_tms_dims(T, 2, 2, D);
    ck_assert_double_eq_tol(D[0], 0.8, 1e-6);
    ck_assert_double_eq_tol(D[1], 0.8, 1e-6);

    /* columns (1,0), (0,0), (0,2), (0,-2): D = 1, 0, 16/32, 16/32;
     * D* = 2 / (1 + 4 + 4) = 2/9 */
    float Z[8] = {1, 0, 0, 0, 0, 0, 2, -2};
    sp_tms_dims(Z, 2, 4, D);
    ck_assert_double_eq_tol(D[0], 1.0, 1e-12);
    ck_assert(D[1] == 0.0);
    ck_assert_double_eq_tol(D[2], 0.5, 1e-12);
    ck_assert_double_eq_tol(D[3], 0.5, 1e-12);
    ck_assert_double_eq_tol(sp_tms_dstar(Z, 2, 4), 2.0 / 9, 1e-12);
    /* all zero: no NaN anywhere */
    memset(Z, 0, sizeof Z);
    sp_tms_dims(Z, 2, 4, D);
    for (int i = 0; i < 4; i++)
        ck_assert(D[i] == 0.0);
    ck_assert(sp_tms_dstar(Z, 2, 4) == 0.0);
}
END_TEST

/* Rates of the sampler, for each of its three paths (p = 1, dense
 * Bernoulli, geometric gaps), on N = 40 x 25000 = 1e6 entries:
 * - overall firing rate within 4 s.e. of p, s.e. = sqrt(p (1 - p) / N);
 * - every column's rate within 4.5 s.e. (40 columns);
 * - both of two neighbouring entries (flat index t, t + 1) firing at rate
 *   p^2; the overlapping pairs are 1-dependent, so the variance of their
 *   count is (N - 1) p^2 (1 - p^2) + 2 (N - 2) (p^3 - p^4);
 * - every value in [0, 1) (a fired feature is never exactly 0, so counting
 *   nonzero entries counts firings), the K active ones with mean within
 *   4 s.e. of 1/2, s.e. = sqrt(1 / (12 K)). */
static void sampler_check(double p)
{
    const size_t n = 40, B = 25000, N = n * B;
    sp_tms_cfg c = sp_tms_default();
    c.n = (int)n, c.p = p;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 17);
    float *x = malloc(N * sizeof *x);
    size_t *col = calloc(n, sizeof *col);
    sp_tms_sample(&c, rng, B, x);
    size_t K = 0, pairs = 0, out_of_range = 0;
    double sum = 0;
    for (size_t t = 0; t < N; t++) {
        if (x[t] != 0) {
            K++;
            col[t % n]++;
            sum += x[t];
            pairs += t + 1 < N && x[t + 1] != 0;
        }
        out_of_range += !(x[t] >= 0 && x[t] < 1);
    }
    ck_assert_uint_eq(out_of_range, 0);
    double se = sqrt(p * (1 - p) / (double)N);
    double rate = (double)K / (double)N;
    ck_assert_msg(fabs(rate - p) <= 4 * se + 1e-12, "p %g: rate %g", p, rate);
    double se_col = sqrt(p * (1 - p) / (double)B), worst = 0;
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs((double)col[i] / (double)B - p));
    ck_assert_msg(worst <= 4.5 * se_col + 1e-12, "p %g: a column is off by %g", p, worst);
    double var_pairs = (double)(N - 1) * p * p * (1 - p * p) +
                       2.0 * (double)(N - 2) * (p * p * p - p * p * p * p);
    double exp_pairs = (double)(N - 1) * p * p;
    ck_assert_msg(fabs((double)pairs - exp_pairs) <= 4 * sqrt(var_pairs) + 1e-9,
                  "p %g: %zu neighbouring pairs, expected %g", p, pairs, exp_pairs);
    double mean = sum / (double)K;
    ck_assert_msg(fabs(mean - 0.5) <= 4 * sqrt(1.0 / (12.0 * (double)K)),
                  "p %g: mean active value %g", p, mean);
    free(col);
    free(x);
    gsl_rng_free(rng);
}

START_TEST(test_sampler_sparse) { sampler_check(0.05); }
END_TEST
START_TEST(test_sampler_half) { sampler_check(0.5); }
END_TEST
START_TEST(test_sampler_dense) { sampler_check(1.0); }
END_TEST

/* Angles of the columns of W (2 x n), sorted, and the largest deviation of
 * a consecutive gap (with wrap-around) from 360 / n degrees. */
static double gap_error(const float *W, int n)
{
    double ang[16];
    for (int i = 0; i < n; i++)
        ang[i] = atan2(W[n + i], W[i]) * 180 / PI;
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && ang[j - 1] > ang[j]; j--) {
            double t = ang[j];
            ang[j] = ang[j - 1];
            ang[j - 1] = t;
        }
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double gap = i + 1 < n ? ang[i + 1] - ang[i] : ang[0] + 360 - ang[n - 1];
        worst = fmax(worst, fabs(gap - 360.0 / n));
    }
    return worst;
}

static double col_norm(const sp_tms *t, int i)
{
    double s = 0;
    for (int k = 0; k < t->m; k++)
        s += (double)t->W[k * t->n + i] * t->W[k * t->n + i];
    return sqrt(s);
}

static sp_tms *train_seed(const sp_tms_cfg *c, unsigned long seed)
{
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, seed);
    sp_err e = {{0}};
    sp_tms *t = sp_tms_train(c, rng, NULL, NULL, &e);
    ck_assert_msg(t != NULL, "%s", e.msg);
    gsl_rng_free(rng);
    return t;
}

/* Elhage et al. 2022, Demonstrating Superposition: n = 5, m = 2,
 * I_i = 0.9^i, S = 0.95 gives a regular pentagon of columns with norms
 * near 1. Like the paper, which trains many instances, we keep the lowest
 * loss of three seeds (a single run lands in a local minimum, two features
 * sharing a direction, about one time in ten). */
START_TEST(test_pentagon)
{
    sp_tms_cfg c = sp_tms_default();
    ck_assert_int_eq(c.n, 5);
    ck_assert_int_eq(c.m, 2);
    sp_tms *best = NULL;
    for (unsigned long seed = 1; seed <= 3; seed++) {
        sp_tms *t = train_seed(&c, seed);
        if (!best || t->loss < best->loss) {
            sp_tms_free(best);
            best = t;
        } else {
            sp_tms_free(t);
        }
    }
    for (int i = 0; i < 5; i++)
        ck_assert_msg(col_norm(best, i) > 0.8, "column %d has norm %g", i, col_norm(best, i));
    double gerr = gap_error(best->W, 5);
    ck_assert_msg(gerr < 10, "angular gaps off 72 degrees by up to %g", gerr);
    double D[5];
    sp_tms_dims(best->W, 2, 5, D);
    for (int i = 0; i < 5; i++)
        ck_assert_msg(fabs(D[i] - 0.4) < 0.05, "D_%d = %g, pentagon has 2/5", i, D[i]);
    sp_tms_free(best);
}
END_TEST

/* Dense inputs (S = 0): the model learns the two most important features
 * orthogonally, like PCA, and drops the rest. */
START_TEST(test_dense)
{
    sp_tms_cfg c = sp_tms_default();
    c.p = 1;
    sp_tms *t = train_seed(&c, 1);
    double n0 = col_norm(t, 0), n1 = col_norm(t, 1);
    ck_assert_msg(fabs(n0 - 1) < 0.1 && fabs(n1 - 1) < 0.1, "norms %g %g", n0, n1);
    double dot = (double)t->W[0] * t->W[1] + (double)t->W[5] * t->W[6];
    ck_assert_msg(fabs(dot) < 0.05 * n0 * n1, "features 0 and 1 not orthogonal: %g", dot);
    for (int i = 2; i < 5; i++)
        ck_assert_msg(col_norm(t, i) < 0.1, "column %d has norm %g", i, col_norm(t, i));
    ck_assert_double_eq_tol(sp_tms_dstar(t->W, 2, 5), 1.0, 0.05);
    sp_tms_free(t);
}
END_TEST

typedef struct {
    long calls, last, steps;
    int monotone;
} progress_log;

static void on_progress(void *user, long step, long steps, double loss)
{
    progress_log *p = user;
    p->monotone &= step > p->last && isfinite(loss);
    p->calls++;
    p->last = step;
    p->steps = steps;
}

/* The same seed gives the same bits; progress ends on the last step. */
START_TEST(test_deterministic)
{
    sp_tms_cfg c = sp_tms_default();
    c.n = 20, c.m = 5, c.steps = 300, c.batch = 64, c.weight_decay = 1e-2;
    sp_tms *t[2];
    for (int r = 0; r < 2; r++) {
        gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
        gsl_rng_set(rng, 42);
        progress_log pl = {0, 0, 0, 1};
        sp_err e;
        t[r] = sp_tms_train(&c, rng, on_progress, &pl, &e);
        ck_assert_ptr_nonnull(t[r]);
        ck_assert(pl.calls >= 1 && pl.monotone);
        ck_assert_int_eq(pl.last, 300);
        ck_assert_int_eq(pl.steps, 300);
        gsl_rng_free(rng);
    }
    ck_assert(memcmp(t[0]->W, t[1]->W, 100 * sizeof(float)) == 0);
    ck_assert(memcmp(t[0]->b, t[1]->b, 20 * sizeof(float)) == 0);
    ck_assert(t[0]->loss == t[1]->loss && isfinite(t[0]->loss));
    sp_tms_free(t[0]);
    sp_tms_free(t[1]);
}
END_TEST

START_TEST(test_check)
{
    sp_tms_cfg ok = sp_tms_default();
    ck_assert_ptr_null(sp_tms_check(&ok));
    sp_tms_cfg c = ok;
    c.p = 1;
    ck_assert_ptr_null(sp_tms_check(&c));
#define BAD(field, stmt)                                                            \
    do {                                                                            \
        c = ok;                                                                     \
        stmt;                                                                       \
        const char *msg = sp_tms_check(&c);                                         \
        ck_assert_msg(msg && strstr(msg, field), "%s: got %s", #stmt, msg ? msg : "NULL"); \
    } while (0)
    BAD("tms.n ", c.n = 0);
    BAD("tms.m ", c.m = 0);
    BAD("tms.p ", c.p = 0);
    BAD("tms.p ", c.p = 1.5);
    BAD("tms.p ", c.p = NAN);
    BAD("tms.importance", c.importance = 0);
    BAD("tms.importance", c.importance = -0.9);
    BAD("tms.importance", (c.n = 1000, c.importance = 1.1)); /* 1.1^999 > FLT_MAX */
    BAD("tms.steps", c.steps = 0);
    BAD("tms.batch", c.batch = 0);
    BAD("tms.lr", c.lr = 0);
    BAD("tms.lr", c.lr = -1e-3);
    BAD("tms.weight_decay", c.weight_decay = -1);
#undef BAD
    /* train validates too */
    c = ok;
    c.m = 0;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    sp_err e = {{0}};
    ck_assert_ptr_null(sp_tms_train(&c, rng, NULL, NULL, &e));
    ck_assert(strstr(e.msg, "tms.m ") != NULL);
    gsl_rng_free(rng);
}
END_TEST

Suite *make_tms_suite(void)
{
    Suite *s = suite_create("tms");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_grad_fd);
    tcase_add_test(tc, test_dims_known);
    tcase_add_test(tc, test_sampler_sparse);
    tcase_add_test(tc, test_sampler_half);
    tcase_add_test(tc, test_sampler_dense);
    tcase_add_test(tc, test_check);
    tcase_add_test(tc, test_deterministic);
    suite_add_tcase(s, tc);
    TCase *tt = tcase_create("train");
    tcase_set_timeout(tt, 60);
    tcase_add_test(tt, test_pentagon);
    tcase_add_test(tt, test_dense);
    suite_add_tcase(s, tt);
    return s;
}
