"""Small readers of ONNX protos shared by the rewrites, the post-conversion fixes and describe.

Node attributes as Python values, the values non-strict shape inference finds (element types,
shapes, ranks), the value of a constant, and a graph's inputs that are data rather than weights.
None of them converts or runs anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import onnx
from onnx import ModelProto, helper, numpy_helper

__all__ = [
    "attributes",
    "decoded",
    "constant_value",
    "elem_types",
    "shapes",
    "ranks",
    "drop_initializer_inputs",
    "set_nodes",
    "all_nodes",
    "free_values",
    "subgraphs",
]


def attributes(node: onnx.NodeProto) -> dict[str, Any]:
    """A node's attributes, ``{name: value}`` as ``onnx.helper`` decodes them."""
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def decoded(value: Any) -> Any:
    """A string attribute as ``str`` (``onnx.helper`` returns ``bytes``); others unchanged."""
    return value.decode() if isinstance(value, bytes) else value


def constant_value(m: ModelProto, name: str) -> np.ndarray | Any | None:
    """The value of an initializer or Constant output, else None."""
    for init in m.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in m.graph.node:
        if node.op_type == "Constant" and name in node.output:
            for attr in node.attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t)
                return helper.get_attribute_value(attr)
    return None


def _inferred(m: ModelProto) -> list[onnx.ValueInfoProto]:
    inferred = onnx.shape_inference.infer_shapes(m, strict_mode=False)
    return [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]


def elem_types(m: ModelProto) -> dict[str, int]:
    """ONNX element type of every value (non-strict) shape inference can type, and of the
    initializers."""
    types = {}
    for vi in _inferred(m):
        types[vi.name] = vi.type.tensor_type.elem_type
    for init in m.graph.initializer:
        types[init.name] = init.data_type
    return types


def shapes(m: ModelProto) -> dict[str, list[int | None]]:
    """Dimensions (``None`` where unknown) of every value whose shape (non-strict) shape
    inference can work out, and of the initializers."""
    found = {}
    for vi in _inferred(m):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            found[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    for init in m.graph.initializer:
        found[init.name] = list(init.dims)
    return found


def ranks(m: ModelProto) -> dict[str, int]:
    """Ranks of the values whose shape (non-strict) shape inference can work out."""
    return {name: len(dims) for name, dims in shapes(m).items()}


def drop_initializer_inputs(m: ModelProto) -> int:
    """Remove initializers from the graph inputs (the IR < 4 convention); return how many."""
    inits = {t.name for t in m.graph.initializer}
    keep = [v for v in m.graph.input if v.name not in inits]
    dropped = len(m.graph.input) - len(keep)
    if dropped:
        del m.graph.input[:]
        m.graph.input.extend(keep)
    return dropped


def set_nodes(m: ModelProto, nodes: Iterable[onnx.NodeProto]) -> None:
    """Replace the graph's node list by ``nodes`` (which may hold the graph's own nodes)."""
    nodes = list(nodes)
    del m.graph.node[:]
    m.graph.node.extend(nodes)


def all_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node of ``graph`` and of the subgraphs (``Loop``/``Scan`` bodies, ``If``
    branches) inside it, outer nodes first."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from all_nodes(attr.g)
            for sub in attr.graphs:
                yield from all_nodes(sub)


def _defined(graph: onnx.GraphProto) -> set[str]:
    names = {v.name for v in graph.input} | {t.name for t in graph.initializer}
    names |= {s.values.name for s in graph.sparse_initializer}
    for node in graph.node:
        names.update(o for o in node.output if o)
    return names


def subgraphs(node: onnx.NodeProto) -> Iterable[onnx.GraphProto]:
    """The subgraphs a node holds as attributes (a Loop's ``body``, an If's branches)."""
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            yield from attr.graphs


def free_values(graph: onnx.GraphProto) -> list[str]:
    """Names ``graph`` (or a subgraph inside it) reads but does not define, in order of use."""
    defined = _defined(graph)
    free: list[str] = []

    def use(name: str) -> None:
        if name and name not in defined and name not in free:
            free.append(name)

    for node in graph.node:
        for name in node.input:
            use(name)
        for sub in subgraphs(node):
            for name in free_values(sub):
                use(name)
    for out in graph.output:
        use(out.name)
    return free
