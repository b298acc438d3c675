"""Small readers of ONNX protos shared by the rewrites, the post-conversion fixes and describe.

Node attributes as Python values, the values non-strict shape inference finds (element types,
shapes, ranks), the value of a constant, and a graph's inputs that are data rather than weights.
None of them converts or runs anything.
"""

from __future__ import annotations

from collections.abc import Iterable
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
