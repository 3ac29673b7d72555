/* check_main.c: the one Check runner; every module adds its suite here. */
#include <check.h>
#include <stdlib.h>

#include "helpers.h"

int main(void)
{
    Suite *(*suites[])(void) = {
        make_util_suite,
        make_npy_suite,
        make_store_suite,
        make_figure_suite,
    };
    SRunner *sr = srunner_create(NULL);
    for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++)
        srunner_add_suite(sr, suites[i]());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
