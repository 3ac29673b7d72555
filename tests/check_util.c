/* check_util.c: hashing, duration formatting, folder creation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "helpers.h"
#include "superpose/config.h"
#include "superpose/util.h"

const char *sp_test_tmpdir(char *buf, size_t len)
{
    const char *t = getenv("TMPDIR");
    snprintf(buf, len, "%s/sp_test_XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(buf);
}

void sp_test_set(sp_run_cfg *c, const char *name, const char *value)
{
    sp_err e;
    const sp_opt *o = sp_config_lookup(name, &e);
    ck_assert_msg(o != NULL, "%s", e.msg);
    ck_assert_msg(sp_config_set(c, o, value, &e) == 0, "%s", e.msg);
}

int sp_test_count_lines(const char *cmd, const char *what, char *first, size_t len)
{
    FILE *p = popen(cmd, "r");
    char line[2048];
    int n = 0;
    if (first)
        first[0] = '\0';
    while (p && fgets(line, sizeof line, p)) {
        if (strstr(line, what)) {
            if (!n && first)
                snprintf(first, len, "%s", line);
            n++;
        }
    }
    if (p)
        pclose(p);
    return n;
}

START_TEST(test_fnv1a_known)
{
    /* Published FNV-1a 64 test vectors: "" and "a". */
    ck_assert_uint_eq(sp_hash64("", 0, 0), 0xcbf29ce484222325ULL);
    ck_assert_uint_eq(sp_hash64("a", 1, 0), 0xaf63dc4c8601ec8cULL);
}
END_TEST

START_TEST(test_duration)
{
    char b[32];
    sp_fmt_duration(12.34, b, sizeof b);
    ck_assert_str_eq(b, "12.3s");
    sp_fmt_duration(185, b, sizeof b);
    ck_assert_str_eq(b, "3m05s");
    sp_fmt_duration(3600 + 120, b, sizeof b);
    ck_assert_str_eq(b, "1h02m");
}
END_TEST

START_TEST(test_mkdirs)
{
    char tmp[256], path[512];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    snprintf(path, sizeof path, "%s/a/b/c", tmp);
    sp_err e;
    ck_assert_int_eq(sp_mkdirs(path, &e), 0);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_int_eq(sp_mkdirs(path, &e), 0); /* idempotent */
    ck_assert_int_eq(sp_mkdirs("/proc/superpose_no/x", &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "cannot create folder"));
}
END_TEST

Suite *make_util_suite(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_fnv1a_known);
    tcase_add_test(tc, test_duration);
    tcase_add_test(tc, test_mkdirs);
    suite_add_tcase(s, tc);
    return s;
}
