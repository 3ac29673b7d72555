/* gated.c: placeholder until the gated learner lands (being written). */
#include "superpose/sae.h"

sp_learner *sp_gated_alloc(const sp_sae_cfg *cfg, const sp_penalty_cfg *pen, size_t d,
                         size_t m, size_t max_batch, long total_steps, gsl_rng *rng,
                         sp_err *err)
{
    sp_err_set(err, "model.arch = gated is not built yet");
    return NULL;
}
