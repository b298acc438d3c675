"""The PyTorch modules mat2grad supplies for ONNX operators.

Used by :mod:`mat2grad.onnx.converters` (operators onnx2torch lacks) and by
:mod:`mat2grad.onnx.fixes` (replacements for onnx2torch modules that are wrong for us). Every
module here follows the ONNX operator definition, computes out of place, and reads its
shape-like arguments (``starts``, ``pads``, ``sizes``, ...) with ``.tolist()``: they are
constants or shapes, never batched data, so the modules run under ``torch.func.vmap`` /
``jacrev`` / ``jacfwd``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from onnx import TensorProto
from torch import nn

__all__ = [
    "OnnxRecurrent",
    "OnnxLSTM",
    "OnnxGRUOrRNN",
    "OnnxCastFollowingDtype",
    "Slice",
    "SumOutOfPlace",
    "PReluWhere",
    "Flatten",
    "Pad",
    "Resize",
    "Reduce",
    "Split",
    "Gelu",
    "Mish",
    "DEFAULT_ACTIVATIONS",
    "TORCH_TO_ONNX_DTYPE",
    "activation_list",
]


# --------------------------------------------------------------------------------------
# Recurrent layers (LSTM, GRU, RNN)
# --------------------------------------------------------------------------------------

# name (lower case, as onnxruntime matches them) -> (function(x, alpha, beta), default alpha,
# default beta); a default of None means the function does not take that parameter, and
# math.nan means it takes it but has no default (the node must give it).
_ACTIVATIONS: dict[str, tuple[Callable[..., torch.Tensor], float | None, float | None]] = {
    "relu": (lambda x, a, b: torch.relu(x), None, None),
    "tanh": (lambda x, a, b: torch.tanh(x), None, None),
    "sigmoid": (lambda x, a, b: torch.sigmoid(x), None, None),
    "affine": (lambda x, a, b: a * x + b, math.nan, math.nan),
    "leakyrelu": (lambda x, a, b: torch.where(x >= 0, x, a * x), 0.01, None),
    "thresholdedrelu": (lambda x, a, b: torch.where(x > a, x, torch.zeros_like(x)), 1.0, None),
    "scaledtanh": (lambda x, a, b: a * torch.tanh(b * x), math.nan, math.nan),
    "hardsigmoid": (lambda x, a, b: torch.clamp(a * x + b, 0.0, 1.0), 0.2, 0.5),
    "elu": (lambda x, a, b: torch.where(x >= 0, x, a * torch.expm1(x)), 1.0, None),
    "softsign": (lambda x, a, b: x / (1 + x.abs()), None, None),
    "softplus": (lambda x, a, b: torch.nn.functional.softplus(x), None, None),
}

_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
DEFAULT_ACTIVATIONS = {
    "LSTM": ("Sigmoid", "Tanh", "Tanh"),
    "GRU": ("Sigmoid", "Tanh"),
    "RNN": ("Tanh",),
}


def activation_list(
    kind: str, names: Sequence[str], alphas: Sequence[float], betas: Sequence[float]
) -> list[tuple[str, float, float]]:
    """Pair each activation with its alpha/beta, consuming the lists like onnxruntime does:
    in order, and only by the functions that take the parameter."""
    out = []
    queues = {"alpha": list(alphas), "beta": list(betas)}
    for name in names:
        key = name.lower()
        if key not in _ACTIVATIONS:
            raise ValueError(
                f"{kind} activation '{name}' is not an ONNX recurrent activation "
                f"(known: {', '.join(sorted(_ACTIVATIONS))})"
            )
        params = []
        for which, default in zip(("alpha", "beta"), _ACTIVATIONS[key][1:], strict=True):
            if default is None:
                params.append(0.0)  # the function does not take it
            elif queues[which]:
                params.append(float(queues[which].pop(0)))
            elif math.isnan(default):
                raise ValueError(f"{kind} activation '{name}' needs activation_{which}")
            else:
                params.append(default)
        out.append((key, params[0], params[1]))
    return out


class OnnxRecurrent(nn.Module):
    """ONNX ``LSTM`` / ``GRU`` / ``RNN`` (opset 7, 14, 22), written out step by step.

    Shapes (``layout=0``; ``layout=1`` swaps the sequence and batch axes of X, Y, Y_h, Y_c):
    X ``(T, N, I)``, W ``(D, G*H, I)``, R ``(D, G*H, H)``, B ``(D, 2*G*H)``, sequence_lens
    ``(N,)``, initial_h / initial_c ``(D, N, H)`` (a batch of 1 is broadcast), P ``(D, 3*H)``;
    outputs Y ``(T, D, N, H)``, Y_h / Y_c ``(D, N, H)``, where G is 4 / 3 / 1 gates and D is 2
    for ``direction='bidirectional'``, else 1. Steps past a sample's ``sequence_lens`` leave
    the state unchanged and write zeros to Y, as onnxruntime does.
    """

    def __init__(
        self,
        kind: str,
        hidden_size: int,
        direction: str,
        layout: int,
        activations: Sequence[tuple[str, float, float]],
        clip: float | None,
        input_forget: bool,
        linear_before_reset: bool,
        num_outputs: int,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.hidden_size = hidden_size
        self.direction = direction
        self.layout = layout
        self.activations = list(activations)
        self.clip = clip
        self.input_forget = input_forget
        self.linear_before_reset = linear_before_reset
        self.num_outputs = num_outputs

    def _act(self, k: int, x: torch.Tensor) -> torch.Tensor:
        name, alpha, beta = self.activations[k]
        return _ACTIVATIONS[name][0](x, alpha, beta)

    def _pre(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.clip is None else torch.clamp(x, -self.clip, self.clip)

    def run(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        r: torch.Tensor,
        b: torch.Tensor | None,
        sequence_lens: torch.Tensor | None,
        initial_h: torch.Tensor | None,
        initial_c: torch.Tensor | None,
        p: torch.Tensor | None,
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Evaluate the node; arguments in ONNX input order (LSTM order; GRU/RNN pass None)."""
        if self.layout == 1:
            x = x.transpose(0, 1)
            initial_h = None if initial_h is None else initial_h.transpose(0, 1)
            initial_c = None if initial_c is None else initial_c.transpose(0, 1)
        steps, batch = x.shape[0], x.shape[1]
        hid, gates = self.hidden_size, _GATES[self.kind]
        num_dir = 2 if self.direction == "bidirectional" else 1
        zeros = x.new_zeros((batch, hid))
        ys, hs, cs = [], [], []
        for d in range(num_dir):
            reverse = self.direction == "reverse" or d == 1
            per_dir = len(self.activations) // num_dir
            acts = list(range(d * per_dir, (d + 1) * per_dir))
            wb = rb = None
            if b is not None:
                wb, rb = b[d, : gates * hid], b[d, gates * hid :]
            xw = torch.matmul(x, w[d].transpose(0, 1))  # (T, N, G*H)
            if wb is not None:
                xw = xw + wb
            h = zeros if initial_h is None else initial_h[d].expand(batch, hid)
            c = zeros if initial_c is None else initial_c[d].expand(batch, hid)
            pd = None if p is None else p[d]
            out: list[torch.Tensor | None] = [None] * steps
            for t in range(steps - 1, -1, -1) if reverse else range(steps):
                h_new, c_new = self._step(xw[t], h, c, r[d], rb, pd, acts)
                if sequence_lens is None:
                    h, c = h_new, c_new
                    out[t] = h
                else:
                    valid = (sequence_lens > t).unsqueeze(-1)
                    h = torch.where(valid, h_new, h)
                    c = torch.where(valid, c_new, c)
                    out[t] = torch.where(valid, h_new, torch.zeros_like(h_new))
            ys.append(torch.stack(out, 0))  # (T, N, H)
            hs.append(h)
            cs.append(c)
        y = torch.stack(ys, 1)  # (T, D, N, H)
        y_h = torch.stack(hs, 0)  # (D, N, H)
        y_c = torch.stack(cs, 0)
        if self.layout == 1:
            y = y.permute(2, 0, 1, 3)
            y_h, y_c = y_h.transpose(0, 1), y_c.transpose(0, 1)
        results = (y, y_h, y_c) if self.kind == "LSTM" else (y, y_h)
        if self.num_outputs == 1:
            return results[0]
        return results[: self.num_outputs]

    def _step(
        self,
        xw: torch.Tensor,
        h: torch.Tensor,
        c: torch.Tensor,
        r: torch.Tensor,
        rb: torch.Tensor | None,
        p: torch.Tensor | None,
        acts: list[int],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hid = self.hidden_size
        if self.kind == "RNN":
            hr = torch.matmul(h, r.transpose(0, 1))
            if rb is not None:
                hr = hr + rb
            return self._act(acts[0], self._pre(xw + hr)), c
        if self.kind == "GRU":
            rz, rr, rh = r[:hid], r[hid : 2 * hid], r[2 * hid :]
            bz = br = bh = None
            if rb is not None:
                bz, br, bh = rb[:hid], rb[hid : 2 * hid], rb[2 * hid :]
            xz, xr, xh = xw[:, :hid], xw[:, hid : 2 * hid], xw[:, 2 * hid :]
            pre_z = xz + torch.matmul(h, rz.transpose(0, 1))
            pre_r = xr + torch.matmul(h, rr.transpose(0, 1))
            if rb is not None:
                pre_z, pre_r = pre_z + bz, pre_r + br
            z = self._act(acts[0], self._pre(pre_z))
            rg = self._act(acts[0], self._pre(pre_r))
            if self.linear_before_reset:
                hr = torch.matmul(h, rh.transpose(0, 1))
                if bh is not None:
                    hr = hr + bh
                pre_h = xh + rg * hr
            else:
                pre_h = xh + torch.matmul(rg * h, rh.transpose(0, 1))
                if bh is not None:
                    pre_h = pre_h + bh
            hh = self._act(acts[1], self._pre(pre_h))
            return (1 - z) * hh + z * h, c
        # LSTM, gates in ONNX order i, o, f, c
        pre = xw + torch.matmul(h, r.transpose(0, 1))
        if rb is not None:
            pre = pre + rb
        pre_i, pre_o, pre_f, pre_c = (pre[:, k * hid : (k + 1) * hid] for k in range(4))
        if p is not None:
            p_i, p_o, p_f = p[:hid], p[hid : 2 * hid], p[2 * hid :]
            pre_i = pre_i + p_i * c
            pre_f = pre_f + p_f * c
        i = self._act(acts[0], self._pre(pre_i))
        f = 1 - i if self.input_forget else self._act(acts[0], self._pre(pre_f))
        g = self._act(acts[1], self._pre(pre_c))
        c_new = f * c + i * g
        if p is not None:
            pre_o = pre_o + p_o * c_new
        o = self._act(acts[0], self._pre(pre_o))
        return o * self._act(acts[2], c_new), c_new


class OnnxLSTM(OnnxRecurrent):
    """ONNX ``LSTM``; forward arguments in ONNX input order (onnx2torch maps them by name)."""

    def forward(  # noqa: D102 - documented on the class
        self,
        X: torch.Tensor,  # noqa: N803 - ONNX input names
        W: torch.Tensor,  # noqa: N803
        R: torch.Tensor,  # noqa: N803
        B: torch.Tensor | None = None,  # noqa: N803
        sequence_lens: torch.Tensor | None = None,
        initial_h: torch.Tensor | None = None,
        initial_c: torch.Tensor | None = None,
        P: torch.Tensor | None = None,  # noqa: N803
    ):
        return self.run(X, W, R, B, sequence_lens, initial_h, initial_c, P)


class OnnxGRUOrRNN(OnnxRecurrent):
    """ONNX ``GRU`` and ``RNN``; forward arguments in ONNX input order."""

    def forward(  # noqa: D102
        self,
        X: torch.Tensor,  # noqa: N803
        W: torch.Tensor,  # noqa: N803
        R: torch.Tensor,  # noqa: N803
        B: torch.Tensor | None = None,  # noqa: N803
        sequence_lens: torch.Tensor | None = None,
        initial_h: torch.Tensor | None = None,
    ):
        return self.run(X, W, R, B, sequence_lens, initial_h, None, None)


# --------------------------------------------------------------------------------------
# Cast that follows the working dtype
# --------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------
# Shape-like operators
# --------------------------------------------------------------------------------------


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
        values = _ints(pads)
        ax = list(range(rank)) if axes is None else [a % rank for a in _ints(axes)]
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
            out = _ints(sizes)
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


# --------------------------------------------------------------------------------------
# Reductions with axes as an input (opset 18 and later)
# --------------------------------------------------------------------------------------

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
        ax = [] if axes is None else _ints(axes)
        if not ax:
            if self.noop:
                return data
            ax = list(range(data.ndim))
        ax = sorted({a % data.ndim for a in ax})
        return _REDUCTIONS[self.op_type](data, ax, self.keepdims)


# --------------------------------------------------------------------------------------
# Split with num_outputs (opset 18), and activations onnx2torch lacks
# --------------------------------------------------------------------------------------


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
            sizes = _ints(split)
        else:
            part = -(-size // self.num_outputs)
            sizes = [part] * (self.num_outputs - 1) + [size - part * (self.num_outputs - 1)]
        parts = torch.split(input_tensor, sizes, dim=axis)
        return parts[0] if len(parts) == 1 else tuple(parts)


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
