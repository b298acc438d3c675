"""ONNX ``ReverseSequence`` (10, 28): the module and its converter (onnx2torch has none).

tf2onnx writes it for Keras ``go_backwards=True`` and for the backward half of
``Bidirectional`` layers that it does not fuse into one recurrent node (the input sequence,
and the Masking layer's mask beside it). Its ``sequence_lens`` there is the time length
taken from ``Shape`` and expanded over the batch, but any lengths are followed: the reversal
is one ``gather`` along the time axis with per-sample indices computed from the lengths, so
it runs under ``vmap`` even where the lengths are data.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...errors import Mat2GradError
from ._common import Converter, Fix, converter_result

__all__ = ["OnnxReverseSequence", "CONVERTERS", "FIXES"]


class OnnxReverseSequence(nn.Module):
    """``(input, sequence_lens) -> output``: for each batch entry ``b`` the first
    ``sequence_lens[b]`` elements along ``time_axis`` reversed, the rest copied.

    Lengths outside ``[0, T]`` are invalid (onnxruntime refuses them): lengths the graph
    fixes (from shapes or constants) raise a Mat2GradError; lengths computed from the data
    cannot be inspected under ``vmap``, and the entries they belong to become NaN.
    """

    def __init__(self, batch_axis: int, time_axis: int) -> None:
        super().__init__()
        self.batch_axis = batch_axis
        self.time_axis = time_axis

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:  # noqa: D102
        steps, batch = x.shape[self.time_axis], x.shape[self.batch_axis]
        t = torch.arange(steps, device=x.device)
        n = lens.to(torch.int64).reshape(-1).expand(batch)
        valid = (n >= 0) & (n <= steps)
        try:
            known_bad = not bool(valid.all())
        except RuntimeError:  # data-dependent lengths under vmap: marked below instead
            known_bad = False
        if known_bad:
            raise Mat2GradError(
                f"ReverseSequence: sequence_lens {n.tolist()} lie outside [0, {steps}] (the "
                "time axis' length); the file is inconsistent, export the model again"
            )
        n = n.clamp(0, steps)  # keeps the gather in range; invalid entries become NaN
        index = torch.where(t < n[:, None], n[:, None] - 1 - t, t)  # (batch, steps)
        if self.time_axis == 0:
            index = index.transpose(0, 1)  # not MATLAB layout: ONNX time-major (T, N)
        index = index.reshape(index.shape + (1,) * (x.dim() - 2)).expand(x.shape)
        out = torch.gather(x, self.time_axis, index)
        mask_shape = [1] * x.dim()
        mask_shape[self.batch_axis] = batch
        return torch.where(valid.reshape(mask_shape), out, torch.nan)


def _convert(node: Any, graph: Any) -> Any:
    attrs = node.attributes
    batch_axis, time_axis = int(attrs.get("batch_axis", 1)), int(attrs.get("time_axis", 0))
    if {batch_axis, time_axis} != {0, 1}:
        raise ValueError(
            f"ReverseSequence '{node.name}': batch_axis {batch_axis} and time_axis "
            f"{time_axis} must be 0 and 1"
        )
    return converter_result(node, OnnxReverseSequence(batch_axis, time_axis))


#: version 28 only adds bfloat16
CONVERTERS: list[tuple[str, int, Converter]] = [("ReverseSequence", v, _convert) for v in (10, 28)]

FIXES: dict[str, Fix] = {}
