"""ONNX LSTM, GRU and RNN nodes: mat2grad.onnx.ops.recurrent.

The forward values are held to ONNX's own cases in test_conformance.py and to tf2onnx exports
in test_tf2onnx_exports.py; here, hand-built nodes with every option the step takes
(peepholes, input_forget, clip, both directions, linear_before_reset, biases, initial states)
are differentiated by reverse mode and checked against central finite differences, and the
backward graph is held to one view node per sequence, not one per step (NOTE: [Recurrent
steps as one unbind]).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch.func import jacrev, vmap

from mat2grad.onnx import load_onnx
from tests.support.helpers import FD_RTOL, FD_STEP, assert_scaled_close, backward_node_types

F, H = 3, 4  # input features, hidden size


def _recurrent(kind: str, steps: int, direction: str = "forward", **options) -> onnx.ModelProto:
    """``x (N, steps, F)`` -> Transpose -> one ``kind`` node -> its Y ``(steps, D, N, H)`` and
    Y_h ``(D, N, H)``, transposed batch-first, with biases and ``options`` (node attributes,
    plus ``peepholes``/``initial``: give P / initial_h (and initial_c))."""
    g = np.random.default_rng(5)
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[kind]
    dirs = 2 if direction == "bidirectional" else 1
    peepholes = options.pop("peepholes", False)
    initial = options.pop("initial", False)
    inits = {
        "W": g.normal(scale=0.5, size=(dirs, gates * H, F)),
        "R": g.normal(scale=0.5, size=(dirs, gates * H, H)),
        "B": g.normal(scale=0.2, size=(dirs, 2 * gates * H)),
    }
    inputs = ["xt", "W", "R", "B", ""]
    if initial:
        inits["h0"] = g.normal(scale=0.3, size=(dirs, 1, H))
        inputs.append("h0")
        if kind == "LSTM":
            inits["c0"] = g.normal(scale=0.3, size=(dirs, 1, H))
            inputs.append("c0")
    if peepholes:
        inits["P"] = g.normal(scale=0.3, size=(dirs, 3 * H))
        inputs += [""] * (7 - len(inputs)) + ["P"]
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
        helper.make_node(kind, inputs, ["Y", "Y_h"], hidden_size=H, direction=direction, **options),
        helper.make_node("Transpose", ["Y"], ["y"], perm=[2, 0, 1, 3]),
        helper.make_node("Transpose", ["Y_h"], ["h"], perm=[1, 0, 2]),
    ]
    d = TensorProto.DOUBLE
    graph = helper.make_graph(
        nodes,
        kind.lower(),
        [helper.make_tensor_value_info("x", d, ["N", steps, F])],
        [
            helper.make_tensor_value_info("y", d, ["N", steps, dirs, H]),
            helper.make_tensor_value_info("h", d, ["N", dirs, H]),
        ],
        initializer=[numpy_helper.from_array(a, k) for k, a in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


CASES = {
    "lstm": ("LSTM", {}),
    "lstm peepholes, input_forget, clip, both directions, initial states": (
        "LSTM",
        dict(direction="bidirectional", peepholes=True, input_forget=1, clip=1.5, initial=True),
    ),
    "lstm reverse": ("LSTM", dict(direction="reverse")),
    "gru": ("GRU", dict(initial=True)),
    "gru linear_before_reset, both directions": (
        "GRU",
        dict(direction="bidirectional", linear_before_reset=1),
    ),
    "rnn reverse": ("RNN", dict(direction="reverse", initial=True)),
}


def _load(tmp_path, kind: str, steps: int, options: dict):
    path = tmp_path / f"{kind}_{steps}.onnx"
    onnx.save(_recurrent(kind, steps, **dict(options)), path)
    return load_onnx(str(path), check=False)


def _flat(net, x_one: torch.Tensor) -> torch.Tensor:
    return torch.cat([o[0].reshape(-1) for o in net(x_one.unsqueeze(0))])


@pytest.mark.parametrize("case", sorted(CASES))
def test_reverse_mode_matches_central_differences(tmp_path, case):
    kind, options = CASES[case]
    net = _load(tmp_path, kind, 6, options)
    x = torch.from_numpy(np.random.default_rng(2).normal(size=(2, 6, F)))
    got = vmap(jacrev(lambda v: _flat(net, v)))(x)
    with torch.no_grad():
        for q in range(x.shape[0]):
            want = torch.empty_like(got[q])
            for k in range(x[q].numel()):
                step = torch.zeros(x[q].numel(), dtype=x.dtype)
                step[k] = FD_STEP
                step = step.view_as(x[q])
                up, down = _flat(net, x[q] + step), _flat(net, x[q] - step)
                want.view(want.shape[0], -1)[:, k] = (up - down) / (2 * FD_STEP)
            assert_scaled_close(got[q], want, FD_RTOL, f"{case}, sample {q}")


@pytest.mark.parametrize("case", sorted(CASES))
def test_steps_are_viewed_once_per_sequence_not_once_per_step(tmp_path, case):
    kind, options = CASES[case]
    dirs = 2 if options.get("direction") == "bidirectional" else 1
    counts = {}
    for steps in (8, 24):
        net = _load(tmp_path, kind, steps, options)
        x = torch.zeros(2, steps, F, dtype=torch.float64, requires_grad=True)
        nodes = backward_node_types(net(x))
        assert nodes["UnbindBackward0"] == dirs, nodes
        counts[steps] = {k: nodes[k] for k in ("SelectBackward0", "SliceBackward0")}
    # the views of one step each cost the whole sequence in the backward pass: their number
    # must not grow with the steps
    assert counts[8] == counts[24], counts
