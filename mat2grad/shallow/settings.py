"""A record's ``processFcns``/``processSettings`` -> :class:`ProcessStep` s ready for torch.

One rule per processing function (:data:`_RULES`), applied to the settings struct MATLAB
saved. The format versions differ here, and nowhere else:

* v7 ``mapminmax``/``mapstd`` settings lack ``gain``/``xoffset``: rebuilt with MATLAB's
  create rule (``MAPMINMAX.CREATE``: ``xoffset = xmin; gain = yrange ./ xrange``; rows with
  ``|gain| > 1e14``, non-finite or zero range get ``gain = 1, xoffset = ymin``; ``mapstd``
  alike with means and standard deviations).
* v7 keeps no-op processing functions with ``no_change = 1``: they become identities.
* settings are keyed on ``processFcns{k}``, never on ``settings.name`` (absent in v8).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import Mat2GradError
from ..matfile import MatStruct, as_float, cell_list, describe, row_indices
from .fields import text
from .names import PROCESSING_NAMES, check_supported
from .spec import ProcessStep, Where

__all__ = ["parse_steps", "process_step"]


def parse_steps(value: MatStruct, size: int, ctx: Where, where: str) -> tuple[ProcessStep, ...]:
    """The processing steps of an input or output struct (``inputs{i}``, ``outputs{i}``) of
    ``size`` raw rows, identities left out."""
    fcns = value.get("processFcns")
    settings = value.get("processSettings")
    names = [text(f, f"{where}.processFcns") for f in cell_list(fcns)]
    sets = cell_list(settings)
    if len(sets) != len(names):
        raise ctx.err(
            where,
            f"{len(names)} processFcns but {len(sets)} processSettings; the record is damaged",
        )
    steps: list[ProcessStep] = []
    rows = size
    for k, (name, s) in enumerate(zip(names, sets, strict=True)):
        here = f"{where}.processFcns{{{k + 1}}}"
        check_supported(PROCESSING_NAMES, name, "processing", ctx.place(here))
        if not isinstance(s, MatStruct):
            raise ctx.err(here, f"settings for {name} are {describe(s)}, expected a struct")
        step = process_step(name, s, rows, ctx, here)
        if step is None:  # no_change = 1: identity
            continue
        steps.append(step)
        rows = step.out_size
    return tuple(steps)


def process_step(name: str, s: MatStruct, rows: int, ctx: Where, where: str) -> ProcessStep | None:
    """Turn a MATLAB settings struct into the arrays :mod:`functions` needs; None for an
    identity (``no_change``, ``lvqoutputs``)."""
    settings = _Settings(name, s, rows, ctx, where)
    if name == "lvqoutputs":
        return None
    if name in _RULES:
        n = settings.xrows()
        return None if settings.no_change else _RULES[name](settings, n)
    if name == "processpca":
        return _processpca(settings)
    raise ctx.err(where, f"processing function '{name}' has no settings rule")  # pragma: no cover


class _Settings:
    """One settings struct being read, with messages that name its place."""

    def __init__(self, name: str, s: MatStruct, rows: int, ctx: Where, where: str):
        self.name, self.s, self.rows, self.ctx, self.where = name, s, rows, ctx, where
        self.no_change = "no_change" in s.fields and bool(as_float(s["no_change"]).reshape(-1)[0])

    def has(self, *names: str) -> bool:
        return all(n in self.s.fields for n in names)

    def err(self, message: str) -> Mat2GradError:
        return self.ctx.err(self.where, message)

    def field(self, field_name: str) -> np.ndarray:
        if field_name not in self.s.fields:
            raise self.err(f"{self.name} settings have no field '{field_name}'")
        return as_float(self.s[field_name], f"{self.where}.{field_name}")

    def col(self, field_name: str, n: int) -> np.ndarray:
        """A per-row setting as a vector of ``n`` values (a scalar is repeated)."""
        arr = self.field(field_name).reshape(-1)
        if arr.size == 1:
            arr = np.full(n, arr[0])
        if arr.size != n:
            raise self.err(
                f"{self.name} settings field '{field_name}' has {arr.size} values, expected {n}"
            )
        return arr

    def xrows(self) -> int:
        n = int(self.field("xrows").reshape(-1)[0]) if "xrows" in self.s.fields else self.rows
        if n != self.rows:
            raise self.err(f"{self.name} expects {n} rows but receives {self.rows}")
        return n

    def indices(self, field_name: str, n: int) -> np.ndarray:
        return row_indices(self.s.get(field_name), n, self.ctx, f"{self.where}.{field_name}")


def _affine(st: _Settings, n: int) -> ProcessStep:
    """``mapminmax`` and ``mapstd``: ``y = (x - xoffset) .* gain + ymin`` (or ``+ ymean``)."""
    base = "ymin" if st.name == "mapminmax" else "ymean"
    if st.has("gain", "xoffset"):
        gain, xoffset = st.col("gain", n), st.col("xoffset", n)
    elif st.name == "mapminmax":
        gain, xoffset = _mapminmax_create(st, n)
    else:
        gain, xoffset = _mapstd_create(st, n)
    return ProcessStep(st.name, n, n, {"gain": gain, "xoffset": xoffset, base: st.col(base, n)})


def _mapminmax_create(st: _Settings, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``gain``/``xoffset`` of v7 ``mapminmax`` settings by MAPMINMAX.CREATE's rule."""
    xmin, xmax = st.col("xmin", n), st.col("xmax", n)
    ymin, ymax = st.col("ymin", n), st.col("ymax", n)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = (ymax - ymin) / (xmax - xmin)
    fix = (np.abs(gain) > 1e14) | ~np.isfinite(xmax - xmin) | (xmax - xmin == 0)
    return _unscalable(gain, xmin.copy(), ymin, fix)


def _mapstd_create(st: _Settings, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``gain``/``xoffset`` of v7 ``mapstd`` settings by MAPSTD.CREATE's rule."""
    xmean, xstd = st.col("xmean", n), st.col("xstd", n)
    ymean, ystd = st.col("ymean", n), st.col("ystd", n)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = ystd / xstd
    fix = (np.abs(gain) > 1e14) | ~np.isfinite(xmean) | ~np.isfinite(xstd) | (xstd == 0)
    return _unscalable(gain, xmean.copy(), ymean, fix)


def _unscalable(
    gain: np.ndarray, xoffset: np.ndarray, yoffset: np.ndarray, fix: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The create rule for the rows it cannot scale: ``gain = 1``, ``xoffset`` = the target
    offset (``ymin``, ``ymean``)."""
    gain[fix] = 1.0
    xoffset[fix] = yoffset[fix]
    return gain, xoffset


def _removeconstantrows(st: _Settings, n: int) -> ProcessStep:
    keep, remove = st.indices("keep", n), st.indices("remove", n)
    s = st.s
    if "constants" in s.fields and as_float(s["constants"]).size == remove.size:
        constants = as_float(s["constants"]).reshape(-1)
    else:
        constants = as_float(s.get("value", np.zeros((0, 1)))).reshape(-1)
    if sorted(np.concatenate([keep, remove]).tolist()) != list(range(n)):
        raise st.err(f"keep and remove do not partition the {n} rows")
    if constants.size != remove.size:
        raise st.err(f"{remove.size} removed rows but {constants.size} constants")
    order = np.empty(n, dtype=np.int64)
    order[keep] = np.arange(keep.size)
    order[remove] = keep.size + np.arange(remove.size)
    return ProcessStep(
        "removeconstantrows",
        n,
        int(keep.size),
        {"keep": keep, "constants": constants, "order": order},
    )


def _fixunknowns(st: _Settings, n: int) -> ProcessStep:
    unknown = st.indices("unknown", n)
    shift = as_float(st.s.get("shift")).reshape(-1).astype(np.int64)
    xmeans = st.col("xmeans", n)
    yrows = n + unknown.size
    if shift.size != n:
        raise st.err(f"fixunknowns shift has {shift.size} values, expected {n}")
    value_rows = np.arange(n) + shift  # y(shiftInd,:) = x
    flag_rows = unknown + shift[unknown] + 1  # y(flagInd,:) = ~isnan(x(unknown,:))
    order = np.empty(yrows, dtype=np.int64)
    order[value_rows] = np.arange(n)
    order[flag_rows] = n + np.arange(unknown.size)
    if sorted(np.concatenate([value_rows, flag_rows]).tolist()) != list(range(yrows)):
        raise st.err("fixunknowns shift/unknown settings are inconsistent")
    return ProcessStep(
        "fixunknowns",
        n,
        yrows,
        {"xmeans": xmeans, "unknown": unknown, "order": order, "value_rows": value_rows},
    )


def _processpca(st: _Settings) -> ProcessStep | None:
    transform = st.field("transform")
    if transform.ndim != 2 or transform.shape[1] != st.rows:
        raise st.err(f"processpca transform is {transform.shape}, expected ?x{st.rows}")
    if st.no_change:
        return None
    if st.has("inverseTransform") and as_float(st.s["inverseTransform"]).size:
        inverse = st.field("inverseTransform")
    else:
        inverse = np.linalg.pinv(transform)
    return ProcessStep(
        "processpca",
        st.rows,
        transform.shape[0],
        {"transform": transform, "inverseTransform": inverse},
    )


#: the processing functions whose settings are per row (``xrows`` checked first, then
#: ``no_change``), each with the rule that builds its step of ``n`` rows
_RULES: dict[str, Callable[[_Settings, int], ProcessStep]] = {
    "mapminmax": _affine,
    "mapstd": _affine,
    "removeconstantrows": _removeconstantrows,
    "fixunknowns": _fixunknowns,
}
