/* check_store.c: the results store: round trip, replace semantics, open
 * failures, concurrent writers, and a writer killed mid-transaction. */
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "superpose/store.h"

/* ------------------------------------------------------------- helpers */

enum { MAXP = 40 };

/* A record with its own storage: n params "p<i>" = "<tag>.<i>" and n
 * metrics "m<i>" = base + i. */
typedef struct {
    sp_run_record rec;
    sp_kv kv[MAXP];
    sp_metric mt[MAXP];
    char key[32], names[MAXP][2][16], values[MAXP][32];
} test_run;

static void fill_run(test_run *t, const char *key, int np, int nm,
                     double base, const char *tag)
{
    memset(t, 0, sizeof *t);
    snprintf(t->key, sizeof t->key, "%s", key);
    for (int i = 0; i < np; i++) {
        /* Reverse alphabetical: the store must keep the given order. */
        snprintf(t->names[i][0], sizeof t->names[i][0], "p%02d", MAXP - i);
        snprintf(t->values[i], sizeof t->values[i], "%s.%d", tag, i);
        t->kv[i].name = t->names[i][0];
        t->kv[i].value = t->values[i];
    }
    for (int i = 0; i < nm; i++) {
        snprintf(t->names[i][1], sizeof t->names[i][1], "m%02d", i);
        t->mt[i].name = t->names[i][1];
        t->mt[i].value = base + i;
    }
    t->rec.key = t->key;
    t->rec.experiment = (char *)"toy";
    t->rec.status = (char *)"ok";
    t->rec.seed = 1234567890123L;
    t->rec.config = (char *)"data.n=512\ntrain.steps=100\n";
    t->rec.wall_s = 1.5;
    t->rec.params = t->kv;
    t->rec.n_params = (size_t)np;
    t->rec.metrics = t->mt;
    t->rec.n_metrics = (size_t)nm;
}

/* Checks a loaded record against fill_run(np, nm, base, tag). 1 if equal. */
static int run_matches(const sp_run_record *r, int np, int nm, double base,
                       const char *tag)
{
    if (r->n_params != (size_t)np || r->n_metrics != (size_t)nm)
        return 0;
    for (int i = 0; i < np; i++) {
        char name[16], value[32];
        snprintf(name, sizeof name, "p%02d", MAXP - i);
        snprintf(value, sizeof value, "%s.%d", tag, i);
        if (strcmp(r->params[i].name, name) != 0
            || strcmp(r->params[i].value, value) != 0)
            return 0;
    }
    for (int i = 0; i < nm; i++) {
        char name[16];
        snprintf(name, sizeof name, "m%02d", i);
        if (strcmp(r->metrics[i].name, name) != 0
            || r->metrics[i].value != base + i)
            return 0;
    }
    return 1;
}

static void db_path(char *buf, size_t len, const char *dir)
{
    snprintf(buf, len, "%s/results.db", dir);
}

/* Removes the database, its WAL files and the folder. */
static void remove_db(const char *dir)
{
    static const char *const suffix[] = { "", "-wal", "-shm", "-journal" };
    char p[600];
    for (size_t i = 0; i < sizeof suffix / sizeof *suffix; i++) {
        snprintf(p, sizeof p, "%s/results.db%s", dir, suffix[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* One-value query through a separate raw connection. */
static char *raw_query(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    char *out = NULL;
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
        out = strdup((const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    sqlite3_close(db);
    return out;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* --------------------------------------------------------------- tests */

START_TEST(test_roundtrip)
{
    char tmp[256], path[512];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    db_path(path, sizeof path, tmp);
    sp_err e;
    sp_store *st = sp_store_open(path, &e);
    ck_assert_msg(st != NULL, "%s", e.msg);

    static test_run t[3];
    fill_run(&t[0], "c000000000000000", 3, 4, 0.5, "c");
    fill_run(&t[1], "a000000000000000", 2, 2, -1.0, "a");
    fill_run(&t[2], "b000000000000000", 0, 0, 0.0, "b");
    t[0].mt[1].value = NAN;
    t[0].kv[2].value = NULL;
    t[1].rec.status = (char *)"diverged";
    t[1].rec.wall_s = NAN;
    t[1].rec.seed = -7;
    t[2].rec.experiment = NULL;
    for (int i = 0; i < 3; i++)
        ck_assert_msg(sp_store_put_run(st, &t[i].rec, &e) == 0, "%s", e.msg);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(sp_store_has_run(st, t[i].key, &e), 1);
    ck_assert_int_eq(sp_store_has_run(st, "ffffffffffffffff", &e), 0);

    /* Read back twice: on this connection, and after reopening. */
    for (int pass = 0; pass < 2; pass++) {
        sp_run_list l;
        ck_assert_msg(sp_store_list(st, &l, &e) == 0, "%s", e.msg);
        ck_assert_uint_eq(l.n, 3);
        const sp_run_record *a = &l.runs[0], *b = &l.runs[1], *c = &l.runs[2];
        ck_assert_str_eq(a->key, "a000000000000000");
        ck_assert_str_eq(b->key, "b000000000000000");
        ck_assert_str_eq(c->key, "c000000000000000");
        ck_assert_str_eq(a->status, "diverged");
        ck_assert_str_eq(a->experiment, "toy");
        ck_assert_ptr_null(b->experiment);
        ck_assert_str_eq(c->config, "data.n=512\ntrain.steps=100\n");
        ck_assert_int_eq(a->seed, -7);
        ck_assert_int_eq(c->seed, 1234567890123L);
        ck_assert(isnan(a->wall_s));
        ck_assert(c->wall_s == 1.5);
        ck_assert(run_matches(a, 2, 2, -1.0, "a"));
        ck_assert_uint_eq(b->n_params, 0);
        ck_assert_uint_eq(b->n_metrics, 0);
        ck_assert_uint_eq(c->n_params, 3);
        ck_assert_uint_eq(c->n_metrics, 4);
        /* Params in the order written, not alphabetical. */
        ck_assert_str_eq(c->params[0].name, "p40");
        ck_assert_str_eq(c->params[2].name, "p38");
        ck_assert_ptr_null(c->params[2].value);
        ck_assert_str_eq(sp_run_param(c, "p39"), "c.1");
        ck_assert_ptr_null(sp_run_param(c, "p38"));
        ck_assert_ptr_null(sp_run_param(c, "nope"));
        ck_assert(sp_run_metric(c, "m00") == 0.5);
        ck_assert(isnan(sp_run_metric(c, "m01"))); /* stored as NULL */
        ck_assert(sp_run_metric(c, "m03") == 3.5);
        ck_assert(isnan(sp_run_metric(c, "nope")));
        sp_run_list_free(&l);
        ck_assert_ptr_null(l.runs);
        ck_assert_uint_eq(l.n, 0);
        sp_store_close(st);
        st = sp_store_open(path, &e);
        ck_assert_msg(st != NULL, "%s", e.msg);
    }
    sp_store_close(st);

    char *v = raw_query(path, "SELECT value FROM meta"
                        " WHERE name = 'schema_version'");
    ck_assert_str_eq(v, "1");
    free(v);
    v = raw_query(path, "PRAGMA journal_mode");
    ck_assert_str_eq(v, "wal");
    free(v);
    v = raw_query(path, "SELECT count(*) FROM metrics WHERE value IS NULL");
    ck_assert_str_eq(v, "1");
    free(v);
    /* created: UTC ISO-8601, e.g. 2024-05-01T12:34:56Z */
    v = raw_query(path, "SELECT created FROM runs LIMIT 1");
    ck_assert_uint_eq(strlen(v), 20);
    ck_assert(v[4] == '-' && v[7] == '-' && v[10] == 'T' && v[13] == ':'
              && v[19] == 'Z');
    free(v);
    remove_db(tmp);
}
END_TEST

START_TEST(test_replace)
{
    char tmp[256], path[512];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    db_path(path, sizeof path, tmp);
    sp_err e;
    sp_store *st = sp_store_open(path, &e);
    ck_assert_msg(st != NULL, "%s", e.msg);
    static test_run t;
    fill_run(&t, "0123456789abcdef", 5, 5, 10.0, "old");
    ck_assert_int_eq(sp_store_put_run(st, &t.rec, &e), 0);
    fill_run(&t, "0123456789abcdef", 2, 1, 20.0, "new");
    t.rec.status = (char *)"diverged";
    ck_assert_int_eq(sp_store_put_run(st, &t.rec, &e), 0);

    sp_run_list l;
    ck_assert_int_eq(sp_store_list(st, &l, &e), 0);
    ck_assert_uint_eq(l.n, 1);
    ck_assert_str_eq(l.runs[0].status, "diverged");
    ck_assert(run_matches(&l.runs[0], 2, 1, 20.0, "new"));
    ck_assert(isnan(sp_run_metric(&l.runs[0], "m04")));
    sp_run_list_free(&l);

    /* A failing put (duplicate parameter name) leaves the old run intact. */
    fill_run(&t, "0123456789abcdef", 3, 3, 30.0, "bad");
    t.kv[2].name = t.kv[0].name;
    ck_assert_int_eq(sp_store_put_run(st, &t.rec, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "0123456789abcdef"));
    ck_assert_ptr_nonnull(strstr(e.msg, "UNIQUE"));
    ck_assert_int_eq(sp_store_list(st, &l, &e), 0);
    ck_assert_uint_eq(l.n, 1);
    ck_assert(run_matches(&l.runs[0], 2, 1, 20.0, "new"));
    sp_run_list_free(&l);
    /* ...and the connection is usable afterwards. */
    fill_run(&t, "1123456789abcdef", 1, 1, 0.0, "x");
    ck_assert_int_eq(sp_store_put_run(st, &t.rec, &e), 0);
    sp_store_close(st);

    char *v = raw_query(path, "SELECT count(*) FROM runs");
    ck_assert_str_eq(v, "2");
    free(v);
    v = raw_query(path, "SELECT count(*) FROM params");
    ck_assert_str_eq(v, "3");
    free(v);
    remove_db(tmp);
}
END_TEST

START_TEST(test_has_missing)
{
    char tmp[256], path[512];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    db_path(path, sizeof path, tmp);
    sp_err e;
    sp_store *st = sp_store_open(path, &e);
    ck_assert_msg(st != NULL, "%s", e.msg);
    ck_assert_int_eq(sp_store_has_run(st, "0000000000000000", &e), 0);
    sp_run_list l;
    ck_assert_int_eq(sp_store_list(st, &l, &e), 0);
    ck_assert_uint_eq(l.n, 0);
    sp_run_list_free(&l);
    sp_store_close(st);
    remove_db(tmp);
}
END_TEST

START_TEST(test_open_missing_folder)
{
    char tmp[256], path[512];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    snprintf(path, sizeof path, "%s/no/such/results.db", tmp);
    sp_err e = { "" };
    ck_assert_ptr_null(sp_store_open(path, &e));
    ck_assert_ptr_nonnull(strstr(e.msg, "cannot open results store"));
    ck_assert_ptr_nonnull(strstr(e.msg, path));
    ck_assert_ptr_nonnull(strstr(e.msg, "does not exist"));
    rmdir(tmp);
}
END_TEST

START_TEST(test_open_unwritable_folder)
{
    if (geteuid() == 0)
        return; /* root writes anywhere */
    char tmp[256], path[512];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    ck_assert_int_eq(chmod(tmp, 0555), 0);
    db_path(path, sizeof path, tmp);
    sp_err e = { "" };
    ck_assert_ptr_null(sp_store_open(path, &e));
    ck_assert_ptr_nonnull(strstr(e.msg, path));
    ck_assert_ptr_nonnull(strstr(e.msg, "not writable"));
    chmod(tmp, 0755);
    remove_db(tmp);
}
END_TEST

START_TEST(test_open_not_a_database)
{
    char tmp[256], path[512];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    db_path(path, sizeof path, tmp);
    unsigned char junk[8192];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)(i * 131 + 7);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(junk, 1, sizeof junk, f), sizeof junk);
    fclose(f);
    sp_err e = { "" };
    ck_assert_ptr_null(sp_store_open(path, &e));
    ck_assert_ptr_nonnull(strstr(e.msg, path));
    ck_assert_ptr_nonnull(strstr(e.msg, "not a database"));
    /* The file is left as it was. */
    unsigned char back[sizeof junk + 1];
    f = fopen(path, "rb");
    ck_assert_uint_eq(fread(back, 1, sizeof back, f), sizeof junk);
    fclose(f);
    ck_assert_int_eq(memcmp(back, junk, sizeof junk), 0);
    remove_db(tmp);
}
END_TEST

START_TEST(test_open_newer_schema)
{
    char tmp[256], path[512];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    db_path(path, sizeof path, tmp);
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "CREATE TABLE meta(name TEXT PRIMARY "
                                  "KEY, value TEXT); INSERT INTO meta "
                                  "VALUES('schema_version', '2')",
                                  NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    sp_err e = { "" };
    ck_assert_ptr_null(sp_store_open(path, &e));
    ck_assert_ptr_nonnull(strstr(e.msg, path));
    ck_assert_ptr_nonnull(strstr(e.msg, "schema version 2"));
    /* Nothing was created in the newer database. */
    char *v = raw_query(path, "SELECT count(*) FROM sqlite_master"
                        " WHERE name = 'runs'");
    ck_assert_str_eq(v, "0");
    free(v);
    remove_db(tmp);
}
END_TEST

/* A child process cannot use ck_assert: it reports on stderr and exits. */
static void child_fail(int code, const char *msg)
{
    fprintf(stderr, "child %ld: %s\n", (long)getpid(), msg);
    _exit(code);
}

/* Child of the concurrency test: waits on the start pipe, then writes n
 * runs through its own connection. Exits 0 on success. */
static void concurrent_child(const char *path, int start_fd, char tag, int n)
{
    char c;
    if (read(start_fd, &c, 1) < 0)
        _exit(3);
    sp_err e;
    sp_store *st = sp_store_open(path, &e);
    if (!st)
        child_fail(4, e.msg);
    static test_run t;
    for (int i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof key, "%c%015d", tag, i);
        fill_run(&t, key, 8, 8, i, key);
        if (sp_store_put_run(st, &t.rec, &e) != 0)
            child_fail(5, e.msg);
        if (sp_store_has_run(st, key, &e) != 1)
            child_fail(6, "has_run after put is not 1");
    }
    sp_store_close(st);
    _exit(0);
}

START_TEST(test_concurrent_writers)
{
    char tmp[256], path[512];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    db_path(path, sizeof path, tmp);
    int go[2];
    ck_assert_int_eq(pipe(go), 0);
    pid_t pid[2];
    for (int k = 0; k < 2; k++) {
        pid[k] = fork();
        ck_assert_int_ge(pid[k], 0);
        if (pid[k] == 0) {
            close(go[1]);
            concurrent_child(path, go[0], (char)('a' + k), 50);
        }
    }
    /* Both children create the database at the same moment. */
    close(go[0]);
    close(go[1]);
    for (int k = 0; k < 2; k++) {
        int status;
        ck_assert_int_eq(waitpid(pid[k], &status, 0), pid[k]);
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), 0);
    }
    sp_err e;
    sp_store *st = sp_store_open(path, &e);
    ck_assert_msg(st != NULL, "%s", e.msg);
    sp_run_list l;
    ck_assert_int_eq(sp_store_list(st, &l, &e), 0);
    ck_assert_uint_eq(l.n, 100);
    for (size_t i = 0; i < l.n; i++) {
        char key[32];
        snprintf(key, sizeof key, "%c%015d", (int)('a' + i / 50),
                 (int)(i % 50));
        ck_assert_str_eq(l.runs[i].key, key);
        ck_assert(run_matches(&l.runs[i], 8, 8, (double)(i % 50), key));
    }
    sp_run_list_free(&l);
    sp_store_close(st);
    remove_db(tmp);
}
END_TEST

/* Child of the crash test: writes runs in a loop until killed, each with
 * MAXP params and metrics tagged by its put number i. Says "ready" on fd
 * after the first put. */
static void looping_child(const char *path, int fd, long first)
{
    sp_err e;
    sp_store *st = sp_store_open(path, &e);
    if (!st)
        child_fail(4, e.msg);
    static test_run t;
    for (long i = first;; i++) {
        char key[32], tag[32];
        snprintf(key, sizeof key, "%016lx", (unsigned long)i % 97);
        snprintf(tag, sizeof tag, "k%ld", i);
        fill_run(&t, key, MAXP, MAXP, (double)i, tag);
        if (sp_store_put_run(st, &t.rec, &e) != 0)
            child_fail(5, e.msg);
        if (i == first && write(fd, "x", 1) != 1)
            child_fail(6, "cannot write to the pipe");
    }
}

/* A writer SIGKILLed while it writes runs in a loop (so almost surely
 * inside a transaction), three times at different moments: each time the
 * database passes integrity_check, reopens, and holds only whole runs whose
 * params and metrics all come from the same put. */
START_TEST(test_killed_writer)
{
    char tmp[256], path[512];
    ck_assert_ptr_nonnull(sp_test_tmpdir(tmp, sizeof tmp));
    db_path(path, sizeof path, tmp);
    static const long delay_ms[] = { 2, 9, 23 };
    for (int round = 0; round < 3; round++) {
        int ready[2];
        ck_assert_int_eq(pipe(ready), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            close(ready[0]);
            looping_child(path, ready[1], 1000000L * round);
        }
        close(ready[1]);
        char c;
        ck_assert_int_eq(read(ready[0], &c, 1), 1);
        close(ready[0]);
        sleep_ms(delay_ms[round]);
        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFSIGNALED(status));
        ck_assert_int_eq(WTERMSIG(status), SIGKILL);

        char *v = raw_query(path, "PRAGMA integrity_check");
        ck_assert_str_eq(v, "ok");
        free(v);
        sp_err e;
        sp_store *st = sp_store_open(path, &e);
        ck_assert_msg(st != NULL, "%s", e.msg);
        sp_run_list l;
        ck_assert_int_eq(sp_store_list(st, &l, &e), 0);
        ck_assert_uint_ge(l.n, 1);
        for (size_t i = 0; i < l.n; i++) {
            const sp_run_record *r = &l.runs[i];
            ck_assert_uint_eq(r->n_params, MAXP);
            ck_assert_uint_eq(r->n_metrics, MAXP);
            char tag[32];
            snprintf(tag, sizeof tag, "k%ld", (long)r->metrics[0].value);
            ck_assert(run_matches(r, MAXP, MAXP, r->metrics[0].value, tag));
        }
        sp_run_list_free(&l);
        sp_store_close(st);
    }
    /* Writable after the crashes. */
    sp_err e;
    sp_store *st = sp_store_open(path, &e);
    ck_assert_msg(st != NULL, "%s", e.msg);
    static test_run t;
    fill_run(&t, "ffffffffffffffff", 1, 1, 0.0, "after");
    ck_assert_int_eq(sp_store_put_run(st, &t.rec, &e), 0);
    ck_assert_int_eq(sp_store_has_run(st, "ffffffffffffffff", &e), 1);
    sp_store_close(st);
    remove_db(tmp);
}
END_TEST

Suite *make_store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_roundtrip);
    tcase_add_test(tc, test_replace);
    tcase_add_test(tc, test_has_missing);
    tcase_add_test(tc, test_open_missing_folder);
    tcase_add_test(tc, test_open_unwritable_folder);
    tcase_add_test(tc, test_open_not_a_database);
    tcase_add_test(tc, test_open_newer_schema);
    suite_add_tcase(s, tc);
    TCase *pc = tcase_create("processes");
    tcase_add_test(pc, test_concurrent_writers);
    tcase_add_test(pc, test_killed_writer);
    suite_add_tcase(s, pc);
    return s;
}
