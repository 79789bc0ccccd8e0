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
import signal
import threading
from contextlib import contextmanager

from embedder.errors import EmbedderError

CONNECT_TIMEOUT = "10s"


def _local_cluster(local_cluster, workers: int):
    """Worker processes that ignore Ctrl-C (they inherit the disposition): the terminal's Ctrl-C reaches the whole
    process group, and the client, not each worker, stops the run and closes the cluster."""
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
    try:
        return local_cluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                             silence_logs=logging.ERROR)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


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
            cluster = _local_cluster(LocalCluster, workers or os.cpu_count() or 1)
            client = Client(cluster)
    except (OSError, ValueError) as error:  # no scheduler there, none answered in time, or not an address
        raise EmbedderError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
    try:
        yield client.get_executor(pure=False)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
