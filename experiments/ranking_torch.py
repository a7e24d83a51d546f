#!/usr/bin/python3
"""ranking_torch.py - the PyTorch side of experiments/ranking: diffsort's multi-digit MNIST
sorting experiment (Petersen et al., ICML 2021 §5.1) on this project's digits.

Setup of diffsort's experiments/main.py: sets of n four-digit numbers, each rendered as
four MNIST digits side by side (1 x 28 x 112, gray levels in [0, 1]); the CNN
conv 5x5x32 - relu - maxpool 2 - conv 5x5x64 - relu - maxpool 2 - fc 64 - relu - fc 1
(one score per number; zero padding 2, 'same' convolutions, as diffsort's
models.MultiDigitMNISTNet and the C program); the odd-even sorting network with the
Cauchy sigmoid, alpha = atan(s (b - a)) / pi + 1/2, steepness s (diffsort's functional.py);
loss: binary cross-entropy between the relaxed permutation matrix P [b][i][j] (weight of
input i at ascending position j) and the true one, mean over all entries; Adam, lr 10^-3.5.
The formulas are reimplemented here (comparator by comparator) rather than imported.

Data as the C program: the 10,000 digits of data/ are split 8,000 train / 2,000 test
(numpy permutation of --split-seed; not the C split bit for bit), training sets are drawn
afresh each step from the train digits, the --test-sets fixed test sets from the test
digits. Metrics (diffsort's): exact match, element-wise accuracy, exact match of the first
5, from stable argsorts.

Timing: each training step (drawing and rendering the batch, forward, backward, Adam)
is timed; evaluation is excluded. The last line reports ms/step.

usage: /usr/bin/python3 experiments/ranking_torch.py [--n 5] [--batch 25] [--steps 30]
       [--threads 2] [--eval-every K] [--test-sets 1000] [--seed 0]
(Debian's python3-torch; nothing else is installed.)"""
import argparse
import gzip
import json
import math
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

DIGITS = 4


def load_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


class DigitPool:
    """the images of each digit class among the given indices"""

    def __init__(self, images, labels, idx):
        self.images = images
        self.by_class = [idx[labels[idx] == d] for d in range(10)]

    def draw(self, rng, count, n):
        """count sets of n numbers: values [count][n], items [count*n][1][28][112]"""
        values = rng.integers(0, 10000, size=(count, n))
        items = np.empty((count * n, 1, 28, 28 * DIGITS), dtype=np.float32)
        flat = values.reshape(-1)
        for d in range(DIGITS):
            digit = (flat // 10 ** (DIGITS - 1 - d)) % 10
            for c in range(10):
                rows = np.nonzero(digit == c)[0]
                pick = self.by_class[c][rng.integers(0, len(self.by_class[c]), len(rows))]
                items[rows, 0, :, 28 * d:28 * (d + 1)] = self.images[pick]
        return values.astype(np.float64), torch.from_numpy(items)


class RankingCNN(torch.nn.Module):
    def __init__(self, pad):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 32, 5, 1, pad)
        self.conv2 = torch.nn.Conv2d(32, 64, 5, 1, pad)
        h, w = 28, 28 * DIGITS
        for _ in range(2):
            h, w = (h + 2 * pad - 4) // 2, (w + 2 * pad - 4) // 2
        self.fc1 = torch.nn.Linear(64 * h * w, 64)
        self.fc2 = torch.nn.Linear(64, 1)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2, 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2, 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def odd_even_layers(n):
    """comparators (a, a + 1) of each of the n layers of the odd-even transposition network"""
    return [list(range(layer % 2, n - 1, 2)) for layer in range(n)]


def soft_sort(layers, x, steepness):
    """diffsort's relaxed odd-even sort with the Cauchy sigmoid: soft swap of the values
    and of the columns of P (P starts as the identity); returns P [b][n][n]"""
    batch, n = x.shape
    P = torch.eye(n, dtype=x.dtype).repeat(batch, 1, 1)
    for comps in layers:
        ia = torch.tensor(comps)
        ib = ia + 1
        a, b = x[:, ia], x[:, ib]
        alpha = torch.atan(steepness * (b - a)) / math.pi + 0.5
        x = x.clone()
        x[:, ia] = alpha * a + (1 - alpha) * b
        x[:, ib] = (1 - alpha) * a + alpha * b
        pa, pb = P[:, :, ia], P[:, :, ib]
        al = alpha.unsqueeze(1)
        P = P.clone()
        P[:, :, ia] = al * pa + (1 - al) * pb
        P[:, :, ib] = (1 - al) * pa + al * pb
    return P


def true_permutation(values):
    """P*[b][i][j] = 1 if input i is at ascending position j (stable)"""
    order = torch.argsort(values, dim=-1, stable=True)
    return F.one_hot(order, values.shape[1]).transpose(-2, -1).to(torch.float32)


def accuracy(model, test_values, test_items, n):
    model.eval()
    with torch.no_grad():
        scores = torch.cat([model(test_items[i:i + 500]) for i in range(0, len(test_items), 500)])
    model.train()
    scores = scores.reshape(-1, n).double()
    targets = torch.from_numpy(test_values)

    def same(s, t):
        return torch.argsort(s, dim=-1, stable=True) == torch.argsort(t, dim=-1, stable=True)

    hit = same(scores, targets)
    hit5 = same(scores[:, :5], targets[:, :5])
    return (hit.all(-1).double().mean().item(), hit.double().mean().item(),
            hit5.all(-1).double().mean().item())


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--batch", type=int, default=25)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-every", type=int, default=0,
                    help="evaluate every K steps and at the end (0: only time, no evaluation)")
    ap.add_argument("--test-sets", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--steepness", type=float, default=10.0)
    ap.add_argument("--lr", type=float, default=10 ** -3.5)
    ap.add_argument("--data", default=os.path.join(here, "..", "data"))
    ap.add_argument("--out", help="append one JSON line per evaluation to this file")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    images = load_idx(os.path.join(args.data, "mnist-images-idx3-ubyte.gz")).astype(np.float32) / 255
    labels = load_idx(os.path.join(args.data, "mnist-labels-idx1-ubyte.gz")).astype(np.int64)
    perm = np.random.default_rng(args.split_seed).permutation(len(images))
    train = DigitPool(images, labels, np.sort(perm[:8000]))
    test = DigitPool(images, labels, np.sort(perm[8000:10000]))
    test_values, test_items = test.draw(np.random.default_rng(args.split_seed + 1),
                                        args.test_sets, args.n)
    rng = np.random.default_rng(args.seed)

    model = RankingCNN(pad=2)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    layers = odd_even_layers(args.n)
    out = open(args.out, "a") if args.out else None
    times, cpu, loss_sum, loss_count = [], [], 0.0, 0
    for step in range(1, args.steps + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        values, items = train.draw(rng, args.batch, args.n)
        scores = model(items).reshape(args.batch, args.n)
        P = soft_sort(layers, scores, args.steepness)
        loss = F.binary_cross_entropy(P, true_permutation(torch.from_numpy(values)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        loss_sum += loss.item()
        loss_count += 1
        if args.eval_every and (step % args.eval_every == 0 or step == args.steps):
            em, ew, em5 = accuracy(model, test_values, test_items, args.n)
            line = dict(step=step, train_loss=loss_sum / loss_count, test_em=em, test_ew=ew,
                        test_em5=em5)
            print(json.dumps(line), flush=True)
            if out:
                out.write(json.dumps(line) + "\n")
            loss_sum, loss_count = 0.0, 0
    if out:
        out.close()
    warm = times[3:] if len(times) > 3 else times
    print("PyTorch %s ranking, n %d, batch %d sets, %d steps, %d threads: "
          "%.1f ms/step (mean of all steps), %.1f ms/step (mean after 3), %.1f ms median, "
          "%.1f ms cpu/step" % (torch.__version__, args.n, args.batch, args.steps,
                                args.threads, 1e3 * statistics.mean(times),
                                1e3 * statistics.mean(warm), 1e3 * statistics.median(times),
                                1e3 * statistics.mean(cpu)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
