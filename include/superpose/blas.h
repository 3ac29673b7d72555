/* blas.h: OpenBLAS set-up.
 *
 * OpenBLAS picks its kernels from the CPU model at load time. A CPU newer
 * than the library (here: Intel model 207, unknown to OpenBLAS 0.3.21)
 * falls back to the SSE3 "Prescott" kernels, measured here at 34 GFLOP/s
 * against 120 GFLOP/s for the SkylakeX kernels on one core. sp_blas_init
 * checks the CPU's features and, when OpenBLAS chose a weaker core than the
 * CPU supports and OPENBLAS_CORETYPE is unset, sets it and re-executes the
 * program so that OpenBLAS loads the right kernels. A core set
 * by the user (OPENBLAS_CORETYPE) is kept. */
#ifndef SUPERPOSE_BLAS_H
#define SUPERPOSE_BLAS_H

/* Call first thing in main(). May not return (re-exec). */
void sp_blas_init(char **argv);
/* Number of BLAS threads for this process. */
void sp_blas_set_threads(int n);
/* 1 when a GEMM gives the same bits with `threads` BLAS threads as with
 * one (probed once per process on a training-sized product of each
 * transposition). OpenBLAS splits a GEMM by rows and columns of C, but
 * its Haswell kernels (OPENBLAS_CORETYPE=Haswell, even on a CPU with
 * AVX-512) still round differently with two threads, in every
 * transposition: there the runner keeps every training on one thread, so
 * that numbers never depend on -j. */
int sp_blas_threads_exact(int threads);
/* The kernel family OpenBLAS uses, e.g. "SkylakeX". */
const char *sp_blas_core(void);

#endif
