#!/usr/bin/python3
"""bench_sort_torch.py - the PyTorch side of bench_sort: forward + backward time of every
ranking loss of losses/ranking.h, computed the way the public implementations do it, on
the same inputs as bench_sort (a shared 64-bit LCG: scores from seed 1000 + n, targets
from seed 2000 + n, uniform in [-1, 1)), same batch and parameters:

  odd_even:cauchy, bitonic:cauchy  diffsort's DiffSortNet: per layer, dense 0/1 split and
                      combine matrices applied with matmuls to the values and to the
                      relaxed permutation matrix; the BCE of torch.nn.BCELoss against
                      the true permutation matrix (see bce()) (steepness --steepness)
  neuralsort, softsort  relaxed permutation matrix as NeuralSort (Grover et al.) /
                      SoftSort (Prillo & Eisenschlos, |.|) with tau 1, cross-entropy of
                      each sorted position's column against the true input (log_softmax
                      over inputs, mean over batch and positions; losses/neuralsort.h)
  sinkhorn            squashing z = (x - mean) / sqrt(var + 1e-12), sigmoid; targets
                      j / (n - 1); log-domain Sinkhorn (torch.logsumexp), epsilon 0.1,
                      50 row + column updates; P = n exp(u + v - C / eps); BCE
                      (losses/sinkhorn.h)
  fast_soft_rank:l2   numpy, as google-research/fast-soft-sort's numpy_ops (no autograd):
                      ascending soft ranks by projection onto the permutahedron, solved
                      by pool-adjacent-violators in plain Python (numba is not in
                      Debian's torch setup), and its VJP from the PAV blocks; MSE
                      against the true 1-based ranks. Time = forward + VJP.

Every case reports the minimum wall time (time.perf_counter) and the minimum process CPU
time (time.process_time, all threads) over the timed runs (at least --runs of them and
--min-seconds long) after one warm-up (in --serve mode only the first request of a case
and thread count warms up), the loss, and grad_check = sum_k grad_k u_k (u: the LCG with seed 3000 + n), which bench_sort
compares with its own to 1e-8.

Two modes:
  standalone  /usr/bin/python3 experiments/bench_sort_torch.py [--threads 2] [--batch 128]
                [--sizes 4,8,16,32,64] [--methods LIST] [--dtype float64|float32|both]
                [--runs N] [--min-seconds S0] [--max-seconds S] [--out FILE.jsonl]
              prints a Markdown table (and JSON lines with --out);
  --serve     reads requests "METHOD N THREADS DTYPE RUNS MIN_SECONDS MAX_SECONDS" on
              stdin, one a line, and answers each with one JSON line on stdout
              (bench_sort --torch runs it so to interleave its runs with PyTorch's).
Sizes above a method's limit here (memory or time of the reference; see LIMITS) are
answered {"skipped": ...}. Uses Debian's python3-torch and python3-numpy only."""
import argparse
import json
import math
import sys
import time

import numpy as np
import torch

MASK64 = (1 << 64) - 1
METHODS = ["odd_even:cauchy", "bitonic:cauchy", "neuralsort", "softsort", "sinkhorn",
           "fast_soft_rank:l2"]
# largest n per method: dense diffsort matmuls grow as n^3 per layer, Sinkhorn keeps
# 100 [batch][n][n] tensors for backward, the PAV reference loops in Python
LIMITS = {"odd_even:cauchy": 64, "bitonic:cauchy": 128, "neuralsort": 256, "softsort": 256,
          "sinkhorn": 128, "fast_soft_rank:l2": 1024}
SINKHORN_EPSILON, SINKHORN_ITERATIONS, TAU = 0.1, 50, 1.0


def lcg_uniform(seed, count):
    """count values in [-1, 1) from the LCG bench_sort uses (state' = a state + c mod
    2^64, value = top 53 bits / 2^53)."""
    state, out = seed & MASK64, np.empty(count)
    for k in range(count):
        state = (state * 6364136223846793005 + 1442695040888963407) & MASK64
        out[k] = 2.0 * ((state >> 11) * (1.0 / 9007199254740992.0)) - 1.0
    return out


# ---- diffsort (sorting networks) ----

def odd_even_layers(n):
    """diffsort's odd-even network: per layer a list of comparators (a, b, weight,
    flip); a wire compared with itself is an identity comparator of weight 0.5."""
    layers = []
    for layer in range(n):
        comps = [(i, i + 1, 1.0) for i in range(layer % 2, n - 1, 2)]
        if n % 2 == 0 and layer % 2 == 1:
            comps += [(0, 0, 0.5), (n - 1, n - 1, 0.5)]
        elif n % 2 == 1:
            w = 0 if layer % 2 == 1 else n - 1
            comps.append((w, w, 0.5))
        layers.append([(a, b, wgt, False) for a, b, wgt in comps])
    return layers


def bitonic_layers(n):
    """diffsort's bitonic network for 2^ceil(log2 n) wires, lowest wires dropped."""
    blocks = math.ceil(math.log2(n))
    big = 1 << blocks
    off = big - n
    layers = []
    for blk in range(blocks):
        for lay in range(blk + 1):
            m = 1 << (blk - lay)
            comps = []
            for i in range(0, big, 2 * m):
                for j in range(m):
                    a, b = i + j, i + j + m
                    if a >= off and b >= off:
                        comps.append((a - off, b - off, 1.0, (a >> (blk + 1)) % 2 == 1))
                    elif a >= off or b >= off:
                        w = (a if a >= off else b) - off
                        comps.append((w, w, 0.5, False))
            layers.append(comps)
    return layers


def dense_matrices(layers, n, dtype):
    """per layer: split_a, split_b [k][n]; combine_min, combine_max [n][k]"""
    mats = []
    for comps in layers:
        k = len(comps)
        sa, sb = torch.zeros(k, n, dtype=dtype), torch.zeros(k, n, dtype=dtype)
        cmin, cmax = torch.zeros(n, k, dtype=dtype), torch.zeros(n, k, dtype=dtype)
        for c, (a, b, wgt, flip) in enumerate(comps):
            sa[c, a], sb[c, b] = 1, 1
            lo, hi = (b, a) if flip else (a, b)
            cmin[lo, c], cmax[hi, c] = wgt, wgt
        mats.append((sa, sb, cmin, cmax))
    return mats


def diffsort_forward(mats, x, steepness):
    """(sorted, P) with P[b][i][j] = weight of input i at ascending position j"""
    batch, n = x.shape
    X = torch.eye(n, dtype=x.dtype).repeat(batch, 1, 1)
    for sa, sb, cmin, cmax in mats:
        a, b = x @ sa.T, x @ sb.T
        alpha = torch.atan(steepness * (b - a)) / math.pi + 0.5
        aX, bX = X @ sa.T, X @ sb.T
        w_min = alpha.unsqueeze(-2) * aX + (1 - alpha).unsqueeze(-2) * bX
        w_max = (1 - alpha).unsqueeze(-2) * aX + alpha.unsqueeze(-2) * bX
        X = w_max @ cmax.T.unsqueeze(-3) + w_min @ cmin.T.unsqueeze(-3)
        x = (alpha * a + (1 - alpha) * b) @ cmin.T + ((1 - alpha) * a + alpha * b) @ cmax.T
    return x, X


def true_permutation(targets):
    """Q[b][i][j] = 1 iff input i has ascending rank j in targets[b] (ties by index)"""
    order = torch.sort(targets, dim=-1, stable=True).indices
    return torch.nn.functional.one_hot(order, targets.shape[-1]).transpose(-2, -1)


def bce(P, targets):
    """torch.nn.BCELoss()(P, Q) against the true permutation matrix Q, written with plain
    ops so that autograd gives its exact derivative: each log clamped at -100 (the
    clamped term a constant), as losses/ and refs/FORMAT.md grad_x_exact. (BCELoss's
    own backward divides by max(P (1 - P), 1e-12), which is not that derivative where
    P (1 - P) < 1e-12, e.g. at n >= 64.)"""
    Q = true_permutation(targets).bool()
    likelihood = torch.where(Q, P, 1 - P)
    return -torch.log(likelihood.clamp_min(math.exp(-100))).mean()


def sortnet_loss_fn(network, n, dtype, steepness):
    mats = dense_matrices(odd_even_layers(n) if network == "odd_even" else bitonic_layers(n),
                          n, dtype)

    def loss_fn(x, targets):
        _, P = diffsort_forward(mats, x, steepness)
        return bce(P, targets)
    return loss_fn


# ---- NeuralSort, SoftSort: column cross-entropy ----

def column_cross_entropy(logits, targets):
    """logits [b][i][j] of input i at ascending position j; mean over b, j of
    -log softmax_i(logits)[t_j][j], t_j = the input of ascending rank j"""
    order = torch.sort(targets, dim=-1, stable=True).indices
    log_p = torch.log_softmax(logits, dim=-2)
    return -log_p.gather(-2, order.unsqueeze(-2)).mean()


def neuralsort_loss(x, targets):
    n = x.shape[-1]
    spread = (x.unsqueeze(-1) - x.unsqueeze(-2)).abs().sum(-1)  # [b][i] sum_k |x_i - x_k|
    scaling = 2 * torch.arange(n, dtype=x.dtype) + 1 - n          # [j]
    logits = (x.unsqueeze(-1) * scaling - spread.unsqueeze(-1)) / TAU
    return column_cross_entropy(logits, targets)


def softsort_loss(x, targets):
    ascending = torch.sort(x, dim=-1).values
    logits = -(x.unsqueeze(-1) - ascending.unsqueeze(-2)).abs() / TAU
    return column_cross_entropy(logits, targets)


# ---- Sinkhorn ----

def sinkhorn_loss(x, targets):
    n = x.shape[-1]
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    xt = torch.sigmoid((x - mean) / torch.sqrt(var + 1e-12))
    y = torch.arange(n, dtype=x.dtype) / (n - 1)
    M = -(xt.unsqueeze(-1) - y) ** 2 / SINKHORN_EPSILON  # [b][i][j]
    log_a = -math.log(n)
    u, v = torch.zeros_like(x), torch.zeros_like(x)
    for _ in range(SINKHORN_ITERATIONS):
        u = log_a - torch.logsumexp(v.unsqueeze(-2) + M, dim=-1)
        v = log_a - torch.logsumexp(u.unsqueeze(-1) + M, dim=-2)
    P = n * torch.exp(u.unsqueeze(-1) + v.unsqueeze(-2) + M)
    return bce(P, targets)


# ---- fast soft rank (numpy, forward + VJP) ----

def pav_nonincreasing(y):
    """argmin_{v_1 >= ... >= v_n} ||v - y||^2 by pool-adjacent-violators: a stack of
    blocks (sum, count), a new element merges with the blocks before it while their
    mean does not exceed its block's mean."""
    sums, counts = [], []
    for value in y.tolist():
        s, c = value, 1
        while sums and sums[-1] * c <= s * counts[-1]:
            s += sums.pop()
            c += counts.pop()
        sums.append(s)
        counts.append(c)
    return np.repeat(np.array(sums) / np.array(counts), counts)


def soft_rank_l2(x, strength):
    """ascending soft ranks of one row (numpy_ops SoftRank, l2): project x / strength
    onto the permutahedron of w = (n, ..., 1). Returns the ranks and a vjp function."""
    n = len(x)
    theta = x / strength
    perm = np.argsort(theta)[::-1]
    s = theta[perm]
    dual = pav_nonincreasing(s - np.arange(n, 0, -1))
    ranks = np.empty(n)
    ranks[perm] = s - dual
    starts = np.concatenate(([0], np.nonzero(np.abs(np.diff(dual)) > 1e-9)[0] + 1))
    sizes = np.diff(np.append(starts, n))

    def vjp(cot):
        block_mean = np.add.reduceat(cot[perm], starts) / sizes
        out = cot.copy()
        out[perm] -= np.repeat(block_mean, sizes)
        return out / strength
    return ranks, vjp


def fast_soft_rank_step(x, targets, strength=1.0):
    """MSE between soft ranks and true 1-based ranks, mean over the batch and n, and its
    gradient: per row forward + VJP as fast-soft-sort's pytorch_ops maps numpy_ops"""
    batch, n = x.shape
    true_rank = np.empty((batch, n))
    np.put_along_axis(true_rank, np.argsort(targets, axis=-1, kind="stable"),
                      np.arange(1, n + 1, dtype=float)[None, :], axis=-1)
    grad, loss = np.empty((batch, n)), 0.0
    scale = 1.0 / (batch * n)
    for b in range(batch):
        ranks, vjp = soft_rank_l2(x[b], strength)
        diff = ranks - true_rank[b]
        loss += float(diff @ diff)
        grad[b] = vjp(2.0 * scale * diff)
    return loss * scale, grad


# ---- timing ----

def make_step(method, n, batch, dtype, steepness):
    """a closure: one forward + backward on the shared inputs -> (loss, grad [batch*n])"""
    x0 = lcg_uniform(1000 + n, batch * n).reshape(batch, n)
    t0 = lcg_uniform(2000 + n, batch * n).reshape(batch, n)
    if method == "fast_soft_rank:l2":
        return lambda: fast_soft_rank_step(x0, t0)
    if method in ("odd_even:cauchy", "bitonic:cauchy"):
        loss_fn = sortnet_loss_fn(method.split(":")[0], n, dtype, steepness)
    else:
        loss_fn = {"neuralsort": neuralsort_loss, "softsort": softsort_loss,
                   "sinkhorn": sinkhorn_loss}[method]
    xt, tt = torch.tensor(x0, dtype=dtype), torch.tensor(t0, dtype=dtype)

    def step():
        x = xt.clone().requires_grad_(True)
        loss = loss_fn(x, tt)
        loss.backward()
        return loss.item(), x.grad.numpy()
    return step


def bench_case(method, n, batch, dtype_name, steepness, runs, min_seconds, max_seconds,
               steps):
    """one JSON-ready dict: min wall / cpu ms over the timed runs, loss, grad_check.
    steps caches the closures of the cases seen before: a new case (or thread count)
    gets one warm-up run, a repeated one (the next round of bench_sort) none."""
    key = {"method": method, "n": n, "dtype": dtype_name, "batch": batch,
           "threads": torch.get_num_threads()}
    if method not in LIMITS:
        return dict(key, skipped="unknown method")
    if n > LIMITS[method]:
        return dict(key, skipped="n above this reference's limit %d" % LIMITS[method])
    if method == "fast_soft_rank:l2" and dtype_name != "float64":
        return dict(key, skipped="numpy reference in float64 only")
    cache_key = (method, n, dtype_name, key["threads"])
    if cache_key not in steps:
        steps[cache_key] = make_step(method, n, batch, getattr(torch, dtype_name), steepness)
        steps[cache_key]()  # warm-up
    step = steps[cache_key]
    walls, cpus, start = [], [], time.perf_counter()
    while ((len(walls) < runs or time.perf_counter() - start < min_seconds)
           and (not walls or time.perf_counter() - start < max_seconds)):
        w0, c0 = time.perf_counter(), time.process_time()
        loss, grad = step()
        cpus.append(time.process_time() - c0)
        walls.append(time.perf_counter() - w0)
    u = lcg_uniform(3000 + n, batch * n)
    return dict(key, wall_ms=1e3 * min(walls), cpu_ms=1e3 * min(cpus), loss=loss,
                grad_check=float(np.asarray(grad, dtype=float).reshape(-1) @ u),
                runs=len(walls))


def serve(args):
    """answer bench_sort's requests, one JSON line each"""
    steps = {}
    for line in sys.stdin:
        fields = line.split()
        if not fields:
            continue
        method, n, threads, dtype, runs, min_seconds, max_seconds = fields
        torch.set_num_threads(int(threads))
        try:
            res = bench_case(method, int(n), args.batch, dtype, args.steepness, int(runs),
                             float(min_seconds), float(max_seconds), steps)
        except Exception as e:  # report, keep serving
            res = {"method": method, "n": int(n), "dtype": dtype, "error": repr(e)}
        sys.stdout.write(json.dumps(res) + "\n")
        sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--sizes", default="4,8,16,32,64")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32", "both"])
    ap.add_argument("--steepness", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--min-seconds", type=float, default=0.5,
                    help="repeat a case for at least this long (and --runs times)")
    ap.add_argument("--max-seconds", type=float, default=20.0,
                    help="start no run of a case after this long (at least one timed run)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--serve", action="store_true",
                    help="answer requests on stdin (used by bench_sort --torch)")
    args = ap.parse_args()
    if args.serve:
        serve(args)
        return
    torch.set_num_threads(args.threads)
    dtypes = ["float64", "float32"] if args.dtype == "both" else [args.dtype]
    out = open(args.out, "w") if args.out else None
    print("PyTorch %s, numpy %s, %d threads, batch %d, cauchy steepness %g"
          % (torch.__version__, np.__version__, args.threads, args.batch, args.steepness))
    print("| method | n | dtype | wall ms | cpu ms | loss | runs |")
    print("|---|---|---|---|---|---|---|")
    for method in args.methods.split(","):
        for n in [int(s) for s in args.sizes.split(",")]:
            for dt in dtypes:
                r = bench_case(method, n, args.batch, dt, args.steepness, args.runs,
                               args.min_seconds, args.max_seconds, {})
                if "skipped" in r:
                    continue
                print("| %s | %d | %s | %.3f | %.3f | %.12g | %d |"
                      % (method, n, dt, r["wall_ms"], r["cpu_ms"], r["loss"], r["runs"]))
                sys.stdout.flush()
                if out:
                    out.write(json.dumps(r) + "\n")
                    out.flush()
    if out:
        out.close()


if __name__ == "__main__":
    main()
