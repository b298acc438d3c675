"""The in-process entry points for MATLAB: arrays in MATLAB layout in and out, the same
numbers as the library and the CLI, whatever container MATLAB hands the arrays over in."""

from __future__ import annotations

import array

import numpy as np
import pytest
import scipy.io

import mat2grad
from mat2grad import matfile, matlab_api
from tests.support.helpers import CORPUS, FIXTURES, FORWARD_RTOL, assert_close, requires_corpus
from tests.support.records import tiny_record, to_mat


@pytest.fixture
def tiny(tmp_path):
    """The hand-made 2 -> [2 tansig] -> [1 purelin] -> 1 network, saved as a struct."""
    path = tmp_path / "tiny.mat"
    matfile.write_mat(path, {"net": to_mat(tiny_record())})
    return path


X = np.array([[0.5, 1.0, -0.3, 2.0], [-1.0, 0.2, 0.7, 1.5]])  # R x Q = 2 x 4


def _library(path, x_columns):
    """What the library computes, turned into MATLAB layout by hand (S x Q)."""
    return mat2grad.predict(mat2grad.load(path), x_columns.T).numpy().T


@pytest.mark.parametrize(
    "convert",
    [
        pytest.param(lambda x: x, id="ndarray"),
        pytest.param(lambda x: np.asfortranarray(x), id="fortran"),
        pytest.param(lambda x: memoryview(np.asfortranarray(x)), id="memoryview"),
        pytest.param(lambda x: (memoryview(np.asfortranarray(x)),), id="one-element-cell"),
    ],
)
def test_predict_accepts_what_matlab_passes(tiny, convert):
    expected = _library(tiny, X)
    y = matlab_api.predict(str(tiny), convert(X))
    assert y.shape == (1, 4) and y.dtype == np.float64
    np.testing.assert_allclose(y, expected, rtol=FORWARD_RTOL)


def test_predict_samples_rows_and_single_sample(tiny):
    expected = _library(tiny, X)
    np.testing.assert_allclose(
        matlab_api.predict(str(tiny), X.T.copy(), samples="rows"), expected.T, rtol=FORWARD_RTOL
    )
    # one sample as a 1-D buffer is a MATLAB row vector: with samples="rows" that is 1 x R
    row = array.array("d", X[:, 0])
    y = matlab_api.predict(str(tiny), row, samples="rows")
    np.testing.assert_allclose(y, expected[:, :1].T, rtol=FORWARD_RTOL)


def test_predict_float32(tiny):
    y = matlab_api.predict(str(tiny), X, dtype="float32")
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, _library(tiny, X), rtol=1e-6)


def test_predict_onnx_images_in_matlab_layout_or_batch_first():
    """An ONNX image model: H x W x C x N in (as a column-major buffer from MATLAB),
    S x N out; or batch-first with layout="onnx"."""
    path = str(FIXTURES / "onnx" / "matlab2020a_conv_fc_dropout.onnx")
    batch = np.random.default_rng(1).uniform(-1, 1, (5, 1, 4, 3))  # N x C x H x W
    expected = mat2grad.predict(mat2grad.load(path), batch).numpy().T  # S x N
    images = np.asfortranarray(batch.transpose(2, 3, 1, 0))  # H x W x C x N
    y = matlab_api.predict(path, memoryview(images))
    np.testing.assert_allclose(y, expected, rtol=FORWARD_RTOL)
    y = matlab_api.predict(path, batch, layout="onnx")
    np.testing.assert_allclose(y, expected.T, rtol=FORWARD_RTOL)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"x": X[:1]}, r"X has 1 rows but the network takes 2 \(inputs\{1\}.size\)"),
        ({"x": X, "dtype": "float16"}, "dtype must be float64 or float32"),
        ({"x": X, "network": "nets{2}"}, "no variable 'nets'"),
        ({"x": "text"}, "X: expected a real numeric matrix"),
        ({"x": [X, X]}, "the network has 1 inputs, so it needs a cell array with 1 matrices"),
    ],
)
def test_predict_errors(tiny, kwargs, pattern):
    with pytest.raises(mat2grad.Mat2GradError, match=pattern):
        matlab_api.predict(str(tiny), **kwargs)


def test_predict_missing_file(tmp_path):
    with pytest.raises(mat2grad.Mat2GradError, match="no such file"):
        matlab_api.predict(str(tmp_path / "none.mat"), X)


def _cli_result(tmp_path, *argv):
    """What the command line writes for the same call (the reference for run)."""
    from mat2grad.cli import main

    out = tmp_path / "cli.mat"
    assert main([str(a) for a in argv] + ["-o", str(out)]) == 0
    return matfile.read_mat(out)


def test_run_is_the_cli_in_process(tiny, tmp_path):
    data = tmp_path / "x.mat"
    scipy.io.savemat(data, {"X": X})
    result = matlab_api.run("predict", str(tiny), X=X, network="net", samples="columns")
    expected = _cli_result(tmp_path, "predict", tiny, "--inputs", data)
    assert list(result) == ["Y"]
    np.testing.assert_array_equal(result["Y"], expected["Y"])


@requires_corpus
def test_run_grad_returns_cells_as_lists_of_rows(tmp_path):
    src = CORPUS / "shallow/abj247_ann.mat"
    data = scipy.io.loadmat(src)
    x, t = data["i"], data["fg_outputs"] + 0.1
    scipy.io.savemat(tmp_path / "xt.mat", {"X": x, "T": t})
    result = matlab_api.run("grad", str(src), X=x, T=t, network="fg", performance="sse")
    expected = _cli_result(
        tmp_path,
        "grad",
        src,
        "--network",
        "fg",
        "--inputs",
        tmp_path / "xt.mat",
        "--performance",
        "sse",
    )
    assert sorted(result) == sorted(expected) == ["dIW", "dLW", "db", "dwb", "perf"]
    np.testing.assert_array_equal(result["dwb"], expected["dwb"])
    for name in ("db", "dIW", "dLW"):
        rows = result[name]
        assert (len(rows), len(rows[0])) == expected[name].shape  # a list of rows: 2-D cell
        for (i, j), block in np.ndenumerate(expected[name]):
            np.testing.assert_array_equal(rows[i][j], block)


def _rows(cell: np.ndarray) -> tuple:
    """A cell as MATLAB's helpers send it: a tuple of row tuples."""
    return tuple(tuple(row) for row in cell)


def test_run_time_series_keeps_cell_shapes(tmp_path):
    """A dynamic network: X is a 1 x TS cell, Xi 1 x 2, Ai 2 x 0; the results are cells of
    the same orientation (the CLI's Y, Xf, Af)."""
    src = FIXTURES / "timedelaynet.mat"
    data = scipy.io.loadmat(src)
    result = matlab_api.run(
        "predict", str(src), X=_rows(data["X"]), Xi=_rows(data["Xi"]), Ai=_rows(data["Ai"])
    )
    expected = _cli_result(
        tmp_path, "predict", src, "--inputs", src, "--xi-var", "Xi", "--ai-var", "Ai"
    )
    assert sorted(result) == ["Af", "Xf", "Y"]
    assert (len(result["Y"]), len(result["Y"][0])) == expected["Y"].shape == (1, 14)
    for (i, j), block in np.ndenumerate(expected["Y"]):
        np.testing.assert_array_equal(result["Y"][i][j], block)
        assert_close(result["Y"][i][j], data["Y"][i, j], FORWARD_RTOL, "timedelaynet")


@pytest.mark.parametrize(
    "command, args, options, pattern",
    [
        ("jacobian2", (X,), {}, "no in-process command 'jacobian2'"),
        ("predict", (X,), {"colour": "red"}, "unrecognized arguments: --colour red"),
        ("predict", (X,), {"layout": "onnx"}, "--layout onnx applies to ONNX models"),
        ("predict", (X[:1],), {}, r"^'X' has 1 rows but the network takes 2 \(inputs\{1\}.size\)$"),
        ("predict", ((X, X),), {}, "the network has 1 inputs"),
    ],
)
def test_run_errors_carry_the_cli_message(tiny, command, args, options, pattern):
    with pytest.raises(mat2grad.Mat2GradError, match=pattern):
        matlab_api.run(command, str(tiny), X=args[0], **options)


def test_run_passes_warnings_on(tiny, capsys, monkeypatch):
    """What the command prints on stderr while succeeding (its warnings) is not swallowed."""
    import importlib
    import sys

    predict_module = importlib.import_module("mat2grad.predict")
    original = predict_module.predict_arrays

    def noisy(*args, **kwargs):
        print("mat2grad: careful", file=sys.stderr)
        return original(*args, **kwargs)

    monkeypatch.setattr(predict_module, "predict_arrays", noisy)
    matlab_api.run("predict", str(tiny), X=X)
    assert "careful" in capsys.readouterr().err


def test_model_cache_sees_a_rewritten_file(tiny):
    y1 = matlab_api.predict(str(tiny), X)
    record = tiny_record()
    record.fields["b"][1, 0] = record.fields["b"][1, 0] + 1.0  # output bias + 1 (purelin)
    matfile.write_mat(tiny, {"net": to_mat(record)})
    y2 = matlab_api.predict(str(tiny), X)
    assert not np.allclose(y1, y2)
    np.testing.assert_allclose(y2, _library(tiny, X), rtol=FORWARD_RTOL)


@requires_corpus
def test_predict_reproduces_matlab():
    src = CORPUS / "shallow/marakaido_network.mat"
    data = scipy.io.loadmat(src)
    y = matlab_api.predict(str(src), np.asfortranarray(data["x"]))
    assert_close(y, data["y"], FORWARD_RTOL, "matlab_api.predict")


def test_commands_are_the_cli_commands_that_write_results():
    assert {"predict", "grad"} <= set(matlab_api.COMMANDS)
    assert "info" not in matlab_api.COMMANDS
