"""paths.py - differentiable shortest paths on H x W grids (losses/shortest_path.h).

Costs cost [..., H, W] (leading dims flattened to the batch) sit on vertices, moves go to
the 8 neighbours, a path runs from (0, 0) to (H-1, W-1) and its cost counts both end
vertices; a path is its 0/1 vertex indicator of the cost's shape. Every loss is the MEAN
over the batch of a per-sample SUM over the cells; results have the cost's dtype."""
import ctypes

from . import _lib
from ._lib import check, empty, ptr, same_shape, optional, cast, enum
from .smooth import Callback

LOOPS = ("for", "while")
TCONORMS = ("probabilistic", "hamacher", "yager")
NORMS = ("l1", "l2sq")
NOISES = ("gaussian", "gumbel")


def _grid(cost, name="cost"):
    c64 = _lib.as_input(cost, name)
    if c64.ndim < 2 or c64.size == 0:
        _lib.fail(_lib.ESHAPE, "%s must be a non-empty [..., H, W] array, got shape %s", name,
                  cost.shape)
    H, W = c64.shape[-2:]
    return c64, c64.size // (H * W), int(H), int(W)


def _loss_out(c64):
    return ctypes.c_double(), empty(c64.shape)


def sp_dijkstra(cost):
    """(path 0/1 [..., H, W], path_cost [...]) of costs >= 0."""
    c64, batch, H, W = _grid(cost)
    path, pc = empty(c64.shape), empty(c64.shape[:-2])
    check(_lib.lib().da_sp_dijkstra(batch, H, W, ptr(c64), ptr(path), ptr(pc)))
    return cast(path, cost.dtype), cast(pc, cost.dtype)


def sp_blackbox_grad(cost, grad_path, lambda_):
    """Vlastelica et al.'s gradient -(y(cost) - y(max(cost + lambda grad_path, 0))) / lambda."""
    c64, batch, H, W = _grid(cost)
    g64, out = same_shape(grad_path, "grad_path", c64.shape), empty(c64.shape)
    check(_lib.lib().da_sp_blackbox_grad(batch, H, W, ptr(c64), ptr(g64), float(lambda_),
                                         ptr(out)))
    return cast(out, cost.dtype)


def sp_hamming_loss(path, target):
    """(mean over the batch of sum path(1-target) + (1-path)target, d loss / d path)."""
    p64, batch, H, W = _grid(path, "path")
    t64 = same_shape(target, "target", p64.shape)
    loss, g = _loss_out(p64)
    check(_lib.lib().da_sp_hamming_loss(batch, H, W, ptr(p64), ptr(t64), ctypes.addressof(loss),
                                        ptr(g)))
    return loss.value, cast(g, path.dtype)


def sp_blackbox_loss(cost, target, lambda_):
    """(Hamming loss of the Dijkstra path against target, its blackbox gradient)."""
    c64, batch, H, W = _grid(cost)
    t64 = same_shape(target, "target", c64.shape)
    cfg, (loss, g) = _lib.SpBlackboxCfg(float(lambda_)), _loss_out(c64)
    check(_lib.lib().da_sp_blackbox_loss(ctypes.addressof(cfg), batch, H, W, ptr(c64), ptr(t64),
                                         ctypes.addressof(loss), ptr(g)))
    return loss.value, cast(g, cost.dtype)


class RelaxedShortestPath:
    """AlgoVision's relaxed Bellman-Ford with a traced path (For or While loop), beta the
    inverse temperature; n_iter None = 2 max(H, W). See shortest_path.h §2."""

    def __init__(self, beta=10.0, n_iter=None, loop="for", tconorm="probabilistic",
                 hamacher_p=5.0, max_iter=1024, epsilon=1e-5, stop_at_source=False,
                 norm="l2sq"):
        self.options = dict(
            beta=float(beta), loop=enum(loop, LOOPS, "loop"),
            tconorm=enum(tconorm, TCONORMS, "t-conorm"), hamacher_p=float(hamacher_p),
            max_iter=int(max_iter), epsilon=float(epsilon),
            stop_at_source=int(bool(stop_at_source)), norm=enum(norm, NORMS, "norm"))
        if n_iter is not None:
            self.options["n_iter"] = int(n_iter)

    def _cfg(self, H, W):
        cfg = _lib.lib().da_sp_relaxed_default(H, W)
        for key, value in self.options.items():
            setattr(cfg, key, value)
        return cfg

    def _path(self, cost, cot):
        c64, batch, H, W = _grid(cost)
        cfg, c = self._cfg(H, W), optional(cot, "cot", c64.shape)
        out = empty(c64.shape)
        check(_lib.lib().da_sp_relaxed_path(ctypes.addressof(cfg), batch, H, W, ptr(c64),
                                            None if c is not None else ptr(out), ptr(c),
                                            ptr(out) if c is not None else None))
        return cast(out, cost.dtype)

    def path(self, cost):
        """The relaxed path indicator [..., H, W] (any-sign costs)."""
        return self._path(cost, None)

    def vjp(self, cost, cot):
        """J^T cot of path() at cost."""
        return self._path(cost, cot)

    def loss(self, cost, target):
        """(L1 or squared-L2 loss of the relaxed path against target, gradient)."""
        c64, batch, H, W = _grid(cost)
        t64, cfg = same_shape(target, "target", c64.shape), self._cfg(H, W)
        loss, g = _loss_out(c64)
        check(_lib.lib().da_sp_relaxed_loss(ctypes.addressof(cfg), batch, H, W, ptr(c64),
                                            ptr(t64), ctypes.addressof(loss), ptr(g)))
        return loss.value, cast(g, cost.dtype)


class PerturbedShortestPath:
    """Perturbed optimizer and Fenchel-Young loss (Berthet et al. 2020) for the Dijkstra
    solver: noise 'gaussian' or 'gumbel', scale sigma, n_samples solver calls per sample.
    Random numbers come from rng (a diffalg.Rng); pass a copy of it to vjp() to reuse
    the samples of an earlier path()."""

    def __init__(self, noise="gaussian", sigma=1.0, n_samples=10):
        self._cfg = _lib.SpPerturbedCfg(enum(noise, NOISES, "noise"), float(sigma),
                                        int(n_samples))

    def _run(self, cost, rng, cot):
        c64, batch, H, W = _grid(cost)
        c, mean = optional(cot, "cot", c64.shape), empty(c64.shape)
        g = None if c is None else empty(c64.shape)
        check(_lib.lib().da_sp_perturbed(ctypes.addressof(self._cfg), rng._h, batch, H, W,
                                         ptr(c64), ptr(mean), ptr(c), ptr(g)))
        return cast(mean, cost.dtype), None if g is None else cast(g, cost.dtype)

    def path(self, cost, rng):
        """The mean perturbed path [..., H, W]."""
        return self._run(cost, rng, None)[0]

    def vjp(self, cost, cot, rng):
        """(mean path, Monte-Carlo J^T cot) from the same samples."""
        return self._run(cost, rng, cot)

    def fy_loss(self, cost, target, rng):
        """(Fenchel-Young loss against target paths, gradient (target - yhat) / batch)."""
        c64, batch, H, W = _grid(cost)
        t64, (loss, g) = same_shape(target, "target", c64.shape), _loss_out(c64)
        check(_lib.lib().da_sp_fy_loss(ctypes.addressof(self._cfg), rng._h, batch, H, W,
                                       ptr(c64), ptr(t64), ctypes.addressof(loss), ptr(g)))
        return loss.value, cast(g, cost.dtype)


def sp_smooth_path(cost, smoothing, rng, cot=None):
    """Stochastically smoothed Dijkstra indicator: (mean path, J^T cot or None) from the
    same samples (smoothing: a diffalg.Smoothing on the H*W costs)."""
    c64, batch, H, W = _grid(cost)
    c, cfg, mean = optional(cot, "cot", c64.shape), smoothing.cfg(H * W), empty(c64.shape)
    g = None if c is None else empty(c64.shape)
    check(_lib.lib().da_sp_smooth_path(ctypes.addressof(cfg), rng._h, batch, H, W, ptr(c64),
                                       ptr(mean), ptr(c), ptr(g)))
    return cast(mean, cost.dtype), None if g is None else cast(g, cost.dtype)


def sp_smooth_loss(cost, target, smoothing, rng, hessian=False):
    """(loss, grad [..., H, W], per-sample Hessians [..., H*W, H*W] or None) of the smoothed
    Hamming loss of the Dijkstra path, all from the same samples."""
    c64, batch, H, W = _grid(cost)
    t64, cfg = same_shape(target, "target", c64.shape), smoothing.cfg(H * W)
    (loss, g), hess = _loss_out(c64), empty(c64.shape[:-2] + (H * W, H * W)) if hessian else None
    check(_lib.lib().da_sp_smooth_loss(ctypes.addressof(cfg), rng._h, batch, H, W, ptr(c64),
                                       ptr(t64), ctypes.addressof(loss), ptr(g), ptr(hess)))
    return loss.value, cast(g, cost.dtype), None if hess is None else cast(hess, cost.dtype)


def sp_smooth_solver_loss(solve, cost, target, smoothing, rng, hessian=False):
    """The smoothed Hamming loss for any black-box linear solver: solve(c [n]) returns the
    0/1 minimiser y [n] of <c, y>; cost, target [batch, n]. Returns (loss, grad, hess or
    None) as sp_smooth_loss."""
    c64, batch, n, lead = _lib.rows(cost, "cost")
    t64, cfg = same_shape(target, "target", c64.shape), smoothing.cfg(n)
    cb = Callback("solver", solve)
    (loss, g), hess = _loss_out(c64), empty(lead + (n, n)) if hessian else None
    cb.check(_lib.lib().da_sp_smooth_solver_loss(ctypes.addressof(cfg), rng._h, batch, n, cb.fn,
                                                 None, ptr(c64), ptr(t64), ctypes.addressof(loss),
                                                 ptr(g), ptr(hess)))
    return loss.value, cast(g, cost.dtype), None if hess is None else cast(hess, cost.dtype)


def sp_metrics(pred, target, true_cost):
    """{'exact_match', 'cost_ratio', 'hamming'} of predicted against target paths."""
    p64, batch, H, W = _grid(pred, "pred")
    t64 = same_shape(target, "target", p64.shape)
    c64 = same_shape(true_cost, "true_cost", p64.shape)
    m = _lib.SpMetrics()
    check(_lib.lib().da_sp_metrics_eval(batch, H, W, ptr(p64), ptr(t64), ptr(c64),
                                        ctypes.addressof(m)))
    return {"exact_match": m.exact_match, "cost_ratio": m.cost_ratio, "hamming": m.hamming}
