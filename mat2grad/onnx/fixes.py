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
from torch import fx

from .ops import FIXES
from .ops._common import apply_fix_table

__all__ = ["apply_fixes"]


def apply_fixes(gm: fx.GraphModule, model: ModelProto, opset: int) -> list[str]:
    """Swap the defective onnx2torch modules of ``gm`` in place; return what was swapped.

    Args:
        gm: the module onnx2torch returned (converted with ``attach_onnx_mapping=True``).
        model: the ONNX model it was converted from (for node attributes).
        opset: the model's ``ai.onnx`` opset.
    """
    return apply_fix_table(gm, FIXES, model, opset)
