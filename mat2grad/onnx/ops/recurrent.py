"""ONNX ``LSTM``, ``GRU`` and ``RNN`` (versions 7, 14, 22): the module and its converter.

onnx2torch has no recurrent converters. MATLAB exports ``lstmLayer`` as an ONNX ``LSTM`` with
its initial states as batch-1 initializers; PyTorch 0.3 exports take ``h0``/``c0`` as graph
inputs. Version 1 nodes are relabelled to version 7 by :mod:`mat2grad.onnx.normalize.opset`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ._common import Converter, Fix, converter_result

__all__ = [
    "OnnxRecurrent",
    "OnnxLSTM",
    "OnnxGRUOrRNN",
    "DEFAULT_ACTIVATIONS",
    "activation_list",
    "CONVERTERS",
    "FIXES",
]

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


# NOTE: [Recurrent steps as one unbind]
#   The backward pass of a view costs the size of what it views: the gradient of ``xw[t]``
#   (one step of the (T, N, G*H) input products) is a zero tensor of all T steps with step t
#   filled in, and autograd adds the T of them up: T^2 N G H work per backward pass, where
#   the step itself is N G H. ``xw.unbind(0)`` is one node whose backward pass stacks the T
#   step gradients once; the gates likewise come from one ``split`` per step, and the
#   recurrence weights are transposed (GRU: split per gate) once per direction, not per
#   step. The values are the same views as before. The LSTM step also runs its three
#   sigmoid gates through one call, and LSTM and RNN add the recurrence bias once per
#   sequence. Measured on the ONNX LSTM of benchmarks/speed.py (120 steps of 5 features,
#   hidden size 32, a 150-output head; one thread), one sample's Jacobian by reverse mode:
#   311 -> 191 ms by replicated samples, 288 -> 54 ms by vmap (a loop of calls), its
#   forward pass 7 ms.


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
            if self.kind != "GRU" and rb is not None:
                # LSTM and RNN add both biases whole (GRU's reset gate scales part of its
                # recurrence bias): once here, not at every step
                xw, rb = xw + rb, None
            # one view per step and the recurrence weights per gate, taken once (see NOTE:
            # [Recurrent steps as one unbind])
            xw_steps = xw.unbind(0)
            weights = self._gate_weights(r[d], rb)
            h = zeros if initial_h is None else initial_h[d].expand(batch, hid)
            c = zeros if initial_c is None else initial_c[d].expand(batch, hid)
            pd = None if p is None else p[d].split(hid)
            out: list[torch.Tensor | None] = [None] * steps
            for t in range(steps - 1, -1, -1) if reverse else range(steps):
                h_new, c_new = self._step(xw_steps[t], h, c, weights, pd, acts)
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
            y = y.permute(2, 0, 1, 3)  # not MATLAB layout: ONNX layout=1 (batch first)
            y_h, y_c = y_h.transpose(0, 1), y_c.transpose(0, 1)
        results = (y, y_h, y_c) if self.kind == "LSTM" else (y, y_h)
        if self.num_outputs == 1:
            return results[0]
        return results[: self.num_outputs]

    def _gate_weights(
        self, r: torch.Tensor, rb: torch.Tensor | None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        """The recurrence weights transposed, ``(H, G*H)`` (RNN, LSTM: one product for all
        gates; their recurrence bias is in the input products already) or per gate
        ``[(H, H)] * 3`` with the recurrence bias per gate (GRU, whose reset gate
        multiplies before or after its third product)."""
        if self.kind != "GRU":
            return [r.transpose(0, 1)], None
        per_gate = [m.transpose(0, 1) for m in r.split(self.hidden_size)]
        return per_gate, None if rb is None else list(rb.split(self.hidden_size))

    def _step(
        self,
        xw: torch.Tensor,
        h: torch.Tensor,
        c: torch.Tensor,
        weights: tuple[list[torch.Tensor], list[torch.Tensor] | None],
        p: tuple[torch.Tensor, ...] | None,
        acts: list[int],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hid = self.hidden_size
        rt, rb = weights
        if self.kind == "RNN":
            return self._act(acts[0], self._pre(torch.addmm(xw, h, rt[0]))), c
        if self.kind == "GRU":
            rz, rr, rh = rt
            xz, xr, xh = xw.split(hid, dim=1)
            pre_z = xz + torch.matmul(h, rz)
            pre_r = xr + torch.matmul(h, rr)
            if rb is not None:
                pre_z, pre_r = pre_z + rb[0], pre_r + rb[1]
            z = self._act(acts[0], self._pre(pre_z))
            rg = self._act(acts[0], self._pre(pre_r))
            if self.linear_before_reset:
                hr = torch.matmul(h, rh)
                if rb is not None:
                    hr = hr + rb[2]
                pre_h = xh + rg * hr
            else:
                pre_h = xh + torch.matmul(rg * h, rh)
                if rb is not None:
                    pre_h = pre_h + rb[2]
            hh = self._act(acts[1], self._pre(pre_h))
            return (1 - z) * hh + z * h, c
        # LSTM, gates in ONNX order i, o, f, c: one addmm per step
        pre = torch.addmm(xw, h, rt[0])
        if p is None:  # i, o, f through one call of their common activation
            sig, pre_c = pre.split((3 * hid, hid), dim=1)
            i, o, f = self._act(acts[0], self._pre(sig)).split(hid, dim=1)
            if self.input_forget:
                f = 1 - i
            g = self._act(acts[1], self._pre(pre_c))
            c_new = torch.addcmul(f * c, i, g)
            return o * self._act(acts[2], c_new), c_new
        pre_i, pre_o, pre_f, pre_c = pre.split(hid, dim=1)
        p_i, p_o, p_f = p
        i = self._act(acts[0], self._pre(pre_i + p_i * c))
        f = 1 - i if self.input_forget else self._act(acts[0], self._pre(pre_f + p_f * c))
        g = self._act(acts[1], self._pre(pre_c))
        c_new = f * c + i * g
        o = self._act(acts[0], self._pre(pre_o + p_o * c_new))
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


def _recurrent_converter(kind: str) -> Converter:
    def convert(node: Any, graph: Any) -> Any:
        attrs = node.attributes
        direction = attrs.get("direction", "forward")
        if direction not in ("forward", "reverse", "bidirectional"):
            raise ValueError(f"{kind} direction '{direction}' is not forward/reverse/bidirectional")
        num_dir = 2 if direction == "bidirectional" else 1
        per_dir = len(DEFAULT_ACTIVATIONS[kind])
        names = list(attrs.get("activations", list(DEFAULT_ACTIVATIONS[kind]) * num_dir))
        if len(names) == per_dir and num_dir == 2:
            names = names * 2
        if len(names) != per_dir * num_dir:
            raise ValueError(
                f"{kind} needs {per_dir * num_dir} activations for direction '{direction}', "
                f"got {len(names)}"
            )
        activations = activation_list(
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
        return converter_result(node, module)

    return convert


CONVERTERS: list[tuple[str, int, Converter]] = [
    (kind, version, _recurrent_converter(kind))
    for kind in ("LSTM", "GRU", "RNN")
    for version in (7, 14, 22)
]

FIXES: dict[str, Fix] = {}  # onnx2torch builds no module of its own for them
