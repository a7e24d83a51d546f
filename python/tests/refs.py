"""refs.py - reader of the reference vectors (../shared/refs, FORMAT.md there) for the
Python tests: the same files and tolerances as the C tests (tests/refs.h). The folder
comes from DA_REFS_DIR (set by make check), else ../shared/refs beside the source tree."""
import glob
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


class Ref:
    def __init__(self, path):
        self.path, self.params, self.tensors, self.kind = path, {}, {}, None
        with open(path) as f:
            tokens = [ln.split() for ln in f if ln.strip() and not ln.startswith("#")]
        i = 0
        while i < len(tokens):
            head = tokens[i]
            if head[0] == "kind":
                self.kind = head[1]
            elif head[0] == "param":
                self.params[head[1]] = head[2]
            elif head[0] == "scalar":
                self.tensors[head[1]] = np.array(float(head[2]))
            elif head[0] == "tensor":
                shape = tuple(int(d) for d in head[2:])
                count, values = int(np.prod(shape, dtype=np.int64)), []
                while len(values) < count:
                    i += 1
                    values.extend(float(v) for v in tokens[i])
                if len(values) != count:
                    raise ValueError("%s: tensor %s has %d values, expected %d"
                                     % (path, head[1], len(values), count))
                self.tensors[head[1]] = np.array(values).reshape(shape)
            else:
                raise ValueError("%s: unknown line %r" % (path, " ".join(head)))
            i += 1

    def __getitem__(self, name):
        return self.tensors[name]

    def get(self, name):
        return self.tensors.get(name)

    def param(self, key, default=None):
        return self.params.get(key, default)

    def num(self, key, default=None):
        v = self.params.get(key)
        return default if v is None else float(v)


def refs_dir():
    return os.environ.get("DA_REFS_DIR") or os.path.join(HERE, "..", "..", "..", "shared", "refs")


def ref_list(kind):
    """The parsed .ref files of one kind, sorted by name."""
    return [Ref(p) for p in sorted(glob.glob(os.path.join(refs_dir(), kind, "*.ref")))]


def ref_err(a, ref):
    """Normwise relative error max|a - ref| / max|ref| (DESIGN.md §6)."""
    a, ref = np.asarray(a, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert a.shape == ref.shape, (a.shape, ref.shape)
    scale = np.max(np.abs(ref))
    err = np.max(np.abs(a - ref))
    return err / scale if scale > 0 else err
