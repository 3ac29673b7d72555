/* recovery.c: being written (see include/superpose/recovery.h). */
#include "superpose/recovery.h"
