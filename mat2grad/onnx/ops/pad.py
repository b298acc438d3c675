"""ONNX ``Pad`` on any axes, in every mode: the module, its converters and its fix.

onnx2torch's Pad (``OnnxPadDynamic``/``OnnxPadStatic``) handles ``reflect``/``edge`` only on
the trailing axes ``torch.nn.functional.pad`` supports and has no ``wrap``; it is replaced after
conversion, and converters are added for versions 18-25 (the ``axes`` input and ``wrap``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from onnx import ModelProto
from torch import nn

from ..proto import decoded
from ._common import Converter, Fix, converter_result, ints, node_attributes

__all__ = ["Pad", "CONVERTERS", "FIXES"]


class Pad(nn.Module):
    """ONNX ``Pad`` (opset 11 and later): modes ``constant``, ``reflect``, ``edge``, ``wrap``,
    on any axes (the optional ``axes`` input of opset 18), negative pads crop.

    onnx2torch's Pad handles ``reflect``/``edge`` only on the trailing axes that
    ``torch.nn.functional.pad`` supports and has no ``wrap``; here the non-constant modes
    gather indices per axis, which works for every rank.
    """

    def __init__(self, mode: str = "constant") -> None:
        super().__init__()
        if mode not in ("constant", "reflect", "edge", "wrap"):
            raise ValueError(f"Pad mode '{mode}' is not constant/reflect/edge/wrap")
        self.mode = mode

    def forward(  # noqa: D102
        self,
        input_tensor: torch.Tensor,
        pads: torch.Tensor,
        constant_value: torch.Tensor | float | None = None,
        axes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = input_tensor
        rank = x.ndim
        values = ints(pads)
        ax = list(range(rank)) if axes is None else [a % rank for a in ints(axes)]
        begins, ends = values[: len(ax)], values[len(ax) :]
        if self.mode == "constant":
            fill = 0.0
            if isinstance(constant_value, torch.Tensor) and constant_value.numel():
                fill = constant_value.reshape(-1)[0].item()
            elif isinstance(constant_value, float | int):
                fill = float(constant_value)
            widths = []
            for axis in reversed(range(rank)):
                k = ax.index(axis) if axis in ax else None
                widths += [0, 0] if k is None else [begins[k], ends[k]]
            return torch.nn.functional.pad(x, widths, mode="constant", value=fill)
        for axis, begin, end in zip(ax, begins, ends, strict=True):
            size = x.shape[axis]
            idx = np.arange(-begin, size + end)
            if self.mode == "edge":
                idx = np.clip(idx, 0, size - 1)
            elif self.mode == "wrap":
                idx = np.mod(idx, size)
            else:  # reflect, without repeating the edge
                period = 2 * (size - 1) if size > 1 else 1
                idx = np.mod(idx, period)
                idx = np.where(idx >= size, period - idx, idx)
            picks = torch.as_tensor(idx, dtype=torch.long, device=x.device)
            x = torch.index_select(x, axis, picks)
        return x


class _StaticPad(nn.Module):
    """Pad-2 (pads and value as attributes) through :class:`Pad`."""

    def __init__(self, mode: str, pads: list[int], value: float) -> None:
        super().__init__()
        self.pad = Pad(mode)
        self.pads, self.value = pads, value

    def forward(self, x):  # noqa: D102
        return self.pad(x, torch.tensor(self.pads), self.value)


def _pad_converter(node: Any, graph: Any) -> Any:
    return converter_result(node, Pad(node.attributes.get("mode", "constant")))


def _pad_fix(module: nn.Module, model: ModelProto, opset: int) -> nn.Module:
    attrs, node = node_attributes(model, module)
    mode = decoded(attrs.get("mode", "constant"))
    if type(module).__name__ == "OnnxPadStatic":  # Pad-2: pads and value as attributes
        return _StaticPad(mode, list(attrs["pads"]), float(attrs.get("value", 0.0)))
    return Pad(mode)


CONVERTERS: list[tuple[str, int, Converter]] = [
    ("Pad", version, _pad_converter) for version in (18, 19, 21, 23, 24, 25)
]

FIXES: dict[str, Fix] = {
    "onnx2torch.node_converters.pad.OnnxPadDynamic": _pad_fix,
    "onnx2torch.node_converters.pad.OnnxPadStatic": _pad_fix,
}
