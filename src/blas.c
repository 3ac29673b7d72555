/* blas.c: OpenBLAS kernel selection and threads (see blas.h). */
#include "superpose/blas.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <gsl/gsl_cblas.h>

char *openblas_get_corename(void);
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

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

/* One product of each transposition at a training's shape (batch 256,
 * d 256, 1024 latents: large enough for OpenBLAS to thread it), with one
 * thread and with `threads`, compared bit for bit. */
int sp_blas_threads_exact(int threads)
{
    static int known[2] = {-1, -1}; /* for 2 threads, for more */
    if (threads <= 1)
        return 1;
    int slot = threads > 2;
    if (known[slot] >= 0)
        return known[slot];
    enum { B = 256, D = 256, M = 1024 };
    float *a = malloc(sizeof(float) * B * M), *w = malloc(sizeof(float) * M * D),
          *c1 = malloc(sizeof(float) * B * M), *c2 = malloc(sizeof(float) * B * M);
    if (!a || !w || !c1 || !c2) {
        free(a), free(w), free(c1), free(c2);
        return 0;
    }
    unsigned s = 12345u;
    for (size_t i = 0; i < (size_t)B * M; i++)
        a[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    for (size_t i = 0; i < (size_t)M * D; i++)
        w[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    int before = openblas_get_num_threads(), same = 1;
    for (int t = 0; t < 4 && same; t++) {
        enum CBLAS_TRANSPOSE ta = t & 1 ? CblasTrans : CblasNoTrans;
        enum CBLAS_TRANSPOSE tb = t & 2 ? CblasTrans : CblasNoTrans;
        /* C (B x M) = op(X) op(W): X is B x D, W is D x M, as stored */
        int lda = ta == CblasNoTrans ? D : B, ldb = tb == CblasNoTrans ? M : D;
        float *c[2] = {c1, c2};
        for (int k = 0; k < 2; k++) {
            openblas_set_num_threads(k ? threads : 1);
            cblas_sgemm(CblasRowMajor, ta, tb, B, M, D, 1.0f, a, lda, w, ldb, 0.0f, c[k], M);
        }
        same = memcmp(c1, c2, sizeof(float) * B * M) == 0;
    }
    openblas_set_num_threads(before);
    free(a), free(w), free(c1), free(c2);
    return known[slot] = same;
}
