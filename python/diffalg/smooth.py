"""smooth.py - stochastic smoothing of a black box with variance reduction (relax/smooth.h;
Petersen et al., "Generalizing Stochastic Smoothing for Differentiation and Gradient
Estimation", arXiv 2410.08125), the random number generator, and Python callbacks.

A black box is any Python function of a float64 vector x [n] returning m numbers. It is
called serially from the C estimator; an exception raised inside it aborts the estimate
and is re-raised by the calling function."""
import ctypes

import numpy as np

from . import _lib
from ._lib import Handle, check, empty, ptr, cast, enum

DISTS = ("gaussian", "logistic", "gumbel", "cauchy", "laplace", "triangular")
SAMPLINGS = ("default", "mc", "latin", "rlatin", "cartesian", "sobol", "halton")
CONTROL_VARIATES = ("none", "fx", "loo")


class Rng(Handle):
    """diffalg's generator (GSL mt19937), seeded explicitly. Every stochastic function
    takes one; its state advances with each call."""
    _free_name = "da_rng_free"

    def __init__(self, seed=0):
        self._own(_lib.lib().da_rng_new(int(seed)))

    def state(self):
        """The generator state as bytes (restore with set_state)."""
        buf = ctypes.create_string_buffer(_lib.lib().da_rng_state_size(self._h))
        _lib.lib().da_rng_state_save(self._h, buf)
        return buf.raw

    def set_state(self, state):
        if len(state) != _lib.lib().da_rng_state_size(self._h):
            _lib.fail(_lib.EINVAL, "rng state of %d bytes, expected %d", len(state),
                      _lib.lib().da_rng_state_size(self._h))
        _lib.lib().da_rng_state_load(self._h, ctypes.create_string_buffer(state, len(state)))

    def copy(self):
        """A new generator in the same state (it draws the same numbers)."""
        twin = Rng(0)
        twin.set_state(self.state())
        return twin


class Smoothing:
    """A da_smooth_cfg: distribution (gaussian, logistic, gumbel, cauchy, laplace,
    triangular), sampling (default, mc, latin, rlatin, cartesian, sobol, halton),
    control variate cv (none, fx, loo), antithetic pairs, samples, and the scale: eps
    (isotropic), eps_vec [n] (per coordinate) or L [n, n] (a full matrix)."""

    def __init__(self, dist="gaussian", sampling="default", cv="loo", antithetic=False,
                 samples=64, eps=1.0, eps_vec=None, L=None):
        self.dist = DISTS[enum(dist, DISTS, "distribution")]
        self.sampling = SAMPLINGS[enum(sampling, SAMPLINGS, "sampling")]
        self.cv = CONTROL_VARIATES[enum(cv, CONTROL_VARIATES, "control variate")]
        self.antithetic, self.samples, self.eps = bool(antithetic), int(samples), float(eps)
        self.eps_vec = None if eps_vec is None else _lib.as_input(eps_vec, "eps_vec")
        self.L = None if L is None else _lib.as_input(L, "L")

    def cfg(self, n):
        """The C struct for dimension n (eps_vec / L checked against n; the arrays stay
        owned by self)."""
        if self.eps_vec is not None and self.eps_vec.shape != (n,):
            _lib.fail(_lib.ESHAPE, "eps_vec has shape %s, expected (%d,)", self.eps_vec.shape, n)
        if self.L is not None and self.L.shape != (n, n):
            _lib.fail(_lib.ESHAPE, "L has shape %s, expected (%d, %d)", self.L.shape, n, n)
        return _lib.SmoothCfg(DISTS.index(self.dist), SAMPLINGS.index(self.sampling),
                              CONTROL_VARIATES.index(self.cv), int(self.antithetic),
                              self.samples, self.eps, ptr(self.eps_vec), ptr(self.L))

    def plan(self, n):
        """(sampling name, sample count) an estimate in dimension n uses."""
        cfg, s, k = self.cfg(n), ctypes.c_int(), ctypes.c_int()
        check(_lib.lib().da_smooth_plan(ctypes.addressof(cfg), n, ctypes.addressof(s),
                                        ctypes.addressof(k)))
        return SAMPLINGS[s.value], k.value


class Callback:
    """A Python function as a C callback ("blackbox": da_blackbox_fn, "solver":
    da_sp_solver_fn). An exception inside it is kept, not propagated through C:
    cb = Callback(kind, f); code = c_fn(..., cb.fn, ...); cb.check(code)."""

    def __init__(self, kind, f):
        self.f, self.error = f, None
        self.fn = _lib.BLACKBOX_FN(self._blackbox) if kind == "blackbox" \
            else _lib.SOLVER_FN(self._solver)

    def _call(self, n, xp, m, yp):
        try:
            x = np.ctypeslib.as_array(xp, shape=(n,)).copy()
            y = np.asarray(self.f(x), dtype=np.float64).reshape(-1)
            if y.shape != (m,):
                _lib.fail(_lib.ESHAPE, "the callback returned %d values, expected %d",
                          y.size, m)
            np.ctypeslib.as_array(yp, shape=(m,))[:] = y
            return 0
        except Exception as e:  # handed back to Python after the C call returns
            self.error = e
            return _lib.EINVAL

    def _blackbox(self, user, n, xp, m, yp):
        return self._call(n, xp, m, yp)

    def _solver(self, user, n, cost, y):
        return self._call(n, cost, n, y)

    def check(self, code):
        if self.error is not None:
            raise self.error
        check(code)


def _point(x):
    x64 = _lib.as_input(x, "x")
    if x64.ndim != 1 or x64.size == 0:
        _lib.fail(_lib.ESHAPE, "x must be a non-empty vector [n], got shape %s", x.shape)
    return x64, x64.size


def smooth_jacobian(f, x, m, smoothing, rng):
    """(value [m], J [m, n]): the smoothed value E[f(x + L z)] and the Jacobian
    estimate of f at x [n] with the samples of smoothing, drawn from rng."""
    x64, n = _point(x)
    cfg, cb = smoothing.cfg(n), Callback("blackbox", f)
    value, J = empty((int(m),)), empty((int(m), n))
    cb.check(_lib.lib().da_smooth_jacobian(ctypes.addressof(cfg), cb.fn, None, n, int(m),
                                           ptr(x64), rng._h, ptr(value), ptr(J)))
    return cast(value, x.dtype), cast(J, x.dtype)


def smooth_hessian(f, x, smoothing, rng):
    """(value, grad [n], H [n, n]) of a scalar black box f, all from the same samples
    (second-order estimator; needs a C^2 density)."""
    x64, n = _point(x)
    cfg, cb = smoothing.cfg(n), Callback("blackbox", f)
    value, g, H = ctypes.c_double(), empty((n,)), empty((n, n))
    cb.check(_lib.lib().da_smooth_hessian(ctypes.addressof(cfg), cb.fn, None, n, ptr(x64),
                                          rng._h, ctypes.addressof(value), ptr(g), ptr(H)))
    return value.value, cast(g, x.dtype), cast(H, x.dtype)
