"""MATLAB values as MATLAB's Python interface (``py.``) hands them over, and results back in
the form it turns into MATLAB values.

MATLAB passes a matrix as a ``memoryview`` with column-major strides (or a numpy array), a
row vector as a 1-D ``array.array``, a scalar as a ``float``, and a cell as a tuple (of row
tuples). It turns a float64 numpy array into a ``double`` with ``double(...)`` and a list of
lists into a 2-D cell. These values keep MATLAB's layout: the functions here only give them
(and take them back in) the shapes a MAT-file would hold.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import Mat2GradError
from .tree import as_float

__all__ = [
    "array_from_python",
    "cell_from_python",
    "matrix_from_python",
    "outputs_to_python",
    "result_to_python",
    "value_from_python",
]


def value_from_python(value: Any, name: str) -> np.ndarray:
    """A data variable as MATLAB hands it over -> a matrix, or a cell."""
    if isinstance(value, list | tuple):
        return cell_from_python(value, name)
    return matrix_from_python(value, name)


def cell_from_python(items: list[Any] | tuple[Any, ...], name: str) -> np.ndarray:
    """A MATLAB cell sent as a tuple of row tuples -> a cell (object array) of that shape;
    a flat tuple/list of matrices -> an N x 1 cell (one matrix per input or output)."""
    rows = [list(r) if isinstance(r, list | tuple) else [r] for r in items]
    if rows and not all(isinstance(r, list | tuple) for r in items):
        rows = [[r] for r in items]
    width = max((len(r) for r in rows), default=0)
    if any(len(r) != width for r in rows):
        raise Mat2GradError(f"{name}: the rows of the cell have different lengths")
    cell = np.empty((len(rows), width), dtype=object)
    for i, row in enumerate(rows):
        for j, item in enumerate(row):
            cell[i, j] = matrix_from_python(item, f"{name}{{{i + 1},{j + 1}}}")
    return cell


def array_from_python(x: Any, what: str, onnx: bool) -> np.ndarray:
    """One array as MATLAB hands it over: a float64 matrix for a MATLAB network; for an
    ONNX model its own type (integer inputs stay integers), a 1-D array as 1 x N."""
    if not onnx:
        return matrix_from_python(x, what)
    value = np.asarray(x)
    return value.reshape(1, -1) if value.ndim < 2 and value.dtype != object else value


def matrix_from_python(x: Any, what: str) -> np.ndarray:
    """A numeric value as MATLAB hands it over -> a float64 matrix (a scalar 1 x 1, a
    1-D buffer a 1 x N row vector)."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise Mat2GradError(
            f"{what}: expected a real numeric matrix, found {type(x).__name__}"
        ) from None
    if arr.ndim == 0:
        return arr.reshape(1, 1)
    if arr.ndim == 1:  # MATLAB passes a 1 x N row vector as a 1-D buffer
        return arr.reshape(1, -1)
    return arr


def result_to_python(value: Any) -> Any:
    """A result variable, in MATLAB's layout -> float64 arrays (a scalar 1 x 1), lists of
    rows for cells (MATLAB converts a list of lists into a 2-D cell), and dicts for structs
    (sens's S; MATLAB's ``struct(d)`` converts them)."""
    if isinstance(value, dict):
        return {name: result_to_python(item) for name, item in value.items()}
    if isinstance(value, np.ndarray) and value.dtype == object:
        return [[result_to_python(item) for item in row] for row in value]
    if isinstance(value, str):
        return value
    arr = as_float(value, "result")
    return arr.reshape(1, 1) if arr.ndim == 0 else arr


def outputs_to_python(y: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
    """Outputs ``Y`` as a MAT-file holds them -> the array, or a tuple of arrays for a
    numOutputs x 1 cell."""
    return tuple(y[:, 0]) if y.dtype == object else y
