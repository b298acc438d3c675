"""Dynamic networks from the user's side: sequence prediction the way MATLAB users run it
(``preparets``, ``closeloop``, multistep prediction), the gradients through time of such a
run (:func:`gradient_series`, computed by :mod:`mat2grad.autodiff.sequence`). Time series in
MAT-files, in and out, are :mod:`mat2grad.matfile`'s (``series``, ``sequences``).

Shapes are batch-first: Q independent series, TS time steps, ``(Q, TS, R_j)`` per input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .autodiff.sequence import (
    FORMS,
    placement,
    require_dynamic,
    sequence_gradient,
    sequence_jacobian,
    step_sensitivity,
)
from .errors import Mat2GradError
from .shallow.loops import (
    closed_loop_after,
    closeloop,
    closeloop_states,
    openloop,
    predict_ahead,
)
from .shallow.preparets import Prepared, preparets
from .shallow.simulate import Simulation, WithStates, simulate

__all__ = [
    # MATLAB's time-series tools (mat2grad.shallow), re-exported for users
    "simulate",
    "Simulation",
    "preparets",
    "Prepared",
    "closeloop",
    "openloop",
    "closeloop_states",
    "predict_ahead",
    "WithStates",
    # gradients through time (mat2grad.autodiff.sequence), re-exported for compatibility
    "FORMS",
    "sequence_jacobian",
    "step_sensitivity",
    "sequence_gradient",
    # runs the way MATLAB users make them
    "Run",
    "plan_run",
    "predict_series",
    "gradient_series",
]

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
       sequence (:func:`~mat2grad.shallow.predict_ahead`): the known part runs in
       open loop, its final states are converted by ``closeloop(net, xf, af)``, and the
       closed-loop network runs over ``inputs`` (the future non-feedback inputs).
    3. else ``prepare`` or ``targets`` given: ``[x, xi, ai] = preparets(net, inputs, ...,
       targets)``; ``targets`` hold one series per output, or only the feedback outputs'.
    4. else ``net(inputs, xi, ai)`` (zeros for missing states).
    """
    require_dynamic(net, "a time-series run")
    place = placement(net)

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


def _opt(states: Sequence[Any] | None, place: dict[str, Any]) -> tuple[Tensor | None, ...] | None:
    if states is None:
        return None
    return tuple(None if s is None else torch.as_tensor(s, **place) for s in states)
