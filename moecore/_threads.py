"""One BLAS thread for the EM and MM hot loops.

Their matrix products are skinny ((K, n) by (n, q) with small K and q): memory-bound, so extra
BLAS threads only add synchronisation.  Measured on 2 cores: a global EM on n = 2e5 took 0.36 s
with OpenBLAS's two threads and 0.28 s with one, and 1.2-1.6 s against 0.3-0.6 s when another
process held a core.  Parallelism comes from fitting machines side by side instead.
"""

from __future__ import annotations

from threadpoolctl import ThreadpoolController

__all__ = ["one_blas_thread"]

_CONTROLLER = None


def one_blas_thread():
    """Context manager limiting BLAS/OpenMP pools to one thread (restored on exit).

    ``threadpool_limits(1)`` rescans the loaded libraries at every call (about 3 ms, a sixth of a
    local fit on 8000 points); a cached ``ThreadpoolController`` does it once per process.
    """
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1)
