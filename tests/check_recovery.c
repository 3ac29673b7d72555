/* check_recovery.c: being written. */
#include <check.h>

#include "helpers.h"

Suite *make_recovery_suite(void)
{
    Suite *s = suite_create("recovery");
    return s;
}
