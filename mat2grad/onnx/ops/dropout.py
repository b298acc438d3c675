"""ONNX ``Dropout`` modules, should any survive normalisation: ``nn.Identity`` (inference).

:mod:`mat2grad.onnx.normalize.hygiene` rewrites every Dropout node as Identity before
conversion; these fixes are the second line of defence.
"""

from __future__ import annotations

from torch import nn

from ._common import Converter, Fix

__all__ = ["CONVERTERS", "FIXES"]

CONVERTERS: list[tuple[str, int, Converter]] = []  # onnx2torch converts it

FIXES: dict[str, Fix] = {
    "onnx2torch.node_converters.dropout.OnnxDropoutDynamic": lambda m, model, opset: nn.Identity(),
    "torch.nn.modules.dropout.Dropout": lambda m, model, opset: nn.Identity(),
}
