"""The ways to compute a chunk of Jacobians, and the choice between them.

Each method is a callable ``(xs, J, Y)`` that fills ``J[k][jj]`` ``(c, *out_k, *in_wrt[jj])``
and, unless ``Y`` is None, ``Y[k]`` ``(c, *out_k)`` for one chunk ``xs`` of ``c`` samples:
reverse mode (:func:`rev_method`), forward mode (:func:`fwd_method`), or the model's own
closed form (the model contract's ``closed_form_jacobian`` hook).
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..contract import closed_form_of
from ..errors import Mat2GradError
from .chunks import CHUNK_BUDGET_BYTES, samples_per_chunk, saved_bytes_per_sample
from .setup import Setup, as_tuple

__all__ = ["MODES"]

#: Jacobian methods: "auto" picks "analytic" where the model has a closed form, else
#: reverse mode unless the outputs outnumber the inputs more than 3 to 1 (torch's forward
#: mode costs about 1.4-3.4 reverse passes per pass, as measured).
MODES = ("auto", "rev", "fwd", "analytic")

Method = Callable[[list[Tensor], list[list[Tensor]], list[Tensor] | None], None]


# NOTE: [Batched cotangents]
#   Reverse mode needs one backward pass per output element. For a few outputs over a large
#   chunk, a loop of backward passes over one forward graph is cheapest. For many outputs
#   (sequence-to-sequence models, wide outputs) over few samples, every pass pays the
#   graph's per-operation overhead again (a recurrent model's 120 Python-level steps). Two
#   ways batch the output elements instead:
#   * vmap: torch.func.vjp records the forward pass once and torch.func.vmap runs its
#     backward pass for g cotangents (output elements e0..e0+g-1 of the outputs summed over
#     the samples) at once, each operation batched over the g directions;
#   * replication: the chunk is replicated g times along the batch, as forward mode does
#     with tangents (samples are independent, see NOTE: [Samples are independent]),
#     replica m gets the cotangent of output element e0 + m, and ONE backward pass yields
#     g rows of every sample's Jacobian; it recomputes the forward pass per replica, so it
#     wins only where overhead dominates, and it needs no batching rule per operation.
#   The choice is measured on the first chunk: the loop's first backward pass, then a group
#   of rows by replication and a group by vmap, each per row, the rows all kept; then kept
#   per model and chunk shape. torch.func's first backward pass in a process imports
#   torch._dynamo (1.2 s), so vmap joins the trial only once that is paid or the process
#   has spent twice as long on rows it could batch (:func:`_vmap_affordable`): a single
#   short call keeps the other ways, a long job or a loop of calls measures vmap once.
#   Replication is not tried where it cannot win (:func:`_replication_may_win`): its
#   forward pass over g times the chunk costs at least g times the chunk's own forward
#   work, so for a chunk of many samples whose backward passes cost about what its forward
#   pass does, the trial only loses time (a 3-output convolutional network over 10^4
#   samples spent 17 of its 29 ms in it, against 18 ms without it). vmap is not tried
#   where the model cannot run under it (an operation without a batching rule raises;
#   the other ways are then kept). A batched pass takes up to four times the rows whose
#   replicas' activations fit the working-set budget: where per-operation overhead
#   dominates, a pass costs about the same for 99 rows as for 150, so fewer passes win.
#   Measured on the ONNX LSTM of benchmarks/speed.py (120 steps, 150 outputs, one thread,
#   after the trial): one sample's Jacobian 60 ms by vmap, 100 ms by replication in groups
#   of 120 rows against 191 ms in groups of 30, its forward pass 6.5 ms.
#   torch.autograd.grad(..., is_grads_batched=True) vmaps the same backward pass through
#   the autograd engine and measured 95 ms there against vmap's 44 ms (and 1.3-2.5x slower
#   than replication on an LSTM module stepped in Python).


def rev_method(setup: Setup, saved_bytes: float) -> Method:
    """Reverse mode, all samples at once: one backward pass per output element, or one
    per group of output elements, batched by vmap or by replicated samples (see NOTE:
    [Batched cotangents]), whichever measures fastest on the first chunk."""
    model, wrt = setup.model, setup.wrt
    # "how": the measured choice, kept for later chunks; "vmap tried": whether it was among
    # the ways measured (see _vmap_affordable)
    choice: dict[str, Any] = {}
    keys: list[tuple] = []  # the first chunk's Setup.state_key

    def run(xs: list[Tensor], J: list[list[Tensor]], Y: list[Tensor] | None) -> None:
        c = xs[0].shape[0]
        if not keys:  # a choice measured by an earlier call on the same model and chunk
            keys.append(setup.state_key(xs, batch=True))
            kept = model.__dict__.get(_CHOICE)
            if kept is not None and kept[0] == keys[0]:
                choice.update(kept[1])
        # rows per batched pass: the activations of that many replicas, or the batched
        # backward's gradients of them, fit four times the budget (a batched pass costs
        # about the same for 99 rows as for 150 where per-operation overhead dominates, so
        # fewer groups win: see NOTE: [Batched cotangents]); replication is tried only where
        # one replica fits the budget itself
        group = int(max(1, CHUNK_BUDGET_BYTES // max(c * saved_bytes, 1.0)))
        batched = 4 * group
        if choice.get("how") == "vmap" and _all_by_vmap(setup, xs, J, Y, batched):
            return
        leaves = [x.detach().requires_grad_(j in wrt) for j, x in enumerate(xs)]
        targets = [leaves[j] for j in wrt]
        with torch.enable_grad():
            start = time.perf_counter()
            ys = as_tuple(model(*leaves))
            forward = time.perf_counter() - start
            # sum over the samples first: d(sum_q y[q, e])/dx[q] = dy[q, e]/dx[q]
            sums = [y.reshape(c, -1).sum(0) if y.requires_grad else None for y in ys]
            last = max((k for k, t in enumerate(sums) if t is not None), default=-1)
            for k, (y, total) in enumerate(zip(ys, sums, strict=True)):
                if Y is not None:
                    Y[k].copy_(y.detach())
                n_out = setup.numel_out(k)
                flat = [J[k][jj].view(c, n_out, setup.numel_in(j)) for jj, j in enumerate(wrt)]
                if total is None:  # the output does not depend on any input
                    for f in flat:
                        f.zero_()
                    continue
                e = 0
                retry = not choice.get("vmap tried") and _vmap_affordable(*_spent_and_ready())
                if (choice.get("how") in (None, "vmap") or retry) and n_out > 2 and group > 1:
                    e = _trial(setup, xs, k, total, targets, flat, forward, batched, choice)
                    object.__setattr__(model, _CHOICE, (keys[0], dict(choice)))
                how = choice.get("how", "loop")
                t0 = time.perf_counter()
                if how == "replicate":
                    for e0 in range(e, n_out, batched):
                        _replicated_rows(model, xs, wrt, k, e0, min(batched, n_out - e0), flat)
                elif how == "vmap" and e < n_out:
                    _vmapped_rows(model, xs, wrt, k, e, n_out, batched, flat)
                else:
                    _loop_rows(total, targets, flat, e, n_out, retain=k < last)
                if how != "vmap" and n_out > 2:
                    _SPENT[0] += time.perf_counter() - t0

    return run


def _trial(
    setup: Setup,
    xs: list[Tensor],
    k: int,
    total: Tensor,
    targets: list[Tensor],
    flat: list[Tensor],
    forward: float,
    group: int,
    choice: dict[str, Any],
) -> int:
    """Rows of output ``k`` by each way that may win, timed per row (see NOTE: [Batched
    cotangents]); sets ``choice["how"]`` and returns the first row not yet computed."""
    model, wrt, c = setup.model, setup.wrt, xs[0].shape[0]
    n_out = flat[0].shape[1]
    t0 = time.perf_counter()
    _loop_rows(total, targets, flat, 0, 1, retain=True)
    per_row = {"loop": time.perf_counter() - t0}
    e = 1
    g = min(group, max(1, (n_out - 1) // 3))  # rows for each of the three groups tried
    # the forward work that grows with the samples: less one sample's pass
    work = forward - _one_sample_forward(model, xs, wrt) if c > 1 else 0.0
    if _replication_may_win(g, per_row["loop"], work):
        t1 = time.perf_counter()
        _replicated_rows(model, xs, wrt, k, e, g, flat)
        per_row["replicate"] = (time.perf_counter() - t1) / g
        e += g
    g = min(group, (n_out - e) // 2)
    if _vmap_affordable(*_spent_and_ready()):
        choice["vmap tried"] = True  # (or it cannot be: no rows left, or it failed before)
        if g > 0 and _vmap_may_run(model):
            # two groups, the second timed: the first use of each operation under torch.func
            # costs set-up time
            try:
                _vmapped_rows(model, xs, wrt, k, e, e + g, g, flat)
                t2 = time.perf_counter()
                _vmapped_rows(model, xs, wrt, k, e + g, e + 2 * g, g, flat)
            except Exception:  # noqa: BLE001 - an operation vmap cannot batch: not this way
                model.__dict__[_NO_VMAP] = True
            else:
                per_row["vmap"] = (time.perf_counter() - t2) / g
                e += 2 * g
    choice["how"] = min(per_row, key=per_row.__getitem__)
    return e


#: set on a model whose forward pass or backward pass vmap could not run
_NO_VMAP = "_mat2grad_no_vmap"

#: seconds the first backward pass by torch.func costs a process, once (it imports
#: torch._dynamo: 1.2 s measured), and the seconds this process has spent on rows of
#: many-output Jacobians the loop or replication computed
VMAP_SETUP_SECONDS = 1.2
_SPENT = [0.0]


def _spent_and_ready() -> tuple[float, bool]:
    return _SPENT[0], "torch._dynamo" in sys.modules


def _vmap_affordable(spent: float, ready: bool) -> bool:
    """Whether to try the vmap way now: its one-time set-up is paid (``ready``), or this
    process has already spent twice that on rows it could have batched (``spent``
    seconds), so a long job or a loop of calls tries it once and a single short call
    does not pay 1.2 s to save milliseconds (see NOTE: [Batched cotangents])."""
    return ready or spent >= 2 * VMAP_SETUP_SECONDS


def _vmap_may_run(model: Any) -> bool:
    """Whether the vmap way is worth a trial: not where it failed before on this model."""
    return not model.__dict__.get(_NO_VMAP, False)


def _all_by_vmap(
    setup: Setup, xs: list[Tensor], J: list[list[Tensor]], Y: list[Tensor] | None, group: int
) -> bool:
    """Every row of every output of the chunk by vmap, and the outputs; False (nothing
    written that the loop would not overwrite) where vmap fails on this chunk."""
    c = xs[0].shape[0]
    try:
        for k in range(len(setup.out_shapes)):
            n_out = setup.numel_out(k)
            flat = [J[k][jj].view(c, n_out, setup.numel_in(j)) for jj, j in enumerate(setup.wrt)]
            y = _vmapped_rows(setup.model, xs, setup.wrt, k, 0, n_out, group, flat)
            if Y is not None:
                Y[k].copy_(y)
    except Exception:  # noqa: BLE001 - e.g. a path of the model vmap cannot batch
        setup.model.__dict__[_NO_VMAP] = True
        return False
    return True


#: the attribute where a model keeps its last measured choice: (the first chunk's
#: Setup.state_key, {"how": "loop" | "replicate" | "vmap", "vmap tried": bool})
_CHOICE = "_mat2grad_rev_choice"


def _replication_may_win(g: int, backward: float, work: float) -> bool:
    """Whether one replicated pass for ``g`` rows can beat ``g`` backward passes of the
    loop, given the loop's first pass (``backward`` seconds) and the chunk's forward work
    (``work``: its forward pass less a one-sample pass, the part that grows with the
    samples). The replicated pass runs a forward pass over ``g`` times the chunk, at least
    ``g * work``, and a backward pass over it, at least ``backward``."""
    return g * backward > g * work + backward


def _one_sample_forward(model: Any, xs: list[Tensor], wrt: tuple[int, ...]) -> float:
    """Seconds for one forward pass, graph recorded, over the chunk's first sample."""
    leaves = [x[:1].detach().requires_grad_(j in wrt) for j, x in enumerate(xs)]
    with torch.enable_grad():
        start = time.perf_counter()
        model(*leaves)
        return time.perf_counter() - start


def _loop_rows(
    total: Tensor, targets: list[Tensor], flat: list[Tensor], start: int, stop: int, retain: bool
) -> None:
    """Rows ``start:stop`` of ``flat`` (c, n_out, n_in): one backward pass each through the
    graph of ``total`` (the outputs summed over samples); ``retain`` keeps the graph after
    the last of them."""
    for e in range(start, stop):
        grads = torch.autograd.grad(
            total[e],
            targets,
            retain_graph=retain or e < stop - 1,
            allow_unused=True,
            materialize_grads=True,
        )
        for f, g in zip(flat, grads, strict=True):
            f[:, e].copy_(g.reshape(f.shape[0], -1))


def _replicated_rows(
    model: Any, xs: list[Tensor], wrt: tuple[int, ...], k: int, e0: int, g: int, flat: list[Tensor]
) -> None:
    """Rows ``e0:e0+g`` of output ``k``'s ``flat`` blocks in one backward pass over the
    chunk replicated ``g`` times (see NOTE: [Batched cotangents])."""
    c, n_out = flat[0].shape[0], flat[0].shape[1]
    reps = [
        x.detach().repeat(g, *([1] * (x.ndim - 1))).requires_grad_(j in wrt)
        for j, x in enumerate(xs)
    ]
    with torch.enable_grad():
        y = as_tuple(model(*reps))[k].reshape(g, c, n_out)
        # replica m's cotangent selects element e0 + m: the diagonal (m, :, e0 + m), summed
        # (a scalar, so no cotangent tensor: passing one costs torch a sympy import)
        picked = torch.diagonal(y[:, :, e0 : e0 + g], dim1=0, dim2=2).sum()
        grads = torch.autograd.grad(
            picked, [reps[j] for j in wrt], allow_unused=True, materialize_grads=True
        )
    for f, gr in zip(flat, grads, strict=True):
        # not MATLAB layout: replicas (output elements) from the batch axis to the rows
        f[:, e0 : e0 + g].copy_(gr.reshape(g, c, -1).transpose(0, 1))


def _vmapped_rows(
    model: Any,
    xs: list[Tensor],
    wrt: tuple[int, ...],
    k: int,
    start: int,
    stop: int,
    group: int,
    flat: list[Tensor],
) -> Tensor:
    """Rows ``start:stop`` of output ``k``'s ``flat`` blocks from one forward pass and one
    backward pass per ``group`` rows, batched over the rows by vmap (see NOTE: [Batched
    cotangents]). Returns output ``k`` of the chunk, ``(c, *out_k)``."""
    c, n_out = flat[0].shape[0], flat[0].shape[1]

    def summed(*chosen: Tensor) -> tuple[Tensor, Tensor]:
        args = list(xs)
        for j, value in zip(wrt, chosen, strict=True):
            args[j] = value
        y = as_tuple(model(*args))[k]
        return y.reshape(c, -1).sum(0), y.detach()

    with torch.enable_grad(), warnings.catch_warnings():
        # a missing batching rule warns and loops; the measured choice accounts for it
        warnings.filterwarnings("ignore", message=".*batching rule", category=UserWarning)
        _, vjp, y = torch.func.vjp(summed, *[xs[j].detach() for j in wrt], has_aux=True)
        basis = torch.eye(n_out, dtype=y.dtype, device=y.device)
        for e0 in range(start, stop, group):
            e1 = min(stop, e0 + group)
            grads = torch.func.vmap(vjp)(basis[e0:e1])
            for f, gr in zip(flat, grads, strict=True):
                # not MATLAB layout: output elements from the batch axis to the rows
                f[:, e0:e1].copy_(gr.reshape(e1 - e0, c, -1).transpose(0, 1))
    return y


def forward_ad() -> Any:
    """torch.autograd.forward_ad; its first use scripts a helper with torch.jit, which
    warns that torch.jit is deprecated (torch's business, not the user's)."""
    import torch.autograd.forward_ad as fwAD

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.script", category=DeprecationWarning)
        with fwAD.dual_level():
            fwAD.make_dual(torch.zeros(1), torch.zeros(1))
    return fwAD


def fwd_method(setup: Setup, activation_bytes: float) -> Method:
    """Forward mode: one dual-number pass per input element, with B input elements per
    pass by replicating the chunk B times along the batch (samples are independent), so
    that per-operation overheads are paid once per B tangents rather than once each."""
    fwAD = forward_ad()
    model, wrt = setup.model, setup.wrt

    def run(xs: list[Tensor], J: list[list[Tensor]], Y: list[Tensor] | None) -> None:
        c = xs[0].shape[0]
        n_outs = [setup.numel_out(k) for k in range(len(setup.out_shapes))]
        if Y is not None:
            with torch.no_grad():
                for k, y in enumerate(as_tuple(model(*xs))):
                    Y[k].copy_(y)
        with torch.no_grad():
            for jj, j in enumerate(wrt):
                n_in = setup.numel_in(j)
                block = int(max(1, min(n_in, CHUNK_BUDGET_BYTES // (c * activation_bytes))))
                reps = [x.repeat(block, *([1] * (x.ndim - 1))) for x in xs]
                tangent = torch.zeros_like(reps[j])
                tflat = tangent.view(block, c, n_in)
                for r0 in range(0, n_in, block):
                    b = min(block, n_in - r0)
                    for m in range(b):
                        tflat[m, :, r0 + m] = 1
                    with fwAD.dual_level():
                        args = [
                            fwAD.make_dual(x[: b * c], tangent[: b * c]) if i == j else x[: b * c]
                            for i, x in enumerate(reps)
                        ]
                        ys = as_tuple(model(*args))
                        for k, y in enumerate(ys):
                            tan = fwAD.unpack_dual(y).tangent
                            dest = J[k][jj].view(c, n_outs[k], n_in)[:, :, r0 : r0 + b]
                            if tan is None:
                                dest.zero_()
                            else:  # (b*c, out) -> (c, out, b)
                                tb = tan.reshape(b, c, n_outs[k])
                                dest.copy_(tb.permute(1, 2, 0))  # not MATLAB layout: tangents last
                    for m in range(b):
                        tflat[m, :, r0 + m] = 0

    return run


@dataclass
class Plan:
    """How a Jacobian is computed: the resolved mode, its method, samples per chunk."""

    mode: str
    method: Method
    chunk: int
    per_sample_bytes: float

    def release(self) -> None:
        """Let the method drop its work buffers (a computation has ended)."""
        release = getattr(self.method, "release", None)
        if release is not None:
            release()


def choose_plan(setup: Setup, mode: str, chunk_size: int | None) -> Plan:
    """Resolve ``mode`` ("auto": the closed form where the model has one, else reverse mode
    unless the outputs outnumber the inputs 3 to 1) and size the chunks."""
    if mode not in MODES:
        raise Mat2GradError(f"mode must be one of {', '.join(MODES)}; found {mode!r}")
    n_out = sum(setup.numel_out(k) for k in range(len(setup.out_shapes)))
    n_in = sum(setup.numel_in(j) for j in setup.wrt)
    itemsize = setup.dtype.itemsize
    if mode in ("auto", "analytic"):
        closed, why = closed_form_of(setup.model, setup.wrt)
        if closed is not None:
            per = float(closed.bytes_per_sample)
            return Plan("analytic", closed, samples_per_chunk(chunk_size, per, setup.q), per)
        if mode == "analytic":
            raise Mat2GradError(f"{setup.name}: mode='analytic' is not available: {why}")
        mode = "fwd" if 3 * n_in < n_out else "rev"
    # the graph (or the dual numbers), the Jacobian rows, the input gradients, the outputs
    saved = saved_bytes_per_sample(setup)
    per = saved + itemsize * (2 * n_out * n_in + n_in + n_out)
    if mode == "rev":
        method = rev_method(setup, saved)
    else:  # about 2x the activations per tangent; chunks sized so a few tangents fit
        method = fwd_method(setup, 2 * saved)
        per = max(per, 2 * saved * min(n_in, 16))
    return Plan(mode, method, samples_per_chunk(chunk_size, per, setup.q), per)
