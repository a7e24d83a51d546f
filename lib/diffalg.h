/* diffalg.h - everything of diffalg in one include: #include <diffalg/diffalg.h> */
#ifndef DA_DIFFALG_H
#define DA_DIFFALG_H

#include "error.h"
#include "alloc.h"
#include "tensor.h"
#include "ops.h"
#include "rng.h"
#include "layers.h"
#include "dist.h"
#include "smooth.h"
#include "newton.h"
#include "ranking.h"
#include "optim.h"
#include "data.h"
#include "io.h"
#include "pav.h"
#include "sinkhorn.h"
#include "precond.h"
#include "logic.h"
#include "logic_conv.h"
#include "logicnet.h"
#include "logic_compile.h"
#include "monk.h"
#include "shortest_path.h"
#include "sortnet.h"
#include "topk.h"
#include "neuralsort.h"
#include "softsort.h"
#include "ranking_metrics.h"

#endif
