/* check_npy.c: .npy round trips, exact header bytes, hand-written '<f8' and
 * version 2.0 files, and a fuzz of truncated, corrupted and forged files. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"
#include "superpose/npy.h"

/* ------------------------------------------------------------- helpers */

static void write_bytes(const char *path, const void *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(buf, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* Reads a whole file into a malloc'ed buffer. */
static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long len = ftell(f);
    ck_assert_int_ge(len, 0);
    rewind(f);
    unsigned char *b = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* Builds a .npy image by hand: preamble of the given version, the dict text
 * padded with spaces to a 64-byte boundary, then the raw data bytes. */
static size_t make_npy(unsigned char *out, int major, const char *dict,
                       const void *data, size_t data_len)
{
    size_t pre = major == 1 ? 10 : 12, len = strlen(dict);
    size_t total = pre + len + 1;
    size_t pad = (64 - total % 64) % 64;
    size_t hlen = len + pad + 1;
    memcpy(out, "\x93NUMPY", 6);
    out[6] = (unsigned char)major;
    out[7] = 0;
    out[8] = (unsigned char)hlen;
    out[9] = (unsigned char)(hlen >> 8);
    if (major != 1) {
        out[10] = (unsigned char)(hlen >> 16);
        out[11] = (unsigned char)(hlen >> 24);
    }
    memcpy(out + pre, dict, len);
    memset(out + pre + len, ' ', pad);
    out[pre + len + pad] = '\n';
    memcpy(out + pre + hlen, data, data_len);
    return pre + hlen + data_len;
}

static void le64(unsigned char *b, double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(u >> (8 * i));
}

static void le32(unsigned char *b, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char)(u >> (8 * i));
}

static const float k23[6] = { 1.0f, -2.5f, 3.25f, 0.0f, -0.0f, 1e-40f };

/* The reader on a file that must be rejected: -1, a one-line message
 * naming the file, nothing returned. */
static void expect_reject(const char *path, const char *needle)
{
    static float sentinel;
    float *d = &sentinel;
    size_t r = 77, c = 77;
    sp_err e = { "" };
    ck_assert_int_eq(sp_npy_read_f32(path, &d, &r, &c, &e), -1);
    ck_assert_ptr_null(d);
    ck_assert_ptr_nonnull(strstr(e.msg, path));
    ck_assert_ptr_null(strchr(e.msg, '\n'));
    if (needle)
        ck_assert_msg(strstr(e.msg, needle), "'%s' not in \"%s\"", needle,
                      e.msg);
}

/* ---------------------------------------------------------- round trips */

START_TEST(test_roundtrip_2d)
{
    char tmp[256], path[512];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    snprintf(path, sizeof path, "%s/m.npy", tmp);
    enum { R = 37, C = 53 };
    float *a = malloc(R * C * sizeof *a);
    for (int i = 0; i < R * C; i++)
        a[i] = (float)sin(0.37 * i) * powf(10.0f, (float)(i % 61 - 30));
    a[0] = -0.0f;
    a[1] = INFINITY;
    a[2] = -INFINITY;
    a[3] = NAN;
    a[4] = 1e-45f; /* smallest subnormal */
    sp_err e;
    ck_assert_int_eq(sp_npy_write_f32(path, a, R, C, &e), 0);
    float *b = NULL;
    size_t r = 0, c = 0;
    ck_assert_msg(sp_npy_read_f32(path, &b, &r, &c, &e) == 0, "%s", e.msg);
    ck_assert_uint_eq(r, R);
    ck_assert_uint_eq(c, C);
    ck_assert_int_eq(memcmp(a, b, sizeof(float) * R * C), 0);
    /* Overwriting an existing file goes through the same rename. */
    a[5] = 42.0f;
    ck_assert_int_eq(sp_npy_write_f32(path, a, R, C, &e), 0);
    free(b);
    ck_assert_int_eq(sp_npy_read_f32(path, &b, &r, &c, &e), 0);
    ck_assert_int_eq(memcmp(a, b, sizeof(float) * R * C), 0);
    free(a);
    free(b);
    unlink(path);
    rmdir(tmp);
}
END_TEST

START_TEST(test_roundtrip_1d)
{
    char tmp[256], path[512];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    snprintf(path, sizeof path, "%s/v.npy", tmp);
    float a[100];
    for (int i = 0; i < 100; i++)
        a[i] = (float)i / 7.0f - 3.0f;
    sp_err e;
    ck_assert_int_eq(sp_npy_write_f32(path, a, 100, 0, &e), 0);
    float *b = NULL;
    size_t r = 0, c = 9;
    ck_assert_msg(sp_npy_read_f32(path, &b, &r, &c, &e) == 0, "%s", e.msg);
    ck_assert_uint_eq(r, 100);
    ck_assert_uint_eq(c, 0);
    ck_assert_int_eq(memcmp(a, b, sizeof a), 0);
    free(b);

    /* Empty arrays: (0,) and (0, 4). */
    ck_assert_int_eq(sp_npy_write_f32(path, NULL, 0, 0, &e), 0);
    ck_assert_int_eq(sp_npy_read_f32(path, &b, &r, &c, &e), 0);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(r, 0);
    ck_assert_uint_eq(c, 0);
    free(b);
    ck_assert_int_eq(sp_npy_write_f32(path, NULL, 0, 4, &e), 0);
    ck_assert_int_eq(sp_npy_read_f32(path, &b, &r, &c, &e), 0);
    ck_assert_uint_eq(r, 0);
    ck_assert_uint_eq(c, 4);
    free(b);
    unlink(path);
    rmdir(tmp);
}
END_TEST

/* The exact bytes numpy.save writes for np.zeros((2, 3), '<f4') (numpy
 * >= 1.24 pads to the same 128 bytes), with our data. */
START_TEST(test_header_bytes)
{
    static const char expect[] =
        "\x93NUMPY\x01\x00\x76\x00"
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
        "                              " /* 58 spaces of padding */
        "                            "
        "\n";
    ck_assert_uint_eq(sizeof expect - 1, 128);
    char tmp[256], path[512];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    snprintf(path, sizeof path, "%s/h.npy", tmp);
    sp_err e;
    ck_assert_int_eq(sp_npy_write_f32(path, k23, 2, 3, &e), 0);
    size_t n;
    unsigned char *b = slurp(path, &n);
    ck_assert_uint_eq(n, 128 + 6 * 4);
    ck_assert_int_eq(memcmp(b, expect, 128), 0);
    unsigned char d[24];
    for (int i = 0; i < 6; i++)
        le32(d + 4 * i, k23[i]);
    ck_assert_int_eq(memcmp(b + 128, d, 24), 0);
    free(b);

    /* 1-D: "(5,)", padded the same way, and no temporary file left. */
    ck_assert_int_eq(sp_npy_write_f32(path, k23, 5, 0, &e), 0);
    b = slurp(path, &n);
    ck_assert_uint_eq(n, 128 + 5 * 4);
    ck_assert_int_eq(memcmp(b + 10, "{'descr': '<f4', 'fortran_order': "
                                    "False, 'shape': (5,), } ", 58), 0);
    ck_assert_uint_eq(b[8] | b[9] << 8, 118);
    ck_assert_int_eq(b[127], '\n');
    free(b);
    char tpath[600];
    snprintf(tpath, sizeof tpath, "%s.tmp.%ld", path, (long)getpid());
    ck_assert_int_ne(access(tpath, F_OK), 0);
    unlink(path);
    rmdir(tmp);
}
END_TEST

START_TEST(test_read_f8_and_v2)
{
    char tmp[256], path[512];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    snprintf(path, sizeof path, "%s/d.npy", tmp);
    const double v[4] = { 0.1, -1e300, 3.0, 1.0 / 3.0 };
    unsigned char d[32], img[256];
    for (int i = 0; i < 4; i++)
        le64(d + 8 * i, v[i]);
    /* numpy's own spelling: double quotes and no trailing comma are legal. */
    size_t n = make_npy(img, 1, "{\"descr\": \"<f8\", \"shape\": (2, 2), "
                        "\"fortran_order\": False}", d, sizeof d);
    write_bytes(path, img, n);
    float *b = NULL;
    size_t r, c;
    sp_err e;
    ck_assert_msg(sp_npy_read_f32(path, &b, &r, &c, &e) == 0, "%s", e.msg);
    ck_assert_uint_eq(r, 2);
    ck_assert_uint_eq(c, 2);
    for (int i = 0; i < 4; i++) {
        float want = (float)v[i];
        ck_assert_int_eq(memcmp(&b[i], &want, 4), 0); /* -1e300 -> -inf */
    }
    free(b);

    /* Version 2.0 (uint32 header length), 1-D '<f4'. */
    unsigned char f[24];
    for (int i = 0; i < 6; i++)
        le32(f + 4 * i, k23[i]);
    n = make_npy(img, 2, "{'descr': '<f4', 'fortran_order': False, "
                 "'shape': (6,), }", f, sizeof f);
    ck_assert_uint_eq((n - 24) % 64, 0);
    write_bytes(path, img, n);
    ck_assert_msg(sp_npy_read_f32(path, &b, &r, &c, &e) == 0, "%s", e.msg);
    ck_assert_uint_eq(r, 6);
    ck_assert_uint_eq(c, 0);
    ck_assert_int_eq(memcmp(b, k23, sizeof k23), 0);
    free(b);
    unlink(path);
    rmdir(tmp);
}
END_TEST

START_TEST(test_reject_messages)
{
    char tmp[256], path[512];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    snprintf(path, sizeof path, "%s/x.npy", tmp);
    unsigned char img[256], d[24] = { 0 };
    size_t n;

    expect_reject(path, "No such file");
    write_bytes(path, "PK\x03\x04 not numpy at all", 22);
    expect_reject(path, "not a .npy file (bad magic)");

    n = make_npy(img, 1, "{'descr': '>f4', 'fortran_order': False, "
                 "'shape': (2, 3), }", d, 24);
    write_bytes(path, img, n);
    expect_reject(path, "'>f4'");
    expect_reject(path, "expected '<f4'");

    n = make_npy(img, 1, "{'descr': '<i8', 'fortran_order': False, "
                 "'shape': (3,), }", d, 24);
    write_bytes(path, img, n);
    expect_reject(path, "unsupported dtype '<i8'");

    n = make_npy(img, 1, "{'descr': [('a', '<f4')], 'fortran_order': "
                 "False, 'shape': (6,), }", d, 24);
    write_bytes(path, img, n);
    expect_reject(path, "structured dtype");

    n = make_npy(img, 1, "{'descr': '<f4', 'fortran_order': True, "
                 "'shape': (2, 3), }", d, 24);
    write_bytes(path, img, n);
    expect_reject(path, "Fortran");

    n = make_npy(img, 3, "{'descr': '<f4', 'fortran_order': False, "
                 "'shape': (2, 3), }", d, 24);
    write_bytes(path, img, n);
    expect_reject(path, "version 3.0");

    n = make_npy(img, 1, "{'descr': '<f4', 'fortran_order': False, "
                 "'shape': (2, 3), 'extra': 1, }", d, 24);
    write_bytes(path, img, n);
    expect_reject(path, "unexpected key 'extra'");

    n = make_npy(img, 1, "{'descr': '<f4', 'fortran_order': False, "
                 "'shape': (2, 3), }", d, 20);
    write_bytes(path, img, n);
    expect_reject(path, "does not match");

    /* The reader is not fooled by a directory either. */
    expect_reject(tmp, "not a regular file");
    unlink(path);
    rmdir(tmp);
}
END_TEST

START_TEST(test_write_errors)
{
    char tmp[256], path[512];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    sp_err e = { "" };
    snprintf(path, sizeof path, "%s/no/such/folder/a.npy", tmp);
    ck_assert_int_eq(sp_npy_write_f32(path, k23, 2, 3, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, path));
    ck_assert_ptr_nonnull(strstr(e.msg, "No such file"));

    /* The rename onto a folder fails: -1, and the temporary file is gone. */
    snprintf(path, sizeof path, "%s/dir.npy", tmp);
    ck_assert_int_eq(mkdir(path, 0777), 0);
    ck_assert_int_eq(sp_npy_write_f32(path, k23, 2, 3, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, path));
    char tpath[600];
    snprintf(tpath, sizeof tpath, "%s.tmp.%ld", path, (long)getpid());
    ck_assert_int_ne(access(tpath, F_OK), 0);
    rmdir(path);

    ck_assert_int_eq(sp_npy_write_f32(path, NULL, 2, 3, &e), -1);
    ck_assert_int_eq(sp_npy_write_f32(path, k23, SIZE_MAX / 2, 3, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "too large"));
    rmdir(tmp);
}
END_TEST

/* ----------------------------------------------------------------- fuzz */

/* Reads a damaged file: it must be rejected, or, if it happens to still be
 * valid, read back as exactly the original 2 x 3 array. */
static void read_damaged(const char *path, const unsigned char *img, size_t n)
{
    write_bytes(path, img, n);
    float *b = NULL;
    size_t r = 0, c = 0;
    sp_err e = { "" };
    int rc = sp_npy_read_f32(path, &b, &r, &c, &e);
    if (rc == 0) {
        ck_assert_uint_eq(r, 2);
        ck_assert_uint_eq(c, 3);
        ck_assert_int_eq(memcmp(b, k23, sizeof k23), 0);
        free(b);
    } else {
        ck_assert_int_eq(rc, -1);
        ck_assert_ptr_null(b);
        ck_assert_ptr_nonnull(strstr(e.msg, path));
    }
}

START_TEST(test_fuzz_truncate)
{
    char tmp[256], path[512], bad[560];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    snprintf(path, sizeof path, "%s/ok.npy", tmp);
    snprintf(bad, sizeof bad, "%s/bad.npy", tmp);
    sp_err e;
    ck_assert_int_eq(sp_npy_write_f32(path, k23, 2, 3, &e), 0);
    size_t n;
    unsigned char *img = slurp(path, &n);
    for (size_t len = 0; len < n; len++) {
        write_bytes(bad, img, len);
        expect_reject(bad, NULL);
    }
    /* One byte too many is wrong too. */
    unsigned char *big = malloc(n + 1);
    memcpy(big, img, n);
    big[n] = 0;
    write_bytes(bad, big, n + 1);
    expect_reject(bad, "does not match");
    read_damaged(bad, img, n);
    free(big);
    free(img);
    unlink(bad);
    unlink(path);
    rmdir(tmp);
}
END_TEST

START_TEST(test_fuzz_header_bytes)
{
    char tmp[256], path[512], bad[560];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    snprintf(path, sizeof path, "%s/ok.npy", tmp);
    snprintf(bad, sizeof bad, "%s/bad.npy", tmp);
    sp_err e;
    ck_assert_int_eq(sp_npy_write_f32(path, k23, 2, 3, &e), 0);
    size_t n;
    unsigned char *img = slurp(path, &n);
    ck_assert_uint_eq(n, 128 + 24);
    unsigned char *mut = malloc(n);
    static const unsigned char fixed[] = { 0x00, 0xff, 0x80, ' ', '\t', '\n',
                                           '\'', '"', ',', '(', ')', '{',
                                           '}', '0', '9', '-', 'L', '\\' };
    for (size_t i = 0; i < 128; i++) {
        unsigned char vals[sizeof fixed + 3];
        memcpy(vals, fixed, sizeof fixed);
        vals[sizeof fixed] = img[i] ^ 0x01;
        vals[sizeof fixed + 1] = img[i] ^ 0x80;
        vals[sizeof fixed + 2] = (unsigned char)(img[i] + 1);
        for (size_t k = 0; k < sizeof vals; k++) {
            memcpy(mut, img, n);
            mut[i] = vals[k];
            read_damaged(bad, mut, n);
        }
    }
    free(mut);
    free(img);
    unlink(bad);
    unlink(path);
    rmdir(tmp);
}
END_TEST

START_TEST(test_fuzz_forged)
{
    char tmp[256], path[512];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    snprintf(path, sizeof path, "%s/f.npy", tmp);
    static const char *const bad_shapes[] = {
        "(4611686018427387904, 4)", "(4, 4611686018427387904)",
        "(1073741824, 1073741824)", "(4294967296, 4294967296)",
        "(18446744073709551615,)", "(18446744073709551615, 18446744073709551615)",
        "(18446744073709551616,)", "(99999999999999999999999999999, 1)",
        "(4611686018427387910,)", "(-1, 6)", "(2, -3)", "(2, 3, 1)", "()",
        "(6)", "6", "(2 3)", "(2,, 3)", "(, 6)", "(2, 3", "2, 3)", "(3, 0)",
        "(0x6,)", "(6.0,)", "(2, 2)", "(7,)", "(1, 5)", "[2, 3]", "None",
    };
    unsigned char d[24], img[512];
    memcpy(d, k23, sizeof d);
    char dict[256];
    for (size_t i = 0; i < sizeof bad_shapes / sizeof *bad_shapes; i++) {
        snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, "
                 "'shape': %s, }", bad_shapes[i]);
        write_bytes(path, img, make_npy(img, 1, dict, d, sizeof d));
        expect_reject(path, NULL);
        write_bytes(path, img, make_npy(img, 2, dict, d, sizeof d));
        expect_reject(path, NULL);
    }
    /* Shapes that do fit the 24 data bytes are accepted. */
    static const char *const good_shapes[] = { "(6,)", "(1, 6)", "(6, 1)",
                                               "( 2 , 3 , )", "(2L, 3L)" };
    for (size_t i = 0; i < sizeof good_shapes / sizeof *good_shapes; i++) {
        snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, "
                 "'shape': %s, }", good_shapes[i]);
        write_bytes(path, img, make_npy(img, 1, dict, d, sizeof d));
        float *b = NULL;
        size_t r, c;
        sp_err e;
        ck_assert_msg(sp_npy_read_f32(path, &b, &r, &c, &e) == 0, "%s: %s",
                      good_shapes[i], e.msg);
        ck_assert_uint_eq(r * (c ? c : 1), 6);
        ck_assert_int_eq(memcmp(b, k23, sizeof k23), 0);
        free(b);
    }
    /* '<f8' claiming (2, 3) over 24 bytes; descr and dict oddities. */
    static const char *const bad_dicts[] = {
        "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }",
        "{'descr': '<f4', 'fortran_order': False, }",
        "{'descr': '<f4', 'shape': (2, 3), }",
        "{'fortran_order': False, 'shape': (2, 3), }",
        "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } x",
        "{'descr': '<f4' 'fortran_order': False, 'shape': (2, 3), }",
        "{'descr': '<f4', 'fortran_order': false, 'shape': (2, 3), }",
        "{'descr': '<f4', 'fortran_order': Falsey, 'shape': (2, 3), }",
        "{'descr': '<f4, 'fortran_order': False, 'shape': (2, 3), }",
        "{'descr': '<\\f4', 'fortran_order': False, 'shape': (2, 3), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), ",
        "'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3),, }",
        ("{'descr': '<f4aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', "
         "'fortran_order': False, 'shape': (2, 3), }"),
        "{}", "", "{",
    };
    for (size_t i = 0; i < sizeof bad_dicts / sizeof *bad_dicts; i++) {
        write_bytes(path, img, make_npy(img, 1, bad_dicts[i], d, sizeof d));
        expect_reject(path, NULL);
    }
    /* Header lengths that point past the end of the file, or are absurd. */
    size_t n = make_npy(img, 2, "{'descr': '<f4', 'fortran_order': False, "
                        "'shape': (2, 3), }", d, sizeof d);
    static const uint32_t hl[] = { 0, 1, 127, 139, 140, 141, 65535, 65536,
                                   1u << 20, (1u << 20) + 1, 0x7fffffffu,
                                   0xffffffffu };
    for (size_t i = 0; i < sizeof hl / sizeof *hl; i++) {
        for (int k = 0; k < 4; k++)
            img[8 + k] = (unsigned char)(hl[i] >> (8 * k));
        write_bytes(path, img, n);
        expect_reject(path, NULL);
    }
    n = make_npy(img, 1, "{'descr': '<f4', 'fortran_order': False, "
                 "'shape': (2, 3), }", d, sizeof d);
    img[8] = img[9] = 0xff;
    write_bytes(path, img, n);
    expect_reject(path, "truncated");
    unlink(path);
    rmdir(tmp);
}
END_TEST

Suite *make_npy_suite(void)
{
    Suite *s = suite_create("npy");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_roundtrip_2d);
    tcase_add_test(tc, test_roundtrip_1d);
    tcase_add_test(tc, test_header_bytes);
    tcase_add_test(tc, test_read_f8_and_v2);
    tcase_add_test(tc, test_reject_messages);
    tcase_add_test(tc, test_write_errors);
    suite_add_tcase(s, tc);
    TCase *fz = tcase_create("fuzz");
    tcase_add_test(fz, test_fuzz_truncate);
    tcase_add_test(fz, test_fuzz_header_bytes);
    tcase_add_test(fz, test_fuzz_forged);
    suite_add_tcase(s, fz);
    return s;
}
