"""``mat2grad predict|jacobian ... --scheduler ADDRESS | --workers N``: the files written on
Dask hold the in-memory commands' results."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

import mat2grad
from mat2grad.cli import main
from mat2grad.matfile import read_mat, write_mat
from tests.dask.cases import NETWORKS, inputs
from tests.support.helpers import MODES_RTOL, assert_close

STATIC = str(NETWORKS["static"])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    net = mat2grad.load(STATIC)
    x = inputs(net, q=101, seed=4)[0]
    x_matlab = x.T  # not MATLAB layout: the input file's contents (R x Q), built here
    write_mat(folder / "big.mat", {"X": x_matlab}, format="v7.3")
    write_mat(folder / "small.mat", {"X": x_matlab}, format="v7")
    J, Y = mat2grad.jacobian(net, x, return_outputs=True)
    return folder, x, J.numpy(), Y.numpy()


def test_jacobian_on_a_scheduler_from_a_v73_file(client, data, capsys):
    folder, _, J, Y = data
    out = folder / "J.mat"
    argv = ["jacobian", STATIC, "--inputs", str(folder / "big.mat"), "--inputs-var", "X"]
    argv += ["--scheduler", client.scheduler.address, "--block-size", "40", "-o", str(out)]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == str(out)
    back = read_mat(out)
    want_j = np.moveaxis(J, 0, -1)  # not MATLAB layout: the expected S x R x Q, built here
    assert_close(back["J"], want_j, MODES_RTOL, "J")
    assert_close(back["Y"], Y.T, MODES_RTOL, "Y")  # not MATLAB layout: expected S x Q


def test_predict_on_local_workers_to_zarr(data):
    folder, x, _, Y = data
    out = folder / "Y.zarr"
    argv = ["predict", STATIC, "--inputs", str(folder / "small.mat"), "--workers", "2"]
    assert main([*argv, "--block-size", "30", "-o", str(out)]) == 0
    assert_close(zarr.open_group(str(out), mode="r")["Y"][:], Y, MODES_RTOL, "Y (Q, S)")


def test_v73_needs_the_variable_name(data, capsys):
    folder = data[0]
    argv = ["jacobian", STATIC, "--inputs", str(folder / "big.mat"), "--workers", "1"]
    assert main([*argv, "-o", str(folder / "x.mat")]) == 1
    assert "--inputs-var" in capsys.readouterr().err
    assert not (folder / "x.mat").exists()


def test_scheduler_and_workers_exclude_each_other(data, capsys):
    argv = ["predict", STATIC, "--inputs", "d.mat", "--workers", "2", "--scheduler", "x"]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "-o", "y.mat"])
    assert exit_.value.code == 2
