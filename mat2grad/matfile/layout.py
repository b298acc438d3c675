"""MATLAB's shallow-network data layout: samples ``R x Q`` (one column per sample) <->
the library's batch-first ``(Q, R)``; per-sample results; error weights; weight cells.

The library speaks PyTorch (batch first); MAT-files speak MATLAB. Every conversion between
the two for shallow networks' samples and results is here (time series: :mod:`.sequences`;
the layouts of ONNX models' images and sequences: :mod:`.layout_kinds`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..arrays import to_numpy
from ..errors import Mat2GradError
from .tree import as_float, cell_elements, describe, is_cell

__all__ = [
    "SAMPLES",
    "check_samples",
    "matlab_shape",
    "SampleBlock",
    "per_sample_to_matlab",
    "results_to_matlab",
    "samples_from_matlab",
    "samples_to_matlab",
    "error_weights_from_matlab",
    "weight_cells",
    "column",
    "column_cell",
    "row_cell",
    "float64_numpy",
]

#: Where the sample index goes in a MATLAB matrix: "columns" (``R x Q``, MATLAB's
#: convention for shallow networks) or "rows" (``Q x R``).
SAMPLES = ("columns", "rows")


def float64_numpy(value: Any) -> np.ndarray:
    """A tensor (any device, with or without grad) or array-like as a float64 numpy array."""
    return np.asarray(to_numpy(value), dtype=np.float64)


def check_samples(samples: str) -> None:
    """Refuse a ``samples`` value that is not one of :data:`SAMPLES`."""
    if samples not in SAMPLES:
        raise Mat2GradError(f"samples must be 'columns' or 'rows', not '{samples}'")


# NOTE: [MATLAB layout of per-sample results]
#     The library is batch-first: a result is (Q, *d) with d the per-sample shape (outputs
#     (S,), Jacobians (S, R), Hessians (R, R)). In a MAT-file, with samples="columns"
#     (MATLAB's shallow-network convention) the sample index moves last: MATLAB array
#     (*d, Q), so that J(:,:,q) = dY(:,q)/dX(:,q) and J(s+1, r+1, q+1) = J_batch[q, s, r];
#     Y is S x Q, H is R x R x Q. With samples="rows" the batch-first shape is kept:
#     Q x S x R, Q x S. A per-sample scalar (d = ()) is 1 x Q (columns) or Q x 1 (rows).
#     Several outputs/inputs: a numOutputs x numInputs cell of such blocks (outputs:
#     numOutputs x 1).


def matlab_shape(per_sample: tuple[int, ...], q: int, samples: str = "columns") -> tuple[int, ...]:
    """The MATLAB dimensions of ``q`` samples of per-sample shape ``per_sample``."""
    check_samples(samples)
    d = tuple(per_sample) or (1,)
    return (*d, q) if samples == "columns" else (q, *d)


@dataclass(frozen=True)
class SampleBlock:
    """A :class:`SampleWriter` variable whose sample index sits at MATLAB axis ``axis`` of
    the written array instead of last (or first): ``shape`` is one sample's MATLAB
    dimensions, and the array is ``(*shape[:axis], Q, *shape[axis:])``. A sequence
    ``C x N x T`` (MATLAB's CBT order) is ``SampleBlock((C, T), 1)``; chunks are still
    written batch-first, ``(c, *shape)``."""

    shape: tuple[int, ...]
    axis: int

    def dims(self, q: int) -> tuple[int, ...]:
        """The MATLAB dimensions of the whole variable for ``q`` samples."""
        d = tuple(self.shape) or (1,)
        return (*d[: self.axis], q, *d[self.axis :])


def per_sample_to_matlab(batch: Any, samples: str = "columns") -> np.ndarray:
    """A batch-first ``(Q, *d)`` array -> its MATLAB layout (see NOTE: [MATLAB layout
    of per-sample results]) as a float64 numpy array that savemat writes index-for-index."""
    arr = float64_numpy(batch)
    if arr.ndim == 1:
        arr = arr[:, None]
    check_samples(samples)
    return np.moveaxis(arr, 0, -1) if samples == "columns" else arr


def results_to_matlab(results: Any, samples: str = "columns") -> Any:
    """A batch-first result, or nested tuples of them (``J[k][j]``, ``Y[k]``), in MATLAB
    layout: an array, or a cell (numOutputs x numInputs; numOutputs x 1 for a flat tuple)."""
    if not isinstance(results, tuple | list):
        return per_sample_to_matlab(results, samples)
    rows = [r if isinstance(r, tuple | list) else (r,) for r in results]
    cell = np.empty((len(rows), len(rows[0])), dtype=object)
    for k, row in enumerate(rows):
        for j, item in enumerate(row):
            cell[k, j] = per_sample_to_matlab(item, samples)
    return cell


def samples_from_matlab(
    value: Any,
    sizes: tuple[int, ...],
    *,
    samples: str = "columns",
    what: str = "inputs",
    size_names: Sequence[str] | None = None,
) -> list[np.ndarray]:
    """MATLAB data -> one float64 ``(Q, R_j)`` array per network input.

    ``value`` is an ``R x Q`` matrix (``samples='columns'``, MATLAB's convention) or ``Q x R``
    (``samples='rows'``); for several inputs, a cell with one such matrix per input. The
    same serves targets (one ``S_k x Q`` matrix per output): ``size_names`` then names the
    sizes in messages (default ``inputs{j}.size``).
    """
    check_samples(samples)
    parts = cell_elements(value)
    if len(parts) != len(sizes):
        raise Mat2GradError(
            f"{what}: the network has {len(sizes)} inputs, so it needs a cell array with "
            f"{len(sizes)} matrices (one per input); found {describe(value)}"
        )
    out = []
    q_seen = None
    for j, (part, size) in enumerate(zip(parts, sizes, strict=True)):
        label = what if len(sizes) == 1 else f"{what}{{{j + 1}}}"
        if isinstance(part, str) or not isinstance(part, np.ndarray) or part.dtype == object:
            raise Mat2GradError(f"{label}: expected a numeric matrix, found {describe(part)}")
        arr = as_float(part, label)
        if arr.ndim != 2:
            raise Mat2GradError(f"{label}: expected a 2-D matrix, found {describe(part)}")
        rows, cols = arr.shape
        feat = rows if samples == "columns" else cols
        if feat != size:
            other = "rows" if samples == "columns" else "columns"
            hint = ""
            alt = cols if samples == "columns" else rows
            if alt == size:
                flip = "rows" if samples == "columns" else "columns"
                hint = f"; if samples are stored in {flip}, pass --samples {flip}"
            size_name = size_names[j] if size_names else f"inputs{{{j + 1}}}.size"
            raise Mat2GradError(
                f"{label} has {feat} {other} but the network takes {size} ({size_name}){hint}"
            )
        batch = arr.T if samples == "columns" else arr
        if batch.shape[0] == 0:
            raise Mat2GradError(f"{label}: no samples (the matrix is {rows}x{cols})")
        if q_seen is not None and batch.shape[0] != q_seen:
            raise Mat2GradError(
                f"{what}: every input needs the same number of samples; found {q_seen} and "
                f"{batch.shape[0]}"
            )
        q_seen = batch.shape[0]
        out.append(np.ascontiguousarray(batch))
    return out


def samples_to_matlab(batch: np.ndarray, samples: str = "columns") -> np.ndarray:
    """A batch-first ``(Q, S)`` array -> MATLAB ``S x Q`` (or ``Q x S`` for 'rows')."""
    batch = np.asarray(batch, dtype=np.float64)
    return np.ascontiguousarray(batch.T) if samples == "columns" else np.ascontiguousarray(batch)


def error_weights_from_matlab(
    value: Any, num_outputs: int, *, samples: str = "columns", what: str = "error weights"
) -> list[np.ndarray]:
    """MATLAB error weights ``EW`` -> one batch-first array per output, broadcastable to
    ``(Q, S_k)``.

    MATLAB's ``EW`` is a scalar, ``1 x Q`` (per sample), ``S x 1`` (per row) or ``S x Q``
    (MATLAB's ``perform``); with ``samples='rows'`` the same transposed. A cell holds one such
    array per output (or a single array applies to every output).
    """
    check_samples(samples)
    parts = cell_elements(value) if is_cell(value) else [value] * num_outputs
    if len(parts) != num_outputs:
        raise Mat2GradError(
            f"{what}: the network has {num_outputs} outputs; give a cell with one array per "
            f"output, found {describe(value)}"
        )
    out = []
    for k, part in enumerate(parts):
        label = what if num_outputs == 1 else f"{what}{{{k + 1}}}"
        if isinstance(part, str) or not isinstance(part, np.ndarray) or part.dtype == object:
            raise Mat2GradError(f"{label}: expected a numeric array, found {describe(part)}")
        arr = as_float(part, label)
        if arr.ndim != 2:
            raise Mat2GradError(f"{label}: expected a 2-D array, found {describe(part)}")
        out.append(np.ascontiguousarray(arr.T if samples == "columns" else arr))
    return out


def weight_cells(shape: tuple[int, int], blocks: Mapping[tuple[int, int], Any]) -> np.ndarray:
    """Weight or bias blocks keyed by MATLAB's 1-based ``(i, j)`` -> a MATLAB cell array of
    ``shape`` (like ``net.IW``, ``net.LW``, or ``net.b`` with ``j = 1``), holding ``[]``
    (0x0 double) where nothing is connected. 1-D blocks (biases) become ``S x 1`` columns;
    everything is written as double."""
    cells = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        cells[idx] = np.zeros((0, 0))
    for (i, j), block in blocks.items():
        arr = np.asarray(block, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr.reshape(-1, 1)
        cells[i - 1, j - 1] = np.ascontiguousarray(arr)
    return cells


def column(vector: Any) -> np.ndarray:
    """A vector -> a MATLAB ``n x 1`` double column (``getwb`` returns columns)."""
    return np.asarray(vector, dtype=np.float64).reshape(-1, 1)


def column_cell(items: Sequence[Any]) -> np.ndarray:
    """Values -> a MATLAB ``n x 1`` cell holding them (one per output or input)."""
    cell = np.empty((len(items), 1), dtype=object)
    for k, item in enumerate(items):
        cell[k, 0] = item
    return cell


def row_cell(items: Sequence[Any]) -> np.ndarray:
    """Values -> a MATLAB ``1 x n`` cell holding them (names for ``array2table``, say)."""
    cell = np.empty((1, len(items)), dtype=object)
    for i, item in enumerate(items):
        cell[0, i] = item
    return cell
