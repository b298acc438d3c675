"""Writing MAT-files.

``write_mat(path, variables)`` writes results atomically through
:mod:`mat2grad.matfile.atomic` (a temporary file in the target folder, moved over the target
when complete): a failed ``savemat`` leaves a truncated file, so the target is never touched
until the new file is complete. It writes v7 (scipy), or v7.3 (HDF5 in MATLAB's own layout,
see NOTE: [MAT v7.3 layout]) when a variable is over 2^31 bytes (``MAT2GRAD_V73_THRESHOLD``
lowers that for tests) or on request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Mat2GradError
from ._v73 import write_v73_file
from .atomic import replace_atomically, target_folder, temporary_beside
from .tree import is_matlab_name

__all__ = [
    "write_mat",
    "check_names",
    "MAT_FORMATS",
    "V7_MAX_BYTES",
    "v73_threshold",
    "variable_nbytes",
    "choose_format",
]

# --------------------------------------------------------------------------------------
# MAT-files
# --------------------------------------------------------------------------------------


def write_mat(
    path: str | os.PathLike[str],
    variables: Mapping[str, Any],
    *,
    compress: bool = True,
    format: str = "auto",
    v73_threshold: int | None = None,
) -> Path:
    """Write variables to a MAT-file, atomically.

    Values: numpy arrays (written as they are: float64 stays double), lists of arrays
    (written as a 1xN cell), 2-D object arrays (cells), dicts (structs), str (char).
    Names must be valid MATLAB identifiers of at most 63 characters.

    ``format``: ``"v7"`` (scipy; compressed unless ``compress=False``), ``"v7.3"`` (HDF5
    in MATLAB's layout, see NOTE: [MAT v7.3 layout]), or ``"auto"``: v7.3 when any variable
    is larger than ``v73_threshold`` bytes (default 2^31, MATLAB's limit for v7; the
    environment variable ``MAT2GRAD_V73_THRESHOLD`` lowers it, for tests), else v7.
    """
    path = Path(path)
    check_names(variables)
    target_folder(path)  # fail before any work if the folder is missing
    sizes = {name: variable_nbytes(value) for name, value in variables.items()}
    chosen = choose_format(format, sizes, v73_threshold, where=str(path))
    tmp = temporary_beside(path)

    def finish() -> None:
        if chosen == "v7.3":
            with tmp.file() as fh:
                write_v73_file(fh, variables)
        else:
            import scipy.io  # deferred: cuts start-up time for commands that write nothing

            payload = {name: _to_savemat(value) for name, value in variables.items()}
            with tmp.file() as fh:
                scipy.io.savemat(
                    fh,
                    payload,
                    format="5",
                    long_field_names=True,
                    do_compression=compress,
                    oned_as="column",
                )

    return replace_atomically(tmp, finish)


def check_names(variables: Mapping[str, Any]) -> None:
    """Refuse names MATLAB cannot load as variables."""
    for name in variables:
        if not is_matlab_name(name):
            raise Mat2GradError(
                f"'{name}' is not a valid MATLAB variable name (letters, digits, underscores, "
                "starting with a letter, at most 63 characters)"
            )


def _to_savemat(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            out = np.empty(value.shape, dtype=object)
            for idx, item in np.ndenumerate(value):
                out[idx] = _to_savemat(item)
            return out
        return value
    if isinstance(value, list | tuple):
        out = np.empty((1, len(value)), dtype=object)
        for k, item in enumerate(value):
            out[0, k] = _to_savemat(item)
        return out
    if isinstance(value, dict):
        return {k: _to_savemat(v) for k, v in value.items()}
    if isinstance(value, bool):
        return np.array([[value]])
    if isinstance(value, int | float):
        return np.array([[float(value)]])  # never int64 in MATLAB
    return value


# --------------------------------------------------------------------------------------
# Which MAT-file version to write
# --------------------------------------------------------------------------------------

#: MATLAB's limit for one variable in a v6/v7 MAT-file ("For variables larger than 2GB use
#: MAT-file version 7.3"); above it results are written as v7.3.
V7_MAX_BYTES = 2**31

#: ``format`` values accepted by :func:`write_mat` and :class:`SampleWriter`
MAT_FORMATS = ("auto", "v7", "v7.3")


def v73_threshold(value: int | None = None) -> int:
    """The size (bytes per variable) above which ``format="auto"`` writes v7.3: ``value``,
    else the environment variable ``MAT2GRAD_V73_THRESHOLD``, else 2^31."""
    if value is not None:
        return int(value)
    env = os.environ.get("MAT2GRAD_V73_THRESHOLD")
    if env:
        try:
            return int(float(env))
        except ValueError:
            raise Mat2GradError(
                f"MAT2GRAD_V73_THRESHOLD must be a number of bytes, found '{env}'"
            ) from None
    return V7_MAX_BYTES


def variable_nbytes(value: Any) -> int:
    """Bytes of data a value occupies in a MAT-file (cells and structs: their contents)."""
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return sum(variable_nbytes(v) for v in value.flat)
        return int(value.nbytes)
    if isinstance(value, Mapping):
        return sum(variable_nbytes(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(variable_nbytes(v) for v in value)
    if isinstance(value, str):
        return 2 * len(value)
    nbytes = getattr(value, "nbytes", None)  # torch tensors, scipy.sparse
    return int(nbytes) if isinstance(nbytes, int) else 8


def choose_format(
    format: str, sizes: Mapping[str, int], threshold: int | None = None, *, where: str = ""
) -> str:
    """Resolve ``format`` ("auto", "v7", "v7.3") for variables of the given sizes."""
    if format not in MAT_FORMATS:
        raise Mat2GradError(f"format must be one of {', '.join(MAT_FORMATS)}; found '{format}'")
    limit = v73_threshold(threshold)
    big = {n: b for n, b in sizes.items() if b > limit}
    if format == "auto":
        return "v7.3" if big else "v7"
    if format == "v7":
        too_big = {n: b for n, b in sizes.items() if b > V7_MAX_BYTES}
        if too_big:
            listed = ", ".join(f"{n} ({b / 2**30:.2f} GiB)" for n, b in too_big.items())
            raise Mat2GradError(
                f"{where + ': ' if where else ''}MAT v7 files hold at most 2 GiB per variable, "
                f"and {listed} is larger; write v7.3 instead (--format v7.3, or auto)"
            )
    return format
