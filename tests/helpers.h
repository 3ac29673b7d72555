/* helpers.h: suite constructors and shared test helpers. */
#ifndef SUPERPOSE_TEST_HELPERS_H
#define SUPERPOSE_TEST_HELPERS_H

#include <check.h>

Suite *make_util_suite(void);
Suite *make_blas_suite(void);
Suite *make_npy_suite(void);
Suite *make_store_suite(void);
Suite *make_figure_suite(void);
Suite *make_config_suite(void);
Suite *make_gen_suite(void);
Suite *make_geometry_suite(void);
Suite *make_tms_suite(void);
Suite *make_sae_suite(void);
Suite *make_penalty_suite(void);
Suite *make_optim_suite(void);
Suite *make_reg_suite(void);
Suite *make_gated_suite(void);
Suite *make_ensemble_suite(void);
Suite *make_stacked_suite(void);
Suite *make_solve_suite(void);
Suite *make_dict_suite(void);
Suite *make_ito_suite(void);
Suite *make_recovery_suite(void);
Suite *make_eval_suite(void);
Suite *make_metrics_suite(void);
Suite *make_runner_suite(void);
Suite *make_bench_suite(void);

/* A fresh empty temporary folder (mkdtemp under $TMPDIR or /tmp); the
 * returned string is static per call site's buffer and must be copied. */
const char *sp_test_tmpdir(char *buf, size_t len);

/* Sets option `name` (section.key or a unique bare key) of a run's
 * configuration to value; fails the test on an unknown key or bad value. */
#include "superpose/config.h"
void sp_test_set(sp_run_cfg *c, const char *name, const char *value);
/* Runs cmd through the shell and counts its output lines containing
 * `what`; the first such line goes to first (if not NULL). */
int sp_test_count_lines(const char *cmd, const char *what, char *first, size_t len);

#endif
