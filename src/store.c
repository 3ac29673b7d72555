/* store.c: the results store, one SQLite database per experiment.
 *
 * SQLite C interface: https://www.sqlite.org/c3ref/intro.html
 * Write-ahead logging and concurrency: https://www.sqlite.org/wal.html
 * Transactions (BEGIN IMMEDIATE): https://www.sqlite.org/lang_transaction.html
 *
 * Several worker processes share one database: WAL mode lets readers run
 * beside the one writer, BEGIN IMMEDIATE takes the write lock up front (so a
 * transaction never fails half-way on a lock upgrade), and the busy timeout
 * makes writers queue instead of failing. A run is written in one
 * transaction, so a killed worker leaves either the whole run or nothing.
 * synchronous=NORMAL in WAL mode survives a killed process; only a power
 * loss may drop the last commits, never corrupt the file.
 *
 * Each process must open its own sp_store (never share one across fork). */
#include "superpose/store.h"

#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STORE_SCHEMA_VERSION 1
#define STORE_BUSY_MS 60000

static const char *const schema_sql =
    "CREATE TABLE IF NOT EXISTS runs(key TEXT PRIMARY KEY, experiment TEXT,"
    " status TEXT, seed INTEGER, config TEXT, wall_s REAL, created TEXT);"
    "CREATE TABLE IF NOT EXISTS params(key TEXT, name TEXT, value TEXT,"
    " PRIMARY KEY(key, name));"
    "CREATE TABLE IF NOT EXISTS metrics(key TEXT, name TEXT, value REAL,"
    " PRIMARY KEY(key, name));"
    "CREATE TABLE IF NOT EXISTS curves(key TEXT, name TEXT, step INTEGER, value REAL,"
    " PRIMARY KEY(key, name, step));"
    "INSERT OR IGNORE INTO meta(name, value) VALUES('schema_version', '1');";

/* The prepared statements, in the order of stmt_sql. */
enum {
    S_HAS,
    S_DEL_PARAMS,
    S_DEL_METRICS,
    S_PUT_RUN,
    S_PUT_PARAM,
    S_PUT_METRIC,
    S_LIST_RUNS,
    S_LIST_PARAMS,
    S_LIST_METRICS,
    S_DEL_CURVES,
    S_PUT_CURVE,
    S_GET_CURVE,
    S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
    "SELECT 1 FROM runs WHERE key = ?1",
    "DELETE FROM params WHERE key = ?1",
    "DELETE FROM metrics WHERE key = ?1",
    "INSERT OR REPLACE INTO runs(key, experiment, status, seed, config,"
    " wall_s, created) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    "INSERT INTO params(key, name, value) VALUES(?1, ?2, ?3)",
    "INSERT INTO metrics(key, name, value) VALUES(?1, ?2, ?3)",
    "SELECT key, experiment, status, seed, config, wall_s FROM runs"
    " WHERE key IS NOT NULL ORDER BY key",
    /* rowid keeps the order in which a run's params were written */
    "SELECT key, name, value FROM params WHERE key IS NOT NULL"
    " ORDER BY key, rowid",
    "SELECT key, name, value FROM metrics WHERE key IS NOT NULL"
    " ORDER BY key, rowid",
    "DELETE FROM curves WHERE key = ?1",
    "INSERT INTO curves(key, name, step, value) VALUES(?1, ?2, ?3, ?4)",
    "SELECT step, value FROM curves WHERE key = ?1 AND name = ?2 ORDER BY step",
};

struct sp_store {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *st[S_COUNT];
};

/* ---------------------------------------------------------------- open */

/* A note on the folder holding path, for open errors: "" when it looks
 * fine. WAL needs to create files beside the database, so an unwritable
 * folder fails even when the database file itself is writable. */
static void folder_note(const char *path, char *note, size_t len)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    struct stat st;
    note[0] = '\0';
    if (stat(dir, &st) != 0 && errno == ENOENT)
        snprintf(note, len, " (folder '%s' does not exist)", dir);
    else if (stat(dir, &st) != 0)
        snprintf(note, len, " (folder '%s': %s)", dir, strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        snprintf(note, len, " ('%s' is not a folder)", dir);
    else if (access(dir, W_OK | X_OK) != 0)
        snprintf(note, len, " (folder '%s' is not writable)", dir);
}

static int db_exec(sp_store *st, const char *sql, sp_err *err)
{
    char *msg = NULL;
    if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        sp_err_set(err, "results store '%s': %s", st->path,
                   msg ? msg : sqlite3_errmsg(st->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static void rollback(sp_store *st)
{
    if (!sqlite3_get_autocommit(st->db))
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Creates the schema if needed and checks its version, in one write
 * transaction so that concurrent first opens do not race. */
static int init_schema(sp_store *st, sp_err *err)
{
    if (db_exec(st, "BEGIN IMMEDIATE", err) != 0)
        return -1;
    if (db_exec(st, "CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY,"
             " value TEXT)", err) != 0)
        goto fail;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db, "SELECT value FROM meta"
                           " WHERE name = 'schema_version'", -1, &q, NULL)
        != SQLITE_OK) {
        sp_err_set(err, "results store '%s': %s", st->path,
                   sqlite3_errmsg(st->db));
        goto fail;
    }
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(q, 0);
        char *end = NULL;
        long ver = v ? strtol(v, &end, 10) : 0;
        if (!v || end == v || *end != '\0' || ver < 1) {
            sp_err_set(err, "results store '%s': invalid schema_version "
                       "'%s' in table meta", st->path, v ? v : "NULL");
            sqlite3_finalize(q);
            goto fail;
        }
        if (ver > STORE_SCHEMA_VERSION) {
            sp_err_set(err, "results store '%s' has schema version %ld, "
                       "newer than the %d this superpose understands; "
                       "use a newer superpose", st->path, ver,
                       STORE_SCHEMA_VERSION);
            sqlite3_finalize(q);
            goto fail;
        }
    } else if (rc != SQLITE_DONE) {
        sp_err_set(err, "results store '%s': %s", st->path,
                   sqlite3_errmsg(st->db));
        sqlite3_finalize(q);
        goto fail;
    }
    sqlite3_finalize(q);
    if (db_exec(st, schema_sql, err) != 0 || db_exec(st, "COMMIT", err) != 0)
        goto fail;
    return 0;
fail:
    rollback(st);
    return -1;
}

static int journal_mode_cb(void *out, int n, char **vals, char **names)
{
    (void)names;
    if (n >= 1 && vals[0])
        snprintf(out, 16, "%s", vals[0]);
    return 0;
}

/* PRAGMA journal_mode=WAL needs an exclusive lock. When another process
 * holds a shared lock that it wants to upgrade (two processes creating the
 * database at once), SQLite returns SQLITE_BUSY at once instead of calling
 * the busy handler, to avoid a deadlock; so retry here until the busy
 * timeout. Returns SQLITE_OK, SQLITE_DONE if the mode stayed something
 * other than WAL, or the SQLite error. */
static int set_wal(sqlite3 *db)
{
    double t0 = sp_now();
    for (int i = 0;; i++) {
        char mode[16] = "";
        int rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", journal_mode_cb,
                              mode, NULL);
        if (rc == SQLITE_OK)
            return strcmp(mode, "wal") == 0 ? SQLITE_OK : SQLITE_DONE;
        if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
            || sp_now() - t0 > STORE_BUSY_MS / 1000.0)
            return rc;
        /* 1..16 ms, growing, so that two openers drift apart. */
        sqlite3_sleep(1 + (i < 4 ? 1 << i : 15));
    }
}

sp_store *sp_store_open(const char *path, sp_err *err)
{
    if (!path || !*path) {
        sp_err_set(err, "cannot open results store: empty path");
        return NULL;
    }
    sp_store *st = calloc(1, sizeof *st);
    if (!st || !(st->path = sp_strdup(path))) {
        free(st);
        sp_err_set(err, "cannot open results store '%s': out of memory",
                   path);
        return NULL;
    }
    char note[4200];
    int rc = sqlite3_open_v2(path, &st->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK)
        goto fail_open;
    sqlite3_busy_timeout(st->db, STORE_BUSY_MS);
    /* The first statement that reads the file: also where a file that is
     * not a database, or an unwritable folder, shows up. */
    rc = set_wal(st->db);
    if (rc == SQLITE_DONE) {
        sp_err_set(err, "cannot open results store '%s': SQLite refused "
                   "to switch it to WAL journal mode", path);
        goto fail;
    }
    if (rc != SQLITE_OK)
        goto fail_open;
    rc = sqlite3_exec(st->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        goto fail_open;
    if (init_schema(st, err) != 0)
        goto fail;
    for (int i = 0; i < S_COUNT; i++) {
        if (sqlite3_prepare_v3(st->db, stmt_sql[i], -1,
                               SQLITE_PREPARE_PERSISTENT, &st->st[i], NULL)
            != SQLITE_OK) {
            sp_err_set(err, "results store '%s' has an unexpected schema: %s",
                       path, sqlite3_errmsg(st->db));
            goto fail;
        }
    }
    return st;

fail_open:
    folder_note(path, note, sizeof note);
    sp_err_set(err, "cannot open results store '%s': %s%s", path,
               st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc), note);
fail:
    sp_store_close(st);
    return NULL;
}

void sp_store_close(sp_store *st)
{
    if (!st)
        return;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(st->st[i]);
    sqlite3_close(st->db);
    free(st->path);
    free(st);
}

/* --------------------------------------------------------------- write */

static int db_error(sp_store *st, const char *what, const char *key,
                    sp_err *err)
{
    return sp_err_set(err, "results store '%s': cannot %s run '%s': %s",
                      st->path, what, key, sqlite3_errmsg(st->db));
}

static int bind_text(sqlite3_stmt *s, int i, const char *v)
{
    return v ? sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT)
             : sqlite3_bind_null(s, i);
}

/* NaN is stored as NULL (SQLite has no NaN). */
static int bind_real(sqlite3_stmt *s, int i, double v)
{
    return isnan(v) ? sqlite3_bind_null(s, i) : sqlite3_bind_double(s, i, v);
}

/* Steps a statement that returns no rows, then resets it. */
static int run_stmt(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

int sp_store_has_run(sp_store *st, const char *key, sp_err *err)
{
    if (!st || !key)
        return sp_err_set(err, "sp_store_has_run: NULL argument");
    sqlite3_stmt *s = st->st[S_HAS];
    bind_text(s, 1, key);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return db_error(st, "look up", key, err);
}

int sp_store_put_run(sp_store *st, const sp_run_record *rec, sp_err *err)
{
    if (!st || !rec || !rec->key || !*rec->key)
        return sp_err_set(err, "sp_store_put_run: missing run key");
    for (size_t i = 0; i < rec->n_params; i++)
        if (!rec->params[i].name)
            return sp_err_set(err, "run '%s': parameter %zu has no name",
                              rec->key, i);
    for (size_t i = 0; i < rec->n_metrics; i++)
        if (!rec->metrics[i].name)
            return sp_err_set(err, "run '%s': metric %zu has no name",
                              rec->key, i);

    char created[32];
    time_t now = time(NULL);
    struct tm tm;
    if (!gmtime_r(&now, &tm)
        || !strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm))
        created[0] = '\0';

    if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return db_error(st, "write", rec->key, err);

    sqlite3_stmt *s = st->st[S_DEL_PARAMS];
    bind_text(s, 1, rec->key);
    if (run_stmt(s) != 0)
        goto fail;
    s = st->st[S_DEL_METRICS];
    bind_text(s, 1, rec->key);
    if (run_stmt(s) != 0)
        goto fail;

    s = st->st[S_DEL_CURVES];
    bind_text(s, 1, rec->key);
    if (run_stmt(s) != 0)
        goto fail;

    s = st->st[S_PUT_RUN];
    bind_text(s, 1, rec->key);
    bind_text(s, 2, rec->experiment);
    bind_text(s, 3, rec->status);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)rec->seed);
    bind_text(s, 5, rec->config);
    bind_real(s, 6, rec->wall_s);
    bind_text(s, 7, created[0] ? created : NULL);
    if (run_stmt(s) != 0)
        goto fail;

    s = st->st[S_PUT_PARAM];
    bind_text(s, 1, rec->key);
    for (size_t i = 0; i < rec->n_params; i++) {
        bind_text(s, 2, rec->params[i].name);
        bind_text(s, 3, rec->params[i].value);
        if (run_stmt(s) != 0)
            goto fail;
    }
    s = st->st[S_PUT_METRIC];
    bind_text(s, 1, rec->key);
    for (size_t i = 0; i < rec->n_metrics; i++) {
        bind_text(s, 2, rec->metrics[i].name);
        bind_real(s, 3, rec->metrics[i].value);
        if (run_stmt(s) != 0)
            goto fail;
    }
    s = st->st[S_PUT_CURVE];
    bind_text(s, 1, rec->key);
    for (size_t c = 0; c < rec->n_curves; c++) {
        const sp_curve *cv = &rec->curves[c];
        bind_text(s, 2, cv->name);
        for (size_t i = 0; i < cv->n; i++) {
            sqlite3_bind_int64(s, 3, (sqlite3_int64)cv->step[i]);
            bind_real(s, 4, cv->value[i]);
            if (run_stmt(s) != 0)
                goto fail;
        }
    }
    if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    return 0;

fail:
    /* The message first: ROLLBACK would overwrite sqlite3_errmsg. */
    db_error(st, "write", rec->key, err);
    rollback(st);
    return -1;
}

/* ---------------------------------------------------------------- read */

/* A copy of a text column; *oom set when a non-NULL value cannot be copied. */
static char *col_str(sqlite3_stmt *s, int i, int *oom)
{
    const char *v = (const char *)sqlite3_column_text(s, i);
    if (!v) {
        if (sqlite3_column_type(s, i) != SQLITE_NULL)
            *oom = 1;
        return NULL;
    }
    char *d = sp_strdup(v);
    if (!d)
        *oom = 1;
    return d;
}

static double col_real(sqlite3_stmt *s, int i)
{
    return sqlite3_column_type(s, i) == SQLITE_NULL
               ? NAN : sqlite3_column_double(s, i);
}

/* Returns arr (of *cap elements of size sz) grown to hold n + 1, or NULL
 * (arr untouched) when out of memory. */
static void *grow(void *arr, size_t *cap, size_t n, size_t sz)
{
    if (n < *cap)
        return arr;
    size_t nc = *cap ? 2 * *cap : 8;
    if (nc > SIZE_MAX / sz)
        return NULL;
    void *p = realloc(arr, nc * sz);
    if (p)
        *cap = nc;
    return p;
}

/* Attaches the rows of a (key, name, value) query, ordered by key, to the
 * runs of out (also ordered by key) with one merge pass. Rows whose key has
 * no run are skipped. Returns 0, -1 on a database error, -2 out of memory. */
static int merge_rows(sqlite3_stmt *s, sp_run_list *out, int metrics)
{
    size_t r = 0, cap = 0;
    int rc, oom = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(s, 0);
        if (!key)
            continue;
        size_t prev = r;
        while (r < out->n && strcmp(out->runs[r].key, key) < 0)
            r++;
        if (r != prev)
            cap = 0;
        if (r == out->n)
            break;
        sp_run_record *run = &out->runs[r];
        if (strcmp(run->key, key) != 0)
            continue;
        char *name = col_str(s, 1, &oom);
        if (metrics) {
            sp_metric *m = oom ? NULL : grow(run->metrics, &cap,
                                             run->n_metrics, sizeof *m);
            if (m) {
                run->metrics = m;
                m[run->n_metrics].name = name;
                m[run->n_metrics++].value = col_real(s, 2);
                continue;
            }
        } else {
            char *value = col_str(s, 2, &oom);
            sp_kv *p = oom ? NULL : grow(run->params, &cap, run->n_params,
                                         sizeof *p);
            if (p) {
                run->params = p;
                p[run->n_params].name = name;
                p[run->n_params++].value = value;
                continue;
            }
            free(value);
        }
        free(name);
        sqlite3_reset(s);
        return -2;
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

int sp_store_list(sp_store *st, sp_run_list *out, sp_err *err)
{
    if (!st || !out)
        return sp_err_set(err, "sp_store_list: NULL argument");
    out->runs = NULL;
    out->n = 0;
    /* One read transaction: the three queries see the same snapshot. */
    if (db_exec(st, "BEGIN", err) != 0)
        return -1;

    int rc = 0, oom = 0;
    size_t cap = 0;
    sqlite3_stmt *s = st->st[S_LIST_RUNS];
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        sp_run_record *runs = grow(out->runs, &cap, out->n, sizeof *runs);
        if (!runs) {
            oom = 1;
            break;
        }
        out->runs = runs;
        sp_run_record *run = &out->runs[out->n++];
        memset(run, 0, sizeof *run);
        run->key = col_str(s, 0, &oom);
        run->experiment = col_str(s, 1, &oom);
        run->status = col_str(s, 2, &oom);
        run->seed = (long)sqlite3_column_int64(s, 3);
        run->config = col_str(s, 4, &oom);
        run->wall_s = col_real(s, 5);
        if (oom)
            break;
    }
    sqlite3_reset(s);
    if (oom)
        rc = -2;
    else if (rc != SQLITE_DONE)
        rc = -1;
    else if ((rc = merge_rows(st->st[S_LIST_PARAMS], out, 0)) == 0)
        rc = merge_rows(st->st[S_LIST_METRICS], out, 1);

    if (rc == 0 && db_exec(st, "COMMIT", err) == 0)
        return 0;
    if (rc == -2)
        sp_err_set(err, "results store '%s': out of memory listing runs",
                   st->path);
    else if (rc == -1)
        sp_err_set(err, "results store '%s': cannot list runs: %s", st->path,
                   sqlite3_errmsg(st->db));
    rollback(st);
    sp_run_list_free(out);
    return -1;
}

void sp_run_list_free(sp_run_list *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->n; i++) {
        sp_run_record *r = &list->runs[i];
        for (size_t j = 0; j < r->n_params; j++) {
            free((char *)r->params[j].name);
            free((char *)r->params[j].value);
        }
        for (size_t j = 0; j < r->n_metrics; j++)
            free((char *)r->metrics[j].name);
        free(r->params);
        free(r->metrics);
        free(r->key);
        free(r->experiment);
        free(r->status);
        free(r->config);
    }
    free(list->runs);
    list->runs = NULL;
    list->n = 0;
}

const char *sp_run_param(const sp_run_record *r, const char *name)
{
    if (!r || !name)
        return NULL;
    for (size_t i = 0; i < r->n_params; i++)
        if (r->params[i].name && strcmp(r->params[i].name, name) == 0)
            return r->params[i].value;
    return NULL;
}

double sp_run_metric(const sp_run_record *r, const char *name)
{
    if (!r || !name)
        return NAN;
    for (size_t i = 0; i < r->n_metrics; i++)
        if (r->metrics[i].name && strcmp(r->metrics[i].name, name) == 0)
            return r->metrics[i].value;
    return NAN;
}

int sp_store_curve(sp_store *st, const char *key, const char *name, long **step,
                   double **value, size_t *n, sp_err *err)
{
    *step = NULL;
    *value = NULL;
    *n = 0;
    sqlite3_stmt *s = st->st[S_GET_CURVE];
    bind_text(s, 1, key);
    bind_text(s, 2, name);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            long *ns = realloc(*step, cap * sizeof **step);
            double *nv = ns ? realloc(*value, cap * sizeof **value) : NULL;
            if (ns)
                *step = ns;
            if (nv)
                *value = nv;
            if (!ns || !nv) {
                sqlite3_reset(s);
                free(*step);
                free(*value);
                *step = NULL, *value = NULL, *n = 0;
                return sp_err_set(err, "out of memory reading curve '%s'", name);
            }
        }
        (*step)[*n] = (long)sqlite3_column_int64(s, 0);
        (*value)[*n] = col_real(s, 1);
        (*n)++;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        free(*step);
        free(*value);
        *step = NULL, *value = NULL, *n = 0;
        return db_error(st, "read curves of", key, err);
    }
    return 0;
}
