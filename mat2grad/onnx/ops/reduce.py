"""ONNX reductions: over the inputs (``Sum``, ``Mean``) and over axes (``Reduce*``).

* ``Sum`` and ``Mean`` (MATLAB's ``additionLayer`` exports as ``Sum``): onnx2torch's modules
  accumulate in place into a fresh ``zeros`` tensor, which fails under ``vmap``; they are
  replaced after conversion by :class:`SumOutOfPlace`.
* ``ReduceMean``, ``ReduceMax``, ... (18, and 20 for Max/Min): ``axes`` moved from an attribute
  to an input in opset 18 (PyTorch's exporter writes opset 18 by default); converters are added.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ._common import Converter, Fix, converter_result, ints

__all__ = ["SumOutOfPlace", "Reduce", "CONVERTERS", "FIXES"]


class SumOutOfPlace(nn.Module):
    """ONNX ``Sum`` / ``Mean`` of any number of broadcastable inputs, out of place."""

    def __init__(self, mean: bool = False) -> None:
        super().__init__()
        self.mean = mean

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:  # noqa: D102
        total = functools.reduce(torch.add, tensors)
        return total / len(tensors) if self.mean else total


_REDUCTIONS: dict[str, Callable[[torch.Tensor, list[int], bool], torch.Tensor]] = {
    "ReduceSum": lambda x, ax, keep: torch.sum(x, dim=ax, keepdim=keep),
    "ReduceMean": lambda x, ax, keep: torch.mean(x, dim=ax, keepdim=keep),
    "ReduceMax": lambda x, ax, keep: torch.amax(x, dim=ax, keepdim=keep),
    "ReduceMin": lambda x, ax, keep: torch.amin(x, dim=ax, keepdim=keep),
    "ReduceProd": lambda x, ax, keep: _prod(x, ax, keep),
    "ReduceL1": lambda x, ax, keep: torch.sum(x.abs(), dim=ax, keepdim=keep),
    "ReduceL2": lambda x, ax, keep: torch.sqrt(torch.sum(x * x, dim=ax, keepdim=keep)),
    "ReduceLogSum": lambda x, ax, keep: torch.log(torch.sum(x, dim=ax, keepdim=keep)),
    "ReduceLogSumExp": lambda x, ax, keep: torch.logsumexp(x, dim=ax, keepdim=keep),
    "ReduceSumSquare": lambda x, ax, keep: torch.sum(x * x, dim=ax, keepdim=keep),
}


def _prod(x: torch.Tensor, axes: list[int], keep: bool) -> torch.Tensor:
    for axis in sorted(axes, reverse=True):
        x = torch.prod(x, dim=axis, keepdim=keep)
    return x


class Reduce(nn.Module):
    """ONNX ``Reduce*`` with ``axes`` as an optional input (ReduceSum 13, the others 18+):
    no axes reduce over every axis, unless ``noop_with_empty_axes`` makes them the identity."""

    def __init__(self, op_type: str, keepdims: bool = True, noop_with_empty_axes: bool = False):
        super().__init__()
        if op_type not in _REDUCTIONS:
            raise ValueError(f"{op_type} is not an ONNX reduction")
        self.op_type = op_type
        self.keepdims = keepdims
        self.noop = noop_with_empty_axes

    def forward(self, data: torch.Tensor, axes: torch.Tensor | None = None) -> torch.Tensor:  # noqa: D102
        ax = [] if axes is None else ints(axes)
        if not ax:
            if self.noop:
                return data
            ax = list(range(data.ndim))
        ax = sorted({a % data.ndim for a in ax})
        return _REDUCTIONS[self.op_type](data, ax, self.keepdims)


def _reduce_converter(node: Any, graph: Any) -> Any:
    attrs = node.attributes
    module = Reduce(
        node.operation_type,
        keepdims=bool(attrs.get("keepdims", 1)),
        noop_with_empty_axes=bool(attrs.get("noop_with_empty_axes", 0)),
    )
    return converter_result(node, module)


_AXES_AS_INPUT_18 = (
    "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
    "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare",
)  # fmt: skip

CONVERTERS: list[tuple[str, int, Converter]] = [
    *((op_type, 18, _reduce_converter) for op_type in _AXES_AS_INPUT_18),
    *((op_type, 20, _reduce_converter) for op_type in ("ReduceMax", "ReduceMin")),
]

FIXES: dict[str, Fix] = {
    "onnx2torch.node_converters.sum.OnnxSum": lambda m, model, opset: SumOutOfPlace(),
    "onnx2torch.node_converters.mean.OnnxMean": lambda m, model, opset: SumOutOfPlace(mean=True),
}
