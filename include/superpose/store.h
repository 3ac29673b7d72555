/* store.h: the results store of an experiment, one SQLite database.
 *
 * One row per run, keyed by a hash of the run's resolved configuration and
 * seed (see config.h). A run is written in one transaction after it
 * finished, so a killed sweep never leaves half a run: on restart,
 * sp_store_has_run() says which runs to skip. Several worker processes may
 * write to the same database (WAL mode, busy timeout).
 *
 * Schema (version 1):
 *   runs(key TEXT PRIMARY KEY, experiment TEXT, status TEXT, seed INTEGER,
 *        config TEXT, wall_s REAL, created TEXT)
 *   params(key TEXT, name TEXT, value TEXT, PRIMARY KEY(key, name))
 *   metrics(key TEXT, name TEXT, value REAL, PRIMARY KEY(key, name))
 *   curves(key TEXT, name TEXT, step INTEGER, value REAL,
 *          PRIMARY KEY(key, name, step))   training curves (added to
 *          version-1 stores when they are opened)
 * status is "ok" or "diverged" (a NaN or Inf loss; metrics may be NaN,
 * stored as NULL). */
#ifndef SUPERPOSE_STORE_H
#define SUPERPOSE_STORE_H

#include <stddef.h>
#include "superpose/util.h"

typedef struct sp_store sp_store;

typedef struct {
    const char *name;
    const char *value;
} sp_kv;

typedef struct {
    const char *name;
    double value; /* NaN allowed: stored as NULL, read back as NaN */
} sp_metric;

/* One training curve: value[i] at step[i], i < n. */
typedef struct {
    const char *name;
    size_t n;
    const long *step;
    const double *value; /* NaN allowed */
} sp_curve;

/* A run as written to, or read from, the store. */
typedef struct {
    char *key;         /* 16 hex digits */
    char *experiment;
    char *status;      /* "ok" or "diverged" */
    long seed;
    char *config;      /* canonical "section.key=value\n" text */
    double wall_s;
    sp_kv *params;     /* resolved configuration, in canonical order */
    size_t n_params;
    sp_metric *metrics;
    size_t n_metrics;
    const sp_curve *curves; /* written by sp_store_put_run; not read by sp_store_list */
    size_t n_curves;
} sp_run_record;

typedef struct {
    sp_run_record *runs;
    size_t n;
} sp_run_list;

/* Opens (creating if needed) the database at path. NULL + err on failure
 * (unwritable folder, not a database, newer schema). */
sp_store *sp_store_open(const char *path, sp_err *err);
void sp_store_close(sp_store *st);

/* 1 if a run with this key is stored, 0 if not, -1 on error. */
int sp_store_has_run(sp_store *st, const char *key, sp_err *err);

/* Writes one run (runs + params + metrics rows) in one transaction;
 * replaces any row with the same key. 0 or -1 with err. */
int sp_store_put_run(sp_store *st, const sp_run_record *rec, sp_err *err);

/* Reads every run (ordered by key), with params and metrics, into out
 * (heap-allocated; free with sp_run_list_free). 0 or -1. */
int sp_store_list(sp_store *st, sp_run_list *out, sp_err *err);
void sp_run_list_free(sp_run_list *list);

/* Reads curve `name` of run `key`, ordered by step, into heap arrays
 * (*step, *value: free both); *n = 0 if there is none. 0 or -1. */
int sp_store_curve(sp_store *st, const char *key, const char *name, long **step,
                   double **value, size_t *n, sp_err *err);

/* Lookups on a loaded record; NULL / NaN when absent. */
const char *sp_run_param(const sp_run_record *r, const char *name);
double sp_run_metric(const sp_run_record *r, const char *name);

#endif
