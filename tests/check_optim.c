/* check_optim.c: (being written) */
#include "helpers.h"

Suite *make_optim_suite(void)
{
    Suite *s = suite_create("optim");
    return s;
}
