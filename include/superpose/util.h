/* util.h: errors, hashing, timing and small helpers shared by every module.
 *
 * Library code never prints or exits: it returns a status and fills an
 * sp_err with one readable message; only the CLI prints it. */
#ifndef SUPERPOSE_UTIL_H
#define SUPERPOSE_UTIL_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char msg[1024];
} sp_err;

/* Formats the message into err (if err is not NULL). Returns -1 so that
 * callers can write `return sp_err_set(err, ...);`. */
int sp_err_set(sp_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* 64-bit FNV-1a over a byte string (run keys, seed derivation). */
uint64_t sp_hash64(const void *data, size_t len, uint64_t seed);
/* Mixes a 64-bit value into a well-spread seed (splitmix64 finaliser). */
uint64_t sp_mix64(uint64_t x);

/* Sum of squares of n floats in double, with eight partial sums by
 * position (a fixed order, so the same bits everywhere, that vectorises
 * without reassociation flags). */
double sp_sumsq(const float *x, size_t n);

/* w (n) /= ||w||_2 (sp_sumsq, then one float factor 1 / sqrt); a zero
 * row is left as it is. */
void sp_unit_row(float *w, size_t n);

/* 1 if the hot kernels may use their AVX2 builds: the CPU has AVX2 and
 * SUPERPOSE_NO_AVX2 is not set. Both builds do the same IEEE operations in
 * the same order (no contraction into FMA), so results are the same bits;
 * sp_cpu_force_generic(1) makes the tests check that, (0) looks again. */
int sp_cpu_avx2(void);
void sp_cpu_force_generic(int on);

/* Monotonic wall time in seconds. */
double sp_now(void);

/* mkdir -p. Returns 0 on success. */
int sp_mkdirs(const char *path, sp_err *err);

/* Duplicates a string (NULL-safe). */
char *sp_strdup(const char *s);

/* Formats seconds as "1h02m", "3m05s" or "12.3s". */
void sp_fmt_duration(double seconds, char *buf, size_t len);

#endif
