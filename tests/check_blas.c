/* check_blas.c: GSL's BLAS calls go to OpenBLAS, never to GSL's reference
 * CBLAS (libgsl itself depends on libgslcblas, so the link order matters:
 * the program's own dependency on OpenBLAS must win the symbol lookup). */
#define _GNU_SOURCE
#include <dlfcn.h>
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

Suite *make_blas_suite(void)
{
    Suite *s = suite_create("blas");
    TCase *tc = tcase_create("link");
    tcase_add_test(tc, test_sgemm_is_openblas);
    suite_add_tcase(s, tc);
    return s;
}
