/* experiment.h: experiment files (INI, read with libinih) and their sweeps.
 *
 * Sections:
 *   [experiment]   name, description, reference, default_preset
 *   [data] [model] [train] [solve] [metrics]
 *                  options of config.h (`superpose help options` lists them)
 *   [sweep]        section.key = v1, v2, ...     a list, or
 *                  section.key = logspace(a, b, n[, base])   base^(a..b), n points
 *                  section.key = linspace(a, b, n)
 *                  level = N                    an axis 1..N indexing the
 *                                               list values of variants
 *                  Runs are the Cartesian product of the axes.
 *   [variant.NAME] section.key = value, or = v1, ..., vN (one value per
 *                  level), or feature.NODE.KEY = value (a key of a
 *                  [feature.NODE] section): settings of one variant. With
 *                  variants, an axis named "variant" (their names, in file
 *                  order) is added in front of the others; a variant's
 *                  settings are applied after the other axes.
 *   [feature.NAME] a node of a feature tree (data.generator = tree): parent,
 *                  p, exclusive, readout, count, magnitude, mag_min, mag_max,
 *                  mag_mean, mag_std (gen.h); data.n is set to its readouts
 *   [figure.NAME]  kind = heatmap: x = <axis>, y = <axis>, metric = <metric>,
 *                    title, cap (clip values above), zmin, zmax, format
 *                  kind = lines: x = <axis>, metric, series = <axis>, logx,
 *                    logy, xtransform = inverse, xlabel, ylabel, ymin, ymax
 *                  kind = columns: the TMS model's columns of W in the plane
 *                  kind = dims: D* and every D_i of TMS models against x
 *                  kind = frontier: y = <metric> against x = <metric>, one
 *                    curve per value of series (mean over seeds)
 *                  kind = curves: training curve metric (loss, l0, dead,
 *                    mmcs) against the step, one curve per value of series
 *                    (a sweep axis, or two joined by a comma)
 *                  kind = rates: expected and measured firing rate per feature
 *                  kind = cosmatrix: per run, cos of every latent's decoder
 *                    and encoder row with every truth feature
 *                  style = points (lines, frontier): markers, not joined
 *                  where = AXIS = VALUE[, AXIS = VALUE ...] (any kind): draw
 *                    only the runs at these values of these axes
 *                  kind = cofiring: P(j active | i active) between features
 *   [preset.NAME]  section.key = value, or sweep.section.key = list: overrides
 *                  applied when `--preset NAME` is chosen.
 * Every key and value is checked when the file is loaded, presets not
 * chosen included; errors read "FILE:LINE: [section] key: what is allowed". */
#ifndef SUPERPOSE_EXPERIMENT_H
#define SUPERPOSE_EXPERIMENT_H

#include <stddef.h>

#include "superpose/config.h"
#include "superpose/util.h"

#define SP_MAX_AXES 8
#define SP_MAX_FIGS 16
#define SP_MAX_AXIS_VALUES 256
#define SP_MAX_VARIANTS 16
#define SP_MAX_OVERRIDES 12
#define SP_MAX_LEVELS 32

enum { SP_AXIS_OPTION, SP_AXIS_VARIANT, SP_AXIS_LEVEL };

typedef struct {
    const sp_opt *opt;                 /* NULL for a feature-node setting */
    size_t n;                          /* 1: one value; else one per level */
    char values[SP_MAX_LEVELS][40];
    int node;                          /* feature.NAME.KEY: index of node NAME */
    char node_key[16];                 /* ... and KEY (parent, p, magnitude, ...) */
    int line;
} sp_override;

typedef struct {
    char name[24];
    sp_override ov[SP_MAX_OVERRIDES];
    size_t n_ov;
    int line;
} sp_variant;

typedef struct {
    int kind;                             /* SP_AXIS_*; opt is NULL unless OPTION */
    const sp_opt *opt;
    char name[64];                        /* "section.key" */
    size_t n;
    char values[SP_MAX_AXIS_VALUES][40];  /* canonical text of each value */
    char labels[SP_MAX_AXIS_VALUES][24];  /* short labels for figures */
    int line;
} sp_axis;

typedef struct {
    char name[64];
    char kind[32];    /* heatmap | lines | columns | dims | rates | cofiring */
    char x[64], y[64];
    char series[64];  /* lines, frontier, curves: one curve per value of this axis
                         (curves: or of two axes, "a, b") */
    char xlabel[80], ylabel[80];
    int logx, logy, xinverse;
    int points;       /* lines, frontier: style = points (unjoined markers) */
    double ymin, ymax;
    char metric[32];
    char title[160];
    char format[16];  /* cell label format, e.g. "%.2f" */
    double cap, zmin, zmax; /* NaN when not set */
    size_t n_where;         /* conditions "axis = value": only runs meeting all are drawn */
    int where_axis[4];
    size_t where_value[4];  /* index into that axis's values */
    int line;
} sp_figspec;

typedef struct {
    char path[1024];
    char name[64];
    char description[512];
    char reference[512];
    char preset[32];        /* chosen preset, "" for none */
    char default_preset[32];
    int preset_is_default;
    sp_run_cfg base;
    sp_axis axes[SP_MAX_AXES];
    size_t n_axes;
    sp_figspec figs[SP_MAX_FIGS];
    size_t n_figs;
    sp_variant variants[SP_MAX_VARIANTS];
    size_t n_variants;
} sp_experiment;

/* Metrics a run records, in the order `superpose results` prints them. */
extern const char *const sp_run_metric_names[];
extern const size_t sp_n_run_metrics;
/* Metrics a figure can show: the run metrics plus mmcs_next. */
int sp_metric_known(const char *name);

/* Loads and validates an experiment file. preset NULL picks the file's
 * default_preset (if any); "none" picks no preset. NULL + err on error. */
sp_experiment *sp_experiment_load(const char *path, const char *preset, sp_err *err);
void sp_experiment_free(sp_experiment *ex);

/* Number of runs of the sweep (product of the axis lengths). */
size_t sp_experiment_n_runs(const sp_experiment *ex);
/* Configuration of run i (axes vary with the last axis fastest). Fills
 * coords[a] with the index along axis a when coords is not NULL. */
int sp_experiment_run_cfg(const sp_experiment *ex, size_t i, sp_run_cfg *cfg,
                          size_t *coords, sp_err *err);
/* Index of the axis named name ("section.key"), or -1. */
int sp_experiment_axis(const sp_experiment *ex, const char *name);
/* A figure's series: "" (none), one axis, or two axes "a, b". Sets *a1 and
 * *a2 to their indices (-1 when absent); 0, or -1 if a named axis is not
 * swept. */
int sp_experiment_series(const sp_experiment *ex, const char *series, int *a1, int *a2);

#endif
