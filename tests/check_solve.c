/* check_solve.c: tests of src/solve.c (being written). */
#include <check.h>

#include "helpers.h"

Suite *make_solve_suite(void)
{
    Suite *s = suite_create("solve");
    return s;
}
