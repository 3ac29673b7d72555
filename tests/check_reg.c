/* check_reg.c: (being written) */
#include "helpers.h"

Suite *make_reg_suite(void)
{
    Suite *s = suite_create("reg");
    return s;
}
