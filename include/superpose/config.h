/* config.h: the resolved configuration of one run, and its option table.
 *
 * Every option has a section, a key, a type, a default, the allowed values
 * and one line of help; the table is the single source for experiment-file
 * validation, `superpose train key=value`, `superpose help` and the README.
 * A run's key is the FNV-1a 64 hash of its canonical text, which lists
 * every option ("section.key=value\n", table order, reals as %.17g), the
 * seeds included: the same text means the same numbers. */
#ifndef SUPERPOSE_CONFIG_H
#define SUPERPOSE_CONFIG_H

#include <stddef.h>

#include "superpose/gen.h"
#include "superpose/optim.h"
#include "superpose/penalty.h"
#include "superpose/sae.h"
#include "superpose/util.h"

/* Codes scored at evaluation (section [solve]; REFERENCE.md 3). */
typedef struct {
    char method[32];     /* encoder|refit|scale|scale_latent|mp|omp|gp|ista|fista */
    int match;           /* 0 l0 (the encoder's), 1 fixed, 2 coef (the SAE's own objective) */
    int l0;              /* fixed: atoms per sample */
    double lambda;       /* fixed: L1 coefficient */
    double threshold;    /* zero codes below this before scoring */
    int nonneg;
    int iters;
    double tol;
    long fit_samples;
} sp_solve_run_cfg;

typedef struct {
    sp_gen_cfg data;
    char learner[32];   /* train.learner: sae | none (data statistics only) */
    sp_sae_cfg model;
    sp_penalty_cfg penalty;
    sp_optim_cfg optim;
    int batch;          /* train.batch */
    long steps;         /* train.steps */
    long seed;          /* train.seed: initialisation and data stream */
    long eval_samples;  /* metrics.eval_samples */
    long resample_every;   /* train.resample_every: window in steps (0: off) */
    long resample_samples; /* train.resample_samples: inputs scored per resampling */
    double resample_until; /* train.resample_until: fraction of training */
    long curve_every;      /* metrics.curve_every: steps between curve points (0: off) */
    sp_solve_run_cfg solve;
    char pairs[256];       /* metrics.pairs: "p:c, ..." parent:child truth rows for absorption */
    double tau;            /* metrics.tau: splitting threshold on cos */
} sp_run_cfg;

/* Parses metrics.pairs ("p:c, p:c", truth rows < n_truth) into parent and
 * child (up to max pairs). Returns the number of pairs, or -1 with err. */
int sp_config_pairs(const char *text, size_t n_truth, size_t *parent, size_t *child, size_t max,
                    sp_err *err);

typedef enum {
    SP_OPT_INT,     /* int */
    SP_OPT_LONG,    /* long */
    SP_OPT_REAL,    /* double */
    SP_OPT_BOOL,    /* int 0/1 */
    SP_OPT_NAME,    /* char[32], one of choices */
    SP_OPT_CHOICE,  /* int, index into choices */
    SP_OPT_TEXT     /* char[256]: a path or a list of numbers */
} sp_opt_type;

typedef struct {
    const char *section;
    const char *key;
    sp_opt_type type;
    size_t offset;       /* into sp_run_cfg */
    const char *def;     /* default, as text */
    double min, max;     /* numeric range (inclusive) */
    const char *choices; /* "a|b|c" for NAME and CHOICE */
    const char *help;
} sp_opt;

/* The option table (NULL-terminated by n). */
const sp_opt *sp_config_options(size_t *n);
/* Finds "section.key", or a bare key that is unique across sections. */
const sp_opt *sp_config_find(const char *name);
/* As sp_config_find, but on failure says whether the name is unknown or
 * a bare key of several sections. */
const sp_opt *sp_config_lookup(const char *name, sp_err *err);
/* Finds key within section. */
const sp_opt *sp_config_find_in(const char *section, const char *key);

/* Sets every option to its default. */
void sp_config_defaults(sp_run_cfg *cfg);
/* Parses and range-checks one value. On error returns -1 with a message
 * "section.key = 'value': what is allowed". */
int sp_config_set(sp_run_cfg *cfg, const sp_opt *opt, const char *value, sp_err *err);
/* Cross-option checks (including memory needed). 0 or -1 with err. */
int sp_config_check(const sp_run_cfg *cfg, sp_err *err);
/* Writes the option's current value as canonical text. */
void sp_config_format(const sp_run_cfg *cfg, const sp_opt *opt, char *buf, size_t len);
/* Canonical text of the whole configuration (malloc'ed). */
char *sp_config_canonical(const sp_run_cfg *cfg);
/* The run key: 16 lower-case hex digits of the hash of the canonical text. */
void sp_config_key(const sp_run_cfg *cfg, char key[17]);
/* The key of the run's training: the run key with every [solve] option at
 * its default (runs with the same training key train the same model). */
void sp_config_training_key(const sp_run_cfg *cfg, char key[17]);
/* 1 if a and b differ at most in [solve]. */
int sp_config_same_training(const sp_run_cfg *a, const sp_run_cfg *b);
/* Runs whose trainings can form one ensemble (ensemble.h) have the same
 * ensemble key: the training key with the penalty (train.penalty,
 * train.coef, ...), the optimizer (train.optimizer, train.lr, ...) and
 * model.k set to their defaults; they share the data stream, the
 * initialisation and the shape. */
void sp_config_ensemble_key(const sp_run_cfg *cfg, char key[17]);
/* 1 if the run's learner can be an ensemble member: an SAE (relu, topk,
 * batchtopk, jumprelu) with an untied linear encoder, on a streamed
 * generator (data.dataset = 0: a fixed dataset has a cursor that the
 * members would share). */
int sp_config_ensemble_ok(const sp_run_cfg *cfg);
/* Lists allowed keys of a section, comma separated, into buf. */
void sp_config_keys_of(const char *section, char *buf, size_t len);
/* Number of latents of this configuration. */
size_t sp_config_latents(const sp_run_cfg *cfg);
/* Approximate floating-point work of one run (for progress estimates). */
double sp_config_cost(const sp_run_cfg *cfg);

#endif
