"""MATLAB's time-series layout: a numSignals x TS cell of ``R x Q`` matrices <-> the
library's batch-first sequences ``(Q, TS, R)``; delay states; through-time Jacobians."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import Mat2GradError
from .layout import check_samples
from .tree import as_float, describe

__all__ = [
    "sequences_from_matlab",
    "states_from_matlab",
    "sequences_to_matlab",
    "sequence_jacobian_to_matlab",
]

# NOTE: [MATLAB time-series data]
#     As MATLAB's sim and train document them: inputs are an Ni x TS cell whose element
#     {i, ts} is R_i x Q (Q series simulated side by side); delay states are Ni x ID (Xi)
#     and Nl x LD (Ai) cells ordered oldest first. A plain R x TS matrix is taken as one
#     series (a convenience: MATLAB itself would read a matrix as one time step of TS
#     samples), and results then come back as plain S x TS matrices. With samples='rows'
#     the matrices are transposed: Q x R cell elements, TS x R plain matrices.


def sequences_from_matlab(
    value: Any,
    sizes: tuple[int, ...],
    *,
    samples: str = "columns",
    what: str = "inputs",
) -> tuple[list[np.ndarray], int, bool]:
    """MATLAB time-series data -> one float64 ``(Q, TS, R_j)`` array per signal (see
    NOTE: [MATLAB time-series data]).

    Returns ``(arrays, TS, matrix_form)``; ``matrix_form`` is True for a plain matrix (one
    series), so results can be written back the same way. A ``0 x TS`` cell (no signals:
    a closed-loop ``narnet``) gives no arrays and its TS.
    """
    check_samples(samples)
    n = len(sizes)
    if isinstance(value, np.ndarray) and value.dtype == object:
        if value.ndim != 2:
            raise Mat2GradError(f"{what}: expected a 2-D cell, found {describe(value)}")
        if value.shape[0] != n:
            hint = ""
            if n == 1 and value.shape[1] == 1 and value.shape[0] > 1:
                hint = " (a TS x 1 cell: transpose it, as con2seq returns 1 x TS)"
            raise Mat2GradError(
                f"{what}: the network takes {n} signal(s), so the time series must be a "
                f"{n} x TS cell of matrices (one row per signal); found {describe(value)}{hint}"
            )
        ts = value.shape[1]
        layout = "R x Q: one column per series" if samples == "columns" else "Q x R"
        out, q_seen = [], None
        for j, size in enumerate(sizes):
            steps = []
            for t in range(ts):
                label = f"{what}{{{j + 1},{t + 1}}}"
                part = value[j, t]
                if not (isinstance(part, np.ndarray) and part.dtype.kind in "biuf"):
                    raise Mat2GradError(
                        f"{label}: expected a numeric matrix, found {describe(part)}"
                    )
                arr = as_float(part, label)
                if arr.ndim != 2:
                    raise Mat2GradError(f"{label}: expected a 2-D matrix, found {describe(part)}")
                batch = arr.T if samples == "columns" else arr
                if batch.shape[1] != size:
                    raise Mat2GradError(
                        f"{label} is {arr.shape[0]}x{arr.shape[1]} but signal {j + 1} has "
                        f"{size} features ({layout})"
                    )
                if q_seen is not None and batch.shape[0] != q_seen:
                    raise Mat2GradError(
                        f"{what}: every cell element needs the same number of series (columns); "
                        f"found {q_seen} and {batch.shape[0]}"
                    )
                q_seen = batch.shape[0]
                steps.append(batch)
            out.append(np.ascontiguousarray(np.stack(steps, axis=1)) if steps else None)
        if ts == 0 and n:
            raise Mat2GradError(f"{what}: the time series has no time steps")
        return out, ts, False
    if n != 1:
        raise Mat2GradError(
            f"{what}: the network takes {n} signal(s), so the time series must be a {n} x TS "
            f"cell of matrices (one row per signal); found {describe(value)}"
        )
    if isinstance(value, str) or not (isinstance(value, np.ndarray) and value.dtype.kind in "biuf"):
        raise Mat2GradError(f"{what}: expected a cell or a numeric matrix, found {describe(value)}")
    arr = as_float(value, what)
    if arr.ndim != 2:
        raise Mat2GradError(f"{what}: expected a 2-D matrix, found {describe(value)}")
    seq = arr.T if samples == "columns" else arr  # (TS, R)
    if seq.shape[1] != sizes[0]:
        flip = "rows" if samples == "columns" else "columns"
        hint = (
            f"; if time runs down the rows, pass --samples {flip}"
            if seq.shape[0] == sizes[0]
            else ""
        )
        raise Mat2GradError(
            f"{what} is {arr.shape[0]}x{arr.shape[1]}: as one series it has {seq.shape[1]} "
            f"features per time step but the network takes {sizes[0]}{hint}"
        )
    return [np.ascontiguousarray(seq[None])], seq.shape[0], True


def states_from_matlab(
    value: Any,
    sizes: tuple[int, ...],
    depth: int,
    *,
    samples: str = "columns",
    what: str = "Xi",
) -> list[np.ndarray] | None:
    """MATLAB delay states (``Xi``: numInputs x ID cell, ``Ai``: numLayers x LD cell, of
    R x Q matrices, oldest first) -> one float64 ``(Q, depth, R_i)`` array per signal.

    ``None`` or an empty value means zero states (returns None). A plain ``R x depth``
    matrix is accepted for a single signal and one series.
    """
    if value is None or (isinstance(value, np.ndarray) and value.size == 0 and depth > 0):
        return None
    if depth == 0:
        return [np.zeros((1, 0, n)) for n in sizes]
    if isinstance(value, np.ndarray) and value.dtype == object:
        if value.shape != (len(sizes), depth):
            raise Mat2GradError(
                f"{what}: expected a {len(sizes)}x{depth} cell (one row per signal, one column "
                f"per delay, oldest first), found {describe(value)}"
            )
        arrays, _, _ = sequences_from_matlab(value, sizes, samples=samples, what=what)
        return arrays
    arrays, ts, _ = sequences_from_matlab(value, sizes, samples=samples, what=what)
    if ts != depth:
        raise Mat2GradError(f"{what}: expected {depth} delay column(s), found {ts}")
    return arrays


def sequences_to_matlab(
    seqs: list[np.ndarray], *, matrix: bool = False, samples: str = "columns"
) -> np.ndarray:
    """Batch-first ``(Q, TS, S_k)`` arrays -> MATLAB's numSignals x TS cell of S x Q
    matrices (Q x S with samples='rows'); a plain S x TS matrix (TS x S) when
    ``matrix`` is set and there is one signal and one series."""
    seqs = [np.asarray(s, dtype=np.float64) for s in seqs]
    if matrix and len(seqs) == 1 and seqs[0].shape[0] == 1:
        one = seqs[0][0]  # (TS, S)
        return np.ascontiguousarray(one.T if samples == "columns" else one)
    ts = seqs[0].shape[1] if seqs else 0
    cell = np.empty((len(seqs), ts), dtype=object)
    for k, s in enumerate(seqs):
        for t in range(ts):
            step = s[:, t, :]  # (Q, S)
            cell[k, t] = np.ascontiguousarray(step.T if samples == "columns" else step)
    return cell


def sequence_jacobian_to_matlab(block: np.ndarray) -> np.ndarray:
    """A ``(Q, TS, S, T2, R)`` Jacobian block -> MATLAB ``S x R x TS x T2 x Q`` so that
    ``J(:, :, t, u, q)`` is ``dY{t}(:, q) / dX{u}(:, q)`` (``T2`` = TS for the full form,
    lags+1 for the step form). MATLAB drops the trailing singleton when Q = 1."""
    return np.ascontiguousarray(np.transpose(np.asarray(block, dtype=np.float64), (2, 4, 1, 3, 0)))
