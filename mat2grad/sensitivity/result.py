"""The result of a sensitivity analysis: named statistics in the outputs x inputs layout.

In Python and in the MAT-file alike, a statistic of output k and input i sits at
``[k, i]`` (``S x R``, like one sample's Jacobian); lag statistics add a last axis over the
delays ``d = 0..L`` (``S x R x (L+1)``), interaction statistics a second input axis
(``S x R x R``). Written to MATLAB, ``S.inputs``/``S.outputs`` are cell arrays of names, so::

    T = array2table(S.rms, 'RowNames', S.outputs, 'VariableNames', S.inputs)

turns any ``S x R`` field into a table in one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import matfile

__all__ = ["SensitivityResult"]


@dataclass
class SensitivityResult:
    """Named statistics of one analysis.

    Attributes:
        kind: ``"local"`` (derivative statistics over the given samples), ``"dgsm"``,
            ``"interactions"``, ``"lags"`` (time series), ``"weights"`` (Garson/Olden:
            weight-based, not derivative-based) or ``"committee"``.
        stats: statistic name -> array ``(S, R)`` (``(S, R, L+1)`` for lags, ``(S, R, R)``
            for interactions).
        inputs, outputs: element names (columns, rows).
        num_samples: samples (time steps x series for lags) the statistics average over.
        settings: the options used (definitions chosen, scale, bootstrap, seed...).
        parts: further results computed in the same run (e.g. ``"interactions"``).
        derivatives: a random subset of the raw derivatives ``(M, S, R)`` kept for density
            plots (``keep=M``), or None.
        input_shape: the per-sample shape of a single input (images: ``(C, H, W)``).
    """

    kind: str
    stats: dict[str, np.ndarray]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    num_samples: int
    settings: dict[str, Any] = field(default_factory=dict)
    parts: dict[str, SensitivityResult] = field(default_factory=dict)
    derivatives: np.ndarray | None = field(default=None, repr=False)
    input_shape: tuple[int, ...] | None = None

    def __getitem__(self, name: str) -> np.ndarray:
        return self.stats[name]

    def __contains__(self, name: str) -> bool:
        return name in self.stats

    def ranking(self, stat: str = "rms", output: int = 0) -> list[tuple[str, float]]:
        """Inputs by decreasing ``|stat|`` for one output: ``[(name, value), ...]``."""
        row = np.asarray(self.stats[stat])[output]
        if row.ndim > 1:  # lags or interactions: the total over the extra axis
            row = np.sqrt(np.nansum(row**2, axis=tuple(range(1, row.ndim))))
        order = np.argsort(-np.abs(np.nan_to_num(row, nan=-np.inf)), kind="stable")
        return [(self.inputs[i], float(row[i])) for i in order]

    def summary(self, stat: str = "rms") -> str:
        """A short text table of ``stat`` (outputs x inputs)."""
        arr = np.asarray(self.stats[stat])
        if arr.ndim != 2:
            arr = np.sqrt(np.nansum(arr**2, axis=tuple(range(2, arr.ndim))))
        width = max([len(n) for n in self.outputs] + [6])
        head = " " * width + "".join(f"{n[:11]:>12}" for n in self.inputs)
        lines = [f"{self.kind} sensitivity, {stat}, {self.num_samples} samples", head]
        for name, row in zip(self.outputs, arr, strict=True):
            lines.append(f"{name:<{width}}" + "".join(f"{v:12.4g}" for v in row))
        return "\n".join(lines)

    def to_struct(self) -> dict[str, Any]:
        """The MATLAB struct ``S`` (for :func:`mat2grad.matfile.write_mat`): one field per
        statistic (float64), ``inputs``/``outputs`` (cells of names), ``num_samples``,
        ``kind``, ``settings`` (a struct) and one sub-struct per part."""
        out: dict[str, Any] = {
            name: np.asarray(value, dtype=np.float64) for name, value in self.stats.items()
        }
        out["inputs"] = matfile.row_cell(self.inputs)
        out["outputs"] = matfile.row_cell(self.outputs)
        out["num_samples"] = np.float64(self.num_samples)
        out["kind"] = self.kind
        out["settings"] = {k: _setting(v) for k, v in self.settings.items() if v is not None}
        for name, part in self.parts.items():
            out[name] = part.to_struct()
        return out


def _setting(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return matfile.row_cell(tuple(value))
    if isinstance(value, bool | np.bool_):
        return np.float64(value)
    return np.asarray(value, dtype=np.float64)
