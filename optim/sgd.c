/* sgd.c - one SGD update of a parameter, torch.optim.SGD semantics (optim.h):
 *   g <- g + wd p;  b <- g (first step) or mu b + (1 - dampening) g;
 *   g <- g + mu b (Nesterov) or b;  p <- p - lr g.
 * Arithmetic is in the parameter's dtype, as PyTorch. */
#include "optim.h"

void da_sgd_update(const da_optim_cfg *cfg, da_tensor *p, void *buf, long step)
{
    long n = p->size;
    int use_momentum = cfg->momentum != 0.0, first = step <= 1;
    DA_DISPATCH(p->dtype, T, {
        T *w = p->data;          /* [n] */
        const T *gr = p->grad;   /* [n] */
        T *b = buf;              /* [n] momentum buffer */
        const T lr = (T)cfg->lr, wd = (T)cfg->weight_decay, mu = (T)cfg->momentum;
        const T keep = (T)(1.0 - cfg->dampening);
        _Pragma("omp parallel for schedule(static) if (n > 32768)")
        for (long i = 0; i < n; i++) {
            T g = gr[i];
            if (wd != 0)
                g += wd * w[i];
            if (use_momentum) {
                b[i] = first ? g : mu * b[i] + keep * g;
                g = cfg->nesterov ? g + mu * b[i] : b[i];
            }
            w[i] -= lr * g;
        }
    });
}
