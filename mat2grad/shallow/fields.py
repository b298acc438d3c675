"""Readers of single fields of a MATLAB network record (names, counts, flags, matrices),
each with an error message that names the field."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import Mat2GradError
from ..matfile import MatStruct, as_float, as_text, describe
from .spec import Where

__all__ = [
    "text",
    "whole_number",
    "optional_int",
    "float_or",
    "bool_matrix",
    "matrix",
    "learn_flag",
    "perform_param",
]


def text(value: Any, what: str) -> str:
    """A function name or other text; ``''`` when absent (or malformed and ``what`` is
    empty)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    try:
        return as_text(value)
    except Mat2GradError:
        if what:
            raise Mat2GradError(
                f"{what}: expected a function name, found {describe(value)}"
            ) from None
        return ""


def whole_number(value: Any, ctx: Where, what: str) -> int:
    """One whole number >= 0 (a count or a size)."""
    try:
        arr = as_float(value, what).reshape(-1)
    except Mat2GradError:
        raise ctx.err(what, f"expected a whole number, found {describe(value)}") from None
    if arr.size != 1 or arr[0] != round(arr[0]) or arr[0] < 0:
        raise ctx.err(what, f"expected one whole number >= 0, found {arr[:4]}")
    return int(arr[0])


def optional_int(value: Any) -> int | None:
    if value is None:
        return None
    try:
        arr = as_float(value).reshape(-1)
    except Mat2GradError:
        return None
    return int(arr[0]) if arr.size else None


def float_or(value: Any, default: float) -> float:
    try:
        arr = as_float(value).reshape(-1)
    except Mat2GradError:
        return default
    return float(arr[0]) if arr.size else default


def bool_matrix(value: Any, shape: tuple[int, int], ctx: Where, what: str) -> np.ndarray:
    """A connection matrix (``biasConnect``, ``inputConnect``, ...) of the given shape."""
    arr = as_float(value, what)
    if arr.size == 0 and 0 in shape:
        return np.zeros(shape, dtype=bool)
    if arr.shape != shape:
        raise ctx.err(what, f"expected a {shape[0]}x{shape[1]} matrix, found {describe(value)}")
    return arr != 0


def matrix(value: Any, ctx: Where, what: str) -> np.ndarray:
    """A numeric 2-D matrix (a weight or bias) as float64."""
    if not (isinstance(value, np.ndarray) and value.dtype.kind in "biuf"):
        raise ctx.err(what, f"expected a numeric matrix, found {describe(value)}")
    arr = as_float(value, what)
    if arr.ndim != 2:
        raise ctx.err(what, f"expected a 2-D matrix, found {describe(value)}")
    return arr


def learn_flag(prop: Any) -> bool:
    """A weight's or bias's ``learn`` flag (absent, as in hand-made structs: True)."""
    if not isinstance(prop, MatStruct) or "learn" not in prop.fields:
        return True
    try:
        arr = as_float(prop["learn"]).reshape(-1)
    except Mat2GradError:
        return True
    return bool(arr[0]) if arr.size else True


def perform_param(value: Any) -> dict[str, Any]:
    """``performParam`` as a dict of texts, numbers and arrays (other fields skipped)."""
    out: dict[str, Any] = {}
    if isinstance(value, MatStruct):
        for k, v in value.fields.items():
            if isinstance(v, str):
                out[k] = v
            else:
                try:
                    arr = as_float(v).reshape(-1)
                    out[k] = float(arr[0]) if arr.size == 1 else arr
                except Mat2GradError:
                    continue
    return out
