"""ONNX control flow (``Loop``, ``Scan``, ``If``): mat2grad.onnx.ops.control_flow.

Independent checks: the numpy references of ``fixtures/generate_onnx_control_flow.py`` (the
Keras cell equations, float64), onnxruntime on the files (float32 module, float32
tolerance), ``jacrev`` against ``jacfwd`` and central finite differences of the float64
module, and ONNX's own conformance cases for the three operators. The real tf2onnx exports
of ``../shared/corpus/tf2onnx`` are read when the corpus is there.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch.func import jacfwd, jacrev, vmap

from mat2grad.errors import Mat2GradError
from mat2grad.onnx import describe_onnx, load_onnx
from mat2grad.onnx.check import float32_tolerance
from mat2grad.onnx.loader import onnx_to_torch
from tests.support.helpers import (
    CORPUS,
    FD_RTOL,
    FD_STEP,
    JAC_MODES_RTOL,
    ONNX_FIXTURE_RTOL,
    ONNX_FIXTURES,
    assert_scaled_close,
)

FOLDER = ONNX_FIXTURES / "control_flow"
FIXTURES = ("tf2onnx_gru_loop", "scan_rnn_reverse", "if_on_shape")
TF2ONNX = CORPUS / "tf2onnx"
REAL = (
    "tf2onnx_simplernn_controller.onnx",
    "tf2onnx_gru_forecast.onnx",
    "tf2onnx_lstm_relu_layernorm.onnx",
)
requires_ort = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime is not installed"
)
requires_corpus = pytest.mark.skipif(
    not TF2ONNX.is_dir(), reason="../shared/corpus/tf2onnx is absent"
)
FD_COORDS = 4  # input coordinates probed by finite differences per case


@functools.cache
def loaded(path: str, dtype: torch.dtype = torch.float64):
    return load_onnx(path, dtype=dtype, check=False)


def _outputs(net, *xs):
    outs = net(*xs)
    return outs if isinstance(outs, tuple) else (outs,)


def _flat(net, x_one: torch.Tensor) -> torch.Tensor:
    return torch.cat([o[0].reshape(-1) for o in _outputs(net, x_one.unsqueeze(0))])


def check_jacobian(net, x: torch.Tensor, what: str) -> None:
    """vmap(jacrev) == vmap(jacfwd), and central finite differences on a few coordinates."""
    f = functools.partial(_flat, net)
    q, n_in = x.shape[0], x[0].numel()
    j_rev = vmap(jacrev(f))(x).reshape(q, -1, n_in)
    j_fwd = vmap(jacfwd(f))(x).reshape(q, -1, n_in)
    assert torch.isfinite(j_rev).all(), what
    scale = max(1.0, float(j_rev.abs().max()))
    assert_scaled_close(j_fwd, j_rev, JAC_MODES_RTOL, f"{what}: jacfwd vs jacrev")
    assert float(j_rev.abs().max()) > 0, f"{what}: the Jacobian vanishes"
    for r in np.random.default_rng(0).choice(n_in, size=min(FD_COORDS, n_in), replace=False):
        step = torch.zeros(n_in, dtype=x.dtype)
        step[r] = FD_STEP
        step = step.reshape(x.shape[1:])
        fd = (vmap(f)(x + step) - vmap(f)(x - step)) / (2 * FD_STEP)
        assert_scaled_close(fd, j_rev[:, :, r], FD_RTOL * scale, f"{what}: FD, coord {r}")


def _ort(path, x: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: x.astype(np.float32)})


def _assert_float32_close(got, want, what):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    err = float(np.max(np.abs(got - want)))
    assert err <= float32_tolerance(want), f"{what}: {err:.3e}"


# --------------------------------------------------------------------------------------
# Hand-built fixtures
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_matches_numpy_reference(name):
    net = loaded(str(FOLDER / f"{name}.onnx"))
    data = np.load(FOLDER / f"{name}.npz")
    for j, out in enumerate(_outputs(net, torch.from_numpy(data["x0"]))):
        assert out.dtype == torch.float64
        assert_scaled_close(out.numpy(), data[f"y{j}"], ONNX_FIXTURE_RTOL, f"{name} y{j}")


@requires_ort
@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_matches_onnxruntime(name):
    path = FOLDER / f"{name}.onnx"
    net = load_onnx(path, dtype=torch.float32)
    assert net.check["reference"] == "file", net.check
    x = np.load(FOLDER / f"{name}.npz")["x0"]
    for j, (got, want) in enumerate(
        zip(_outputs(net, torch.from_numpy(x)), _ort(path, x), strict=True)
    ):
        _assert_float32_close(got.numpy(), want, f"{name} y{j}")


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_jacobian(name):
    net = loaded(str(FOLDER / f"{name}.onnx"))
    check_jacobian(net, torch.from_numpy(np.load(FOLDER / f"{name}.npz")["x0"]).double(), name)


def test_tf2onnx_loop_input_is_a_sequence():
    net = loaded(str(FOLDER / "tf2onnx_gru_loop.onnx"))
    assert net.input_layouts == ("sequence",)  # (T, C) per sample: MATLAB C x N x T
    assert net.input_batch_axes == (0,) and net.input_shapes == ((4, 2),)


@requires_ort
@pytest.mark.parametrize("width", [3, 5])
def test_if_takes_the_branch_the_shape_selects(width):
    path = FOLDER / "if_on_shape.onnx"
    net = loaded(str(path))
    x = np.random.default_rng(width).normal(size=(2, width))
    _assert_float32_close(net(torch.from_numpy(x)).numpy(), _ort(path, x)[0], f"width {width}")
    check_jacobian(net, torch.from_numpy(x), f"if_on_shape, width {width}")


def _batch_one(model: onnx.ModelProto) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for value in (*m.graph.input, *m.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    return m


@requires_ort
def test_loop_where_the_file_fixed_the_batch_at_one(tmp_path):
    path = tmp_path / "gru_batch1.onnx"
    onnx.save(_batch_one(onnx.load(FOLDER / "tf2onnx_gru_loop.onnx")), path)
    net = load_onnx(path)
    data = np.load(FOLDER / "tf2onnx_gru_loop.npz")
    x = torch.from_numpy(data["x0"]).double()  # three samples through a batch-1 file
    for j, out in enumerate(_outputs(net, x)):
        assert_scaled_close(out.numpy(), data[f"y{j}"], ONNX_FIXTURE_RTOL, f"y{j}")
    check_jacobian(net, x, "batch 1")


# --------------------------------------------------------------------------------------
# Data-dependent control flow is refused by name
# --------------------------------------------------------------------------------------


def _if_on_values() -> onnx.ModelProto:
    branch = {
        k: helper.make_graph(
            [helper.make_node(op, ["x"], [f"{k}_y"])],
            k,
            [],
            [helper.make_tensor_value_info(f"{k}_y", TensorProto.FLOAT, None)],
        )
        for k, op in (("then", "Tanh"), ("else", "Sigmoid"))
    }
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
        helper.make_node("Greater", ["total", "zero"], ["positive"]),
        helper.make_node(
            "If",
            ["positive"],
            ["y"],
            then_branch=branch["then"],
            else_branch=branch["else"],
            name="sign/if",
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        initializer=[numpy_helper.from_array(np.array(0.0, np.float32), "zero")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _while_on_values() -> onnx.ModelProto:
    """``while (sum(h) < 2) h = h * 1.5``: a Loop whose condition the data computes."""
    body = helper.make_graph(
        [
            helper.make_node("Mul", ["h", "factor"], ["h_next"]),
            helper.make_node("ReduceSum", ["h_next"], ["s"], keepdims=0),
            helper.make_node("Less", ["s", "two"], ["go_on"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
            helper.make_tensor_value_info("h", TensorProto.FLOAT, None),
        ],
        [
            helper.make_tensor_value_info("go_on", TensorProto.BOOL, []),
            helper.make_tensor_value_info("h_next", TensorProto.FLOAT, None),
        ],
        initializer=[
            numpy_helper.from_array(np.array(1.5, np.float32), "factor"),
            numpy_helper.from_array(np.array(2.0, np.float32), "two"),
        ],
    )
    nodes = [
        helper.make_node("Loop", ["max", "yes", "x"], ["y"], body=body, name="grow/while"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        initializer=[
            numpy_helper.from_array(np.array(20, np.int64), "max"),
            numpy_helper.from_array(np.array(True), "yes"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize(
    "build, node", [(_if_on_values, "If (node 'sign/if')"), (_while_on_values, "grow/while")]
)
def test_control_flow_on_data_values_is_refused_by_name(tmp_path, build, node):
    path = tmp_path / "data_dependent.onnx"
    onnx.save(build(), path)
    net = load_onnx(path, check=False)
    assert net.not_differentiable is not None and node in net.not_differentiable
    x = torch.rand(2, 3, dtype=torch.float64) + 0.1
    with pytest.raises(Mat2GradError, match=f"{node.split(' (')[0]}.*depends on the values"):
        net(x)


def test_scan_version_8_is_refused():
    from mat2grad.onnx.reader import scan

    body = helper.make_graph([], "b", [], [])
    node = helper.make_node("Scan", ["x"], ["y"], body=body, num_scan_inputs=1, name="s8")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)])
    with pytest.raises(Mat2GradError, match="Scan .*version 8"):
        scan(model, "m.onnx", None)


# --------------------------------------------------------------------------------------
# mat2grad info, and the fixture generator
# --------------------------------------------------------------------------------------


def test_info_lists_control_flow():
    info = describe_onnx(FOLDER / "tf2onnx_gru_loop.onnx")
    assert info["problem"] is None
    (line,) = info["control_flow"]
    assert line.startswith("Loop (node 'gru/while_loop')") and "2 outer-scope value" in line
    assert "control flow: Loop (node 'gru/while_loop')" in info["text"]
    assert len(describe_onnx(FOLDER / "if_on_shape.onnx")["control_flow"]) == 1


def test_control_flow_fixtures_are_reproducible(tmp_path):
    sys.path.insert(0, str(ONNX_FIXTURES.parent))
    try:
        import generate_onnx
        from generate_onnx_control_flow import CONTROL_FLOW_FIXTURES
    finally:
        sys.path.remove(str(ONNX_FIXTURES.parent))
    generate_onnx.write(CONTROL_FLOW_FIXTURES, tmp_path)
    assert sorted(CONTROL_FLOW_FIXTURES) == sorted(FIXTURES)
    for name in FIXTURES:
        assert (tmp_path / f"{name}.onnx").read_bytes() == (FOLDER / f"{name}.onnx").read_bytes()
        new, old = np.load(tmp_path / f"{name}.npz"), np.load(FOLDER / f"{name}.npz")
        for key in new.files:
            if key.startswith("x"):
                np.testing.assert_array_equal(new[key], old[key])
            else:
                assert_scaled_close(new[key], old[key], ONNX_FIXTURE_RTOL, f"{name} {key}")


# --------------------------------------------------------------------------------------
# Real tf2onnx exports (../shared/corpus/tf2onnx)
# --------------------------------------------------------------------------------------


@requires_corpus
@requires_ort
@pytest.mark.parametrize("file", REAL)
def test_tf2onnx_export_matches_onnxruntime(file):
    path = TF2ONNX / file
    net = load_onnx(path, dtype=torch.float32)  # the load-time check runs onnxruntime too
    assert "skipped" not in net.check, net.check
    shape = [3 if d is None else d for d in net.input_shapes[0]]
    x = np.random.default_rng(7).uniform(-1, 1, size=(3, *shape))
    _assert_float32_close(net(torch.from_numpy(x)).numpy(), _ort(path, x)[0], file)
    assert net.not_differentiable is None


@requires_corpus
@pytest.mark.parametrize("file", REAL)
def test_tf2onnx_export_jacobian(file):
    net = loaded(str(TF2ONNX / file))
    shape = [3 if d is None else d for d in net.input_shapes[0]]
    x = torch.from_numpy(np.random.default_rng(8).uniform(-1, 1, size=(2, *shape)))
    check_jacobian(net, x, file)


# --------------------------------------------------------------------------------------
# ONNX's conformance cases for Loop, Scan and If
# --------------------------------------------------------------------------------------

#: node cases with Loop/Scan/If at the top level -> None (passes) or the refusal expected
CONFORMANCE = {
    "test_if": None,
    "test_loop11": None,
    "test_scan9_sum": None,
    "test_scan9_multi_state": None,
    "test_scan9_scalar": None,
    "test_scan_sum": "Scan .*version 8",
    "test_if_seq": "rejects the graph",  # sequence-typed branch outputs
    "test_if_opt": "rejects the graph",  # optional-typed branch outputs
    "test_loop13_seq": "sequence_type",
    "test_loop16_seq_none": "optional_type",
}


@functools.cache
def _cases() -> dict:
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {c.name: c for c in collect_testcases(None) if c.name in CONFORMANCE}


@pytest.mark.parametrize("name", sorted(CONFORMANCE))
def test_conformance_case(name):
    case = _cases()[name]
    inputs, expected = case.data_sets[0]
    refusal = CONFORMANCE[name]
    if refusal is not None:
        with pytest.raises(Mat2GradError, match=refusal):
            onnx_to_torch(case.model, name)
        return
    gm, _, _ = onnx_to_torch(case.model, name)
    args = []
    for array in inputs:
        t = torch.from_numpy(np.array(array))
        args.append(t.double() if t.is_floating_point() else t)
    with torch.no_grad():
        got = gm(*args)
    got = got if isinstance(got, tuple | list) else (got,)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g.numpy(), np.asarray(e), rtol=case.rtol, atol=case.atol)
