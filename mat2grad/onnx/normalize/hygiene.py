"""Rewrites that put a valid graph into the form onnx2torch handles (numbers in
:mod:`mat2grad.onnx.normalize.pipeline`'s list).

Dropout to Identity (4), names for unused optional outputs (7), explicit Clip bounds (8), an
Identity per graph output (12), unique node names (13), the refusal of a used MaxPool
``Indices`` output, and the output types the strict checker wants.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import ModelProto, helper, numpy_helper

from ..proto import constant_value, elem_types, set_nodes

__all__ = [
    "dropout_to_identity",
    "refuse_maxpool_indices",
    "name_unused_outputs",
    "fill_clip_bounds",
    "identity_outputs",
    "unique_node_names",
    "declare_output_types",
    "topological_sort",
]

_OUT_SUFFIX = "__mat2grad_output"


def dropout_to_identity(m: ModelProto, notes: list[str]) -> None:
    """Dropout becomes Identity; a used mask output becomes an all-true constant (4)."""
    used = {name for node in m.graph.node for name in node.input}
    used |= {o.name for o in m.graph.output}
    count = 0
    extra: list[onnx.NodeProto] = []
    for node in m.graph.node:
        if node.op_type != "Dropout" or node.domain not in ("", "ai.onnx"):
            continue
        label = node.name or node.output[0]
        if len(node.input) > 2 and node.input[2]:
            training = constant_value(m, node.input[2])
            if training is None or bool(training):
                raise ValueError(
                    f"Dropout '{label}' runs in training mode (its training_mode input is "
                    f"{'true' if training is not None else 'not a constant'}); mat2grad "
                    "evaluates trained networks, where Dropout is the identity"
                )
        data, out = node.input[0], node.output[0]
        if len(node.output) > 1 and node.output[1] and node.output[1] in used:
            shape = f"{label}__mat2grad_shape"
            extra += [
                helper.make_node("Shape", [data], [shape], name=shape),
                helper.make_node(
                    "ConstantOfShape",
                    [shape],
                    [node.output[1]],
                    name=f"{label}__mat2grad_mask",
                    value=helper.make_tensor("value", onnx.TensorProto.BOOL, [1], [True]),
                ),
            ]
        node.ClearField("attribute")
        del node.input[:]
        del node.output[:]
        node.input.append(data)
        node.output.append(out)
        node.op_type = "Identity"
        count += 1
    if count:
        m.graph.node.extend(extra)
        topological_sort(m)
        notes.append(f"replaced {count} Dropout node(s) by Identity (inference semantics)")


def topological_sort(m: ModelProto) -> None:
    """Order nodes so that every input is produced before it is used (stable)."""
    ready = {v.name for v in m.graph.input} | {t.name for t in m.graph.initializer} | {""}
    pending = list(m.graph.node)
    ordered = []
    while pending:
        rest = []
        for node in pending:
            if all(i in ready for i in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            ordered += rest  # a cycle or an undefined input: leave it to the checker
            break
        pending = rest
    set_nodes(m, ordered)


def refuse_maxpool_indices(m: ModelProto) -> None:
    """Refuse a MaxPool whose ``Indices`` output is used (integer positions of the maxima).

    Raises:
        ValueError: naming the node and the output.
    """
    used = {name for node in m.graph.node for name in node.input}
    used |= {o.name for o in m.graph.output}
    for node in m.graph.node:
        if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1] in used:
            raise ValueError(
                f"MaxPool '{node.name or node.output[0]}' returns its Indices output "
                f"'{node.output[1]}' (integer positions of the maxima), which mat2grad does "
                "not support"
            )


def fill_clip_bounds(m: ModelProto, notes: list[str]) -> None:
    """Omitted Clip bounds become constants: -inf/+inf, or the integer type's limits (8)."""
    clips = [n for n in m.graph.node if n.op_type == "Clip" and len(n.input) > 1]
    clips = [n for n in clips if any(not name for name in n.input[1:])]
    if not clips:
        return
    types = elem_types(m)
    for node in clips:
        elem = types.get(node.input[0], onnx.TensorProto.FLOAT)
        dtype = helper.tensor_dtype_to_np_dtype(elem)
        info = np.finfo(dtype) if np.issubdtype(dtype, np.floating) else np.iinfo(dtype)
        low = -np.inf if np.issubdtype(dtype, np.floating) else info.min
        high = np.inf if np.issubdtype(dtype, np.floating) else info.max
        for k, bound in ((1, low), (2, high)):
            if k < len(node.input) and not node.input[k]:
                name = f"{node.name or node.output[0]}__mat2grad_bound{k}"
                m.graph.initializer.append(numpy_helper.from_array(np.array(bound, dtype), name))
                node.input[k] = name
    notes.append(f"filled omitted bounds of {len(clips)} Clip node(s)")


def name_unused_outputs(m: ModelProto) -> None:
    """Drop trailing unused optional outputs and name the others (7)."""
    taken = {name for node in m.graph.node for name in (*node.input, *node.output)}
    for node in m.graph.node:
        outs = list(node.output)
        while outs and not outs[-1]:
            outs.pop()
        for k, name in enumerate(outs):
            if not name:
                new = f"{node.name or node.op_type}__mat2grad_unused_{k}"
                while new in taken:
                    new += "_"
                taken.add(new)
                outs[k] = new
        if outs != list(node.output):
            del node.output[:]
            node.output.extend(outs)


def identity_outputs(m: ModelProto) -> dict[str, str]:
    """Give every graph output its own Identity node (12); return old name -> new name."""
    mapping = {}
    taken = {name for node in m.graph.node for name in node.output}
    taken |= {v.name for v in m.graph.input} | {t.name for t in m.graph.initializer}
    for out in m.graph.output:
        new = out.name + _OUT_SUFFIX
        while new in taken:
            new += "_"
        taken.add(new)
        m.graph.node.append(helper.make_node("Identity", [out.name], [new], name=new))
        mapping[out.name] = new
        out.name = new
    return mapping


def unique_node_names(m: ModelProto) -> None:
    """Name unnamed nodes, and nodes whose names collide as onnx2torch sees them (13)."""

    def seen_as(node: onnx.NodeProto) -> str:  # onnx2torch's OnnxGraph.generate_node_name
        return (f"{node.domain}/" + (node.name.replace(".", "/") or node.op_type)).lstrip("/")

    counts: dict[str, int] = {}
    for node in m.graph.node:
        counts[seen_as(node)] = counts.get(seen_as(node), 0) + 1
    taken = set(counts)
    for k, node in enumerate(m.graph.node):
        if node.name and counts[seen_as(node)] == 1:
            continue
        counts[seen_as(node)] -= 1
        new = f"{node.op_type}__mat2grad_{k}"
        while new in taken:
            new += "_"
        taken.add(new)
        node.name = new


def declare_output_types(m: ModelProto, declared_rank: dict[str, int]) -> None:
    """Give the graph outputs the types and shapes that shape inference finds for them; where
    it finds none, the rank the file declared, with every dimension unknown (the checker
    requires a shape on graph outputs)."""
    inferred = onnx.shape_inference.infer_shapes(m, strict_mode=False)
    known = {vi.name: vi for vi in inferred.graph.value_info}
    known.update({vi.name: vi for vi in inferred.graph.output})
    for out in m.graph.output:
        vi = known.get(out.name)
        if vi is not None and vi.type.tensor_type.HasField("shape"):
            out.type.CopyFrom(vi.type)
        elif out.name in declared_rank:
            shape = out.type.tensor_type.shape
            shape.SetInParent()
            for _ in range(declared_rank[out.name]):
                shape.dim.add()
