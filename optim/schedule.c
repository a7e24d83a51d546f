/* schedule.c - learning-rate schedules as pure functions of the step (optim.h):
 * cosine annealing (Loshchilov & Hutter 2017, SGDR eq. 5 without restarts) with a
 * linear warmup, and step decay (torch.optim.lr_scheduler.StepLR). */
#include <math.h>

#include "optim.h"

int da_lr_cosine(double base_lr, double min_lr, long warmup, long total, long step,
                 double *lr)
{
    if (!lr)
        return da_set_error(DA_EINVAL, "da_lr_cosine: lr is NULL");
    if (!isfinite(base_lr) || !isfinite(min_lr) || min_lr < 0 || min_lr > base_lr)
        return da_set_error(DA_ERANGE, "da_lr_cosine: need 0 <= min_lr (%g) <= base_lr (%g)",
                            min_lr, base_lr);
    if (warmup < 0 || total <= warmup || step < 0)
        return da_set_error(DA_ERANGE, "da_lr_cosine: need 0 <= warmup (%ld) < total (%ld) "
                                       "and step (%ld) >= 0", warmup, total, step);
    if (step < warmup) {
        *lr = base_lr * (double)(step + 1) / (double)warmup;
    } else if (step < total) {
        double r = (double)(step - warmup) / (double)(total - warmup);
        *lr = min_lr + (base_lr - min_lr) * 0.5 * (1.0 + cos(M_PI * r));
    } else {
        *lr = min_lr;
    }
    return DA_OK;
}

int da_lr_step(double base_lr, double gamma, long step_size, long step, double *lr)
{
    if (!lr)
        return da_set_error(DA_EINVAL, "da_lr_step: lr is NULL");
    if (!isfinite(base_lr) || base_lr < 0 || !isfinite(gamma) || gamma <= 0)
        return da_set_error(DA_ERANGE, "da_lr_step: need base_lr (%g) >= 0, gamma (%g) > 0",
                            base_lr, gamma);
    if (step_size < 1 || step < 0)
        return da_set_error(DA_ERANGE, "da_lr_step: need step_size (%ld) >= 1, step (%ld) >= 0",
                            step_size, step);
    *lr = base_lr * pow(gamma, (double)(step / step_size));
    return DA_OK;
}
