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
# time-major LSTM, or to a Loop whose body reads step t with ``Gather``; with the batch fixed
# at 1 it writes that Transpose as a Reshape ``[1, T, C] -> [T, 1, C]``, which only moves a
# size-1 axis and is followed as the transpose it is) and operators that keep axes in place
# (Cast, Sub, Mul, activations); otherwise the one symbolic dimension, if
# exactly one is symbolic; otherwise axis 0. The batch axis of each output is found by
# running the graph (``mat2grad.onnx.loader``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from onnx import ModelProto, TensorProto, numpy_helper

from .proto import all_nodes, subgraphs
from .reader import (
    MATLAB_PRODUCER,
    NOT_DIFFERENTIABLE_OPS,
    SHAPE_ONLY_OPS,
    ZERO_DERIVATIVE_OPS,
)

__all__ = [
    "InputInfo",
    "graph_inputs",
    "infer_layout",
    "differentiability",
    "RECURRENT_OPS",
    "CONTROL_FLOW_OPS",
    "FLOAT_TYPES",
]

RECURRENT_OPS = ("LSTM", "GRU", "RNN")
#: ONNX control flow with subgraphs that mat2grad converts (``mat2grad.onnx.ops.control_flow``)
CONTROL_FLOW_OPS = ("Loop", "Scan", "If")
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


def _reshape_as_transpose(
    dims: tuple[int | None, ...] | None, target: list[int] | None
) -> list[int] | None:
    """The axis permutation a Reshape from ``dims`` to ``target`` amounts to, where it only
    moves axes of size 1 (the axes of size > 1 keep their order): ``perm`` with output axis
    ``j`` = input axis ``perm[j]``; None for any other Reshape or unknown sizes."""
    if dims is None or target is None or None in dims:
        return None
    new = [d if d != 0 else (dims[j] if j < len(dims) else -1) for j, d in enumerate(target)]
    if new.count(-1) == 1:
        known = math.prod(d for d in new if d != -1)
        new[new.index(-1)] = math.prod(dims) // known if known else -1
    big_in = [k for k, d in enumerate(dims) if d != 1]
    ones_in = [k for k, d in enumerate(dims) if d == 1]
    if [dims[k] for k in big_in] != [d for d in new if d != 1] or new.count(1) != len(ones_in):
        return None
    big, ones = iter(big_in), iter(ones_in)
    return [next(ones) if d == 1 else next(big) for d in new]


def _recurrent_role(model: ModelProto, name: str) -> tuple[int, str] | None:
    """Where a recurrent node takes ``name`` (directly, or through axis-keeping operators,
    Transposes and Reshapes that act as one): ``(batch axis of name, "sequence" |
    "state")``, else None."""
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for k, inp in enumerate(node.input):
            consumers.setdefault(inp, []).append((node, k, False))
        if node.op_type == "Loop":
            for sub in all_nodes(next(a.g for a in node.attribute if a.name == "body")):
                for k, inp in enumerate(sub.input):
                    consumers.setdefault(inp, []).append((sub, k, True))
    shapes = {
        t.name: [int(v) for v in numpy_helper.to_array(t).reshape(-1)]
        for t in model.graph.initializer
        if t.data_type == TensorProto.INT64 and len(t.dims) == 1
    }
    start = next((_dims(v) for v in model.graph.input if v.name == name), None)
    # value, axis map (value axis -> input axis), the value's static sizes where known
    frontier = [(name, list(range(64)), start)]
    seen = set()
    while frontier:
        value, axes, dims = frontier.pop()
        if value in seen:
            continue
        seen.add(value)
        for node, k, in_loop in consumers.get(value, []):
            if in_loop:
                # tf2onnx's recurrent layers: the Loop body reads step t of a time-major
                # [T, N, C] sequence from the enclosing graph with Gather(sequence, t)
                axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
                if node.op_type == "Gather" and k == 0 and axis == 0 and len(axes) > 1:
                    return axes[1], "sequence"
                continue
            if node.op_type in RECURRENT_OPS:
                layout = next((a.i for a in node.attribute if a.name == "layout"), 0)
                batch = 1 if layout == 0 else 0
                if k == 0:
                    return axes[batch], "sequence"
                if k in _RNN_STATE_INPUTS[node.op_type]:
                    return axes[batch], "state"
            elif node.op_type in _AXIS_KEEPING:
                frontier.append((node.output[0], axes, dims))
            elif node.op_type == "Transpose" and k == 0:
                perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
                if perm is not None:
                    moved = None if dims is None else tuple(dims[p] for p in perm)
                    frontier.append((node.output[0], [axes[p] for p in perm], moved))
            elif node.op_type == "Reshape" and k == 0 and len(node.input) > 1:
                perm = _reshape_as_transpose(dims, shapes.get(node.input[1]))
                if perm is not None:
                    moved = tuple(dims[p] for p in perm)
                    frontier.append((node.output[0], [axes[p] for p in perm], moved))
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


@dataclass
class _Flow:
    """What :func:`differentiability` knows while it walks the graph."""

    depends: set[str]  # values that change when a wrt input changes
    smooth: set[str]  # values with a (possibly zero) derivative with respect to wrt
    cut: dict[str, str]  # value -> the operator that cut its derivative
    zero_nodes: list[tuple[str, set[str]]]  # zero-derivative operators and their outputs
    data_control: list[str]  # control-flow nodes steered by the data's values


def _label(node) -> str:
    return f"{node.op_type} (node '{node.name or node.output[0]}')"


def _walk(nodes, flow: _Flow) -> None:
    """Propagate dependence and differentiability through ``nodes`` (in order)."""
    for node in nodes:
        label = _label(node)
        if node.op_type in CONTROL_FLOW_OPS:
            _walk_control_flow(node, flow)
            continue
        data_ins = list(node.input)
        if node.op_type in SHAPE_ONLY_OPS:
            continue  # depends on the shape of its input, not on its values
        if not any(i in flow.depends for i in data_ins if i):
            continue
        outs = [o for o in node.output if o]
        flow.depends.update(outs)
        reason = next((flow.cut[i] for i in data_ins if i in flow.cut), None)
        if node.op_type in NOT_DIFFERENTIABLE_OPS:
            if node.op_type == "TopK" and node.input[0] in flow.smooth:
                flow.smooth.add(node.output[0])
                outs = outs[1:]
            for o in outs:
                flow.cut[o] = f"{label} {NOT_DIFFERENTIABLE_OPS[node.op_type]}"
            continue
        if node.op_type == "Cast":
            to = next((a.i for a in node.attribute if a.name == "to"), 0)
            if to not in FLOAT_TYPES:
                for o in outs:
                    flow.cut[o] = f"{label} casts to {TensorProto.DataType.Name(to).lower()}"
                continue
        if node.op_type == "Where":
            diff_ins = node.input[1:]
        elif node.op_type in ("Gather", "GatherElements", "GatherND", "ScatterND"):
            diff_ins = [node.input[0]] + list(node.input[2:])
        else:
            diff_ins = data_ins
        if any(i in flow.smooth for i in diff_ins if i):
            flow.smooth.update(outs)
            if node.op_type in ZERO_DERIVATIVE_OPS:
                flow.zero_nodes.append((label, set(outs)))
        elif reason is not None:
            for o in outs:
                flow.cut[o] = reason


def _copy_flow(flow: _Flow, pairs) -> bool:
    """``target`` takes the dependence of ``source`` for each ``(source, target)``; True when
    something changed."""
    changed = False
    for source, target in pairs:
        if not source or not target:
            continue
        for values in (flow.depends, flow.smooth):
            if source in values and target not in values:
                values.add(target)
                changed = True
        if source in flow.cut and target not in flow.cut:
            flow.cut[target] = flow.cut[source]
    return changed


def _walk_control_flow(node, flow: _Flow) -> None:
    """A Loop/Scan/If: its subgraphs walked with their inputs bound to the node's (loop-carried
    values until nothing changes), its outputs bound to the subgraphs' outputs. The names of
    a subgraph are distinct from those of the graphs around it (ONNX's scoping rule), so one
    set of names serves all of them; outer-scope values are read from it directly."""
    attrs = {a.name: a.g for a in node.attribute if a.HasField("g")}
    label = _label(node)
    ins, outs = list(node.input), list(node.output)
    if node.op_type == "If":
        if ins[0] in flow.depends:
            flow.data_control.append(f"{label}: its condition")
        for branch in (attrs["then_branch"], attrs["else_branch"]):
            _walk(branch.node, flow)
            _copy_flow(flow, zip((o.name for o in branch.output), outs, strict=False))
        return
    body = attrs["body"]
    b_in, b_out = [v.name for v in body.input], [v.name for v in body.output]
    if node.op_type == "Loop":
        for k, what in ((0, "trip count"), (1, "initial condition")):
            if k < len(ins) and ins[k] in flow.depends:
                flow.data_control.append(f"{label}: its {what}")
        entry = list(zip(ins[1:], b_in[1:], strict=False))
        feedback = list(zip(b_out[1:], b_in[2:], strict=False))
        exits = list(zip(b_out[1:], outs, strict=False))
    else:  # Scan: states, then scan inputs (one slice each step)
        entry = list(zip(ins, b_in, strict=False))
        states = len(ins) - next(a.i for a in node.attribute if a.name == "num_scan_inputs")
        feedback = list(zip(b_out[:states], b_in[:states], strict=False))
        exits = list(zip(b_out, outs, strict=False))
    _copy_flow(flow, entry)
    for _ in range(len(b_in) + 1):  # each pass can only add; a fixed point comes quickly
        _walk(body.node, flow)
        if not _copy_flow(flow, feedback):
            break
    if node.op_type == "Loop" and b_out and b_out[0] in flow.depends:
        flow.data_control.append(f"{label}: its loop condition")
    _copy_flow(flow, exits)


def differentiability(
    model: ModelProto, wrt: Sequence[str], outputs: Sequence[str]
) -> tuple[tuple[str, ...], str | None]:
    """Find piecewise-constant operators on the paths from ``wrt`` to ``outputs``, outputs
    that depend on ``wrt`` only through operators without a derivative, and control flow
    steered by the values of the data (see NOTE: [Control flow per sample] in
    ``mat2grad.onnx.ops.control_flow``). Subgraphs of ``Loop``/``Scan``/``If`` are followed.

    Returns:
        ``(zero_derivative, not_differentiable)``: names like ``"Floor (node 'f1')"`` of
        operators with zero derivative almost everywhere on a path to an output, and ``None``
        or a message naming the operator that cuts the derivative of an output or the
        control-flow node whose path depends on the data.
    """
    graph = model.graph
    flow = _Flow(set(wrt), set(wrt), {}, [], [])
    _walk(graph.node, flow)
    # keep only the zero-derivative nodes from which an output is reachable
    reach = set(outputs)
    for node in reversed(graph.node):
        if any(o in reach for o in node.output):
            reach.update(i for i in node.input if i)
            for sub in all_nodes_below(node):
                reach.update(i for i in (*sub.input, *sub.output) if i)
    zero = tuple(label for label, outs in flow.zero_nodes if outs & reach)
    problem = None
    if flow.data_control:
        problem = (
            f"{flow.data_control[0]} depends on the values of the input data; "
            "mat2grad evaluates samples under torch.func.vmap, which cannot follow a "
            "different path per sample"
        )
    for out in outputs:
        if problem is None and out in flow.depends and out not in flow.smooth:
            why = flow.cut.get(out, "an operator without a derivative")
            problem = f"output '{out}' depends on the inputs only through {why}"
    return zero, problem


def all_nodes_below(node) -> list:
    """The nodes of every subgraph of ``node`` (nested ones included)."""
    return [n for sub in subgraphs(node) for n in all_nodes(sub)]
