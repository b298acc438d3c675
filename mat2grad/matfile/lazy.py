"""A MATLAB matrix in a MAT v7.3 (HDF5) file, read lazily as batch-first samples.

:class:`V73Samples` looks like an array (``shape``, ``dtype``, ``ndim``, ``__getitem__``)
and reads only the rows asked for, opening the file by its path on each read: it pickles as
(path, variable) and so travels to the worker processes of a cluster, which read their own
blocks (``dask.array.from_array(V73Samples(...), chunks=...)``).

NOTE: [v7.3 variables are batch-first]
    HDF5 stores dimensions in C order and MATLAB in Fortran order, so MATLAB writes a v7.3
    variable with its dimensions reversed: an ``R x Q`` matrix (one sample per column,
    ``samples="columns"``) is an HDF5 dataset of shape ``(Q, R)``, already batch-first with
    each sample contiguous on disk; a ``Q x R`` matrix (``samples="rows"``) is ``(R, Q)`` and
    is transposed here, block by block.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import Mat2GradError
from .layout import check_samples

__all__ = ["V73Samples", "is_v73"]

#: the MATLAB classes read as numbers
_NUMERIC = ("double", "single", "int8", "uint8", "int16", "uint16", "int32", "uint32")


def is_v73(path: str | os.PathLike[str]) -> bool:
    """True for a MAT v7.3 file (an HDF5 file with MATLAB's 512-byte header)."""
    with open(path, "rb") as fh:
        head = fh.read(520)
    return len(head) >= 520 and head[512:520] == b"\x89HDF\r\n\x1a\n"


class V73Samples:
    """A numeric 2-D MATLAB variable of a v7.3 file as ``(Q, R)`` samples (see NOTE: [v7.3
    variables are batch-first]).

    Args:
        path: the MAT-file.
        variable: its name, or a struct field path (``data.X``).
        samples: ``"columns"`` (``R x Q``, MATLAB's convention) or ``"rows"`` (``Q x R``).

    Raises:
        Mat2GradError: not a v7.3 file, no such variable, or not a real numeric matrix.
    """

    def __init__(self, path: str | os.PathLike[str], variable: str, samples: str = "columns"):
        check_samples(samples)
        self.path = os.fspath(path)
        self.variable = variable
        self.samples = samples
        if not is_v73(self.path):
            raise Mat2GradError(
                f"{self.path}: not a MAT v7.3 file; read it whole (mat2grad.matfile.read_mat) "
                "or save it with save(..., '-v7.3') for lazy reading"
            )
        with self._open() as h5:
            ds = self._dataset(h5)
            cls = ds.attrs.get("MATLAB_class", b"")
            cls = cls.decode() if isinstance(cls, bytes) else str(cls)
            if cls not in _NUMERIC or ds.ndim != 2 or ds.dtype.kind not in "iuf":
                raise Mat2GradError(
                    f"{self.path}: '{variable}' is a {cls or ds.dtype} array of "
                    f"{ds.ndim} dimensions; lazy reading takes a real numeric matrix "
                    "(R x Q, or Q x R with samples='rows')"
                )
            stored = tuple(int(n) for n in ds.shape)
        self._transposed = samples == "rows"
        self.shape = stored[::-1] if self._transposed else stored
        self.dtype = np.dtype(np.float64)
        self.ndim = 2

    def _open(self) -> Any:
        import h5py  # deferred: only lazy v7.3 reads need it (start-up time)

        return h5py.File(self.path, "r")

    def _dataset(self, h5: Any) -> Any:
        name = "/" + self.variable.replace(".", "/")
        if name not in h5:
            names = ", ".join(k for k in h5 if not k.startswith("#")) or "none"
            raise Mat2GradError(
                f"{self.path}: no variable '{self.variable}' (variables: {names}); pass "
                "the name of the inputs matrix"
            )
        return h5[name]

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (2 - len(key))
        with self._open() as h5:
            ds = self._dataset(h5)
            if self._transposed:  # see NOTE: [v7.3 variables are batch-first]
                return np.asarray(ds[key[1], key[0]], dtype=np.float64).T
            return np.asarray(ds[key], dtype=np.float64)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"V73Samples({self.path!r}, {self.variable!r}, shape={self.shape})"
