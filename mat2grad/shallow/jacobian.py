"""The closed-form Jacobian of a static shallow network (``mode="analytic"``); see
NOTE: [Closed-form Jacobian].

Networks outside that class (dynamic networks, ``dist``/``negdist``/``normprod``/``mandist``
weights, ``netprod``, ``fixunknowns`` inputs) have no closed form here; ``mode="auto"`` then
falls back to autograd.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .. import kernels
from ..contract import model_dtype_device
from .adjoints import Adjoint, columnwise_vjp, outer_k, outer_k_pays
from .derivatives import COLUMNWISE, DERIVATIVE
from .functions import TRANSFER, ZERO_DERIVATIVE
from .processing import ProcessingChain

if TYPE_CHECKING:  # annotations only: the module may reach this one without a cycle
    from .module import ShallowNetwork

__all__ = ["closed_form", "ClosedForm"]

# NOTE: [Closed-form Jacobian]
# For a static network with ``dotprod`` weights, ``netsum`` net inputs, per-element (or
# softmax) transfer functions and affine processing, the chain rule gives, per sample,
#
#     J_kj = G_out_k . (sum over paths of W . D . W . D ... W) . G_in_j
#
# with ``G_in_j`` the (constant) Jacobian of input j's processing, ``G_out_k`` that of
# output k's reverse processing and ``D`` the diagonal matrices of transfer derivatives.
# The sum is accumulated backwards over the layer graph for all output rows at once
# (``S`` stacked cotangents, like ``S`` reverse passes fused into batched GEMMs). An
# adjoint stays a constant ``S x H`` matrix until it meets a non-linear layer; where a
# constant adjoint ``M`` meets a non-linear layer fed straight by an input, the whole
# contribution is one GEMM, ``J += d @ K`` with ``K[h, (s, r)] = M[s, h] (W G_in)[h, r]``
# and ``d`` the ``(c, H)`` derivatives: for a one-hidden-layer network that is the entire
# Jacobian, ``G_out W2 diag(f'(n1)) W1 G_in``, at the cost of one small GEMM per chunk.
# Where it meets one fed by another layer, the same kernel gives that layer's per-sample
# adjoint (NOTE: [Outer-product kernels] in :mod:`mat2grad.shallow.adjoints`).
#
# The forward pass repeats the module's own operations in the same order into reusable
# buffers. Its products and ``tanh``, and the Jacobian's products, run in numpy where that
# measured faster (NOTE: [Kernel backend] in :mod:`mat2grad.kernels`): the outputs are
# then those of ``ShallowNetwork.forward`` to round-off, not bit for bit (bitwise with
# ``MAT2GRAD_KERNELS=torch``). Derivatives at
# kinks follow torch's conventions (See NOTE: [Kinks] in :mod:`mat2grad.autodiff`); the
# tests check every transfer function against torch's autograd, and the whole against the
# generic modes.


#: work buffers kept between calls up to this size: twice the working-set budget, so that
#: calls chunked by the budget keep theirs (model A at 1e4 samples needs 5.8 MB: reusing them
#: took its Jacobian from 4.6 to 3.3 ms; at 1e6, predict's peak above x and y was 17-72 MB
#: over six runs when they were freed and allocated again, 17-40 MB when kept), and a call
#: given a larger chunk size does not hold its buffers afterwards
KEEP_BYTES = 64 * 2**20

#: processing functions that are affine in the raw values (constant Jacobian)
_AFFINE_INPUT = frozenset({"mapminmax", "mapstd", "removeconstantrows", "processpca"})
_AFFINE_OUTPUT = _AFFINE_INPUT | {"fixunknowns"}  # its reverse only selects rows


def _support(model: ShallowNetwork) -> str | None:
    """Why the closed form does not apply, or None when it does."""
    spec = model.spec
    if spec.is_dynamic:
        return "the network is dynamic"
    for w in spec.weights:
        if w.fcn != "dotprod":
            return f"{w.label} uses the weight function {w.fcn}"
    for layer in spec.layers:
        if layer.net_input != "netsum":
            return f"layer {layer.index} uses the net input function {layer.net_input}"
        t = layer.transfer
        if t not in DERIVATIVE and t not in COLUMNWISE and t not in ZERO_DERIVATIVE:
            return f"layer {layer.index} uses {t}"
    for inp in spec.inputs:
        for s in inp.steps:
            if s.fcn not in _AFFINE_INPUT:
                return f"input {inp.index} is processed by {s.fcn}"
    for out in spec.outputs:
        for s in out.steps:
            if s.fcn not in _AFFINE_OUTPUT:
                return f"output {out.layer} is processed by {s.fcn}"
    return None


def closed_form(model: ShallowNetwork, wrt: tuple[int, ...]) -> tuple[ClosedForm | None, str]:
    """The closed form for ``model`` (differentiating with respect to inputs ``wrt``,
    0-based), or ``(None, reason)`` when the network is outside its class."""
    why = _support(model)
    if why is not None:
        return None, why
    # Building a plan costs milliseconds (the processing Jacobians), so it is kept on the
    # model for repeated calls on small batches. It reads the weights at call time; the
    # key covers what it precomputes: the processing settings (in-place changes bump
    # their version counters), dtype and device.
    dtype, device = model_dtype_device(model)
    key = (
        wrt,
        tuple(
            (b.data_ptr(), b._version, b.dtype, str(b.device))
            for chains in (model.input_processing, model.output_processing)
            for b in chains.buffers()
        ),
        dtype,
        str(device),
    )
    cached = model.__dict__.get("_mat2grad_closed_form")
    if cached is not None and cached[0] == key:
        return cached[1], ""
    plan = ClosedForm(model, wrt)
    object.__setattr__(model, "_mat2grad_closed_form", (key, plan))
    return plan, ""


# --------------------------------------------------------------------------------------


def _affine_jacobian(fn: Callable[[Tensor], Tensor], size: int, like: Tensor) -> Tensor:
    """The constant Jacobian of an affine map of ``size`` values, exact: one reverse pass
    over P samples at 0, sample p seeded with output p (reverse mode on purpose: forward
    mode through these operations imports torch._dynamo, a second per process)."""
    with torch.no_grad():
        rows = fn(torch.zeros(1, size, dtype=like.dtype, device=like.device)).shape[-1]
    x = torch.zeros(rows, size, dtype=like.dtype, device=like.device, requires_grad=True)
    seed = torch.eye(rows, dtype=like.dtype, device=like.device)
    with torch.enable_grad():
        y = fn(x)
        if not y.requires_grad:  # the map ignores its input (every row constant)
            return torch.zeros(rows, size, dtype=like.dtype, device=like.device)
        # a scalar, so no cotangent tensor: passing one makes torch import sympy (0.5 s of
        # a 2.5 s command); the sum's cotangent (ones, times the 0/1 seed) is the seed
        total = (y * seed).sum()
    (g,) = torch.autograd.grad(total, x, allow_unused=True, materialize_grads=True)
    return g.detach()


def _is_scaling(chain: ProcessingChain) -> bool:
    return all(s.fcn in ("mapminmax", "mapstd") for s in chain.steps)


class ClosedForm:
    """Callable ``(xs, J, Y)``: fills ``J[k][jj]`` (c, S_k, R_j) and ``Y[k]`` (c, S_k) for
    one chunk, like the generic methods of :mod:`mat2grad.autodiff`."""

    def __init__(self, model: ShallowNetwork, wrt: tuple[int, ...]):
        self.model = model
        self.spec = spec = model.spec
        self.wrt = wrt
        dtype, device = model_dtype_device(model)
        # a scalar of the model's dtype and device, for tensors made alike
        self.like = like = torch.zeros((), dtype=dtype, device=device)
        self.incoming = {layer.index: spec.incoming(layer.index) for layer in spec.layers}
        self.sizes = {layer.index: layer.size for layer in spec.layers}
        # processing Jacobians (constant), and where they are structurally zero
        self.g_in = [
            _affine_jacobian(chain.apply, inp.size, like)
            for chain, inp in zip(model.input_processing, spec.inputs, strict=True)
        ]
        self.g_out = [
            _affine_jacobian(chain.reverse, out.processed_size, like)
            for chain, out in zip(model.output_processing, spec.outputs, strict=True)
        ]
        self.zero_cols = [torch.nonzero(~g.any(0)).reshape(-1) for g in self.g_in]
        rows = [o.size for o in spec.outputs]
        self.offsets = [sum(rows[:k]) for k in range(len(rows))]
        self.s_total = sum(rows)
        zero_rows = [
            torch.nonzero(~g.any(1)).reshape(-1) + off
            for g, off in zip(self.g_out, self.offsets, strict=True)
        ]
        self.zero_rows = torch.cat(zero_rows) if zero_rows else torch.zeros(0, dtype=torch.long)
        # seeds: the stacked output rows' derivative w.r.t. each output layer's activation
        self.seeds: dict[int, Tensor] = {}
        for k, out in enumerate(spec.outputs):
            seed = torch.zeros(
                self.s_total, out.processed_size, dtype=like.dtype, device=like.device
            )
            seed[self.offsets[k] : self.offsets[k] + out.size] = self.g_out[k]
            if out.layer in self.seeds:
                self.seeds[out.layer] = self.seeds[out.layer] + seed
            else:
                self.seeds[out.layer] = seed
        self.single = len(spec.outputs) == 1
        # processing settings (the buffers themselves: in-place changes are seen)
        self.in_settings = [
            [chain._settings(k) for k in range(len(chain.steps))]
            for chain in model.input_processing
        ]
        self.out_settings = [
            [chain._settings(k) for k in range(len(chain.steps))]
            for chain in model.output_processing
        ]
        self._ws: dict[str, Tensor] = {}
        # what is the same for every chunk of one computation (W G_in, the outer-product
        # kernels): the weights are read at call time, so release() drops them
        self._kept: dict[tuple[str, int, int], Tensor] = {}
        itemsize = like.element_size()
        h_sum = sum(self.sizes.values())
        r_sum = sum(inp.size + inp.processed_size for inp in spec.inputs)
        batched = self._has_batched_adjoints()
        self.forward_bytes_per_sample = itemsize * (3 * h_sum + r_sum + self.s_total)
        self.bytes_per_sample = itemsize * (
            3 * h_sum
            + r_sum
            + 2 * self.s_total * sum(spec.inputs[j].size for j in wrt)
            + (3 * self.s_total * max(self.sizes.values()) if batched else 0)
            + self.s_total
        )

    # ----------------------------------------------------------------------------------
    def _has_batched_adjoints(self) -> bool:
        """True when some adjoint is per sample (a non-linear layer feeds another layer)."""
        for i in self.spec.order:
            transfer = self.spec.layers[i - 1].transfer
            if transfer == "purelin" or transfer in ZERO_DERIVATIVE:
                continue
            if any(w.kind == "LW" for w in self.incoming[i]):
                return True
            if transfer in COLUMNWISE:
                return True
        return False

    def release(self) -> None:
        """Drop the work buffers when a computation ends, unless together they are at most
        KEEP_BYTES: then the next call (a small batch, where latency matters) reuses them
        instead of touching fresh pages, which cost more than its arithmetic."""
        self._kept.clear()
        if sum(b.numel() * b.element_size() for b in self._ws.values()) > KEEP_BYTES:
            self._ws.clear()

    def _once(self, key: tuple[str, int, int], make: Callable[[], Tensor]) -> Tensor:
        """``make()``, made on the computation's first chunk and kept for its others."""
        value = self._kept.get(key)
        if value is None:
            value = self._kept[key] = make()
        return value

    def _buffer(self, name: str, shape: tuple[int, ...]) -> Tensor:
        """A reusable work buffer (first-touch page faults cost more than the maths)."""
        buf = self._ws.get(name)
        need = math.prod(shape)
        if buf is None or buf.numel() < need:
            buf = torch.empty(need, dtype=self.like.dtype, device=self.like.device)
            self._ws[name] = buf
        return buf[:need].view(shape)

    def _weight(self, kind: str, to: int, source: int) -> Tensor:
        return (self.model.IW if kind == "IW" else self.model.LW)[f"{to}_{source}"]

    # ----------------------------------------------------------------------------------
    def __call__(self, xs: list[Tensor], J: list[list[Tensor]], Y: list[Tensor] | None) -> None:
        with torch.no_grad():
            p, n, a = self._forward(xs, Y)
            self._jacobian(xs[0].shape[0], n, a, J)

    def outputs(self, xs: list[Tensor], Y: list[Tensor]) -> None:
        """The forward pass alone: fills ``Y[k]`` (c, S_k) for one chunk (``predict``
        takes it, so that its outputs are those the Jacobian returns)."""
        with torch.no_grad():
            self._forward(xs, Y)

    def _forward(
        self, xs: list[Tensor], Y: list[Tensor] | None
    ) -> tuple[list[Tensor], dict[int, Tensor], dict[int, Tensor]]:
        model, spec = self.model, self.spec
        c = xs[0].shape[0]
        p: list[Tensor] = []
        for j, (chain, x) in enumerate(zip(model.input_processing, xs, strict=True)):
            if chain.steps and _is_scaling(chain):
                # (x - xoffset) .* gain + ymin, as functions.py computes it, in place
                buf = self._buffer(f"p{j}", (c, spec.inputs[j].processed_size))
                buf.copy_(x)
                for k, step in enumerate(chain.steps):
                    s = self.in_settings[j][k]
                    base = s["ymin"] if step.fcn == "mapminmax" else s["ymean"]
                    buf.sub_(s["xoffset"]).mul_(s["gain"]).add_(base)
                p.append(buf)
            else:
                p.append(chain.apply(x))
        n: dict[int, Tensor] = {}
        a: dict[int, Tensor] = {}
        for i in spec.order:
            layer = spec.layers[i - 1]
            ni = self._buffer(f"n{i}", (c, layer.size))
            first = True
            for w in self.incoming[i]:
                src = p[w.source - 1] if w.kind == "IW" else a[w.source]
                weight = self._weight(w.kind, w.to, w.source)
                if first:
                    kernels.mm(src, weight.T, out=ni)  # not MATLAB layout: n = W p, batch-first
                    first = False
                else:
                    ni.add_(kernels.mm(src, weight.T))  # not MATLAB layout: n = W p, batch-first
            if str(i) in model.b:
                if first:
                    ni.copy_(model.b[str(i)].expand(c, layer.size))
                else:
                    ni.add_(model.b[str(i)])
            elif first:  # pragma: no cover - the module refuses such layers too
                ni.zero_()
            n[i] = ni
            t = layer.transfer
            if t == "purelin":
                a[i] = ni
            elif t == "tansig":
                a[i] = kernels.tanh(ni, out=self._buffer(f"a{i}", (c, layer.size)))
            elif t == "logsig":
                a[i] = torch.sigmoid(ni, out=self._buffer(f"a{i}", (c, layer.size)))
            else:
                a[i] = TRANSFER[t].apply(ni)
        if Y is not None:
            for k, (chain, out) in enumerate(
                zip(model.output_processing, spec.outputs, strict=True)
            ):
                src = a[out.layer]
                if chain.steps and _is_scaling(chain):
                    Y[k].copy_(src)
                    for m in reversed(range(len(chain.steps))):
                        s = self.out_settings[k][m]
                        base = s["ymin"] if chain.steps[m].fcn == "mapminmax" else s["ymean"]
                        Y[k].sub_(base).div_(s["gain"]).add_(s["xoffset"])
                else:
                    Y[k].copy_(chain.reverse(src))
        return p, n, a

    def _derivative(self, i: int, n: Tensor, a: Tensor) -> Tensor:
        transfer = self.spec.layers[i - 1].transfer
        fn = DERIVATIVE[transfer]
        assert fn is not None
        return fn(n, a, self._buffer(f"d{i}", tuple(n.shape)))

    def _jacobian(
        self, c: int, n: dict[int, Tensor], a: dict[int, Tensor], J: list[list[Tensor]]
    ) -> None:
        spec = self.spec
        adj: dict[int, Adjoint] = {
            layer: Adjoint(seed, False) for layer, seed in self.seeds.items()
        }
        # per selected input: terms of d(stacked outputs)/d(raw input), (c, S, R_j)
        dest: dict[int, Tensor] = {}
        started: dict[int, bool] = {}
        for jj, j in enumerate(self.wrt):
            r = spec.inputs[j].size
            if self.single and J[0][jj].is_contiguous():
                dest[j] = J[0][jj]
            else:
                dest[j] = self._buffer(f"J{j}", (c, self.s_total, r))
            started[j] = False
        processed: dict[int, list[Tensor]] = {j: [] for j in self.wrt}

        def add_to(j: int, value: Tensor) -> None:
            if started[j]:
                dest[j].add_(value)
            else:
                dest[j].copy_(value.expand_as(dest[j]))
                started[j] = True

        for i in reversed(spec.order):
            if i not in adj:
                continue
            g = adj.pop(i)
            transfer = spec.layers[i - 1].transfer
            if transfer in ZERO_DERIVATIVE:
                continue  # derivative 0 almost everywhere: no contribution
            d = None
            if transfer in COLUMNWISE:
                gn = columnwise_vjp(transfer, g, n[i], a[i])
            elif transfer == "purelin":
                gn = g
            else:
                d = self._derivative(i, n[i], a[i])
                gn = None  # formed lazily: the outer-K path never needs it
            for w in self.incoming[i]:
                weight = self._weight(w.kind, w.to, w.source)
                if w.kind == "IW" and (w.source - 1) not in self.wrt:
                    continue
                if w.kind == "IW":
                    # to raw input units at once: (g W) G_in = g (W G_in), W G_in (H x R_j)
                    # formed once instead of multiplying every sample's rows by G_in
                    raw = partial(torch.matmul, weight, self.g_in[w.source - 1])
                    weight = self._once(("W G_in", i, w.source), raw)
                # a constant adjoint's kernel K (see NOTE: [Outer-product kernels])
                k_key, k_make = ("K " + w.kind, i, w.source), partial(outer_k, g.value, weight)
                if d is not None and not g.batched and w.kind == "IW":
                    # one GEMM to the raw-unit Jacobian: J += d @ K
                    j = w.source - 1
                    k_mat = self._once(k_key, k_make)
                    flat = dest[j].view(c, -1)
                    if started[j]:
                        flat.add_(kernels.mm(d, k_mat))
                    else:
                        kernels.mm(d, k_mat, out=flat)
                        started[j] = True
                    continue
                if d is not None and not g.batched and outer_k_pays(g.value, weight, c):
                    # the previous layer's adjoint in one GEMM, d @ K, without forming
                    # g * d per sample
                    rows = kernels.mm(d, self._once(k_key, k_make))
                    contribution = Adjoint(rows.view(c, -1, weight.shape[1]), True)
                    prev = adj.get(w.source)
                    adj[w.source] = contribution if prev is None else prev.plus(contribution)
                    continue
                if gn is None:
                    assert d is not None
                    gn = Adjoint(
                        g.value * d[:, None, :] if g.batched else g.value[None] * d[:, None, :],
                        True,
                    )
                if w.kind == "LW":
                    contribution = Adjoint(kernels.mm(gn.value, weight), gn.batched)
                    prev = adj.get(w.source)
                    adj[w.source] = contribution if prev is None else prev.plus(contribution)
                elif gn.batched and not started[w.source - 1]:
                    # weight is W G_in here: the term is in raw input units already
                    kernels.mm(gn.value, weight, out=dest[w.source - 1])
                    started[w.source - 1] = True
                else:
                    processed[w.source - 1].append(kernels.mm(gn.value, weight))
        for j in self.wrt:
            for term in processed[j]:
                add_to(j, term)
            if not started[j]:
                dest[j].zero_()
            if self.zero_cols[j].numel():
                dest[j].index_fill_(2, self.zero_cols[j].to(dest[j].device), 0.0)
            if self.zero_rows.numel():
                dest[j].index_fill_(1, self.zero_rows.to(dest[j].device), 0.0)
        for jj, j in enumerate(self.wrt):
            if dest[j] is J[0][jj]:
                continue
            for k, out in enumerate(spec.outputs):
                off = self.offsets[k]
                J[k][jj].copy_(dest[j][:, off : off + out.size])
