"""Dynamic networks from the user's side: sequence prediction the way MATLAB users run it
(``preparets``, ``closeloop``, multistep prediction), the gradients through time of such a
run (:func:`gradient_series`, computed by :mod:`mat2grad.autodiff.sequence`), and the
time series read from and written to MAT-files for the CLI and the MATLAB helpers.

Shapes are batch-first: Q independent series, TS time steps, ``(Q, TS, R_j)`` per input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import matfile
from .autodiff.sequence import (
    FORMS,
    placement,
    require_dynamic,
    sequence_gradient,
    sequence_jacobian,
    step_sensitivity,
)
from .contract import to_numpy
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
    "gradient_to_matlab",
    "SeriesData",
    "series_from_file",
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
    if form == "sum":
        grads = result if isinstance(result, tuple) else (result,)
        arrays = [to_numpy(g.double()) for g in grads]
        return matfile.sequences_to_matlab(arrays, matrix=matrix, samples=samples)
    rows = [list(r) for r in result] if isinstance(result, tuple) else [[result]]
    blocks = [
        [matfile.sequence_jacobian_to_matlab(to_numpy(b.double())) for b in row] for row in rows
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
