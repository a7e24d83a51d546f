#!/usr/bin/python3
"""bench_core_torch.py - the PyTorch side of bench_core (b): one forward + backward +
Adam step of the MNIST CNN (conv5x5x32-pool-conv5x5x64-pool-fc64-fc10) at batch 64 in
float32 on random inputs, median of N runs, with the same thread count.

usage: /usr/bin/python3 experiments/bench_core_torch.py [--threads T] [--runs N] [--batch B]
(Debian's python3-torch.)"""
import argparse
import statistics
import time

import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(1024, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(args.batch, 1, 28, 28)
    y = torch.randint(0, 10, (args.batch,))
    times = []
    for r in range(-3, args.runs):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if r >= 0:
            times.append(time.perf_counter() - t0)
    print("PyTorch %s MNIST CNN forward+backward+Adam step, batch %d, F32, %d threads: "
          "%.2f ms (median of %d)" % (torch.__version__, args.batch, args.threads,
                                      1e3 * statistics.median(times), args.runs))


if __name__ == "__main__":
    main()
