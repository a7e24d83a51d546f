/* logicnet_impl.h - internals of the logic gate networks shared by logicnet.c and
 * logicnet_io.c. Not installed; not part of the public API. */
#ifndef DA_LOGICNET_IMPL_H
#define DA_LOGICNET_IMPL_H

#include "logicnet.h"

/* A network of the given sizes (assumed in range) with zero parameters, unset
 * connections, tau and grad_factor 1; NULL (DA_ENOMEM) on failure. */
da_logicnet *da_logicnet_alloc(int n_inputs, int n_thresholds, int n_layers, int width,
                               int n_classes);

#endif
