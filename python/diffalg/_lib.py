"""_lib.py - loading libdiffalg with ctypes, the C prototypes, errors and array checks.

The library is found, in this order, at
  1. the path given to diffalg.load_library(path),
  2. the environment variable DIFFALG_LIB (e.g. the build tree's .libs/libdiffalg.so),
  3. the libdir recorded by `make install` (diffalg/_config.py),
  4. `pkg-config --variable=libdir diffalg`,
  5. the dynamic linker's search path (ctypes.util.find_library).
It is loaded on the first call that needs it.

Every C entry point returns DA_OK (0) or an error code; check() turns a code into a
DiffalgError carrying da_last_error() (the message is thread-local in C, and ctypes
calls run on the calling thread, so it is the message of this call)."""
import ctypes
import ctypes.util
import os
import subprocess

import numpy as np

c_int, c_double, c_ulong = ctypes.c_int, ctypes.c_double, ctypes.c_ulong
c_void_p, c_char_p = ctypes.c_void_p, ctypes.c_char_p

STATUS = ["DA_OK", "DA_EINVAL", "DA_ESHAPE", "DA_EDTYPE", "DA_ERANGE", "DA_ENAN",
          "DA_ENOMEM", "DA_EIO", "DA_EFORMAT", "DA_ENUMERIC", "DA_ESTATE"]
EINVAL, ESHAPE, EDTYPE, ERANGE = 1, 2, 3, 4
INT_MAX = 2**31 - 1


class DiffalgError(Exception):
    """An error reported by libdiffalg (or found by the Python face before the call).
    code: the da_status value, status: its name ("DA_ENAN", ...), message: the text of
    da_last_error() for errors from the library."""

    def __init__(self, code, message):
        self.code = int(code)
        self.status = STATUS[self.code] if 0 <= self.code < len(STATUS) else "DA_E?"
        self.message = message
        # da_last_error() messages already start with the status name
        super().__init__(message if message.startswith(self.status)
                         else "%s: %s" % (self.status, message))


# ---------------------------------------------------------------- C structures
class TopkCeCfg(ctypes.Structure):
    _fields_ = [("net", c_void_p), ("n_classes", c_int), ("m", c_int), ("k", c_int),
                ("p_k", c_void_p), ("top1_mode", c_int)]


class TauCfg(ctypes.Structure):  # da_neuralsort_cfg and da_softsort_cfg
    _fields_ = [("n", c_int), ("tau", c_double)]


class SinkhornCfg(ctypes.Structure):
    _fields_ = [("n", c_int), ("epsilon", c_double), ("iterations", c_int)]


class FastSoftRankCfg(ctypes.Structure):
    _fields_ = [("n", c_int), ("reg", c_int), ("strength", c_double)]


class SpBlackboxCfg(ctypes.Structure):
    _fields_ = [("lam", c_double)]


class SpRelaxedCfg(ctypes.Structure):
    _fields_ = [("beta", c_double), ("n_iter", c_int), ("loop", c_int), ("tconorm", c_int),
                ("hamacher_p", c_double), ("max_iter", c_int), ("epsilon", c_double),
                ("stop_at_source", c_int), ("norm", c_int)]


class SpPerturbedCfg(ctypes.Structure):
    _fields_ = [("noise", c_int), ("sigma", c_double), ("n_samples", c_int)]


class SpMetrics(ctypes.Structure):
    _fields_ = [("exact_match", c_double), ("cost_ratio", c_double), ("hamming", c_double)]


class SmoothCfg(ctypes.Structure):
    _fields_ = [("dist", c_int), ("sampling", c_int), ("cv", c_int), ("antithetic", c_int),
                ("samples", c_int), ("eps", c_double), ("eps_vec", c_void_p), ("L", c_void_p)]


# callbacks: da_blackbox_fn(user, n, x, m, y) and da_sp_solver_fn(user, n, cost, y)
BLACKBOX_FN = ctypes.CFUNCTYPE(c_int, c_void_p, c_int, ctypes.POINTER(c_double), c_int,
                               ctypes.POINTER(c_double))
SOLVER_FN = ctypes.CFUNCTYPE(c_int, c_void_p, c_int, ctypes.POINTER(c_double),
                             ctypes.POINTER(c_double))

P, I, D = c_void_p, c_int, c_double
# name: (restype, argtypes); every pointer is passed as an address (or None for NULL)
PROTOTYPES = {
    "da_last_error": (c_char_p, []),
    "da_last_error_code": (I, []),
    "da_clear_error": (None, []),
    "da_rng_new": (P, [c_ulong]),
    "da_rng_free": (None, [P]),
    "da_rng_state_size": (ctypes.c_size_t, [P]),
    "da_rng_state_save": (None, [P, P]),
    "da_rng_state_load": (None, [P, P]),
    # sorting networks and top-k
    "da_sortnet_new": (P, [I, I, I, D, D]),
    "da_sortnet_free": (None, [P]),
    "da_sortnet_size": (I, [P]),
    "da_sortnet_layers": (I, [P]),
    "da_sortnet_apply": (I, [P, I, P, P, P]),
    "da_sortnet_vjp": (I, [P, I, P, P, P, P]),
    "da_sortnet_loss": (I, [P, I, P, P, P, P]),
    "da_sortnet_loss_hessian": (I, [P, I, P, P, P]),
    "da_sortnet_loss_hvp": (I, [P, I, P, P, P, P]),
    "da_topk": (I, [P, I, I, P, P, P, P]),
    "da_topk_ce_loss": (I, [P, I, P, P, P, P]),
    # NeuralSort, SoftSort, orientation conversions
    "da_neuralsort_apply": (I, [P, I, P, P, P, P]),
    "da_neuralsort_loss": (I, [P, I, P, P, P, P]),
    "da_neuralsort_hessian": (I, [P, I, P, P, P]),
    "da_softsort_apply": (I, [P, I, P, P, P, P]),
    "da_softsort_loss": (I, [P, I, P, P, P, P]),
    "da_softsort_hessian": (I, [P, I, P, P, P]),
    "da_perm_desc_rows_to_diffalg": (I, [I, I, P, P]),
    "da_perm_diffalg_to_desc_rows": (I, [I, I, P, P]),
    # Sinkhorn, PAV
    "da_sinkhorn_sort": (I, [P, I, P, P, P, P, P, P, P, P]),
    "da_sinkhorn_loss": (I, [P, I, P, P, P, P]),
    "da_soft_rank": (I, [I, I, P, I, I, D, P, P, P]),
    "da_soft_sort": (I, [I, I, P, I, I, D, P, P, P]),
    "da_fast_soft_rank_loss": (I, [P, I, P, P, P, P]),
    # ranking losses by spec
    "da_ranking_new": (P, [c_char_p, I]),
    "da_ranking_free": (None, [P]),
    "da_ranking_n": (I, [P]),
    "da_ranking_spec": (c_char_p, [P]),
    "da_ranking_loss": (I, [P, I, P, P, P, P]),
    "da_ranking_hessian": (I, [P, I, P, P, P, P]),
    # shortest paths
    "da_sp_dijkstra": (I, [I, I, I, P, P, P]),
    "da_sp_blackbox_grad": (I, [I, I, I, P, P, D, P]),
    "da_sp_hamming_loss": (I, [I, I, I, P, P, P, P]),
    "da_sp_blackbox_loss": (I, [P, I, I, I, P, P, P, P]),
    "da_sp_relaxed_default": (SpRelaxedCfg, [I, I]),
    "da_sp_relaxed_path": (I, [P, I, I, I, P, P, P, P]),
    "da_sp_relaxed_loss": (I, [P, I, I, I, P, P, P, P]),
    "da_sp_perturbed": (I, [P, P, I, I, I, P, P, P, P]),
    "da_sp_fy_loss": (I, [P, P, I, I, I, P, P, P, P]),
    "da_sp_smooth_path": (I, [P, P, I, I, I, P, P, P, P]),
    "da_sp_smooth_loss": (I, [P, P, I, I, I, P, P, P, P, P]),
    "da_sp_metrics_eval": (I, [I, I, I, P, P, P, P]),
    "da_sp_smooth_solver_loss": (I, [P, P, I, I, SOLVER_FN, P, P, P, P, P, P]),
    # stochastic smoothing
    "da_smooth_cfg_default": (None, [P]),
    "da_smooth_plan": (I, [P, I, P, P]),
    "da_smooth_jacobian": (I, [P, BLACKBOX_FN, P, I, I, P, P, P, P]),
    "da_smooth_hessian": (I, [P, BLACKBOX_FN, P, I, P, P, P, P, P]),
    "da_sampling_parse": (I, [c_char_p, P]),
    "da_dist_parse": (I, [c_char_p, P]),
    # logic gate layers
    "da_logic_gate": (D, [I, D, D]),
    "da_logic_layer_forward": (I, [I, I, I, P, P, P, P, I, P]),
    "da_logic_layer_backward": (I, [I, I, I, P, P, P, P, I, P, P, P]),
    "da_logic_group_sum": (I, [I, I, I, D, P, P]),
    "da_logic_group_sum_backward": (I, [I, I, I, D, P, P]),
    "da_logic_connections_random": (I, [P, I, I, P, P]),
    # Newton losses, TrAct / ISAAC
    "da_newton_hessian_step": (I, [I, I, P, P, P, D, P, P, P]),
    "da_newton_fisher_step": (I, [I, I, P, P, D, P, P, P]),
    "da_tract_linear_grad": (I, [I, I, I, P, P, D, P]),
    "da_isaac_linear_grad": (I, [I, I, I, P, P, D, P]),
    "da_precond_linear_grad": (I, [I, I, I, I, I, P, P, D, P]),
    "da_precond_conv2d_grad": (I, [I, I, I, I, I, I, I, I, I, I, P, P, D, P]),
}

_lib = None


def _candidates():
    env = os.environ.get("DIFFALG_LIB")
    if env:
        yield env
    try:
        from . import _config  # written by `make install`
        yield os.path.join(_config.LIBDIR, "libdiffalg.so.0")
    except ImportError:
        pass
    try:
        libdir = subprocess.run(["pkg-config", "--variable=libdir", "diffalg"],
                                capture_output=True, text=True, check=True).stdout.strip()
        if libdir:
            yield os.path.join(libdir, "libdiffalg.so.0")
    except (OSError, subprocess.CalledProcessError):
        pass
    found = ctypes.util.find_library("diffalg")
    if found:
        yield found


def load_library(path=None):
    """Load libdiffalg (from path if given, else see the module docstring) and declare
    its prototypes. Returns the ctypes handle; later calls return the same one unless
    a path is given."""
    global _lib
    if _lib is not None and path is None:
        return _lib
    tried = []
    for cand in ([path] if path is not None else _candidates()):
        try:
            lib = ctypes.CDLL(cand)
        except OSError as e:
            tried.append("%s (%s)" % (cand, e))
            continue
        for name, (restype, argtypes) in PROTOTYPES.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
        _lib = lib
        return lib
    raise OSError("libdiffalg not found; tried: %s. Set DIFFALG_LIB to the path of "
                  "libdiffalg.so or call diffalg.load_library(path)."
                  % ("; ".join(tried) or "nothing (no DIFFALG_LIB, pkg-config or ld path)"))


def lib():
    return _lib if _lib is not None else load_library()


def last_error():
    msg = lib().da_last_error()
    return msg.decode("utf-8", "replace") if msg else ""


def check(code):
    """Raise DiffalgError for a non-zero return code of a C call."""
    if code != 0:
        raise DiffalgError(code, last_error())


def check_ptr(ptr):
    """Raise DiffalgError for a NULL returned by a C constructor."""
    if not ptr:
        raise DiffalgError(lib().da_last_error_code() or EINVAL, last_error())
    return ptr


class Handle:
    """Owner of a C object freed by the function named `_free_name` (idempotent; the
    free function is kept so that objects collected at exit are still freed)."""
    _free_name = None
    _h = None

    def _own(self, handle):
        """Take ownership of the result of a C constructor (NULL: DiffalgError)."""
        self._free = getattr(lib(), self._free_name)
        self._h = check_ptr(handle)

    def close(self):
        if self._h:
            self._free(self._h)
            self._h = None

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------- arrays
def fail(code, fmt, *args):
    raise DiffalgError(code, fmt % args)


def as_input(a, name):
    """Check a NumPy input (float32 or float64, C-contiguous) and return it as a
    float64 array (a itself when it already is one; float32 is converted)."""
    if not isinstance(a, np.ndarray):
        fail(EDTYPE, "%s must be a numpy.ndarray, got %s", name, type(a).__name__)
    if a.dtype != np.float64 and a.dtype != np.float32:
        fail(EDTYPE, "%s must be float32 or float64, got %s", name, a.dtype)
    if not a.flags.c_contiguous:
        fail(ESHAPE, "%s must be C-contiguous (use numpy.ascontiguousarray)", name)
    return a if a.dtype == np.float64 else a.astype(np.float64)


def out_dtype(*arrays):
    """float32 when every given input is float32, else float64."""
    return np.float32 if all(a.dtype == np.float32 for a in arrays) else np.float64


def ptr(a):
    """Address of a float64/int32 array's data, or None (NULL)."""
    return None if a is None else a.ctypes.data


def rows(x, name, n=None, min_ndim=1):
    """x [..., n] -> (float64 array, batch, n, leading shape)."""
    x64 = as_input(x, name)
    if x64.ndim < min_ndim or x64.size == 0:
        fail(ESHAPE, "%s must be a non-empty array of at least %d dimension(s), got shape %s",
             name, min_ndim, x.shape)
    if n is not None and x64.shape[-1] != n:
        fail(ESHAPE, "%s has %d entries per row, expected %d", name, x64.shape[-1], n)
    lead = x64.shape[:-1]
    batch = int(np.prod(lead, dtype=np.int64))
    if batch > INT_MAX or x64.shape[-1] > INT_MAX:
        fail(ERANGE, "%s is too large for the C interface", name)
    return x64, batch, int(x64.shape[-1]), lead


def same_shape(a, name, shape):
    """Check a further input of a fixed shape; return it as float64."""
    a64 = as_input(a, name)
    if a64.shape != tuple(shape):
        fail(ESHAPE, "%s has shape %s, expected %s", name, a.shape, tuple(shape))
    return a64


def optional(a, name, shape):
    return None if a is None else same_shape(a, name, shape)


def empty(shape):
    return np.empty(shape, dtype=np.float64)


def cast(a, dtype):
    return a if a.dtype == dtype else a.astype(dtype)


def enum(value, names, what):
    """Index of value in names (a name, case-insensitive, or the index itself)."""
    if isinstance(value, str):
        key = value.lower()
        for i, nm in enumerate(names):
            if nm == key:
                return i
        fail(EINVAL, "unknown %s %r (one of %s)", what, value, ", ".join(names))
    if isinstance(value, (int, np.integer)) and 0 <= value < len(names):
        return int(value)
    fail(EINVAL, "unknown %s %r (one of %s)", what, value, ", ".join(names))
