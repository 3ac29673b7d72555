/* dict.c: being written (see include/superpose/sae.h: dl, rica, pca). */
#include "superpose/sae.h"

sp_learner *sp_dict_alloc(const sp_sae_cfg *cfg, const sp_penalty_cfg *pen, size_t d, size_t m,
                          size_t max_batch, long total_steps, gsl_rng *rng, sp_err *err)
{
    (void)cfg, (void)pen, (void)d, (void)m, (void)max_batch, (void)total_steps, (void)rng;
    sp_err_set(err, "model.arch = %s is not built yet", cfg->arch);
    return NULL;
}
