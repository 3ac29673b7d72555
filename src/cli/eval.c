/* eval.c: being written: `superpose eval`. */
#include <stdio.h>

int sp_cli_eval(int argc, char **argv);

int sp_cli_eval(int argc, char **argv)
{
    (void)argc, (void)argv;
    fprintf(stderr, "superpose: eval is being written\n");
    return 2;
}
