/* check_bench.c: the pure helpers of `superpose bench` (src/cli/bench.c,
 * included here for its static functions): the Markdown table writer and
 * the byte count of a learner's buffers, against a count by hand and
 * against what sp_learner_alloc and sp_optim_alloc really allocate. No
 * timings. */
#include "../src/cli/bench.c"
#include "../src/cli/bench_ens.c"

#include <malloc.h>

#include "helpers.h"

START_TEST(test_md_table)
{
    md_table t;
    md_init(&t, "a|b");
    ck_assert_int_eq((int)t.ncol, 2);
    ck_assert_int_eq(md_row(&t, "%s|%d", "x", 1), 0);
    ck_assert_int_eq(md_row(&t, " yy | %d ", 22), 0); /* cells are trimmed */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    md_write(f, &t);
    fclose(f);
    ck_assert_str_eq(buf, "| a | b |\n"
                          "|:---|---:|\n"
                          "| x | 1 |\n"
                          "| yy | 22 |\n");
    free(buf);
    /* a short row leaves its last cells empty; a full table refuses rows */
    md_init(&t, "a|b|c");
    md_row(&t, "only");
    ck_assert_str_eq(t.cell[0][0], "only");
    ck_assert_str_eq(t.cell[0][2], "");
    for (int r = 1; r < MD_ROWS; r++)
        ck_assert_int_eq(md_row(&t, "%d", r), 0);
    ck_assert_int_eq(md_row(&t, "one too many"), -1);
}
END_TEST

START_TEST(test_flags)
{
    ck_assert_int_eq(has_flag("flags\t: fpu avx avx2 avx512f\n", "avx2"), 1);
    ck_assert_int_eq(has_flag("flags\t: fpu avx avx2 avx512f\n", "avx512f"), 1);
    ck_assert_int_eq(has_flag("flags\t: fpu avx avx512fx avx2x\n", "avx512f"), 0);
    ck_assert_int_eq(has_flag("flags\t: fpu avx avx512fx avx2x\n", "avx2"), 0);
}
END_TEST

static void tiny_cfg(sp_run_cfg *cfg)
{
    sp_config_defaults(cfg);
    cfg->data.d = 4;
    cfg->data.n = 3;
    cfg->model.ratio = 2; /* m = 6 */
    cfg->batch = 2;
    cfg->model.k_aux = 2;
}

/* d = 4, m = 6, B = 2, k_aux = 2, relu L1, Adam, sparse kernels, by hand:
 *   params  W_e 24 + b_e 6 + W_d 24 = 54 floats           = 216
 *   grads   the same                                        = 216
 *   optim   2 x 54 + 1 floats = 436; idle rows of W_e, W_d
 *           (no weight decay) 2 x 6 long = 96                = 532
 *   batch   xc 8, sacc 8, r 8, p 12, f 12, df 12, scratch 12
 *           floats = 288; aux_idx 4 size_t = 32, aux_val 4 floats
 *           = 16, aux_n 2 size_t = 16; cidx 12 unsigned = 48, cval
 *           12 floats = 48, cptr 3 size_t = 24, aux_dp 4 floats = 16
 *                                                           = 488
 *   other   fires, last_fired, dead 6 x 8 each = 144; dnorm, ddnorm,
 *           dead_z, dead_f 6 x 4 each = 96; ebuf 4 floats = 16;
 *           dirty 6                                         = 262 */
START_TEST(test_bytes_by_hand)
{
    sp_run_cfg cfg;
    tiny_cfg(&cfg);
    sae_bytes b;
    ck_assert_int_eq(sae_count_bytes(&cfg, &b), 0);
    ck_assert_uint_eq(b.params, 216);
    ck_assert_uint_eq(b.grads, 216);
    ck_assert_uint_eq(b.optim, 532);
    ck_assert_uint_eq(b.batch, 488);
    ck_assert_uint_eq(b.other, 262);
    /* b_d: 4 more floats in each of params, grads and both moments */
    cfg.model.pre_bias = 1;
    ck_assert_int_eq(sae_count_bytes(&cfg, &b), 0);
    ck_assert_uint_eq(b.params, 232);
    ck_assert_uint_eq(b.optim, 564);
    /* weight decay: no idle rows */
    cfg.optim.weight_decay = 0.01;
    ck_assert_int_eq(sae_count_bytes(&cfg, &b), 0);
    ck_assert_uint_eq(b.optim, 468);
    /* decoder norms in the penalty: no sparse kernels, no cidx, cval,
     * cptr, aux_dp, dirty */
    tiny_cfg(&cfg);
    snprintf(cfg.penalty.name, sizeof cfg.penalty.name, "l1_dnorm");
    ck_assert_int_eq(sae_count_bytes(&cfg, &b), 0);
    ck_assert_uint_eq(b.batch, 488 - 136);
    ck_assert_uint_eq(b.other, 262 - 6);
    /* learners it does not describe */
    tiny_cfg(&cfg);
    snprintf(cfg.model.arch, sizeof cfg.model.arch, "gated");
    ck_assert_int_eq(sae_count_bytes(&cfg, &b), -1);
    tiny_cfg(&cfg);
    snprintf(cfg.optim.name, sizeof cfg.optim.name, "muon");
    ck_assert_int_eq(sae_count_bytes(&cfg, &b), -1);
}
END_TEST

/* The ensemble bounds by hand: 17 models one after another in 10 s, of
 * which generation 1.7 s (an ensemble keeps 1/17 of it: saves 1.6 s) and
 * encoder products 3 s for 2e11 FLOPs, 2 s at a 100 GFLOP/s peak: at peak
 * 10 / (10 - 1.6 - 1) = 1.3514, free 10 / (10 - 1.6 - 3) = 1.8519. Products
 * already faster than the peak save nothing at peak. */
START_TEST(test_ensemble_bounds)
{
    sp_bench_ens e = {.models = 17, .t_auto = 10, .t_gen = 1.7, .t_enc = 3, .enc_flops = 2e11};
    double at_peak, at_free;
    ens_bounds(&e, 100, &at_peak, &at_free);
    ck_assert_double_eq_tol(at_peak, 10 / 7.4, 1e-12);
    ck_assert_double_eq_tol(at_free, 10 / 5.4, 1e-12);
    e.t_enc = 1.5;
    ens_bounds(&e, 100, &at_peak, &at_free);
    ck_assert_double_eq_tol(at_peak, 10 / 8.4, 1e-12);
    ck_assert_double_eq_tol(at_free, 10 / 6.9, 1e-12);
}
END_TEST

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* The count against malloc's own: what sp_learner_alloc and
 * sp_optim_alloc add to the heap is the count plus structs, headers and
 * page rounding (well under 64 KiB), for relu (sparse kernels) and
 * relu with decoder norms (none). */
START_TEST(test_bytes_against_malloc)
{
    const char *pens[2] = {"l1", "l1_dnorm"};
    for (int q = 0; q < 2; q++) {
        sp_run_cfg cfg;
        sp_config_defaults(&cfg);
        cfg.data.d = 64;
        cfg.data.n = 256;
        cfg.model.ratio = 4;
        cfg.batch = 64;
        snprintf(cfg.penalty.name, sizeof cfg.penalty.name, "%s", pens[q]);
        sae_bytes b;
        ck_assert_int_eq(sae_count_bytes(&cfg, &b), 0);
        size_t counted = b.params + b.grads + b.optim + b.batch + b.other;
        size_t d = 64, m = sp_config_latents(&cfg);
        gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
        sp_err err;
        size_t before = heap_in_use();
        sp_learner *L = sp_learner_alloc(&cfg.model, &cfg.penalty, d, m, 64, 100, rng, &err);
        ck_assert_ptr_nonnull(L);
        sp_optim *o = sp_optim_alloc(&cfg.optim, L->params, L->n_params, 100);
        ck_assert_ptr_nonnull(o);
        size_t used = heap_in_use() - before;
#ifndef __SANITIZE_ADDRESS__ /* ASan's allocator is invisible to mallinfo2 */
        ck_assert_msg(used >= counted && used - counted < 64 * 1024,
                      "%s: malloc holds %zu bytes, the count is %zu", pens[q], used, counted);
#else
        (void)used, (void)counted;
#endif
        sp_optim_free(o);
        sp_learner_free(L);
        gsl_rng_free(rng);
    }
}
END_TEST

Suite *make_bench_suite(void)
{
    Suite *s = suite_create("bench");
    TCase *tc = tcase_create("helpers");
    tcase_add_test(tc, test_md_table);
    tcase_add_test(tc, test_flags);
    tcase_add_test(tc, test_bytes_by_hand);
    tcase_add_test(tc, test_bytes_against_malloc);
    tcase_add_test(tc, test_ensemble_bounds);
    suite_add_tcase(s, tc);
    return s;
}
