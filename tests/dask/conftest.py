"""A real two-process LocalCluster for the tests of this folder that ask for it."""

from __future__ import annotations

import importlib.util

import pytest

if any(importlib.util.find_spec(m) is None for m in ("dask", "distributed", "zarr")):
    # mat2grad[dask] is not installed: nothing here can run
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="module")
def client():
    """A ``distributed.Client`` on a LocalCluster of 2 worker processes, 1 thread each,
    closed when the module's tests are done."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
