"""ONNX ``Resize`` (opset 10-19), the whole operator: the module, its converters and its fix.

onnx2torch's Resize (``OnnxResize``, ``OnnxResizeV10``) maps onto
``torch.nn.functional.interpolate`` and only *warns* when the ONNX coordinate or rounding mode
differs ("results might differ significantly") -- a silent wrong answer. It is rebuilt after
conversion from the node's attributes, and converters are added for versions 18 and 19
(``axes``, ``antialias``, ``keep_aspect_ratio_policy``, ``half_pixel_symmetric``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from onnx import ModelProto
from torch import nn

from ..proto import decoded
from ._common import Converter, Fix, converter_result, ints, node_attributes

__all__ = ["Resize", "resize_module", "CONVERTERS", "FIXES"]


# ONNX Resize coefficient functions (ratio in (0, 1], scale) -> weights of n neighbours,
# as in the ONNX reference implementation (onnx/reference/ops/op_resize.py).
def _nearest_coeffs(mode: str) -> Callable[[float, float], np.ndarray]:
    def coeffs(ratio: float, scale: float) -> np.ndarray:
        if float(ratio).is_integer():
            return np.array([0.0, 1.0])
        low = {
            "round_prefer_floor": ratio <= 0.5,
            "round_prefer_ceil": ratio < 0.5,
            "floor": True,
            "ceil": False,
        }[mode]
        return np.array([float(low), float(not low)])

    return coeffs


def _linear_coeffs(antialias: bool) -> Callable[[float, float], np.ndarray]:
    def coeffs(ratio: float, scale: float) -> np.ndarray:
        if not antialias:
            return np.array([1.0 - ratio, ratio])
        scale = min(scale, 1.0)
        start = int(np.floor(-1 / scale) + 1)
        args = (np.arange(start, start + 2 - 2 * start) - ratio) * scale
        weights = np.clip(1 - np.abs(args), 0, 1)
        return weights / weights.sum()

    return coeffs


def _cubic_coeffs(a: float, antialias: bool) -> Callable[[float, float], np.ndarray]:
    def kernel(x: float) -> float:
        x = abs(x)
        if x <= 1:
            return (a + 2) * x**3 - (a + 3) * x**2 + 1
        if x < 2:
            return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
        return 0.0

    def coeffs(ratio: float, scale: float) -> np.ndarray:
        if not antialias:
            return np.array(
                [kernel(ratio + 1), kernel(ratio), kernel(1 - ratio), kernel(2 - ratio)]
            )
        scale = min(scale, 1.0)
        start = int(np.floor(-2 / scale) + 1)
        weights = np.array([kernel(scale * (i - ratio)) for i in range(start, 2 - start)])
        return weights / weights.sum()

    return coeffs


class Resize(nn.Module):
    """ONNX ``Resize`` (opset 10-19): nearest (all four rounding modes), linear and cubic
    (with ``cubic_coeff_a``, ``exclude_outside``, ``antialias``), every
    ``coordinate_transformation_mode`` including ``tf_crop_and_resize`` (with ``roi`` and
    ``extrapolation_value``), ``axes`` and ``keep_aspect_ratio_policy``.

    Separable, one axis at a time, as the ONNX reference implementation: source
    coordinates, neighbour indices (edge-clamped) and weights are computed from the shapes
    in numpy, the data is gathered with ``index_select`` and weighted, so gradients flow
    and ``vmap`` works. onnx2torch's own Resize maps onto ``torch.nn.functional.interpolate``
    and only *warns* when the modes differ ("the results might differ significantly"): a
    silent wrong answer that mat2grad does not accept.
    """

    def __init__(
        self,
        mode: str = "nearest",
        coordinate_transformation_mode: str = "half_pixel",
        nearest_mode: str = "round_prefer_floor",
        cubic_coeff_a: float = -0.75,
        exclude_outside: bool = False,
        extrapolation_value: float = 0.0,
        antialias: bool = False,
        axes: Sequence[int] | None = None,
        keep_aspect_ratio_policy: str = "stretch",
        scales_only: bool = False,
    ) -> None:
        super().__init__()
        if mode == "nearest":
            if nearest_mode not in ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil"):
                raise ValueError(f"Resize nearest_mode '{nearest_mode}' is unknown")
            self._coeffs = _nearest_coeffs(nearest_mode)
        elif mode == "linear":
            self._coeffs = _linear_coeffs(antialias)
        elif mode == "cubic":
            self._coeffs = _cubic_coeffs(cubic_coeff_a, antialias)
        else:
            raise ValueError(f"Resize mode '{mode}' is not nearest/linear/cubic")
        known = (
            "half_pixel",
            "half_pixel_symmetric",
            "pytorch_half_pixel",
            "align_corners",
            "asymmetric",
            "tf_crop_and_resize",
        )
        if coordinate_transformation_mode not in known:
            raise ValueError(
                f"Resize coordinate_transformation_mode '{coordinate_transformation_mode}' "
                "is unknown"
            )
        if keep_aspect_ratio_policy not in ("stretch", "not_larger", "not_smaller"):
            raise ValueError(f"Resize keep_aspect_ratio_policy '{keep_aspect_ratio_policy}'")
        self.ctm = coordinate_transformation_mode
        self.exclude_outside = exclude_outside
        self.extrapolation_value = extrapolation_value
        self.axes = None if axes is None else list(axes)
        self.policy = keep_aspect_ratio_policy
        self.scales_only = scales_only  # Resize-10: forward(X, scales)

    def forward(  # noqa: D102
        self,
        X: torch.Tensor,  # noqa: N803 - ONNX input names
        roi: torch.Tensor | None = None,
        scales: torch.Tensor | None = None,
        sizes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.scales_only:
            roi, scales = None, roi
        rank = X.ndim
        axes = list(range(rank)) if self.axes is None else [a % rank for a in self.axes]
        in_sizes = [X.shape[a] for a in axes]
        if sizes is not None and sizes.numel():
            out = ints(sizes)
            factors = [o / i for o, i in zip(out, in_sizes, strict=True)]
            if self.policy != "stretch":
                scale = min(factors) if self.policy == "not_larger" else max(factors)
                factors = [scale] * len(axes)
                out = [int(scale * i + 0.5) for i in in_sizes]
        elif scales is not None and scales.numel():
            factors = [float(v) for v in scales.reshape(-1).tolist()]
            # floor(scale * size) computed in float32 as onnxruntime does: a scale of 5/3 stored
            # as float32 must give 5 from 3, not the 4 that a float64 product floors to
            out = [
                int(np.float32(f) * np.float32(i)) for f, i in zip(factors, in_sizes, strict=True)
            ]
        else:
            raise ValueError("Resize needs scales or sizes")
        boxes = None
        if self.ctm == "tf_crop_and_resize":
            if roi is None or not roi.numel():
                raise ValueError("Resize tf_crop_and_resize needs roi")
            r = [float(v) for v in roi.reshape(-1).tolist()]
            n = len(r) // 2
            full = len(axes) != n
            boxes = [(r[a], r[a + n]) if full else (r[k], r[k + n]) for k, a in enumerate(axes)]
        y = X
        for k, axis in enumerate(axes):
            box = None if boxes is None else boxes[k]
            identity = math.isclose(factors[k], 1.0) and out[k] == y.shape[axis]
            if identity and (box is None or (math.isclose(box[0], 0) and math.isclose(box[1], 1))):
                continue
            y = self._resize_axis(y, axis, factors[k], out[k], box)
        return y

    def _resize_axis(
        self,
        x: torch.Tensor,
        axis: int,
        scale: float,
        out_int: int,
        box: tuple[float, float] | None,
    ) -> torch.Tensor:
        size = x.shape[axis]
        out_width = scale * size
        grid = np.arange(out_int, dtype=np.float64)
        extrapolated = None
        if self.ctm == "align_corners":
            coord = np.zeros(out_int) if out_width == 1 else grid * (size - 1) / (out_width - 1)
        elif self.ctm == "asymmetric":
            coord = grid / scale
        elif self.ctm == "tf_crop_and_resize":
            start, end = box
            if out_width == 1:
                coord = np.full(out_int, (end - start) * (size - 1) / 2)
            else:
                coord = grid * (end - start) * (size - 1) / (out_width - 1)
            coord = coord + start * (size - 1)
            extrapolated = (coord < 0) | (coord > size - 1)
        elif self.ctm == "pytorch_half_pixel":
            coord = np.full(out_int, -0.5) if out_width == 1 else (grid + 0.5) / scale - 0.5
        elif self.ctm == "half_pixel":
            coord = (grid + 0.5) / scale - 0.5
        else:  # half_pixel_symmetric
            offset = size / 2 * (1 - out_int / out_width)
            coord = offset + (grid + 0.5) / scale - 0.5
        base = np.floor(coord).astype(np.int64)
        ratio = np.where(coord == base, 1.0, coord - base)
        weights = np.stack([self._coeffs(float(r), scale) for r in ratio])
        n = weights.shape[1]
        pad = int(np.ceil(n / 2))
        shifted = coord + pad
        p = np.floor(shifted).astype(np.int64)
        frac = shifted - p
        if n % 2 == 0:
            first = np.where(frac == 0, -(n // 2), -(n // 2) + 1)
        else:
            first = np.where(frac <= 0.5, -((n - 1) // 2), -((n - 1) // 2) + 1)
        idx = (p + first)[:, None] + np.arange(n)[None, :] - pad
        if self.exclude_outside:
            weights = np.where((idx < 0) | (idx >= size), 0.0, weights)
            total = weights.sum(axis=1, keepdims=True)
            weights = weights / np.where(total == 0, 1.0, total)
        idx = np.clip(idx, 0, size - 1)
        picks = torch.as_tensor(idx.reshape(-1), dtype=torch.long, device=x.device)
        gathered = torch.index_select(x, axis, picks)
        shape = list(x.shape)
        shape[axis : axis + 1] = [out_int, n]
        gathered = gathered.reshape(shape)
        w_shape = [1] * len(shape)
        w_shape[axis], w_shape[axis + 1] = out_int, n
        w = torch.as_tensor(weights, dtype=x.dtype, device=x.device).reshape(w_shape)
        y = (gathered * w).sum(dim=axis + 1)
        if extrapolated is not None and extrapolated.any():
            m_shape = [1] * y.ndim
            m_shape[axis] = out_int
            mask = torch.as_tensor(extrapolated, device=x.device).reshape(m_shape)
            y = torch.where(mask, torch.full_like(y, self.extrapolation_value), y)
        return y


def resize_module(attrs: Any, version: int) -> Resize:
    """A :class:`Resize` for an ONNX Resize node's attributes."""
    return Resize(
        mode=attrs.get("mode", "nearest"),
        coordinate_transformation_mode=attrs.get(
            "coordinate_transformation_mode", "half_pixel" if version >= 11 else "asymmetric"
        ),
        nearest_mode=attrs.get("nearest_mode", "round_prefer_floor" if version >= 11 else "floor"),
        cubic_coeff_a=float(attrs.get("cubic_coeff_a", -0.75)),
        exclude_outside=bool(attrs.get("exclude_outside", 0)),
        extrapolation_value=float(attrs.get("extrapolation_value", 0.0)),
        antialias=bool(attrs.get("antialias", 0)),
        axes=attrs.get("axes"),
        keep_aspect_ratio_policy=attrs.get("keep_aspect_ratio_policy", "stretch"),
        scales_only=version < 11,
    )


def _resize_converter(node: Any, graph: Any) -> Any:
    return converter_result(node, resize_module(node.attributes, 18))


def _resize_fix(module: nn.Module, model: ModelProto, opset: int) -> nn.Module:
    attrs, _ = node_attributes(model, module)
    attrs = {k: decoded(v) for k, v in attrs.items()}
    return resize_module(attrs, 10 if type(module).__name__ == "OnnxResizeV10" else opset)


CONVERTERS: list[tuple[str, int, Converter]] = [
    ("Resize", version, _resize_converter) for version in (18, 19)
]

FIXES: dict[str, Fix] = {
    "onnx2torch.node_converters.resize.OnnxResize": _resize_fix,
    "onnx2torch.node_converters.resize.OnnxResizeV10": _resize_fix,
}
