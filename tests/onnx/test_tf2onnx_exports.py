"""Real tf2onnx exports of Keras recurrent models (``fixtures/onnx/tf2onnx/``, written by
``fixtures/generate_onnx_tf2onnx.py`` with TensorFlow and tf2onnx, which the project itself
does not need).

Independent checks: TensorFlow's own outputs stored beside each file (float32), onnxruntime
on the file (float32), both within the float32 rounding bound derived from the network (see
NOTE: [float32 round-off bound] in tests/support/helpers.py); and ``mat2grad.jacobian`` of
the float64 module in reverse and forward mode against central finite differences of
``mat2grad.predict`` on every input coordinate.
"""

from __future__ import annotations

import functools
import importlib.util
from collections import Counter

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

import mat2grad
from mat2grad.onnx import describe_onnx
from mat2grad.onnx.graph import _reshape_as_transpose
from mat2grad.onnx.loader import onnx_to_torch
from mat2grad.onnx.ops.gemm import GemmOutOfPlace
from mat2grad.onnx.ops.reverse_sequence import OnnxReverseSequence
from tests.support.helpers import (
    FD_RTOL,
    FD_STEP,
    JAC_MODES_RTOL,
    ONNX_FIXTURE_RTOL,
    ONNX_FIXTURES,
    assert_float32_agree,
    assert_scaled_close,
    float32_rounding_bound,
)

FOLDER = ONNX_FIXTURES / "tf2onnx"
#: file -> (ops of the main graph it must hold, batch size fixed in the file or None):
#: what each export stands for (tf2onnx fuses some Keras layers into LSTM/GRU nodes and
#: leaves the others as Loops)
EXPORTS = {
    "simplernn": ({"Loop": 1}, None),
    "gru": ({"GRU": 1}, None),
    "lstm": ({"LSTM": 1}, None),
    "lstm_masking": ({"Loop": 1}, None),
    "lstm_autoencoder_batch1": ({"LSTM": 4}, 1),
    "stacked_loops": ({"Loop": 3}, None),
    "simplernn_autoencoder_batch1": ({"Loop": 2}, 1),
    "bidirectional_lstm_masking": ({"Loop": 2, "ReverseSequence": 2}, None),
}
KEY_OPS = ("Loop", "LSTM", "GRU", "ReverseSequence")
FILES = sorted(EXPORTS)
requires_ort = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime is not installed"
)


@functools.cache
def loaded(name: str, dtype: torch.dtype = torch.float64):
    return mat2grad.load(FOLDER / f"{name}.onnx", dtype=dtype, check=False)


@functools.cache
def data(name: str) -> tuple[np.ndarray, np.ndarray]:
    d = np.load(FOLDER / f"{name}.npz")
    return d["x0"], d["y0"]


@functools.cache
def bound(name: str) -> np.ndarray:
    """Per output element, the float32 rounding bound of one evaluation on ``x0``."""
    (b,) = float32_rounding_bound(loaded(name), [data(name)[0]])
    return b


def masked(name: str) -> np.ndarray:
    """Input coordinates of ``x0`` that a Masking layer skips (every feature 0.0)."""
    x = data(name)[0]
    if "masking" not in name:
        return np.zeros(x.shape, bool)
    return np.broadcast_to((x == 0).all(-1, keepdims=True), x.shape)


def _ort(name: str, x: np.ndarray) -> np.ndarray:
    """onnxruntime on the file; one sample at a time where the file fixed the batch at 1."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(FOLDER / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    parts = [x[q : q + 1] for q in range(len(x))] if EXPORTS[name][1] == 1 else [x]
    return np.concatenate([session.run(None, {feed: p})[0] for p in parts])


def test_every_committed_export_is_tested():
    assert sorted(p.stem for p in FOLDER.glob("*.onnx")) == FILES
    assert sorted(p.stem for p in FOLDER.glob("*.npz")) == FILES


@pytest.mark.parametrize("name", FILES)
def test_export_holds_the_graph_it_stands_for(name):
    model = onnx.load(FOLDER / f"{name}.onnx")
    assert model.producer_name == "tf2onnx", model.producer_name
    ops, batch = EXPORTS[name]
    counts = Counter(n.op_type for n in model.graph.node)
    assert {op: counts[op] for op in KEY_OPS if counts[op]} == ops
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert (dim.dim_value if dim.HasField("dim_value") else None) == batch
    net = loaded(name)
    assert net.input_layouts == ("sequence",) and net.input_shapes == ((12, 3),)
    assert net.input_infos[0].role == "sequence"  # through a Transpose, or a batch-1 Reshape
    kind = "sequence" if "autoencoder" in name else "features"  # (T, C) or (2,) per sample
    assert net.output_layouts == (kind,)
    assert net.not_differentiable is None
    assert len(describe_onnx(FOLDER / f"{name}.onnx")["control_flow"]) == ops.get("Loop", 0)


@pytest.mark.parametrize("name", FILES)
def test_float64_module_matches_tensorflow(name):
    x, y = data(name)
    got = np.asarray(mat2grad.predict(loaded(name), x.astype(np.float64)))
    assert got.dtype == np.float64
    # TensorFlow's float32 evaluation is within the bound of the exact value, and the
    # float64 one within ~1e-16 relative of it: half of what two float32 evaluations may differ
    assert_float32_agree(got, y, bound(name) / 2, f"{name}: float64 module vs TensorFlow")


@requires_ort
@pytest.mark.parametrize("name", FILES)
def test_float32_module_matches_tensorflow_and_onnxruntime(name):
    net = mat2grad.load(FOLDER / f"{name}.onnx", dtype=torch.float32)
    assert net.check["reference"] == "file", net.check  # the load-time onnxruntime check ran
    x, y = data(name)
    got = np.asarray(mat2grad.predict(net, x))
    assert got.dtype == np.float32
    assert_float32_agree(got, y, bound(name), f"{name}: float32 module vs TensorFlow")
    assert_float32_agree(got, _ort(name, x), bound(name), f"{name}: vs onnxruntime")


@pytest.mark.parametrize("name", FILES)
def test_jacobian_matches_finite_differences(name):
    net = loaded(name)
    x = data(name)[0].astype(np.float64)
    q, n_in = x.shape[0], x[0].size
    j_rev = np.asarray(mat2grad.jacobian(net, x, mode="rev")).reshape(q, -1, n_in)
    j_fwd = np.asarray(mat2grad.jacobian(net, x, mode="fwd")).reshape(q, -1, n_in)
    scale = max(1.0, float(np.abs(j_rev).max()))
    assert np.isfinite(j_rev).all() and np.abs(j_rev).max() > 0, name
    assert_scaled_close(j_fwd, j_rev, JAC_MODES_RTOL * scale, f"{name}: fwd vs rev")
    skip = masked(name).reshape(q, n_in)
    for r in range(n_in):
        step = np.zeros(n_in)
        step[r] = FD_STEP
        step = step.reshape(x.shape[1:])
        plus = np.asarray(mat2grad.predict(net, x + step)).reshape(q, -1)
        minus = np.asarray(mat2grad.predict(net, x - step)).reshape(q, -1)
        fd = (plus - minus) / (2 * FD_STEP)
        keep = ~skip[:, r]  # a step off a masked 0.0 unmasks the time step: a jump
        what = f"{name}: FD, coordinate {r}"
        assert_scaled_close(fd[keep], j_rev[keep, :, r], FD_RTOL * scale, what)


@pytest.mark.parametrize("name", [n for n in FILES if "masking" in n])
def test_masked_time_steps_carry_the_state_over(name):
    """The steps the Masking layer skips leave the state as it was: sample 2's two masked
    leading steps moved to the end give the same output (both directions skip them); the
    Jacobian vanishes on them (Keras holds the mask fixed), and unmasking them changes the
    output."""
    net = loaded(name)
    x = data(name)[0].astype(np.float64)
    skip = masked(name)
    assert skip.any(axis=(1, 2)).all() and skip[2, :2].all()  # every sample has masked steps
    moved = np.concatenate([x[2, 2:], x[2, :2]])[None]
    y = np.asarray(mat2grad.predict(net, np.concatenate([x[2:], moved])))
    assert_scaled_close(y[1], y[0], ONNX_FIXTURE_RTOL, f"{name}: masked steps moved to the end")
    jac = np.asarray(mat2grad.jacobian(net, x)).transpose(0, 2, 3, 1)  # (Q, T, C, 2)
    assert (jac[skip] == 0).all() and np.abs(jac[~skip]).max() > 0
    seen = x.copy()
    seen[skip] = 0.5
    changed = np.asarray(mat2grad.predict(net, seen)) - np.asarray(mat2grad.predict(net, x))
    assert (np.abs(changed).max(axis=1) > 0).all()


# --------------------------------------------------------------------------------------
# What these exports needed: ReverseSequence, Gemm under vmap, a Reshape as a transpose
# --------------------------------------------------------------------------------------


#: the two examples of the ONNX operator definition (also its conformance cases):
#: time_axis, batch_axis, sequence_lens, input, expected output
_REVERSE_EXAMPLES = {
    "time": (0, 1, [4, 3, 2, 1], np.arange(16.0).reshape(4, 4).T, [
        [3, 6, 9, 12], [2, 5, 8, 13], [1, 4, 10, 14], [0, 7, 11, 15]]),
    "batch": (1, 0, [1, 2, 3, 4], np.arange(16.0).reshape(4, 4), [
        [0, 1, 2, 3], [5, 4, 6, 7], [10, 9, 8, 11], [15, 14, 13, 12]]),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(_REVERSE_EXAMPLES))
def test_reverse_sequence_follows_the_operator_definition(case):
    time_axis, batch_axis, lens, x, expected = _REVERSE_EXAMPLES[case]
    node = helper.make_node(
        "ReverseSequence", ["x", "lens"], ["y"], time_axis=time_axis, batch_axis=batch_axis
    )
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.DOUBLE, [4, 4]),
            helper.make_tensor_value_info("lens", TensorProto.INT64, [4]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [4, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)])
    gm, _, _ = onnx_to_torch(model, case)
    got = gm(torch.from_numpy(x), torch.tensor(lens))
    np.testing.assert_array_equal(got.numpy(), np.asarray(expected, np.float64))


def test_reverse_sequence_follows_lengths_that_are_data():
    """Per-sample lengths as a batched tensor under vmap: one gather, no Python branch."""
    module = OnnxReverseSequence(batch_axis=1, time_axis=0)
    x = torch.arange(2 * 5 * 3, dtype=torch.float64).reshape(2, 5, 1, 3)  # (Q, T, N=1, C)
    lens = torch.tensor([[3], [5]])
    got = torch.vmap(module)(x, lens)
    want = x.clone()
    want[0, :3] = x[0, :3].flip(0)
    want[1] = x[1].flip(0)
    assert torch.equal(got, want)
    jac = torch.func.jacrev(lambda v: module(v, lens[0]))(x[0])
    assert jac.sum() == x[0].numel() and (jac.amax(dim=(0, 1, 2)) == 1).all()  # a permutation


def test_reverse_sequence_refuses_lengths_beyond_the_sequence():
    module = OnnxReverseSequence(batch_axis=1, time_axis=0)
    x = torch.arange(2 * 5 * 3, dtype=torch.float64).reshape(2, 5, 1, 3)  # (Q, T, N=1, C)
    with pytest.raises(mat2grad.Mat2GradError, match=r"sequence_lens \[6\] lie outside \[0, 5\]"):
        torch.vmap(module, in_dims=(0, None))(x, torch.tensor([6]))
    # lengths that are data cannot be checked under vmap: that sample is NaN, not a number
    got = torch.vmap(module)(x, torch.tensor([[3], [-1]]))
    assert torch.isfinite(got[0]).all() and torch.isnan(got[1]).all()


def test_gemm_adds_a_batched_c_to_a_product_shared_by_all_samples():
    a, b = torch.zeros(1, 4, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    c = torch.randn(5, 1, 3, dtype=torch.float64)  # batched: one per sample
    gemm = GemmOutOfPlace(alpha=2.0, beta=0.5, trans_a=False, trans_b=False)
    assert torch.equal(torch.vmap(lambda ci: gemm(a, b, ci))(c), 0.5 * c)
    at, bt = torch.randn(4, 2, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    gemm_t = GemmOutOfPlace(alpha=1.0, beta=1.0, trans_a=True, trans_b=True)
    torch.testing.assert_close(gemm_t(at, bt, c[0]), at.T @ bt.T + c[0])


@pytest.mark.parametrize(
    ("dims", "target", "perm"),
    [
        ((1, 12, 3), [12, 1, 3], [1, 0, 2]),  # tf2onnx's batch-1 "transpose"
        ((1, 12, 3), [12, -1, 3], [1, 0, 2]),
        ((1, 12, 3), [0, 12, 3], [0, 1, 2]),
        ((2, 12, 3), [12, 2, 3], None),  # a real reshape: the data moves
        ((1, 12, 3), [1, 36], None),
        ((None, 12, 3), [12, 1, 3], None),
    ],
)
def test_a_reshape_that_moves_size_one_axes_is_a_transpose(dims, target, perm):
    assert _reshape_as_transpose(dims, target) == perm
