/* npy.h: NumPy .npy arrays (format version 1.0), float32 little-endian, C order.
 *
 * Format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
 * magic "\x93NUMPY", major 1, minor 0, uint16 LE header length, an ASCII
 * Python dict {'descr': '<f4', 'fortran_order': False, 'shape': (r, c), }
 * padded with spaces and ending in '\n' so that the data starts at a
 * multiple of 64 bytes.
 *
 * Writers write to "<path>.tmp.<pid>" and rename, so a reader never sees a
 * half-written file. Readers validate the whole header (magic, version,
 * dtype, order, shape, file size) before trusting any size. */
#ifndef SUPERPOSE_NPY_H
#define SUPERPOSE_NPY_H

#include <stddef.h>
#include "superpose/util.h"

/* Writes a rows x cols float32 matrix (row-major). cols == 0 writes a 1-D
 * array of `rows` elements. Returns 0 or -1 with err filled. */
int sp_npy_write_f32(const char *path, const float *data, size_t rows,
                     size_t cols, sp_err *err);

/* Reads a 1-D or 2-D float32 array ('<f4', C order; also accepts '<f8' and
 * converts). On success *data is malloc'ed (caller frees), *rows and *cols are
 * the shape (*cols = 0 for 1-D). Returns 0 or -1 with err naming the file
 * and what is wrong. */
int sp_npy_read_f32(const char *path, float **data, size_t *rows,
                    size_t *cols, sp_err *err);

#endif
