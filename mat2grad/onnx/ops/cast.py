"""ONNX ``Cast`` that follows the working dtype: the module, its converters and its fix.

A cast to a floating type yields the module's working float dtype (see
:class:`OnnxCastFollowingDtype`). Converters are added for versions 6 and 19-25 (the newer
versions only add float8 / 4-bit targets and the ``saturate``/``round_mode`` attributes that
apply to those); onnx2torch's own ``OnnxCast`` (the other versions) is replaced after
conversion, because a cast to float32 would pin a float64 computation back to float32.
"""

from __future__ import annotations

from typing import Any

import torch
from onnx import TensorProto
from torch import nn

from ._common import Converter, Fix, converter_result

__all__ = ["OnnxCastFollowingDtype", "TORCH_TO_ONNX_DTYPE", "CONVERTERS", "FIXES"]

_ONNX_TO_TORCH_DTYPE = {
    TensorProto.FLOAT: torch.float32,
    TensorProto.DOUBLE: torch.float64,
    TensorProto.FLOAT16: torch.float16,
    TensorProto.BFLOAT16: torch.bfloat16,
    TensorProto.UINT8: torch.uint8,
    TensorProto.INT8: torch.int8,
    TensorProto.INT16: torch.int16,
    TensorProto.INT32: torch.int32,
    TensorProto.INT64: torch.int64,
    TensorProto.BOOL: torch.bool,
}


TORCH_TO_ONNX_DTYPE = {v: k for k, v in _ONNX_TO_TORCH_DTYPE.items()}


class OnnxCastFollowingDtype(nn.Module):
    """ONNX ``Cast``; a cast to any floating type yields the module's working float dtype.

    A converted graph is run in float64 (or float32 on request). A ``Cast(to=FLOAT)`` on the
    data path would otherwise silently drop a float64 computation back to float32; casting to
    the working dtype keeps the whole graph at the precision asked for. Integer and bool
    targets are kept as they are (shape arithmetic, masks).
    """

    def __init__(self, onnx_to: int) -> None:
        super().__init__()
        if onnx_to not in _ONNX_TO_TORCH_DTYPE:
            raise ValueError(
                f"Cast to ONNX element type {TensorProto.DataType.Name(onnx_to)} is not supported"
            )
        self.onnx_to = onnx_to
        self.target = _ONNX_TO_TORCH_DTYPE[onnx_to]
        self.register_buffer("_dtype_probe", torch.zeros(()), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.target.is_floating_point:
            return x.to(self._dtype_probe.dtype)
        return x.to(self.target)


def _cast_converter(node: Any, graph: Any) -> Any:
    return converter_result(node, OnnxCastFollowingDtype(int(node.attributes["to"])))


CONVERTERS: list[tuple[str, int, Converter]] = [
    ("Cast", version, _cast_converter) for version in (6, 19, 21, 23, 24, 25)
]

FIXES: dict[str, Fix] = {
    "onnx2torch.node_converters.cast.OnnxCast": lambda m, model, opset: OnnxCastFollowingDtype(
        TORCH_TO_ONNX_DTYPE[m.torch_dtype]
    ),
}
