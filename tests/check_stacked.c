/* check_stacked.c: (being written) */
#include "helpers.h"

Suite *make_stacked_suite(void)
{
    Suite *s = suite_create("stacked");
    return s;
}
