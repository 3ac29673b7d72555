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

/* The kinds below follow the heatmap: same files, same template lookup and
 * errors. Every text (titles, labels) must be valid UTF-8 with no control
 * character but newline (a line break) and tab; NULL means no text. The
 * figure functions return 0, or -1 with err. */

/* Lines and points: series of (x, y) against numeric axes, optional log
 * axes and labelled horizontal reference lines; a key lists the series
 * titles when more than one series has a title.
 * - A non-finite x or y is written NaN in the data file and not drawn (a
 *   line breaks there); at least one point must be finite.
 * - On a log axis a non-positive value (a point, a range bound, a
 *   reference line) is an error naming it: nothing is silently dropped.
 * - Reference lines outside a y range fixed by ymin/ymax are not drawn; an
 *   automatic bound is stretched to include them. Their labels sit at the
 *   right edge, nudged apart when lines are close (3/8 and 2/5).
 * - The data file holds one block per series (gnuplot `index`); a series
 *   with no points gets one NaN row so that block numbers stay aligned. */
/* POINTS: small translucent dots for clouds of many points; MARKERS: the
 * markers of LINESPOINTS, not joined, for a few points per series. */
typedef enum { SP_STYLE_LINESPOINTS, SP_STYLE_POINTS, SP_STYLE_LINES, SP_STYLE_MARKERS } sp_line_style;
typedef struct {
    const char *title;     /* NULL or "": not in the key */
    size_t n;
    const double *x, *y;   /* n points each */
    sp_line_style style;   /* POINTS: small translucent dots, for clouds */
} sp_series;
typedef struct {
    const char *name;              /* file stem */
    const char *title, *xlabel, *ylabel;
    int logx, logy;
    double xmin, xmax, ymin, ymax; /* axis ranges; NaN: automatic */
    const sp_series *series;
    size_t n_series;               /* 1..64; colours repeat after 8 */
    const double *hlines;          /* n_hlines reference values, dashed grey */
    const char *const *hline_labels; /* n_hlines labels; NULL (or an entry NULL): the value */
    size_t n_hlines;               /* 0..32 */
    const char *header;            /* extra '#' lines (may be NULL) */
} sp_lines;
int sp_figure_lines(const char *dir, const sp_lines *f, sp_err *err);

/* Arrows from the origin in the plane: equal aspect, the unit circle drawn
 * faintly, each arrow labelled just beyond its tip. The view is square,
 * centred on the origin and fitted to the longest vector (of all panels,
 * so that panels compare). With panels > 1 the panels are laid out in a
 * grid (multiplot), each with its title. A vector with a non-finite
 * coordinate is written NaN and not drawn, and its panel says how many
 * were left out. */
typedef struct {
    const char *name, *title;
    size_t n;                      /* vectors per panel, 1..10000 */
    const double *x, *y;           /* panels * n: vector i of panel p at [p * n + i] */
    const char *const *labels;     /* n labels shared by the panels; NULL (or an entry
                                      NULL): "0".."n-1" */
    const char *header;            /* extra '#' lines (may be NULL) */
    size_t panels;                 /* 0 or 1: one plot; up to 64 */
    const char *const *panel_titles; /* panels titles (may be NULL) */
} sp_vectors;
int sp_figure_vectors(const char *dir, const sp_vectors *v, sp_err *err);

/* Grouped bars: n_groups categories along x, n_series bars in each, the
 * series in the key when more than one has a label. Tic labels rotate when
 * they do not fit side by side, and only every 2nd, 5th, 10th, ... is shown
 * when even rotated ones would overlap. A linear y axis includes 0. NaN
 * marks a missing bar; on a log axis a non-positive value is an error. */
typedef struct {
    const char *name, *title, *xlabel, *ylabel;
    size_t n_groups;                   /* 1..100000 */
    const char *const *group_labels;   /* n_groups (none NULL); NULL: "0".."n_groups-1" */
    size_t n_series;                   /* 1..16 */
    const char *const *series_labels;  /* n_series (may be NULL) */
    const double *values;              /* (n_series, n_groups): values[s * n_groups + g] */
    int logy;
    const char *header;                /* extra '#' lines (may be NULL) */
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
