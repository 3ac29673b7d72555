/* blas.c: OpenBLAS kernel selection and threads (see blas.h). */
#include "superpose/blas.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

char *openblas_get_corename(void);
void openblas_set_num_threads(int num_threads);

const char *sp_blas_core(void) { return openblas_get_corename(); }

void sp_blas_set_threads(int n) { openblas_set_num_threads(n < 1 ? 1 : n); }

void sp_blas_init(char **argv)
{
    if (getenv("OPENBLAS_CORETYPE") || getenv("SUPERPOSE_BLAS_REEXEC"))
        return;
    const char *core = openblas_get_corename();
    const char *want = NULL;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        want = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        want = "Haswell";
    if (!want || !core)
        return;
    /* Only the generic fallbacks are replaced; a core OpenBLAS recognised is kept. */
    static const char *generic[] = {"prescott", "core2", "penryn", "dunnington", "nehalem",
                                     "sandybridge", "katmai", "coppermine", "northwood",
                                     "banias", "atom", "unknown"};
    int weak = 0;
    for (size_t i = 0; i < sizeof generic / sizeof generic[0]; i++)
        weak |= strcasecmp(core, generic[i]) == 0;
    if (!weak)
        return;
    setenv("OPENBLAS_CORETYPE", want, 1);
    setenv("SUPERPOSE_BLAS_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the slower kernels */
}
