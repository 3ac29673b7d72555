/* util.c: errors, hashing, timing, folders. */
#include "superpose/util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int sp_err_set(sp_err *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

uint64_t sp_hash64(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h = 14695981039346656037ULL ^ seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

uint64_t sp_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* -1: not yet looked up; the lookup reads the CPU once */
static int avx2_state = -1;

int sp_cpu_avx2(void)
{
    if (avx2_state < 0) {
        int has = 0;
#if defined(__x86_64__) && defined(__GNUC__)
        has = __builtin_cpu_supports("avx2") && !getenv("SUPERPOSE_NO_AVX2");
#endif
        avx2_state = has;
    }
    return avx2_state;
}

void sp_cpu_force_generic(int on) { avx2_state = on ? 0 : -1; }

#define SUMSQ_BODY                                                                              \
    double acc[8] = {0};                                                                        \
    size_t i = 0;                                                                               \
    for (; i + 8 <= n; i += 8)                                                                  \
        for (size_t q = 0; q < 8; q++)                                                          \
            acc[q] += (double)x[i + q] * x[i + q];                                              \
    double s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])); \
    for (; i < n; i++)                                                                          \
        s += (double)x[i] * x[i];                                                               \
    return s;

static double sumsq_generic(const float *restrict x, size_t n) { SUMSQ_BODY }

#if defined(__x86_64__) && defined(__GNUC__)
/* the same operations in the same order, four doubles a vector */
__attribute__((target("avx2"))) static double sumsq_avx2(const float *restrict x, size_t n)
{
    SUMSQ_BODY
}
#endif

double sp_sumsq(const float *restrict x, size_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (sp_cpu_avx2())
        return sumsq_avx2(x, n);
#endif
    return sumsq_generic(x, n);
}

void sp_unit_row(float *w, size_t n)
{
    double n2 = sp_sumsq(w, n);
    if (n2 > 0) {
        float inv = (float)(1.0 / sqrt(n2));
        for (size_t j = 0; j < n; j++)
            w[j] *= inv;
    }
}

double sp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int sp_mkdirs(const char *path, sp_err *err)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return sp_err_set(err, "invalid folder name '%s'", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return sp_err_set(err, "cannot create folder '%s': %s", buf,
                              strerror(errno));
        buf[i] = c;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return sp_err_set(err, "'%s' is not a folder", path);
    return 0;
}

char *sp_strdup(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

void sp_fmt_duration(double s, char *buf, size_t len)
{
    if (!(s >= 0) || s > 1e8) {
        snprintf(buf, len, "?");
    } else if (s >= 3600) {
        long m = (long)(s / 60 + 0.5);
        snprintf(buf, len, "%ldh%02ldm", m / 60, m % 60);
    } else if (s >= 60) {
        long t = (long)(s + 0.5);
        snprintf(buf, len, "%ldm%02lds", t / 60, t % 60);
    } else {
        snprintf(buf, len, "%.1fs", s);
    }
}
