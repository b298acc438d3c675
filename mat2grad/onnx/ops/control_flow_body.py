"""Subgraphs of ``Loop``, ``Scan`` and ``If`` as torch modules, with their outer-scope values.

An ONNX subgraph may read any value of the graphs that enclose it by name (tf2onnx's Loop body
reads the transposed input sequence that way), and those values are not inputs of the node.
Each subgraph is converted on its own, by the same machinery as the main graph (the
:mod:`mat2grad.onnx.normalize` rewrites, onnx2torch with mat2grad's converters, the
post-conversion fixes), as a model whose inputs are the subgraph's own inputs followed by the
outer-scope values it reads (:func:`mat2grad.onnx.proto.free_values`); the control-flow
module passes those values in explicitly, and its converter lists them as inputs of the
node, so that onnx2torch wires them from the enclosing graph.

# NOTE: [Opset of a subgraph]
# onnx2torch hands a converter the node and its graph, not the model, so the opset of the
# model is not known where a subgraph is converted; onnx2torch only resolved the model's
# opset to the control-flow operator's own version (``Loop`` 13 for a model at opset 13, 14
# or 15). A subgraph is therefore converted at the *last* opset at which that operator
# version is current (15 for ``Loop`` 13: ``Loop`` 16 is the next), capped at the newest
# opset onnx knows. Operators changed between the model's opset and that one differ only in
# added types or attributes (``Shape`` 15's start/end, ``Reshape`` 14's allowzero), whose
# defaults keep the older meaning, and the load-time comparison with onnxruntime runs the
# file at its own opset.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import onnx
import torch
from onnx import GraphProto, TypeProto, ValueInfoProto, defs, helper
from torch import fx

from .. import _onnx2torch, normalize
from ..proto import free_values
from ._common import Fix, apply_fix_table

#: the fixes every converted graph gets (``mat2grad.onnx.ops.FIXES``), filled in by the ops
#: package once it has collected every family's table: reading it from there would make
#: this module, which the ops package imports, import the ops package back
SUBGRAPH_FIXES: dict[str, Fix] = {}

__all__ = ["subgraph_opset", "convert_subgraph", "as_tuple", "pick"]


def subgraph_opset(op_type: str, version: int) -> int:
    """The opset a subgraph of ``op_type`` (resolved to ``version``) is converted at.

    See NOTE: [Opset of a subgraph].
    """
    newest = defs.onnx_opset_version()
    later = [
        s.since_version
        for s in defs.get_all_schemas_with_history()
        if s.name == op_type and s.domain == "" and s.since_version > version
    ]
    return min(min(later) - 1, newest) if later else newest


def _value_info(name: str, graph: Any) -> ValueInfoProto:
    """The type of an outer-scope value as the enclosing (shape-inferred) graph knows it."""
    known = graph.value_info.get(name)
    if known is not None and known.type.WhichOneof("value") is not None:
        vi = ValueInfoProto()
        vi.CopyFrom(known)
        vi.name = name
        return vi
    init = graph.initializers.get(name)
    if init is not None:
        proto = init.proto
        return helper.make_tensor_value_info(name, proto.data_type, list(proto.dims))
    return helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)


def _typed_inputs(graph: GraphProto) -> list[ValueInfoProto]:
    """The subgraph's own inputs; an input without a type (allowed in a Loop body) becomes a
    float tensor of unknown shape, which is all conversion needs to know."""
    out = []
    for value in graph.input:
        vi = ValueInfoProto()
        vi.CopyFrom(value)
        if vi.type.WhichOneof("value") is None:
            vi.type.CopyFrom(TypeProto())
            vi.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
        out.append(vi)
    return out


def convert_subgraph(
    sub: GraphProto, enclosing: Any, opset: int, where: str
) -> tuple[fx.GraphModule, list[str]]:
    """Convert one subgraph to a torch module.

    Args:
        sub: the subgraph (a ``body``, ``then_branch`` or ``else_branch`` attribute).
        enclosing: onnx2torch's graph that holds the control-flow node (for value types).
        opset: the ``ai.onnx`` opset to convert at (see NOTE: [Opset of a subgraph]).
        where: the node, for messages.

    Returns:
        ``(module, outer)``: ``module(*sub_inputs, *outer_values)`` returns the subgraph's
        outputs (see :func:`as_tuple`); ``outer`` names the outer-scope values it reads.

    Raises:
        ValueError: the subgraph cannot be converted (the message names the node).
    """
    outer = free_values(sub)
    inputs = _typed_inputs(sub) + [_value_info(name, enclosing) for name in outer]
    graph = helper.make_graph(
        list(sub.node),
        sub.name or "subgraph",
        inputs,
        list(sub.output),
        initializer=list(sub.initializer),
        sparse_initializer=list(sub.sparse_initializer),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    try:
        norm = normalize.normalize(model)
        onnx2torch = _onnx2torch.import_onnx2torch()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module="onnx2torch.node_converters.resize")
            gm = onnx2torch.convert(norm.model, attach_onnx_mapping=True)
        apply_fix_table(gm, SUBGRAPH_FIXES, norm.model, opset)
    except NotImplementedError as exc:
        raise ValueError(f"{where}: an operator of its subgraph '{sub.name}': {exc}") from None
    except ValueError as exc:
        raise ValueError(f"{where}: subgraph '{sub.name}': {exc}") from None
    return gm, outer


def as_tuple(result: Any) -> tuple[torch.Tensor, ...]:
    """A converted subgraph's result as a tuple (onnx2torch returns one output bare)."""
    return tuple(result) if isinstance(result, tuple | list) else (result,)


def pick(values: Sequence[Any], indices: Sequence[int]) -> list[Any]:
    """``[values[k] for k in indices]``."""
    return [values[k] for k in indices]
