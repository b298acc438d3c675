"""Hoisting the step-independent work out of ``Loop`` bodies: mat2grad.onnx.ops.loop_hoisting.

Independent check: the same file evaluated with the body run step by step as written (the
plan switched off), forward and Jacobian (reverse and forward mode), on the real tf2onnx
exports and on hand-built Loops that move the counter's start, index with the iteration
counter, read two sequences, or step past the end of the sequence; and which of the two
paths ran (the step-by-step body is not called while the plan holds).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch.func import jacfwd, jacrev, vmap

from mat2grad.onnx import describe_onnx, load_onnx
from mat2grad.onnx.ops.control_flow import OnnxLoop, OnnxScan
from mat2grad.onnx.ops.loop_hoisting import MIN_STEPS
from tests.support.helpers import (
    CORPUS,
    ONNX_FIXTURE_RTOL,
    ONNX_FIXTURES,
    assert_scaled_close,
    backward_node_types,
)

EXPORTS = sorted(
    str(p)
    for p in [
        *(ONNX_FIXTURES / "tf2onnx").glob("*.onnx"),
        ONNX_FIXTURES / "control_flow" / "tf2onnx_gru_loop.onnx",
        *(CORPUS / "tf2onnx").glob("*.onnx"),
    ]
    if any(n.op_type == "Loop" for n in onnx.load(p, load_external_data=False).graph.node)
)
T, C, H = MIN_STEPS + 2, 2, 3


def _loops(net) -> list[OnnxLoop]:
    return [m for m in net.modules() if isinstance(m, OnnxLoop)]


def _outputs(net, x: torch.Tensor) -> list[torch.Tensor]:
    out = net(x)
    return list(out) if isinstance(out, tuple) else [out]


def _flat(net, x_one: torch.Tensor) -> torch.Tensor:
    return torch.cat([o[0].reshape(-1) for o in _outputs(net, x_one.unsqueeze(0))])


class _Calls:
    """Counts the calls of each Loop's step-by-step body."""

    def __init__(self, net) -> None:
        self.count = 0
        for loop in _loops(net):
            original = loop.body.forward

            def counted(*args, _original=original):
                self.count += 1
                return _original(*args)

            loop.body.forward = counted


def _pair(path: str):
    """The file loaded twice: as mat2grad runs it, and with every Loop body run as written."""
    hoisted = load_onnx(path, check=False)
    plain = load_onnx(path, check=False)
    for loop in _loops(plain):
        loop.hoisting = None
    return hoisted, plain


def _agree(path: str, x: torch.Tensor, jacobians: bool = True) -> _Calls:
    hoisted, plain = _pair(path)
    calls = _Calls(hoisted)
    for got, want in zip(_outputs(hoisted, x), _outputs(plain, x), strict=True):
        assert_scaled_close(got.detach(), want.detach(), ONNX_FIXTURE_RTOL, f"{path}: forward")
    if jacobians:
        want = vmap(jacrev(lambda v: _flat(plain, v)))(x)
        for how in (jacrev, jacfwd):
            got = vmap(how(lambda v: _flat(hoisted, v)))(x)
            assert_scaled_close(got, want, ONNX_FIXTURE_RTOL, f"{path}: {how.__name__}")
    return calls


@pytest.mark.parametrize("path", EXPORTS, ids=lambda p: p.rsplit("/", 1)[-1])
def test_real_loops_are_hoisted_and_agree_with_the_body_as_written(path):
    net = load_onnx(path, check=False)
    loops = _loops(net)
    assert loops and all(loop.hoisting is not None for loop in loops), path
    for loop in loops:
        counts = loop.hoisting.counts
        assert counts["hoisted"] > len(loop.hoisting.sources) and counts["step"] > 0, counts
    x = torch.from_numpy(np.random.default_rng(7).normal(size=(3, *net.input_shapes[0])))
    calls = _agree(path, x)
    steps = net.input_shapes[0][0]  # batch-first (N, T, C) exports
    if steps >= MIN_STEPS:
        assert calls.count == 0, "the step-by-step body ran although every Loop was hoisted"
    else:  # too short to gain: run as written
        assert calls.count > 0
    lines = describe_onnx(path)["control_flow"]
    assert all("run once for all steps together" in line for line in lines), lines


def _rnn_loop(
    start: int = 0,
    trips: int = T,
    index: str = "carried",
    second_length: int | None = None,
    length: int = T,
) -> onnx.ModelProto:
    """x [N, T, C] -> Transpose -> Loop over a tanh RNN cell (H units) -> (last state, all
    states). ``start``: the carried counter's first value; ``index``: the body reads step
    ``t`` with the carried counter or with the iteration counter (which starts at 0);
    ``second_length``: a second sequence (the first ``second_length`` steps of -x) read with
    the same counter and added to the input projection."""
    g = np.random.default_rng(5)
    w, w2 = g.normal(size=(C, H)), g.normal(size=(C, H))
    r, b, v = g.normal(scale=0.5, size=(H, H)), g.normal(size=(H,)), g.normal(size=(1, H))
    reader = "t" if index == "carried" else "iteration"
    body = [
        helper.make_node("Gather", ["xt", reader], ["x_t"], axis=0),
        helper.make_node("MatMul", ["x_t", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["xwb"]),
    ]
    projection = "xwb"
    if second_length is not None:
        body += [
            helper.make_node("Gather", ["xt2", reader], ["x2_t"], axis=0),
            helper.make_node("MatMul", ["x2_t", "W2"], ["x2w"]),
            helper.make_node("Add", ["xwb", "x2w"], ["both"]),
        ]
        projection = "both"
    body += [
        helper.make_node("MatMul", ["h", "R"], ["hr"]),
        helper.make_node("Add", [projection, "hr"], ["pre"]),
        helper.make_node("Tanh", ["pre"], ["h_next"]),
        helper.make_node("Identity", ["h_next"], ["h_scan"]),
        helper.make_node("Add", ["t", "one"], ["t_next"]),
        helper.make_node("Identity", ["cond"], ["cond_next"]),
    ]
    f = TensorProto.DOUBLE
    body_graph = helper.make_graph(
        body,
        "rnn_body",
        [
            helper.make_tensor_value_info("iteration", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
            helper.make_tensor_value_info("t", TensorProto.INT64, []),
            helper.make_tensor_value_info("h", f, None),
        ],
        [
            helper.make_tensor_value_info("cond_next", TensorProto.BOOL, []),
            helper.make_tensor_value_info("t_next", TensorProto.INT64, []),
            helper.make_tensor_value_info("h_next", f, None),
            helper.make_tensor_value_info("h_scan", f, None),
        ],
        initializer=[numpy_helper.from_array(np.array(1, np.int64), "one")],
    )
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
        helper.make_node("ReduceSum", ["x", "features"], ["total"], keepdims=0),
        helper.make_node("Unsqueeze", ["total", "last"], ["total_col"]),
        helper.make_node("Mul", ["total_col", "v"], ["h0_pre"]),
        helper.make_node("Tanh", ["h0_pre"], ["h0"]),
    ]
    if second_length is not None:
        nodes += [
            helper.make_node("Neg", ["x"], ["neg"]),
            helper.make_node("Transpose", ["neg"], ["neg_t"], perm=[1, 0, 2]),
            helper.make_node("Slice", ["neg_t", "zero1", "length2", "zero1"], ["xt2"]),
        ]
    nodes += [
        helper.make_node(
            "Loop", ["trips", "", "start", "h0"], ["t_last", "h_last", "h_all"], body=body_graph,
            name="rnn/while_loop",
        ),
        helper.make_node("Transpose", ["h_all"], ["y_all"], perm=[1, 0, 2]),
    ]  # fmt: skip
    inits = {
        "W": w, "W2": w2, "R": r, "b": b, "v": v,
        "trips": np.array(trips, np.int64), "start": np.array(start, np.int64),
        "last": np.array([1], np.int64), "features": np.array([1, 2], np.int64),
        "zero1": np.array([0], np.int64), "length2": np.array([second_length or 0], np.int64),
    }  # fmt: skip
    graph = helper.make_graph(
        nodes,
        "rnn",
        [helper.make_tensor_value_info("x", f, ["N", length, C])],
        [
            helper.make_tensor_value_info("h_last", f, ["N", H]),
            helper.make_tensor_value_info("y_all", f, ["N", trips, H]),
        ],
        initializer=[numpy_helper.from_array(a, k) for k, a in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _save(tmp_path, model: onnx.ModelProto) -> str:
    path = tmp_path / "rnn.onnx"
    onnx.save(model, path)
    return str(path)


X = torch.from_numpy(np.random.default_rng(11).normal(size=(4, T, C)))


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"start": 2, "trips": T - 2}, {"start": -T, "trips": T}, {"index": "iteration"},
     {"second_length": T}],
    ids=["counter", "start 2", "negative start", "iteration counter", "two sequences"],
)  # fmt: skip
def test_hand_built_loops_agree_with_the_body_as_written(tmp_path, kwargs):
    path = _save(tmp_path, _rnn_loop(**kwargs))
    (loop,) = _loops(load_onnx(path, check=False))
    assert loop.hoisting is not None
    assert len(loop.hoisting.sources) == (2 if "second_length" in kwargs else 1)
    calls = _agree(path, X)
    assert calls.count == 0


def test_the_start_of_the_counter_matters(tmp_path):
    """A plan that ignored the counter's first value would read the wrong steps."""
    at_0 = load_onnx(_save(tmp_path, _rnn_loop(start=0, trips=T - 2)), check=False)
    at_2 = load_onnx(_save(tmp_path, _rnn_loop(start=2, trips=T - 2)), check=False)
    y0, y2 = _outputs(at_0, X)[1], _outputs(at_2, X)[1]
    assert float((y0 - y2).abs().max()) > 0.1


def test_sequences_of_different_lengths_run_the_body_as_written(tmp_path):
    """Two gathered sequences of different lengths cannot be evaluated position by position
    together: the plan stands aside and the body runs step by step, with the same result."""
    path = _save(tmp_path, _rnn_loop(trips=T - 1, second_length=T - 1))
    calls = _agree(path, X, jacobians=False)
    assert calls.count == T - 1


def test_a_step_past_the_end_fails_as_the_body_would(tmp_path):
    """Where the counter leaves the sequence, the body itself runs that step, so the error
    is the one the Loop gives without hoisting (the file's own trip count stays inside, so
    the Loop module is called directly with one trip more)."""
    hoisted, plain = _pair(_save(tmp_path, _rnn_loop()))
    seen = []
    (loop,) = _loops(hoisted)
    loop.register_forward_pre_hook(lambda module, args: seen.append(args))
    hoisted._one_sample(X[0])  # one sample, outside vmap: plain tensors to call it with
    trips, *rest = seen[0]
    assert int(trips) == T
    errors = []
    for net in (hoisted, plain):
        with pytest.raises(IndexError) as info:
            _loops(net)[0](torch.tensor(T + 1), *rest)
        errors.append(str(info.value))
    assert errors[0] == errors[1]
    (other,) = _loops(plain)
    assert_scaled_close(loop(*seen[0])[1], other(*seen[0])[1], ONNX_FIXTURE_RTOL, "direct call")


def _two_way_scan(steps: int = T) -> onnx.ModelProto:
    """A Scan reading two sequences in opposite directions along different axes (x along
    its time axis 1 forwards, -x transposed to time-major backwards), a tanh RNN cell, the
    states stacked forwards and backwards."""
    g = np.random.default_rng(9)
    f = TensorProto.DOUBLE
    w, w2, r = g.normal(size=(C, H)), g.normal(size=(C, H)), g.normal(scale=0.5, size=(H, H))
    body = helper.make_graph(
        [
            helper.make_node("MatMul", ["a_t", "W"], ["aw"]),
            helper.make_node("MatMul", ["b_t", "W2"], ["bw"]),
            helper.make_node("Mul", ["aw", "bw"], ["ab"]),
            helper.make_node("MatMul", ["h", "R"], ["hr"]),
            helper.make_node("Add", ["ab", "hr"], ["pre"]),
            helper.make_node("Tanh", ["pre"], ["h_next"]),
            helper.make_node("Identity", ["h_next"], ["forwards"]),
            helper.make_node("Identity", ["h_next"], ["backwards"]),
        ],
        "scan_body",
        [helper.make_tensor_value_info(n, f, None) for n in ("h", "a_t", "b_t")],
        [helper.make_tensor_value_info(n, f, None) for n in ("h_next", "forwards", "backwards")],
        initializer=[numpy_helper.from_array(a, k) for k, a in (("W", w), ("W2", w2), ("R", r))],
    )
    nodes = [
        helper.make_node("Neg", ["x"], ["neg"]),
        helper.make_node("Transpose", ["neg"], ["neg_t"], perm=[1, 0, 2]),
        helper.make_node("ReduceSum", ["x", "features"], ["h0"], keepdims=0),
        helper.make_node("Unsqueeze", ["h0", "last"], ["h0_col"]),
        helper.make_node("Mul", ["h0_col", "v"], ["h_init"]),
        helper.make_node(
            "Scan", ["h_init", "x", "neg_t"], ["h_last", "y_fwd", "y_bwd"], body=body,
            num_scan_inputs=2, scan_input_axes=[1, 0], scan_input_directions=[0, 1],
            scan_output_axes=[1, 0], scan_output_directions=[0, 1],
        ),
    ]  # fmt: skip
    inits = {"features": np.array([1, 2], np.int64), "last": np.array([1], np.int64),
             "v": g.normal(size=(1, H)) * 0.1}  # fmt: skip
    graph = helper.make_graph(
        nodes,
        "two_way",
        [helper.make_tensor_value_info("x", f, ["N", steps, C])],
        [
            helper.make_tensor_value_info("h_last", f, ["N", H]),
            helper.make_tensor_value_info("y_fwd", f, ["N", steps, H]),
            helper.make_tensor_value_info("y_bwd", f, [steps, "N", H]),
        ],
        initializer=[numpy_helper.from_array(a, k) for k, a in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _scans(net) -> list[OnnxScan]:
    return [m for m in net.modules() if isinstance(m, OnnxScan)]


@pytest.mark.parametrize("source", ["fixture", "two directions"])
def test_scans_are_hoisted_and_agree_with_the_body_as_written(tmp_path, source):
    if source == "fixture":  # 5 steps: fewer than MIN_STEPS, so it runs as written
        path = str(ONNX_FIXTURES / "control_flow" / "scan_rnn_reverse.onnx")
    else:
        path = str(tmp_path / "scan.onnx")
        onnx.save(_two_way_scan(), path)
    hoisted = load_onnx(path, check=False)
    plain = load_onnx(path, check=False)
    (scan,) = _scans(hoisted)
    assert scan.hoisting is not None and scan.hoisting.counts["hoisted"] >= 1
    _scans(plain)[0].hoisting = None
    calls = 0
    original = scan.body.forward

    def counted(*args):
        nonlocal calls
        calls += 1
        return original(*args)

    scan.body.forward = counted
    x = torch.from_numpy(np.random.default_rng(3).normal(size=(3, *hoisted.input_shapes[0])))
    for got, want in zip(_outputs(hoisted, x), _outputs(plain, x), strict=True):
        assert_scaled_close(got, want, ONNX_FIXTURE_RTOL, f"{source}: forward")
    want = vmap(jacrev(lambda v: _flat(plain, v)))(x)
    for how in (jacrev, jacfwd):
        got = vmap(how(lambda v: _flat(hoisted, v)))(x)
        assert_scaled_close(got, want, ONNX_FIXTURE_RTOL, f"{source}: {how.__name__}")
    assert (calls == 0) == (source != "fixture"), calls


def test_short_sequences_run_the_body_as_written(tmp_path):
    """Below MIN_STEPS the hoisted evaluation costs more than it saves."""
    path = _save(tmp_path, _rnn_loop(start=T - MIN_STEPS + 1, trips=MIN_STEPS - 1))
    assert _agree(path, X, jacobians=False).count == 0  # the sequence itself is long enough
    short = X[:, : MIN_STEPS - 1]
    hoisted, plain = _pair(_save(tmp_path, _rnn_loop(trips=MIN_STEPS - 1, length=MIN_STEPS - 1)))
    calls = _Calls(hoisted)
    for got, want in zip(_outputs(hoisted, short), _outputs(plain, short), strict=True):
        assert_scaled_close(got, want, ONNX_FIXTURE_RTOL, "short")
    assert calls.count == MIN_STEPS - 1


def _step_views(net, steps: int) -> int:
    """Per-step view nodes (select, slice) in the backward graph of ``net`` on ``steps``
    steps of input."""
    x = torch.zeros(2, steps, C, dtype=torch.float64, requires_grad=True)
    nodes = backward_node_types(_outputs(net, x))
    return nodes["SelectBackward0"] + nodes["SliceBackward0"]


@pytest.mark.parametrize("source", ["loop", "scan"])
def test_hoisted_steps_are_viewed_once_per_sequence_not_once_per_step(tmp_path, source):
    # each step's view of the hoisted values costs the whole sequence in the backward pass
    # (NOTE: [Recurrent steps as one unbind]): their number must not grow with the steps
    counts = []
    for steps in (T, 3 * T):
        if source == "loop":
            model = _rnn_loop(trips=steps, length=steps)
        else:
            model = _two_way_scan(steps)
        path = str(tmp_path / f"{source}_{steps}.onnx")
        onnx.save(model, path)
        net = load_onnx(path, check=False)
        assert all(m.hoisting is not None for m in (*_loops(net), *_scans(net)))
        counts.append(_step_views(net, steps))
    assert counts[0] == counts[1], counts
