"""The NumPy face without references: every gradient and VJP against central finite
differences in double (symmetric relative error < 1e-6), float32 against float64,
batch shapes, stochastic functions against their definitions, and the error paths."""
import unittest

import numpy as np

import diffalg
from check import fd_grad, rand, sym_rel_err

TOL = 1e-6


class TestGradients(unittest.TestCase):
    def setUp(self):
        self.rng = np.random.default_rng(7)

    def check_vjp(self, fwd, vjp, x, what):
        """fwd(x) -> array, vjp(x, cot) -> grad: J^T cot against differences of <cot, fwd>."""
        cot = rand(self.rng, *fwd(x).shape)
        fd = fd_grad(lambda v: float(np.sum(fwd(v) * cot)), x)
        self.assertLess(sym_rel_err(vjp(x, cot), fd), TOL, what)

    def check_loss(self, loss, x, what):
        fd = fd_grad(lambda v: loss(v)[0], x)
        self.assertLess(sym_rel_err(loss(x)[1], fd), TOL, what)

    def test_sortnet(self):
        for kind, n in (("odd_even", 7), ("bitonic", 6)):
            for sig in diffalg.sorting.SIGMOIDS:
                # moderate slopes: saturated comparators (alpha within 1e-16 of 1) make
                # the differences of the loss meaningless
                net = diffalg.SortNet(kind, n, sig, steepness=2.0, art_lambda=0.25)
                x, t = 0.5 * rand(self.rng, 2, n), rand(self.rng, 2, n)
                what = (kind, sig)
                self.check_vjp(lambda v: net.apply(v)[0],
                               lambda v, c: net.vjp(v, cot_sorted=c), x, what)
                self.check_vjp(lambda v: net.apply(v)[1], lambda v, c: net.vjp(v, cot_P=c), x,
                               what)
                self.check_loss(lambda v: net.loss(v, t), x, what)
                if sig == "cauchy":
                    H = net.loss_hessian(x, t)
                    Hfd = np.stack([fd_grad(lambda v: net.loss(v, t)[1][b, i], x)[b]
                                    for b in range(2) for i in range(n)]).reshape(2, n, n)
                    self.assertLess(sym_rel_err(H, Hfd), TOL, what)
                    v = rand(self.rng, 2, n)
                    self.assertLess(sym_rel_err(net.loss_hvp(x, t, v),
                                                np.einsum("bij,bj->bi", H, v)), 1e-12)

    def test_topk(self):
        net = diffalg.SortNet("bitonic", 9, "logistic_phi", 5.0, 0.25)
        x = rand(self.rng, 3, 9)
        self.check_vjp(lambda v: net.topk(v, 4), lambda v, c: net.topk_vjp(v, 4, c), x, "topk")
        self.assertLess(sym_rel_err(net.topk(x, 4), net.apply(x)[1][:, :, 5:]), 1e-12)
        for mode in ("sm", "smce", "sort"):
            ce = diffalg.TopKCrossEntropy(12, [0.5, 0.25, 0.25], m=5, top1_mode=mode)
            logits, labels = rand(self.rng, 4, 12), np.array([0, 3, 11, 5])
            self.check_loss(lambda v: ce.loss(v, labels), logits, mode)

    def test_neuralsort_softsort(self):
        for cls in (diffalg.NeuralSort, diffalg.SoftSort):
            op, x, t = cls(0.7), rand(self.rng, 3, 6), rand(self.rng, 3, 6)
            self.check_vjp(lambda v: op.apply(v)[0], lambda v, c: op.vjp(v, cot_sorted=c), x,
                           cls.__name__)
            self.check_vjp(lambda v: op.apply(v)[1], lambda v, c: op.vjp(v, cot_P=c), x,
                           cls.__name__)
            both = (rand(self.rng, 3, 6), rand(self.rng, 3, 6, 6))
            self.assertLess(sym_rel_err(op.vjp(x, *both), op.vjp(x, cot_sorted=both[0])
                                        + op.vjp(x, cot_P=both[1])), 1e-12)
            self.check_loss(lambda v: op.loss(v, t), x, cls.__name__)
            H = op.hessian(x, t)
            Hfd = np.stack([fd_grad(lambda v: op.loss(v, t)[1][b, i], x)[b]
                            for b in range(3) for i in range(6)]).reshape(3, 6, 6)
            self.assertLess(sym_rel_err(H, Hfd), TOL, cls.__name__)

    def test_sinkhorn(self):
        op, x, t = diffalg.SinkhornSort(0.3, 20), rand(self.rng, 2, 5), rand(self.rng, 2, 5)
        self.check_vjp(lambda v: op.apply(v)[0], lambda v, c: op.vjp(v, cot_sorted=c), x, "s")
        self.check_vjp(lambda v: op.apply(v)[1], lambda v, c: op.vjp(v, cot_P=c), x, "P")
        self.check_vjp(op.rank, lambda v, c: op.vjp(v, cot_ranks=c), x, "ranks")
        self.check_loss(lambda v: op.loss(v, t), x, "loss")
        P = op.apply(x)[1]
        self.assertLess(np.max(np.abs(P.sum(axis=1) - 1)), 1e-12)  # columns sum to 1

    def test_pav(self):
        x, t = rand(self.rng, 3, 8), rand(self.rng, 3, 8)
        for reg in ("l2", "kl"):
            for d in ("ascending", "descending"):
                for fwd, vjp in ((diffalg.soft_rank, diffalg.soft_rank_vjp),
                                 (diffalg.soft_sort, diffalg.soft_sort_vjp)):
                    self.check_vjp(lambda v: fwd(v, d, reg, 0.5),
                                   lambda v, c: vjp(v, c, d, reg, 0.5), x, (reg, d))
            self.check_loss(lambda v: diffalg.fast_soft_rank_loss(v, t, reg, 0.5), x, reg)
        # vanishing strength: the hard ranks
        ranks = diffalg.soft_rank(x, regularization_strength=1e-6)
        np.testing.assert_allclose(ranks, np.argsort(np.argsort(x, axis=1), axis=1) + 1.0)

    def test_ranking_specs(self):
        x, t = rand(self.rng, 2, 5), rand(self.rng, 2, 5)
        for spec in ("odd_even:logistic:steepness=4", "bitonic", "neuralsort:tau=0.5",
                     "softsort", "sinkhorn:epsilon=0.3:iterations=20", "fast_soft_rank:kl"):
            r = diffalg.Ranking(spec, 5)
            self.check_loss(lambda v: r.loss(v, t), x, spec)
            H, exact = r.hessian(x, t)
            self.assertEqual(exact, not spec.startswith(("sinkhorn", "fast_soft_rank")))
            Hfd = np.stack([fd_grad(lambda v: r.loss(v, t)[1][b, i], x)[b]
                            for b in range(2) for i in range(5)]).reshape(2, 5, 5)
            self.assertLess(sym_rel_err(H, Hfd), 1e-5 if not exact else TOL, spec)
        self.assertEqual(diffalg.Ranking("odd_even", 5).spec,
                         "odd_even:cauchy:steepness=10:art_lambda=0.25")

    def test_logic(self):
        x, w = self.rng.uniform(size=(5, 6)), rand(self.rng, 4, 16)
        ia, ib = diffalg.random_connections(6, 4, diffalg.Rng(2))
        self.assertEqual(set(np.concatenate([ia, ib])), set(range(6)))  # every input used
        self.check_vjp(lambda v: diffalg.logic_layer(v, w, ia, ib),
                       lambda v, c: diffalg.logic_layer_vjp(v, w, ia, ib, c)[0], x, "gx")
        self.check_vjp(lambda v: diffalg.logic_layer(x, v, ia, ib),
                       lambda v, c: diffalg.logic_layer_vjp(x, v, ia, ib, c)[1], w, "gw")
        self.check_vjp(lambda v: diffalg.group_sum(v, 2, 3.0),
                       lambda v, c: diffalg.group_sum_vjp(c, 6, 3.0), x, "group sum")
        self.assertEqual(diffalg.logic_gate(6, 1.0, 0.0), 1.0)  # xor

    def test_relaxed_shortest_path(self):
        cost = np.abs(rand(self.rng, 2, 4, 5)) + 0.5
        target = diffalg.sp_dijkstra(cost + 0.3 * rand(self.rng, 2, 4, 5) ** 2)[0]
        for opts in ({}, {"loop": "while", "tconorm": "hamacher"},
                     {"stop_at_source": True, "tconorm": "yager", "norm": "l1", "beta": 3}):
            op = diffalg.RelaxedShortestPath(**opts)
            self.check_vjp(op.path, op.vjp, cost, opts)
            self.check_loss(lambda c: op.loss(c, target), cost, opts)
        self.check_loss(lambda p: diffalg.sp_hamming_loss(p, target), rand(self.rng, 2, 4, 5),
                        "hamming")


class TestDtypesAndShapes(unittest.TestCase):
    def test_float32_and_batch_shapes(self):
        rng = np.random.default_rng(3)
        x, t = rand(rng, 2, 3, 6), rand(rng, 2, 3, 6)
        net = diffalg.SortNet("odd_even", 6)
        cases = [
            ("sortnet", lambda v, tv: net.apply(v)),
            ("sortnet loss", lambda v, tv: net.loss(v, tv)),
            ("neuralsort", lambda v, tv: diffalg.NeuralSort(0.5).apply(v)),
            ("softsort loss", lambda v, tv: diffalg.SoftSort(0.5).loss(v, tv)),
            ("sinkhorn", lambda v, tv: (diffalg.SinkhornSort().rank(v),)),
            ("soft_rank", lambda v, tv: (diffalg.soft_rank(v, "descending", "kl"),)),
            ("ranking", lambda v, tv: diffalg.Ranking("bitonic", 6).loss(v, tv)),
        ]
        flat = (np.ascontiguousarray(x.reshape(6, 6)), np.ascontiguousarray(t.reshape(6, 6)))
        row = (np.ascontiguousarray(x[1, 2]), np.ascontiguousarray(t[1, 2]))
        for what, f in cases:
            ref, fl, f32 = f(x, t), f(*flat), f(x.astype(np.float32), t.astype(np.float32))
            for a, b, d in zip(ref, fl, f32):
                if np.ndim(a) == 0:  # a loss: the batch mean
                    self.assertAlmostEqual(a, b, places=14)
                    self.assertIsInstance(d, float)
                    self.assertLess(abs(d - a), 1e-6 * max(1, abs(a)), what)
                    continue
                self.assertEqual(a.dtype, np.float64)
                self.assertEqual(d.dtype, np.float32, what)
                self.assertTrue(np.array_equal(a.reshape(b.shape), b), what)
                self.assertLess(sym_rel_err(d, a), 1e-6, what)  # float32 in, same math
            if "loss" not in what and what != "ranking":  # one row alone: the same row
                for a, c in zip(ref, f(*row)):
                    self.assertLess(sym_rel_err(a[1, 2], c), 1e-13, what)

    def test_paths_float32(self):
        cost = np.random.default_rng(1).uniform(1, 5, (2, 3, 6, 6))
        path, pc = diffalg.sp_dijkstra(cost)
        self.assertEqual(path.shape, cost.shape)
        self.assertEqual(pc.shape, (2, 3))
        p32, pc32 = diffalg.sp_dijkstra(cost.astype(np.float32))
        self.assertEqual(p32.dtype, np.float32)
        # the float32 costs are other costs: their path is optimal for them
        self.assertTrue(np.allclose(pc32, np.sum(cost.astype(np.float32) * p32, axis=(2, 3))))


class TestStochastic(unittest.TestCase):
    def setUp(self):
        self.cost = np.random.default_rng(5).uniform(0.5, 3, (2, 5, 5))
        self.target = diffalg.sp_dijkstra(np.ascontiguousarray(self.cost[:, ::-1, :]))[0]

    def test_rng_replay(self):
        a, b = diffalg.Rng(11), diffalg.Rng(11)
        op = diffalg.PerturbedShortestPath("gumbel", 0.5, 8)
        self.assertTrue(np.array_equal(op.path(self.cost, a), op.path(self.cost, b)))
        state = a.state()
        first = op.path(self.cost, a)
        self.assertFalse(np.array_equal(first, op.path(self.cost, a)))
        a.set_state(state)
        self.assertTrue(np.array_equal(first, op.path(self.cost, a)))

    def test_perturbed_and_fy(self):
        op, rng = diffalg.PerturbedShortestPath("gaussian", 1.0, 16), diffalg.Rng(3)
        cot = np.random.default_rng(2).standard_normal(self.cost.shape)
        twin = rng.copy()
        mean, g = op.vjp(self.cost, cot, rng)
        self.assertTrue(np.array_equal(mean, op.path(self.cost, twin)))
        self.assertTrue(np.all((mean >= 0) & (mean <= 1)))
        twin = rng.copy()
        loss, g = op.fy_loss(self.cost, self.target, rng)
        yhat = op.path(self.cost, twin)
        self.assertGreaterEqual(loss, 0)
        np.testing.assert_allclose(g, (self.target - yhat) / 2, atol=1e-15)

    def test_smooth_path_and_loss(self):
        sm, rng = diffalg.Smoothing("logistic", "mc", "loo", samples=32, eps=0.5), diffalg.Rng(4)
        cot = np.random.default_rng(3).standard_normal(self.cost.shape)
        twin = rng.copy()
        mean, g = diffalg.sp_smooth_path(self.cost, sm, rng, cot)
        mean2, none = diffalg.sp_smooth_path(self.cost, sm, twin)
        self.assertTrue(np.array_equal(mean, mean2))
        self.assertIsNone(none)
        self.assertTrue(np.all(np.isfinite(g)))
        loss, g, H = diffalg.sp_smooth_loss(self.cost, self.target, sm, rng, hessian=True)
        self.assertEqual(H.shape, (2, 25, 25))
        self.assertLess(np.max(np.abs(H - H.transpose(0, 2, 1))), 1e-12)
        # a solver given as a Python callback: the same numbers as the built-in Dijkstra
        flat_cost = np.ascontiguousarray(self.cost.reshape(2, 25))
        flat_target = np.ascontiguousarray(self.target.reshape(2, 25))

        def dijkstra(c):
            return diffalg.sp_dijkstra(np.maximum(c, 0).reshape(1, 5, 5))[0].reshape(25)
        a, b = diffalg.Rng(9), diffalg.Rng(9)
        got = diffalg.sp_smooth_solver_loss(dijkstra, flat_cost, flat_target, sm, a)
        want = diffalg.sp_smooth_loss(self.cost, self.target, sm, b)
        self.assertAlmostEqual(got[0], want[0], places=12)
        np.testing.assert_allclose(got[1], want[1].reshape(2, 25), atol=1e-12)

    def test_smooth_estimators(self):
        """For f(x) = a.x + x^T A x with Gaussian smoothing (eps 1), the smoothed gradient
        is a + 2 A x and the smoothed Hessian 2 A: the estimates converge to them."""
        rng_np = np.random.default_rng(8)
        a, A = rng_np.standard_normal(3), rng_np.standard_normal((3, 3))
        x = rng_np.standard_normal(3)
        A = (A + A.T) / 2

        def f(v):
            return [a @ v + v @ A @ v]
        sm = diffalg.Smoothing("gaussian", "sobol", "loo", samples=4096)
        value, J = diffalg.smooth_jacobian(f, x, 1, sm, diffalg.Rng(1))
        self.assertEqual(J.shape, (1, 3))
        self.assertLess(sym_rel_err(J[0], a + 2 * A @ x), 0.05)
        self.assertLess(abs(value[0] - (f(x)[0] + np.trace(A))), 0.05 * (1 + abs(value[0])))
        v, g, H = diffalg.smooth_hessian(f, x, sm, diffalg.Rng(1))
        self.assertLess(sym_rel_err(H, 2 * A), 0.1)
        self.assertEqual(sm.plan(3), ("sobol", 4096))

    def test_metrics(self):
        path = diffalg.sp_dijkstra(self.cost)[0]
        m = diffalg.sp_metrics(path, path, self.cost)
        self.assertEqual(m, {"exact_match": 1.0, "cost_ratio": 1.0, "hamming": 0.0})
        m = diffalg.sp_metrics(self.target, path, self.cost)
        self.assertGreaterEqual(m["cost_ratio"], 1.0)


class TestNewtonAndPrecond(unittest.TestCase):
    def setUp(self):
        self.rng = np.random.default_rng(12)

    def test_newton_hessian(self):
        B, m = 3, 4
        z, g = rand(self.rng, B, m), rand(self.rng, B, m)
        M = rand(self.rng, B, m, m)
        H = np.ascontiguousarray(M @ M.transpose(0, 2, 1))
        zstar, grad, fb = diffalg.newton_hessian_step(z, g, H, 0.1)
        d = np.linalg.solve(H + 0.1 * np.eye(m), g[..., None])[..., 0]
        self.assertLess(sym_rel_err(zstar, z - d), 1e-12)
        self.assertLess(sym_rel_err(grad, d / B), 1e-12)
        self.assertEqual(fb, 0)

    def test_newton_fisher_and_inject(self):
        for B, m in ((6, 3), (2, 5)):  # Cholesky, Woodbury
            z, g = rand(self.rng, B, m), rand(self.rng, B, m)
            zstar, grad, _ = diffalg.newton_fisher_step(z, g, 0.5)
            F = g.T @ g / B
            d = np.linalg.solve(F + 0.5 * np.eye(m), g.T).T
            self.assertLess(sym_rel_err(zstar, z - d), 1e-10)
            self.assertLess(sym_rel_err(grad, d / B), 1e-10)
            inj = diffalg.inject_fisher_grad(np.ascontiguousarray(g / B), 0.5)
            self.assertLess(sym_rel_err(inj, d / B), 1e-10)

    def test_tract_isaac_closed_form(self):
        for N in (3, 20):
            X, G = rand(self.rng, N, 6), rand(self.rng, N, 4)
            M = X.T @ X / N
            want = G.T @ X @ np.linalg.inv(M + 0.3 * np.eye(6))
            self.assertLess(sym_rel_err(diffalg.tract_linear_grad(X, G, 0.3), want), 1e-10)
            self.assertLess(sym_rel_err(diffalg.isaac_linear_grad(X, G, 0.3), 0.3 * want),
                            1e-10)
            # leading dims are flattened into the N rows
            X3 = np.ascontiguousarray(X.reshape(1, N, 6))
            G3 = np.ascontiguousarray(G.reshape(1, N, 4))
            self.assertLess(sym_rel_err(diffalg.tract_linear_grad(X3, G3, 0.3), want), 1e-10)


class TestErrors(unittest.TestCase):
    def assertCode(self, status, fn, *args, **kw):
        with self.assertRaises(diffalg.DiffalgError) as cm:
            fn(*args, **kw)
        self.assertEqual(cm.exception.status, status, str(cm.exception))
        self.assertTrue(cm.exception.message)
        return cm.exception

    def test_library_errors_carry_da_last_error(self):
        net = diffalg.SortNet("odd_even", 4)
        x = np.zeros((2, 4))
        x[1, 2] = np.nan
        e = self.assertCode("DA_ENAN", net.apply, x)
        self.assertIn("da_sortnet_apply", e.message)
        self.assertEqual(e.code, 5)
        self.assertCode("DA_ENAN", diffalg.soft_rank, x)
        self.assertCode("DA_ENAN", net.loss, np.zeros((2, 4)), x)
        self.assertCode("DA_ERANGE", diffalg.SortNet, "odd_even", 1)
        self.assertCode("DA_ERANGE", diffalg.SortNet, "odd_even", 4, "cauchy", -1.0)
        self.assertCode("DA_EINVAL", diffalg.Ranking, "no_such_loss", 4)
        self.assertCode("DA_ERANGE", diffalg.SinkhornSort(0.1, 0).apply, np.ones((1, 4)))
        self.assertCode("DA_ERANGE", diffalg.NeuralSort(0.0).apply, np.ones((1, 4)))
        self.assertCode("DA_ERANGE", diffalg.soft_sort, np.ones((1, 1)))
        self.assertCode("DA_ERANGE", diffalg.tract_linear_grad, np.ones((3, 2)), np.ones((3, 2)),
                        0.0)
        self.assertCode("DA_ERANGE", diffalg.newton_fisher_step, np.ones((2, 2)), np.ones((2, 2)),
                        0.0)
        self.assertCode("DA_ERANGE", diffalg.TopKCrossEntropy(5, [0.5, 0.5]).loss,
                        np.ones((2, 5)), np.array([0, 7]))
        self.assertCode("DA_EINVAL", net.vjp, np.ones((1, 4)))
        self.assertCode("DA_ERANGE", diffalg.logic_gate, 16, 0.5, 0.5)
        self.assertCode("DA_ERANGE", diffalg.logic_layer, np.ones((2, 3)), np.ones((1, 16)),
                        [0], [3])
        self.assertCode("DA_ERANGE", diffalg.group_sum, np.ones((2, 5)), 2)

    def test_python_side_checks(self):
        net = diffalg.SortNet("bitonic", 4)
        self.assertCode("DA_EDTYPE", net.apply, [[1.0, 2.0, 3.0, 4.0]])
        self.assertCode("DA_EDTYPE", net.apply, np.ones((2, 4), dtype=np.int64))
        self.assertCode("DA_ESHAPE", net.apply, np.ones((4, 2)).T)  # not C-contiguous
        self.assertCode("DA_ESHAPE", net.apply, np.ones((2, 5)))
        self.assertCode("DA_ESHAPE", net.loss, np.ones((2, 4)), np.ones((3, 4)))
        self.assertCode("DA_ESHAPE", net.vjp, np.ones((2, 4)), cot_P=np.ones((2, 4)))
        self.assertCode("DA_EINVAL", diffalg.SortNet, "quick", 4)
        self.assertCode("DA_EINVAL", diffalg.SortNet, "odd_even", 4, "tanh")
        self.assertCode("DA_EINVAL", diffalg.soft_rank, np.ones((1, 3)), "up")
        self.assertCode("DA_ESHAPE", diffalg.sp_dijkstra, np.ones(5))
        self.assertCode("DA_ESHAPE", diffalg.TopKCrossEntropy(5, [1.0]).loss, np.ones((2, 5)),
                        np.array([0.0, 1.0]))
        self.assertCode("DA_ESHAPE", diffalg.smooth_jacobian, lambda v: [0.0], np.ones((2, 2)),
                        1, diffalg.Smoothing(), diffalg.Rng(0))

    def test_callback_errors(self):
        sm, rng = diffalg.Smoothing(samples=8), diffalg.Rng(0)
        with self.assertRaises(ZeroDivisionError):
            diffalg.smooth_jacobian(lambda v: [1 / 0], np.ones(2), 1, sm, rng)
        self.assertCode("DA_ESHAPE", diffalg.smooth_jacobian, lambda v: [1.0, 2.0], np.ones(2),
                        1, sm, rng)
        # the library still works after a failed callback
        self.assertEqual(diffalg.smooth_jacobian(lambda v: [v.sum()], np.ones(2), 1, sm,
                                                 rng)[1].shape, (1, 2))

    def test_load_library_error(self):
        with self.assertRaises(OSError) as cm:
            diffalg.load_library("/nonexistent/libdiffalg.so")
        self.assertIn("/nonexistent/libdiffalg.so", str(cm.exception))
        self.assertEqual(diffalg.soft_rank(np.array([2.0, 1.0]), regularization_strength=1e-3)
                         .tolist(), [2.0, 1.0])  # the loaded library is kept


if __name__ == "__main__":
    unittest.main()
