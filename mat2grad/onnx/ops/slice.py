"""ONNX ``Slice`` and ``Split``: cutting a tensor into parts.

* ``Slice`` (any version), safe under ``torch.func`` transforms. A converter is added for
  version 1 (onnx2torch registers a "Slice-9", a version ONNX never had, so opset 1-9 Slice
  nodes find no converter), and onnx2torch's ``OnnxSlice`` (opset >= 10) is replaced after
  conversion: it calls ``.numpy()`` on ``starts/ends/axes/steps`` inside ``forward``, which
  fails under ``jacrev``/``jacfwd`` ("Cannot access data pointer of Tensor that doesn't have
  storage").
* ``Split`` version 18 (``num_outputs``), missing upstream.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._common import Converter, Fix, converter_result, ints

__all__ = ["Slice", "Split", "CONVERTERS", "FIXES"]


class Slice(nn.Module):
    """ONNX ``Slice`` (any version) without ``.numpy()``; safe under ``torch.func`` transforms.

    ``starts/ends/axes/steps`` come either as forward arguments (opset >= 10) or as bound
    attributes (opset < 10). Index semantics follow the ONNX definition: negative starts and
    ends count from the end, out-of-range values are clamped, negative steps walk backwards.
    """

    def __init__(
        self,
        starts: list[int] | None = None,
        ends: list[int] | None = None,
        axes: list[int] | None = None,
    ) -> None:
        super().__init__()
        self.bound = (starts, ends, axes)

    def forward(  # noqa: D102
        self,
        input_tensor: torch.Tensor,
        starts: torch.Tensor | None = None,
        ends: torch.Tensor | None = None,
        axes: torch.Tensor | None = None,
        steps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if starts is None:
            s, e, a = self.bound
        else:
            s, e, a = ints(starts), ints(ends), ints(axes)
        st = ints(steps)
        a = list(range(len(s))) if a is None else a
        st = [1] * len(s) if st is None else st
        x = input_tensor
        for start, end, axis, step in zip(s, e, a, st, strict=True):
            axis = axis % x.ndim
            dim = x.shape[axis]
            if step > 0:
                index = [slice(None)] * axis + [slice(start, end, step)]
                x = x[tuple(index)]
                continue
            if step == 0:
                raise ValueError("Slice step must not be 0")
            start = start + dim if start < 0 else start
            end = end + dim if end < 0 else end
            start = min(max(start, 0), dim - 1)
            end = min(max(end, -1), dim - 1)
            picks = torch.arange(start, end, step, device=x.device, dtype=torch.long)
            x = torch.index_select(x, axis, picks)
        return x


class Split(nn.Module):
    """ONNX ``Split`` (opset 13 and 18): by the ``split`` input, else into ``num_outputs``
    (the last part smaller when the axis does not divide) or into equal parts."""

    def __init__(self, axis: int, num_outputs: int) -> None:
        super().__init__()
        self.axis = axis
        self.num_outputs = num_outputs

    def forward(  # noqa: D102
        self, input_tensor: torch.Tensor, split: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        axis = self.axis % input_tensor.ndim
        size = input_tensor.shape[axis]
        if split is not None and split.numel():
            sizes = ints(split)
        else:
            part = -(-size // self.num_outputs)
            sizes = [part] * (self.num_outputs - 1) + [size - part * (self.num_outputs - 1)]
        parts = torch.split(input_tensor, sizes, dim=axis)
        return parts[0] if len(parts) == 1 else tuple(parts)


def _slice_v1_converter(node: Any, graph: Any) -> Any:
    attrs = node.attributes
    module = Slice(list(attrs["starts"]), list(attrs["ends"]), attrs.get("axes"))
    return converter_result(node, module)


def _split_converter(node: Any, graph: Any) -> Any:
    attrs = node.attributes
    module = Split(
        int(attrs.get("axis", 0)), int(attrs.get("num_outputs", len(node.output_values)))
    )
    return converter_result(node, module)


CONVERTERS: list[tuple[str, int, Converter]] = [
    ("Slice", 1, _slice_v1_converter),
    ("Split", 18, _split_converter),
]

FIXES: dict[str, Fix] = {
    "onnx2torch.node_converters.slice.OnnxSlice": lambda m, model, opset: Slice(),
}
