"""Post-conversion fixes: where onnx2torch's own converter builds a module that is wrong.

onnx2torch refuses to register a converter twice, so a converter whose *result* is wrong
(numerically, for ``torch.func`` transforms, or for float64) is not replaced in its registry;
the module it built is swapped here, after conversion, for one of :mod:`mat2grad.onnx.ops`
with the same ONNX semantics. This is the one place where that happens. Each op family lists
its fixes (``FIXES``) beside its module and names the upstream defect (onnx2torch 1.5.15):
``Slice`` (:mod:`~mat2grad.onnx.ops.slice`), ``Sum`` and ``Mean``
(:mod:`~mat2grad.onnx.ops.reduce`), ``PRelu`` (:mod:`~mat2grad.onnx.ops.activations`),
``Flatten`` (:mod:`~mat2grad.onnx.ops.flatten`), ``Pad`` (:mod:`~mat2grad.onnx.ops.pad`),
``Resize`` (:mod:`~mat2grad.onnx.ops.resize`), ``Cast`` (:mod:`~mat2grad.onnx.ops.cast`) and
``Dropout`` (:mod:`~mat2grad.onnx.ops.dropout`).

Every replacement keeps the ``onnx_mapping`` attribute onnx2torch attached (node inputs and
outputs by ONNX name), which the onnxruntime check uses to name a diverging node.
"""

from __future__ import annotations

from onnx import ModelProto
from torch import fx, nn

from .ops import FIXES

__all__ = ["apply_fixes"]


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
        fix = FIXES.get(_qualified(module))
        if fix is None:
            continue
        new = fix(module, model, opset)
        if hasattr(module, "onnx_mapping"):
            new.onnx_mapping = module.onnx_mapping
        setattr(gm, name, new)
        key = type(module).__name__
        swapped[key] = swapped.get(key, 0) + 1
    return [f"{key} x{count}" for key, count in swapped.items()]
