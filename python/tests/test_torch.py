"""diffalg.torch: torch.autograd.gradcheck (double) on every wrapper with an exact
derivative, the references through the PyTorch faces, wrappers whose backward is by
design not the derivative of the forward (blackbox, Monte-Carlo, Newton, TrAct) against
their definitions, and a small training loop with the sorting loss. Skipped only when
PyTorch is not installed."""
import unittest

import numpy as np

import diffalg

try:
    import torch
    import diffalg.torch as dt
except ImportError:  # python3-torch absent: only the NumPy face is tested
    torch = None

from refs import ref_list, ref_err

# elementwise |analytic - numeric| <= 1e-7 + 1e-6 |numeric|: at least as strict as the
# project's normwise 1e-6 for the O(0.1 - 1) derivatives checked here
GC = dict(eps=1e-6, atol=1e-7, rtol=1e-6)


def newton_direction(C, g, lam):
    """(C_i + lam I)^-1 g_i, with newton.h's fallback for a matrix that is not positive
    definite: its eigenvalues clipped below at lam."""
    w, V = np.linalg.eigh(C + lam * np.eye(C.shape[-1]))
    w = np.where(np.min(w, axis=-1, keepdims=True) > 0, w, np.maximum(w, lam))
    return np.einsum("bij,bj,bkj,bk->bi", V, 1 / w, V, g)


def gradcheck(fn, *inputs):
    return torch.autograd.gradcheck(fn, inputs, **GC)


@unittest.skipIf(torch is None, "python3-torch is not installed")
class TestGradcheck(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(0)

    def x(self, *shape, scale=1.0):
        return (scale * torch.randn(*shape, dtype=torch.float64)).requires_grad_()

    def test_sorting(self):
        x = self.x(3, 6, scale=0.5)
        for mod in (dt.DiffSortNet("odd_even", 6, steepness=4.0),
                    dt.DiffSortNet("bitonic", 6, steepness=4.0, distribution="logistic_phi"),
                    dt.NeuralSort(0.5), dt.SoftSort(0.5), dt.SinkhornSort(0.3, 20)):
            self.assertTrue(gradcheck(lambda v: mod(v), x), type(mod).__name__)
        self.assertTrue(gradcheck(dt.SinkhornSort(0.3, 20).rank, x))
        net = diffalg.SortNet("bitonic", 6, "cauchy", 4.0)
        self.assertTrue(gradcheck(lambda v: dt.topk(v, net, 3), x))

    def test_pav(self):
        x = self.x(3, 7)
        for reg in ("l2", "kl"):
            self.assertTrue(gradcheck(lambda v: dt.soft_rank(v, reg, 0.5), x))
            self.assertTrue(gradcheck(lambda v: dt.soft_sort(v, reg, 0.5, "descending"), x))

    def test_losses(self):
        x, t = self.x(3, 5, scale=0.5), torch.randn(3, 5, dtype=torch.float64)
        for spec in ("odd_even:steepness=4", "bitonic:logistic:steepness=4", "neuralsort:tau=0.5",
                     "softsort", "sinkhorn:epsilon=0.3:iterations=20", "fast_soft_rank"):
            loss = dt.RankingLoss(spec, 5)
            self.assertTrue(gradcheck(lambda v: loss(v, t), x), spec)
        ce = dt.TopKCrossEntropyLoss("odd_even", 2.0, [0.5, 0.25, 0.25], 8, m=5)
        logits, labels = self.x(4, 8), torch.tensor([0, 7, 3, 3])
        self.assertTrue(gradcheck(lambda v: ce(v, labels), logits))

    def test_logic(self):
        layer = dt.LogicLayer(6, 8, seed=3).double()
        x = torch.rand(4, 6, dtype=torch.float64, requires_grad=True)
        self.assertTrue(gradcheck(layer, x))
        w = layer.weights.detach().clone().requires_grad_()
        self.assertTrue(gradcheck(lambda v: dt._LogicLayer.apply(x.detach(), v, layer.ia.numpy(),
                                                                  layer.ib.numpy(), False), w))
        self.assertTrue(gradcheck(lambda v: dt.group_sum(v, 2, 3.0), self.x(4, 8)))
        layer.eval()  # eval mode: the argmax gates, no weight gradient
        y = layer(x)
        y.sum().backward()
        self.assertTrue(torch.all(layer.weights.grad == 0))
        self.assertTrue(np.array_equal(y.detach().numpy(), diffalg.logic_layer(
            x.detach().numpy(), layer.weights.detach().numpy(), layer.ia.numpy(),
            layer.ib.numpy(), hard=True)))

    def test_relaxed_shortest_path(self):
        cost = (torch.rand(2, 4, 4, dtype=torch.float64) + 0.5).requires_grad_()
        target = torch.eye(4, dtype=torch.float64).expand(2, 4, 4)
        for opts in ({}, {"loop": "while"}):
            sp = dt.RelaxedShortestPath(**opts)
            self.assertTrue(gradcheck(sp, cost))
            self.assertTrue(gradcheck(lambda c: sp.loss(c, target), cost))


@unittest.skipIf(torch is None, "python3-torch is not installed")
class TestAgainstDefinitions(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(1)
        self.cost = torch.rand(2, 5, 5, dtype=torch.float64) * 3 + 0.5

    def test_blackbox_path(self):
        cost, cot = self.cost.clone().requires_grad_(), torch.randn(2, 5, 5, dtype=torch.float64)
        y = dt.sp_blackbox_path(cost, 20.0)
        (y * cot).sum().backward()
        c = self.cost.numpy()
        self.assertTrue(np.array_equal(y.detach().numpy(), diffalg.sp_dijkstra(c)[0]))
        self.assertTrue(np.array_equal(cost.grad.numpy(),
                                       diffalg.sp_blackbox_grad(c, cot.numpy(), 20.0)))

    def test_stochastic_paths_reuse_samples(self):
        c, cot = self.cost.numpy(), np.random.default_rng(0).standard_normal((2, 5, 5))
        target = diffalg.sp_dijkstra(np.ascontiguousarray(c[:, ::-1]))[0]
        sm = diffalg.Smoothing("gaussian", "rlatin", "loo", samples=16, eps=0.5)
        cases = [(dt.PerturbedShortestPath("gumbel", 0.5, 8, seed=3),
                  lambda cc, g, rng: diffalg.PerturbedShortestPath("gumbel", 0.5, 8).vjp(
                      cc, g, rng)),
                 (dt.SmoothedShortestPath(sm, seed=3),
                  lambda cc, g, rng: diffalg.sp_smooth_path(cc, sm, rng, g))]
        for mod, numpy_vjp in cases:
            cost = self.cost.clone().requires_grad_()
            y = mod(cost)
            (y * torch.from_numpy(cot)).sum().backward()
            mean, g = numpy_vjp(c, cot, diffalg.Rng(3))
            self.assertTrue(np.array_equal(y.detach().numpy(), mean), type(mod).__name__)
            self.assertTrue(np.array_equal(cost.grad.numpy(), g), type(mod).__name__)
            cost.grad = None
            loss = (mod.fy_loss if hasattr(mod, "fy_loss") else mod.loss)(cost, target)
            loss.backward()
            self.assertTrue(torch.isfinite(loss) and torch.all(torch.isfinite(cost.grad)))

    def test_smooth_blackbox(self):
        x = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
        sm = diffalg.Smoothing("logistic", "mc", "fx", samples=32)

        def f(v):
            return [np.floor(v[0]) + v[1], np.abs(v).sum()]
        y = dt.smooth(f, x, 2, sm, diffalg.Rng(5))
        cot = torch.randn(3, 2, dtype=torch.float64)
        (y * cot).sum().backward()
        rng = diffalg.Rng(5)
        for b in range(3):
            value, J = diffalg.smooth_jacobian(f, x.detach().numpy()[b].copy(), 2, sm, rng)
            self.assertTrue(np.array_equal(y.detach().numpy()[b], value))
            self.assertLess(np.max(np.abs(x.grad.numpy()[b] - cot.numpy()[b] @ J)), 1e-15)

    def test_newton(self):
        B, n = 4, 5
        z = torch.randn(B, n, dtype=torch.float64, requires_grad=True)
        t = torch.randn(B, n, dtype=torch.float64)
        r = diffalg.Ranking("odd_even:steepness=2", n)
        zn, tn = z.detach().numpy(), t.numpy()
        _, g = r.loss(zn, tn)
        H, _ = r.hessian(zn, tn)
        for variant in ("hessian", "fisher"):
            z.grad = None
            loss = dt.NewtonLoss("odd_even:steepness=2", n, 0.1, variant)(z, t)
            loss.backward()
            gs = g * B  # per-sample gradients
            C = H * B if variant == "hessian" else np.broadcast_to(gs.T @ gs / B, (B, n, n))
            d = newton_direction(C, gs, 0.1)
            self.assertLess(ref_err(z.grad.numpy(), d / B), 1e-10, variant)
            self.assertAlmostEqual(loss.item(), 0.5 * np.sum(d ** 2) / B, places=12)
        # InjectFisher in front of the plain loss gives the Fisher-Newton direction
        z.grad = None
        dt.RankingLoss("odd_even:steepness=2", n)(dt.inject_fisher(z, 0.1), t).backward()
        F = (g * B).T @ (g * B) / B
        d = np.linalg.solve(F + 0.1 * np.eye(n), (g * B).T).T
        self.assertLess(ref_err(z.grad.numpy(), d / B), 1e-10)


@unittest.skipIf(torch is None, "python3-torch is not installed")
class TestTorchRefs(unittest.TestCase):
    def test_diffsortnet(self):
        refs = ref_list("sortnet")
        self.assertGreater(len(refs), 0)
        bce = torch.nn.BCELoss()
        for r in refs:
            if r.num("saturated") != 0:  # torch's BCE backward differs where P(1-P) < 1e-12
                continue
            n = int(r.num("n"))
            mod = dt.DiffSortNet(r.param("network"), n, steepness=r.num("steepness"),
                                 art_lambda=r.num("art_lambda", 0.25),
                                 distribution=r.param("distribution"))
            x = torch.tensor(r["x"], requires_grad=True)
            srt, P = mod(x)
            perm = torch.argsort(torch.tensor(r["targets"]), dim=-1, stable=True)
            Q = torch.nn.functional.one_hot(perm, n).transpose(-2, -1).double()
            loss = bce(P, Q)
            loss.backward()
            self.assertLess(ref_err(srt.detach().numpy(), r["sorted"]), 1e-9, r.path)
            self.assertLess(ref_err(P.detach().numpy(), r["P"]), 1e-9, r.path)
            self.assertLess(ref_err(loss.item(), r["loss"]), 1e-6, r.path)
            self.assertLess(ref_err(x.grad.numpy(), r["grad_x"]), 1e-6, r.path)
            fused = dt.RankingLoss("%s:%s:steepness=%.17g:art_lambda=%.17g" % (
                r.param("network"), r.param("distribution"), r.num("steepness"),
                r.num("art_lambda", 0.25)), n)
            self.assertLess(ref_err(fused(x, torch.tensor(r["targets"])).item(), r["loss"]), 1e-6)

    def test_soft_rank_and_relperm(self):
        for r in ref_list("softrank"):
            x = torch.tensor(r["x"], requires_grad=True)
            out = dt.soft_rank(x, r.param("regularization"), r.num("strength"),
                               r.param("direction"))
            (out * torch.tensor(r["g"])).sum().backward()
            self.assertLess(ref_err(out.detach().numpy(), r["out"]), 1e-9, r.path)
            self.assertLess(ref_err(x.grad.numpy(), r["vjp_true"]), 1e-6, r.path)
        refs = ref_list("neuralsort")
        self.assertGreater(len(refs), 0)
        for r in refs:
            x = torch.tensor(r["x"], requires_grad=True)
            _, P = dt.NeuralSort(r.num("tau"))(x)
            (P * torch.tensor(r["W"])).sum().backward()
            self.assertLess(ref_err(P.detach().numpy(), r["P"]), 1e-9, r.path)
            self.assertLess(ref_err(x.grad.numpy(), r["grad_x"]), 1e-6, r.path)

    def check_layer(self, r, layer):
        X = torch.tensor(r["X"], requires_grad=True)
        Y = layer(X)
        Y.backward(torch.tensor(r["G"]))
        params = dict(layer.named_parameters())
        W = params.get("module.weight", params.get("weight"))
        b = params.get("module.bias", params.get("bias"))
        self.assertLess(ref_err(Y.detach().numpy(), r["Y"]), 1e-9, r.path)
        self.assertLess(ref_err(W.grad.numpy(), r["grad_W"]), 1e-6, r.path)
        self.assertLess(ref_err(b.grad.numpy(), r["grad_b"]), 1e-6, r.path)
        self.assertLess(ref_err(X.grad.numpy(), r["grad_X"]), 1e-6, r.path)

    def set_params(self, module, r):
        with torch.no_grad():
            module.weight.copy_(torch.tensor(r["W"]))
            module.bias.copy_(torch.tensor(r["b"]))
        return module

    def test_tract_isaac_layers(self):
        refs = ref_list("tract")
        self.assertGreater(len(refs), 0)
        for r in refs:
            out, n_in = r["W"].shape[0], r["W"].shape[1]
            if r.param("layer") == "conv2d":
                inner = torch.nn.Conv2d(n_in, out, r["W"].shape[-1], int(r.num("stride")),
                                        int(r.num("padding"))).double()
            else:
                inner = torch.nn.Linear(n_in, out).double()
            self.check_layer(r, dt.TrAct(self.set_params(inner, r), r.num("l")))
        refs = ref_list("isaac")
        self.assertGreater(len(refs), 0)
        for r in refs:
            layer = dt.ISAACLinear(r["W"].shape[1], r["W"].shape[0], r.num("la")).double()
            self.check_layer(r, self.set_params(layer, r))


@unittest.skipIf(torch is None, "python3-torch is not installed")
class TestTorchUse(unittest.TestCase):
    def test_training_loop_reduces_sorting_loss(self):
        """A linear scorer of 4 features per item learns to rank 8 items (the true score
        is a fixed linear function) with diffsort's ranking loss: BCE between the
        DiffSortNet permutation matrix and the true one, float32, Adam."""
        torch.manual_seed(0)
        n, feats, batch = 8, 4, 32
        w_true = torch.randn(feats)
        model = torch.nn.Linear(feats, 1)
        sorter = dt.DiffSortNet("odd_even", n, steepness=5.0)
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        losses = []
        for step in range(60):
            items = torch.randn(batch, n, feats)
            perm = torch.argsort(items @ w_true, dim=-1)
            Q = torch.nn.functional.one_hot(perm, n).transpose(-2, -1).float()
            _, P = sorter(model(items).squeeze(-1))
            loss = torch.nn.functional.binary_cross_entropy(P, Q)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        self.assertEqual(P.dtype, torch.float32)
        self.assertLess(np.mean(losses[-10:]), 0.5 * np.mean(losses[:5]))

    def test_float32_and_errors(self):
        x = torch.randn(2, 5, requires_grad=True)
        r = dt.soft_rank(x)
        self.assertEqual(r.dtype, torch.float32)
        r.sum().backward()
        self.assertEqual(x.grad.dtype, torch.float32)
        with self.assertRaises(diffalg.DiffalgError) as cm:
            dt.DiffSortNet("odd_even", 5)(torch.full((2, 5), float("nan")))
        self.assertEqual(cm.exception.status, "DA_ENAN")
        with self.assertRaises(diffalg.DiffalgError):
            dt.soft_rank(torch.ones(2, 5, dtype=torch.float16))
        with self.assertRaises(diffalg.DiffalgError):
            dt.TrAct(torch.nn.ReLU())


if __name__ == "__main__":
    unittest.main()
