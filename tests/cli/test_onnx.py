"""The CLI on ONNX models: predict, jacobian, hessian and check with ``--layout matlab|onnx``
and ``--wrt``.

References, independent of the code under test: the MATLAB layouts are rebuilt here from
the table of NOTE [MATLAB layouts for ONNX models] (``to_matlab`` below: plain transposes,
not mat2grad.matfile's code); results are compared with the library's batch-first results
element by element, with the numpy references of ``fixtures/generate_onnx.py``, and with
central finite differences of ``mat2grad predict`` on perturbed MATLAB-layout arrays.
Each model is loaded once per module for the library side.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import onnx  # noqa: E402
import pytest
import scipy.io
import torch  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from mat2grad import matfile
from mat2grad.autodiff import ZeroDerivativeWarning, hessian, jacobian  # noqa: E402
from mat2grad.commands.sources import DEFAULT_THREADS  # noqa: E402
from mat2grad.onnx import load_onnx  # noqa: E402
from mat2grad.predict import predict_arrays  # noqa: E402
from tests.cli.test_cli import assert_one_line_error, run
from tests.support.helpers import (
    CORPUS,
    FD_RTOL,
    FD_STEP,
    MODES_RTOL,
    ONNX_FIXTURE_RTOL,
    ONNX_FIXTURES,
    assert_scaled_close,
    corpus_cases,
    requires_corpus,
)

FIXTURES = sorted(p.name for p in ONNX_FIXTURES.glob("*.onnx"))
N = 3  # samples per test


_LOADED: dict = {}


def loaded(path: str, wrt: tuple[str, ...] | None = None):
    """Each file loaded once for the module's tests."""
    key = (path, wrt)
    if key not in _LOADED:
        _LOADED[key] = load_onnx(path, check=False, wrt=wrt)
    return _LOADED[key]


# --------------------------------------------------------------------------------------
# MATLAB layouts, written here from the table (not with mat2grad.matfile)
# --------------------------------------------------------------------------------------


def to_matlab(batch: np.ndarray, kind: str) -> np.ndarray:
    """Batch-first ``(N, *sample)`` -> the MATLAB array a user holds."""
    n = batch.shape[0]
    if kind == "features":
        return batch.reshape(n, -1).T  # C x N
    if kind == "image":
        return batch.transpose(2, 3, 1, 0)  # (N, C, H, W) -> H x W x C x N
    if kind == "volume":
        return batch.transpose(3, 4, 2, 1, 0)  # (N, C, D, H, W) -> H x W x D x C x N
    if kind == "sequence":
        return batch.transpose(2, 0, 1)  # (N, T, C) -> C x N x T
    return np.moveaxis(batch, 0, -1)  # d1 x ... x dk x N


def matlab_order(shape: tuple[int, ...], kind: str) -> np.ndarray:
    """Flat C-order index in one batch-first sample of each element of the MATLAB
    per-sample array, in MATLAB's column-major order."""
    idx = to_matlab(np.arange(math.prod(shape)).reshape(1, *shape), kind)
    batch_axis = {"features": 1, "sequence": 1}.get(kind, idx.ndim - 1)
    return np.take(idx, 0, axis=batch_axis).reshape(-1, order="F")


def jacobian_in_matlab_layout(jac, out_kind, in_kind, out_shape, in_shape) -> np.ndarray:
    """Batch-first ``(N, *out, *in)`` -> ``S x R x N`` by index: J(s, r, n) =
    jac[n].flat[order_out[s], order_in[r]]."""
    n = jac.shape[0]
    flat = np.asarray(jac).reshape(n, math.prod(out_shape), math.prod(in_shape))
    po, pi = matlab_order(out_shape, out_kind), matlab_order(in_shape, in_kind)
    return flat[:, po][:, :, pi].transpose(1, 2, 0)


def sample_batch(net, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, (n, *[3 if d is None else d for d in s])) for s in net.input_shapes]


def save_inputs(path: Path, arrays: list[np.ndarray]) -> Path:
    """One array as X, several as a column cell X (the model's input order)."""
    if len(arrays) == 1:
        scipy.io.savemat(path, {"X": arrays[0]})
    else:
        cell = np.empty((len(arrays), 1), dtype=object)
        for k, a in enumerate(arrays):
            cell[k, 0] = a
        scipy.io.savemat(path, {"X": cell})
    return path


def cells(value, rows: int, cols: int) -> list[list[np.ndarray]]:
    """A loaded result: a plain array for a 1x1 result, else a rows x cols cell."""
    if rows == cols == 1:
        return [[value]]
    assert value.shape == (rows, cols), value.shape
    return [[value[k, j] for j in range(cols)] for k in range(rows)]


@pytest.fixture(autouse=True)
def _one_reverse_path(monkeypatch):
    """Written values are compared with the library's exactly (layout tests), so both take
    reverse mode's loop of backward passes: the batched alternatives are chosen by timing,
    per model, and sum in other orders (see NOTE: [Batched cotangents])."""
    from mat2grad.autodiff import methods

    monkeypatch.setattr(methods, "_replication_may_win", lambda g, backward, work: False)
    monkeypatch.setattr(methods, "_vmap_may_run", lambda model: False)
    for net in _LOADED.values():
        monkeypatch.delitem(net.__dict__, methods._CHOICE, raising=False)


def lib_jacobian(net, xs, wrt=None):
    """The library's batch-first Jacobian blocks J[k][j] and outputs, computed on the
    torch threads the commands use (another count may sum in another order, and the tests
    compare the written values with these exactly)."""
    before = torch.get_num_threads()
    torch.set_num_threads(DEFAULT_THREADS)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ZeroDerivativeWarning)
            J, Y = jacobian(net, *xs, wrt=wrt, return_outputs=True)
    finally:
        torch.set_num_threads(before)
    n_out = len(net.output_names)
    n_wrt = len(wrt) if wrt is not None else len(net.wrt)
    if n_out == 1 and n_wrt == 1:
        J = ((J,),)
    elif n_out == 1:
        J = (J,) if not isinstance(J[0], tuple) else J
    Y = Y if isinstance(Y, tuple) else (Y,)
    return [[b.numpy() for b in row] for row in J], [y.numpy() for y in Y]


# --------------------------------------------------------------------------------------
# Every fixture and corpus model: predict and jacobian in both layouts
# --------------------------------------------------------------------------------------


def _cases() -> list:
    """Every fixture, and every corpus ONNX file but the titanic pipeline (tested below)."""
    cases = [pytest.param(str(ONNX_FIXTURES / n), id=n.removesuffix(".onnx")) for n in FIXTURES]
    for param in corpus_cases("onnx/"):
        (case,) = param.values
        if case is None:
            cases.append(param)
        elif "check" not in case:
            cases.append(pytest.param(str(CORPUS / case["file"]), id=param.id.rstrip(":")))
    return cases


CASES = _cases()


@pytest.mark.parametrize("path", CASES)
def test_predict_and_jacobian_in_both_layouts(path, capsys, tmp_path):
    net = loaded(path)
    large = max(math.prod(d or 1 for d in s) for s in net.input_shapes) > 10_000
    n = 2 if large else N  # 224 x 224 x 3 images: J is 9 x 150528 per sample
    xs = sample_batch(net, n, seed=1)
    ins = [to_matlab(x, k) for x, k in zip(xs, net.input_layouts, strict=True)]
    data = save_inputs(tmp_path / "x.mat", ins)
    J, Y = lib_jacobian(net, xs)
    wrt = [net.input_names.index(n) for n in net.wrt]
    n_out, n_wrt = len(Y), len(wrt)

    code, _, err = run(capsys, "predict", path, "--inputs", data, "-o", tmp_path / "y.mat")
    assert code == 0, err
    y = cells(scipy.io.loadmat(tmp_path / "y.mat")["Y"], n_out if n_out > 1 else 1, 1)
    for k in range(n_out):
        expected = to_matlab(Y[k], net.output_layouts[k])
        assert_scaled_close(y[k][0], expected, MODES_RTOL, f"Y{k + 1}")

    code, _, err = run(capsys, "jacobian", path, "--inputs", data, "-o", tmp_path / "j.mat")
    assert code == 0, err
    got = scipy.io.loadmat(tmp_path / "j.mat")
    jm = cells(got["J"], n_out, n_wrt)
    for k in range(n_out):
        out_shape = Y[k].shape[1:]
        for jj, j in enumerate(wrt):
            expected = jacobian_in_matlab_layout(
                J[k][jj], net.output_layouts[k], net.input_layouts[j], out_shape, xs[j].shape[1:]
            )
            assert jm[k][jj].shape == (math.prod(out_shape), math.prod(xs[j].shape[1:]), n)
            assert_scaled_close(jm[k][jj], expected, MODES_RTOL, f"J{{{k + 1},{jj + 1}}}")

    # batch-first as the file declares it, in chunks of 2 samples
    data = save_inputs(tmp_path / "xb.mat", xs)
    out = tmp_path / "jb.mat"
    code, _, err = run(
        capsys,
        "jacobian",
        path,
        "--inputs",
        data,
        "--layout",
        "onnx",
        "--chunk-size",
        "2",
        "-o",
        out,
    )
    assert code == 0, err
    got = scipy.io.loadmat(out)
    jb = cells(got["J"], n_out, n_wrt)
    yb = cells(got["Y"], n_out if n_out > 1 else 1, 1)
    for k in range(n_out):
        assert_scaled_close(yb[k][0].reshape(Y[k].shape), Y[k], MODES_RTOL, f"Y{k + 1}")
        for jj in range(n_wrt):
            assert jb[k][jj].shape[0] == n
            assert_scaled_close(jb[k][jj].reshape(J[k][jj].shape), J[k][jj], MODES_RTOL, "J")


@pytest.mark.parametrize("name", FIXTURES)
def test_predict_matches_the_numpy_reference(name, capsys, tmp_path):
    """MATLAB-layout data in, MATLAB-layout outputs out, against fixtures/generate_onnx.py."""
    path = ONNX_FIXTURES / name
    net = loaded(str(path))
    ref = np.load(path.with_suffix(".npz"))
    xs = [ref[f"x{j}"] for j in range(len(net.input_names))]
    data = save_inputs(
        tmp_path / "x.mat", [to_matlab(x, k) for x, k in zip(xs, net.input_layouts, strict=True)]
    )
    code, _, err = run(capsys, "predict", path, "--inputs", data, "-o", tmp_path / "y.mat")
    assert code == 0, err
    y = scipy.io.loadmat(tmp_path / "y.mat")["Y"]
    expected = to_matlab(ref["y0"], net.output_layouts[0])
    assert_scaled_close(y.reshape(expected.shape), expected, ONNX_FIXTURE_RTOL, name)


# --------------------------------------------------------------------------------------
# Images and sequences: element by element, and finite differences in MATLAB's layout
# --------------------------------------------------------------------------------------

IMAGE_FIXTURES = ["matlab2020a_conv_fc_dropout", "matlab2024b_same_pad", "matlab_addition_sum"]


@pytest.mark.parametrize("name", IMAGE_FIXTURES)
def test_image_jacobian_is_the_gradient_image(name, capsys, tmp_path):
    """reshape(J(s,:,n), H, W, C) is d output s / d image of sample n; and J matches central
    differences of `mat2grad predict` on the H x W x C x N array, perturbed pixel by pixel
    (all perturbed copies in one call)."""
    path = ONNX_FIXTURES / f"{name}.onnx"
    net = loaded(str(path))
    (x,) = sample_batch(net, 2, seed=2)
    c, h, w = x.shape[1:]
    xm = x.transpose(2, 3, 1, 0)  # H x W x C x N
    scipy.io.savemat(tmp_path / "x.mat", {"X": xm})
    code, _, err = run(
        capsys, "jacobian", path, "--inputs", tmp_path / "x.mat", "-o", tmp_path / "j.mat"
    )
    assert code == 0, err
    jm = scipy.io.loadmat(tmp_path / "j.mat")["J"]
    jb, _ = lib_jacobian(net, [x])
    jb = jb[0][0]  # (N, S, C, H, W)
    s_count = jb.shape[1]
    assert jm.shape == (s_count, h * w * c, 2)
    for n, s in np.ndindex(2, s_count):
        image = jm[s, :, n].reshape(h, w, c, order="F")
        for hh, ww, cc in np.ndindex(h, w, c):
            assert image[hh, ww, cc] == jb[n, s, cc, hh, ww]

    r_count = h * w * c
    flat = xm.reshape(r_count, 2, order="F")
    plus = np.repeat(flat[:, None, :], r_count, axis=1)  # R x R(perturbed) x N
    minus = plus.copy()
    for r in range(r_count):
        plus[r, r, :] += FD_STEP
        minus[r, r, :] -= FD_STEP
    both = np.concatenate([plus, minus], axis=1).reshape(r_count, -1, order="F")
    scipy.io.savemat(tmp_path / "p.mat", {"X": both.reshape(h, w, c, -1, order="F")})
    code, _, err = run(
        capsys, "predict", path, "--inputs", tmp_path / "p.mat", "-o", tmp_path / "yp.mat"
    )
    assert code == 0, err
    # sample m = r + R * (sign + 2 * n): S x R x (plus, minus) x N
    yp = scipy.io.loadmat(tmp_path / "yp.mat")["Y"].reshape(s_count, r_count, 2, 2, order="F")
    fd = (yp[:, :, 0, :] - yp[:, :, 1, :]) / (2 * FD_STEP)
    assert_scaled_close(jm, fd, FD_RTOL, f"{name}: J vs central differences")


def test_sequence_outputs_are_c_by_n_by_t_also_in_hdf5(capsys, tmp_path):
    """A sequence-to-sequence LSTM: Y is C x N x T (the sample index in the middle), J is
    (C_out*T) x (C_in*T) x N in column-major order of C x T; the same in a v7.3 file."""
    path = ONNX_FIXTURES / "matlab_lstm_zerocenter_sequence.onnx"
    net = loaded(str(path))
    assert net.input_layouts == net.output_layouts == ("sequence",)
    (x,) = sample_batch(net, N, seed=3)  # (N, T, C)
    scipy.io.savemat(tmp_path / "x.mat", {"X": x.transpose(2, 0, 1)})
    jb, yb = lib_jacobian(net, [x])
    (t, co), ci = yb[0].shape[1:], x.shape[2]
    for fmt in ("v7", "v7.3"):
        out = tmp_path / f"j{fmt}.mat"
        code, _, err = run(
            capsys, "jacobian", path, "--inputs", tmp_path / "x.mat", "--format", fmt, "-o", out
        )
        assert code == 0, err
        got = matfile.read_mat(out)
        assert got["Y"].shape == (co, N, t)
        for o, n, tt in np.ndindex(co, N, t):
            assert got["Y"][o, n, tt] == yb[0][n, tt, o]
        assert got["J"].shape == (co * t, ci * t, N)
        for n, to, o, ti, i in np.ndindex(N, t, co, t, ci):
            assert got["J"][o + co * to, i + ci * ti, n] == jb[0][0][n, to, o, ti, i]


# --------------------------------------------------------------------------------------
# Several inputs and outputs, integer inputs, --wrt
# --------------------------------------------------------------------------------------


def _f32(name, values):
    return numpy_helper.from_array(np.asarray(values, dtype=np.float32), name)


@pytest.fixture(scope="module")
def three_inputs(tmp_path_factory) -> str:
    """Inputs a (features, 2), b (image, 1x2x3), k (int64 features, 2); outputs y1 (3) and
    y2 (2): y = act([a .* k, flatten(b)] W + c)."""
    rng = np.random.default_rng(7)
    nodes = [
        helper.make_node("Cast", ["k"], ["kf"], name="cast", to=TensorProto.FLOAT),
        helper.make_node("Mul", ["a", "kf"], ["ak"], name="mul"),
        helper.make_node("Flatten", ["b"], ["bf"], name="flat", axis=1),
        helper.make_node("Concat", ["ak", "bf"], ["z"], name="cat", axis=1),
        helper.make_node("Gemm", ["z", "w1", "c1"], ["g1"], name="fc1"),
        helper.make_node("Tanh", ["g1"], ["y1"], name="tanh"),
        helper.make_node("Gemm", ["z", "w2", "c2"], ["g2"], name="fc2"),
        helper.make_node("Sigmoid", ["g2"], ["y2"], name="sig"),
    ]
    graph = helper.make_graph(
        nodes,
        "three",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 2]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 1, 2, 3]),
            helper.make_tensor_value_info("k", TensorProto.INT64, ["N", 2]),
        ],
        [
            helper.make_tensor_value_info("y1", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("y2", TensorProto.FLOAT, ["N", 2]),
        ],
        initializer=[
            _f32("w1", rng.normal(size=(8, 3))),
            _f32("c1", rng.normal(size=3)),
            _f32("w2", rng.normal(size=(8, 2))),
            _f32("c2", rng.normal(size=2)),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("onnx") / "three.onnx"
    onnx.save(model, path)
    return str(path)


def _three_data(tmp_path, k_values):
    rng = np.random.default_rng(8)
    a, b = rng.uniform(-1, 1, (N, 2)), rng.uniform(-1, 1, (N, 1, 2, 3))
    data = save_inputs(tmp_path / "x.mat", [a.T, b.transpose(2, 3, 1, 0), k_values.T])
    return data, [a, b, k_values.astype(np.int64)]


def test_several_inputs_and_outputs_make_cells(three_inputs, capsys, tmp_path):
    net = loaded(three_inputs)
    assert net.input_layouts == ("features", "image", "features")
    assert net.wrt == ("a", "b")  # floating inputs only
    data, xs = _three_data(tmp_path, np.array([[1, -2], [3, 0], [2, 5]], dtype=np.int32))
    code, _, err = run(capsys, "predict", three_inputs, "--inputs", data, "-o", tmp_path / "y.mat")
    assert code == 0, err
    y = scipy.io.loadmat(tmp_path / "y.mat")["Y"]
    ref = predict_arrays(net, xs)
    assert y.shape == (2, 1)
    for k in range(2):
        assert_scaled_close(y[k, 0], ref[k].T, MODES_RTOL, f"Y{k + 1}")

    J, Y = lib_jacobian(net, xs, wrt=[0, 1])
    for wrt, cols in [((), [0, 1]), (("b",), [1]), (("b,a",), [1, 0]), (("a", "b"), [0, 1])]:
        argv = [a for name in wrt for a in ("--wrt", name)]
        code, _, err = run(
            capsys, "jacobian", three_inputs, "--inputs", data, *argv, "-o", tmp_path / "j.mat"
        )
        assert code == 0, err
        jm = scipy.io.loadmat(tmp_path / "j.mat")["J"]
        assert jm.shape == (2, len(cols)), wrt
        for k in range(2):
            for jj, j in enumerate(cols):
                expected = jacobian_in_matlab_layout(
                    J[k][j], "features", net.input_layouts[j], Y[k].shape[1:], xs[j].shape[1:]
                )
                assert_scaled_close(jm[k, jj], expected, MODES_RTOL, f"{wrt}: J{{{k},{jj}}}")


def test_integer_inputs_stay_integers(three_inputs, capsys, tmp_path):
    net = loaded(three_inputs)
    data, xs = _three_data(tmp_path, np.array([[1, -2], [3, 0], [2, 5]], dtype=np.float64))
    code, _, err = run(capsys, "predict", three_inputs, "--inputs", data, "-o", tmp_path / "y.mat")
    assert code == 0, err
    y = scipy.io.loadmat(tmp_path / "y.mat")["Y"]
    assert_scaled_close(y[0, 0], predict_arrays(net, xs)[0].T, MODES_RTOL, "whole doubles")

    data, _ = _three_data(tmp_path, np.array([[1, -2], [3, 0.5], [2, 5]]))
    code, _, err = run(capsys, "predict", three_inputs, "--inputs", data, "-o", tmp_path / "y.mat")
    assert_one_line_error(code, err, r"input 'k'\) is an integer input .* not whole numbers")

    data, _ = _three_data(tmp_path, np.ones((N, 2)))
    code, _, err = run(
        capsys, "jacobian", three_inputs, "--inputs", data, "--wrt", "k", "-o", tmp_path / "j.mat"
    )
    assert_one_line_error(code, err, r"input 'k' has element type int64; only floating inputs")
    code, _, err = run(
        capsys, "jacobian", three_inputs, "--inputs", data, "--wrt", "h0", "-o", tmp_path / "j.mat"
    )
    assert_one_line_error(code, err, r"--wrt 'h0' is not an input of the model \(inputs: a, b, k\)")
    assert not (tmp_path / "j.mat").exists()


@requires_corpus
def test_lstm_with_initial_states(capsys, tmp_path):
    """PyTorch 0.3's LSTM with h0/c0 inputs: X C x N x T, h0 and c0 C x N; J is a 3 x 3 cell
    (3 x 2 with --wrt 1,2)."""
    path = str(CORPUS / "onnx/pytorch03_colisaar_lstm.onnx")
    net = loaded(path)
    xs = sample_batch(net, N, seed=4)
    data = save_inputs(
        tmp_path / "x.mat", [to_matlab(x, k) for x, k in zip(xs, net.input_layouts, strict=True)]
    )
    J, Y = lib_jacobian(net, xs)
    code, _, err = run(
        capsys, "jacobian", path, "--inputs", data, "--wrt", "1,2", "-o", tmp_path / "j.mat"
    )
    assert code == 0, err
    got = scipy.io.loadmat(tmp_path / "j.mat")
    assert got["J"].shape == (3, 2) and got["Y"].shape == (3, 1)
    assert got["Y"][0, 0].shape == (3, N, 5)  # C x N x T
    for k in range(3):
        for jj, j in enumerate([1, 2]):
            expected = jacobian_in_matlab_layout(
                J[k][j],
                net.output_layouts[k],
                net.input_layouts[j],
                Y[k].shape[1:],
                xs[j].shape[1:],
            )
            assert_scaled_close(got["J"][k, jj], expected, MODES_RTOL, f"J{{{k},{jj}}}")


# --------------------------------------------------------------------------------------
# Hessians
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, index", [("matlab2020a_conv_fc_dropout", 2), ("matlab_lstm_zerocenter_sequence", 6)]
)
def test_hessian_in_both_layouts(name, index, capsys, tmp_path):
    """--output-index K counts the elements of one output sample in MATLAB's order (C x T
    column-major for a sequence) or, with --layout onnx, in the file's (C) order."""
    path = ONNX_FIXTURES / f"{name}.onnx"
    net = loaded(str(path))
    (x,) = sample_batch(net, 2, seed=5)
    (in_kind,), (out_kind,) = net.input_layouts, net.output_layouts
    out_shape = predict_arrays(net, [x[:1]])[0].shape[1:]
    flat = int(matlab_order(out_shape, out_kind)[index - 1])
    H = hessian(net, x, output=flat).numpy()
    scipy.io.savemat(tmp_path / "x.mat", {"X": to_matlab(x, in_kind)})
    code, _, err = run(
        capsys,
        "hessian",
        path,
        "--inputs",
        tmp_path / "x.mat",
        "--output-index",
        index,
        "-o",
        tmp_path / "h.mat",
    )
    assert code == 0, err
    got = scipy.io.loadmat(tmp_path / "h.mat")
    r = x[0].size
    expected = jacobian_in_matlab_layout(H, in_kind, in_kind, x.shape[1:], x.shape[1:])
    assert got["H"].shape == (r, r, 2)
    assert_scaled_close(got["H"], expected, MODES_RTOL, "H")
    assert_scaled_close(got["H"], got["H"].transpose(1, 0, 2), MODES_RTOL, "symmetric")

    scipy.io.savemat(tmp_path / "xb.mat", {"X": x})
    code, _, err = run(
        capsys,
        "hessian",
        path,
        "--inputs",
        tmp_path / "xb.mat",
        "--layout",
        "onnx",
        "--output-index",
        flat + 1,
        "-o",
        tmp_path / "hb.mat",
    )
    assert code == 0, err
    assert_scaled_close(scipy.io.loadmat(tmp_path / "hb.mat")["H"], H, MODES_RTOL, "H, onnx")


def test_hessian_needs_one_input_and_one_output(three_inputs, capsys, tmp_path):
    data, _ = _three_data(tmp_path, np.ones((N, 2)))
    code, _, err = run(capsys, "hessian", three_inputs, "--inputs", data, "-o", tmp_path / "h.mat")
    assert_one_line_error(code, err, r"one input; choose one of a, b with --wrt NAME")
    code, _, err = run(
        capsys, "hessian", three_inputs, "--inputs", data, "--wrt", "a", "-o", tmp_path / "h.mat"
    )
    assert_one_line_error(code, err, r"one output \(this one has 2: y1, y2\)")


# --------------------------------------------------------------------------------------
# check
# --------------------------------------------------------------------------------------


def test_check_at_random_points_and_at_given_inputs(three_inputs, capsys, tmp_path):
    path = ONNX_FIXTURES / "matlab2024b_same_pad.onnx"
    code, out, err = run(capsys, "check", path, "--max-samples", "3")
    assert code == 0, err
    assert "3 random points, every input element uniform in [-1, 1] (seed 0)" in out
    assert "OK: autograd" in out
    code, out, err = run(capsys, "check", path, "--max-samples", "2", "--tol", "1e-300")
    assert code == 1 and "check failed" in err

    data, _ = _three_data(tmp_path, np.array([[1, -2], [3, 0], [2, 5]]))
    code, out, err = run(capsys, "check", three_inputs, "--inputs", data, "--wrt", "b")
    assert code == 0, err
    assert "output y1" in out and "output y2" in out
    code, out, err = run(capsys, "check", three_inputs, "--max-samples", "4")
    assert code == 0, err  # k is zero at the random points: the check still runs


# --------------------------------------------------------------------------------------
# Non-differentiable and zero-derivative models; errors
# --------------------------------------------------------------------------------------


def _one_input_model(tmp_path, nodes, name, out_type=TensorProto.FLOAT):
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", out_type, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, path)
    return path


def test_argmax_model_predicts_but_has_no_gradient(capsys, tmp_path):
    path = _one_input_model(
        tmp_path,
        [
            helper.make_node("ArgMax", ["x"], ["i"], name="am", axis=1),
            helper.make_node("Cast", ["i"], ["y"], name="c", to=TensorProto.FLOAT),
        ],
        "argmax",
    )
    x = np.array([[0.1, 0.9, 0.3], [0.5, 0.2, 0.8], [0.0, 0.1, 0.2], [0.3, 0.0, 0.1]])  # 4 x N
    scipy.io.savemat(tmp_path / "x.mat", {"X": x})
    code, _, err = run(
        capsys, "predict", path, "--inputs", tmp_path / "x.mat", "-o", tmp_path / "y.mat"
    )
    assert code == 0, err
    np.testing.assert_array_equal(scipy.io.loadmat(tmp_path / "y.mat")["Y"].ravel(), x.argmax(0))
    for command in ("jacobian", "hessian", "check"):
        out = ["-o", tmp_path / "j.mat"] if command != "check" else []
        code, _, err = run(capsys, command, path, "--inputs", tmp_path / "x.mat", *out)
        assert_one_line_error(
            code,
            err,
            r"argmax.onnx: gradients with respect to the inputs are not defined: "
            r"output 'y' depends on the inputs only through ArgMax \(node 'am'\) returns indices",
        )
    assert not (tmp_path / "j.mat").exists()


def test_zero_derivative_warns_in_one_line(capsys, tmp_path):
    path = _one_input_model(
        tmp_path,
        [
            helper.make_node("Floor", ["x"], ["f"], name="fl"),
            helper.make_node("Mul", ["f", "x"], ["y"], name="m"),
        ],
        "floor",
    )
    scipy.io.savemat(
        tmp_path / "x.mat", {"X": np.array([[0.5, 1.5], [2.5, -0.5], [1, 2], [3, 4.5]])}
    )
    code, _, err = run(
        capsys, "jacobian", path, "--inputs", tmp_path / "x.mat", "-o", tmp_path / "j.mat"
    )
    assert code == 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mat2grad: warning: "), err
    assert "Floor (node 'fl') is zero almost everywhere" in lines[0]


@requires_corpus
def test_titanic_pipeline_fails_naming_the_operator(capsys, tmp_path):
    path = CORPUS / "onnx/skl2onnx_titanic_pipeline.onnx"
    scipy.io.savemat(tmp_path / "x.mat", {"X": np.ones((1, 2))})
    for command in ("jacobian", "check"):
        out = ["-o", tmp_path / "j.mat"] if command != "check" else []
        code, _, err = run(capsys, command, path, "--inputs", tmp_path / "x.mat", *out)
        assert_one_line_error(code, err, r"operator OneHotEncoder .*\(not differentiable\)")


@pytest.mark.parametrize(
    "name, argv, pattern",
    [
        (
            "matlab2020a_conv_fc_dropout",
            ["--inputs", "{x34}"],
            r"'X' \(input 'imageinput'\): .* takes 1x4x3; expected 4x3x1xN \(H x W x C x N\)",
        ),
        (
            "matlab2020a_conv_fc_dropout",
            ["--inputs", "{x34}", "--samples", "rows"],
            r"'imageinput' is a 'image' array; use the MATLAB layout .* or --layout onnx",
        ),
        (
            "matlab2020a_conv_fc_dropout",
            ["--inputs", "{x34}", "--layout", "onnx"],
            r"batch-first \(--layout onnx\) data must be N x 1 x 4 x 3; found a 3x4 double",
        ),
        (
            "matlab2020a_conv_fc_dropout",
            ["--inputs", "{x34}", "--network", "net"],
            r"--network chooses a network inside a MAT-file; an ONNX file holds one model",
        ),
        (
            "matlab2018_gemm6_features",
            ["--inputs", "{x34}"],
            r"takes 1x1x4; expected 4xN \(C x N\)",
        ),
    ],
)
def test_bad_data_is_one_line_naming_the_expected_size(name, argv, pattern, capsys, tmp_path):
    scipy.io.savemat(tmp_path / "x.mat", {"X": np.ones((3, 4))})
    argv = [str(tmp_path / "x.mat") if a == "{x34}" else a for a in argv]
    code, _, err = run(
        capsys, "predict", ONNX_FIXTURES / f"{name}.onnx", *argv, "-o", tmp_path / "y.mat"
    )
    assert_one_line_error(code, err, pattern)
    assert not (tmp_path / "y.mat").exists()


def test_onnx_options_on_a_mat_file_are_refused(capsys, tmp_path):
    mat = Path(__file__).resolve().parents[2] / "fixtures" / "example_fitnet.mat"
    scipy.io.savemat(tmp_path / "x.mat", {"X": np.ones((1, 2))})
    for extra, flag in [(["--layout", "onnx"], "--layout onnx"), (["--wrt", "x"], "--wrt")]:
        code, _, err = run(
            capsys,
            "jacobian",
            mat,
            "--inputs",
            tmp_path / "x.mat",
            *extra,
            "-o",
            tmp_path / "j.mat",
        )
        assert_one_line_error(code, err, rf"{flag} applies to ONNX models")


def test_samples_rows_for_feature_models(capsys, tmp_path):
    """--samples rows: N x C inputs, N x S outputs, N x S x R Jacobians (features only)."""
    path = ONNX_FIXTURES / "matlab2018_gemm6_features.onnx"
    net = loaded(str(path))
    (x,) = sample_batch(net, N, seed=6)  # (N, 1, 1, 4)
    scipy.io.savemat(tmp_path / "x.mat", {"X": x.reshape(N, 4)})
    code, _, err = run(
        capsys,
        "jacobian",
        path,
        "--inputs",
        tmp_path / "x.mat",
        "--samples",
        "rows",
        "-o",
        tmp_path / "j.mat",
    )
    assert code == 0, err
    got = scipy.io.loadmat(tmp_path / "j.mat")
    J, Y = lib_jacobian(net, [x])
    assert_scaled_close(got["Y"], Y[0], MODES_RTOL, "Y")
    assert_scaled_close(got["J"], J[0][0].reshape(N, 2, 4), MODES_RTOL, "J")


def test_info_names_the_matlab_sizes(capsys):
    code, out, _ = run(capsys, "info", ONNX_FIXTURES / "matlab2020a_conv_fc_dropout.onnx")
    assert code == 0
    assert "MATLAB layout 'image' (4x3x1xN)" in out
    assert "MATLAB layout 'features' (3xN)" in out
    code, out, _ = run(capsys, "info", ONNX_FIXTURES / "matlab_lstm_zerocenter_sequence.onnx")
    assert "MATLAB layout 'sequence' (3xNx4)" in out
