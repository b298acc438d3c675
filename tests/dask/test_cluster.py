"""mat2grad.dask on a real LocalCluster (2 worker processes): results equal the in-memory
functions element by element, the network is built once per worker, and a worker killed
mid-job does not change the result."""

from __future__ import annotations

import os
import signal
import time

import dask.array as da
import numpy as np
import pytest

import mat2grad
from mat2grad import dask as m2d
from mat2grad.dask.network import cache_info
from mat2grad.sensitivity import sensitivity as sensitivity_in_memory
from tests.dask.cases import BLOCKS, NETWORKS, inputs
from tests.support.helpers import MODES_RTOL, assert_close

#: the same per-sample derivative computed in blocks of other sizes: only the order of
#: the products' accumulation may differ (BLAS kernels depend on the batch size), the same
#: round-off as two differentiation modes
BLOCK_RTOL = MODES_RTOL
#: a statistic merged from per-block moment states vs one pass (the Chan merge is exact
#: in arithmetic; its round-off grows with log2 of the number of merges, a few units here)
MERGE_RTOL = 1e-12


def _uneven(x: np.ndarray) -> da.Array:
    return da.from_array(x, chunks=(BLOCKS,) + tuple((n,) for n in x.shape[1:]))


def _flat(nested):
    if isinstance(nested, tuple | list):
        return [leaf for item in nested for leaf in _flat(item)]
    return [nested]


@pytest.mark.parametrize("case", list(NETWORKS))
def test_jacobian_and_predict_equal_in_memory(client, case):
    net = mat2grad.load(NETWORKS[case])
    xs = inputs(net)
    J, Y = m2d.jacobian(NETWORKS[case], *[_uneven(x) for x in xs], return_outputs=True)
    for blk in _flat(J):
        assert blk.chunks[0] == BLOCKS
    J_mem, Y_mem = mat2grad.jacobian(net, *xs, return_outputs=True)
    got_j, got_y = da.compute(_flat(J), _flat(Y))
    for got, want in zip(got_j, _flat(J_mem), strict=True):
        assert_close(got, want.numpy(), BLOCK_RTOL, f"{case}: J")
    for got, want in zip(got_y, _flat(Y_mem), strict=True):
        assert_close(got, want.numpy(), BLOCK_RTOL, f"{case}: Y from jacobian")
    y = m2d.predict(NETWORKS[case], *[_uneven(x) for x in xs])
    for got, want in zip(_flat(y), _flat(mat2grad.predict(net, *xs)), strict=True):
        assert_close(got.compute(), want.numpy(), BLOCK_RTOL, f"{case}: predict")


@pytest.mark.parametrize("case", ["static", "two_inputs", "onnx_conv"])
def test_sensitivity_equals_in_memory(client, case):
    net = mat2grad.load(NETWORKS[case])
    xs = inputs(net, q=300, seed=1)
    chunks = [(64, 64, 100, 71, 1)]
    dx = [da.from_array(x, chunks=chunks + [(n,) for n in x.shape[1:]]) for x in xs]
    got = m2d.sensitivity(NETWORKS[case], *dx, bootstrap=7, seed=3, split_every=2)
    want = sensitivity_in_memory(net, *xs, bootstrap=7, seed=3)
    assert got.num_samples == want.num_samples == 300
    assert got.inputs == want.inputs and got.outputs == want.outputs
    assert set(got.stats) == set(want.stats)
    for name in want.stats:
        assert_close(got[name], want[name], MERGE_RTOL, f"{case}: {name}")


def test_sensitivity_keeps_the_in_memory_derivatives(client):
    # the subset kept for the density chart: the same samples, in sample order, whatever
    # the blocks and the merge tree
    net = mat2grad.load(NETWORKS["static"])
    (x,) = inputs(net, q=300, seed=5)
    dx = da.from_array(x, chunks=((64, 64, 100, 71, 1), (x.shape[1],)))
    got = m2d.sensitivity(NETWORKS["static"], dx, keep=40, seed=2, split_every=2)
    want = sensitivity_in_memory(net, x, keep=40, seed=2)
    assert got.derivatives.shape == want.derivatives.shape == (40, 3, x.shape[1])
    assert_close(got.derivatives, want.derivatives, BLOCK_RTOL, "kept derivatives")


def test_inputs_persisted_on_the_cluster(client):
    # data already held by the workers (persist) exists only there: the client must not
    # try to read it with a local scheduler
    net = mat2grad.load(NETWORKS["static"])
    (x,) = inputs(net, seed=7)
    dx = _uneven(x).persist()
    J, Y = m2d.jacobian(NETWORKS["static"], dx, return_outputs=True)
    J_mem, Y_mem = mat2grad.jacobian(net, x, return_outputs=True)
    assert_close(J.compute(), J_mem.numpy(), BLOCK_RTOL, "J of persisted inputs")
    assert_close(m2d.predict(NETWORKS["static"], dx).compute(), Y_mem.numpy(), BLOCK_RTOL, "Y")
    got = m2d.sensitivity(NETWORKS["static"], dx)
    want = sensitivity_in_memory(net, x)
    for name in want.stats:
        assert_close(got[name], want[name], MERGE_RTOL, f"persisted: {name}")


def test_network_built_once_per_worker(client, tmp_path):
    copy = tmp_path / "fresh.mat"  # a file no worker has built yet
    copy.write_bytes(NETWORKS["static"].read_bytes())
    before = client.run(lambda: cache_info()["builds"])
    x = da.from_array(inputs(mat2grad.load(copy), q=400)[0], chunks=20)
    m2d.jacobian(copy, x).compute()
    after = client.run(lambda: cache_info()["builds"])
    new = {w: after[w] - before[w] for w in after}
    assert all(n <= 1 for n in new.values()), new  # one thread per worker: one build
    assert sum(new.values()) >= 1, new


def _slow(block: np.ndarray) -> np.ndarray:
    time.sleep(0.2)
    return block


def test_worker_killed_mid_job(client):
    net = mat2grad.load(NETWORKS["static"])
    x = inputs(net, q=4000, seed=2)[0]
    slow = da.from_array(x, chunks=100).map_blocks(_slow, dtype=x.dtype)  # 40 tasks, 0.2 s
    future = client.compute(m2d.jacobian(NETWORKS["static"], slow))
    time.sleep(1.0)
    assert not future.done(), "the job ended before a worker could be killed"
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    os.kill(victim, signal.SIGKILL)
    got = future.result(timeout=120)
    assert victim not in client.run(os.getpid).values()  # it really died (and was replaced)
    assert_close(got, mat2grad.jacobian(net, x).numpy(), BLOCK_RTOL, "J after a lost worker")
