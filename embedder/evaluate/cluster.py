"""Running batch evaluations on a Dask cluster (dask.distributed).

`dask_executor` yields a `concurrent.futures.Executor` backed by either a
`LocalCluster` sized to this machine (one single-threaded worker process per
core: the compiler is CPU-bound Python) or an existing cluster's scheduler
(`dask scheduler` and `dask worker ADDRESS` on other machines, each with this
package installed).  The batch runner submits to it and writes the rows
itself as results arrive; a worker that dies mid-task has its task rerun on
another (the scheduler's retries), and the runner keeps one row per key.
"""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager

from embedder.errors import EmbedderError

CONNECT_TIMEOUT = "10s"


@contextmanager
def dask_executor(scheduler: str | None = None, workers: int | None = None):
    """An executor on the cluster at `scheduler`, or on a new LocalCluster of `workers` processes (default: one
    per core); the cluster is closed on exit, the remote one left running."""
    from dask.distributed import Client, LocalCluster

    cluster = None
    try:
        if scheduler:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        else:
            cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                                   dashboard_address=":0", silence_logs=logging.ERROR)
            client = Client(cluster)
    except (OSError, ValueError) as error:  # no scheduler there, none answered in time, or not an address
        raise EmbedderError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
    try:
        yield client.get_executor(pure=False)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
