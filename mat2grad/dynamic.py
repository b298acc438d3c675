"""Dynamic networks from the user's side: sequence prediction the way MATLAB users run it
(``preparets``, ``closeloop``, multistep prediction) and gradients through time.

Shapes are batch-first: Q independent series, TS time steps. For a network with one input
and one output, the three gradient forms are:

============  ==========================  ===============================================
form          shape                       entry
============  ==========================  ===============================================
``full``      ``(Q, TS, S, TS, R)``       ``J[q, t, :, u, :] = dy(t)/dx(u)`` (zero for
                                          ``u > t``: the network is causal)
``step``      ``(Q, TS, S, L+1, R)``      ``J[q, t, :, d, :] = dy(t)/dx(t-d)``, the
                                          ``full`` entries ``d`` steps below the
                                          diagonal (zero where ``t-d < 0``)
``sum``       ``(Q, TS, R)``              ``d(sum_t,s w[t,s] y[t,s])/dx``, one reverse pass
                                          through time (memory linear in TS)
============  ==========================  ===============================================

All derivatives are total derivatives through time: for a closed-loop network, ``dy(t)/
dx(u)`` includes every path through the fed-back outputs. For an open-loop network the
feedback input is an ordinary input (the one-step-ahead model). Several inputs or outputs
give a tuple (per output) of tuples (per input) for ``full``/``step``, and a tuple per
input for ``sum``. Derivatives are at the given initial delay states (zeros by default),
which are held fixed; for derivatives with respect to the states too, give
:class:`WithStates` ``(net)`` (states as ordinary inputs) to the generic engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .errors import Mat2GradError
from .shallow.dynamic import (
    Prepared,
    Simulation,
    WithStates,
    closed_loop_after,
    closeloop,
    closeloop_states,
    openloop,
    predict_ahead,
    preparets,
    simulate,
)

__all__ = [
    # MATLAB's time-series tools (mat2grad.shallow.dynamic), re-exported for users
    "simulate",
    "Simulation",
    "preparets",
    "Prepared",
    "closeloop",
    "openloop",
    "closeloop_states",
    "predict_ahead",
    "WithStates",
    # gradients through time
    "FORMS",
    "sequence_jacobian",
    "step_sensitivity",
    "sequence_gradient",
    "Run",
    "plan_run",
    "predict_series",
    "gradient_series",
    "gradient_to_matlab",
    "SeriesData",
    "series_from_file",
]

#: the gradient forms offered by the CLI (``mat2grad jacobian --form``)
FORMS = ("full", "step", "sum")


def _dynamic(net: Any, what: str) -> None:
    if not getattr(net, "is_dynamic", False):
        raise Mat2GradError(
            f"{what} is for dynamic networks (tapped delays, layer delays, feedback); "
            "this network is static: use mat2grad.autodiff.jacobian"
        )


def _place(net: Any) -> dict[str, Any]:
    """The network's dtype and device, as keyword arguments for new tensors."""
    p = next(net.parameters())
    return {"dtype": p.dtype, "device": p.device}


def _series(net: Any, x: Sequence[Any]) -> tuple[Tensor, ...]:
    spec = net.spec
    if len(x) != len(spec.inputs):
        raise Mat2GradError(
            f"{spec.where} has {len(spec.inputs)} input(s), but {len(x)} sequence(s) were given"
        )
    out = []
    for j, xj in enumerate(x):
        t = torch.as_tensor(xj, **_place(net))
        if t.ndim != 3:
            raise Mat2GradError(
                f"input {j + 1}: expected sequences (Q, TS, R), found shape {tuple(t.shape)}"
            )
        out.append(t)
    return tuple(out)


def _full_states(
    states: Sequence[Any] | None,
    depth: int,
    sizes: Sequence[int],
    q: int,
    place: dict[str, Any],
) -> tuple[Tensor, ...]:
    """States as ``(Q, depth, size)`` tensors (zeros for None) so they can be vmapped."""
    if states is None:
        states = (None,) * len(sizes)
    if len(states) != len(sizes):
        raise Mat2GradError(f"expected {len(sizes)} delay states, found {len(states)}")
    out = []
    for s, size in zip(states, sizes, strict=True):
        if s is None:
            out.append(torch.zeros(q, depth, size, **place))
            continue
        t = torch.as_tensor(s, **place)
        if t.ndim == 2:
            t = t.unsqueeze(0)
        if t.shape[1:] != (depth, size) or t.shape[0] not in (1, q):
            raise Mat2GradError(
                f"a delay state has shape {tuple(t.shape)}, expected ({q}, {depth}, {size})"
            )
        out.append(t.expand(q, depth, size))
    return tuple(out)


def _prepare(
    net: Any, x: Sequence[Any], xi: Any, ai: Any
) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...], tuple[Tensor, ...]]:
    """Inputs as tensors and the states as full ``(Q, depth, size)`` tensors."""
    xs = _series(net, x)
    if not xs:
        raise Mat2GradError(
            f"{net.spec.where} has no inputs: there is nothing to differentiate with respect to"
        )
    q, place, spec = xs[0].shape[0], _place(net), net.spec
    xis = _full_states(xi, spec.num_input_delays, net.input_sizes, q, place)
    ais = _full_states(ai, spec.num_layer_delays, [layer.size for layer in spec.layers], q, place)
    return xs, xis, ais


def _chunks(q: int, chunk_size: int | None) -> list[slice]:
    size = q if not chunk_size or chunk_size <= 0 else int(chunk_size)
    return [slice(k, min(k + size, q)) for k in range(0, q, size)]


def _nested(blocks: list[list[Tensor]]) -> Tensor | tuple[tuple[Tensor, ...], ...]:
    if len(blocks) == 1 and len(blocks[0]) == 1:
        return blocks[0][0]
    return tuple(tuple(row) for row in blocks)


def sequence_jacobian(
    net: Any,
    *x: Any,
    xi: Sequence[Any] | None = None,
    ai: Sequence[Any] | None = None,
    mode: str = "auto",
    chunk_size: int | None = None,
) -> Tensor | tuple[tuple[Tensor, ...], ...]:
    """The Jacobian of every output time step w.r.t. every input time step, per series.

    Args:
        net: a dynamic network module.
        *x: one input sequence ``(Q, TS, R_j)`` per network input (raw units).
        xi, ai: initial delay states (see :func:`mat2grad.shallow.dynamic.simulate`).
        mode: "rev" (``jacrev``), "fwd" (``jacfwd``) or "auto" (reverse when the outputs
            have fewer features than the inputs).
        chunk_size: series per vectorised pass (memory is bounded by the chunk).

    Returns:
        ``(Q, TS, S, TS, R)`` for one input and output (``J[q, t, :, u, :] = dy(t)/dx(u)``,
        zero above the diagonal ``u > t``), else ``J[k][j]`` per output k and input j.

    Example:
        >>> J = sequence_jacobian(net, torch.rand(2, 30, 1, dtype=torch.float64))  # doctest: +SKIP
        >>> assert J.shape == (2, 30, 1, 30, 1)
    """
    _dynamic(net, "sequence_jacobian")
    xs, xis, ais = _prepare(net, x, xi, ai)
    n_in = len(xs)
    if mode not in ("auto", "rev", "fwd"):
        raise Mat2GradError(f"mode must be 'auto', 'rev' or 'fwd', not '{mode}'")
    if mode == "auto":
        mode = "rev" if sum(net.output_sizes) <= sum(net.input_sizes) else "fwd"
    jac = torch.func.jacrev if mode == "rev" else torch.func.jacfwd

    def outputs(xs_: tuple[Tensor, ...], xis_: tuple[Tensor, ...], ais_: tuple[Tensor, ...]):
        return simulate(net, xs_, xis_, ais_).outputs

    per_series = torch.func.vmap(jac(outputs, argnums=0))
    parts = []
    for sl in _chunks(xs[0].shape[0], chunk_size):
        parts.append(
            per_series(
                tuple(t[sl] for t in xs), tuple(t[sl] for t in xis), tuple(t[sl] for t in ais)
            )
        )
    blocks = [
        [torch.cat([p[k][j] for p in parts], dim=0) for j in range(n_in)]
        for k in range(len(net.output_sizes))
    ]
    return _nested(blocks)


def step_sensitivity(
    net: Any,
    *x: Any,
    xi: Sequence[Any] | None = None,
    ai: Sequence[Any] | None = None,
    max_lag: int | None = None,
    chunk_size: int | None = None,
) -> Tensor | tuple[tuple[Tensor, ...], ...]:
    """``dy(t)/dx(t-d)`` for every time step t and lag ``d = 0 .. max_lag``.

    Args:
        net, x, xi, ai, chunk_size: as :func:`sequence_jacobian`.
        max_lag: the largest lag (default: ``numInputDelays``, the tapped delay lines'
            reach).

    Returns:
        ``(Q, TS, S, max_lag+1, R)`` per output/input pair (nested like
        :func:`sequence_jacobian`), zero where ``t - d < 0``.

    Networks without layer delays (``timedelaynet``, open-loop ``narxnet``) depend on
    ``x(t-d)`` only for ``d <= numInputDelays``, so the bands come from
    ``numInputDelays+1`` forward-mode passes with inputs grouped by ``u mod
    (numInputDelays+1)`` instead of the whole ``TS x TS`` Jacobian; other networks take
    the bands of :func:`sequence_jacobian`.
    """
    _dynamic(net, "step_sensitivity")
    spec = net.spec
    nid = spec.num_input_delays
    lag = nid if max_lag is None else int(max_lag)
    if lag < 0:
        raise Mat2GradError(f"max_lag must be >= 0, not {max_lag}")
    if spec.num_layer_delays > 0:
        full = sequence_jacobian(net, *x, xi=xi, ai=ai, chunk_size=chunk_size)
        blocks = [[full]] if isinstance(full, Tensor) else [list(row) for row in full]
        return _nested([[_bands(b, lag) for b in row] for row in blocks])

    xs, xis, ais = _prepare(net, x, xi, ai)
    period = nid + 1
    ts = xs[0].shape[1]
    device = xs[0].device
    colour = torch.arange(ts, device=device) % period  # step u is perturbed by z[u mod period]

    def outputs(zs, xs_, xis_, ais_):
        moved = tuple(xj + zj[colour] for xj, zj in zip(xs_, zs, strict=True))
        return simulate(net, moved, xis_, ais_).outputs

    # the perturbations z are shared by the series of a chunk (in_dims None)
    per_series = torch.func.vmap(torch.func.jacfwd(outputs, argnums=0), in_dims=(None, 0, 0, 0))
    zeros = tuple(torch.zeros(period, n, **_place(net)) for n in net.input_sizes)
    parts = [
        per_series(
            zeros,
            tuple(t[sl] for t in xs),
            tuple(t[sl] for t in xis),
            tuple(t[sl] for t in ais),
        )
        for sl in _chunks(xs[0].shape[0], chunk_size)
    ]
    t_idx = torch.arange(ts, device=device).unsqueeze(1)  # (TS, 1)
    d_idx = torch.arange(lag + 1, device=device).unsqueeze(0)  # (1, L+1)
    u = t_idx - d_idx
    valid = (u >= 0) & (d_idx <= nid)
    col = torch.remainder(u, period)  # (TS, L+1)
    blocks = []
    for k in range(len(net.output_sizes)):
        row = []
        for j in range(len(xs)):
            jc = torch.cat([p[k][j] for p in parts], dim=0)  # (Q, TS, S, P, R)
            q, _, s, _, r = jc.shape
            index = col.view(1, ts, 1, lag + 1, 1).expand(q, ts, s, lag + 1, r)
            band = torch.gather(jc, 3, index)
            row.append(band * valid.view(1, ts, 1, lag + 1, 1).to(band.dtype))
        blocks.append(row)
    return _nested(blocks)


def _bands(full: Tensor, lag: int) -> Tensor:
    """``(Q, TS, S, TS, R)`` -> ``(Q, TS, S, lag+1, R)`` with ``[.., t, :, d, :] = full[..,
    t, :, t-d, :]`` (zero where ``t-d < 0``)."""
    q, ts, s, _, r = full.shape
    t_idx = torch.arange(ts, device=full.device).unsqueeze(1)
    d_idx = torch.arange(lag + 1, device=full.device).unsqueeze(0)
    u = t_idx - d_idx
    valid = u >= 0
    index = u.clamp(min=0).view(1, ts, 1, lag + 1, 1).expand(q, ts, s, lag + 1, r)
    band = torch.gather(full, 3, index)
    return band * valid.view(1, ts, 1, lag + 1, 1).to(band.dtype)


def sequence_gradient(
    net: Any,
    *x: Any,
    xi: Sequence[Any] | None = None,
    ai: Sequence[Any] | None = None,
    weights: Sequence[Any] | Any | None = None,
    loss: Callable[..., Tensor] | None = None,
) -> Tensor | tuple[Tensor, ...]:
    """The gradient of a scalar of the whole output sequence w.r.t. the whole input
    sequence: one reverse pass through time (VJP), memory linear in TS.

    Args:
        net, x, xi, ai: as :func:`sequence_jacobian`.
        weights: the scalar is ``sum_k sum(weights[k] * y_k)`` (each broadcastable to
            ``(Q, TS, S_k)``; a single array for one output); default all ones, i.e. the
            sum of every output over time.
        loss: instead of ``weights``, a function of the output tensors returning a scalar.

    Returns:
        ``(Q, TS, R_j)`` per input (a tuple for several inputs).
    """
    _dynamic(net, "sequence_gradient")
    if weights is not None and loss is not None:
        raise Mat2GradError("give weights or loss, not both")
    xs, xis, ais = _prepare(net, x, xi, ai)
    with torch.enable_grad():
        leaves = tuple(t.detach().clone().requires_grad_(True) for t in xs)
        outs = simulate(net, leaves, xis, ais).outputs
        if loss is not None:
            scalar = loss(*outs)
            if not isinstance(scalar, Tensor) or scalar.numel() != 1:
                raise Mat2GradError("loss must return a scalar tensor")
            scalar = scalar.reshape(())
        else:
            if weights is None:
                ws: Sequence[Any] = (None,) * len(outs)
            elif len(outs) == 1 and not isinstance(weights, list | tuple):
                ws = (weights,)
            else:
                ws = tuple(weights)
            if len(ws) != len(outs):
                raise Mat2GradError(f"expected {len(outs)} weight arrays (one per output)")
            scalar = sum(
                (o if w is None else o * torch.as_tensor(w, dtype=o.dtype, device=o.device)).sum()
                for o, w in zip(outs, ws, strict=True)
            )
        grads = torch.autograd.grad(scalar, leaves, allow_unused=True)
    grads = tuple(
        torch.zeros_like(t) if g is None else g for g, t in zip(grads, leaves, strict=True)
    )
    return grads[0] if len(grads) == 1 else grads


# --------------------------------------------------------------------------------------
# Prediction, the way MATLAB users run dynamic networks
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """A dynamic network ready to simulate the way the user asked: the network actually
    simulated (closed by ``closeloop`` if asked), its inputs ``(Q, TS, R_j)``, initial
    states, the number of steps (for input-less networks) and preparets' result if used."""

    net: Any
    x: tuple[Tensor, ...]
    xi: tuple[Tensor | None, ...] | None
    ai: tuple[Tensor | None, ...] | None
    steps: int | None
    prepared: Prepared | None

    def simulate(self) -> Simulation:
        return simulate(self.net, self.x, self.xi, self.ai, steps=self.steps)


def plan_run(
    net: Any,
    inputs: Sequence[Any] = (),
    *,
    xi: Sequence[Any] | None = None,
    ai: Sequence[Any] | None = None,
    targets: Sequence[Any] | None = None,
    prepare: bool = False,
    closed_loop: bool = False,
    known_inputs: Sequence[Any] | None = None,
    known_targets: Sequence[Any] | None = None,
    steps: int | None = None,
) -> Run:
    """Decide how to run a dynamic network on time series, as a MATLAB user would.

    1. ``closed_loop``: ``net = closeloop(net)`` first.
    2. ``known_inputs``/``known_targets`` given: multistep prediction following the known
       sequence (:func:`~mat2grad.shallow.dynamic.predict_ahead`): the known part runs in
       open loop, its final states are converted by ``closeloop(net, xf, af)``, and the
       closed-loop network runs over ``inputs`` (the future non-feedback inputs).
    3. else ``prepare`` or ``targets`` given: ``[x, xi, ai] = preparets(net, inputs, ...,
       targets)``; ``targets`` hold one series per output, or only the feedback outputs'.
    4. else ``net(inputs, xi, ai)`` (zeros for missing states).
    """
    _dynamic(net, "a time-series run")
    place = _place(net)

    def tensors(seq: Sequence[Any] | None) -> list[Tensor]:
        return [torch.as_tensor(v, **place) for v in (seq or ())]

    if closed_loop:
        if not any(o.feedback_mode != "none" for o in net.spec.outputs):
            raise Mat2GradError(
                f"{net.spec.where} has no feedback output, so there is no loop to close "
                "(closed-loop prediction is for narxnet/narnet-type networks)"
            )
        net = closeloop(net)
    if known_inputs is not None or known_targets is not None:
        if not known_targets:
            raise Mat2GradError(
                "multistep prediction after a known sequence needs the known feedback "
                "targets (--known-targets-var) as well as the known inputs"
            )
        if prepare or targets or xi is not None or ai is not None:
            raise Mat2GradError(
                "a known sequence defines the initial states: do not also give targets, "
                "--prepare or initial states"
            )
        netc, xic, aic = closed_loop_after(net, tensors(known_inputs), tensors(known_targets))
        return Run(netc, tuple(tensors(inputs)), xic, aic, steps, None)
    if prepare or targets:
        if xi is not None or ai is not None:
            raise Mat2GradError(
                "preparets computes the initial states from the series: do not also give xi/ai"
            )
        spec = net.spec
        fb = [o for o in spec.outputs if o.feedback_mode != "none"]
        t = tensors(targets)
        if not t:
            t_plain, t_fb = [], []
        elif len(t) == len(spec.outputs):
            t_plain = [t[k] for k, o in enumerate(spec.outputs) if o.feedback_mode == "none"]
            t_fb = [t[k] for k, o in enumerate(spec.outputs) if o.feedback_mode != "none"]
        elif len(t) == len(fb):
            t_plain, t_fb = [], t
        else:
            raise Mat2GradError(
                f"{spec.where} has {len(spec.outputs)} output(s), {len(fb)} with feedback: "
                f"give one target series per output or per feedback output; found {len(t)}"
            )
        prep = preparets(net, tensors(inputs), t_plain, t_fb)
        return Run(net, prep.x, prep.xi, prep.ai, None, prep)
    return Run(net, tuple(tensors(inputs)), _opt(xi, place), _opt(ai, place), steps, None)


def predict_series(net: Any, inputs: Sequence[Any] = (), **how: Any) -> tuple[Run, Simulation]:
    """:func:`plan_run` then simulate, without an autograd graph.

    Returns:
        ``(run, simulation)``: ``run.net`` is the network simulated (closed if asked),
        ``simulation.outputs`` are ``(Q, TS, S_k)``, ``xf``/``af`` its final states.
    """
    run = plan_run(net, inputs, **how)
    with torch.no_grad():
        return run, run.simulate()


def gradient_series(
    net: Any,
    inputs: Sequence[Any] = (),
    *,
    form: str = "full",
    mode: str = "auto",
    max_lag: int | None = None,
    chunk_size: int | None = None,
    weights: Sequence[Any] | None = None,
    **how: Any,
) -> tuple[Run, Tensor | tuple]:
    """:func:`plan_run`, then the gradient ``form`` ("full": :func:`sequence_jacobian`,
    "step": :func:`step_sensitivity`, "sum": :func:`sequence_gradient`) with respect to the
    inputs the run simulates (after preparets: the shifted series, open-loop feedback inputs
    included; after a known sequence: the future inputs), at the run's initial states.
    ``weights`` (form "sum"): one array per output, broadcastable to ``(Q, TS, S_k)``.
    """
    if form not in FORMS:
        raise Mat2GradError(f"form must be one of {', '.join(FORMS)}, not '{form}'")
    run = plan_run(net, inputs, **how)
    if not run.x:
        raise Mat2GradError(
            f"{run.net.spec.where} has no inputs to differentiate with respect to (a "
            "closed-loop narnet depends only on its initial states)"
        )
    states = {"xi": run.xi, "ai": run.ai}
    if form == "full":
        return run, sequence_jacobian(run.net, *run.x, mode=mode, chunk_size=chunk_size, **states)
    if form == "step":
        return run, step_sensitivity(
            run.net, *run.x, max_lag=max_lag, chunk_size=chunk_size, **states
        )
    return run, sequence_gradient(run.net, *run.x, weights=weights, **states)


def gradient_to_matlab(
    result: Tensor | tuple, form: str, *, matrix: bool = False, samples: str = "columns"
) -> np.ndarray:
    """A :func:`gradient_series` result in MATLAB's layout.

    ``full``/``step``: each block ``(Q, TS, S, T2, R)`` becomes ``S x R x TS x T2 x Q``
    (``J(:,:,t,u,q) = dY{t}(:,q)/dX{u}(:,q)``; for ``step`` the fourth index is the lag
    ``d+1``), in a numOutputs x numInputs cell when there are several. ``sum``: the
    gradient has the inputs' layout (numInputs x TS cell of R x Q, or R x TS for a plain
    one-series matrix).
    """
    from . import matfile

    if form == "sum":
        grads = result if isinstance(result, tuple) else (result,)
        arrays = [g.detach().double().cpu().numpy() for g in grads]
        return matfile.sequences_to_matlab(arrays, matrix=matrix, samples=samples)
    rows = [list(r) for r in result] if isinstance(result, tuple) else [[result]]
    blocks = [
        [matfile.sequence_jacobian_to_matlab(b.detach().double().cpu().numpy()) for b in row]
        for row in rows
    ]
    if len(blocks) == 1 and len(blocks[0]) == 1:
        return blocks[0][0]
    cell = np.empty((len(blocks), len(blocks[0])), dtype=object)
    for k, row in enumerate(blocks):
        for j, block in enumerate(row):
            cell[k, j] = block
    return cell


def _opt(states: Sequence[Any] | None, place: dict[str, Any]) -> tuple[Tensor | None, ...] | None:
    if states is None:
        return None
    return tuple(None if s is None else torch.as_tensor(s, **place) for s in states)


# --------------------------------------------------------------------------------------
# Reading time-series data from a MAT-file (the CLI's and the MATLAB helpers' route)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesData:
    """Batch-first arrays read from a MAT-file for :func:`predict_series` (None: absent)."""

    inputs: list[np.ndarray]
    xi: list[np.ndarray] | None
    ai: list[np.ndarray] | None
    targets: list[np.ndarray] | None
    known_inputs: list[np.ndarray] | None
    known_targets: list[np.ndarray] | None
    steps: int | None
    matrix: bool  # the inputs were one plain matrix: write results the same way

    def how(self, *, prepare: bool, closed_loop: bool, steps: int | None) -> dict[str, Any]:
        """Keyword arguments for :func:`plan_run` (and so :func:`predict_series`,
        :func:`gradient_series`) from this data and the run options."""
        return {
            "xi": self.xi,
            "ai": self.ai,
            "targets": self.targets,
            "prepare": prepare,
            "closed_loop": closed_loop,
            "known_inputs": self.known_inputs,
            "known_targets": self.known_targets,
            "steps": steps if steps is not None else self.steps,
        }


def series_from_file(net: Any, args: Any) -> SeriesData:
    """Read the series named by the CLI options (``--inputs FILE``, ``--inputs-var``,
    ``--xi-var``, ``--ai-var``, ``--targets-var``, ``--known-inputs-var``,
    ``--known-targets-var``, ``--samples``) in MATLAB's layout, for ``net``.

    Which inputs the series hold depends on the mode: with ``--prepare``/``--targets-var``,
    ``--closed-loop`` or a known sequence they are the non-feedback inputs (MATLAB's
    ``Xnf``); otherwise every network input, the open-loop feedback input included.
    """
    from . import matfile

    spec = net.spec
    source = args.inputs
    variables = matfile.read_mat(source)
    samples = args.samples
    known = bool(args.known_inputs_var or args.known_targets_var)
    non_feedback = bool(args.prepare or args.targets_var or args.closed_loop or known)
    if non_feedback:
        sizes = tuple(i.size for i in spec.inputs if i.feedback_output is None)
    else:
        sizes = tuple(net.input_sizes)
    fb_sizes = tuple(o.size for o in spec.outputs if o.feedback_mode != "none")
    out_sizes = tuple(o.size for o in spec.outputs)

    def read(name: str) -> Any:
        return matfile.resolve(variables, name, source=source)

    def seqs(value: Any, sig: tuple[int, ...], what: str) -> tuple[list[np.ndarray], int, bool]:
        return matfile.sequences_from_matlab(value, sig, samples=samples, what=what)

    inputs: list[np.ndarray] = []
    steps, matrix = None, False
    if args.inputs_var or sizes:
        defaults = ("X", "x") if not known else ("X2", "x2")
        exclude = tuple(
            v for v in (args.targets_var, args.known_inputs_var, args.known_targets_var) if v
        )
        name, value = matfile.select_variable(
            variables, args.inputs_var, source=source, defaults=defaults, exclude=exclude
        )
        try:
            inputs, steps, matrix = seqs(value, sizes, f"{source}: '{name}'")
        except Mat2GradError as exc:
            fed = [i.index for i in spec.inputs if i.feedback_output is not None]
            if non_feedback or not fed:
                raise
            raise Mat2GradError(
                f"{exc}. Input(s) {fed} are open-loop feedback inputs: give their series too, "
                "or give only the other inputs with the targets (--targets-var T), as "
                "preparets(net, X, {}, T) does"
            ) from None

    def targets_of(name: str, feedback_only: bool = False) -> list[np.ndarray]:
        """One series per output, or per feedback output (the form preparets takes)."""
        value = read(name)
        rows = value.shape[0] if isinstance(value, np.ndarray) and value.dtype == object else 1
        if rows != len(out_sizes) or len(out_sizes) == len(fb_sizes):
            return seqs(value, fb_sizes or out_sizes, f"{source}: '{name}'")[0]
        series = seqs(value, out_sizes, f"{source}: '{name}'")[0]
        if feedback_only:
            series = [
                s for s, o in zip(series, spec.outputs, strict=True) if o.feedback_mode != "none"
            ]
        return series

    xi = ai = None
    if args.xi_var:
        xi = matfile.states_from_matlab(
            read(args.xi_var),
            tuple(net.input_sizes),
            spec.num_input_delays,
            samples=samples,
            what=f"{source}: '{args.xi_var}'",
        )
    if args.ai_var:
        ai = matfile.states_from_matlab(
            read(args.ai_var),
            tuple(layer.size for layer in spec.layers),
            spec.num_layer_delays,
            samples=samples,
            what=f"{source}: '{args.ai_var}'",
        )
    known_inputs = known_targets = None
    if known:
        known_sizes = tuple(i.size for i in spec.inputs if i.feedback_output is None)
        if known_sizes and not args.known_inputs_var:
            raise Mat2GradError("--known-targets-var needs --known-inputs-var (the known X1)")
        if args.known_inputs_var:
            known_inputs = seqs(
                read(args.known_inputs_var),
                known_sizes,
                f"{source}: '{args.known_inputs_var}'",
            )[0]
        else:
            known_inputs = []
        if args.known_targets_var:
            known_targets = targets_of(args.known_targets_var, feedback_only=True)
    return SeriesData(
        inputs=inputs,
        xi=xi,
        ai=ai,
        targets=targets_of(args.targets_var) if args.targets_var else None,
        known_inputs=known_inputs,
        known_targets=known_targets,
        steps=steps if not sizes else None,
        matrix=matrix,
    )
