"""ONNX activations onnx2torch lacks (``Gelu`` 20, ``Mish`` 18 and 22) or builds wrongly
(``PRelu``: its boolean-mask assignment ``output[mask] = ...`` fails under ``vmap``; replaced
after conversion by :class:`PReluWhere`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._common import Converter, Fix, converter_result

__all__ = ["PReluWhere", "Gelu", "Mish", "CONVERTERS", "FIXES"]


class PReluWhere(nn.Module):
    """ONNX ``PRelu`` (opset >= 7: ``slope`` broadcasts to the input, numpy style)."""

    def forward(self, input_tensor: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if slope.ndim == 1 and input_tensor.ndim > 2 and slope.shape[0] == input_tensor.shape[1]:
            if slope.shape[0] != input_tensor.shape[-1] and slope.shape[0] != 1:
                # opset < 7 style per-channel slope, kept by the version converter
                slope = slope.reshape((-1,) + (1,) * (input_tensor.ndim - 2))
        return torch.where(input_tensor >= 0, input_tensor, input_tensor * slope)


class Gelu(nn.Module):
    """ONNX ``Gelu`` (opset 20), exact or with the ``tanh`` approximation."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"Gelu approximate '{approximate}' is not none/tanh")
        self.approximate = approximate

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.nn.functional.gelu(x, approximate=self.approximate)


class Mish(nn.Module):
    """ONNX ``Mish`` (opset 18): ``x * tanh(softplus(x))``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x * torch.tanh(torch.nn.functional.softplus(x))


def _gelu_converter(node: Any, graph: Any) -> Any:
    return converter_result(node, Gelu(node.attributes.get("approximate", "none")))


def _mish_converter(node: Any, graph: Any) -> Any:
    return converter_result(node, Mish())


CONVERTERS: list[tuple[str, int, Converter]] = [
    ("Gelu", 20, _gelu_converter),
    ("Mish", 18, _mish_converter),
    ("Mish", 22, _mish_converter),
]

FIXES: dict[str, Fix] = {
    "onnx2torch.node_converters.activations.OnnxPReLU": lambda m, model, opset: PReluWhere(),
}
