/* solve.c: being written (see include/superpose/solve.h). */
#include "superpose/solve.h"
