"""sorting.py - the sorting and ranking relaxations of losses/ on NumPy arrays.

Conventions (DESIGN.md §4, §5): inputs x [..., n] (any leading batch shape, flattened
to the C batch), float32 or float64, C-contiguous; results have the input's dtype (the
C code computes in double). A relaxed permutation matrix P [..., n, n] has
P[..., i, j] = weight of input i at ascending sorted position j, so sorted = x P.
Losses return (loss, grad) with loss a Python float, the MEAN over the batch (see
each C header for the per-sample loss), and grad = d loss / d x of the input's shape.
Operators come with .vjp(...): the vector-Jacobian product for given cotangents."""
import ctypes

import numpy as np

from . import _lib
from ._lib import Handle, check, empty, ptr, rows, same_shape, optional, cast, enum

KINDS = ("odd_even", "bitonic")
SIGMOIDS = ("logistic", "logistic_phi", "gaussian", "reciprocal", "cauchy", "optimal")
DIRECTIONS = ("ascending", "descending")
REGULARIZATIONS = ("l2", "kl")
TOP1_MODES = ("sm", "smce", "sort")


def _rows_and_targets(x, targets, xname="x", n=None):
    x64, batch, n, lead = rows(x, xname, n)
    t64 = same_shape(targets, "targets", x64.shape)
    return x64, t64, batch, n, lead


def _sorted_from(x64, P):
    return np.einsum("...i,...ij->...j", x64, P)


def _cot_with_sorted(x64, cot_sorted, cot_P):
    """Cotangent of P that also carries the one of sorted = x P through P (the direct
    part P cot_sorted is added by the caller)."""
    if cot_sorted is None:
        return cot_P
    through_P = x64[..., :, None] * cot_sorted[..., None, :]
    return through_P if cot_P is None else cot_P + through_P


class SortNet(Handle):
    """Differentiable sorting network (diffsort's DiffSortNet; losses/sortnet.h).
    kind: 'odd_even' or 'bitonic'; sigmoid (diffsort's `distribution`): 'logistic',
    'logistic_phi', 'gaussian', 'reciprocal', 'cauchy', 'optimal'."""
    _free_name = "da_sortnet_free"

    def __init__(self, kind, n, sigmoid="cauchy", steepness=10.0, art_lambda=0.25):
        k, s = enum(kind, KINDS, "network kind"), enum(sigmoid, SIGMOIDS, "sigmoid")
        self._own(_lib.lib().da_sortnet_new(k, int(n), s, float(steepness), float(art_lambda)))
        self.kind, self.sigmoid = KINDS[k], SIGMOIDS[s]
        self.n, self.steepness, self.art_lambda = int(n), float(steepness), float(art_lambda)
        self.layers = _lib.lib().da_sortnet_layers(self._h)

    def _rows(self, x, name="x"):
        return rows(x, name, self.n)

    def apply(self, x):
        """(sorted [..., n] ascending, P [..., n, n])."""
        x64, batch, n, lead = self._rows(x)
        srt, P = empty(x64.shape), empty(lead + (n, n))
        check(_lib.lib().da_sortnet_apply(self._h, batch, ptr(x64), ptr(srt), ptr(P)))
        return cast(srt, x.dtype), cast(P, x.dtype)

    def vjp(self, x, cot_sorted=None, cot_P=None):
        """grad_x = J_sorted^T cot_sorted + J_P^T cot_P (either may be None, not both)."""
        x64, batch, n, lead = self._rows(x)
        cs = optional(cot_sorted, "cot_sorted", x64.shape)
        cp = optional(cot_P, "cot_P", lead + (n, n))
        g = empty(x64.shape)
        check(_lib.lib().da_sortnet_vjp(self._h, batch, ptr(x64), ptr(cs), ptr(cp), ptr(g)))
        return cast(g, x.dtype)

    def loss(self, x, targets):
        """Ranking loss (mean BCE between P and the true permutation matrix of targets'
        ascending order over all batch*n*n entries) and its gradient."""
        x64, t64, batch, n, lead = _rows_and_targets(x, targets, n=self.n)
        loss, g = ctypes.c_double(), empty(x64.shape)
        check(_lib.lib().da_sortnet_loss(self._h, batch, ptr(x64), ptr(t64),
                                         ctypes.addressof(loss), ptr(g)))
        return loss.value, cast(g, x.dtype)

    def loss_hessian(self, x, targets):
        """Per-sample Hessians [..., n, n] of the batch-mean ranking loss."""
        x64, t64, batch, n, lead = _rows_and_targets(x, targets, n=self.n)
        H = empty(lead + (n, n))
        check(_lib.lib().da_sortnet_loss_hessian(self._h, batch, ptr(x64), ptr(t64), ptr(H)))
        return cast(H, x.dtype)

    def loss_hvp(self, x, targets, v):
        """Hessian-vector products H[b] v[b] of the batch-mean ranking loss."""
        x64, t64, batch, n, lead = _rows_and_targets(x, targets, n=self.n)
        v64 = same_shape(v, "v", x64.shape)
        hv = empty(x64.shape)
        check(_lib.lib().da_sortnet_loss_hvp(self._h, batch, ptr(x64), ptr(t64), ptr(v64),
                                             ptr(hv)))
        return cast(hv, x.dtype)

    def topk(self, x, k):
        """Top-k operator (difftopk): X [..., n, k] = P[..., :, n-k:]."""
        x64, batch, n, lead = self._rows(x)
        X = empty(lead + (n, int(k)))
        check(_lib.lib().da_topk(self._h, int(k), batch, ptr(x64), ptr(X), None, None))
        return cast(X, x.dtype)

    def topk_vjp(self, x, k, cot):
        """grad_x = J^T cot of the top-k operator, cot [..., n, k]."""
        x64, batch, n, lead = self._rows(x)
        c64 = same_shape(cot, "cot", lead + (n, int(k)))
        g = empty(x64.shape)
        check(_lib.lib().da_topk(self._h, int(k), batch, ptr(x64), None, ptr(c64), ptr(g)))
        return cast(g, x.dtype)


class TopKCrossEntropy:
    """difftopk's top-k cross-entropy (losses/topk.h) over n_classes logits, with
    p_k[j] the weight of "the label is among the top j+1"; m = None for all classes."""

    def __init__(self, n_classes, p_k, m=None, top1_mode="sm", kind="odd_even",
                 sigmoid="cauchy", inverse_temperature=1.0, art_lambda=0.25):
        self.p_k = np.ascontiguousarray(p_k, dtype=np.float64)
        self.n_classes, self.m = int(n_classes), 0 if m is None else int(m)
        self.net = SortNet(kind, self.m or self.n_classes, sigmoid, inverse_temperature,
                           art_lambda)
        self._cfg = _lib.TopkCeCfg(self.net._h, self.n_classes, self.m, len(self.p_k),
                                   self.p_k.ctypes.data, enum(top1_mode, TOP1_MODES, "top1_mode"))

    def loss(self, logits, labels):
        """(mean loss, d loss / d logits) for logits [batch, n_classes] and integer
        labels [batch]."""
        x64, batch, n, lead = rows(logits, "logits", self.n_classes)
        lab = np.asarray(labels)
        if lab.shape != lead or not np.issubdtype(lab.dtype, np.integer):
            _lib.fail(_lib.ESHAPE, "labels must be integers of shape %s, got %s %s", lead,
                      lab.dtype, lab.shape)
        lab = np.ascontiguousarray(lab, dtype=np.int32)
        loss, g = ctypes.c_double(), empty(x64.shape)
        check(_lib.lib().da_topk_ce_loss(ctypes.addressof(self._cfg), batch, ptr(x64),
                                         ptr(lab), ctypes.addressof(loss), ptr(g)))
        return loss.value, cast(g, logits.dtype)


class _TauSort:
    """Shared face of NeuralSort and SoftSort (the same C signatures)."""
    _prefix = None

    def __init__(self, tau=1.0):
        self.tau = float(tau)

    def _call(self, suffix, n, *args):
        cfg = _lib.TauCfg(n, self.tau)
        check(getattr(_lib.lib(), self._prefix + suffix)(ctypes.addressof(cfg), *args))

    def apply(self, x):
        """(sorted = x P [..., n], P [..., n, n]) in diffalg's orientation."""
        x64, batch, n, lead = rows(x, "x")
        P = empty(lead + (n, n))
        self._call("_apply", n, batch, ptr(x64), ptr(P), None, None)
        return cast(_sorted_from(x64, P), x.dtype), cast(P, x.dtype)

    def vjp(self, x, cot_sorted=None, cot_P=None):
        """grad_x = J_sorted^T cot_sorted + J_P^T cot_P (either may be None, not both)."""
        x64, batch, n, lead = rows(x, "x")
        cs = optional(cot_sorted, "cot_sorted", x64.shape)
        cp = optional(cot_P, "cot_P", lead + (n, n))
        if cs is None and cp is None:
            _lib.fail(_lib.EINVAL, "vjp needs cot_sorted or cot_P")
        P, g = empty(lead + (n, n)), empty(x64.shape)
        cot = np.ascontiguousarray(_cot_with_sorted(x64, cs, cp))
        self._call("_apply", n, batch, ptr(x64), ptr(P), ptr(cot), ptr(g))
        if cs is not None:
            g += np.einsum("...ij,...j->...i", P, cs)
        return cast(g, x.dtype)

    def loss(self, scores, targets):
        """Column cross-entropy ranking loss (mean over batch and positions), gradient."""
        x64, t64, batch, n, lead = _rows_and_targets(scores, targets, "scores")
        loss, g = ctypes.c_double(), empty(x64.shape)
        self._call("_loss", n, batch, ptr(x64), ptr(t64), ctypes.addressof(loss),
                   ptr(g))
        return loss.value, cast(g, scores.dtype)

    def hessian(self, scores, targets):
        """Per-sample Hessians [..., n, n] of the batch-mean loss."""
        x64, t64, batch, n, lead = _rows_and_targets(scores, targets, "scores")
        H = empty(lead + (n, n))
        self._call("_hessian", n, batch, ptr(x64), ptr(t64), ptr(H))
        return cast(H, scores.dtype)


class NeuralSort(_TauSort):
    """NeuralSort (Grover et al. 2019; losses/neuralsort.h), temperature tau."""
    _prefix = "da_neuralsort"


class SoftSort(_TauSort):
    """SoftSort with |.| (Prillo & Eisenschlos 2020; losses/softsort.h), temperature tau."""
    _prefix = "da_softsort"


def _convert_perm(fn_name, M):
    m64, batch, n, lead = rows(M, "P", min_ndim=2)
    if lead[-1] != n:
        _lib.fail(_lib.ESHAPE, "P must be [..., n, n], got %s", M.shape)
    out = empty(m64.shape)
    check(getattr(_lib.lib(), fn_name)(batch // n, n, ptr(m64), ptr(out)))
    return cast(out, M.dtype)


def perm_desc_rows_to_diffalg(Q):
    """out[..., i, j] = Q[..., n-1-j, i]: from the papers' row-per-descending-position
    layout (NeuralSort / SoftSort) to diffalg's orientation."""
    return _convert_perm("da_perm_desc_rows_to_diffalg", Q)


def perm_diffalg_to_desc_rows(P):
    """The inverse of perm_desc_rows_to_diffalg."""
    return _convert_perm("da_perm_diffalg_to_desc_rows", P)


class SinkhornSort:
    """Soft sort / rank by log-domain Sinkhorn (Cuturi et al. 2019; losses/sinkhorn.h)."""

    def __init__(self, epsilon=0.1, iterations=50):
        self.epsilon, self.iterations = float(epsilon), int(iterations)

    def _cfg(self, n):
        return _lib.SinkhornCfg(n, self.epsilon, self.iterations)

    def _run(self, x, want_P=False, want_sorted=False, want_ranks=False, cots=None):
        x64, batch, n, lead = rows(x, "x")
        P = empty(lead + (n, n)) if want_P else None
        srt = empty(x64.shape) if want_sorted else None
        rnk = empty(x64.shape) if want_ranks else None
        cp, cs, cr, g = None, None, None, None
        if cots is not None:
            cs = optional(cots[0], "cot_sorted", x64.shape)
            cp = optional(cots[1], "cot_P", lead + (n, n))
            cr = optional(cots[2], "cot_ranks", x64.shape)
            g = empty(x64.shape)
        cfg = self._cfg(n)
        check(_lib.lib().da_sinkhorn_sort(ctypes.addressof(cfg), batch, ptr(x64), ptr(P), ptr(srt),
                                          ptr(rnk), ptr(cp), ptr(cs), ptr(cr), ptr(g)))
        return [cast(a, x.dtype) if a is not None else None for a in (srt, P, rnk, g)]

    def apply(self, x):
        """(soft sorted [..., n], P [..., n, n])."""
        srt, P, _, _ = self._run(x, want_P=True, want_sorted=True)
        return srt, P

    def rank(self, x):
        """Soft ranks [..., n] (1-based, ascending)."""
        return self._run(x, want_ranks=True)[2]

    def vjp(self, x, cot_sorted=None, cot_P=None, cot_ranks=None):
        """grad_x for cotangents of sorted, P and ranks (None counts as zero)."""
        return self._run(x, cots=(cot_sorted, cot_P, cot_ranks))[3]

    def loss(self, scores, targets):
        """Mean BCE between P and the true permutation matrix, and its gradient."""
        x64, t64, batch, n, lead = _rows_and_targets(scores, targets, "scores")
        cfg, loss, g = self._cfg(n), ctypes.c_double(), empty(x64.shape)
        check(_lib.lib().da_sinkhorn_loss(ctypes.addressof(cfg), batch, ptr(x64), ptr(t64),
                                          ctypes.addressof(loss), ptr(g)))
        return loss.value, cast(g, scores.dtype)


def _pav(fn_name, x, direction, regularization, strength, cot):
    x64, batch, n, lead = rows(x, "x")
    d = enum(direction, DIRECTIONS, "direction")
    r = enum(regularization, REGULARIZATIONS, "regularization")
    c64 = optional(cot, "cot", x64.shape)
    res = empty(x64.shape)
    out, g = (None, res) if cot is not None else (res, None)
    check(getattr(_lib.lib(), fn_name)(batch, n, ptr(x64), d, r, float(strength), ptr(out),
                                       ptr(c64), ptr(g)))
    return cast(res, x.dtype)


def soft_rank(x, direction="ascending", regularization="l2", regularization_strength=1.0):
    """Fast soft ranks (Blondel et al. 2020, PAV; losses/pav.h), 1-based, per row."""
    return _pav("da_soft_rank", x, direction, regularization, regularization_strength, None)


def soft_rank_vjp(x, cot, direction="ascending", regularization="l2",
                  regularization_strength=1.0):
    """J^T cot of soft_rank at x."""
    return _pav("da_soft_rank", x, direction, regularization, regularization_strength, cot)


def soft_sort(x, direction="ascending", regularization="l2", regularization_strength=1.0):
    """Fast soft sort (sorted values of each row)."""
    return _pav("da_soft_sort", x, direction, regularization, regularization_strength, None)


def soft_sort_vjp(x, cot, direction="ascending", regularization="l2",
                  regularization_strength=1.0):
    """J^T cot of soft_sort at x."""
    return _pav("da_soft_sort", x, direction, regularization, regularization_strength, cot)


def fast_soft_rank_loss(scores, targets, regularization="l2", regularization_strength=1.0):
    """MSE between the ascending soft ranks of scores and the true ranks of targets
    (mean over batch and entries), and its gradient."""
    x64, t64, batch, n, lead = _rows_and_targets(scores, targets, "scores")
    cfg = _lib.FastSoftRankCfg(n, enum(regularization, REGULARIZATIONS, "regularization"),
                               float(regularization_strength))
    loss, g = ctypes.c_double(), empty(x64.shape)
    check(_lib.lib().da_fast_soft_rank_loss(ctypes.addressof(cfg), batch, ptr(x64), ptr(t64),
                                            ctypes.addressof(loss), ptr(g)))
    return loss.value, cast(g, scores.dtype)


class Ranking(Handle):
    """Any ranking loss of losses/ by a spec string (losses/ranking.h), e.g.
    Ranking("odd_even:cauchy:steepness=10", n), Ranking("neuralsort:tau=0.5", n)."""
    _free_name = "da_ranking_free"

    def __init__(self, spec, n):
        self._own(_lib.lib().da_ranking_new(str(spec).encode(), int(n)))
        self.n = int(n)
        self.spec = _lib.lib().da_ranking_spec(self._h).decode()

    def loss(self, scores, targets):
        """(batch-mean loss, gradient [..., n])."""
        x64, t64, batch, n, lead = _rows_and_targets(scores, targets, "scores", n=self.n)
        loss, g = ctypes.c_double(), empty(x64.shape)
        check(_lib.lib().da_ranking_loss(self._h, batch, ptr(x64), ptr(t64),
                                         ctypes.addressof(loss), ptr(g)))
        return loss.value, cast(g, scores.dtype)

    def hessian(self, scores, targets):
        """(per-sample Hessians [..., n, n] of the batch-mean loss, exact: bool)."""
        x64, t64, batch, n, lead = _rows_and_targets(scores, targets, "scores", n=self.n)
        H, exact = empty(lead + (n, n)), ctypes.c_int()
        check(_lib.lib().da_ranking_hessian(self._h, batch, ptr(x64), ptr(t64), ptr(H),
                                            ctypes.addressof(exact)))
        return cast(H, scores.dtype), bool(exact.value)
