"""The neutral tree: what a MAT-file's variables become, whichever reader decoded them.

* a 1x1 struct or old-style object  -> :class:`MatStruct` (``.fields``, ``.classname``)
* a struct array of any other shape -> :class:`MatStructArray` (object array of MatStruct)
* a cell array                      -> ``numpy.ndarray`` of dtype object, MATLAB shape kept
* numeric / logical                 -> ``numpy.ndarray``, at least 2-D, MATLAB shape kept,
  *storage dtype kept* (MATLAB stores whole numbers compactly: uint8, int16, ...; use
  :func:`as_float` to get float64; casting lazily keeps a 340x63159 uint8 example input at
  21 MB instead of 171 MB)
* char                              -> ``str`` (a char matrix becomes an object array of rows)
* anything that cannot be decoded   -> :class:`Opaque` (Java objects, function handles, ...)

Values of this tree are what :func:`~mat2grad.matfile.write_mat` writes back, too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import Mat2GradError

__all__ = [
    "MatStruct",
    "MatStructArray",
    "Opaque",
    "is_cell",
    "cell_elements",
    "as_float",
    "as_text",
    "describe",
    "size_text",
    "is_matlab_name",
    "is_sparse",
]


@dataclass
class MatStruct:
    """A 1x1 MATLAB struct, or an object (``classname`` set) stored as a struct."""

    fields: dict[str, Any]
    classname: str | None = None

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)

    def __contains__(self, name: str) -> bool:
        return name in self.fields

    def __repr__(self) -> str:  # keep reprs short: records hold megabytes
        names = list(self.fields)
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        return f"<{self.classname or 'struct'} with fields {shown}>"


@dataclass
class MatStructArray:
    """A struct array whose shape is not 1x1 (including empty struct arrays)."""

    items: np.ndarray  # object array of MatStruct, MATLAB shape
    classname: str | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.items.shape


@dataclass
class Opaque:
    """A value no reader could decode (a Java object, a function handle, an MCOS object
    mat-io could not read). Kept in the tree so a scan can report it and move on."""

    classname: str
    reason: str = ""


def as_float(value: Any, what: str = "value") -> np.ndarray:
    """Return a numeric or logical MATLAB value as a float64 array (shape kept)."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return np.asarray(value, dtype=np.float64)
    if isinstance(value, np.ndarray) and value.dtype.kind == "c":
        raise Mat2GradError(f"{what}: complex values are not supported; pass real data")
    if isinstance(value, bool | int | float):
        return np.array([[float(value)]])
    if is_sparse(value):
        return np.asarray(value.toarray(), dtype=np.float64)
    raise Mat2GradError(f"{what}: expected a numeric array, found {describe(value)}")


def as_text(value: Any) -> str:
    """Return a MATLAB char value as a Python str ('' for an empty array)."""
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray) and value.size == 0:
        return ""
    if isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        return as_text(value.flat[0])
    raise Mat2GradError(f"expected text, found {describe(value)}")


def describe(value: Any) -> str:
    """A short MATLAB-flavoured description of a tree value, for error messages."""
    if isinstance(value, MatStruct):
        return f"a 1x1 {value.classname or 'struct'}"
    if isinstance(value, MatStructArray):
        return f"a {size_text(value.shape)} {value.classname or 'struct'} array"
    if isinstance(value, Opaque):
        return f"an undecodable {value.classname} object"
    if isinstance(value, str):
        return f"char '{value[:40]}'"
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return f"a {size_text(value.shape)} cell"
        kind = {"b": "logical", "c": "complex"}.get(value.dtype.kind, _matlab_class(value.dtype))
        return f"a {size_text(value.shape)} {kind} array"
    return type(value).__name__


def size_text(shape: tuple[int, ...]) -> str:
    """MATLAB's way of writing a size: ``3x4x2`` (``1x1`` for a scalar)."""
    return "x".join(str(s) for s in shape) if shape else "1x1"


def _matlab_class(dtype: np.dtype) -> str:
    return {"float64": "double", "float32": "single"}.get(dtype.name, dtype.name)


def is_cell(value: Any) -> bool:
    """Whether a tree value is a MATLAB cell array (an object array)."""
    return isinstance(value, np.ndarray) and value.dtype == object


def cell_elements(value: Any) -> list[Any]:
    """The elements of a cell in MATLAB's linear order (column-major: ``C{1}, C{2}, ...``);
    a value that is not a cell is its own only element."""
    if is_cell(value):
        return list(value.reshape(-1, order="F"))
    return [value]


_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")


def is_matlab_name(name: str) -> bool:
    """Whether ``name`` is a valid MATLAB variable or field name (letters, digits,
    underscores, starting with a letter, at most 63 characters)."""
    return bool(_NAME.match(name))


def is_sparse(value: Any) -> bool:
    """Whether ``value`` is a scipy.sparse matrix (how scipy reads a MATLAB sparse array)."""
    try:
        import scipy.sparse as sp  # deferred: cuts start-up time
    except ImportError:  # pragma: no cover - scipy is a declared dependency
        return False
    return bool(sp.issparse(value))
