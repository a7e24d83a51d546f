/* diffalg.h - everything of diffalg in one include: #include <diffalg/diffalg.h> */
#ifndef DA_DIFFALG_H
#define DA_DIFFALG_H

#include "error.h"
#include "tensor.h"
#include "ops.h"
#include "rng.h"

#endif
