"""Converters onnx2torch lacks, added through its own registration API.

onnx2torch keeps one table of converters keyed by ``(domain, op_type, since_version)`` and
refuses to register a pair twice (``add_converter`` raises ``ValueError``). This module adds
pairs that are missing, and only those: a wrong *existing* converter is never overridden here
but fixed after conversion in :mod:`mat2grad.onnx.fixes`.

What is added, and why:

* ``LSTM``, ``GRU``, ``RNN`` (versions 7, 14, 22): onnx2torch has no recurrent converters at all.
  MATLAB exports ``lstmLayer`` as an ONNX ``LSTM`` with its initial states as batch-1
  initializers; PyTorch 0.3 exports take ``h0``/``c0`` as graph inputs. The implementation
  below follows the ONNX operator definition line by line (gate orders ``iofc`` / ``zrh``,
  ``activations`` with ``activation_alpha``/``activation_beta`` consumed only by the functions
  that take them, as onnxruntime does, ``clip`` on gate pre-activations, peepholes,
  ``input_forget``, ``linear_before_reset``, ``direction``, ``layout``, ``sequence_lens``),
  with a Python loop over time steps of out-of-place tensor operations, so it runs under
  ``torch.func.vmap``/``jacrev``/``jacfwd``. Version 1 (``output_sequence``) nodes are relabelled
  to version 7 by :mod:`mat2grad.onnx.normalize`.
* ``Cast`` (19, 21, 23, 24, 25): newer versions only add float8/4-bit target types and the
  ``saturate``/``round_mode`` attributes that apply to them; the cast follows the working dtype
  for floating targets (see :class:`OnnxCastFollowingDtype`).
* Pure type-extension versions of operators onnx2torch already implements
  (:data:`TYPE_ONLY_ALIASES`): the newer version of these operators adds tensor element types
  (bfloat16, 4-bit, float8, ...) and nothing else, so the existing converter applies. Each
  alias is checked against the ONNX schemas at registration time: inputs, outputs and
  attributes must have the same names in both versions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from onnx import TensorProto, defs
from torch import nn

from ._onnx2torch import import_onnx2torch

__all__ = [
    "OnnxRecurrent",
    "OnnxCastFollowingDtype",
    "TYPE_ONLY_ALIASES",
    "register_converters",
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
_DEFAULT_ACTIVATIONS = {
    "LSTM": ("Sigmoid", "Tanh", "Tanh"),
    "GRU": ("Sigmoid", "Tanh"),
    "RNN": ("Tanh",),
}


def _activation_list(
    kind: str, names: Sequence[str], alphas: Sequence[float], betas: Sequence[float]
) -> list[tuple[str, float, float]]:
    """Pair each activation with its alpha/beta, consuming the lists like onnxruntime does."""
    out = []
    ia = ib = 0
    for name in names:
        key = name.lower()
        if key not in _ACTIVATIONS:
            raise ValueError(
                f"{kind} activation '{name}' is not an ONNX recurrent activation "
                f"(known: {', '.join(sorted(_ACTIVATIONS))})"
            )
        _, default_alpha, default_beta = _ACTIVATIONS[key]
        alpha = beta = 0.0
        if default_alpha is not None:
            if ia < len(alphas):
                alpha, ia = float(alphas[ia]), ia + 1
            elif math.isnan(default_alpha):
                raise ValueError(f"{kind} activation '{name}' needs activation_alpha")
            else:
                alpha = default_alpha
        if default_beta is not None:
            if ib < len(betas):
                beta, ib = float(betas[ib]), ib + 1
            elif math.isnan(default_beta):
                raise ValueError(f"{kind} activation '{name}' needs activation_beta")
            else:
                beta = default_beta
        out.append((key, alpha, beta))
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


def _recurrent_converter(kind: str):
    def convert(node, graph):  # (OnnxNode, OnnxGraph) -> OperationConverterResult
        from onnx2torch.utils.common import OperationConverterResult, onnx_mapping_from_node

        attrs = node.attributes
        direction = attrs.get("direction", "forward")
        if direction not in ("forward", "reverse", "bidirectional"):
            raise ValueError(f"{kind} direction '{direction}' is not forward/reverse/bidirectional")
        num_dir = 2 if direction == "bidirectional" else 1
        names = attrs.get("activations", list(_DEFAULT_ACTIVATIONS[kind]) * num_dir)
        per_dir = len(_DEFAULT_ACTIVATIONS[kind])
        if len(names) == per_dir and num_dir == 2:
            names = list(names) * 2
        if len(names) != per_dir * num_dir:
            raise ValueError(
                f"{kind} needs {per_dir * num_dir} activations for direction '{direction}', "
                f"got {len(names)}"
            )
        activations = _activation_list(
            kind, names, attrs.get("activation_alpha", []), attrs.get("activation_beta", [])
        )
        clip = attrs.get("clip")
        cls = OnnxLSTM if kind == "LSTM" else OnnxGRUOrRNN
        module = cls(
            kind=kind,
            hidden_size=int(attrs["hidden_size"]),
            direction=direction,
            layout=int(attrs.get("layout", 0)),
            activations=activations,
            clip=None if clip is None else float(clip),
            input_forget=bool(attrs.get("input_forget", 0)),
            linear_before_reset=bool(attrs.get("linear_before_reset", 0)),
            num_outputs=len(node.output_values),
        )
        return OperationConverterResult(
            torch_module=module, onnx_mapping=onnx_mapping_from_node(node)
        )

    return convert


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


def _cast_converter(node, graph):
    from onnx2torch.utils.common import OperationConverterResult, onnx_mapping_from_node

    return OperationConverterResult(
        torch_module=OnnxCastFollowingDtype(int(node.attributes["to"])),
        onnx_mapping=onnx_mapping_from_node(node),
    )


def _slice_v1_converter(node, graph):
    """Slice-1 (starts/ends/axes as attributes). onnx2torch registers a "Slice-9", a version
    ONNX never had, so opset 1-9 Slice nodes find no converter."""
    from onnx2torch.utils.common import OperationConverterResult, onnx_mapping_from_node

    from .fixes import Slice

    attrs = node.attributes
    module = Slice(list(attrs["starts"]), list(attrs["ends"]), attrs.get("axes"))
    return OperationConverterResult(torch_module=module, onnx_mapping=onnx_mapping_from_node(node))


# --------------------------------------------------------------------------------------
# Newer versions that only add element types
# --------------------------------------------------------------------------------------

#: (op_type, newer version) -> version onnx2torch registers, where the newer schema only adds
#: tensor element types (checked: same input, output and attribute names).
TYPE_ONLY_ALIASES: dict[tuple[str, int], int] = {
    **{("Identity", v): 16 for v in (19, 21, 23, 24, 25)},
    **{("Reshape", v): 14 for v in (19, 21, 23, 24, 25)},
    **{("Flatten", v): 13 for v in (21, 23, 24, 25)},
    **{("Transpose", v): 13 for v in (21, 23, 24, 25)},
    **{("Squeeze", v): 21 for v in (23, 24, 25)},
    **{("Unsqueeze", v): 13 for v in (21, 23, 24, 25)},
    **{("Shape", v): 15 for v in (19, 21, 23, 24, 25)},
    **{("Constant", v): 13 for v in (19, 21, 23, 24, 25)},
    **{("ConstantOfShape", v): 9 for v in (20, 21, 23, 24, 25)},
    **{(op, 22): 7 for op in ("Acos", "Asin", "Atan", "Cos", "Sin", "Tan")},
    ("Equal", 19): 13,
    ("GreaterOrEqual", 16): 12,
    ("LessOrEqual", 16): 12,
    ("IsInf", 20): 10,
    ("IsNaN", 20): 13,
    ("Round", 22): 11,
    ("HardSwish", 22): 14,
    ("EyeLike", 22): 9,
    ("Conv", 22): 11,
    ("ConvTranspose", 22): 11,
    ("MaxPool", 22): 12,
    ("GlobalAveragePool", 22): 1,
    ("Elu", 22): 6,
    ("Selu", 22): 6,
    ("HardSigmoid", 22): 6,
    ("Softplus", 22): 1,
    ("Softsign", 22): 1,
    ("InstanceNormalization", 22): 6,
}


def schema_signature(op_type: str, version: int) -> tuple[tuple[str, ...], ...]:
    """Input, output and attribute names of an ONNX operator schema at ``version``."""
    schema = defs.get_schema(op_type, version)
    return (
        tuple(i.name for i in schema.inputs),
        tuple(o.name for o in schema.outputs),
        tuple(sorted(schema.attributes)),
    )


# --------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------

_registered: list[bool] = []


def register_converters() -> None:
    """Add mat2grad's converters to onnx2torch's registry (idempotent).

    Only pairs absent from the registry are added; onnx2torch's own converters always win.
    """
    if _registered:
        return
    import_onnx2torch()
    from onnx2torch.node_converters.registry import _CONVERTER_REGISTRY, add_converter
    from onnx2torch.node_converters.registry import OperationDescription as Op

    def add(op_type: str, version: int, converter) -> None:
        if Op("", op_type, version) not in _CONVERTER_REGISTRY:
            add_converter(operation_type=op_type, version=version)(converter)

    for kind in ("LSTM", "GRU", "RNN"):
        for version in (7, 14, 22):
            add(kind, version, _recurrent_converter(kind))
    for version in (6, 9, 13, 19, 21, 23, 24, 25):
        # Cast 9 and 13 exist upstream; they are replaced after conversion (fixes.py).
        add("Cast", version, _cast_converter)
    add("Slice", 1, _slice_v1_converter)
    for (op_type, version), existing in TYPE_ONLY_ALIASES.items():
        target = _CONVERTER_REGISTRY.get(Op("", op_type, existing))
        if target is not None:
            add(op_type, version, target)
    _registered.append(True)
