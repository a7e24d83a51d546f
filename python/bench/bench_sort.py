#!/usr/bin/python3
"""bench_sort.py - one PyTorch training step with the differentiable sorting network
ranking loss, written with diffsort's formulas in PyTorch versus the same step through
diffalg.torch, for n in {5, 16, 32, 64}.

The step: a linear scorer (16 features per item -> 1 score) on a batch of sets of n
items, the relaxed permutation matrix P of an odd-even network (cauchy sigmoid,
steepness 10), the BCE loss between P and the true permutation matrix (diffsort's
experiments/main.py), backward, SGD update. Three implementations of the same math:
  diffsort  the DiffSortNet formulas in PyTorch: per layer dense 0/1 split matrices
            (identity comparators of weight 0.5 included) and combine matrices applied
            with matmuls to the values and to P, torch.nn.BCELoss, autograd;
  drop-in   diffalg.torch.DiffSortNet (backward: the C vjp) + torch.nn.BCELoss;
  fused     diffalg.torch.RankingLoss("odd_even:cauchy:steepness=10", n): loss and
            gradient in one C call.
It prints the median milliseconds per step of each, the ratios diffsort / diffalg
(above 1: diffalg is faster), and the largest loss difference between the
implementations on the same inputs (they compute the same numbers).

usage: DIFFALG_LIB=.libs/libdiffalg.so /usr/bin/python3 python/bench/bench_sort.py
          [--batch 128] [--sizes 5,16,32,64] [--dtype float32|float64] [--threads 2]
          [--seconds 1.0]"""
import argparse
import math
import os
import statistics
import sys
import time


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--sizes", default="5,16,32,64")
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=1.0, help="time budget per case")
    return ap.parse_args()


args = parse()
# both PyTorch and libdiffalg use OpenMP: the same thread count for every variant
os.environ["OMP_NUM_THREADS"] = str(args.threads)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import torch  # noqa: E402
import diffalg.torch as dt  # noqa: E402

FEATURES, STEEPNESS = 16, 10.0


def odd_even_comparators(n):
    """Per layer: (lo, hi, weight) with weight 0.5 for a wire compared with itself
    (diffsort pads the odd-even layers with such identity comparators)."""
    layers = []
    for layer in range(n):
        comps = [(i, i + 1, 1.0) for i in range(layer % 2, n - 1, 2)]
        if n % 2 == 0 and layer % 2 == 1:
            comps += [(0, 0, 0.5), (n - 1, n - 1, 0.5)]
        elif n % 2 == 1:
            w = n - 1 if layer % 2 == 0 else 0
            comps.append((w, w, 0.5))
        layers.append(comps)
    return layers


class DiffsortFormulas(torch.nn.Module):
    """The DiffSortNet forward in PyTorch (cauchy sigmoid): returns (sorted, P)."""

    def __init__(self, n, dtype):
        super().__init__()
        self.mats = []
        for comps in odd_even_comparators(n):
            k = len(comps)
            sa, sb = torch.zeros(k, n, dtype=dtype), torch.zeros(k, n, dtype=dtype)
            cmin, cmax = torch.zeros(n, k, dtype=dtype), torch.zeros(n, k, dtype=dtype)
            for c, (lo, hi, w) in enumerate(comps):
                sa[c, lo], sb[c, hi], cmin[lo, c], cmax[hi, c] = w, w, 1.0, 1.0
            self.mats.append((sa.T.contiguous(), sb.T.contiguous(), cmin.T.contiguous(),
                              cmax.T.contiguous()))
        self.n = n

    def forward(self, x):
        X = torch.eye(self.n, dtype=x.dtype).expand(x.shape[0], self.n, self.n)
        for sa, sb, cmin, cmax in self.mats:
            a, b = x @ sa, x @ sb
            alpha = torch.atan(STEEPNESS * (b - a)) / math.pi + 0.5
            aX, bX = X @ sa, X @ sb
            x = (alpha * a + (1 - alpha) * b) @ cmin + ((1 - alpha) * a + alpha * b) @ cmax
            al = alpha.unsqueeze(1)
            X = (al * aX + (1 - al) * bX) @ cmin + ((1 - al) * aX + al * bX) @ cmax
        return x, X


def make_step(kind, n, model, opt):
    bce = torch.nn.BCELoss()
    if kind == "diffsort":
        sorter = DiffsortFormulas(n, model.weight.dtype)
    elif kind == "drop-in":
        sorter = dt.DiffSortNet("odd_even", n, steepness=STEEPNESS, distribution="cauchy")
    else:
        fused = dt.RankingLoss("odd_even:cauchy:steepness=%g" % STEEPNESS, n)

    def step(items, targets, Q):
        scores = model(items).squeeze(-1)
        if kind == "fused":
            loss = fused(scores, targets)
        else:
            loss = bce(sorter(scores)[1], Q)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()
    return step


def time_step(step, data, seconds):
    for _ in range(3):
        step(*data)
    times, start = [], time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < seconds and len(times) < 1000):
        t0 = time.perf_counter()
        step(*data)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main():
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    kinds = ("diffsort", "drop-in", "fused")
    print("# one training step (linear scorer, odd-even cauchy s=%g, BCE, backward, SGD); "
          "batch %d, %s, %d threads" % (STEEPNESS, args.batch, args.dtype, args.threads))
    print("| n | diffsort ms | drop-in ms | fused ms | diffsort/drop-in | diffsort/fused "
          "| max loss diff |")
    print("|---|---|---|---|---|---|---|")
    for n in (int(s) for s in args.sizes.split(",")):
        gen = torch.Generator().manual_seed(n)
        items = torch.randn(args.batch, n, FEATURES, generator=gen, dtype=dtype)
        targets = torch.randn(args.batch, n, generator=gen, dtype=dtype)
        perm = torch.argsort(targets, dim=-1, stable=True)
        Q = torch.nn.functional.one_hot(perm, n).transpose(-2, -1).to(dtype)
        ms, first_loss = {}, {}
        for kind in kinds:
            torch.manual_seed(0)
            model = torch.nn.Linear(FEATURES, 1).to(dtype)
            step = make_step(kind, n, model, torch.optim.SGD(model.parameters(), lr=1e-3))
            first_loss[kind] = step(items, targets, Q)  # same initial model: same loss
            ms[kind] = time_step(step, (items, targets, Q), args.seconds)
        diff = max(abs(first_loss[k] - first_loss["diffsort"]) for k in kinds)
        print("| %d | %.3f | %.3f | %.3f | %.2f | %.2f | %.1e |" % (
            n, ms["diffsort"], ms["drop-in"], ms["fused"], ms["diffsort"] / ms["drop-in"],
            ms["diffsort"] / ms["fused"], diff))


if __name__ == "__main__":
    main()
