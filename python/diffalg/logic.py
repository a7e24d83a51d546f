"""logic.py - differentiable logic gate layers (difflogic; lib/logic.h) on NumPy arrays.

Neuron j of a layer reads x[..., ia[j]] and x[..., ib[j]] and mixes the 16 relaxed gates
(difflogic's order, 0 false ... 15 true) with softmax(w[j]); hard = True takes only the
argmax gate (difflogic's eval mode). GroupSum sums k contiguous groups and divides by
tau. Results have the dtype of x."""
import numpy as np

from . import _lib
from ._lib import check, empty, ptr, rows, same_shape, cast

def logic_gate(gate, a, b):
    """The relaxed gate `gate` (0..15) of a, b (scalars or arrays of one shape)."""
    fn = _lib.lib().da_logic_gate
    if np.isnan(fn(int(gate), 0.0, 0.0)):  # an unknown gate: NaN and the error set
        check(_lib.lib().da_last_error_code())
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    out = np.array([fn(int(gate), float(u), float(v)) for u, v in zip(a.ravel(), b.ravel())])
    return out.reshape(a.shape) if a.ndim else float(out[0])


def _indices(ia, ib):
    ia, ib = np.asarray(ia), np.asarray(ib)
    if ia.ndim != 1 or ia.shape != ib.shape or not (np.issubdtype(ia.dtype, np.integer)
                                                    and np.issubdtype(ib.dtype, np.integer)):
        _lib.fail(_lib.ESHAPE, "ia and ib must be integer vectors of one length")
    return (np.ascontiguousarray(ia, dtype=np.int32), np.ascontiguousarray(ib, dtype=np.int32),
            ia.size)


def _layer_args(x, w, ia, ib):
    x64, batch, in_dim, lead = rows(x, "x")
    ia32, ib32, out_dim = _indices(ia, ib)
    w64 = same_shape(w, "w", (out_dim, 16))
    return x64, w64, ia32, ib32, batch, in_dim, out_dim, lead


def logic_layer(x, w, ia, ib, hard=False):
    """y [..., out_dim] of a logic layer: x [..., in_dim], w [out_dim, 16], ia, ib [out_dim]."""
    x64, w64, ia32, ib32, batch, in_dim, out_dim, lead = _layer_args(x, w, ia, ib)
    y = empty(lead + (out_dim,))
    check(_lib.lib().da_logic_layer_forward(batch, in_dim, out_dim, ptr(ia32), ptr(ib32),
                                            ptr(w64), ptr(x64), int(bool(hard)), ptr(y)))
    return cast(y, x.dtype)


def logic_layer_vjp(x, w, ia, ib, gy, hard=False):
    """(gx [..., in_dim], gw [out_dim, 16]): gradients of sum(gy * y) (gw = 0 when hard)."""
    x64, w64, ia32, ib32, batch, in_dim, out_dim, lead = _layer_args(x, w, ia, ib)
    g64 = same_shape(gy, "gy", lead + (out_dim,))
    gx, gw = empty(x64.shape), empty((out_dim, 16))
    check(_lib.lib().da_logic_layer_backward(batch, in_dim, out_dim, ptr(ia32), ptr(ib32),
                                             ptr(w64), ptr(x64), int(bool(hard)), ptr(g64),
                                             ptr(gx), ptr(gw)))
    return cast(gx, x.dtype), cast(gw, x.dtype)


def random_connections(in_dim, out_dim, rng):
    """difflogic's "random" connections (ia, ib) [out_dim] (needs 2 out_dim >= in_dim),
    drawn from rng (a diffalg.Rng)."""
    ia, ib = np.empty(int(out_dim), dtype=np.int32), np.empty(int(out_dim), dtype=np.int32)
    check(_lib.lib().da_logic_connections_random(rng._h, int(in_dim), int(out_dim), ptr(ia),
                                                 ptr(ib)))
    return ia, ib


def group_sum(x, k, tau=1.0):
    """difflogic's GroupSum: x [..., n] -> [..., k], each group of n/k summed, / tau."""
    x64, batch, n, lead = rows(x, "x")
    y = empty(lead + (int(k),))
    check(_lib.lib().da_logic_group_sum(batch, n, int(k), float(tau), ptr(x64), ptr(y)))
    return cast(y, x.dtype)


def group_sum_vjp(gy, n, tau=1.0):
    """gx [..., n] of group_sum for the cotangent gy [..., k]."""
    g64, batch, k, lead = rows(gy, "gy")
    gx = empty(lead + (int(n),))
    check(_lib.lib().da_logic_group_sum_backward(batch, int(n), k, float(tau), ptr(g64),
                                                 ptr(gx)))
    return cast(gx, gy.dtype)
