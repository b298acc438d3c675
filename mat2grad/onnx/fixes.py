"""Post-conversion fixes: where onnx2torch's own converter builds a module that is wrong.

onnx2torch refuses to register a converter twice, so a converter whose *result* is wrong
(numerically, for ``torch.func`` transforms, or for float64) is not replaced in its registry;
the module it built is swapped here, after conversion, for one of
:mod:`mat2grad.onnx.modules` with the same ONNX semantics. This is the one place where that
happens. Each fix names the upstream defect (onnx2torch 1.5.15):

* ``Slice`` (opset >= 10, ``OnnxSlice``): calls ``.numpy()`` on ``starts/ends/axes/steps``
  inside ``forward``, which fails under ``jacrev``/``jacfwd`` ("Cannot access data pointer of
  Tensor that doesn't have storage").
* ``Sum`` and ``Mean`` (MATLAB's ``additionLayer`` exports as ``Sum``): accumulate in place
  into a fresh ``zeros`` tensor, which fails under ``vmap``.
* ``PRelu``: boolean-mask assignment (``output[mask] = ...``) fails under ``vmap``.
* ``Flatten``: ``OnnxFlatten`` (axis != 1) fails for ``axis=0`` and negative axes, and the
  ``nn.Flatten(start_dim=1)`` used for axis 1 fails on a rank-1 input (ONNX gives ``[K, 1]``).
* ``Pad`` (``OnnxPadDynamic``/``OnnxPadStatic``): ``reflect``/``edge`` only on the trailing
  axes ``torch.nn.functional.pad`` supports, no ``wrap``.
* ``Resize``: maps onto ``torch.nn.functional.interpolate`` and only *warns* when the ONNX
  coordinate or rounding mode differs ("results might differ significantly") -- a silent
  wrong answer. Rebuilt from the node's attributes.
* ``Cast``: a cast to float32 would pin a float64 computation back to float32.
* ``Dropout`` modules, should any survive normalisation: ``nn.Identity`` (inference).

Every replacement keeps the ``onnx_mapping`` attribute onnx2torch attached (node inputs and
outputs by ONNX name), which the onnxruntime check uses to name a diverging node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from onnx import ModelProto, helper
from torch import fx, nn

from .converters import resize_module
from .modules import (
    TORCH_TO_ONNX_DTYPE,
    Flatten,
    OnnxCastFollowingDtype,
    Pad,
    PReluWhere,
    Slice,
    SumOutOfPlace,
)

__all__ = ["apply_fixes"]


def _node_attrs(model: ModelProto, module: nn.Module) -> tuple[dict[str, Any], Any]:
    mapping = getattr(module, "onnx_mapping", None)
    outputs = set(mapping.outputs) if mapping is not None else set()
    for node in model.graph.node:
        if outputs & set(node.output):
            return {a.name: helper.get_attribute_value(a) for a in node.attribute}, node
    raise LookupError("the ONNX node of a converted module was not found")


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _resize(module: nn.Module, model: ModelProto, opset: int) -> nn.Module:
    attrs, _ = _node_attrs(model, module)
    attrs = {k: _text(v) for k, v in attrs.items()}
    return resize_module(attrs, 10 if type(module).__name__ == "OnnxResizeV10" else opset)


def _pad(module: nn.Module, model: ModelProto, opset: int) -> nn.Module:
    attrs, node = _node_attrs(model, module)
    mode = _text(attrs.get("mode", "constant"))
    if type(module).__name__ == "OnnxPadStatic":  # Pad-2: pads and value as attributes
        return _StaticPad(mode, list(attrs["pads"]), float(attrs.get("value", 0.0)))
    return Pad(mode)


class _StaticPad(nn.Module):
    """Pad-2 (pads and value as attributes) through :class:`Pad`."""

    def __init__(self, mode: str, pads: list[int], value: float) -> None:
        super().__init__()
        self.pad = Pad(mode)
        self.pads, self.value = pads, value

    def forward(self, x):  # noqa: D102
        import torch

        return self.pad(x, torch.tensor(self.pads), self.value)


_O2T = "onnx2torch.node_converters."

#: fully qualified class name of the module onnx2torch built -> its replacement
_FIXES: dict[str, Callable[[nn.Module, ModelProto, int], nn.Module]] = {
    _O2T + "slice.OnnxSlice": lambda m, model, opset: Slice(),
    _O2T + "sum.OnnxSum": lambda m, model, opset: SumOutOfPlace(),
    _O2T + "mean.OnnxMean": lambda m, model, opset: SumOutOfPlace(mean=True),
    _O2T + "activations.OnnxPReLU": lambda m, model, opset: PReluWhere(),
    _O2T + "flatten.OnnxFlatten": lambda m, model, opset: Flatten(m.axis),
    "torch.nn.modules.flatten.Flatten": lambda m, model, opset: Flatten(m.start_dim),
    _O2T + "pad.OnnxPadDynamic": _pad,
    _O2T + "pad.OnnxPadStatic": _pad,
    _O2T + "resize.OnnxResize": _resize,
    _O2T + "resize.OnnxResizeV10": _resize,
    _O2T + "cast.OnnxCast": lambda m, model, opset: OnnxCastFollowingDtype(
        TORCH_TO_ONNX_DTYPE[m.torch_dtype]
    ),
    _O2T + "dropout.OnnxDropoutDynamic": lambda m, model, opset: nn.Identity(),
    "torch.nn.modules.dropout.Dropout": lambda m, model, opset: nn.Identity(),
}


def _qualified(module: nn.Module) -> str:
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}"


def apply_fixes(gm: fx.GraphModule, model: ModelProto, opset: int) -> list[str]:
    """Swap the defective onnx2torch modules of ``gm`` in place; return what was swapped.

    Args:
        gm: the module onnx2torch returned (converted with ``attach_onnx_mapping=True``).
        model: the ONNX model it was converted from (for node attributes).
        opset: the model's ``ai.onnx`` opset.
    """
    swapped: dict[str, int] = {}
    for name, module in list(gm.named_children()):
        fix = _FIXES.get(_qualified(module))
        if fix is None:
            continue
        new = fix(module, model, opset)
        if hasattr(module, "onnx_mapping"):
            new.onnx_mapping = module.onnx_mapping
        setattr(gm, name, new)
        key = type(module).__name__
        swapped[key] = swapped.get(key, 0) + 1
    return [f"{key} x{count}" for key, count in swapped.items()]
