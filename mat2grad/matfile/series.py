"""A dynamic network's time series as MAT-file variables hold them: which variables hold
the inputs (all of them, or only MATLAB's non-feedback ``Xnf``), the targets, the delay
states and a known sequence, read batch-first; and gradients through time written back.

The series themselves (``numSignals x TS`` cells, or one plain matrix) are read by
:mod:`.sequences`; this module knows which variable is which.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import Mat2GradError
from .layout import float64_numpy
from .paths import resolve, select_variable
from .sequences import (
    sequence_jacobian_to_matlab,
    sequences_from_matlab,
    sequences_to_matlab,
    states_from_matlab,
)

__all__ = [
    "SeriesData",
    "SeriesNames",
    "SeriesNetwork",
    "series_from_variables",
    "series_gradient_to_matlab",
]


@dataclass(frozen=True)
class SeriesNetwork:
    """What reading a dynamic network's series needs to know of the network."""

    input_sizes: tuple[int, ...]  # every input's size, inputs{j}.size
    feedback_inputs: tuple[int, ...]  # 1-based numbers of the open-loop feedback inputs
    output_sizes: tuple[int, ...]
    output_feedback: tuple[bool, ...]  # per output: does it feed back?
    layer_sizes: tuple[int, ...]
    num_input_delays: int
    num_layer_delays: int

    @property
    def non_feedback_sizes(self) -> tuple[int, ...]:
        """The sizes of the inputs that are not feedback inputs (MATLAB's ``Xnf``)."""
        fed = {j - 1 for j in self.feedback_inputs}
        return tuple(s for j, s in enumerate(self.input_sizes) if j not in fed)


@dataclass(frozen=True)
class SeriesNames:
    """The variables (MATLAB-style paths) that hold each part of the data; None: not given
    (the inputs then default to ``X``/``x``, or ``X2``/``x2`` after a known sequence)."""

    inputs: str | None = None
    xi: str | None = None
    ai: str | None = None
    targets: str | None = None
    known_inputs: str | None = None
    known_targets: str | None = None


@dataclass(frozen=True)
class SeriesData:
    """Batch-first arrays read from MAT-file variables for a time-series run (None:
    absent); :meth:`how` gives them to ``mat2grad.dynamic.plan_run``."""

    inputs: list[np.ndarray]
    xi: list[np.ndarray] | None
    ai: list[np.ndarray] | None
    targets: list[np.ndarray] | None
    known_inputs: list[np.ndarray] | None
    known_targets: list[np.ndarray] | None
    steps: int | None
    matrix: bool  # the inputs were one plain matrix: write results the same way

    def how(self, *, prepare: bool, closed_loop: bool, steps: int | None) -> dict[str, Any]:
        """Keyword arguments for ``plan_run`` (and so ``predict_series``,
        ``gradient_series``) from this data and the run options."""
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


def series_from_variables(
    variables: Mapping[str, Any],
    net: SeriesNetwork,
    names: SeriesNames,
    *,
    samples: str = "columns",
    source: str = "",
    prepared: bool = False,
) -> SeriesData:
    """Read the series ``names`` gives from ``variables`` (a MAT-file's), in MATLAB's
    layout (``samples``), for the network ``net``.

    Which inputs the series hold depends on the run: when it prepares the series or closes
    the loop (``prepared``: preparets, closeloop), or targets or a known sequence are
    given, they are the non-feedback inputs (MATLAB's ``Xnf``); otherwise every network
    input, the open-loop feedback input included. Messages name a variable
    ``SOURCE: 'NAME'``, or ``'NAME'`` where ``source`` is empty (data given in memory).
    """
    known = bool(names.known_inputs or names.known_targets)
    non_feedback = bool(prepared or names.targets or known)
    sizes = net.non_feedback_sizes if non_feedback else net.input_sizes
    fb_sizes = tuple(s for s, f in zip(net.output_sizes, net.output_feedback, strict=True) if f)
    out_sizes = net.output_sizes

    def what(name: str) -> str:
        return f"{source}: '{name}'" if source else f"'{name}'"

    def read(name: str) -> Any:
        return resolve(variables, name, source=source)

    def seqs(value: Any, sig: tuple[int, ...], name: str) -> tuple[list[np.ndarray], int, bool]:
        return sequences_from_matlab(value, sig, samples=samples, what=what(name))

    inputs: list[np.ndarray] = []
    steps, matrix = None, False
    if names.inputs or sizes:
        defaults = ("X", "x") if not known else ("X2", "x2")
        exclude = tuple(v for v in (names.targets, names.known_inputs, names.known_targets) if v)
        name, value = select_variable(
            variables, names.inputs, source=source, defaults=defaults, exclude=exclude
        )
        try:
            inputs, steps, matrix = seqs(value, sizes, name)
        except Mat2GradError as exc:
            fed = list(net.feedback_inputs)
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
            return seqs(value, fb_sizes or out_sizes, name)[0]
        series = seqs(value, out_sizes, name)[0]
        if feedback_only:
            series = [s for s, f in zip(series, net.output_feedback, strict=True) if f]
        return series

    xi = ai = None
    if names.xi:
        xi = states_from_matlab(
            read(names.xi),
            net.input_sizes,
            net.num_input_delays,
            samples=samples,
            what=what(names.xi),
        )
    if names.ai:
        ai = states_from_matlab(
            read(names.ai),
            net.layer_sizes,
            net.num_layer_delays,
            samples=samples,
            what=what(names.ai),
        )
    known_inputs = known_targets = None
    if known:
        known_sizes = net.non_feedback_sizes
        if known_sizes and not names.known_inputs:
            raise Mat2GradError("--known-targets-var needs --known-inputs-var (the known X1)")
        if names.known_inputs:
            known_inputs = seqs(read(names.known_inputs), known_sizes, names.known_inputs)[0]
        else:
            known_inputs = []
        if names.known_targets:
            known_targets = targets_of(names.known_targets, feedback_only=True)
    return SeriesData(
        inputs=inputs,
        xi=xi,
        ai=ai,
        targets=targets_of(names.targets) if names.targets else None,
        known_inputs=known_inputs,
        known_targets=known_targets,
        steps=steps if not sizes else None,
        matrix=matrix,
    )


def series_gradient_to_matlab(
    result: Any, form: str, *, matrix: bool = False, samples: str = "columns"
) -> np.ndarray:
    """A gradient through time (``mat2grad.dynamic.gradient_series``'s result) in MATLAB's
    layout.

    ``full``/``step``: each block ``(Q, TS, S, T2, R)`` becomes ``S x R x TS x T2 x Q``
    (``J(:,:,t,u,q) = dY{t}(:,q)/dX{u}(:,q)``; for ``step`` the fourth index is the lag
    ``d+1``), in a numOutputs x numInputs cell when there are several. ``sum``: the
    gradient has the inputs' layout (numInputs x TS cell of R x Q, or R x TS for a plain
    one-series matrix).
    """
    if form == "sum":
        grads = result if isinstance(result, tuple) else (result,)
        arrays = [float64_numpy(g) for g in grads]
        return sequences_to_matlab(arrays, matrix=matrix, samples=samples)
    rows = [list(r) for r in result] if isinstance(result, tuple) else [[result]]
    blocks = [[sequence_jacobian_to_matlab(float64_numpy(b)) for b in row] for row in rows]
    if len(blocks) == 1 and len(blocks[0]) == 1:
        return blocks[0][0]
    cell = np.empty((len(blocks), len(blocks[0])), dtype=object)
    for k, row in enumerate(blocks):
        for j, block in enumerate(row):
            cell[k, j] = block
    return cell
