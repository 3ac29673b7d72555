/* check_gated.c: (being written) */
#include "helpers.h"

Suite *make_gated_suite(void)
{
    Suite *s = suite_create("gated");
    return s;
}
