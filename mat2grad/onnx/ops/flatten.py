"""ONNX ``Flatten``, replacing the modules onnx2torch builds for it.

``OnnxFlatten`` (axis != 1) fails for ``axis=0`` and negative axes, and the
``nn.Flatten(start_dim=1)`` used for axis 1 fails on a rank-1 input (ONNX gives ``[K, 1]``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._common import Converter, Fix

__all__ = ["Flatten", "CONVERTERS", "FIXES"]


class Flatten(nn.Module):
    """ONNX ``Flatten``: ``(prod(shape[:axis]), prod(shape[axis:]))``, any axis in
    ``[-rank, rank]`` (onnx2torch's fails for ``axis=0`` and for negative axes)."""

    def __init__(self, axis: int = 1) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        axis = self.axis + x.ndim if self.axis < 0 else self.axis
        outer = math.prod(x.shape[:axis])
        return x.reshape(outer, math.prod(x.shape[axis:]))


CONVERTERS: list[tuple[str, int, Converter]] = []  # onnx2torch converts it

FIXES: dict[str, Fix] = {
    "onnx2torch.node_converters.flatten.OnnxFlatten": lambda m, model, opset: Flatten(m.axis),
    "torch.nn.modules.flatten.Flatten": lambda m, model, opset: Flatten(m.start_dim),
}
