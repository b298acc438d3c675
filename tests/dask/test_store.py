"""Results written where they are computed (NOTE: [Blocks written where they are
computed]): arrays from one predict/jacobian call with blocks of equal size are computed
and written by one task per block, to the same store, with the same values and the same
layout as the general writer; anything else goes through the general writer."""

from __future__ import annotations

import os
import signal
import threading
import time

import dask
import dask.array as da
import numpy as np
import pytest
import zarr

import mat2grad
from mat2grad import dask as m2d
from mat2grad.dask import store
from tests.dask.cases import NETWORKS, inputs
from tests.support.helpers import MODES_RTOL, assert_close

STATIC = NETWORKS["static"]
Q = 29  # blocks of 8: three full and a last one of 5


@pytest.fixture(scope="module")
def case():
    net = mat2grad.load(STATIC)
    x = inputs(net, q=Q)[0]
    J, Y = mat2grad.jacobian(net, x, return_outputs=True)
    return x, J.numpy(), Y.numpy()


def _arrays(x: np.ndarray, block: int = 8) -> dict[str, da.Array]:
    J, Y = m2d.jacobian(STATIC, da.from_array(x, chunks=(block, -1)), return_outputs=True)
    return {"J": J, "Y": Y}


def _tasks(arrays: dict[str, da.Array], tmp) -> int:
    """Tasks in the graph the writer computes (counted, not run)."""
    seen: list[int] = []
    real = store.compute
    try:
        store.compute = lambda *writes, progress=None: seen.append(
            len(dask.base.collections_to_expr(writes).__dask_graph__())
        )
        m2d.to_zarr(tmp / "count.zarr", arrays, progress=False)
    finally:
        store.compute = real
    return seen[0]


def _metadata(path) -> dict[str, bytes]:
    found = {}
    for root, _, files in os.walk(path):
        for name in files:
            if name == "zarr.json":
                rel = os.path.relpath(os.path.join(root, name), path)
                found[rel] = open(os.path.join(root, name), "rb").read()
    return found


def _chunks(path, name) -> list[str]:
    return sorted(os.listdir(os.path.join(path, name, "c")))


def test_jacobian_outputs_are_written_in_one_task_per_block(case, tmp_path):
    x, J, Y = case
    arrays = _arrays(x)
    assert store._fused(arrays) is not None
    out = m2d.to_zarr(tmp_path / "J.zarr", arrays, progress=False)
    group = zarr.open_group(str(out), mode="r")
    assert_close(group["J"][:], J, MODES_RTOL, "J written by the fused tasks")
    assert_close(group["Y"][:], Y, MODES_RTOL, "Y written by the fused tasks")
    assert group["J"].chunks == (8, 3, 10) and group["J"].compressors == ()
    # the general writer: one more task per block and array than the fused one
    general = {k: v.map_blocks(np.asarray, dtype=v.dtype) for k, v in arrays.items()}
    assert store._fused(general) is None
    assert _tasks(arrays, tmp_path) < _tasks(general, tmp_path)


def test_fused_and_general_writers_make_the_same_store(case, tmp_path):
    x, _, _ = case
    arrays = _arrays(x)
    general = {k: v.map_blocks(np.asarray, dtype=v.dtype) for k, v in arrays.items()}
    a = m2d.to_zarr(tmp_path / "fused.zarr", arrays, progress=False)
    b = m2d.to_zarr(tmp_path / "general.zarr", general, progress=False)
    assert _metadata(a) == _metadata(b)  # layout bytes: exactly the same
    for name in ("J", "Y"):
        assert _chunks(a, name) == _chunks(b, name)
        got, want = zarr.open_group(str(a))[name][:], zarr.open_group(str(b))[name][:]
        assert np.array_equal(got, want), name  # the same function on the same blocks


def test_blocks_of_zeros_are_written_too(tmp_path):
    # a network's derivative can be exactly zero over a whole block (a saturated unit);
    # every block is a file, whichever writer ran
    zeros = da.zeros((12, 3), chunks=4)
    out = m2d.to_zarr(tmp_path / "z.zarr", {"Z": zeros}, progress=False)
    assert _chunks(out, "Z") == ["0", "1", "2"]
    assert not zarr.open_group(str(out))["Z"][:].any()


@pytest.mark.parametrize(
    "variant",
    ["uneven blocks", "a slice of J", "arrays of two calls", "predict with jacobian"],
)
def test_other_arrays_take_the_general_writer(case, tmp_path, variant):
    x, J, Y = case
    arrays = _arrays(x)
    if variant == "uneven blocks":
        arrays = _arrays(x, block=(7, 3, 12, 7))
    elif variant == "a slice of J":
        arrays = {"J": arrays["J"][:20], "Y": arrays["Y"][:20]}
    elif variant == "arrays of two calls":
        arrays = {"J": arrays["J"], "Y": _arrays(x)["Y"]}
    else:
        arrays = {"J": arrays["J"], "P": m2d.predict(STATIC, da.from_array(x, chunks=8))}
    assert store._fused(arrays) is None
    out = m2d.to_zarr(tmp_path / "J.zarr", arrays, progress=False)
    q = arrays["J"].shape[0]
    assert_close(zarr.open_group(str(out))["J"][:], J[:q], MODES_RTOL, f"J, {variant}")


def test_predict_alone_is_fused(case, tmp_path):
    x, _, Y = case
    arrays = {"Y": m2d.predict(STATIC, da.from_array(x, chunks=8))}
    assert store._fused(arrays) is not None
    out = m2d.to_zarr(tmp_path / "Y.zarr", arrays, progress=False)
    assert_close(zarr.open_group(str(out))["Y"][:], Y, MODES_RTOL, "Y")


def _slow(block: np.ndarray) -> np.ndarray:
    time.sleep(0.2)
    return block


def test_fused_write_on_a_cluster_survives_a_lost_worker(client, tmp_path):
    net = mat2grad.load(STATIC)
    x = inputs(net, q=3000, seed=3)[0]
    slow = da.from_array(x, chunks=100).map_blocks(_slow, dtype=x.dtype)  # 30 tasks, 0.2 s
    J, Y = m2d.jacobian(STATIC, slow, return_outputs=True)
    assert store._fused({"J": J, "Y": Y}) is not None
    done: list[object] = []

    def kill_one() -> None:
        time.sleep(1.0)
        pids = client.run(os.getpid)
        os.kill(sorted(pids.values())[0], signal.SIGKILL)
        done.append(True)

    killer = threading.Thread(target=kill_one)
    killer.start()
    out = m2d.to_zarr(tmp_path / "J.zarr", {"J": J, "Y": Y}, progress=False)
    killer.join()
    assert done
    J_mem, Y_mem = mat2grad.jacobian(net, x, return_outputs=True)
    group = zarr.open_group(str(out), mode="r")
    assert_close(group["J"][:], J_mem.numpy(), MODES_RTOL, "J after a lost worker")
    assert_close(group["Y"][:], Y_mem.numpy(), MODES_RTOL, "Y after a lost worker")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["J.zarr"]
