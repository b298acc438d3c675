"""What the ONNX graph says about batch axes, MATLAB layouts and differentiability.

All functions here read the *normalised* ModelProto (:mod:`mat2grad.onnx.normalize`); none
converts or runs anything.

# NOTE: [Batch axes]
# mat2grad evaluates an ONNX graph one sample at a time, at batch size 1, under
# ``torch.func.vmap`` over the samples. That is what makes files that fixed the batch at 1,
# or baked it into Reshape constants (``Reshape(x, [1, -1])``), work for any number of
# samples, and it never mixes samples. It needs, per input, the axis that holds the batch:
# axis 0 for almost every exporter, but axis 1 for time-major sequences (``[T, N, C]``, the
# ONNX LSTM default and MATLAB's 2018 sequence export) and for LSTM/GRU initial states
# (``[num_directions, N, H]``). The rule, in order: an input consumed by a recurrent node as
# X or as an initial state takes the node's batch axis (by its ``layout``), looking through
# Transposes (tf2onnx feeds a batch-first ``[N, T, C]`` input through a Transpose to a
# time-major LSTM) and operators that keep axes in place (Cast, Sub, Mul, activations);
# otherwise the one symbolic dimension, if exactly one is symbolic; otherwise axis 0. The
# batch axis of each output is found by running the graph (``mat2grad.onnx.loader``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from onnx import ModelProto, TensorProto

from .reader import MATLAB_PRODUCER, NOT_DIFFERENTIABLE_OPS, SHAPE_ONLY_OPS, ZERO_DERIVATIVE_OPS

__all__ = [
    "InputInfo",
    "graph_inputs",
    "infer_layout",
    "differentiability",
    "RECURRENT_OPS",
    "FLOAT_TYPES",
]

RECURRENT_OPS = ("LSTM", "GRU", "RNN")
FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16)
# ONNX input index of X and of the initial states, per recurrent op
_RNN_STATE_INPUTS = {"LSTM": (5, 6), "GRU": (5,), "RNN": (5,)}


@dataclass(frozen=True)
class InputInfo:
    """One graph input as the file declares it.

    Attributes:
        name: ONNX name.
        dims: declared dimensions; ``None`` for a symbolic or unknown dimension.
        elem_type: ONNX element type (``TensorProto.FLOAT``, ...).
        batch_axis: the axis holding the batch (see NOTE [Batch axes]).
        role: ``"sequence"`` (recurrent X), ``"state"`` (recurrent initial state) or ``""``.
    """

    name: str
    dims: tuple[int | None, ...]
    elem_type: int
    batch_axis: int
    role: str

    @property
    def sample_shape(self) -> tuple[int | None, ...]:
        """Declared shape of one sample (batch axis removed)."""
        return self.dims[: self.batch_axis] + self.dims[self.batch_axis + 1 :]


def _dims(value) -> tuple[int | None, ...]:
    out = []
    for d in value.type.tensor_type.shape.dim:
        out.append(int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else None)
    return tuple(out)


# operators that keep every axis of their data input where it is
_AXIS_KEEPING = {
    "Identity", "Cast", "Relu", "Sigmoid", "Tanh", "LeakyRelu", "Elu", "Softsign", "Neg",
    "Abs", "Exp", "Log", "Sqrt", "Clip", "Add", "Sub", "Mul", "Div",
}  # fmt: skip


def _recurrent_role(model: ModelProto, name: str) -> tuple[int, str] | None:
    """Where a recurrent node takes ``name`` (directly, or through axis-keeping operators and
    Transposes): ``(batch axis of name, "sequence" | "state")``, else None."""
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for k, inp in enumerate(node.input):
            consumers.setdefault(inp, []).append((node, k))
    frontier = [(name, list(range(64)))]  # value, axis map: value axis -> input axis
    seen = set()
    while frontier:
        value, axes = frontier.pop()
        if value in seen:
            continue
        seen.add(value)
        for node, k in consumers.get(value, []):
            if node.op_type in RECURRENT_OPS:
                layout = next((a.i for a in node.attribute if a.name == "layout"), 0)
                batch = 1 if layout == 0 else 0
                if k == 0:
                    return axes[batch], "sequence"
                if k in _RNN_STATE_INPUTS[node.op_type]:
                    return axes[batch], "state"
            elif node.op_type in _AXIS_KEEPING:
                frontier.append((node.output[0], axes))
            elif node.op_type == "Transpose" and k == 0:
                perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
                if perm is not None:
                    frontier.append((node.output[0], [axes[p] for p in perm]))
    return None


def graph_inputs(model: ModelProto) -> list[InputInfo]:
    """The data inputs of a normalised model, with their batch axes."""
    inits = {t.name for t in model.graph.initializer}
    infos = []
    for value in model.graph.input:
        if value.name in inits:
            continue
        dims = _dims(value)
        axis, role = None, ""
        found = _recurrent_role(model, value.name)
        if found is not None and found[0] < len(dims):
            axis, role = found
        if axis is None:
            symbolic = [k for k, d in enumerate(dims) if d is None]
            axis = symbolic[0] if len(symbolic) == 1 else 0
        if not dims:
            axis = -1  # a scalar input: no batch axis (refused by the loader)
        infos.append(InputInfo(value.name, dims, value.type.tensor_type.elem_type, axis, role))
    return infos


def infer_layout(
    sample_shape: Sequence[int | None],
    *,
    producer: str,
    role: str = "",
    recurrent: bool = False,
    volume: bool = False,
) -> str:
    """The MATLAB layout kind of one input or output, from its per-sample ONNX shape.

    Kinds (see ``mat2grad.matfile`` for the conversions): ``features`` (MATLAB ``C x N``),
    ``image`` (``H x W x C x N`` for ONNX ``(N, C, H, W)``), ``volume`` (``H x W x D x C x N``
    for ``(N, C, D, H, W)``), ``sequence`` (``C x N x T`` for a per-sample ``(T, C)``), and
    ``generic`` (``d1 x ... x dk x N`` for a per-sample ``(d1, ..., dk)``: same indices, batch
    last).

    MATLAB's old exporters write ``featureInputLayer``-like MLPs as ``imageInputLayer([1 n
    1])``: ONNX ``[N, 1, 1, n]``; the user holds ``n x N`` features, so a per-sample shape
    with one non-singleton axis is ``features`` (``[N, C, 1, 1]`` too). The MATLAB image
    form ``1 x n x 1 x N`` holds the same numbers and is accepted as well.
    """
    shape = tuple(sample_shape)
    non_single = [d for d in shape if d != 1]
    matlab = producer == MATLAB_PRODUCER
    if role == "sequence":
        return "sequence" if len(shape) == 2 else "generic"
    if len(shape) <= 1:
        return "features"
    if len(shape) == 3:
        return "features" if len(non_single) <= 1 else "image"
    if len(shape) == 2:
        if len(non_single) <= 1:
            return "features"
        return "sequence" if (recurrent or matlab) else "generic"
    if len(shape) == 4 and (matlab or volume):
        return "volume"
    return "generic"


def differentiability(
    model: ModelProto, wrt: Sequence[str], outputs: Sequence[str]
) -> tuple[tuple[str, ...], str | None]:
    """Find piecewise-constant operators on the paths from ``wrt`` to ``outputs``, and outputs
    that depend on ``wrt`` only through operators without a derivative.

    Returns:
        ``(zero_derivative, not_differentiable)``: names like ``"Floor (node 'f1')"`` of
        operators with zero derivative almost everywhere on a path to an output, and ``None``
        or a message naming the operator that cuts the derivative of an output.
    """
    graph = model.graph
    depends = set(wrt)  # values that change when a wrt input changes
    smooth = set(wrt)  # values with a (possibly zero) derivative with respect to wrt
    cut: dict[str, str] = {}  # value -> the operator that cut its derivative
    zero_nodes: list[tuple[str, set[str]]] = []
    for node in graph.node:
        label = f"{node.op_type} (node '{node.name or node.output[0]}')"
        data_ins = list(node.input)
        if node.op_type in SHAPE_ONLY_OPS:
            continue  # depends on the shape of its input, not on its values
        if not any(i in depends for i in data_ins if i):
            continue
        outs = [o for o in node.output if o]
        depends.update(outs)
        reason = next((cut[i] for i in data_ins if i in cut), None)
        if node.op_type in NOT_DIFFERENTIABLE_OPS:
            if node.op_type == "TopK" and node.input[0] in smooth:
                smooth.add(node.output[0])
                outs = outs[1:]
            for o in outs:
                cut[o] = f"{label} {NOT_DIFFERENTIABLE_OPS[node.op_type]}"
            continue
        if node.op_type == "Cast":
            to = next((a.i for a in node.attribute if a.name == "to"), 0)
            if to not in FLOAT_TYPES:
                for o in outs:
                    cut[o] = f"{label} casts to {TensorProto.DataType.Name(to).lower()}"
                continue
        if node.op_type == "Where":
            diff_ins = node.input[1:]
        elif node.op_type in ("Gather", "GatherElements", "GatherND", "ScatterND"):
            diff_ins = [node.input[0]] + list(node.input[2:])
        else:
            diff_ins = data_ins
        if any(i in smooth for i in diff_ins if i):
            smooth.update(outs)
            if node.op_type in ZERO_DERIVATIVE_OPS:
                zero_nodes.append((label, set(outs)))
        elif reason is not None:
            for o in outs:
                cut[o] = reason
    # keep only the zero-derivative nodes from which an output is reachable
    reach = set(outputs)
    for node in reversed(graph.node):
        if any(o in reach for o in node.output):
            reach.update(i for i in node.input if i)
    zero = tuple(label for label, outs in zero_nodes if outs & reach)
    problem = None
    for out in outputs:
        if out in depends and out not in smooth:
            why = cut.get(out, "an operator without a derivative")
            problem = f"output '{out}' depends on the inputs only through {why}"
            break
    return zero, problem
