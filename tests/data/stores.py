"""Stored reference fits, bitwise on the kind of machine that wrote them, to rounding elsewhere.

The same code gives different last bits on different CPUs: OpenBLAS picks its kernels by CPU family
and numba compiles for the host's vector width, so sums run in another order (measured: an AVX2 AMD
EPYC against the machine that wrote the stores before: 1e-16 to 7e-9 of each array's largest
magnitude, every count and every decision equal).  A store is therefore written twice: ``name.npz``, the latest
deliberate rewrite from whatever machine ran it, and ``name.<machine>.npz``, the same numbers under
the name of that machine's kind (:func:`machine`).  Both carry the rewrite's revision (a hash of the
numbers).  A test compares bitwise with its own machine's file when that file is of the latest
revision, and otherwise with ``name.npz`` to :data:`RTOL` relative (integers and shapes exactly).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

REVISION = "__revision__"
# Cross-machine rounding measured at 7e-9 of an array's largest magnitude at most (crossing-2d's gates,
# whose sharp softmax amplifies rounding; most arrays 1e-16 to 1e-12): 1e-6 leaves a margin of 100.
# A deliberate change of the numerics smaller than that (EM's compiled kernels moved numbers by up to
# 3.4e-7) is what the bitwise file of the machine that makes it is for.
RTOL = 1e-6


def machine() -> str:
    """The kind of machine, as far as the last bits go: LLVM's host CPU (numba's code) and OpenBLAS's
    kernel family, e.g. "znver3-Haswell"."""
    import llvmlite.binding as llvm
    from threadpoolctl import threadpool_info

    blas = sorted({str(i.get("architecture")) for i in threadpool_info() if i.get("internal_api") == "openblas"})
    return "-".join([llvm.get_host_cpu_name(), *blas]).replace("/", "_")


def _revision(arrays: dict) -> str:
    h = hashlib.sha1()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(key.encode() + str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    return h.hexdigest()[:16]


def own_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.{machine()}{path.suffix}")


def write(path: Path, arrays: dict) -> list[Path]:
    """Write ``arrays`` as the latest rewrite (``path``) and as this machine's (:func:`own_path`)."""
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    tagged = dict(arrays, **{REVISION: np.array(_revision(arrays))})
    out = [path, own_path(path)]
    for p in out:
        np.savez_compressed(p, **tagged)
    return out


def load(path: Path) -> tuple[dict, bool]:
    """(stored arrays without the revision, bitwise): this machine's file when it holds the latest
    rewrite, else the latest rewrite, to be compared to rounding."""
    latest = dict(np.load(path))
    own = own_path(path)
    if own.exists():
        mine = dict(np.load(own))
        if REVISION in latest and mine.get(REVISION) == latest[REVISION]:
            mine.pop(REVISION)
            return mine, True
    latest.pop(REVISION, None)
    return latest, False


def differ(got: dict, expected: dict, exact: bool) -> list[str]:
    """Names whose arrays differ: bitwise when ``exact``, else by more than RTOL times the array's largest
    magnitude (a coefficient near 0 is not held to its own scale); integers and shapes exactly."""
    out = []
    for name in sorted(got):
        a, b = np.asarray(got[name]), np.asarray(expected[name])
        if exact or a.shape != b.shape or a.dtype.kind not in "fc" or b.dtype.kind not in "fc":
            same = a.shape == b.shape and np.array_equal(a, b)
        else:
            tol = RTOL * float(np.nanmax(np.abs(b), initial=0.0))
            same = bool(np.all((np.abs(a - b) <= tol) | (np.isnan(a) & np.isnan(b))))
        if not same:
            out.append(name)
    return out
