/* check_penalty.c: (being written) */
#include "helpers.h"

Suite *make_penalty_suite(void)
{
    Suite *s = suite_create("penalty");
    return s;
}
