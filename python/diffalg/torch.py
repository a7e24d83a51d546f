"""diffalg.torch - PyTorch faces of diffalg: torch.autograd.Function wrappers whose
backward is the C plain-array vector-Jacobian product (or the fused C gradient of a loss).

Drop-in replacements, one import each:
    from diffalg.torch import DiffSortNet             # diffsort.DiffSortNet
    from diffalg.torch import soft_rank, soft_sort    # torchsort.soft_rank / soft_sort
    from diffalg.torch import TopKCrossEntropyLoss    # difftopk.TopKCrossEntropyLoss
    from diffalg.torch import TrAct, ISAACLinear      # torch_tract.TrAct / isaac.Linear
    from diffalg.torch import LogicLayer, GroupSum    # difflogic.LogicLayer / GroupSum
Tensors are float32 or float64 on the CPU (others are moved to the CPU and back); the C
code computes in double. Backward passes are first order (once_differentiable).
Relaxed permutation matrices follow diffalg's orientation: P[..., i, j] = weight of
input i at ascending position j, sorted = x P (diffsort's convention)."""
import numpy as np
import torch
from torch.autograd.function import once_differentiable

from . import logic as _logic
from . import optim as _optim
from . import paths as _paths
from . import sorting as _sorting
from . import smooth as _smooth
from ._lib import DiffalgError, EINVAL


def _np(t):
    """A NumPy view (or CPU copy) of a tensor, C-contiguous."""
    return t.detach().cpu().contiguous().numpy()


def _t(a, like):
    return torch.from_numpy(np.ascontiguousarray(a)).to(device=like.device, dtype=like.dtype)


class _Op(torch.autograd.Function):
    """y = fwd(x) (an array or a tuple of arrays), x-gradient bwd(x, *cotangents); the
    cotangent of an output that did not reach the loss is None (the C VJPs skip it)."""

    @staticmethod
    def forward(ctx, x, fwd, bwd):
        out = fwd(_np(x))
        ctx.bwd, ctx.single = bwd, not isinstance(out, tuple)
        ctx.save_for_backward(x)
        ctx.set_materialize_grads(False)
        res = tuple(_t(o, x) for o in ((out,) if ctx.single else out))
        return res[0] if ctx.single else res

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads):
        x, = ctx.saved_tensors
        cots = [None if g is None else _np(g) for g in grads]
        if all(c is None for c in cots):
            return None, None, None
        return _t(ctx.bwd(_np(x), *cots), x), None, None


class _Loss(torch.autograd.Function):
    """A scalar loss computed with its gradient in one C call: fn(x) -> (loss, grad)."""

    @staticmethod
    def forward(ctx, x, fn):
        loss, grad = fn(_np(x))
        ctx.save_for_backward(_t(grad, x))
        return torch.tensor(loss, dtype=x.dtype, device=x.device)

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        grad, = ctx.saved_tensors
        return g * grad, None


def _const(t):
    """A target given as a tensor or array, as a float64 NumPy array."""
    a = _np(t) if isinstance(t, torch.Tensor) else np.asarray(t)
    return np.ascontiguousarray(a, dtype=np.float64)


# ---------------------------------------------------------------- sorting and ranking
class _PermModule(torch.nn.Module):
    """forward(x [..., n]) -> (sorted [..., n], P [..., n, n]) through self.op (a NumPy
    face with apply(x) and vjp(x, cot_sorted, cot_P))."""

    def forward(self, x):
        return _Op.apply(x, self.op.apply, self.op.vjp)


class DiffSortNet(_PermModule):
    """diffsort.DiffSortNet(sorting_network_type, size, ...): forward(vectors) returns
    (sorted_vectors, P) with the same numbers as diffsort; device is accepted for
    signature compatibility (computation runs on the CPU)."""

    def __init__(self, sorting_network_type, size, device=None, steepness=10.0,
                 art_lambda=0.25, interpolation_type=None, distribution="cauchy"):
        super().__init__()
        if interpolation_type is not None:
            raise DiffalgError(EINVAL, "interpolation_type is not supported")
        self.op = _sorting.SortNet(sorting_network_type, size, distribution, steepness,
                                   art_lambda)


class NeuralSort(_PermModule):
    """NeuralSort with temperature tau: forward(x) -> (sorted, P) (diffalg orientation)."""

    def __init__(self, tau=1.0):
        super().__init__()
        self.op = _sorting.NeuralSort(tau)


class SoftSort(_PermModule):
    """SoftSort (|.|) with temperature tau: forward(x) -> (sorted, P) (diffalg orientation)."""

    def __init__(self, tau=1.0):
        super().__init__()
        self.op = _sorting.SoftSort(tau)


class SinkhornSort(_PermModule):
    """Sinkhorn soft sort: forward(x) -> (sorted, P); rank(x) -> soft ranks (1-based)."""

    def __init__(self, epsilon=0.1, iterations=50):
        super().__init__()
        self.op = _sorting.SinkhornSort(epsilon, iterations)

    def rank(self, x):
        return _Op.apply(x, self.op.rank, lambda xn, g: self.op.vjp(xn, cot_ranks=g))


def topk(x, net, k):
    """difftopk's top-k operator X [..., n, k] of a diffalg.SortNet (or DiffSortNet)."""
    op = net.op if isinstance(net, DiffSortNet) else net
    return _Op.apply(x, lambda xn: op.topk(xn, k), lambda xn, g: op.topk_vjp(xn, k, g))


def soft_rank(values, regularization="l2", regularization_strength=1.0,
              direction="ascending"):
    """torchsort.soft_rank: fast soft ranks of each row (PAV), 1-based."""
    args = (direction, regularization, regularization_strength)
    return _Op.apply(values, lambda xn: _sorting.soft_rank(xn, *args),
                     lambda xn, g: _sorting.soft_rank_vjp(xn, g, *args))


def soft_sort(values, regularization="l2", regularization_strength=1.0,
              direction="ascending"):
    """torchsort.soft_sort: fast soft sort of each row (PAV)."""
    args = (direction, regularization, regularization_strength)
    return _Op.apply(values, lambda xn: _sorting.soft_sort(xn, *args),
                     lambda xn, g: _sorting.soft_sort_vjp(xn, g, *args))


class RankingLoss(torch.nn.Module):
    """Any ranking loss of diffalg by its spec (losses/ranking.h), e.g.
    RankingLoss("odd_even:cauchy:steepness=10", n): forward(scores [batch, n],
    targets [batch, n]) -> the batch-mean loss; one fused C call for loss and gradient."""

    def __init__(self, spec, n):
        super().__init__()
        self.ranking = _sorting.Ranking(spec, n)

    def forward(self, scores, targets):
        t = _const(targets)
        return _Loss.apply(scores, lambda s: self.ranking.loss(s, t))


class TopKCrossEntropyLoss(torch.nn.Module):
    """difftopk.TopKCrossEntropyLoss for diffsort_method 'odd_even' or 'bitonic':
    forward(outputs [batch, n], labels [batch]) -> mean loss."""

    def __init__(self, diffsort_method, inverse_temperature, p_k, n, m=None,
                 distribution=None, art_lambda=0.25, device="cpu", top1_mode="sm"):
        super().__init__()
        self.loss_fn = _sorting.TopKCrossEntropy(n, p_k, m, top1_mode, diffsort_method,
                                                 distribution or "cauchy",
                                                 inverse_temperature, art_lambda)

    def forward(self, outputs, labels):
        lab = _np(labels) if isinstance(labels, torch.Tensor) else np.asarray(labels)
        return _Loss.apply(outputs, lambda o: self.loss_fn.loss(o, lab))


# ---------------------------------------------------------------- shortest paths
class _Sampled:
    """Runs a stochastic NumPy face with rng and remembers the generator state of the
    forward, so that the backward reuses the forward's samples."""

    def __init__(self, rng):
        self.rng = rng

    def forward_backward(self, fwd, bwd):
        state = self.rng.state()

        def replay(xn, g):
            twin = _smooth.Rng(0)
            twin.set_state(state)
            return bwd(xn, g, twin)
        return (lambda xn: fwd(xn, self.rng)), replay


def sp_blackbox_path(cost, lambda_):
    """blackbox-backprop's ShortestPath: the Dijkstra path of cost [batch, H, W] (0/1)
    with Vlastelica et al.'s gradient (interpolation strength lambda_)."""
    return _Op.apply(cost, lambda c: _paths.sp_dijkstra(c)[0],
                     lambda c, g: _paths.sp_blackbox_grad(c, g, lambda_))


class RelaxedShortestPath(torch.nn.Module):
    """AlgoVision's relaxed shortest path: forward(cost [batch, H, W]) -> relaxed path;
    options as diffalg.RelaxedShortestPath."""

    def __init__(self, **options):
        super().__init__()
        self.op = _paths.RelaxedShortestPath(**options)

    def forward(self, cost):
        return _Op.apply(cost, self.op.path, self.op.vjp)

    def loss(self, cost, target):
        t = _const(target)
        return _Loss.apply(cost, lambda c: self.op.loss(c, t))


class PerturbedShortestPath(torch.nn.Module):
    """Perturbed Dijkstra (Berthet et al. 2020): forward(cost) -> the mean perturbed
    path, backward the Monte-Carlo J^T cot with the forward's samples; fy_loss(cost,
    target) the Fenchel-Young loss. seed fixes the generator."""

    def __init__(self, noise="gaussian", sigma=1.0, n_samples=10, seed=0):
        super().__init__()
        self.op, self.sampled = _paths.PerturbedShortestPath(noise, sigma, n_samples), \
            _Sampled(_smooth.Rng(seed))

    def forward(self, cost):
        fwd, bwd = self.sampled.forward_backward(
            self.op.path, lambda c, g, rng: self.op.vjp(c, g, rng)[1])
        return _Op.apply(cost, fwd, bwd)

    def fy_loss(self, cost, target):
        t = _const(target)
        return _Loss.apply(cost, lambda c: self.op.fy_loss(c, t, self.sampled.rng))


class SmoothedShortestPath(torch.nn.Module):
    """Stochastically smoothed Dijkstra (relax/smooth.h): forward(cost) -> mean path,
    backward with the forward's samples; loss(cost, target) the smoothed Hamming loss.
    smoothing: a diffalg.Smoothing."""

    def __init__(self, smoothing, seed=0):
        super().__init__()
        self.smoothing, self.sampled = smoothing, _Sampled(_smooth.Rng(seed))

    def forward(self, cost):
        fwd, bwd = self.sampled.forward_backward(
            lambda c, rng: _paths.sp_smooth_path(c, self.smoothing, rng)[0],
            lambda c, g, rng: _paths.sp_smooth_path(c, self.smoothing, rng, g)[1])
        return _Op.apply(cost, fwd, bwd)

    def loss(self, cost, target):
        t = _const(target)
        return _Loss.apply(cost, lambda c: _paths.sp_smooth_loss(c, t, self.smoothing,
                                                                 self.sampled.rng)[:2])


def smooth(f, x, m, smoothing, rng):
    """Stochastic smoothing of a black box f (NumPy x [n] -> m values) applied to each row
    of x [batch, n] (or x [n]): the smoothed values [batch, m], backward J^T cot with the
    Jacobian estimated from the same samples."""
    jac = [None]  # [batch, m, n], set by the forward

    def estimate(xn):
        rows = xn.reshape(-1, xn.shape[-1])
        est = [_smooth.smooth_jacobian(f, np.ascontiguousarray(r), m, smoothing, rng)
               for r in rows]
        jac[0] = np.stack([J for _, J in est])
        return np.stack([v for v, _ in est]).reshape(xn.shape[:-1] + (m,))

    return _Op.apply(x, estimate, lambda xn, g: np.einsum(
        "bm,bmn->bn", g.reshape(-1, m), jac[0]).reshape(xn.shape))


# ---------------------------------------------------------------- logic gate networks
class _LogicLayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, ia, ib, hard):
        ctx.save_for_backward(x, w)
        ctx.args = (ia, ib, hard)
        return _t(_logic.logic_layer(_np(x), _np(w), ia, ib, hard), x)

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        gx, gw = _logic.logic_layer_vjp(_np(x), _np(w), *ctx.args[:2], _np(gy), ctx.args[2])
        return _t(gx, x), _t(gw, w), None, None, None


class LogicLayer(torch.nn.Module):
    """difflogic.LogicLayer(in_dim, out_dim, connections='random'): out_dim neurons, each
    a softmax mixture of the 16 relaxed gates of two inputs (train mode) or its argmax
    gate (eval mode); weights [out_dim, 16] initialised N(0, 1). seed fixes the random
    connections."""

    def __init__(self, in_dim, out_dim, device=None, seed=0):
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.weights = torch.nn.Parameter(torch.randn(out_dim, 16))
        ia, ib = _logic.random_connections(in_dim, out_dim, _smooth.Rng(seed))
        self.register_buffer("ia", torch.from_numpy(ia.astype(np.int64)))
        self.register_buffer("ib", torch.from_numpy(ib.astype(np.int64)))

    def forward(self, x):
        return _LogicLayer.apply(x, self.weights.to(x.dtype), _np(self.ia), _np(self.ib),
                                 not self.training)


def group_sum(x, k, tau=1.0):
    """difflogic's GroupSum(k, tau) of x [..., n]."""
    n = x.shape[-1]
    return _Op.apply(x, lambda xn: _logic.group_sum(xn, k, tau),
                     lambda xn, g: _logic.group_sum_vjp(g, n, tau))


class GroupSum(torch.nn.Module):
    """difflogic.GroupSum(k, tau)."""

    def __init__(self, k, tau=1.0, device=None):
        super().__init__()
        self.k, self.tau = k, tau

    def forward(self, x):
        return group_sum(x, self.k, self.tau)


# ---------------------------------------------------------------- Newton losses
class _InjectFisher(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, lambda_):
        ctx.lambda_ = lambda_
        return z.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        return _t(_optim.inject_fisher_grad(_np(g), ctx.lambda_), g), None


def inject_fisher(z, lambda_):
    """InjectFisher (Newton Losses, Fisher variant): identity on z [B, m] whose backward
    replaces the incoming gradient of a batch-mean loss by (F + lambda I)^-1 g_i / B."""
    return _InjectFisher.apply(z, float(lambda_))


class NewtonLoss(torch.nn.Module):
    """Newton loss of a ranking loss (Petersen et al., NeurIPS 2024): forward(z [B, n],
    targets) returns (1/B) sum_i 1/2 ||z_i - z*_i||^2 with z* one regularised Newton step
    on the per-sample ranking loss (variant 'hessian' or 'fisher'); its gradient is
    (C_i + lambda I)^-1 g_i / B."""

    def __init__(self, spec, n, lambda_, variant="hessian"):
        super().__init__()
        if variant not in ("hessian", "fisher"):
            raise DiffalgError(EINVAL, "variant must be 'hessian' or 'fisher'")
        self.ranking, self.lambda_, self.variant = _sorting.Ranking(spec, n), lambda_, variant

    def step(self, z, targets):
        """(zstar, grad) for NumPy z, targets [B, n]."""
        B = z.shape[0]
        _, grad = self.ranking.loss(z, targets)
        g = grad * B  # per-sample gradients of the batch-mean loss
        if self.variant == "hessian":
            H, _ = self.ranking.hessian(z, targets)
            zstar, d, _ = _optim.newton_hessian_step(z, g, H * B, self.lambda_)
        else:
            zstar, d, _ = _optim.newton_fisher_step(z, g, self.lambda_)
        return zstar, d

    def forward(self, z, targets):
        t = _const(targets)

        def loss_and_grad(zn):
            zstar, d = self.step(zn, t)
            return 0.5 * float(np.sum((zn - zstar) ** 2)) / zn.shape[0], d
        return _Loss.apply(z, loss_and_grad)


# ---------------------------------------------------------------- TrAct / ISAAC
class _PrecondLinear(torch.autograd.Function):
    """y = x W^T + b; backward: ordinary dL/dx and dL/db, preconditioned dL/dW."""

    @staticmethod
    def forward(ctx, x, W, b, kind, lambda_):
        ctx.save_for_backward(x, W)
        ctx.kind, ctx.lambda_, ctx.has_b = kind, lambda_, b is not None
        return torch.nn.functional.linear(x, W, b)

    @staticmethod
    @once_differentiable
    def backward(ctx, G):
        x, W = ctx.saved_tensors
        Xf, Gf = _np(x.reshape(-1, x.shape[-1])), _np(G.reshape(-1, G.shape[-1]))
        gW = _t(_optim.precond_linear_grad(ctx.kind, Xf, Gf, ctx.lambda_), W)
        gb = G.reshape(-1, G.shape[-1]).sum(0) if ctx.has_b else None
        return G @ W, gW, gb, None, None


class _PrecondConv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, W, b, kind, lambda_, stride, pad):
        ctx.save_for_backward(x, W)
        ctx.args, ctx.has_b = (kind, lambda_, stride, pad), b is not None
        return torch.nn.functional.conv2d(x, W, b, stride, pad)

    @staticmethod
    @once_differentiable
    def backward(ctx, G):
        x, W = ctx.saved_tensors
        kind, lambda_, stride, pad = ctx.args
        gx = torch.nn.grad.conv2d_input(x.shape, W, G, stride, pad)
        gW = _t(_optim.precond_conv2d_grad(kind, _np(x), _np(G), lambda_, W.shape[-1], stride,
                                           pad), W)
        gb = G.sum((0, 2, 3)) if ctx.has_b else None
        return gx, gW, gb, None, None, None, None


def _square(v):
    return v if isinstance(v, int) else v[0] if len(set(v)) == 1 else None


class TrAct(torch.nn.Module):
    """torch_tract.TrAct(module, l): wraps a torch.nn.Linear or torch.nn.Conv2d (square
    kernel, equal strides and paddings, no dilation or groups) so that its weight
    gradient becomes G^T X (X^T X / N + l I)^-1; outputs and other gradients unchanged."""

    def __init__(self, module, l=0.1, kind="tract"):
        super().__init__()
        self.module, self.l, self.kind = module, float(l), kind
        if isinstance(module, torch.nn.Conv2d):
            k, s, p = _square(module.kernel_size), _square(module.stride), _square(module.padding)
            if None in (k, s, p) or _square(module.dilation) != 1 or module.groups != 1 \
                    or isinstance(module.padding, str):
                raise DiffalgError(EINVAL, "TrAct supports square kernels, equal strides and "
                                   "paddings, no dilation and groups = 1")
            self.conv = (s, p)
        elif isinstance(module, torch.nn.Linear):
            self.conv = None
        else:
            raise DiffalgError(EINVAL, "TrAct wraps a torch.nn.Linear or torch.nn.Conv2d")

    def forward(self, x):
        m = self.module
        if self.conv is None:
            return _PrecondLinear.apply(x, m.weight, m.bias, self.kind, self.l)
        return _PrecondConv2d.apply(x, m.weight, m.bias, self.kind, self.l, *self.conv)


class ISAACLinear(torch.nn.Linear):
    """isaac.Linear(in_features, out_features, la): a linear layer whose weight gradient
    is la G^T X (X^T X / N + la I)^-1 (ISAAC's input-based curvature)."""

    def __init__(self, in_features, out_features, la=1.0, bias=True):
        super().__init__(in_features, out_features, bias)
        self.la = float(la)

    def forward(self, x):
        return _PrecondLinear.apply(x, self.weight, self.bias, "isaac", self.la)
