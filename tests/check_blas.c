/* check_blas.c: GSL's BLAS calls go to OpenBLAS, never to GSL's reference
 * CBLAS (libgsl itself depends on libgslcblas, so the link order matters:
 * the program's own dependency on OpenBLAS must win the symbol lookup). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_cblas.h>

#include "helpers.h"
#include "superpose/blas.h"

START_TEST(test_sgemm_is_openblas)
{
    Dl_info info;
    void *sym = dlsym(RTLD_DEFAULT, "cblas_sgemm");
    ck_assert_ptr_nonnull(sym);
    ck_assert(dladdr(sym, &info) != 0);
    ck_assert_msg(strstr(info.dli_fname, "openblas") != NULL, "cblas_sgemm comes from %s",
                  info.dli_fname);
    ck_assert_ptr_nonnull(sp_blas_core());
}
END_TEST

/* The probe's verdict (one product of each transposition at batch 256,
 * d 256, 1024 latents) holds for the products of a wider training (4096
 * latents) and of the decoder's shape: with 1 and 2 threads they are
 * bit for bit the same where the probe says so, and some differ where it
 * does not (OpenBLAS's Haswell kernels round differently with threads). */
START_TEST(test_threads_exact_probe)
{
    enum { B = 256, D = 256, M = 4096 };
    float *a = malloc(sizeof(float) * M * D), *b = malloc(sizeof(float) * M * D),
          *c1 = malloc(sizeof(float) * M * B), *c2 = malloc(sizeof(float) * M * B);
    ck_assert(a && b && c1 && c2);
    for (size_t i = 0; i < (size_t)M * D; i++) {
        a[i] = (float)sin(0.37 * (double)i);
        b[i] = (float)cos(0.11 * (double)i);
    }
    /* (rows, cols, inner, trans A, trans B): the encoder X W_e^T, the
     * decoder F W_d, and the weight gradients G^T X and F^T G */
    const int shape[][5] = {{B, M, D, 0, 1}, {B, D, M, 0, 0}, {M, D, B, 1, 0}, {D, M, B, 1, 0}};
    int differ = 0;
    for (size_t s = 0; s < sizeof shape / sizeof shape[0]; s++) {
        int r = shape[s][0], c = shape[s][1], k = shape[s][2];
        enum CBLAS_TRANSPOSE ta = shape[s][3] ? CblasTrans : CblasNoTrans;
        enum CBLAS_TRANSPOSE tb = shape[s][4] ? CblasTrans : CblasNoTrans;
        int lda = shape[s][3] ? r : k, ldb = shape[s][4] ? k : c;
        float *out[2] = {c1, c2};
        for (int t = 0; t < 2; t++) {
            sp_blas_set_threads(t + 1);
            cblas_sgemm(CblasRowMajor, ta, tb, r, c, k, 1.0f, a, lda, b, ldb, 0.0f, out[t], c);
        }
        differ += memcmp(c1, c2, sizeof(float) * (size_t)r * (size_t)c) != 0;
    }
    sp_blas_set_threads(1);
    int exact = sp_blas_threads_exact(2);
    ck_assert_msg(exact ? differ == 0 : differ > 0, "probe says %s, %d of 4 products differ (%s)",
                  exact ? "exact" : "inexact", differ, sp_blas_core());
    ck_assert_int_eq(sp_blas_threads_exact(1), 1);
    free(a), free(b), free(c1), free(c2);
}
END_TEST

Suite *make_blas_suite(void)
{
    Suite *s = suite_create("blas");
    TCase *tc = tcase_create("link");
    tcase_add_test(tc, test_sgemm_is_openblas);
    tcase_add_test(tc, test_threads_exact_probe);
    suite_add_tcase(s, tc);
    return s;
}
