"""A real dask LocalCluster of worker processes for the tests, quiet while it starts."""

import warnings
from contextlib import contextmanager


@contextmanager
def local_cluster(n_workers=2):
    """A LocalCluster of ``n_workers`` single-threaded worker processes, closed afterwards."""
    import distributed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lc = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                      dashboard_address=None, scheduler_port=0, silence_logs=50)
    try:
        yield lc
    finally:
        lc.close()


@contextmanager
def client_of(cluster):
    """A distributed.Client of ``cluster``, closed afterwards."""
    import distributed

    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
