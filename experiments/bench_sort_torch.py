#!/usr/bin/python3
"""bench_sort_torch.py - the PyTorch side of bench_sort: forward + backward time of the
differentiable sorting network ranking loss as diffsort computes it (DiffSortNet:
per layer, dense 0/1 split and combine matrices applied with matmuls to the values and
to the relaxed permutation matrix; torch.nn.BCELoss against the true permutation
matrix; loss.backward()). Same inputs as bench_sort (a shared 64-bit LCG), same
sigmoid (cauchy), steepness and batch. Writes one JSON line per case (method, n, dtype,
ms, loss) that `bench_sort --torch FILE` turns into the ratio table; the loss printed
by both programs must agree (same inputs, same math).

usage: /usr/bin/python3 experiments/bench_sort_torch.py [--threads 2] [--batch 128]
          [--sizes 4,8,16,32,64] [--dtype float64|float32|both] [--runs N]
          [--max-seconds S] [--out FILE.jsonl]
(Debian's python3-torch.)"""
import argparse
import json
import math
import statistics
import sys
import time

import torch

MASK64 = (1 << 64) - 1


def lcg_uniform(seed, count):
    """count values in [-1, 1) from the LCG bench_sort uses (state' = a state + c mod
    2^64, value = top 53 bits / 2^53)."""
    state, out = seed & MASK64, []
    for _ in range(count):
        state = (state * 6364136223846793005 + 1442695040888963407) & MASK64
        out.append(2.0 * ((state >> 11) * (1.0 / 9007199254740992.0)) - 1.0)
    return out


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


def bench_case(network, n, batch, dtype, steepness, runs, max_seconds):
    layers = odd_even_layers(n) if network == "odd_even" else bitonic_layers(n)
    mats = dense_matrices(layers, n, dtype)
    x0 = torch.tensor(lcg_uniform(1000 + n, batch * n), dtype=dtype).reshape(batch, n)
    targets = torch.tensor(lcg_uniform(2000 + n, batch * n), dtype=dtype).reshape(batch, n)
    Q = torch.nn.functional.one_hot(torch.argsort(targets, dim=-1), n).transpose(-2, -1)
    Q = Q.to(dtype)
    bce = torch.nn.BCELoss()
    times, loss_value, start = [], None, time.perf_counter()
    for r in range(-1, runs):
        x = x0.clone().requires_grad_(True)
        t0 = time.perf_counter()
        _, P = diffsort_forward(mats, x, steepness)
        loss = bce(P, Q)
        loss.backward()
        dt = time.perf_counter() - t0
        loss_value = loss.item()
        if r >= 0:
            times.append(dt)
        if time.perf_counter() - start > max_seconds and times:
            break
    return 1e3 * statistics.median(times), loss_value, len(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--sizes", default="4,8,16,32,64")
    ap.add_argument("--networks", default="odd_even,bitonic")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32", "both"])
    ap.add_argument("--steepness", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--max-seconds", type=float, default=20.0,
                    help="stop repeating a case after this long (at least one timed run)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtypes = ["float64", "float32"] if args.dtype == "both" else [args.dtype]
    out = open(args.out, "w") if args.out else None
    print("PyTorch %s, %d threads, batch %d, cauchy, steepness %g"
          % (torch.__version__, args.threads, args.batch, args.steepness))
    print("| method | n | dtype | fwd+bwd ms | loss | runs |")
    print("|---|---|---|---|---|---|")
    for network in args.networks.split(","):
        for n in [int(s) for s in args.sizes.split(",")]:
            for dt in dtypes:
                ms, loss, runs = bench_case(network, n, args.batch, getattr(torch, dt),
                                            args.steepness, args.runs, args.max_seconds)
                method = "diffsort_" + network
                print("| %s | %d | %s | %.3f | %.12g | %d |" % (method, n, dt, ms, loss, runs))
                sys.stdout.flush()
                if out:
                    out.write(json.dumps({"method": method, "n": n, "dtype": dt,
                                          "batch": args.batch, "threads": args.threads,
                                          "ms": ms, "loss": loss}) + "\n")
                    out.flush()
    if out:
        out.close()


if __name__ == "__main__":
    main()
