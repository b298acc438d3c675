"""mat2grad.dask without a cluster (Dask's threads, the embedded default): the lazy
readers, the atomic zarr store, the streamed MAT-file, and the errors."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import zarr

import mat2grad
from mat2grad import dask as m2d
from mat2grad.errors import Mat2GradError
from mat2grad.matfile import read_mat, write_mat
from tests.dask.cases import BLOCKS, NETWORKS, inputs
from tests.support.helpers import MODES_RTOL, ROOT, assert_close

STATIC = NETWORKS["static"]


@pytest.fixture(scope="module")
def case():
    net = mat2grad.load(STATIC)
    x = inputs(net)[0]
    J, Y = mat2grad.jacobian(net, x, return_outputs=True)
    return net, x, J.numpy(), Y.numpy()


def test_threads_need_no_server(case):
    _, x, J, _ = case
    with dask.config.set(scheduler="threads"):
        got = m2d.jacobian(STATIC, da.from_array(x, chunks=(BLOCKS, -1))).compute()
    assert_close(got, J, MODES_RTOL, "J on threads")


@pytest.mark.parametrize("samples", ["columns", "rows"])
def test_from_mat_v73_reads_blocks_lazily(case, tmp_path, samples):
    _, x, J, _ = case
    path = tmp_path / "data.mat"
    # MATLAB's layout written by mat2grad.matfile: R x Q (columns) or Q x R (rows)
    stored = x.T if samples == "columns" else x  # not MATLAB layout: the file's, built here
    write_mat(path, {"X": stored}, format="v7.3")
    lazy = m2d.from_mat(path, "X", samples=samples, block=5)
    assert lazy.shape == x.shape and lazy.chunks[0][0] == 5
    np.testing.assert_array_equal(lazy.compute(), x)  # a copy of stored values: exact
    assert_close(m2d.jacobian(STATIC, lazy).compute(), J, MODES_RTOL, "J from v7.3")


def test_from_mat_refuses_v7(tmp_path, case):
    x_matlab = case[1].T  # not MATLAB layout: a file's contents, built here
    write_mat(tmp_path / "d.mat", {"X": x_matlab}, format="v7")
    with pytest.raises(Mat2GradError, match="not a MAT v7.3 file"):
        m2d.from_mat(tmp_path / "d.mat", "X")


def test_from_npy_and_zarr(case, tmp_path):
    _, x, J, _ = case
    np.save(tmp_path / "x.npy", x)
    zarr.save_array(str(tmp_path / "x.zarr"), x)
    for lazy in (m2d.from_npy(tmp_path / "x.npy", block=4), m2d.from_zarr(tmp_path / "x.zarr")):
        assert_close(m2d.jacobian(STATIC, lazy).compute(), J, MODES_RTOL, "J from file")


def test_to_zarr_writes_under_a_temporary_name(case, tmp_path):
    _, x, J, Y = case
    blocks = da.from_array(x, chunks=(BLOCKS, -1))
    lazy_j, lazy_y = m2d.jacobian(STATIC, blocks, return_outputs=True)
    out = m2d.to_zarr(tmp_path / "J.zarr", {"J": lazy_j, "Y": lazy_y}, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["J.zarr"]
    store = zarr.open_group(str(out), mode="r")
    assert_close(store["J"][:], J, MODES_RTOL, "J in zarr")
    assert_close(store["Y"][:], Y, MODES_RTOL, "Y in zarr")


def _fail(block: np.ndarray) -> np.ndarray:
    if block.shape[0] == 1:  # the last block
        raise RuntimeError("interrupted")
    return block


def test_interrupted_job_leaves_nothing(case, tmp_path):
    _, x, _, _ = case
    failing = da.from_array(x, chunks=(BLOCKS, -1)).map_blocks(_fail, dtype=x.dtype)
    # the first sample is fine, so the lazy Jacobian is built and fails only when written
    lazy = m2d.jacobian(STATIC, failing)
    for write, name in ((m2d.to_zarr, "J.zarr"), (m2d.to_mat, "J.mat")):
        with pytest.raises(RuntimeError, match="interrupted"):
            write(tmp_path / name, {"J": lazy})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["v7", "v7.3"])
def test_to_mat_in_matlab_layout(case, tmp_path, fmt):
    _, x, J, Y = case
    blocks = da.from_array(x, chunks=(BLOCKS, -1))
    lazy_j, lazy_y = m2d.jacobian(STATIC, blocks, return_outputs=True)
    m2d.to_mat(tmp_path / "J.mat", {"J": lazy_j, "Y": lazy_y}, format=fmt, window=2)
    back = read_mat(tmp_path / "J.mat")
    # S x R x Q and S x Q: J(:,:,q) is sample q's Jacobian
    want_j = np.moveaxis(J, 0, -1)  # not MATLAB layout: the expected file, built here
    want_y = Y.T  # not MATLAB layout: the expected file, built here
    assert_close(back["J"], want_j, MODES_RTOL, "J in the MAT-file")
    assert_close(back["Y"], want_y, MODES_RTOL, "Y in the MAT-file")


def test_live_module_and_dynamic_sensitivity_are_refused(case):
    net, x, _, _ = case
    with pytest.raises(Mat2GradError, match="not a loaded module"):
        m2d.jacobian(net, x)
    dyn = NETWORKS["dynamic"]
    with pytest.raises(Mat2GradError, match="static networks"):
        m2d.sensitivity(dyn, inputs(mat2grad.load(dyn))[0])


def test_block_split_along_features_is_undone(case):
    _, x, J, _ = case
    split = da.from_array(x, chunks=(BLOCKS, 3))
    got = m2d.jacobian(STATIC, split)
    assert got.chunks[0] == BLOCKS and got.numblocks[1:] == (1, 1)
    assert_close(got.compute(), J, MODES_RTOL, "J")


def test_block_sizes_from_the_bytes_of_a_block():
    from mat2grad.dask.arrays import BLOCK_BYTES, block_for

    assert block_for(264) == 2**18  # a 10-20-3 network's J and Y: 66 MB per block
    assert block_for(BLOCK_BYTES) == 2**10  # huge samples: the smallest block
    assert block_for(1) == 2**20  # tiny samples: the largest
    assert block_for(24) == 2**20 and block_for(1e5) == 2**10


def test_numpy_inputs_are_blocked_by_their_results(monkeypatch):
    from mat2grad.dask import arrays

    net = mat2grad.load(STATIC)
    x = inputs(net, q=3000, seed=4)[0]
    J, Y = mat2grad.jacobian(net, x, return_outputs=True)
    s, r = net.output_shapes[0][0], net.input_shapes[0][0]
    monkeypatch.setattr(arrays, "BLOCK_BYTES", 1024 * (s * r + s) * 8)  # 1024 samples' J, Y
    lazy_j, lazy_y = m2d.jacobian(STATIC, x, return_outputs=True)
    assert lazy_j.chunks[0] == lazy_y.chunks[0] == (1024, 1024, 952)
    assert_close(lazy_j.compute(), J.numpy(), MODES_RTOL, "J in blocks of 1024")
    monkeypatch.setattr(arrays, "BLOCK_BYTES", 2048 * (s + r) * 8)  # 2048 samples' Y and x
    lazy = m2d.predict(STATIC, x)
    assert lazy.chunks[0] == (2048, 952)
    assert_close(lazy.compute(), Y.numpy(), MODES_RTOL, "Y in blocks of 2048")
    # the caller's blocks are kept: a block size given, or a dask array's own chunks
    assert m2d.jacobian(STATIC, x, block=500).chunks[0][0] == 500
    assert m2d.jacobian(STATIC, da.from_array(x, chunks=300)).chunks[0][0] == 300


def test_the_commands_default_block():
    from mat2grad.commands.dask_run import _default_block

    fitnet = mat2grad.load(ROOT / "fixtures" / "example_fitnet.mat")  # 10 inputs, 3 outputs
    assert _default_block("jacobian", fitnet) == 2**18
    assert _default_block("predict", fitnet) == 2**19
    assert _default_block("sens", fitnet) == 2**18
