/* reg.c: placeholder until the regularisers land (being written). */
#include "superpose/sae.h"

size_t sp_reg_orth_ws_size(size_t m, size_t d) { return 1; }
double sp_reg_orth(const gsl_matrix_float *W, double lambda, gsl_matrix_float *gW, float *ws) { return 0; }
double sp_reg_prestd(const float *P, size_t B, size_t m, size_t ld, double lambda, float *dP) { return 0; }
size_t sp_resample(sp_learner *L, sp_optim *opt, const size_t *dead, size_t n_dead,
                   const gsl_matrix_float *X, const double *loss, const float *bd,
                   gsl_rng *rng) { return 0; }
