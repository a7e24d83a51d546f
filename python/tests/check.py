"""check.py - central finite differences in double for the Python tests."""
import numpy as np


def sym_rel_err(a, b):
    """max|a - b| / max(max|a|, max|b|) (the C tests' symmetric relative error)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.max(np.abs(a - b)) / max(np.max(np.abs(a)), np.max(np.abs(b)), 1e-300)


def fd_grad(f, x, h=1e-6):
    """Central differences of the scalar f at x (float64), step h max(1, |x_i|)."""
    x = np.array(x, dtype=np.float64)
    g = np.empty_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        step, keep = h * max(1.0, abs(flat[i])), flat[i]
        flat[i] = keep + step
        up = f(x)
        flat[i] = keep - step
        down = f(x)
        flat[i] = keep
        gflat[i] = (up - down) / (2 * step)
    return g


def rand(rng, *shape):
    return rng.standard_normal(shape)
