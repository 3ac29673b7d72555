/* figure.h: figures as data plus a gnuplot script.
 *
 * Each figure writes NAME.dat (a '#' header naming the columns, the
 * configuration and the seed; numbers in the C locale with %.9g) and
 * NAME.gp (the template from plots/ with its placeholders filled) into a
 * folder, then runs gnuplot on NAME.gp, which writes NAME.png and NAME.svg
 * beside them. A user can edit NAME.gp and re-run `gnuplot NAME.gp` there.
 *
 * Templates are looked up in $SUPERPOSE_PLOTS, then in the source tree's
 * plots/ (compiled in), then in ./plots. */
#ifndef SUPERPOSE_FIGURE_H
#define SUPERPOSE_FIGURE_H

#include <stddef.h>
#include "superpose/util.h"

/* A heatmap over two categorical axes: cell (ix, iy) holds z[iy * nx + ix];
 * NaN marks a missing cell (drawn blank, labelled "n/a"). */
typedef struct {
    const char *name;     /* file stem, e.g. "mmcs" */
    const char *title;
    const char *xlabel, *ylabel, *cblabel;
    size_t nx, ny;
    const char *const *xtics; /* nx labels */
    const char *const *ytics; /* ny labels */
    const double *z;
    double zmin, zmax;    /* colour range; NaN for automatic */
    int label_cells;      /* print each cell's value on it */
    const char *label_fmt;/* printf format for cell labels, e.g. "%.2f" */
    const char *header;   /* extra '#' lines for the data file (may be NULL) */
} sp_heatmap;

/* Writes dir/NAME.{dat,gp} and renders dir/NAME.{png,svg}. Returns 0, or
 * -1 with err (unwritable folder, template not found, gnuplot missing or
 * failing: the message quotes gnuplot's first error line). */
int sp_figure_heatmap(const char *dir, const sp_heatmap *h, sp_err *err);

/* Checks a cell-label format: text with exactly one %e, %f or %g
 * conversion (flags, width, precision allowed), no control characters.
 * 0, or -1 with err. */
int sp_figure_check_label_fmt(const char *fmt, sp_err *err);

/* Re-runs gnuplot on an existing dir/NAME.gp. */
int sp_figure_render(const char *dir, const char *name, sp_err *err);

/* The folder holding the gnuplot templates, or NULL if none is found. */
const char *sp_figure_template_dir(void);

#endif
