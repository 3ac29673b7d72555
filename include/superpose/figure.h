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

/* Lines and points: series of (x, y) points against numeric axes, with
 * optional log axes and labelled horizontal reference lines. Non-finite y
 * values are written as NaN and not drawn; a non-positive value on a log
 * axis is an error. The data file holds one block per series. */
typedef enum { SP_STYLE_LINESPOINTS, SP_STYLE_POINTS, SP_STYLE_LINES } sp_line_style;
typedef struct {
    const char *title;     /* NULL: not in the key */
    size_t n;
    const double *x, *y;
    sp_line_style style;   /* POINTS: small translucent dots, for clouds */
} sp_series;
typedef struct {
    const char *name, *title, *xlabel, *ylabel;
    int logx, logy;
    double xmin, xmax, ymin, ymax; /* NaN: automatic */
    const sp_series *series;
    size_t n_series;               /* 1..64 */
    const double *hlines;          /* reference values, dashed */
    const char *const *hline_labels;
    size_t n_hlines;               /* 0..32 */
    const char *header;            /* extra '#' lines (may be NULL) */
} sp_lines;
int sp_figure_lines(const char *dir, const sp_lines *f, sp_err *err);

/* Arrows from the origin in the plane, equal aspect, unit circle dashed,
 * each labelled at its tip (labels NULL: "0".."n-1"). */
typedef struct {
    const char *name, *title;
    size_t n;
    const double *x, *y;
    const char *const *labels;
    const char *header;
} sp_vectors;
int sp_figure_vectors(const char *dir, const sp_vectors *f, sp_err *err);

/* Grouped bars: n_groups categories, n_series bars in each;
 * values[s * n_groups + g]. */
typedef struct {
    const char *name, *title, *xlabel, *ylabel;
    size_t n_groups;
    const char *const *group_labels;
    size_t n_series;
    const char *const *series_labels;
    const double *values;
    int logy;
    const char *header;
} sp_bars;
int sp_figure_bars(const char *dir, const sp_bars *f, sp_err *err);

/* Checks a cell-label format: text with exactly one %e, %f or %g
 * conversion (flags, width, precision allowed), no control characters.
 * 0, or -1 with err. */
int sp_figure_check_label_fmt(const char *fmt, sp_err *err);

/* Re-runs gnuplot on an existing dir/NAME.gp. */
int sp_figure_render(const char *dir, const char *name, sp_err *err);

/* The folder holding the gnuplot templates, or NULL if none is found. */
const char *sp_figure_template_dir(void);

#endif
