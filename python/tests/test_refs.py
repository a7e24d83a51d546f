"""The NumPy face against the reference vectors, exactly as the C tests check them:
outputs to 1e-9, losses, gradients and Hessians to 1e-6 (normwise relative error)."""
import unittest

import numpy as np

import diffalg
from refs import ref_list, ref_err

OUT, GRAD = 1e-9, 1e-6


def net_of(r, n=None, steepness=None):
    return diffalg.SortNet(r.param("network"), n or int(r.num("n")), r.param("distribution"),
                           steepness if steepness is not None else r.num("steepness"),
                           r.num("art_lambda", 0.25))


class TestSortingRefs(unittest.TestCase):
    def test_sortnet(self):
        refs = ref_list("sortnet")
        self.assertGreater(len(refs), 0)
        hessians = 0
        for r in refs:
            net = net_of(r)
            x, t = r["x"], r["targets"]
            srt, P = net.apply(x)
            self.assertLess(ref_err(srt, r["sorted"]), OUT, r.path)
            self.assertLess(ref_err(P, r["P"]), OUT, r.path)
            loss, g = net.loss(x, t)
            self.assertLess(ref_err(loss, r["loss"]), GRAD, r.path)
            self.assertLess(ref_err(g, r["grad_x_exact"]), GRAD, r.path)
            if r.num("saturated") == 0:  # torch's BCE backward agrees here
                self.assertLess(ref_err(g, r["grad_x"]), GRAD, r.path)
            if r.get("hessian_exact") is not None:
                hessians += 1
                self.assertLess(ref_err(net.loss_hessian(x, t), r["hessian_exact"]), GRAD, r.path)
            # the same ranking loss through its spec string
            spec = "%s:%s:steepness=%.17g:art_lambda=%.17g" % (
                r.param("network"), r.param("distribution"), r.num("steepness"),
                r.num("art_lambda", 0.25))
            rloss, rg = diffalg.Ranking(spec, x.shape[1]).loss(x, t)
            self.assertLess(ref_err(rloss, r["loss"]), GRAD, r.path)
            self.assertLess(ref_err(rg, r["grad_x_exact"]), GRAD, r.path)
        self.assertGreater(hessians, 0)

    def test_topk(self):
        refs = ref_list("topk")
        self.assertGreater(len(refs), 0)
        for r in refs:
            net, k = net_of(r), int(r.num("k"))
            X = net.topk(r["x"], k)
            self.assertLess(ref_err(X, r["X"]), OUT, r.path)
            self.assertLess(ref_err(np.sum(X * r["W"]), r["loss"]), GRAD, r.path)
            self.assertLess(ref_err(net.topk_vjp(r["x"], k, r["W"]), r["grad_x"]), GRAD, r.path)

    def test_topk_ce(self):
        refs = ref_list("topk_ce")
        self.assertGreater(len(refs), 0)
        for r in refs:
            m = r.param("m")
            ce = diffalg.TopKCrossEntropy(
                int(r.num("n")), [float(v) for v in r.param("p_k").split(",")],
                None if m in (None, "None") else int(m), r.param("top1_mode"),
                r.param("network"), r.param("distribution"), r.num("inverse_temperature"),
                r.num("art_lambda", 0.25))
            loss, g = ce.loss(r["logits"], r["labels"].astype(np.int64))
            self.assertLess(ref_err(loss, r["loss"]), GRAD, r.path)
            self.assertLess(ref_err(g, r["grad_logits"]), GRAD, r.path)

    def check_relperm(self, kind, cls, desc_rows):
        refs = ref_list(kind)
        self.assertGreater(len(refs), 0)
        for r in refs:
            op, x = cls(r.num("tau")), r["x"]
            Pref, W = r["P"], r["W"]
            if desc_rows:  # the refs print SoftSort in the papers' orientation
                Pref = diffalg.perm_desc_rows_to_diffalg(Pref)
                W = diffalg.perm_desc_rows_to_diffalg(W)
                self.assertLess(ref_err(diffalg.perm_diffalg_to_desc_rows(Pref), r["P"]), 1e-15)
            srt, P = op.apply(x)
            self.assertLess(ref_err(P, Pref), OUT, r.path)
            self.assertLess(ref_err(srt, np.einsum("bi,bij->bj", x, Pref)), OUT, r.path)
            self.assertLess(ref_err(np.sum(P * W), r["loss"]), GRAD, r.path)
            self.assertLess(ref_err(op.vjp(x, cot_P=W), r["grad_x"]), GRAD, r.path)

    def test_neuralsort(self):
        self.check_relperm("neuralsort", diffalg.NeuralSort, False)

    def test_softsort(self):
        self.check_relperm("softsort", diffalg.SoftSort, True)

    def check_pav(self, kind, fwd, vjp):
        refs = ref_list(kind)
        self.assertGreater(len(refs), 0)
        for r in refs:
            args = (r.param("direction"), r.param("regularization"), r.num("strength"))
            x = r["x"]
            self.assertLess(ref_err(fwd(x, *args), r["out"]), OUT, r.path)
            self.assertLess(ref_err(vjp(x, r["g"], *args), r["vjp_true"]), GRAD, r.path)
            # batched: two copies of the row give the same rows
            xb = np.ascontiguousarray(np.stack([x, x]))
            self.assertEqual(ref_err(fwd(xb, *args)[1], r["out"]),
                             ref_err(fwd(x, *args), r["out"]))

    def test_softrank(self):
        self.check_pav("softrank", diffalg.soft_rank, diffalg.soft_rank_vjp)

    def test_softsort_pav(self):
        self.check_pav("softsort_pav", diffalg.soft_sort, diffalg.soft_sort_vjp)


class TestLogicRefs(unittest.TestCase):
    def test_logic_gates(self):
        refs = ref_list("logic_gates")
        self.assertGreater(len(refs), 0)
        for r in refs:
            a, b = r["a"], r["b"]
            out = np.stack([diffalg.logic_gate(g, a, b) for g in range(16)])
            self.assertLess(ref_err(out, r["out"]), OUT, r.path)
            # one neuron reading (a, b) of each of the 64 samples
            x = np.ascontiguousarray(np.stack([a, b], axis=1))
            w = np.ascontiguousarray(r["w"].reshape(1, 16))
            y = diffalg.logic_layer(x, w, [0], [1])
            self.assertLess(ref_err(y[:, 0], r["y"]), OUT, r.path)
            self.assertLess(ref_err(np.sum(y[:, 0] * r["c"]), r["loss"]), GRAD, r.path)
            gx, gw = diffalg.logic_layer_vjp(x, w, [0], [1], np.ascontiguousarray(r["c"][:, None]))
            self.assertLess(ref_err(gx[:, 0], r["dy_da"]), GRAD, r.path)
            self.assertLess(ref_err(gx[:, 1], r["dy_db"]), GRAD, r.path)
            self.assertLess(ref_err(gw[0], r["dy_dw"]), GRAD, r.path)

    def test_logic_layer(self):
        refs = ref_list("logic_layer")
        self.assertGreater(len(refs), 0)
        for r in refs:
            ia, ib = r["ia"].astype(np.int64), r["ib"].astype(np.int64)
            x, w = r["x"], r["weights"]
            y = diffalg.logic_layer(x, w, ia, ib)
            self.assertLess(ref_err(y, r["y_train"]), OUT, r.path)
            self.assertLess(ref_err(diffalg.logic_layer(x, w, ia, ib, hard=True), r["y_eval"]),
                            OUT, r.path)
            gs = diffalg.group_sum(y, int(r.num("group_k")), r.num("group_tau"))
            self.assertLess(ref_err(gs, r["group_sum"]), OUT, r.path)
            self.assertLess(ref_err(np.sum(y * r["C"]), r["loss"]), GRAD, r.path)
            gx, gw = diffalg.logic_layer_vjp(x, w, ia, ib, r["C"])
            self.assertLess(ref_err(gx, r["grad_x"]), GRAD, r.path)
            self.assertLess(ref_err(gw, r["grad_weights"]), GRAD, r.path)


class TestPathAndPrecondRefs(unittest.TestCase):
    def test_blackbox_sp(self):
        refs = ref_list("blackbox_sp")
        self.assertGreater(len(refs), 0)
        clipped = 0
        for r in refs:
            w, y, go, lam = r["w"], r["y"], r["grad_out"], r.num("lambda")
            path, cost = diffalg.sp_dijkstra(w)
            self.assertTrue(np.array_equal(path, y), r.path)
            np.testing.assert_allclose(cost, np.sum(w * y, axis=(1, 2)), rtol=1e-12)
            self.assertTrue(np.array_equal(np.maximum(w + lam * go, 0), r["w_prime"]))
            g = diffalg.sp_blackbox_grad(w, go, lam)
            if r.num("clipped") == 0:
                self.assertLess(ref_err(g, r["grad_w"]), GRAD, r.path)
            else:
                # zero costs allow ties: our perturbed path must be optimal under w' (the
                # same cost as upstream's) and g must be its blackbox gradient
                clipped += 1
                wp = r["w_prime"]
                yp, cp = diffalg.sp_dijkstra(wp)
                np.testing.assert_allclose(g, -(y - yp) / lam, rtol=0, atol=1e-15)
                yref = np.round(y + lam * r["grad_w"])
                np.testing.assert_allclose(cp, np.sum(wp * yref, axis=(1, 2)), atol=1e-9)
        self.assertGreater(clipped, 0)

    def check_linear(self, r, fn, lam):
        X, G = r["X"], r["G"]
        ref = r["grad_W"]
        self.assertLess(ref_err(fn(X, G, lam), ref), GRAD, r.path)
        kind = "isaac" if fn is diffalg.isaac_linear_grad else "tract"
        for regime in ("auto", "dxd", "nxn"):
            got = diffalg.precond_linear_grad(kind, X, G, lam, regime)
            self.assertLess(ref_err(got, ref), GRAD, (r.path, regime))

    def test_tract(self):
        refs = ref_list("tract")
        self.assertGreater(len(refs), 0)
        conv = 0
        for r in refs:
            lam = r.num("l")
            if r.param("layer") == "conv2d":
                conv += 1
                for regime in ("auto", "dxd", "nxn"):
                    g = diffalg.precond_conv2d_grad("tract", r["X"], r["G"], lam,
                                                    r["W"].shape[-1], int(r.num("stride")),
                                                    int(r.num("padding")), regime)
                    self.assertLess(ref_err(g, r["grad_W"]), GRAD, (r.path, regime))
            else:
                self.check_linear(r, diffalg.tract_linear_grad, lam)
        self.assertGreater(conv, 0)
        self.assertGreater(len(refs) - conv, 0)

    def test_isaac(self):
        refs = ref_list("isaac")
        self.assertGreater(len(refs), 0)
        for r in refs:
            self.check_linear(r, diffalg.isaac_linear_grad, r.num("la"))


if __name__ == "__main__":
    unittest.main()
