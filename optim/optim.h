/* optim.h - first-order optimizers (SGD, Adam, AdamW), gradient clipping by global
 * norm, and learning-rate schedules.
 *
 * Semantics follow PyTorch exactly (torch.optim.SGD / Adam / AdamW,
 * torch.nn.utils.clip_grad_norm_), so that a run can be compared number for number:
 *
 *  SGD (Sutskever et al. 2013 momentum as in PyTorch), per parameter p with gradient g:
 *      g <- g + wd p                                   (if wd != 0)
 *      b <- g on the first step, else b <- mu b + (1 - dampening) g   (if mu != 0)
 *      g <- g + mu b if nesterov, else g <- b          (if mu != 0)
 *      p <- p - lr g
 *  Adam (Kingma & Ba 2015, Algorithm 1), t = the parameter's step count (from 1):
 *      g <- g + wd p                                   (Adam only: L2 in the gradient)
 *      p <- p (1 - lr wd)                              (AdamW only: decoupled decay,
 *                                                       Loshchilov & Hutter 2019)
 *      m <- beta1 m + (1 - beta1) g
 *      v <- beta2 v + (1 - beta2) g^2
 *      vmax <- max(vmax, v), v^ = vmax                  (amsgrad; else v^ = v)
 *      p <- p - lr / (1 - beta1^t) * m / (sqrt(v^) / sqrt(1 - beta2^t) + eps)
 *  eps is added outside the square root.
 *
 * Parameters are borrowed da_tensor * (F32 or F64, created with da_tensor_new); a
 * parameter whose grad is NULL is skipped by a step and keeps its step count, as in
 * PyTorch where state advances only for parameters that have a gradient. The state
 * buffers have the dtype of their parameter and are owned by the optimizer.
 *
 * Ownership: da_optim_new allocates, da_optim_free frees (NULL is a no-op). The
 * parameter tensors must outlive the optimizer. */
#ifndef DA_OPTIM_H
#define DA_OPTIM_H

#include <stddef.h>

#include "tensor.h"

typedef enum { DA_OPTIM_SGD = 0, DA_OPTIM_ADAM = 1, DA_OPTIM_ADAMW = 2 } da_optim_kind;

typedef struct {
    da_optim_kind kind;
    double lr;           /* >= 0 */
    double weight_decay; /* >= 0; SGD and Adam: L2 added to g; AdamW: decoupled */
    /* SGD */
    double momentum;     /* >= 0 */
    double dampening;    /* 0 <= dampening <= 1 (PyTorch default 0) */
    int nesterov;        /* needs momentum > 0 and dampening == 0 */
    /* Adam / AdamW */
    double beta1, beta2; /* in [0, 1) */
    double eps;          /* >= 0 */
    int amsgrad;
} da_optim_cfg;

/* Configurations with PyTorch's defaults: SGD (momentum as given, dampening 0, no
 * Nesterov, wd 0); Adam (betas 0.9, 0.999, eps 1e-8, wd 0); AdamW (same, wd 1e-2). */
da_optim_cfg da_sgd_cfg(double lr, double momentum);
da_optim_cfg da_adam_cfg(double lr);
da_optim_cfg da_adamw_cfg(double lr);

typedef struct da_optim da_optim;

/* An optimizer over params[0..n_params-1] (distinct, F32 or F64). The cfg is copied.
 * NULL on error: NULL/duplicate parameters, bad dtype (DA_EDTYPE), a hyperparameter out
 * of range or not finite (DA_ERANGE), Nesterov without momentum or with dampening
 * (DA_EINVAL). */
da_optim *da_optim_new(da_tensor **params, int n_params, const da_optim_cfg *cfg);
void da_optim_free(da_optim *opt);

/* One update of every parameter that has a grad. Before touching anything, checks that
 * every grad is finite (DA_ENAN otherwise, nothing updated). */
int da_optim_step(da_optim *opt);
/* Zero the grad of every parameter (those allocated). */
void da_optim_zero_grad(da_optim *opt);
/* Learning rate of the next steps (for schedules); DA_ERANGE if < 0 or not finite. */
int da_optim_set_lr(da_optim *opt, double lr);
double da_optim_get_lr(const da_optim *opt);
/* Number of da_optim_step calls that succeeded (restored by state_load). */
long da_optim_steps(const da_optim *opt);
const da_optim_cfg *da_optim_get_cfg(const da_optim *opt);

/* ---- state for checkpoints ----
 * The state (step counts and buffers of every parameter, the global step count) as one
 * byte blob of da_optim_state_size() bytes (host byte order). Loading checks that the
 * blob was saved by an optimizer of the same kind over parameters of the same dtypes
 * and sizes (DA_EFORMAT otherwise, nothing changed). */
size_t da_optim_state_size(const da_optim *opt);
int da_optim_state_save(const da_optim *opt, void *buf, size_t size);
int da_optim_state_load(da_optim *opt, const void *buf, size_t size);

/* ---- per-parameter kernels (used by da_optim_step; usable on their own) ----
 * Update p in place from p->grad (which must be allocated). Buffers have p->size
 * elements of p's dtype; step is the parameter's step count including this update
 * (1 on the first). da_sgd_update: buf is the momentum buffer (unused, may be NULL,
 * if cfg->momentum == 0). da_adam_update (kinds ADAM and ADAMW): m, v, and vmax
 * (amsgrad only, else may be NULL). No checks: da_optim_step validates. */
void da_sgd_update(const da_optim_cfg *cfg, da_tensor *p, void *buf, long step);
void da_adam_update(const da_optim_cfg *cfg, da_tensor *p, void *m, void *v, void *vmax,
                    long step);

/* ---- gradient clipping (torch.nn.utils.clip_grad_norm_) ----
 * total = the norm_type-norm of the vector of all grads of params (norm_type > 0, or
 * INFINITY for the max norm); every grad is multiplied by
 * min(1, max_norm / (total + 1e-6)). Parameters without grad are ignored. *total_norm
 * (may be NULL) receives total before clipping. DA_ENAN if total is not finite (grads
 * are left unchanged), DA_ERANGE for max_norm < 0 or norm_type <= 0. */
int da_clip_grad_norm(da_tensor **params, int n_params, double max_norm, double norm_type,
                      double *total_norm);

/* ---- learning-rate schedules: pure functions of the step (0-based) ----
 * Cosine with linear warmup (as llm.c / nanoGPT):
 *   step < warmup:          lr = base_lr (step + 1) / warmup
 *   warmup <= step < total: lr = min_lr + (base_lr - min_lr) (1 + cos(pi r)) / 2,
 *                           r = (step - warmup) / (total - warmup)
 *   step >= total:          lr = min_lr
 * With warmup = 0 this is torch.optim.lr_scheduler.CosineAnnealingLR with T_max = total
 * and eta_min = min_lr. Needs 0 <= min_lr <= base_lr, 0 <= warmup < total, step >= 0. */
int da_lr_cosine(double base_lr, double min_lr, long warmup, long total, long step,
                 double *lr);
/* Step decay (torch.optim.lr_scheduler.StepLR): lr = base_lr gamma^floor(step / step_size),
 * needs base_lr >= 0, gamma > 0, step_size >= 1, step >= 0. */
int da_lr_step(double base_lr, double gamma, long step_size, long step, double *lr);

#endif
