"""What every op family shares: shape-like arguments as ints, the converter result, the ONNX
node behind a converted module, and the types of the two tables each family exports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from onnx import ModelProto
from torch import nn

from ..proto import attributes

__all__ = ["Converter", "Fix", "apply_fix_table", "ints", "converter_result", "node_attributes"]

#: ``convert(node, graph) -> OperationConverterResult``, onnx2torch's converter signature.
Converter = Callable[[Any, Any], Any]
#: ``fix(module onnx2torch built, ONNX model, opset) -> replacement module``.
Fix = Callable[[nn.Module, ModelProto, int], nn.Module]


def ints(value: torch.Tensor | list[int] | None) -> list[int] | None:
    """A shape-like argument (``starts``, ``pads``, ``axes``, ...) as a list of ints."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return [int(v) for v in value.reshape(-1).tolist()]
    return [int(v) for v in value]


def converter_result(node: Any, module: Any) -> Any:
    """onnx2torch's converter result: ``module`` with the node's inputs and outputs."""
    from onnx2torch.utils.common import OperationConverterResult, onnx_mapping_from_node

    return OperationConverterResult(torch_module=module, onnx_mapping=onnx_mapping_from_node(node))


def node_attributes(model: ModelProto, module: nn.Module) -> tuple[dict[str, Any], Any]:
    """The attributes and the node of ``model`` that onnx2torch converted into ``module``
    (found through the ``onnx_mapping`` it attached)."""
    mapping = getattr(module, "onnx_mapping", None)
    outputs = set(mapping.outputs) if mapping is not None else set()
    for node in model.graph.node:
        if outputs & set(node.output):
            return attributes(node), node
    raise LookupError("the ONNX node of a converted module was not found")


def _qualified(module: nn.Module) -> str:
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}"


def apply_fix_table(gm: Any, table: dict[str, Fix], model: ModelProto, opset: int) -> list[str]:
    """Swap the modules of ``gm`` whose class ``table`` names for their fixed replacements,
    in place; return what was swapped (``"Name xN"``).

    Args:
        gm: the module onnx2torch returned (converted with ``attach_onnx_mapping=True``).
        table: qualified class name -> builder of the replacement (``FIXES``).
        model: the ONNX model it was converted from (for node attributes).
        opset: the model's ``ai.onnx`` opset.
    """
    swapped: dict[str, int] = {}
    for name, module in list(gm.named_children()):
        fix = table.get(_qualified(module))
        if fix is None:
            continue
        new = fix(module, model, opset)
        if hasattr(module, "onnx_mapping"):
            new.onnx_mapping = module.onnx_mapping
        setattr(gm, name, new)
        key = type(module).__name__
        swapped[key] = swapped.get(key, 0) + 1
    return [f"{key} x{count}" for key, count in swapped.items()]
