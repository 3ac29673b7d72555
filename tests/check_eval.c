/* check_eval.c: being written. */
#include <check.h>

#include "helpers.h"

Suite *make_eval_suite(void)
{
    Suite *s = suite_create("eval");
    return s;
}
