"""optim.py - Newton Losses (optim/newton.h) and TrAct / ISAAC weight-gradient
preconditioning (optim/precond.h) on NumPy arrays.

Newton conventions (they fix what lambda means): g and H are derivatives of the
PER-SAMPLE loss l(z_i), the Fisher matrix is a MEAN over the batch and the Newton loss
(1/B) sum_i 1/2 ||z_i - z*_i||^2 is a MEAN, so its gradient is (C_i + lambda I)^-1 g_i / B.
Results have the dtype of z (Newton) or X (TrAct / ISAAC)."""
import ctypes

from . import _lib
from ._lib import check, empty, ptr, rows, same_shape, cast, enum

REGIMES = ("auto", "dxd", "nxn")
PRECOND_KINDS = ("tract", "isaac")  # DA_PRECOND_TRACT = 1, DA_PRECOND_ISAAC = 2


def newton_hessian_step(z, g, H, lambda_):
    """Regularised Newton step with per-sample Hessians: z, g [B, m], H [B, m, m].
    Returns (zstar [B, m], grad [B, m] of the Newton loss, number of eigen fallbacks)."""
    z64, B, m, lead = rows(z, "z", min_ndim=2)
    g64, H64 = same_shape(g, "g", z64.shape), same_shape(H, "H", lead + (m, m))
    zstar, grad, fb = empty(z64.shape), empty(z64.shape), ctypes.c_int()
    check(_lib.lib().da_newton_hessian_step(B, m, ptr(z64), ptr(g64), ptr(H64), float(lambda_),
                                            ptr(zstar), ptr(grad), ctypes.addressof(fb)))
    return cast(zstar, z.dtype), cast(grad, z.dtype), fb.value


def newton_fisher_step(z, g, lambda_):
    """Regularised Newton step with the empirical Fisher matrix of the batch of g.
    Returns (zstar, grad, fallbacks) as newton_hessian_step."""
    z64, B, m, lead = rows(z, "z", min_ndim=2)
    g64 = same_shape(g, "g", z64.shape)
    zstar, grad, fb = empty(z64.shape), empty(z64.shape), ctypes.c_int()
    check(_lib.lib().da_newton_fisher_step(B, m, ptr(z64), ptr(g64), float(lambda_),
                                           ptr(zstar), ptr(grad), ctypes.addressof(fb)))
    return cast(zstar, z.dtype), cast(grad, z.dtype), fb.value


def inject_fisher_grad(grad_z, lambda_):
    """The backward of InjectFisher: grad_z [B, m], the gradient of a batch-MEAN loss
    (so g_i = B grad_z_i), becomes the Fisher-Newton direction (F + lambda I)^-1 g_i / B."""
    g64, B, m, lead = rows(grad_z, "grad_z", min_ndim=2)
    g_sample, out = g64 * B, empty(g64.shape)
    check(_lib.lib().da_newton_fisher_step(B, m, ptr(g_sample), ptr(g_sample), float(lambda_),
                                           None, ptr(out), None))
    return cast(out, grad_z.dtype)


def _linear(X, G):
    x64, N, n_in, lead = rows(X, "X", min_ndim=2)
    g64, N2, n_out, lead2 = rows(G, "G", min_ndim=2)
    if lead2 != lead:
        _lib.fail(_lib.ESHAPE, "X %s and G %s must have the same leading shape", X.shape, G.shape)
    return x64, g64, N, n_in, n_out


def precond_linear_grad(kind, X, G, lambda_, regime="auto"):
    """Preconditioned weight gradient [out, in] of a linear layer y = x W^T + b with input
    X [..., in] and G = dL/dy [..., out]; kind 'tract' (lambda) or 'isaac' (lambda_a);
    regime 'auto', 'dxd' (in x in Cholesky) or 'nxn' (Woodbury)."""
    x64, g64, N, n_in, n_out = _linear(X, G)
    out = empty((n_out, n_in))
    check(_lib.lib().da_precond_linear_grad(1 + enum(kind, PRECOND_KINDS, "kind"),
                                            enum(regime, REGIMES, "regime"), N, n_in, n_out,
                                            ptr(x64), ptr(g64), float(lambda_), ptr(out)))
    return cast(out, X.dtype)


def tract_linear_grad(X, G, lambda_):
    """TrAct: G^T X (X^T X / N + lambda I)^-1 (DESIGN.md §5b)."""
    x64, g64, N, n_in, n_out = _linear(X, G)
    out = empty((n_out, n_in))
    check(_lib.lib().da_tract_linear_grad(N, n_in, n_out, ptr(x64), ptr(g64), float(lambda_),
                                          ptr(out)))
    return cast(out, X.dtype)


def isaac_linear_grad(X, G, lambda_a):
    """ISAAC: lambda_a G^T X (X^T X / N + lambda_a I)^-1 (DESIGN.md §5b)."""
    x64, g64, N, n_in, n_out = _linear(X, G)
    out = empty((n_out, n_in))
    check(_lib.lib().da_isaac_linear_grad(N, n_in, n_out, ptr(x64), ptr(g64), float(lambda_a),
                                          ptr(out)))
    return cast(out, X.dtype)


def precond_conv2d_grad(kind, x, G, lambda_, k, stride=1, pad=0, regime="auto"):
    """Preconditioned weight gradient [out, C, k, k] of a conv2d layer with input
    x [N, C, H, W] and G = dL/dy [N, out, Ho, Wo]."""
    x64, g64 = _lib.as_input(x, "x"), _lib.as_input(G, "G")
    if x64.ndim != 4 or g64.ndim != 4 or g64.shape[0] != x64.shape[0]:
        _lib.fail(_lib.ESHAPE, "x must be [N, C, H, W] and G [N, out, Ho, Wo], got %s and %s",
                  x.shape, G.shape)
    N, C, H, W = x64.shape
    n_out, k = g64.shape[1], int(k)
    stride, pad = int(stride), int(pad)
    Ho, Wo = ((H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1) \
        if stride >= 1 else g64.shape[2:]  # stride < 1: the C call reports DA_ERANGE
    if g64.shape[2:] != (Ho, Wo):
        _lib.fail(_lib.ESHAPE, "G has spatial shape %s, expected (%d, %d)", g64.shape[2:], Ho, Wo)
    out = empty((n_out, C, k, k))
    check(_lib.lib().da_precond_conv2d_grad(1 + enum(kind, PRECOND_KINDS, "kind"),
                                            enum(regime, REGIMES, "regime"), N, C, H, W, n_out,
                                            k, stride, pad, ptr(x64), ptr(g64),
                                            float(lambda_), ptr(out)))
    return cast(out, x.dtype)
