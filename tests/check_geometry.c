/* check_geometry.c: truth dictionaries (geometry.h). Known answers worked
 * out by hand (60-degree pairs, antipodes, the Welch bound of the tetrahedron
 * and of three lines in the plane), a naive double-precision max |cos| to
 * check the blocked sgemm version, two independent orthonormalisations
 * (Householder QR against modified Gram-Schmidt), and statistical checks
 * whose tolerances are stated in standard errors. Seeds are fixed. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <gsl/gsl_rng.h>

#include "helpers.h"
#include "superpose/geometry.h"
#include "superpose/npy.h"

/* ------------------------------------------------------------- helpers */

static gsl_rng *rng_seeded(unsigned long seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, seed);
    return r;
}

/* Largest |cos| over i < j, in double, straight from the definition. */
static double naive_max_cos(const gsl_matrix_float *G)
{
    size_t n = G->size1, d = G->size2;
    double mx = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            double ab = 0, aa = 0, bb = 0;
            for (size_t q = 0; q < d; q++) {
                double a = gsl_matrix_float_get(G, i, q), b = gsl_matrix_float_get(G, j, q);
                ab += a * b;
                aa += a * a;
                bb += b * b;
            }
            if (aa > 0 && bb > 0)
                mx = fmax(mx, fabs(ab) / sqrt(aa * bb));
        }
    return mx;
}

/* max_i | ||g_i|| - 1 | in double. */
static double worst_norm_error(const gsl_matrix_float *G)
{
    double w = 0;
    for (size_t i = 0; i < G->size1; i++) {
        double s = 0;
        for (size_t q = 0; q < G->size2; q++)
            s += (double)gsl_matrix_float_get(G, i, q) * gsl_matrix_float_get(G, i, q);
        w = fmax(w, fabs(sqrt(s) - 1));
    }
    return w;
}

/* max |(G G^T - I)_ij| over rows r0 .. r0+k-1, in double. */
static double worst_gram_error(const gsl_matrix_float *G, size_t r0, size_t k)
{
    double w = 0;
    for (size_t i = r0; i < r0 + k; i++)
        for (size_t j = r0; j < r0 + k; j++) {
            double s = 0;
            for (size_t q = 0; q < G->size2; q++)
                s += (double)gsl_matrix_float_get(G, i, q) * gsl_matrix_float_get(G, j, q);
            w = fmax(w, fabs(s - (i == j)));
        }
    return w;
}

static int same_bits(const gsl_matrix_float *a, const gsl_matrix_float *b)
{
    if (a->size1 != b->size1 || a->size2 != b->size2)
        return 0;
    for (size_t i = 0; i < a->size1; i++)
        if (memcmp(gsl_matrix_float_const_ptr(a, i, 0), gsl_matrix_float_const_ptr(b, i, 0),
                   a->size2 * sizeof(float)) != 0)
            return 0;
    return 1;
}

static void expect_msg(const sp_err *e, const char *needle)
{
    ck_assert_msg(strstr(e->msg, needle) != NULL, "'%s' not in \"%s\"", needle, e->msg);
}

/* ------------------------------------------------------------ gaussian */

START_TEST(test_gaussian)
{
    enum { N = 2000, D = 50 };
    gsl_rng *r = rng_seeded(11);
    gsl_matrix_float *G = gsl_matrix_float_alloc(N, D);
    sp_geom_gaussian(G, r);
    ck_assert_msg(worst_norm_error(G) < 1e-6, "norm error %g", worst_norm_error(G));
    /* A uniform direction: entries uncorrelated with mean 0 and variance 1/d,
     * so the mean of all N D entries has sd 1 / (D sqrt(N)). */
    double sum = 0, sum2 = 0, col2[D] = { 0 };
    for (size_t i = 0; i < N; i++)
        for (size_t q = 0; q < D; q++) {
            double v = gsl_matrix_float_get(G, i, q);
            sum += v;
            sum2 += v * v;
            col2[q] += v * v;
        }
    double mean = sum / (N * D), sd_mean = 1.0 / (D * sqrt((double)N));
    ck_assert_msg(fabs(mean) < 5 * sd_mean, "mean entry %g (sd %g)", mean, sd_mean);
    /* The mean square is 1/d exactly (every row has norm 1)... */
    ck_assert_double_eq_tol(sum2 / (N * D), 1.0 / D, 1e-7);
    /* ...so test isotropy per coordinate: g_iq^2 ~ Beta(1/2, (d-1)/2), mean
     * 1/d, variance 2 (d-1) / (d^2 (d+2)); each column mean over N rows. */
    double sd_col = sqrt(2.0 * (D - 1) / ((double)D * D * (D + 2)) / N), zmax = 0;
    for (size_t q = 0; q < D; q++)
        zmax = fmax(zmax, fabs(col2[q] / N - 1.0 / D) / sd_col);
    ck_assert_msg(zmax < 5, "a coordinate's mean square is %g sd from 1/d", zmax);

    /* Same seed, same bits; another seed, other bits. */
    gsl_matrix_float *H = gsl_matrix_float_alloc(N, D);
    gsl_rng_set(r, 11);
    sp_geom_gaussian(H, r);
    ck_assert(same_bits(G, H));
    gsl_rng_set(r, 12);
    sp_geom_gaussian(H, r);
    ck_assert(!same_bits(G, H));
    gsl_matrix_float_free(H);
    gsl_matrix_float_free(G);
    gsl_rng_free(r);
}
END_TEST

/* --------------------------------------------------------- orthonormal */

static void check_orthonormal(size_t n, size_t d)
{
    gsl_rng *r = rng_seeded(5);
    gsl_matrix_float *G = gsl_matrix_float_alloc(n, d), *H = gsl_matrix_float_alloc(n, d);
    sp_err e = { "" };
    ck_assert_msg(sp_geom_orthonormal(G, r, &e) == 0, "%s", e.msg);
    ck_assert_msg(worst_gram_error(G, 0, n) < 1e-5, "n = %zu, d = %zu: |G G^T - I| = %g", n,
                  d, worst_gram_error(G, 0, n));
    /* Same draws through the other route: Gram-Schmidt of the Gaussian rows
     * is the Q of the QR with diag(R) > 0, row by row. */
    gsl_rng_set(r, 5);
    sp_geom_gaussian(H, r);
    ck_assert_int_eq(sp_geom_orthonormalize_rows(H, 0, n, &e), 0);
    double w = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t q = 0; q < d; q++)
            w = fmax(w, fabs(gsl_matrix_float_get(G, i, q) - gsl_matrix_float_get(H, i, q)));
    ck_assert_msg(w < 1e-5, "QR and Gram-Schmidt differ by %g", w);
    gsl_rng_set(r, 5);
    ck_assert_int_eq(sp_geom_orthonormal(H, r, &e), 0);
    ck_assert(same_bits(G, H));
    gsl_matrix_float_free(H);
    gsl_matrix_float_free(G);
    gsl_rng_free(r);
}

START_TEST(test_orthonormal)
{
    check_orthonormal(32, 32);
    check_orthonormal(10, 37);
    check_orthonormal(1, 4);
    gsl_rng *r = rng_seeded(5);
    gsl_matrix_float *G = gsl_matrix_float_alloc(7, 3);
    sp_err e = { "" };
    ck_assert_int_eq(sp_geom_orthonormal(G, r, &e), -1);
    expect_msg(&e, "n = 7");
    expect_msg(&e, "d = 3");
    gsl_matrix_float_free(G);
    gsl_rng_free(r);
}
END_TEST

/* ------------------------------------------------------------- max_cos */

static gsl_matrix_float *from_rows(size_t n, size_t d, const float *v)
{
    gsl_matrix_float *G = gsl_matrix_float_alloc(n, d);
    memcpy(G->data, v, n * d * sizeof *v);
    return G;
}

START_TEST(test_max_cos_by_hand)
{
    const float s3 = (float)sqrt(3.0);
    struct {
        size_t n, d;
        float v[12];
        double want;
    } cases[] = {
        /* 60 degrees apart, rows not unit: cos = 1/2 */
        { 2, 2, { 3, 0, 0.7f, 0.7f * s3 }, 0.5 },
        /* a row and its negative */
        { 2, 3, { 1, 2, 3, -1, -2, -3 }, 1.0 },
        /* orthogonal, one row scaled */
        { 3, 3, { 0, 5, 0, 1, 0, 0, 0, 0, 1 }, 0.0 },
        /* the largest pair does not involve row 0: cos(e2, e2 + e3) = 1/sqrt 2 */
        { 3, 3, { 1, 0, 0, 0, 1, 0, 0, 2, 2 }, 1 / sqrt(2.0) },
        /* a zero row has cosine 0 with everything */
        { 3, 2, { 0, 0, 1, 0, 0, 1 }, 0.0 },
        /* one row: no pairs */
        { 1, 2, { 1, 1 }, 0.0 },
        /* three lines in the plane at 60 degrees (Welch-optimal): 1/2 */
        { 3, 2, { 1, 0, -0.5f, 0.5f * s3, -0.5f, -0.5f * s3 }, 0.5 },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        gsl_matrix_float *G = from_rows(cases[c].n, cases[c].d, cases[c].v);
        double got = sp_geom_max_cos(G);
        ck_assert_msg(fabs(got - cases[c].want) < 1e-6, "case %zu: %.9g, want %.9g", c, got,
                      cases[c].want);
        gsl_matrix_float_free(G);
    }
}
END_TEST

/* Random rows of random lengths against the naive double loop; 300 and 513
 * rows span two and three 256-row blocks, 256 and 257 sit at the edge. A
 * near-copy of row 3 planted in the last block puts the maximum across
 * blocks. */
START_TEST(test_max_cos_blocked)
{
    const size_t sizes[][2] = { { 300, 40 }, { 256, 16 }, { 257, 16 }, { 513, 24 } };
    gsl_rng *r = rng_seeded(3);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s][0], d = sizes[s][1];
        gsl_matrix_float *G = gsl_matrix_float_alloc(n, d);
        sp_geom_gaussian(G, r);
        for (size_t i = 0; i < n; i++) {
            gsl_vector_float_view row = gsl_matrix_float_row(G, i);
            gsl_vector_float_scale(&row.vector, (float)(0.1 + 10 * gsl_rng_uniform(r)));
        }
        double plain = sp_geom_max_cos(G);
        double ref = naive_max_cos(G);
        ck_assert_msg(fabs(plain - ref) < 1e-6, "%zu x %zu: %.9g vs naive %.9g", n, d, plain,
                      ref);
        for (size_t q = 0; q < d; q++)
            gsl_matrix_float_set(G, n - 1, q,
                                 -2 * gsl_matrix_float_get(G, 3, q) + (q == 0 ? 0.05f : 0.0f));
        double planted = sp_geom_max_cos(G);
        ref = naive_max_cos(G);
        ck_assert_msg(ref > plain && ref > 0.9, "planted pair not the largest (%g)", ref);
        ck_assert_msg(fabs(planted - ref) < 1e-6, "%zu x %zu planted: %.9g vs naive %.9g", n,
                      d, planted, ref);
        gsl_matrix_float_free(G);
    }
    gsl_rng_free(r);
}
END_TEST

START_TEST(test_welch_bound)
{
    /* Four lines through a tetrahedron's vertices: |cos| = 1/3 = Welch. */
    ck_assert_double_eq_tol(sp_geom_welch_bound(4, 3), 1.0 / 3, 1e-15);
    ck_assert_double_eq_tol(sp_geom_welch_bound(3, 2), 0.5, 1e-15);
    ck_assert_double_eq_tol(sp_geom_welch_bound(20, 10), 1 / sqrt(19.0), 1e-15);
    ck_assert_double_eq_tol(sp_geom_welch_bound(512, 256), 1 / sqrt(511.0), 1e-15);
    ck_assert_double_eq(sp_geom_welch_bound(10, 10), 0);
    ck_assert_double_eq(sp_geom_welch_bound(3, 30), 0);
}
END_TEST

/* ------------------------------------------------------------ coherent */

static void check_coherent(size_t n, size_t d, double mu, unsigned long seed)
{
    gsl_rng *r = rng_seeded(seed);
    gsl_matrix_float *G = gsl_matrix_float_alloc(n, d), *H = gsl_matrix_float_alloc(n, d);
    sp_geom_gaussian(G, r);
    double drawn = sp_geom_max_cos(G);
    ck_assert_msg(drawn > mu, "the draw already meets %g: nothing tested", mu);
    gsl_rng_set(r, seed);
    sp_err e = { "" };
    double got = -1;
    ck_assert_msg(sp_geom_coherent(G, mu, r, &got, &e) == 0, "%s", e.msg);
    ck_assert_msg(got <= mu, "(%zu, %zu, %g): achieved %.9g", n, d, mu, got);
    ck_assert_msg(got == sp_geom_max_cos(G), "achieved %.9g is not max_cos %.9g", got,
                  sp_geom_max_cos(G));
    ck_assert_msg(naive_max_cos(G) < mu + 1e-6, "naive max |cos| %.9g", naive_max_cos(G));
    ck_assert_msg(worst_norm_error(G) < 1e-6, "norm error %g", worst_norm_error(G));
    /* Reproducible to the bit. */
    gsl_rng_set(r, seed);
    double again;
    ck_assert_int_eq(sp_geom_coherent(H, mu, r, &again, &e), 0);
    ck_assert(same_bits(G, H));
    gsl_matrix_float_free(H);
    gsl_matrix_float_free(G);
    gsl_rng_free(r);
}

START_TEST(test_coherent_reaches_mu)
{
    double t0 = sp_now();
    check_coherent(20, 10, 0.35, 1);
    check_coherent(64, 32, 0.25, 2);
    check_coherent(512, 256, 0.2, 3);
    /* n <= d, well above zero: the descent, not the orthonormal fallback */
    check_coherent(16, 24, 0.05, 4);
    ck_assert_msg(sp_now() - t0 < 30, "coherent took %.1f s", sp_now() - t0);
}
END_TEST

START_TEST(test_coherent_keeps_easy_draw)
{
    gsl_rng *r = rng_seeded(9);
    gsl_matrix_float *G = gsl_matrix_float_alloc(64, 32), *H = gsl_matrix_float_alloc(64, 32);
    sp_geom_gaussian(H, r);
    double m = sp_geom_max_cos(H);
    const double mus[] = { m, 0.5 * (m + 1), 1.0 };
    for (size_t k = 0; k < 3; k++) {
        gsl_rng_set(r, 9);
        sp_err e = { "" };
        double got = -1;
        ck_assert_int_eq(sp_geom_coherent(G, mus[k], r, &got, &e), 0);
        ck_assert_msg(same_bits(G, H), "mu = %g changed the draw", mus[k]);
        ck_assert_double_eq(got, m);
    }
    gsl_matrix_float_free(H);
    gsl_matrix_float_free(G);
    gsl_rng_free(r);
}
END_TEST

START_TEST(test_coherent_zero_when_n_le_d)
{
    const size_t sizes[][2] = { { 8, 8 }, { 5, 12 } };
    for (size_t s = 0; s < 2; s++) {
        size_t n = sizes[s][0], d = sizes[s][1];
        gsl_rng *r = rng_seeded(21);
        gsl_matrix_float *G = gsl_matrix_float_alloc(n, d);
        sp_err e = { "" };
        double got = -1;
        ck_assert_msg(sp_geom_coherent(G, 0.0, r, &got, &e) == 0, "%s", e.msg);
        ck_assert_msg(got < 1e-6 && got == sp_geom_max_cos(G), "achieved %g", got);
        ck_assert_msg(worst_gram_error(G, 0, n) < 1e-5, "|G G^T - I| = %g",
                      worst_gram_error(G, 0, n));
        gsl_matrix_float_free(G);
        gsl_rng_free(r);
    }
}
END_TEST

START_TEST(test_coherent_rejects)
{
    gsl_rng *r = rng_seeded(1);
    gsl_matrix_float *G = gsl_matrix_float_alloc(20, 10);
    sp_err e = { "" };
    double got = 0;
    /* Welch bound for 20 in R^10: 1/sqrt(19) = 0.2294 */
    ck_assert_int_eq(sp_geom_coherent(G, 0.2, r, &got, &e), -1);
    expect_msg(&e, "Welch");
    expect_msg(&e, "data.coherence");
    expect_msg(&e, "0.2294");
    expect_msg(&e, "n = 20");
    ck_assert_int_eq(sp_geom_coherent(G, 1.5, r, &got, &e), -1);
    expect_msg(&e, "data.coherence");
    ck_assert_int_eq(sp_geom_coherent(G, NAN, r, &got, &e), -1);
    /* Just above Welch: possible in principle (a tight frame), not for a
     * descent from random rows. Fails in well under a second, saying what
     * it reached; G holds that iterate. */
    double t0 = sp_now();
    ck_assert_int_eq(sp_geom_coherent(G, 0.2295, r, &got, &e), -1);
    ck_assert_msg(sp_now() - t0 < 5, "giving up took %.1f s", sp_now() - t0);
    expect_msg(&e, "data.coherence = 0.2295 not reached");
    expect_msg(&e, "try data.coherence >=");
    char reached[32];
    snprintf(reached, sizeof reached, "%.4f", got);
    expect_msg(&e, reached);
    ck_assert_msg(got > 0.2295 && got < 0.5, "reached %g", got);
    ck_assert_double_eq(got, sp_geom_max_cos(G));
    ck_assert(worst_norm_error(G) < 1e-6);
    gsl_matrix_float_free(G);
    gsl_rng_free(r);
}
END_TEST

/* ------------------------------------------------------------ from_npy */

START_TEST(test_from_npy)
{
    char tmp[256], path[600];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    snprintf(path, sizeof path, "%s/truth.npy", tmp);
    enum { N = 6, D = 4 };
    float a[N * D];
    for (int i = 0; i < N * D; i++)
        a[i] = (float)(sin(1.3 * i + 0.2) * (1 + i / D));
    sp_err e = { "" };
    ck_assert_int_eq(sp_npy_write_f32(path, a, N, D, &e), 0);
    gsl_matrix_float *G = gsl_matrix_float_alloc(N, D);
    ck_assert_msg(sp_geom_from_npy(path, G, &e) == 0, "%s", e.msg);
    double w = 0;
    for (int i = 0; i < N; i++) {
        double nrm = 0;
        for (int q = 0; q < D; q++)
            nrm += (double)a[i * D + q] * a[i * D + q];
        nrm = sqrt(nrm);
        for (int q = 0; q < D; q++)
            w = fmax(w, fabs(gsl_matrix_float_get(G, i, q) - a[i * D + q] / nrm));
    }
    ck_assert_msg(w < 1e-6, "rows differ from a / |a| by %g", w);

    /* Every rejection leaves G as it was. */
    gsl_matrix_float *keep = gsl_matrix_float_alloc(N, D);
    gsl_matrix_float_memcpy(keep, G);

    gsl_matrix_float *G5 = gsl_matrix_float_alloc(5, D);
    ck_assert_int_eq(sp_geom_from_npy(path, G5, &e), -1);
    expect_msg(&e, path);
    expect_msg(&e, "(6, 4)");
    expect_msg(&e, "(5, 4)");
    gsl_matrix_float_free(G5);

    ck_assert_int_eq(sp_npy_write_f32(path, a, N * D, 0, &e), 0);
    ck_assert_int_eq(sp_geom_from_npy(path, G, &e), -1);
    expect_msg(&e, path);
    expect_msg(&e, "1-D");

    float z[N * D];
    memcpy(z, a, sizeof z);
    memset(z + 2 * D, 0, D * sizeof *z);
    ck_assert_int_eq(sp_npy_write_f32(path, z, N, D, &e), 0);
    ck_assert_int_eq(sp_geom_from_npy(path, G, &e), -1);
    expect_msg(&e, path);
    expect_msg(&e, "row 2 is zero");

    memcpy(z, a, sizeof z);
    z[3 * D + 1] = NAN;
    ck_assert_int_eq(sp_npy_write_f32(path, z, N, D, &e), 0);
    ck_assert_int_eq(sp_geom_from_npy(path, G, &e), -1);
    expect_msg(&e, "row 3");
    expect_msg(&e, "non-finite");

    memcpy(z, a, sizeof z);
    z[5 * D] = -INFINITY;
    ck_assert_int_eq(sp_npy_write_f32(path, z, N, D, &e), 0);
    ck_assert_int_eq(sp_geom_from_npy(path, G, &e), -1);
    expect_msg(&e, "row 5");
    expect_msg(&e, "non-finite");
    ck_assert(same_bits(G, keep));

    unlink(path);
    ck_assert_int_eq(sp_geom_from_npy(path, G, &e), -1);
    expect_msg(&e, path);
    expect_msg(&e, "cannot open");
    ck_assert(same_bits(G, keep));

    gsl_matrix_float_free(keep);
    gsl_matrix_float_free(G);
    rmdir(tmp);
}
END_TEST

/* A hand-written '<f8' file (the reader converts): (2, 3) with rows
 * (3, 0, 4) and (0, -2, 0) -> (0.6, 0, 0.8) and (0, -1, 0). */
START_TEST(test_from_npy_f64)
{
    char tmp[256], path[600];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    snprintf(path, sizeof path, "%s/truth64.npy", tmp);
    const char *dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
    unsigned char buf[128 + 48];
    size_t len = strlen(dict), hlen = 128 - 10; /* header padded to 128 bytes */
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)hlen;
    buf[9] = 0;
    memcpy(buf + 10, dict, len);
    memset(buf + 10 + len, ' ', hlen - len - 1);
    buf[127] = '\n';
    const double v[6] = { 3, 0, 4, 0, -2, 0 };
    for (int i = 0; i < 6; i++) {
        uint64_t u;
        memcpy(&u, &v[i], 8);
        for (int b = 0; b < 8; b++)
            buf[128 + 8 * i + b] = (unsigned char)(u >> (8 * b));
    }
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(buf, 1, sizeof buf, f), sizeof buf);
    fclose(f);
    gsl_matrix_float *G = gsl_matrix_float_alloc(2, 3);
    sp_err e = { "" };
    ck_assert_msg(sp_geom_from_npy(path, G, &e) == 0, "%s", e.msg);
    const float want[6] = { 0.6f, 0, 0.8f, 0, -1, 0 };
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq_tol(G->data[i], want[i], 1e-7);
    gsl_matrix_float_free(G);
    unlink(path);
    rmdir(tmp);
}
END_TEST

/* ------------------------------------------------- orthonormalize_rows */

START_TEST(test_orthonormalize_rows)
{
    enum { N = 7, D = 5 };
    gsl_rng *r = rng_seeded(17);
    gsl_matrix_float *G = gsl_matrix_float_alloc(N, D), *old = gsl_matrix_float_alloc(N, D);
    for (size_t i = 0; i < N * D; i++)
        G->data[i] = (float)(gsl_rng_uniform(r) * 4 - 1); /* far from orthogonal */
    gsl_matrix_float_memcpy(old, G);
    sp_err e = { "" };
    ck_assert_msg(sp_geom_orthonormalize_rows(G, 2, 3, &e) == 0, "%s", e.msg);
    ck_assert_msg(worst_gram_error(G, 2, 3) < 1e-6, "|Q Q^T - I| = %g",
                  worst_gram_error(G, 2, 3));
    for (size_t i = 0; i < N; i++)
        if (i < 2 || i > 4)
            ck_assert_int_eq(memcmp(gsl_matrix_float_ptr(G, i, 0), gsl_matrix_float_ptr(old, i, 0),
                                    D * sizeof(float)), 0);
    /* Gram-Schmidt keeps the nested spans: the new first row is the old one
     * normalised, and every old row of the block lies in the new span. */
    double w0 = 0, n0 = 0, wspan = 0;
    for (size_t q = 0; q < D; q++)
        n0 += (double)gsl_matrix_float_get(old, 2, q) * gsl_matrix_float_get(old, 2, q);
    for (size_t q = 0; q < D; q++)
        w0 = fmax(w0, fabs(gsl_matrix_float_get(G, 2, q) - gsl_matrix_float_get(old, 2, q) /
                                                              sqrt(n0)));
    for (size_t a = 2; a < 5; a++) {
        double res[D];
        for (size_t q = 0; q < D; q++)
            res[q] = gsl_matrix_float_get(old, a, q);
        for (size_t b = 2; b < 5; b++) {
            double dot = 0;
            for (size_t q = 0; q < D; q++)
                dot += res[q] * gsl_matrix_float_get(G, b, q);
            for (size_t q = 0; q < D; q++)
                res[q] -= dot * gsl_matrix_float_get(G, b, q);
        }
        for (size_t q = 0; q < D; q++)
            wspan = fmax(wspan, fabs(res[q]));
    }
    ck_assert_msg(w0 < 1e-6, "first row moved off its direction by %g", w0);
    ck_assert_msg(wspan < 1e-5, "an old row is %g outside the new span", wspan);

    /* Errors: k > d, out of range, a dependent row (named). */
    ck_assert_int_eq(sp_geom_orthonormalize_rows(G, 0, 6, &e), -1);
    expect_msg(&e, "d = 5");
    ck_assert_int_eq(sp_geom_orthonormalize_rows(G, 5, 3, &e), -1);
    expect_msg(&e, "outside");
    for (size_t q = 0; q < D; q++)
        gsl_matrix_float_set(G, 1, q, 2 * gsl_matrix_float_get(G, 0, q));
    gsl_matrix_float_memcpy(old, G);
    ck_assert_int_eq(sp_geom_orthonormalize_rows(G, 0, 3, &e), -1);
    expect_msg(&e, "row 1");
    expect_msg(&e, "linear combination");
    ck_assert(same_bits(G, old));
    ck_assert_int_eq(sp_geom_orthonormalize_rows(G, 3, 0, &e), 0);
    gsl_matrix_float_free(old);
    gsl_matrix_float_free(G);
    gsl_rng_free(r);
}
END_TEST

Suite *make_geometry_suite(void)
{
    Suite *s = suite_create("geometry");
    TCase *tc = tcase_create("geometry");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_gaussian);
    tcase_add_test(tc, test_orthonormal);
    tcase_add_test(tc, test_max_cos_by_hand);
    tcase_add_test(tc, test_max_cos_blocked);
    tcase_add_test(tc, test_welch_bound);
    tcase_add_test(tc, test_coherent_reaches_mu);
    tcase_add_test(tc, test_coherent_keeps_easy_draw);
    tcase_add_test(tc, test_coherent_zero_when_n_le_d);
    tcase_add_test(tc, test_coherent_rejects);
    tcase_add_test(tc, test_from_npy);
    tcase_add_test(tc, test_from_npy_f64);
    tcase_add_test(tc, test_orthonormalize_rows);
    suite_add_tcase(s, tc);
    return s;
}
