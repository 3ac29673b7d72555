/* experiment.c: loading, validating and expanding experiment files.
 * The INI syntax is read by libinih (Debian's libinih-dev); this file
 * gives it a line-counting reader so that every key knows its line. */
#include "superpose/experiment.h"
#include "superpose/figure.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ini.h>

const char *const sp_run_metric_names[] = {"mmcs", "mmcs_rev", "dead", "l0", "mse",
                                           "fve", "loss", "steps_done", "wall_s",
                                           "l0_true", "max_cos", "dstar", "resampled",
                                           "precision", "recall", "f1", "gap", "lambda",
                                           "mcc", "uniqueness", "split", "offdiag", "lat_f1",
                                           "shrinkage", "absorption", "full_absorption",
                                           "recall_hole", "child_dec_parent",
                                           "parent_enc_child", "parent_dec_child"};
const size_t sp_n_run_metrics = sizeof sp_run_metric_names / sizeof sp_run_metric_names[0];

int sp_metric_known(const char *name)
{
    for (size_t i = 0; i < sp_n_run_metrics; i++)
        if (strcmp(sp_run_metric_names[i], name) == 0)
            return 1;
    return strcmp(name, "mmcs_next") == 0 || strcmp(name, "hedging_next") == 0;
}

typedef struct {
    char section[64];
    char key[64];
    char value[512];
    int line;
} entry;

typedef struct {
    FILE *f;
    int line;
    int too_long;
    entry *e;
    size_t n, cap;
    int oom;
} parse_ctx;

#define MAX_LINE 4096

static char *reader(char *str, int num, void *stream)
{
    parse_ctx *c = stream;
    char *r = fgets(str, num, c->f);
    if (!r)
        return NULL;
    c->line++;
    size_t len = strlen(r);
    if (len == (size_t)num - 1 && r[len - 1] != '\n' && !feof(c->f) && !c->too_long)
        c->too_long = c->line;
    return r;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    parse_ctx *c = user;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        entry *e = realloc(c->e, cap * sizeof *e);
        if (!e) {
            c->oom = 1;
            return 0;
        }
        c->e = e;
        c->cap = cap;
    }
    entry *e = &c->e[c->n++];
    snprintf(e->section, sizeof e->section, "%s", section);
    snprintf(e->key, sizeof e->key, "%s", name);
    snprintf(e->value, sizeof e->value, "%s", value ? value : "");
    e->line = c->line;
    return 1;
}

static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static int valid_name(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '-' || *s == '_'))
            return 0;
    return 1;
}

/* Parses "a, b, c", "logspace(a, b, n[, base])" or "linspace(a, b, n)". */
/* Strips leading and trailing blanks in place. */
static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t l = strlen(s);
    while (l && isspace((unsigned char)s[l - 1]))
        s[--l] = '\0';
    return s;
}

static int parse_axis(sp_axis *ax, const char *text, char *msg, size_t msglen)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", text);
    const char *s = buf;
    while (isspace((unsigned char)*s))
        s++;
    int is_log = starts_with(s, "logspace("), is_lin = starts_with(s, "linspace(");
    ax->n = 0;
    if (is_log || is_lin) {
        double a, b, n, base = 10;
        char close[4] = "";
        int end = -1;
        int got = sscanf(s + 9, " %lf , %lf , %lf , %lf %1[)]%n", &a, &b, &n, &base, close, &end);
        if (got < 5) {
            base = 10;
            end = -1;
            got = sscanf(s + 9, " %lf , %lf , %lf %1[)]%n", &a, &b, &n, close, &end);
            if (got != 4)
                goto bad_fn;
        } else if (is_lin) {
            goto bad_fn;
        }
        if (end < 0)
            goto bad_fn;
        for (const char *r = s + 9 + end; *r; r++)
            if (!isspace((unsigned char)*r))
                goto bad_fn; /* text after the closing parenthesis */
        if (n != floor(n) || n < 1 || n > SP_MAX_AXIS_VALUES || !(base > 0) ||
            !isfinite(a) || !isfinite(b))
            goto bad_fn;
        for (int k = 0; k < (int)n; k++) {
            double t = n > 1 ? a + (b - a) * k / (n - 1) : a;
            double v = is_log ? pow(base, t) : t;
            /* exact integers print exactly (2^-2 = 0.25, 10^2 = 100) */
            snprintf(ax->values[ax->n++], sizeof ax->values[0], "%.17g", v);
        }
        return 0;
    bad_fn:
        snprintf(msg, msglen,
                 "expected logspace(a, b, n[, base]) or linspace(a, b, n) with 1 <= n <= %d",
                 SP_MAX_AXIS_VALUES);
        return -1;
    }
    if (!*s) {
        snprintf(msg, msglen, "empty list");
        return -1;
    }
    /* Split by hand: strtok would merge ",," and drop a trailing ",". */
    for (char *tok = buf, *next; tok; tok = next) {
        next = strchr(tok, ',');
        if (next)
            *next++ = '\0';
        if (ax->n == SP_MAX_AXIS_VALUES) {
            snprintf(msg, msglen, "more than %d values", SP_MAX_AXIS_VALUES);
            return -1;
        }
        while (isspace((unsigned char)*tok))
            tok++;
        size_t l = strlen(tok);
        while (l && isspace((unsigned char)tok[l - 1]))
            tok[--l] = '\0';
        if (!l || l >= sizeof ax->values[0]) {
            snprintf(msg, msglen, "value %zu of the list is %s", ax->n + 1,
                     l ? "too long" : "empty");
            return -1;
        }
        snprintf(ax->values[ax->n++], sizeof ax->values[0], "%s", tok);
    }
    return 0;
}

/* Validates every value of an axis and rewrites it canonically. */
static int canonical_axis(sp_axis *ax, sp_err *err)
{
    for (size_t i = 0; i < ax->n; i++) {
        sp_run_cfg tmp;
        sp_config_defaults(&tmp);
        if (sp_config_set(&tmp, ax->opt, ax->values[i], err) != 0)
            return -1;
        char canon[128];
        sp_config_format(&tmp, ax->opt, canon, sizeof canon);
        snprintf(ax->values[i], sizeof ax->values[0], "%s", canon);
        if (ax->opt->type == SP_OPT_REAL)
            snprintf(ax->labels[i], sizeof ax->labels[0], "%.3g", strtod(canon, NULL));
        else
            snprintf(ax->labels[i], sizeof ax->labels[0], "%s", canon);
        for (size_t j = 0; j < i; j++)
            if (strcmp(ax->values[j], ax->values[i]) == 0)
                return sp_err_set(err, "value '%s' appears twice", canon);
    }
    return 0;
}

typedef struct {
    sp_experiment *ex;
    const char *path;
    sp_err *err;
} loader;

#define FAIL(L, line, ...)                                                          \
    do {                                                                            \
        char m_[900];                                                               \
        snprintf(m_, sizeof m_, __VA_ARGS__);                                       \
        return sp_err_set((L)->err, "%s:%d: %s", (L)->path, (line), m_);            \
    } while (0)

static int set_option(loader *L, sp_run_cfg *cfg, const entry *e, const char *section,
                      const char *key)
{
    const sp_opt *o = sp_config_find_in(section, key);
    if (!o) {
        char keys[600];
        sp_config_keys_of(section, keys, sizeof keys);
        if (!keys[0]) /* only a preset's "section.key" can name a bad section */
            FAIL(L, e->line, "[%s] %s: unknown section '%s'; allowed: data, model, train, "
                             "metrics, or sweep.section.key",
                 e->section, e->key, section);
        FAIL(L, e->line, "[%s] %s: unknown key '%s' in [%s]; allowed: %s", e->section, e->key,
             key, section, keys);
    }
    sp_err e2;
    if (sp_config_set(cfg, o, e->value, &e2) != 0)
        FAIL(L, e->line, "[%s] %s", e->section, e2.msg);
    return 0;
}

static int add_axis(loader *L, const entry *e, const char *name)
{
    sp_experiment *ex = L->ex;
    if (!strcmp(name, "level")) {
        char *end;
        long nl = strtol(e->value, &end, 10);
        while (*end == ' ')
            end++;
        if (end == e->value || *end || nl < 1 || nl > SP_MAX_LEVELS)
            FAIL(L, e->line, "[%s] %s = '%s': the number of levels, an integer in [1, %d]",
                 e->section, e->key, e->value, SP_MAX_LEVELS);
        sp_axis *ax = NULL;
        for (size_t a = 0; a < ex->n_axes; a++)
            if (!strcmp(ex->axes[a].name, "level"))
                ax = &ex->axes[a];
        if (!ax) {
            if (ex->n_axes == SP_MAX_AXES)
                FAIL(L, e->line, "[%s] %s: at most %d sweep axes", e->section, e->key,
                     SP_MAX_AXES);
            ax = &ex->axes[ex->n_axes++];
        }
        memset(ax, 0, sizeof *ax);
        ax->kind = SP_AXIS_LEVEL;
        snprintf(ax->name, sizeof ax->name, "level");
        ax->line = e->line;
        ax->n = (size_t)nl;
        for (size_t k = 0; k < ax->n; k++) {
            snprintf(ax->values[k], sizeof ax->values[0], "%zu", k + 1);
            snprintf(ax->labels[k], sizeof ax->labels[0], "%zu", k + 1);
        }
        return 0;
    }
    const sp_opt *o = sp_config_find(name);
    if (!o || !strchr(name, '.'))
        FAIL(L, e->line, "[%s] %s: unknown option '%s' to sweep (write section.key, e.g. "
                         "train.l1; `superpose help options` lists them)",
             e->section, e->key, name);
    sp_axis *ax = NULL;
    for (size_t a = 0; a < ex->n_axes; a++)
        if (strcmp(ex->axes[a].name, name) == 0)
            ax = &ex->axes[a];
    if (!ax) {
        if (ex->n_axes == SP_MAX_AXES)
            FAIL(L, e->line, "[%s] %s: at most %d sweep axes", e->section, e->key, SP_MAX_AXES);
        ax = &ex->axes[ex->n_axes++];
    }
    memset(ax, 0, sizeof *ax);
    ax->kind = SP_AXIS_OPTION;
    ax->opt = o;
    snprintf(ax->name, sizeof ax->name, "%s.%s", o->section, o->key);
    ax->line = e->line;
    char msg[300];
    if (parse_axis(ax, e->value, msg, sizeof msg) != 0)
        FAIL(L, e->line, "[%s] %s = '%s': %s", e->section, e->key, e->value, msg);
    sp_err e2;
    if (canonical_axis(ax, &e2) != 0)
        FAIL(L, e->line, "[%s] %s: %s", e->section, e->key, e2.msg);
    return 0;
}

static int feature_key(loader *L, sp_tree_node *nd, const entry *e);

/* Applies a variant's feature.NODE.KEY setting to the tree of cfg. */
static int apply_node_override(loader *L, sp_run_cfg *cfg, const sp_override *o)
{
    entry e;
    snprintf(e.section, sizeof e.section, "feature.%s", cfg->data.nodes[o->node].name);
    snprintf(e.key, sizeof e.key, "%s", o->node_key);
    snprintf(e.value, sizeof e.value, "%s", o->values[1]);
    e.line = o->line;
    return feature_key(L, &cfg->data.nodes[o->node], &e);
}

/* After the tree is loaded: resolves each feature.NODE.KEY setting of the
 * variants to its node and checks its value (and the tree it makes). */
static int check_node_overrides(loader *L)
{
    sp_experiment *ex = L->ex;
    for (size_t k = 0; k < ex->n_variants; k++)
        for (size_t j = 0; j < ex->variants[k].n_ov; j++) {
            sp_override *o = &ex->variants[k].ov[j];
            if (o->opt)
                continue;
            for (int i = 0; i < ex->base.data.n_nodes && o->node < 0; i++)
                if (!strcmp(ex->base.data.nodes[i].name, o->values[0]))
                    o->node = i;
            if (o->node < 0)
                FAIL(L, o->line, "[variant.%s] feature.%s.%s: no [feature.%s] section",
                     ex->variants[k].name, o->values[0], o->node_key, o->values[0]);
            sp_run_cfg scratch = ex->base;
            if (apply_node_override(L, &scratch, o) != 0)
                return -1;
            sp_err e2;
            if (sp_gen_check(&scratch.data, NULL, &e2) != 0)
                FAIL(L, o->line, "[variant.%s] feature.%s.%s = %s: %s", ex->variants[k].name,
                     o->values[0], o->node_key, o->values[1], e2.msg);
        }
    return 0;
}

/* [variant.NAME] sections: each key is an option with one value or one
 * value per level; the variant axis goes in front of the others. */
static int load_variants(loader *L, const entry *es, size_t n)
{
    sp_experiment *ex = L->ex;
    int la = sp_experiment_axis(ex, "level");
    size_t levels = la >= 0 ? ex->axes[la].n : 0;
    for (size_t i = 0; i < n; i++) {
        const entry *e = &es[i];
        if (!starts_with(e->section, "variant."))
            continue;
        const char *vname = e->section + 8;
        sp_variant *v = NULL;
        for (size_t k = 0; k < ex->n_variants; k++)
            if (!strcmp(ex->variants[k].name, vname))
                v = &ex->variants[k];
        if (!v) {
            if (ex->n_variants == SP_MAX_VARIANTS)
                FAIL(L, e->line, "at most %d variants", SP_MAX_VARIANTS);
            if (strlen(vname) >= sizeof v->name)
                FAIL(L, e->line, "[%s]: variant names have at most %zu characters", e->section,
                     sizeof v->name - 1);
            v = &ex->variants[ex->n_variants++];
            memset(v, 0, sizeof *v);
            snprintf(v->name, sizeof v->name, "%s", vname);
            v->line = e->line;
        }
        if (v->n_ov == SP_MAX_OVERRIDES)
            FAIL(L, e->line, "[%s]: at most %d settings per variant", e->section,
                 SP_MAX_OVERRIDES);
        if (starts_with(e->key, "feature.")) {
            /* feature.NODE.KEY: checked once the tree is loaded (check_node_overrides) */
            const char *dot = strrchr(e->key, '.');
            sp_override *ov = &v->ov[v->n_ov++];
            memset(ov, 0, sizeof *ov);
            ov->line = e->line;
            ov->n = 1;
            ov->node = -1;
            if (dot == e->key + 7 || strlen(dot + 1) >= sizeof ov->node_key ||
                strlen(e->value) >= sizeof ov->values[0])
                FAIL(L, e->line, "[%s] %s: write feature.NODE.KEY = value (a key of section "
                                 "[feature.NODE], a value of at most %zu characters)",
                     e->section, e->key, sizeof ov->values[0] - 1);
            snprintf(ov->node_key, sizeof ov->node_key, "%s", dot + 1);
            snprintf(ov->values[0], sizeof ov->values[0], "%.*s", (int)(dot - e->key - 8),
                     e->key + 8); /* the node name, until checked */
            snprintf(ov->values[1], sizeof ov->values[1], "%s", e->value);
            continue;
        }
        const sp_opt *o = strchr(e->key, '.') ? sp_config_find(e->key) : NULL;
        if (!o)
            FAIL(L, e->line, "[%s] %s: unknown option; write section.key (e.g. model.arch; "
                             "`superpose help options` lists them)", e->section, e->key);
        sp_override *ov = &v->ov[v->n_ov++];
        ov->opt = o;
        ov->line = e->line;
        /* a list (text options excepted: their values contain commas) */
        sp_axis tmp;
        memset(&tmp, 0, sizeof tmp);
        tmp.opt = o;
        char msg[300];
        if (o->type == SP_OPT_TEXT) {
            tmp.n = 1;
            snprintf(tmp.values[0], sizeof tmp.values[0], "%s", e->value);
        } else if (parse_axis(&tmp, e->value, msg, sizeof msg) != 0) {
            FAIL(L, e->line, "[%s] %s = '%s': %s", e->section, e->key, e->value, msg);
        }
        if (tmp.n > 1 && tmp.n != levels)
            FAIL(L, e->line, "[%s] %s: %zu values, but %s", e->section, e->key, tmp.n,
                 levels ? "there are a different number of levels ([sweep] level)"
                        : "a list needs [sweep] level = N, one value per level");
        if (tmp.n > SP_MAX_LEVELS)
            FAIL(L, e->line, "[%s] %s: at most %d values", e->section, e->key, SP_MAX_LEVELS);
        ov->n = tmp.n;
        for (size_t k = 0; k < tmp.n; k++) {
            sp_run_cfg scratch;
            sp_config_defaults(&scratch);
            sp_err e2;
            if (sp_config_set(&scratch, o, tmp.values[k], &e2) != 0)
                FAIL(L, e->line, "[%s] %s", e->section, e2.msg);
            snprintf(ov->values[k], sizeof ov->values[0], "%s", tmp.values[k]);
        }
    }
    if (!ex->n_variants)
        return 0;
    if (ex->n_axes == SP_MAX_AXES)
        return sp_err_set(L->err, "%s: at most %d sweep axes (variants take one)", L->path,
                          SP_MAX_AXES);
    memmove(&ex->axes[1], &ex->axes[0], ex->n_axes * sizeof ex->axes[0]);
    ex->n_axes++;
    sp_axis *ax = &ex->axes[0];
    memset(ax, 0, sizeof *ax);
    ax->kind = SP_AXIS_VARIANT;
    snprintf(ax->name, sizeof ax->name, "variant");
    ax->line = ex->variants[0].line;
    ax->n = ex->n_variants;
    for (size_t k = 0; k < ex->n_variants; k++) {
        snprintf(ax->values[k], sizeof ax->values[0], "%s", ex->variants[k].name);
        snprintf(ax->labels[k], sizeof ax->labels[0], "%s", ex->variants[k].name);
    }
    return 0;
}

int sp_experiment_series(const sp_experiment *ex, const char *series, int *a1, int *a2)
{
    char first[64];
    snprintf(first, sizeof first, "%s", series);
    char *second = strchr(first, ',');
    if (second) {
        *second++ = '\0';
        while (*second == ' ')
            second++;
    }
    size_t l = strlen(first);
    while (l && first[l - 1] == ' ')
        first[--l] = '\0';
    *a1 = first[0] ? sp_experiment_axis(ex, first) : -1;
    *a2 = second ? sp_experiment_axis(ex, second) : -1;
    return (first[0] && *a1 < 0) || (second && *a2 < 0) ? -1 : 0;
}

/* Names of the sweep axes, comma separated. */
static void axes_list(const sp_experiment *ex, char *buf, size_t len)
{
    buf[0] = '\0';
    for (size_t a = 0; a < ex->n_axes; a++)
        snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", a ? ", " : "", ex->axes[a].name);
    if (!ex->n_axes)
        snprintf(buf, len, "this file sweeps nothing");
}

/* Pass 4 runs after the presets, so the axes are final here. */
static int figure_key(loader *L, sp_figspec *f, const entry *e)
{
    const char *k = e->key, *v = e->value;
    if (!strcmp(k, "kind")) {
        if (strcmp(v, "heatmap") && strcmp(v, "lines") && strcmp(v, "columns") &&
            strcmp(v, "dims") && strcmp(v, "rates") && strcmp(v, "cofiring") &&
            strcmp(v, "frontier") && strcmp(v, "curves") && strcmp(v, "cosmatrix"))
            FAIL(L, e->line, "[%s] kind = '%s': allowed: heatmap, lines, frontier, curves, "
                             "columns, dims, rates, cofiring, cosmatrix",
                 e->section, v);
        snprintf(f->kind, sizeof f->kind, "%s", v);
    } else if (!strcmp(k, "x") || !strcmp(k, "y") || !strcmp(k, "series")) {
        int frontier = !strcmp(f->kind, "frontier"), curves = !strcmp(f->kind, "curves");
        if (frontier && strcmp(k, "series") && !sp_metric_known(v) &&
            !(strchr(v, '.') && sp_config_find(v)))
            FAIL(L, e->line, "[%s] %s = '%s': a frontier plots a metric (or a numeric option, "
                             "section.key) against another; unknown metric or option",
                 e->section, k, v);
        int a1, a2, two = curves && !strcmp(k, "series") && strchr(v, ',');
        if (!(frontier && strcmp(k, "series")) &&
            (two ? sp_experiment_series(L->ex, v, &a1, &a2) != 0
                 : sp_experiment_axis(L->ex, v) < 0)) {
            char axes[400];
            axes_list(L->ex, axes, sizeof axes);
            FAIL(L, e->line, "[%s] %s = '%s': must be a sweep axis (%s)", e->section, k, v, axes);
        }
        snprintf(!strcmp(k, "x") ? f->x : !strcmp(k, "y") ? f->y : f->series, sizeof f->x, "%s",
                 v);
    } else if (!strcmp(k, "metric")) {
        if (!strcmp(f->kind, "curves")) {
            if (strcmp(v, "loss") && strcmp(v, "l0") && strcmp(v, "dead") && strcmp(v, "mmcs"))
                FAIL(L, e->line, "[%s] metric = '%s': a training curve; allowed: loss, l0, dead, "
                                 "mmcs (recorded when metrics.curve_every > 0)", e->section, v);
        } else if (!sp_metric_known(v)) {
            char list[1024] = "";
            for (size_t i = 0; i < sp_n_run_metrics; i++) {
                strcat(list, sp_run_metric_names[i]);
                strcat(list, ", ");
            }
            strcat(list, "mmcs_next, hedging_next");
            FAIL(L, e->line, "[%s] metric = '%s': unknown metric; allowed: %s", e->section, v,
                 list);
        }
        snprintf(f->metric, sizeof f->metric, "%s", v);
    } else if (!strcmp(k, "title") || !strcmp(k, "xlabel") || !strcmp(k, "ylabel")) {
        char *dst = !strcmp(k, "title") ? f->title : !strcmp(k, "xlabel") ? f->xlabel : f->ylabel;
        snprintf(dst, !strcmp(k, "title") ? sizeof f->title : sizeof f->xlabel, "%s", v);
    } else if (!strcmp(k, "format")) {
        if (sp_figure_check_label_fmt(v, NULL) != 0 || strlen(v) >= sizeof f->format)
            FAIL(L, e->line, "[%s] format = '%s': expected one %%e, %%f or %%g conversion "
                             "(with flags, width, precision) such as %%.2f, at most %zu "
                             "characters",
                 e->section, v, sizeof f->format - 1);
        snprintf(f->format, sizeof f->format, "%s", v);
    } else if (!strcmp(k, "logx") || !strcmp(k, "logy")) {
        int b = !strcmp(v, "true") || !strcmp(v, "yes") ? 1
                : !strcmp(v, "false") || !strcmp(v, "no") ? 0
                                                           : -1;
        if (b < 0)
            FAIL(L, e->line, "[%s] %s = '%s': must be true or false", e->section, k, v);
        *(!strcmp(k, "logx") ? &f->logx : &f->logy) = b;
    } else if (!strcmp(k, "xtransform")) {
        if (strcmp(v, "none") && strcmp(v, "inverse"))
            FAIL(L, e->line, "[%s] xtransform = '%s': allowed: none, inverse (plot 1/x)",
                 e->section, v);
        f->xinverse = !strcmp(v, "inverse");
    } else if (!strcmp(k, "cap") || !strcmp(k, "zmin") || !strcmp(k, "zmax") ||
               !strcmp(k, "ymin") || !strcmp(k, "ymax")) {
        char *end;
        double d = strtod(v, &end);
        if (end == v || *end || !isfinite(d))
            FAIL(L, e->line, "[%s] %s = '%s': must be a number", e->section, k, v);
        *(!strcmp(k, "cap")    ? &f->cap
          : !strcmp(k, "zmin") ? &f->zmin
          : !strcmp(k, "zmax") ? &f->zmax
          : !strcmp(k, "ymin") ? &f->ymin
                               : &f->ymax) = d;
    } else if (!strcmp(k, "style")) {
        if (strcmp(v, "points") && strcmp(v, "linespoints"))
            FAIL(L, e->line, "[%s] style = '%s': allowed: linespoints (default), points",
                 e->section, v);
        f->points = !strcmp(v, "points");
    } else if (!strcmp(k, "where")) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s", v);
        f->n_where = 0;
        for (char *save = NULL, *c = strtok_r(buf, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(c, '=');
            if (!eq || f->n_where == 4)
                FAIL(L, e->line, "[%s] where = '%s': expected up to 4 conditions AXIS = VALUE "
                                 "separated by commas", e->section, v);
            *eq = '\0';
            char *name = trim(c), *val = trim(eq + 1);
            int a = sp_experiment_axis(L->ex, name);
            if (a < 0) {
                char axes[400];
                axes_list(L->ex, axes, sizeof axes);
                FAIL(L, e->line, "[%s] where: '%s' is not a sweep axis (%s)", e->section, name,
                     axes);
            }
            const sp_axis *ax = &L->ex->axes[a];
            char *end;
            double num = strtod(val, &end);
            int numeric = end != val && *end == '\0';
            size_t j;
            for (j = 0; j < ax->n; j++) {
                char *e2;
                double av = strtod(ax->values[j], &e2);
                if (!strcmp(ax->values[j], val) || !strcmp(ax->labels[j], val) ||
                    (numeric && e2 != ax->values[j] && *e2 == '\0' && av == num))
                    break;
            }
            if (j == ax->n)
                FAIL(L, e->line, "[%s] where: %s = '%s' is not one of the axis's values",
                     e->section, name, val);
            f->where_axis[f->n_where] = a;
            f->where_value[f->n_where++] = j;
        }
    } else {
        FAIL(L, e->line, "[%s] unknown key '%s'; allowed: kind, x, y, series, metric, title, "
                         "xlabel, ylabel, format, cap, zmin, zmax, ymin, ymax, logx, logy, "
                         "xtransform, style, where",
             e->section, k);
    }
    return 0;
}

/* [feature.NAME] sections: the nodes of a feature tree (gen.h). */
static int feature_key(loader *L, sp_tree_node *nd, const entry *e)
{
    const char *k = e->key, *v = e->value;
    char *end;
    if (!strcmp(k, "parent")) {
        if (strlen(v) >= sizeof nd->parent || (*v && !valid_name(v)))
            FAIL(L, e->line, "[%s] parent = '%s': the name of another [feature.NAME] section",
                 e->section, v);
        snprintf(nd->parent, sizeof nd->parent, "%s", v);
    } else if (!strcmp(k, "p") || !strcmp(k, "mag_min") || !strcmp(k, "mag_max") ||
               !strcmp(k, "mag_mean") || !strcmp(k, "mag_std")) {
        double d = strtod(v, &end);
        if (end == v || *end || !isfinite(d))
            FAIL(L, e->line, "[%s] %s = '%s': must be a number", e->section, k, v);
        if (!strcmp(k, "p") && !(d >= 0 && d <= 1))
            FAIL(L, e->line, "[%s] p = '%s': a probability must be in [0, 1]", e->section, v);
        *(!strcmp(k, "p")          ? &nd->p
          : !strcmp(k, "mag_min")  ? &nd->mag.min
          : !strcmp(k, "mag_max")  ? &nd->mag.max
          : !strcmp(k, "mag_mean") ? &nd->mag.mean
                                   : &nd->mag.std) = d;
    } else if (!strcmp(k, "exclusive") || !strcmp(k, "readout")) {
        int b = !strcmp(v, "true") || !strcmp(v, "yes") ? 1
                : !strcmp(v, "false") || !strcmp(v, "no") ? 0
                                                           : -1;
        if (b < 0)
            FAIL(L, e->line, "[%s] %s = '%s': must be true or false", e->section, k, v);
        *(!strcmp(k, "exclusive") ? &nd->exclusive : &nd->readout) = b;
    } else if (!strcmp(k, "count")) {
        long c = strtol(v, &end, 10);
        if (end == v || *end || c < 1 || c > 1048576)
            FAIL(L, e->line, "[%s] count = '%s': an integer in [1, 1048576]", e->section, v);
        nd->count = (int)c;
    } else if (!strcmp(k, "magnitude")) {
        if (strcmp(v, "constant") && strcmp(v, "uniform") && strcmp(v, "exponential") &&
            strcmp(v, "folded_normal"))
            FAIL(L, e->line, "[%s] magnitude = '%s': unknown law; allowed: constant, uniform, "
                             "exponential, folded_normal",
                 e->section, v);
        snprintf(nd->mag.law, sizeof nd->mag.law, "%s", v);
    } else {
        FAIL(L, e->line, "[%s] unknown key '%s'; allowed: parent, p, exclusive, readout, count, "
                         "magnitude, mag_min, mag_max, mag_mean, mag_std",
             e->section, k);
    }
    return 0;
}

/* Builds data.nodes from the [feature.NAME] sections and checks the tree,
 * naming the file and line of the node at fault. */
static int load_tree(loader *L, const entry *es, size_t n)
{
    sp_gen_cfg *d = &L->ex->base.data;
    d->n_nodes = 0;
    for (size_t i = 0; i < n; i++) {
        const entry *e = &es[i];
        if (!starts_with(e->section, "feature."))
            continue;
        const char *name = e->section + 8;
        sp_tree_node *nd = NULL;
        for (int j = 0; j < d->n_nodes; j++)
            if (!strcmp(d->nodes[j].name, name))
                nd = &d->nodes[j];
        if (!nd) {
            if (d->n_nodes == SP_TREE_MAX)
                FAIL(L, e->line, "[%s]: at most %d feature sections", e->section, SP_TREE_MAX);
            if (strlen(name) >= sizeof nd->name)
                FAIL(L, e->line, "[%s]: feature names have at most %zu characters", e->section,
                     sizeof nd->name - 1);
            nd = &d->nodes[d->n_nodes++];
            memset(nd, 0, sizeof *nd);
            snprintf(nd->name, sizeof nd->name, "%s", name);
            nd->p = NAN;
            nd->readout = 1;
            nd->count = 1;
            nd->mag.min = 0;
            nd->mag.max = 1;
            nd->mag.mean = 1;
            nd->mag.std = 1;
            nd->line = e->line;
        }
        if (feature_key(L, nd, e) != 0)
            return -1;
    }
    if (!d->n_nodes) {
        if (!strcmp(d->generator, "tree"))
            return sp_err_set(L->err, "%s: data.generator = tree needs [feature.NAME] sections "
                                      "(keys: parent, p, exclusive, readout, count, magnitude, "
                                      "mag_min, mag_max, mag_mean, mag_std)",
                              L->path);
        return 0;
    }
    if (strcmp(d->generator, "tree"))
        FAIL(L, d->nodes[0].line, "[feature.%s]: feature sections describe a tree; set "
                                  "data.generator = tree",
             d->nodes[0].name);
    for (int j = 0; j < d->n_nodes; j++)
        if (isnan(d->nodes[j].p))
            FAIL(L, d->nodes[j].line, "[feature.%s]: p is missing (its firing probability "
                                      "given its parent)",
                 d->nodes[j].name);
    sp_err e2;
    int bad = -1;
    d->n = 1; /* checked against the tree below */
    int nf = sp_gen_tree_features(d, &bad, &e2);
    if (nf < 0) {
        const sp_tree_node *at = &d->nodes[bad >= 0 ? bad : 0];
        char prefix[48];
        snprintf(prefix, sizeof prefix, "feature %s: ", at->name);
        const char *msg = strncmp(e2.msg, prefix, strlen(prefix)) ? e2.msg
                                                                   : e2.msg + strlen(prefix);
        FAIL(L, at->line, "[feature.%s] %s", at->name, msg);
    }
    if (nf < 1)
        FAIL(L, d->nodes[0].line, "[feature.%s]: the tree has no readout feature",
             d->nodes[0].name);
    d->n = nf;
    return 0;
}

static sp_figspec *figure_for(sp_experiment *ex, const char *name, int line)
{
    for (size_t i = 0; i < ex->n_figs; i++)
        if (!strcmp(ex->figs[i].name, name))
            return &ex->figs[i];
    if (ex->n_figs == SP_MAX_FIGS)
        return NULL;
    sp_figspec *f = &ex->figs[ex->n_figs++];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    snprintf(f->kind, sizeof f->kind, "heatmap");
    snprintf(f->format, sizeof f->format, "%%.2f");
    f->cap = f->zmin = f->zmax = f->ymin = f->ymax = NAN;
    f->line = line;
    return f;
}

static int load_entries(loader *L, const entry *es, size_t n, const char *preset)
{
    sp_experiment *ex = L->ex;
    /* Pass 1: known sections, [experiment], which presets exist. */
    int preset_found = 0, default_line = 0;
    char presets[400] = "";
    for (size_t i = 0; i < n; i++) {
        const entry *e = &es[i];
        const char *s = e->section;
        if (!strcmp(s, "experiment")) {
            if (!strcmp(e->key, "name")) {
                if (!valid_name(e->value) || strlen(e->value) >= sizeof ex->name)
                    FAIL(L, e->line, "[experiment] name = '%s': use letters, digits, - and _",
                         e->value);
                snprintf(ex->name, sizeof ex->name, "%s", e->value);
            } else if (!strcmp(e->key, "description")) {
                snprintf(ex->description, sizeof ex->description, "%s", e->value);
            } else if (!strcmp(e->key, "reference")) {
                snprintf(ex->reference, sizeof ex->reference, "%s", e->value);
            } else if (!strcmp(e->key, "default_preset")) {
                snprintf(ex->default_preset, sizeof ex->default_preset, "%s", e->value);
                default_line = e->line;
            } else {
                FAIL(L, e->line, "[experiment] unknown key '%s'; allowed: name, description, "
                                 "reference, default_preset",
                     e->key);
            }
        } else if (starts_with(s, "preset.")) {
            if (!valid_name(s + 7))
                FAIL(L, e->line, "[%s]: preset names use letters, digits, - and _", s);
            char needle[80];
            snprintf(needle, sizeof needle, " %s,", s + 7);
            if (!strstr(presets, needle) && strlen(presets) + strlen(needle) < sizeof presets)
                strcat(presets, needle);
        } else if (!(!strcmp(s, "data") || !strcmp(s, "model") || !strcmp(s, "train") ||
                     !strcmp(s, "metrics") || !strcmp(s, "solve") || !strcmp(s, "sweep") ||
                     (starts_with(s, "figure.") && valid_name(s + 7)) ||
                     (starts_with(s, "variant.") && valid_name(s + 8)) ||
                     (starts_with(s, "feature.") && valid_name(s + 8)))) {
            FAIL(L, e->line, "unknown section [%s]; allowed: experiment, data, model, train, "
                             "metrics, sweep, variant.NAME, feature.NAME, figure.NAME, preset.NAME",
                 s);
        }
    }
    if (!ex->name[0])
        return sp_err_set(L->err, "%s: [experiment] name is missing", L->path);
    int from_default = !preset;
    if (!preset)
        preset = ex->default_preset;
    if (!strcmp(preset, "none"))
        preset = "";
    if (preset[0]) {
        char needle[80];
        snprintf(needle, sizeof needle, " %s,", preset);
        preset_found = strstr(presets, needle) != NULL;
        if (!preset_found) {
            size_t pl = strlen(presets);
            if (pl)
                presets[pl - 1] = '\0';
            if (from_default)
                FAIL(L, default_line, "[experiment] default_preset = '%s': no such preset (%s%s)",
                     preset, pl ? "presets:" : "this file defines none", presets);
            return sp_err_set(L->err, "%s: no preset '%s' in this file (%s%s)", L->path, preset,
                              pl ? "presets:" : "this file defines none", presets);
        }
    }
    snprintf(ex->preset, sizeof ex->preset, "%s", preset);
    ex->preset_is_default = !strcmp(ex->preset, ex->default_preset);

    /* Pass 2: base options and axes, in file order. */
    sp_config_defaults(&ex->base);
    for (size_t i = 0; i < n; i++) {
        const entry *e = &es[i];
        if (!strcmp(e->section, "sweep")) {
            if (add_axis(L, e, e->key) != 0)
                return -1;
        } else if (!strcmp(e->section, "data") || !strcmp(e->section, "model") ||
                   !strcmp(e->section, "train") || !strcmp(e->section, "metrics") ||
                   !strcmp(e->section, "solve")) {
            if (set_option(L, &ex->base, e, e->section, e->key) != 0)
                return -1;
        }
    }
    /* Pass 3: presets. Every preset is validated; the chosen one applied. */
    for (size_t i = 0; i < n; i++) {
        const entry *e = &es[i];
        if (!starts_with(e->section, "preset."))
            continue;
        int chosen = preset[0] && !strcmp(e->section + 7, preset);
        if (starts_with(e->key, "sweep.")) {
            if (chosen) {
                if (add_axis(L, e, e->key + 6) != 0)
                    return -1;
            } else {
                sp_experiment *saved = L->ex;
                sp_experiment *scratch = calloc(1, sizeof *scratch);
                if (!scratch)
                    return sp_err_set(L->err, "out of memory");
                L->ex = scratch;
                int rc = add_axis(L, e, e->key + 6);
                L->ex = saved;
                free(scratch);
                if (rc != 0)
                    return -1;
            }
            continue;
        }
        const char *dot = strchr(e->key, '.');
        char sec[64];
        if (!dot || (size_t)(dot - e->key) >= sizeof sec)
            FAIL(L, e->line, "[%s] %s: write section.key (e.g. train.steps) or "
                             "sweep.section.key",
                 e->section, e->key);
        memcpy(sec, e->key, (size_t)(dot - e->key));
        sec[dot - e->key] = '\0';
        sp_run_cfg scratch_cfg;
        sp_config_defaults(&scratch_cfg);
        if (set_option(L, chosen ? &ex->base : &scratch_cfg, e, sec, dot + 1) != 0)
            return -1;
    }
    if (load_variants(L, es, n) != 0)
        return -1;
    if (load_tree(L, es, n) != 0)
        return -1;
    if (check_node_overrides(L) != 0)
        return -1;
    /* A relative directions file is relative to the experiment file. */
    char *dir = ex->base.data.directions;
    if (dir[0] && dir[0] != '/') {
        const char *slash = strrchr(L->path, '/');
        if (slash) {
            char full[512];
            int w = snprintf(full, sizeof full, "%.*s/%s", (int)(slash - L->path), L->path, dir);
            if (w < 0 || w >= 256)
                return sp_err_set(L->err, "%s: data.directions: path longer than 255 "
                                          "characters", L->path);
            snprintf(dir, 256, "%s", full);
        }
    }
    /* Pass 4: figures, checked against the final axes. */
    for (size_t i = 0; i < n; i++) {
        const entry *e = &es[i];
        if (!starts_with(e->section, "figure."))
            continue;
        sp_figspec *f = figure_for(ex, e->section + 7, e->line);
        if (!f)
            FAIL(L, e->line, "at most %d figures", SP_MAX_FIGS);
        if (figure_key(L, f, e) != 0)
            return -1;
    }
    for (size_t i = 0; i < ex->n_figs; i++) {
        sp_figspec *f = &ex->figs[i];
        int heat = !strcmp(f->kind, "heatmap"), lines = !strcmp(f->kind, "lines");
        if ((heat || lines || !strcmp(f->kind, "curves")) && !f->metric[0])
            FAIL(L, f->line, "[figure.%s] metric is missing", f->name);
        if (!strcmp(f->kind, "frontier") && (!f->x[0] || !f->y[0]))
            FAIL(L, f->line, "[figure.%s] a frontier needs x = <metric> and y = <metric>",
                 f->name);
        if (!strcmp(f->kind, "curves") && ex->base.curve_every <= 0)
            FAIL(L, f->line, "[figure.%s] kind = curves needs metrics.curve_every > 0 (steps "
                             "between curve points)", f->name);
        if ((lines || !strcmp(f->kind, "dims")) && !f->x[0]) {
            char axes[400];
            axes_list(ex, axes, sizeof axes);
            FAIL(L, f->line, "[figure.%s] x is missing: name a sweep axis (%s)", f->name, axes);
        }
        if (heat && (!f->x[0] || !f->y[0])) {
            char axes[400];
            axes_list(ex, axes, sizeof axes);
            FAIL(L, f->line, "[figure.%s] %s is missing: name a sweep axis (%s)", f->name,
                 f->x[0] ? "y" : "x", axes);
        }
    }
    return 0;
}

sp_experiment *sp_experiment_load(const char *path, const char *preset, sp_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        sp_err_set(err, "%s: cannot open experiment file: %s", path, strerror(errno));
        return NULL;
    }
    parse_ctx c = {.f = f};
    ini_allow_multiline = false;
    ini_use_stack = false;
    ini_max_line = MAX_LINE;
    ini_initial_alloc = MAX_LINE;
    int rc = ini_parse_stream(reader, &c, handler, &c);
    int read_errno = ferror(f) ? (errno ? errno : EIO) : 0; /* EISDIR: fopen takes folders */
    fclose(f);
    sp_experiment *ex = NULL;
    if (read_errno) {
        sp_err_set(err, "%s: cannot read experiment file: %s", path, strerror(read_errno));
    } else if (c.too_long) {
        sp_err_set(err, "%s:%d: line longer than %d characters", path, c.too_long, MAX_LINE - 3);
    } else if (c.oom || rc == -2) {
        sp_err_set(err, "%s: out of memory", path);
    } else if (rc != 0) {
        sp_err_set(err, "%s:%d: syntax error: expected '[section]', 'key = value' or a comment",
                   path, rc);
    } else if (!(ex = calloc(1, sizeof *ex))) {
        sp_err_set(err, "out of memory");
    } else {
        snprintf(ex->path, sizeof ex->path, "%s", path);
        loader L = {ex, path, err};
        if (load_entries(&L, c.e, c.n, preset) != 0) {
            free(ex);
            ex = NULL;
        }
    }
    free(c.e);
    if (!ex)
        return NULL;
    /* Every grid point must be a valid run. */
    size_t total = 1;
    for (size_t a = 0; a < ex->n_axes; a++) {
        total *= ex->axes[a].n;
        if (total > 1000000) {
            sp_err_set(err, "%s:%d: the sweep has more than 1,000,000 runs", path,
                       ex->axes[a].line);
            free(ex);
            return NULL;
        }
    }
    for (size_t i = 0; i < total; i++) {
        sp_run_cfg cfg;
        sp_err e2;
        if (sp_experiment_run_cfg(ex, i, &cfg, NULL, &e2) != 0 || sp_config_check(&cfg, &e2) != 0) {
            char where[600] = "";
            size_t coords[SP_MAX_AXES];
            sp_run_cfg dummy;
            sp_experiment_run_cfg(ex, i, &dummy, coords, NULL);
            for (size_t a = 0; a < ex->n_axes; a++) {
                char part[120];
                snprintf(part, sizeof part, "%s%s=%s", a ? ", " : "", ex->axes[a].name,
                         ex->axes[a].values[coords[a]]);
                strncat(where, part, sizeof where - strlen(where) - 1);
            }
            sp_err_set(err, "%s: invalid run%s%s%s: %s", path, ex->n_axes ? " (" : "", where,
                       ex->n_axes ? ")" : "", e2.msg);
            free(ex);
            return NULL;
        }
    }
    return ex;
}

void sp_experiment_free(sp_experiment *ex) { free(ex); }

size_t sp_experiment_n_runs(const sp_experiment *ex)
{
    size_t total = 1;
    for (size_t a = 0; a < ex->n_axes; a++)
        total *= ex->axes[a].n;
    return total;
}

int sp_experiment_run_cfg(const sp_experiment *ex, size_t i, sp_run_cfg *cfg, size_t *coords,
                          sp_err *err)
{
    *cfg = ex->base;
    size_t c[SP_MAX_AXES] = {0};
    for (size_t a = ex->n_axes; a-- > 0;) {
        const sp_axis *ax = &ex->axes[a];
        size_t k = i % ax->n;
        i /= ax->n;
        c[a] = k;
        if (coords)
            coords[a] = k;
        if (ax->kind == SP_AXIS_OPTION && sp_config_set(cfg, ax->opt, ax->values[k], err) != 0)
            return -1;
    }
    int va = -1, la = -1;
    for (size_t a = 0; a < ex->n_axes; a++) {
        if (ex->axes[a].kind == SP_AXIS_VARIANT)
            va = (int)a;
        if (ex->axes[a].kind == SP_AXIS_LEVEL)
            la = (int)a;
    }
    if (va >= 0) {
        const sp_variant *v = &ex->variants[c[va]];
        for (size_t j = 0; j < v->n_ov; j++) {
            const sp_override *o = &v->ov[j];
            size_t idx = o->n > 1 && la >= 0 ? c[la] : 0;
            if (!o->opt) {
                loader L = {(sp_experiment *)ex, ex->path, err};
                if (apply_node_override(&L, cfg, o) != 0)
                    return -1;
            } else if (sp_config_set(cfg, o->opt, o->values[idx], err) != 0) {
                return -1;
            }
        }
    }
    return 0;
}

int sp_experiment_axis(const sp_experiment *ex, const char *name)
{
    for (size_t a = 0; a < ex->n_axes; a++)
        if (!strcmp(ex->axes[a].name, name))
            return (int)a;
    return -1;
}
