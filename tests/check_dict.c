/* check_dict.c: tests of src/dict.c (being written). */
#include <check.h>

#include "helpers.h"

Suite *make_dict_suite(void)
{
    Suite *s = suite_create("dict");
    return s;
}
