"""``mat2grad sens ... --scheduler ADDRESS | --workers N``: the struct S written on Dask is
the one the in-memory command writes, field by field; what runs in memory only is refused
in one line before any cluster starts."""

from __future__ import annotations

import numpy as np
import pytest

import mat2grad
from mat2grad import dask as m2d
from mat2grad import matfile
from mat2grad.cli import build_parser, main
from mat2grad.matfile import MatStruct, read_mat, write_mat
from tests.dask.cases import FIXTURES, NETWORKS
from tests.support.helpers import assert_close

STATIC = str(NETWORKS["static"])
#: statistics merged from per-block moment states vs the in-memory command's chunks (the
#: Chan merge is exact in arithmetic; its round-off is a few units, see test_cluster)
MERGE_RTOL = 1e-12
#: samples per Dask task: uneven, so that the last block of the 200 samples is short
BLOCK = "37"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The fitnet fixture's 200 samples in a v7.3 file (read lazily) and a v7 copy."""
    folder = tmp_path_factory.mktemp("sens")
    x = read_mat(STATIC)["X"]  # R x Q, as the file holds it
    write_mat(folder / "big.mat", {"X": x}, format="v7.3")
    write_mat(folder / "small.mat", {"X": x}, format="v7")
    return folder


def _sens(folder, inputs: str, out: str, *args: str) -> int:
    argv = ["sens", STATIC, "--inputs", str(folder / inputs), "--inputs-var", "X"]
    return main([*argv, *args, "-o", str(folder / out)])


def _same(got, want, where: str = "S", skip: tuple[str, ...] = ()) -> None:
    """Every field of ``want`` in ``got`` and nothing more: numbers to MERGE_RTOL, names
    and text equal."""
    if isinstance(want, MatStruct):
        assert isinstance(got, MatStruct), where
        assert set(got.fields) == set(want.fields), (where, set(got.fields) ^ set(want.fields))
        for name in want.fields:
            if f"{where}.{name}" not in skip:
                _same(got[name], want[name], f"{where}.{name}", skip)
    elif isinstance(want, np.ndarray) and want.dtype.kind in "biuf":
        assert got.shape == want.shape, (where, got.shape, want.shape)
        assert_close(got, want, MERGE_RTOL, where)
    elif isinstance(want, np.ndarray) and want.dtype == object:
        assert got.shape == want.shape, where
        for i, (g, w) in enumerate(zip(got.ravel(), want.ravel(), strict=True)):
            _same(g, w, f"{where}{{{i + 1}}}", skip)
    else:
        assert got == want, (where, got, want)


def test_sens_on_local_workers_writes_the_in_memory_S(data, capsys):
    opts = ["--bootstrap", "20", "--seed", "3", "--scale", "std", "--ddof", "1", "--weights"]
    opts += ["--dgsm", "300"]
    assert _sens(data, "small.mat", "mem.mat", *opts, "--chunk-size", "16") == 0
    assert _sens(data, "small.mat", "dask.mat", *opts, "--workers", "2", "--block-size", BLOCK) == 0
    assert capsys.readouterr().out.strip() == str(data / "dask.mat")
    got, want = read_mat(data / "dask.mat")["S"], read_mat(data / "mem.mat")["S"]
    assert "rms_low" in want.fields and "weights" in want.fields and "dgsm" in want.fields
    _same(got, want)
    # and the library's statistics, computed here without the command line
    x = read_mat(STATIC)["X"].astype(float)
    direct = mat2grad.sensitivity(mat2grad.load(STATIC), x.T, scale="std", ddof=1)
    for stat in ("mean", "std", "rms", "mean_abs"):
        assert_close(got[stat], direct[stat], MERGE_RTOL, stat)


def test_sens_from_a_v73_file_read_lazily(client, data, monkeypatch):
    assert _sens(data, "small.mat", "mem73.mat", "--scale", "range", "--bootstrap", "9") == 0
    read = matfile.read_mat

    def whole_file(path, *args, **kwargs):  # the inputs file must not be read whole here
        assert "big.mat" not in str(path), "the v7.3 inputs were read whole"
        return read(path, *args, **kwargs)

    monkeypatch.setattr(matfile, "read_mat", whole_file)
    argv = ["--scale", "range", "--bootstrap", "9", "--block-size", BLOCK]
    assert _sens(data, "big.mat", "dask73.mat", *argv, "--scheduler", client.scheduler.address) == 0
    monkeypatch.undo()
    got, want = read_mat(data / "dask73.mat")["S"], read_mat(data / "mem73.mat")["S"]
    _same(got, want, skip=("S.settings.inputs_file",))
    assert got["settings"]["inputs_file"] == str(data / "big.mat")


def test_sens_plot_on_dask(client, data):
    pytest.importorskip("matplotlib")
    import matplotlib.image as mpimg

    chart = data / "S.png"
    argv = ["--plot", str(chart), "--scheduler", client.scheduler.address, "--block-size", BLOCK]
    assert _sens(data, "small.mat", "plot.mat", *argv) == 0
    assert _sens(data, "small.mat", "noplot.mat") == 0
    _same(read_mat(data / "plot.mat")["S"], read_mat(data / "noplot.mat")["S"])
    image = mpimg.imread(chart)
    # three charts stacked (mean-std, rms, density: the kept derivatives came back)
    assert image.shape[0] > 2 * image.shape[1] / 3
    assert image[..., :3].std() > 0.05


def _no_cluster(*args, **kwargs):
    raise AssertionError("a cluster was started before the options were refused")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--committee"], "--committee does not run on Dask"),
        (["--interactions"], "--interactions does not run on Dask"),
        (["--max-lag", "2"], "--max-lag apply to dynamic networks"),
        (["--bootstrap", "1"], "at least 2 replicates"),
        (["--plot", "S.txt"], "plots are written as .png, .svg or .pdf"),
        (["-o", "S.zarr"], "sens writes the struct S to a MAT-file"),
        (["--file", str(NETWORKS["dynamic"])], "take static networks"),
        (["--file", str(FIXTURES / "onnx" / "matlab2018_gemm6_features.onnx")], "MATLAB net"),
    ],
)
def test_sens_on_dask_refuses_in_one_line(data, capsys, monkeypatch, args, message):
    monkeypatch.setattr(m2d, "scheduler", _no_cluster)
    out = data / "refused.mat"
    network = args[1] if args[0] == "--file" else STATIC
    extra = [] if args[0] == "--file" else args
    if "-o" in extra:
        out, extra = data / extra[1], []
    argv = ["sens", network, "--inputs", str(data / "small.mat"), *extra, "--workers", "2"]
    assert main([*argv, "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mat2grad: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert message in err, err
    assert not out.exists()


def test_sens_help_names_the_dask_options(capsys):
    argv = ["sens", STATIC, "--inputs", "d.mat", "--workers", "3", "-o", "S.mat"]
    args = build_parser().parse_args(argv)
    assert (args.workers, args.scheduler, args.block_size) == (3, None, None)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sens", "--help"])
    text = capsys.readouterr().out
    assert "--scheduler ADDRESS" in text and "--block-size N" in text
    assert "predict, jacobian and sens take --scheduler" in " ".join(text.split())
