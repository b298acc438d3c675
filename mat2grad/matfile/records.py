"""Where things sit in a MATLAB network record: the MATLAB layout that reading one needs.

Cells are listed in MATLAB's column-major order, row indices are 1-based, and the stored
``exampleInput`` (``R x Q``, one column per sample) and ``range`` (``R x 2``, ``[min max]``)
keep MATLAB's orientation; :func:`example_samples` hands stored examples over batch-first.
Every such rule of the record reader is one function here.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ..errors import Mat2GradError
from .tree import as_float, describe

__all__ = [
    "cell_list",
    "cell_item",
    "cell_item2",
    "cell_item_or_none",
    "row_indices",
    "stored_example",
    "stored_range",
    "example_count",
    "example_samples",
]


class Context(Protocol):
    """Where in a record a value sits, for messages (the shallow reader's context)."""

    def err(self, what: str, message: str) -> Exception:
        """The error to raise for ``what``, saying ``message``."""


def cell_list(value: Any) -> list[Any]:
    """Elements of a cell in MATLAB (column-major) order; [] for an empty value."""
    if isinstance(value, np.ndarray) and value.dtype == object:
        return list(value.reshape(-1, order="F"))
    if value is None or (isinstance(value, np.ndarray) and value.size == 0):
        return []
    if isinstance(value, str):  # a single name stored as char (hand-made structs)
        return [value]
    return [value]


def cell_item(value: Any, k: int, ctx: Context, what: str) -> Any:
    """Element ``k`` (0-based, column-major) of a cell, ``what{k+1}``."""
    items = cell_list(value)
    if k >= len(items):
        raise ctx.err(what, f"expected at least {k + 1} elements, found {len(items)}")
    return items[k]


def cell_item2(value: Any, i: int, j: int, ctx: Context, what: str) -> Any:
    """Element ``what{i+1,j+1}`` of a 2-D cell (0-based ``i``, ``j``)."""
    if not (isinstance(value, np.ndarray) and value.dtype == object and value.ndim == 2):
        raise ctx.err(what, f"expected a cell array, found {describe(value)}")
    if i >= value.shape[0] or j >= value.shape[1]:
        raise ctx.err(
            what, f"is {value.shape[0]}x{value.shape[1]}, has no element {{{i + 1},{j + 1}}}"
        )
    return value[i, j]


def cell_item_or_none(value: Any, k: int) -> Any:
    """Element ``k`` of a cell (column-major), or None where the cell is shorter."""
    items = cell_list(value)
    return items[k] if k < len(items) else None


def row_indices(value: Any, n: int, ctx: Context, what: str) -> np.ndarray:
    """MATLAB's 1-based row numbers (of ``n`` rows) as 0-based int64 indices."""
    if value is None:
        return np.zeros(0, dtype=np.int64)
    arr = as_float(value, what).reshape(-1)
    if arr.size and (np.any(arr < 1) or np.any(arr > n) or np.any(arr != np.round(arr))):
        raise ctx.err(what, f"row indices must be whole numbers in 1..{n}")
    return arr.astype(np.int64) - 1


def stored_example(value: Any, size: int) -> np.ndarray | None:
    """``inputs{i}.exampleInput`` as stored, ``R x Q`` (MATLAB's orientation, storage dtype
    kept: cast when used), or None when absent or not ``size`` rows of samples."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and value.ndim == 2:
        if value.shape[0] == size and value.shape[1] > 0:
            return value
    return None


def stored_range(value: Any, size: int) -> np.ndarray | None:
    """An input's or output's ``range``, ``R x 2`` ``[min max]`` as stored, or None."""
    try:
        arr = as_float(value)
    except Mat2GradError:
        return None
    return arr if arr.shape == (size, 2) else None


def example_count(example: np.ndarray) -> int:
    """The number of samples Q of a stored ``exampleInput`` (``R x Q``)."""
    return int(example.shape[1])


def example_samples(example: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Samples ``idx`` (0-based) of a stored ``exampleInput`` (``R x Q``), batch-first
    ``(len(idx), R)`` float64, contiguous."""
    return np.ascontiguousarray(np.asarray(example[:, idx], dtype=np.float64).T)
