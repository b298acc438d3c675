"""Post-conversion fixes: where onnx2torch's own converter gives a module that is wrong for us.

onnx2torch refuses to register a converter twice, so a converter whose *result* is wrong
(for evaluation under ``torch.func``, or for float64) is not replaced in its registry; the
module it built is swapped here, after conversion, for one with the same ONNX semantics.
This is the one place where that happens. Each fix names the upstream defect:

* ``Slice`` (opset >= 10, ``OnnxSlice``): calls ``.numpy()`` on its ``starts/ends/axes/steps``
  inside ``forward``, which fails under ``jacrev``/``jacfwd`` ("Cannot access data pointer of
  Tensor that doesn't have storage"). Replaced by :class:`Slice`, which reads them with
  ``.tolist()`` (they are constants or shapes, never batched data).
* ``Sum`` and ``Mean`` (MATLAB's ``additionLayer`` exports as ``Sum``): accumulate in place
  into a fresh ``zeros`` tensor, which fails under ``vmap`` (the batched operand cannot be
  added into an unbatched buffer). Replaced by an out-of-place sum with broadcasting.
* ``PRelu``: boolean-mask assignment (``output[mask] = ...``) for a non-per-channel slope
  fails under ``vmap``. Replaced by ``torch.where(x >= 0, x, slope * x)``.
* ``Cast``: a cast to float32 would pin a float64 computation back to float32. Replaced by
  :class:`~mat2grad.onnx.converters.OnnxCastFollowingDtype`.
* ``Dropout`` modules, should any survive :mod:`mat2grad.onnx.normalize`: replaced by
  ``nn.Identity`` (inference semantics), whatever the module's training flag.

Every replacement keeps the ``onnx_mapping`` attribute onnx2torch attached (node inputs and
outputs by ONNX name), which the onnxruntime check uses to name a diverging node.
"""

from __future__ import annotations

import functools

import torch
from torch import fx, nn

from .converters import OnnxCastFollowingDtype

__all__ = ["Slice", "SumOutOfPlace", "PReluWhere", "apply_fixes"]


def _ints(value: torch.Tensor | list[int] | None) -> list[int] | None:
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return [int(v) for v in value.reshape(-1).tolist()]
    return [int(v) for v in value]


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
            s, e, a = _ints(starts), _ints(ends), _ints(axes)
        st = _ints(steps)
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


class SumOutOfPlace(nn.Module):
    """ONNX ``Sum`` / ``Mean`` of any number of broadcastable inputs, out of place."""

    def __init__(self, mean: bool = False) -> None:
        super().__init__()
        self.mean = mean

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:  # noqa: D102
        total = functools.reduce(torch.add, tensors)
        return total / len(tensors) if self.mean else total


class PReluWhere(nn.Module):
    """ONNX ``PRelu`` (opset >= 7: ``slope`` broadcasts to the input, numpy style)."""

    def forward(self, input_tensor: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if slope.ndim == 1 and input_tensor.ndim > 2 and slope.shape[0] == input_tensor.shape[1]:
            if slope.shape[0] != input_tensor.shape[-1] and slope.shape[0] != 1:
                # opset < 7 style per-channel slope, kept by the version converter
                slope = slope.reshape((-1,) + (1,) * (input_tensor.ndim - 2))
        return torch.where(input_tensor >= 0, input_tensor, input_tensor * slope)


def _replacement(module: nn.Module) -> nn.Module | None:
    name = type(module).__name__
    if name == "OnnxSlice":
        return Slice()
    if name == "OnnxSum":
        return SumOutOfPlace()
    if name == "OnnxMean":
        return SumOutOfPlace(mean=True)
    if name == "OnnxPReLU":
        return PReluWhere()
    if name == "OnnxCast":
        dtype = module.torch_dtype
        onnx_to = {v: k for k, v in _TORCH_TO_ONNX.items()}.get(dtype)
        return None if onnx_to is None else OnnxCastFollowingDtype(onnx_to)
    if isinstance(module, nn.Dropout) or name == "OnnxDropoutDynamic":
        return nn.Identity()
    return None


def _torch_to_onnx() -> dict[int, torch.dtype]:
    from .converters import _ONNX_TO_TORCH_DTYPE

    return dict(_ONNX_TO_TORCH_DTYPE)


_TORCH_TO_ONNX = _torch_to_onnx()


def apply_fixes(gm: fx.GraphModule) -> list[str]:
    """Swap the defective onnx2torch modules of ``gm`` in place; return what was swapped."""
    swapped: dict[str, int] = {}
    for name, module in list(gm.named_children()):
        new = _replacement(module)
        if new is None:
            continue
        if hasattr(module, "onnx_mapping"):
            new.onnx_mapping = module.onnx_mapping
        setattr(gm, name, new)
        key = type(module).__name__
        swapped[key] = swapped.get(key, 0) + 1
    return [f"{key} x{count}" for key, count in swapped.items()]
