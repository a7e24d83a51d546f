/* adam.c - one Adam / AdamW update of a parameter, torch.optim.Adam / AdamW semantics
 * (Kingma & Ba 2015, Algorithm 1 with PyTorch's placement of eps outside the square
 * root; AdamW's decoupled decay p <- p (1 - lr wd), Loshchilov & Hutter 2019, Alg. 2
 * as PyTorch implements it). The bias corrections are computed in double like
 * PyTorch's Python scalars; the elementwise arithmetic is in the parameter's dtype.
 * m is updated as PyTorch's lerp: m + (1 - beta1) (g - m). */
#include <math.h>

#include "optim.h"

void da_adam_update(const da_optim_cfg *cfg, da_tensor *p, void *m, void *v, void *vmax,
                    long step)
{
    long n = p->size;
    int decoupled = cfg->kind == DA_OPTIM_ADAMW, ams = cfg->amsgrad;
    double bc1 = 1.0 - pow(cfg->beta1, (double)step);
    double bc2_sqrt = sqrt(1.0 - pow(cfg->beta2, (double)step));
    DA_DISPATCH(p->dtype, T, {
        T *w = p->data;          /* [n] */
        const T *gr = p->grad;   /* [n] */
        T *mm = m, *vv = v, *vm = vmax;
        const T wd = (T)cfg->weight_decay, decay = (T)(1.0 - cfg->lr * cfg->weight_decay);
        const T a1 = (T)(1.0 - cfg->beta1), b2 = (T)cfg->beta2, a2 = (T)(1.0 - cfg->beta2);
        const T step_size = (T)(cfg->lr / bc1), bc2s = (T)bc2_sqrt, eps = (T)cfg->eps;
        _Pragma("omp parallel for schedule(static) if (n > 32768)")
        for (long i = 0; i < n; i++) {
            T g = gr[i];
            if (decoupled)
                w[i] *= decay;
            else if (wd != 0)
                g += wd * w[i];
            mm[i] += a1 * (g - mm[i]);
            vv[i] = b2 * vv[i] + a2 * g * g;
            T vhat = vv[i];
            if (ams) {
                if (vm[i] < vv[i])
                    vm[i] = vv[i];
                vhat = vm[i];
            }
            T denom = (T)sqrt(vhat) / bc2s + eps;
            w[i] -= step_size * mm[i] / denom;
        }
    });
}
