/* stacked.c: placeholder until the stacked learner lands (being written). */
#include "superpose/sae.h"

sp_learner *sp_stacked_alloc(const sp_sae_cfg *cfg, size_t d,
                         size_t m, size_t max_batch, long total_steps, gsl_rng *rng,
                         sp_err *err)
{
    sp_err_set(err, "model.arch = stacked is not built yet");
    return NULL;
}
