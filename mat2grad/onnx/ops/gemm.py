"""ONNX ``Gemm`` out of place.

onnx2torch builds ``nn.Linear`` for a ``Gemm`` whose weight and bias are initializers, and its
own ``OnnxGemm`` otherwise, which adds ``C`` in place into the product. Under ``vmap`` that
fails where the product is the same for every sample and ``C`` is not: tf2onnx's Loop bodies
of a batch-1 export compute ``Gemm(h, R, Gemm(x_t, W, b))`` with ``h`` the zero initial state,
a constant in the first step. It is replaced after conversion by :class:`GemmOutOfPlace`.
"""

from __future__ import annotations

import torch
from onnx import ModelProto
from torch import nn

from ._common import Converter, Fix

__all__ = ["GemmOutOfPlace", "CONVERTERS", "FIXES"]


class GemmOutOfPlace(nn.Module):
    """ONNX ``Gemm``: ``alpha * A' @ B' + beta * C`` (``'`` where ``transA``/``transB``)."""

    def __init__(self, alpha: float, beta: float, trans_a: bool, trans_b: bool) -> None:
        super().__init__()
        self.alpha = alpha
        self.beta = beta
        self.trans_a = trans_a
        self.trans_b = trans_b

    def forward(  # noqa: D102
        self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor | None = None
    ) -> torch.Tensor:
        a = a.transpose(0, 1) if self.trans_a else a
        b = b.transpose(0, 1) if self.trans_b else b
        out = (a @ b) * self.alpha
        return out if c is None else out + c * self.beta


def _fix_gemm(module: nn.Module, _model: ModelProto, _opset: int) -> nn.Module:
    return GemmOutOfPlace(module.alpha, module.beta, module.trans_a, module.trans_b)


CONVERTERS: list[tuple[str, int, Converter]] = []

FIXES: dict[str, Fix] = {"onnx2torch.node_converters.gemm.OnnxGemm": _fix_gemm}
