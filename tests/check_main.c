/* check_main.c: the one Check runner; every module adds its suite here. */
#include <check.h>
#include <stdlib.h>

#include "helpers.h"
#include "superpose/blas.h"

int main(int argc, char **argv)
{
    (void)argc;
    sp_blas_init(argv);
    sp_blas_set_threads(1);
    Suite *(*suites[])(void) = {
        make_util_suite,
        make_blas_suite,
        make_npy_suite,
        make_store_suite,
        make_figure_suite,
        make_config_suite,
        make_gen_suite,
        make_geometry_suite,
        make_tms_suite,
        make_penalty_suite,
        make_optim_suite,
        make_reg_suite,
        make_sae_suite,
        make_gated_suite,
        make_stacked_suite,
        make_solve_suite,
        make_dict_suite,
        make_metrics_suite,
        make_runner_suite,
        make_ensemble_suite,
        make_ito_suite,
        make_recovery_suite,
        make_eval_suite,
        make_bench_suite,
    };
    SRunner *sr = srunner_create(NULL);
    for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++)
        srunner_add_suite(sr, suites[i]());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
