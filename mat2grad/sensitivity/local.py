"""Local-derivative statistics over samples, as NeuralSens defines them.

For D[q, k, i] = dy_k/dx_i at sample q (raw units, through all processing), over the Q
given samples (Pizarroso, Portela & Munoz, "NeuralSens: Sensitivity Analysis of Neural
Networks", J. Stat. Softw. 102(7), 2022, section 2):

* ``mean``     = mean_q D                      (NeuralSens ``mean``)
* ``std``      = std_q D, dividing by Q - ddof  (``ddof=0``, the population std, is what
  the Python package ``neuralsens`` computes (numpy's ``std``); ``ddof=1`` is the R
  package's ``sd``)
* ``rms``      = sqrt(mean_q D^2)              (NeuralSens ``meanSensSQ``, "mean_squared")
* ``mean_abs`` = mean_q |D|

``scale`` makes inputs in different units comparable: ``"std"`` multiplies D[., k, i] by
s_x_i / s_y_k (the samples' standard deviations, with the same ``ddof``), ``"range"`` by
(x_i max - min) / (y_k max - min) with the ranges the network recorded when it was trained
(MATLAB's ``inputs{i}.range``, ``outputs{i}.range``, the ranges ``mapminmax`` uses). Each
statistic scales by the same positive factor.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import Mat2GradError
from . import moments as mom
from .bootstrap import interval
from .network import recorded_ranges
from .result import SensitivityResult
from .stream import State

__all__ = ["SCALES", "STATS", "local_result", "local_statistics", "with_intervals"]

#: the standardisations offered (None: raw units)
SCALES = (None, "std", "range")
#: the statistics of a local analysis, in the order they are written
STATS = ("mean", "std", "rms", "mean_abs")


def _scale_factor(
    state: State, moments: dict[str, mom.Moments], scale: str | None, ddof: int, model: Any
) -> np.ndarray | float:
    if scale is None:
        return 1.0
    layout = state.layout
    name = layout.name if layout else "the network"
    if scale == "std":
        _, vx = mom.aggregate(moments["x"], ddof)
        _, vy = mom.aggregate(moments["y"], ddof)
        sx, sy = np.sqrt(vx), np.sqrt(vy)
        if moments is state.main and np.any(~(sy > 0)):
            bad = [layout.outputs[k] if layout else str(k) for k in np.flatnonzero(~(sy > 0))]
            raise Mat2GradError(
                f"{name}: scale='std' divides by the outputs' spread, but output(s) "
                f"{', '.join(bad)} do not vary over the samples; use scale='range' or None"
            )
        with np.errstate(divide="ignore", invalid="ignore"):
            return sx[..., None, :] / sy[..., :, None]
    if scale == "range":
        rin, rout = recorded_ranges(model, "inputs"), recorded_ranges(model, "outputs")
        r, s = (len(layout.inputs), len(layout.outputs)) if layout else (0, 0)
        if rin is None or rout is None or rin.shape[0] != r or rout.shape[0] != s:
            raise Mat2GradError(
                f"{name}: scale='range' needs the input and output ranges the network "
                "recorded in training (MATLAB's inputs{i}.range, outputs{i}.range); this "
                "network has none; use scale='std'"
            )
        wx, wy = rin[:, 1] - rin[:, 0], rout[:, 1] - rout[:, 0]
        if np.any(~(wy > 0)):
            bad = [layout.outputs[k] for k in np.flatnonzero(~(wy > 0))]
            raise Mat2GradError(
                f"{name}: scale='range' divides by the outputs' recorded ranges, but output(s) "
                f"{', '.join(bad)} have zero width; use scale='std' or None"
            )
        return wx[None, :] / wy[:, None]
    raise Mat2GradError(f"scale must be one of None, 'std', 'range'; found {scale!r}")


def local_statistics(
    state: State,
    moments: dict[str, mom.Moments],
    *,
    scale: str | None = None,
    ddof: int = 0,
    model: Any = None,
) -> dict[str, np.ndarray]:
    """NeuralSens' statistics of a state's moments (``state.main`` or ``state.boot``, whose
    leading replicate axis carries through)."""
    f = _scale_factor(state, moments, scale, ddof, model)
    mean, var = mom.aggregate(moments["d"], ddof)
    with np.errstate(invalid="ignore"):
        return {
            "mean": mean * f,
            "std": np.sqrt(var) * f,
            "rms": np.sqrt(moments["sq"].mean) * f,
            "mean_abs": moments["abs"].mean * f,
        }


def with_intervals(
    stats: dict[str, np.ndarray], boot: dict[str, np.ndarray] | None, conf_level: float
) -> dict[str, np.ndarray]:
    """``stats`` plus ``<name>_low``/``<name>_high`` percentile intervals from bootstrap
    replicates ``boot`` (same names, a leading replicate axis)."""
    out = dict(stats)
    if boot:
        for name in stats:
            low, high, _ = interval(boot[name], conf_level)
            out[f"{name}_low"], out[f"{name}_high"] = low, high
    return out


def local_result(
    state: State,
    model: Any,
    *,
    scale: str | None = None,
    ddof: int = 0,
    conf_level: float = 0.95,
    kind: str = "local",
) -> SensitivityResult:
    """A finished state as a :class:`SensitivityResult`."""
    if scale not in SCALES:
        raise Mat2GradError(f"scale must be one of None, 'std', 'range'; found {scale!r}")
    if ddof not in (0, 1):
        raise Mat2GradError(f"ddof must be 0 (population std) or 1 (sample std); found {ddof!r}")
    stats = local_statistics(state, state.main, scale=scale, ddof=ddof, model=model)
    boot = None
    if state.boot is not None:
        boot = local_statistics(state, state.boot, scale=scale, ddof=ddof, model=model)
    layout = state.layout
    assert layout is not None
    res = state.reservoir
    shape = layout.in_shapes[0] if len(layout.in_shapes) == 1 else None
    return SensitivityResult(
        kind=kind,
        stats=with_intervals(stats, boot, conf_level),
        inputs=layout.inputs,
        outputs=layout.outputs,
        num_samples=state.count,
        settings={
            "std": "population" if ddof == 0 else "sample",
            "ddof": ddof,
            "scale": scale or "none",
            "bootstrap": state.replicates,
            "conf_level": conf_level if state.replicates else None,
            "seed": state.seed,
        },
        derivatives=None if res is None else res.values,
        input_shape=shape,
    )
