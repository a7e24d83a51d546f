"""diffalg - differentiable algorithm losses from Python (NumPy in and out).

A pure-Python face of libdiffalg's plain-array API (DESIGN.md §4) through ctypes: no
compiled extension, only NumPy. The C library is found through DIFFALG_LIB, the libdir
recorded by `make install`, pkg-config or the dynamic linker (see diffalg._lib), or
loaded explicitly with diffalg.load_library(path).

Arrays: float32 or float64, C-contiguous (checked: DiffalgError otherwise), batched over
any leading dimensions; results have the input's dtype (computed in double). Every C
error code raises DiffalgError with .code, .status ("DA_ENAN", ...) and .message
(da_last_error()).

    import numpy as np, diffalg
    net = diffalg.SortNet("odd_even", 5, "cauchy", steepness=10)
    sorted_x, P = net.apply(x)                 # x [batch, 5]
    loss, grad_x = net.loss(x, targets)

PyTorch wrappers (autograd Functions whose backward is the C vector-Jacobian product)
live in diffalg.torch (needs Debian's python3-torch)."""
from ._lib import DiffalgError, load_library
from .sorting import (SortNet, TopKCrossEntropy, NeuralSort, SoftSort, SinkhornSort, Ranking,
                      soft_rank, soft_rank_vjp, soft_sort, soft_sort_vjp, fast_soft_rank_loss,
                      perm_desc_rows_to_diffalg, perm_diffalg_to_desc_rows)
from .smooth import Rng, Smoothing, smooth_jacobian, smooth_hessian
from .paths import (sp_dijkstra, sp_blackbox_grad, sp_hamming_loss, sp_blackbox_loss,
                    RelaxedShortestPath, PerturbedShortestPath, sp_smooth_path, sp_smooth_loss,
                    sp_smooth_solver_loss, sp_metrics)
from .logic import (logic_gate, logic_layer, logic_layer_vjp, random_connections, group_sum,
                    group_sum_vjp)
from .optim import (newton_hessian_step, newton_fisher_step, inject_fisher_grad,
                    precond_linear_grad, tract_linear_grad, isaac_linear_grad,
                    precond_conv2d_grad)

__version__ = "0.1.0"

__all__ = [
    "DiffalgError", "load_library",
    "SortNet", "TopKCrossEntropy", "NeuralSort", "SoftSort", "SinkhornSort", "Ranking",
    "soft_rank", "soft_rank_vjp", "soft_sort", "soft_sort_vjp", "fast_soft_rank_loss",
    "perm_desc_rows_to_diffalg", "perm_diffalg_to_desc_rows",
    "Rng", "Smoothing", "smooth_jacobian", "smooth_hessian",
    "sp_dijkstra", "sp_blackbox_grad", "sp_hamming_loss", "sp_blackbox_loss",
    "RelaxedShortestPath", "PerturbedShortestPath", "sp_smooth_path", "sp_smooth_loss",
    "sp_smooth_solver_loss", "sp_metrics",
    "logic_gate", "logic_layer", "logic_layer_vjp", "random_connections", "group_sum",
    "group_sum_vjp",
    "newton_hessian_step", "newton_fisher_step", "inject_fisher_grad",
    "precond_linear_grad", "tract_linear_grad", "isaac_linear_grad", "precond_conv2d_grad",
]
