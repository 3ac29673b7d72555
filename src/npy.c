/* npy.c: NumPy .npy writer and reader for float32 arrays.
 *
 * Format: "A Simple File Format for NumPy Arrays" (NEP 1),
 * https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
 *
 *   "\x93NUMPY" | major | minor | header length | header | data
 *
 * Version 1.0 stores the header length as uint16 LE (preamble of 10 bytes),
 * 2.0 as uint32 LE (12 bytes). The header is an ASCII Python dict literal
 * {'descr': '<f4', 'fortran_order': False, 'shape': (r, c), } padded with
 * spaces and terminated by '\n' so that the data starts at a multiple of 64.
 *
 * The writer emits version 1.0 '<f4'. The reader takes 1.0 and 2.0, '<f4'
 * and '<f8' (converted to float), C order, 1-D or 2-D, and treats every byte
 * of the file as hostile until validated: the header is parsed by a strict
 * literal parser (no eval), sizes are overflow-checked and the file size
 * must equal preamble + header + rows * cols * itemsize exactly. */
#include "superpose/npy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_ALIGN 64
/* numpy itself refuses headers above 10000 bytes by default; ours are < 128. */
#define NPY_MAX_HEADER_V2 (1u << 20)
#define NPY_CHUNK 16384 /* elements converted per write/read chunk */

/* ---------------------------------------------------------------- writer */

static int write_all(int fd, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void put_le32(unsigned char *b, uint32_t u)
{
    b[0] = (unsigned char)u;
    b[1] = (unsigned char)(u >> 8);
    b[2] = (unsigned char)(u >> 16);
    b[3] = (unsigned char)(u >> 24);
}

/* Builds the full preamble + header into out (at least 256 bytes). Returns
 * its length, a multiple of NPY_ALIGN. */
static size_t build_header(unsigned char *out, size_t rows, size_t cols)
{
    char dict[160];
    int n;
    if (cols == 0)
        n = snprintf(dict, sizeof dict,
                     "{'descr': '<f4', 'fortran_order': False, "
                     "'shape': (%zu,), }", rows);
    else
        n = snprintf(dict, sizeof dict,
                     "{'descr': '<f4', 'fortran_order': False, "
                     "'shape': (%zu, %zu), }", rows, cols);
    size_t len = (size_t)n; /* < 160: two 20-digit numbers at most */
    size_t pad = (NPY_ALIGN - (NPY_MAGIC_LEN + 4 + len + 1) % NPY_ALIGN)
                 % NPY_ALIGN;
    size_t hlen = len + pad + 1;
    memcpy(out, NPY_MAGIC, NPY_MAGIC_LEN);
    out[6] = 1;
    out[7] = 0;
    out[8] = (unsigned char)hlen;
    out[9] = (unsigned char)(hlen >> 8);
    memcpy(out + 10, dict, len);
    memset(out + 10 + len, ' ', pad);
    out[10 + len + pad] = '\n';
    return 10 + hlen;
}

int sp_npy_write_f32(const char *path, const float *data, size_t rows,
                     size_t cols, sp_err *err)
{
    if (!path || !*path)
        return sp_err_set(err, "cannot write .npy: empty path");
    size_t count = rows;
    if (cols != 0) {
        if (rows != 0 && cols > SIZE_MAX / sizeof(float) / rows)
            return sp_err_set(err, "cannot write '%s': shape (%zu, %zu) is "
                              "too large", path, rows, cols);
        count = rows * cols;
    } else if (rows > SIZE_MAX / sizeof(float)) {
        return sp_err_set(err, "cannot write '%s': shape (%zu,) is too "
                          "large", path, rows);
    }
    if (count > 0 && !data)
        return sp_err_set(err, "cannot write '%s': no data", path);

    size_t tlen = strlen(path) + 32;
    char *tmp = malloc(tlen);
    if (!tmp)
        return sp_err_set(err, "cannot write '%s': out of memory", path);
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());

    const char *what = "cannot write";
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0)
        goto fail;

    unsigned char head[256];
    size_t hn = build_header(head, rows, cols);
    if (write_all(fd, head, hn) != 0)
        goto fail;

    /* Encode explicitly as little-endian so the file is right on any host. */
    unsigned char buf[NPY_CHUNK * 4];
    for (size_t i = 0; i < count; i += NPY_CHUNK) {
        size_t m = count - i < NPY_CHUNK ? count - i : NPY_CHUNK;
        for (size_t j = 0; j < m; j++) {
            uint32_t u;
            memcpy(&u, &data[i + j], 4);
            put_le32(buf + 4 * j, u);
        }
        if (write_all(fd, buf, 4 * m) != 0)
            goto fail;
    }
    if (fsync(fd) != 0)
        goto fail;
    int rc = close(fd);
    fd = -1;
    if (rc != 0)
        goto fail;
    what = "cannot rename temporary file onto";
    if (rename(tmp, path) != 0)
        goto fail;
    free(tmp);
    return 0;

fail:;
    int e = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    free(tmp);
    return sp_err_set(err, "%s '%s': %s", what, path, strerror(e));
}

/* ---------------------------------------------------------------- reader */

static int read_all(int fd, void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0) {
            errno = 0; /* early end of file */
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static uint32_t get_le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16
           | (uint32_t)b[3] << 24;
}

static uint64_t get_le64(const unsigned char *b)
{
    return (uint64_t)get_le32(b) | (uint64_t)get_le32(b + 4) << 32;
}

/* What the header says, once validated. */
typedef struct {
    size_t itemsize; /* 4 ('<f4') or 8 ('<f8') */
    int ndim;        /* 1 or 2 */
    uint64_t dim[2];
} npy_header;

/* A cursor over the header text [p, end); the text holds printable ASCII
 * only (checked before parsing), so no NUL or newline can appear in it. */
typedef struct {
    const char *p, *end;
    char *why; /* reason for rejection, filled by the first failure */
    size_t why_len;
} cursor;

static int reject(cursor *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int reject(cursor *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, c->why_len, fmt, ap);
    va_end(ap);
    return -1;
}

static void skip_ws(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

static int accept(cursor *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A quoted Python string without escapes, copied into buf (cap bytes). */
static int parse_str(cursor *c, char *buf, size_t cap)
{
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return -1;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || n + 1 >= cap)
            return -1;
        buf[n++] = *c->p++;
    }
    if (c->p >= c->end)
        return -1;
    c->p++;
    buf[n] = '\0';
    return 0;
}

/* A non-negative decimal integer (Python 2 headers may add an 'L'). */
static int parse_dim(cursor *c, uint64_t *v)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == '-')
        return reject(c, "negative dimension in 'shape'");
    if (c->p >= c->end || *c->p < '0' || *c->p > '9')
        return reject(c, "'shape' must be a tuple of integers");
    uint64_t x = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        unsigned d = (unsigned)(*c->p++ - '0');
        if (x > (UINT64_MAX - d) / 10)
            return reject(c, "dimension in 'shape' overflows 64 bits");
        x = 10 * x + d;
    }
    if (c->p < c->end && *c->p == 'L')
        c->p++;
    *v = x;
    return 0;
}

static int parse_descr(cursor *c, npy_header *h)
{
    char s[32];
    skip_ws(c);
    if (c->p < c->end && (*c->p == '[' || *c->p == '{'))
        return reject(c, "structured dtype found, expected '<f4' (float32 "
                      "little-endian)");
    if (parse_str(c, s, sizeof s) != 0)
        return reject(c, "'descr' is not a dtype string, expected "
                      "'<f4'");
    if (strcmp(s, "<f4") == 0)
        h->itemsize = 4;
    else if (strcmp(s, "<f8") == 0)
        h->itemsize = 8;
    else
        return reject(c, "unsupported dtype '%s', expected '<f4' (float32 "
                      "little-endian; '<f8' is also accepted)", s);
    return 0;
}

static int parse_order(cursor *c)
{
    skip_ws(c);
    size_t left = (size_t)(c->end - c->p);
    if (left >= 5 && memcmp(c->p, "False", 5) == 0) {
        c->p += 5;
        return 0;
    }
    if (left >= 4 && memcmp(c->p, "True", 4) == 0)
        return reject(c, "Fortran-order (column-major) data is not "
                      "supported, expected fortran_order False");
    return reject(c, "'fortran_order' must be True or False");
}

static int parse_shape(cursor *c, npy_header *h)
{
    if (!accept(c, '('))
        return reject(c, "'shape' is not a tuple");
    if (accept(c, ')'))
        return reject(c, "0-d (scalar) arrays are not supported, expected "
                      "1-D or 2-D");
    int n = 0, comma = 0;
    for (;;) {
        uint64_t v = 0;
        if (parse_dim(c, &v) != 0)
            return -1;
        if (n == 2)
            return reject(c, "arrays of more than 2 dimensions are not "
                          "supported");
        h->dim[n++] = v;
        comma = accept(c, ',');
        if (accept(c, ')'))
            break;
        if (!comma)
            return reject(c, "malformed 'shape' tuple");
    }
    if (n == 1 && !comma) /* "(5)" is an int in Python, not a tuple */
        return reject(c, "'shape' is not a tuple");
    h->ndim = n;
    return 0;
}

/* Parses the header text (len bytes, the last one '\n'). 0 or -1 with why. */
static int parse_header(const char *text, size_t len, npy_header *h,
                        char *why, size_t why_len)
{
    cursor c = { text, text, why, why_len };
    if (len == 0 || text[len - 1] != '\n')
        return reject(&c, "header does not end in a newline");
    c.end = text + len - 1;
    for (const char *q = text; q < c.end; q++) {
        unsigned char b = (unsigned char)*q;
        if ((b < 0x20 && b != '\t') || b > 0x7e)
            return reject(&c, "header contains a non-printable byte");
    }

    int seen_descr = 0, seen_order = 0, seen_shape = 0;
    if (!accept(&c, '{'))
        return reject(&c, "header is not a dict literal");
    while (!accept(&c, '}')) {
        char key[32];
        if (parse_str(&c, key, sizeof key) != 0 || !accept(&c, ':'))
            return reject(&c, "malformed header dict");
        int *seen = strcmp(key, "descr") == 0           ? &seen_descr
                    : strcmp(key, "fortran_order") == 0 ? &seen_order
                    : strcmp(key, "shape") == 0         ? &seen_shape
                                                        : NULL;
        if (!seen)
            return reject(&c, "unexpected key '%s' in header", key);
        if ((*seen)++)
            return reject(&c, "key '%s' appears twice in header", key);
        int rc = seen == &seen_descr ? parse_descr(&c, h)
                 : seen == &seen_order ? parse_order(&c)
                                       : parse_shape(&c, h);
        if (rc != 0)
            return -1;
        if (!accept(&c, ',')) {
            if (!accept(&c, '}'))
                return reject(&c, "malformed header dict");
            break;
        }
    }
    skip_ws(&c);
    if (c.p != c.end)
        return reject(&c, "trailing characters after the header dict");
    if (!seen_descr)
        return reject(&c, "header lacks '%s'", "descr");
    if (!seen_order)
        return reject(&c, "header lacks '%s'", "fortran_order");
    if (!seen_shape)
        return reject(&c, "header lacks '%s'", "shape");
    return 0;
}

static const char *shape_str(const npy_header *h, char *buf, size_t len)
{
    if (h->ndim == 1)
        snprintf(buf, len, "(%llu,)", (unsigned long long)h->dim[0]);
    else
        snprintf(buf, len, "(%llu, %llu)", (unsigned long long)h->dim[0],
                 (unsigned long long)h->dim[1]);
    return buf;
}

/* Reads and converts count elements of itemsize bytes into out. */
static int read_data(int fd, float *out, size_t count, size_t itemsize)
{
    unsigned char *buf = malloc(NPY_CHUNK * itemsize);
    if (!buf) {
        errno = ENOMEM;
        return -1;
    }
    for (size_t i = 0; i < count; i += NPY_CHUNK) {
        size_t m = count - i < NPY_CHUNK ? count - i : NPY_CHUNK;
        if (read_all(fd, buf, m * itemsize) != 0) {
            int e = errno;
            free(buf);
            errno = e;
            return -1;
        }
        for (size_t j = 0; j < m; j++) {
            if (itemsize == 4) {
                uint32_t u = get_le32(buf + 4 * j);
                memcpy(&out[i + j], &u, 4);
            } else {
                uint64_t u = get_le64(buf + 8 * j);
                double d;
                memcpy(&d, &u, 8);
                out[i + j] = (float)d;
            }
        }
    }
    free(buf);
    return 0;
}

int sp_npy_read_f32(const char *path, float **data, size_t *rows,
                    size_t *cols, sp_err *err)
{
    if (!path || !data || !rows || !cols)
        return sp_err_set(err, "sp_npy_read_f32: NULL argument");
    *data = NULL;
    *rows = *cols = 0;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sp_err_set(err, "%s: cannot open: %s", path, strerror(errno));

    char why[160] = "";
    char *text = NULL;
    float *out = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        sp_err_set(err, "%s: cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        sp_err_set(err, "%s: not a regular file", path);
        goto fail;
    }
    uint64_t fsize = (uint64_t)st.st_size;

    unsigned char pre[12] = { 0 };
    size_t have = fsize < sizeof pre ? (size_t)fsize : sizeof pre;
    if (read_all(fd, pre, have) != 0) {
        sp_err_set(err, "%s: read error: %s", path,
                   errno ? strerror(errno) : "file shrank while reading");
        goto fail;
    }
    size_t mlen = have < NPY_MAGIC_LEN ? have : NPY_MAGIC_LEN;
    if (have == 0 || memcmp(pre, NPY_MAGIC, mlen) != 0) {
        sp_err_set(err, "%s: not a .npy file (bad magic)", path);
        goto fail;
    }
    if (have < 10) {
        sp_err_set(err, "%s: truncated .npy file (%zu bytes)", path, have);
        goto fail;
    }
    unsigned major = pre[6], minor = pre[7];
    if ((major != 1 && major != 2) || minor != 0) {
        sp_err_set(err, "%s: unsupported .npy format version %u.%u "
                   "(expected 1.0 or 2.0)", path, major, minor);
        goto fail;
    }
    uint64_t pre_len, hlen;
    if (major == 1) {
        pre_len = 10;
        hlen = (uint64_t)pre[8] | (uint64_t)pre[9] << 8;
    } else {
        if (have < 12) {
            sp_err_set(err, "%s: truncated .npy file (%zu bytes)", path, have);
            goto fail;
        }
        pre_len = 12;
        hlen = get_le32(pre + 8);
        if (hlen > NPY_MAX_HEADER_V2) {
            sp_err_set(err, "%s: implausible .npy header length %llu", path,
                       (unsigned long long)hlen);
            goto fail;
        }
    }
    if (hlen == 0 || pre_len + hlen > fsize) {
        sp_err_set(err, "%s: truncated .npy file (the header ends at byte "
                   "%llu, the file has %llu bytes)", path,
                   (unsigned long long)(pre_len + hlen),
                   (unsigned long long)fsize);
        goto fail;
    }

    text = malloc((size_t)hlen);
    if (!text) {
        sp_err_set(err, "%s: out of memory", path);
        goto fail;
    }
    if (lseek(fd, (off_t)pre_len, SEEK_SET) < 0
        || read_all(fd, text, (size_t)hlen) != 0) {
        sp_err_set(err, "%s: read error: %s", path,
                   errno ? strerror(errno) : "file shrank while reading");
        goto fail;
    }
    npy_header h = { 0, 0, { 0, 0 } };
    if (parse_header(text, (size_t)hlen, &h, why, sizeof why) != 0) {
        sp_err_set(err, "%s: bad .npy header: %s", path, why);
        goto fail;
    }
    free(text);
    text = NULL;

    char sh[64];
    if (h.ndim == 2 && h.dim[1] == 0) {
        /* cols == 0 means 1-D in this API, so (r, 0) cannot be returned. */
        sp_err_set(err, "%s: shape %s has no columns; not supported", path,
                   shape_str(&h, sh, sizeof sh));
        goto fail;
    }
    uint64_t count = h.dim[0];
    if (h.ndim == 2) {
        if (h.dim[0] != 0 && h.dim[1] > UINT64_MAX / h.dim[0])
            count = UINT64_MAX;
        else
            count = h.dim[0] * h.dim[1];
    }
    uint64_t avail = fsize - pre_len - hlen;
    if (count > avail / h.itemsize || count * h.itemsize != avail
        || count > SIZE_MAX / sizeof(float)) {
        sp_err_set(err, "%s: shape %s of %zu-byte items does not match the "
                   "%llu data bytes in the file", path,
                   shape_str(&h, sh, sizeof sh), h.itemsize,
                   (unsigned long long)avail);
        goto fail;
    }

    out = malloc(count ? (size_t)count * sizeof(float) : 1);
    if (!out) {
        sp_err_set(err, "%s: out of memory for shape %s", path,
                   shape_str(&h, sh, sizeof sh));
        goto fail;
    }
    if (read_data(fd, out, (size_t)count, h.itemsize) != 0) {
        sp_err_set(err, "%s: read error: %s", path,
                   errno ? strerror(errno) : "file shrank while reading");
        goto fail;
    }
    close(fd);
    *data = out;
    *rows = (size_t)h.dim[0];
    *cols = h.ndim == 2 ? (size_t)h.dim[1] : 0;
    return 0;

fail:
    free(text);
    free(out);
    close(fd);
    return -1;
}
