"""The jacobian, hessian and check commands: results land in MAT-files in MATLAB's layout
(checked element by element), match the library and finite differences, and failures are
one line on stderr with no half-written file."""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest
import scipy.io
import torch

import mat2grad
from mat2grad import matfile
from mat2grad.autodiff import ZeroDerivativeWarning, check_points, hessian, jacobian
from tests.cli.test_cli import assert_one_line_error, run
from tests.support.helpers import (
    CORPUS,
    FD_SMOOTH_RTOL,
    MODES_RTOL,
    assert_close,
    central_differences,
    corpus_cases,
    requires_corpus,
)
from tests.support.records import network_record, save_network


def _corpus_inputs(case, tmp_path):
    """(data file, --inputs-var, --samples) for a corpus case; points from the network
    itself where the manifest names no inputs."""
    if "inputs" in case:
        return CORPUS / case["file"], case["inputs"], case.get("samples", "columns")
    net = mat2grad.load(CORPUS / case["file"], case["network"])
    (x,), _ = check_points(net, max_samples=30)
    data = tmp_path / "x.mat"
    scipy.io.savemat(data, {"X": x.T})
    return data, "X", "columns"


# --------------------------------------------------------------------------------------
# jacobian
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", corpus_cases("shallow/"))
def test_jacobian_on_every_corpus_network(case, capsys, tmp_path):
    data, var, samples = _corpus_inputs(case, tmp_path)
    out = tmp_path / "J.mat"
    code, _, err = run(
        capsys,
        "jacobian",
        CORPUS / case["file"],
        "--network",
        case["network"],
        "--inputs",
        data,
        "--inputs-var",
        var,
        "--samples",
        samples,
        "-o",
        out,
    )
    assert code == 0, err
    net = mat2grad.load(CORPUS / case["file"], case["network"])
    x = matfile.as_float(matfile.resolve(matfile.read_mat(data), var))
    x = x.T if samples == "columns" else x
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ZeroDerivativeWarning)
        J, Y = jacobian(net, x, return_outputs=True)
    got = scipy.io.loadmat(out)
    mj, my = got["J"], got["Y"]
    q, s, r = J.shape
    if samples == "columns":  # J(:,:,q) = dY(:,q)/dX(:,q)
        assert mj.shape == (s, r, q) and my.shape == (s, q)
        assert_close(np.moveaxis(mj, -1, 0), J.numpy(), 0.0, "J")
        assert_close(my.T, Y.numpy(), 0.0, "Y")
    else:
        assert mj.shape == (q, s, r) and my.shape == (q, s)
        assert_close(mj, J.numpy(), 0.0, "J")
        assert_close(my, Y.numpy(), 0.0, "Y")
    assert_close(my if samples == "rows" else my.T, mat2grad.predict(net, x).numpy(), 0.0, "Y")
    # the written J against central differences, where the network is smooth
    smooth = {layer.transfer for layer in net.spec.layers} <= {"tansig", "purelin", "softmax"}
    if smooth:
        finite = np.isfinite(x).all(1)
        fd = central_differences(lambda z: mat2grad.predict(net, z).numpy(), x[finite][:40])
        written = np.moveaxis(mj, -1, 0) if samples == "columns" else mj
        assert_close(written[finite][:40], fd, FD_SMOOTH_RTOL, "J vs central differences")


@requires_corpus
def test_jacobian_orientation_element_by_element(capsys, tmp_path):
    """J[q, s, r] (library) <-> MATLAB J(s+1, r+1, q+1); with --samples rows J(q+1, s+1, r+1)."""
    src = CORPUS / "shallow/abj247_ann.mat"
    net = mat2grad.load(src, "fg")
    x = matfile.as_float(matfile.read_mat(src)["i"]).T  # 18 samples of 3
    J = jacobian(net, x).numpy()
    cols, rows = tmp_path / "c.mat", tmp_path / "r.mat"
    assert (
        run(
            capsys,
            "jacobian",
            src,
            "--network",
            "fg",
            "--inputs",
            src,
            "--inputs-var",
            "i",
            "-o",
            cols,
        )[0]
        == 0
    )
    scipy.io.savemat(tmp_path / "xr.mat", {"X": x})
    assert (
        run(
            capsys,
            "jacobian",
            src,
            "--network",
            "fg",
            "--inputs",
            tmp_path / "xr.mat",
            "--samples",
            "rows",
            "-o",
            rows,
        )[0]
        == 0
    )
    mc, mr = scipy.io.loadmat(cols)["J"], scipy.io.loadmat(rows)["J"]
    assert mc.shape == (2, 3, 18) and mr.shape == (18, 2, 3)
    for q, s, r in np.ndindex(*J.shape):
        assert mc[s, r, q] == J[q, s, r]
        assert mr[q, s, r] == J[q, s, r]


@requires_corpus
@pytest.mark.parametrize("how", ["forced", "threshold"])
def test_jacobian_v73(capsys, tmp_path, monkeypatch, how):
    import matio

    src = CORPUS / "shallow/abj247_ann.mat"
    out = tmp_path / "J.mat"
    args = ["jacobian", src, "--network", "fg", "--inputs", src, "--inputs-var", "i", "-o", out]
    if how == "forced":
        args += ["--format", "v7.3"]
    else:
        monkeypatch.setenv("MAT2GRAD_V73_THRESHOLD", "500")  # J is 864 bytes, Y 288
    code, _, err = run(capsys, *args)
    assert code == 0, err
    net = mat2grad.load(src, "fg")
    J = jacobian(net, matfile.as_float(matfile.read_mat(src)["i"]).T).numpy()
    with h5py.File(out, "r") as h5:
        raw = h5["J"][()]  # MATLAB 2x3x18 stored reversed: (18, 3, 2)
        assert raw.shape == (18, 3, 2)
        assert all(raw[q, r, s] == J[q, s, r] for q, s, r in np.ndindex(*J.shape))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = matio.load_from_mat(str(out))
    np.testing.assert_array_equal(loaded["J"], np.moveaxis(J, 0, -1))
    assert loaded["Y"].shape == (2, 18)


def test_jacobian_of_a_two_input_two_output_network(capsys, tmp_path):
    record = network_record(
        (3, 2),
        ((4, "tansig"), (2, "purelin"), (3, "logsig")),
        input_connect={(1, 1), (1, 2), (3, 2)},
        layer_connect={(2, 1), (3, 1)},
        output_layers=(2, 3),
        seed=2,
    )
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=(3, 9)), rng.normal(size=(2, 9))  # MATLAB R x Q
    cell = np.empty((2, 1), dtype=object)
    cell[0, 0], cell[1, 0] = x1, x2
    path = tmp_path / "net.mat"
    save_network(path, record, X=cell)
    out = tmp_path / "J.mat"
    code, _, err = run(capsys, "jacobian", path, "--network", "net", "--inputs", path, "-o", out)
    assert code == 0, err
    net = mat2grad.load(path, "net")
    J, Y = jacobian(net, x1.T, x2.T, return_outputs=True)
    got = scipy.io.loadmat(out)
    assert got["J"].shape == (2, 2) and got["Y"].shape == (2, 1)  # numOutputs x numInputs
    for k, j in np.ndindex(2, 2):
        block = got["J"][k, j]
        assert block.shape == (J[k][j].shape[1], J[k][j].shape[2], 9)
        assert_close(np.moveaxis(block, -1, 0), J[k][j].numpy(), 0.0, f"J{{{k + 1},{j + 1}}}")
    for k in range(2):
        assert_close(got["Y"][k, 0].T, Y[k].numpy(), 0.0, f"Y{{{k + 1}}}")


@requires_corpus
def test_jacobian_modes_and_options(capsys, tmp_path):
    src = CORPUS / "shallow/mahmoudjumaa_net.mat"
    results = {}
    for mode in ("auto", "rev", "fwd", "analytic"):
        out = tmp_path / f"{mode}.mat"
        code, _, err = run(
            capsys,
            "jacobian",
            src,
            "--inputs",
            src,
            "--inputs-var",
            "Input_Training",
            "--samples",
            "rows",
            "--mode",
            mode,
            "--chunk-size",
            "100",
            "--threads",
            "1",
            "-o",
            out,
        )
        assert code == 0, err
        results[mode] = scipy.io.loadmat(out)["J"]
    q = matfile.read_mat(src)["Input_Training"].shape[0]
    assert results["auto"].shape == (q, 1, 16)  # --samples rows: Q x S x R
    for mode in ("rev", "fwd", "analytic"):
        assert_close(results[mode], results["auto"], MODES_RTOL, mode)


@requires_corpus
def test_jacobian_zero_derivative_warns_in_one_line(capsys, tmp_path):
    src = CORPUS / "shallow/juanpovedapl_net1.mat"
    out = tmp_path / "J.mat"
    code, _, err = run(
        capsys,
        "jacobian",
        src,
        "--network",
        "net1",
        "--inputs",
        src,
        "--inputs-var",
        "p",
        "-o",
        out,
    )
    assert code == 0
    assert err.strip().startswith("mat2grad: warning: ") and len(err.strip().splitlines()) == 1
    assert "hardlim" in err and "zero" in err
    assert np.all(scipy.io.loadmat(out)["J"] == 0)


@requires_corpus
def test_jacobian_errors_leave_no_file(capsys, tmp_path):
    src = CORPUS / "shallow/abj247_ann.mat"
    out = tmp_path / "J.mat"
    code, _, err = run(
        capsys,
        "jacobian",
        src,
        "--network",
        "fg",
        "--inputs",
        src,
        "--inputs-var",
        "i",
        "--samples",
        "rows",
        "-o",
        out,
    )
    assert_one_line_error(code, err, r"if samples are stored in columns, pass --samples columns")
    with pytest.raises(SystemExit) as usage:  # --chunk-size 0 is a usage error: exit 2
        run(
            capsys,
            "jacobian",
            src,
            "--network",
            "fg",
            "--inputs",
            src,
            "--inputs-var",
            "i",
            "--mode",
            "analytic",
            "--format",
            "v7",
            "--chunk-size",
            "0",
            "-o",
            out,
        )
    assert usage.value.code == 2
    assert "--chunk-size: must be a whole number >= 1" in capsys.readouterr().err
    assert not out.exists()
    assert not list(tmp_path.glob("*.tmp"))


# --------------------------------------------------------------------------------------
# hessian
# --------------------------------------------------------------------------------------


@requires_corpus
def test_hessian_matches_the_library(capsys, tmp_path):
    src = CORPUS / "shallow/mahmoudjumaa_net.mat"
    out = tmp_path / "H.mat"
    code, _, err = run(
        capsys,
        "hessian",
        src,
        "--inputs",
        src,
        "--inputs-var",
        "Input_Training",
        "--samples",
        "rows",
        "-o",
        out,
    )
    assert code == 0, err
    net = mat2grad.load(src)
    x = matfile.as_float(matfile.read_mat(src)["Input_Training"])
    H = hessian(net, x, output=0).numpy()
    got = scipy.io.loadmat(out)
    assert got["H"].shape == H.shape and got["Y"].shape == (len(x), 1)  # rows: Q x R x R
    assert_close(got["H"], H, 0.0, "H")
    # columns: R x R x Q with H(:,:,q) the Hessian of sample q
    x_cols = tmp_path / "x.mat"
    scipy.io.savemat(x_cols, {"X": x[:20].T})
    code, _, err = run(capsys, "hessian", src, "--inputs", x_cols, "-o", out)
    assert code == 0, err
    hc = scipy.io.loadmat(out)["H"]
    assert hc.shape == (16, 16, 20)
    assert all(hc[r, t, q] == H[q, r, t] for q, r, t in np.ndindex(20, 16, 16))


@requires_corpus
def test_hessian_output_index(capsys, tmp_path):
    src = CORPUS / "shallow/abj247_ann.mat"
    out = tmp_path / "H.mat"
    base = ["hessian", src, "--network", "fg", "--inputs", src, "--inputs-var", "i", "-o", out]
    code, _, err = run(capsys, *base, "--output-index", "3")
    assert_one_line_error(code, err, r"out of range")
    code, _, err = run(capsys, *base)  # row 1 by default
    assert code == 0, err
    row1 = scipy.io.loadmat(out)["H"]
    code, _, err = run(capsys, *base, "--output-index", "2")
    assert code == 0, err
    net = mat2grad.load(src, "fg")
    x = matfile.as_float(matfile.read_mat(src)["i"]).T
    expected = np.moveaxis(hessian(net, x, output=1).numpy(), 0, -1)
    assert_close(scipy.io.loadmat(out)["H"], expected, 0.0, "H of row 2")
    assert_close(row1, np.moveaxis(hessian(net, x, output=0).numpy(), 0, -1), 0.0, "row 1")


# --------------------------------------------------------------------------------------
# check
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", corpus_cases("shallow/"))
def test_check_passes_on_every_corpus_network(case, capsys):
    code, out, err = run(
        capsys,
        "check",
        CORPUS / case["file"],
        "--network",
        case["network"],
        "--max-samples",
        "25",
        "--threads",
        "1",
    )
    assert code == 0, out + err
    assert "OK: autograd" in out and "max relative error" in out


@requires_corpus
def test_check_fails_above_the_tolerance(capsys):
    src = CORPUS / "shallow/abj247_ann.mat"
    code, out, err = run(capsys, "check", src, "--network", "fg", "--tol", "1e-14")
    assert code == 1
    assert "FAILED" in out
    assert_one_line_error(code, err, r"check failed: max relative error .* above --tol 1e-14")


@requires_corpus
def test_check_with_inputs(capsys):
    src = CORPUS / "shallow/kudvaakshay_net1.mat"
    code, out, err = run(
        capsys,
        "check",
        src,
        "--network",
        "net1",
        "--inputs",
        src,
        "--samples",
        "rows",
        "--max-samples",
        "50",
    )
    assert code == 0, out + err
    assert "50 of them, evenly spaced" in out


def test_check_without_points_is_a_clear_error(capsys, tmp_path):
    path = tmp_path / "net.mat"
    save_network(path, network_record((3,), ((4, "tansig"), (1, "purelin"))))
    code, _, err = run(capsys, "check", path)
    assert_one_line_error(code, err, r"neither example inputs .* --inputs DATA.mat")


def _static_fixtures():
    import tomllib

    from tests.support.helpers import FIXTURES

    with open(FIXTURES / "MANIFEST.toml", "rb") as fh:
        cases = tomllib.load(fh)["case"]
    return [
        pytest.param(c, id=c["file"].removesuffix(".mat")) for c in cases if not c.get("dynamic")
    ]


@pytest.mark.parametrize("case", _static_fixtures())
def test_jacobian_on_every_static_fixture(case, capsys, tmp_path):
    from tests.support.helpers import FIXTURES

    path = FIXTURES / case["file"]
    out = tmp_path / "J.mat"
    code, _, err = run(
        capsys,
        "jacobian",
        path,
        "--network",
        case["network"],
        "--inputs",
        path,
        "--inputs-var",
        case["inputs"],
        "--samples",
        case["samples"],
        "-o",
        out,
    )
    assert code == 0, err
    net = mat2grad.load(path, case["network"])
    value = matfile.read_mat(path)[case["inputs"]]
    parts = list(value.reshape(-1, order="F")) if value.dtype == object else [value]
    xs = [matfile.as_float(v).T for v in parts]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ZeroDerivativeWarning)
        J = jacobian(net, *xs)
    got = scipy.io.loadmat(out)["J"]
    blocks = [[J]] if not isinstance(J, tuple) else J
    if got.dtype != object:  # one input and one output: a plain array
        cell = np.empty((1, 1), dtype=object)
        cell[0, 0] = got
        got = cell
    assert got.shape == (len(blocks), len(blocks[0]))  # numOutputs x numInputs
    for k, j in np.ndindex(*got.shape):
        expected = np.moveaxis(blocks[k][j].numpy(), 0, -1)  # S x R x Q
        assert_close(np.asarray(got[k, j]).reshape(expected.shape), expected, 0.0, f"J{k}{j}")


@pytest.mark.parametrize("given", [None, "2"])
def test_threads_default_to_the_measured_one(capsys, tmp_path, given):
    """Without --threads a command runs torch on DEFAULT_THREADS (1, measured); --threads
    sets it."""
    import torch

    from mat2grad.commands.sources import DEFAULT_THREADS
    from tests.support.helpers import FIXTURES

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        src = FIXTURES / "example_fitnet.mat"
        extra = [] if given is None else ["--threads", given]
        code, _, err = run(
            capsys, "jacobian", src, "--inputs", src, "--inputs-var", "X", "-o",
            tmp_path / "J.mat", *extra,
        )  # fmt: skip
        assert code == 0, err
        assert torch.get_num_threads() == (DEFAULT_THREADS if given is None else int(given))
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("command", ["jacobian", "predict"])
def test_device_cpu_writes_what_the_default_writes(capsys, tmp_path, command):
    from tests.support.helpers import FIXTURES

    src = FIXTURES / "example_fitnet.mat"
    outs = []
    for extra in ([], ["--device", "cpu"]):
        out = tmp_path / f"{command}{len(extra)}.mat"
        code, _, err = run(
            capsys, command, src, "--inputs", src, "--inputs-var", "X", "-o", out, *extra
        )
        assert code == 0, err
        outs.append(scipy.io.loadmat(out))
    names = sorted(k for k in outs[0] if not k.startswith("__"))
    assert names and names == sorted(k for k in outs[1] if not k.startswith("__"))
    for name in names:
        assert np.array_equal(outs[0][name], outs[1][name]), name


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        (["--device", "gpu"], "--device must be cpu, cuda, cuda:N or mps"),
        pytest.param(
            ["--device", "cuda"],
            "--device 'cuda': torch sees no CUDA device here",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="torch sees a CUDA device"),
        ),
        (["--device", "cpu", "--workers", "1"], "Dask workers compute on their own CPUs"),
    ],
)
def test_a_device_the_command_cannot_use_is_one_line(capsys, tmp_path, extra, why):
    from tests.support.helpers import FIXTURES

    src = FIXTURES / "example_fitnet.mat"
    out = tmp_path / "J.mat"
    code, _, err = run(
        capsys, "jacobian", src, "--inputs", src, "--inputs-var", "X", "-o", out, *extra
    )
    assert_one_line_error(code, err, why)
    assert not out.exists()
