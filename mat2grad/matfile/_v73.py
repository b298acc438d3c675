"""MAT v7.3 (HDF5) files in MATLAB's own layout, and the 128-byte MAT-file header.

Private to :mod:`mat2grad.matfile`: :func:`~mat2grad.matfile.write_mat` and
:class:`~mat2grad.matfile.SampleWriter` write v7.3 files through it (see NOTE: [MAT v7.3
layout]).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Mapping
from typing import IO, Any

import numpy as np

from .._version import __version__
from ..errors import Mat2GradError
from .tree import is_matlab_name

__all__ = ["H5Writer", "mat_header", "open_h5", "stamp_v73", "write_v73_file"]

# NOTE: [MAT v7.3 layout]
#     A v7.3 MAT-file is an HDF5 file with a 512-byte user block holding MATLAB's 128-byte
#     header (116 bytes of text, 8 bytes subsystem offset, version 0x0200, 'IM'). Every
#     variable is an HDF5 object at the root carrying a ``MATLAB_class`` attribute (a
#     fixed-length ASCII string: double, single, int8 ... uint64, logical, char, cell,
#     struct). HDF5 is row-major and MATLAB column-major, so the bytes are the same and
#     only the shape is reversed: MATLAB S x R x Q is dataset shape (Q, R, S). logical is
#     stored as uint8 with ``MATLAB_int_decode = 1``, char as uint16 with
#     ``MATLAB_int_decode = 2``; an empty array is a uint64 vector of its dimensions with
#     ``MATLAB_empty = 1``. A cell is a dataset of object references (shape reversed) to
#     datasets in the group ``/#refs#``; a 1x1 struct is a group with a ``MATLAB_fields``
#     attribute (variable-length arrays of single characters). This is what MATLAB itself
#     writes (and the layout of the C matio library's mat73.c, whose files MATLAB
#     loads). Octave cannot read v7.3 files reliably: the
#     Octave path stays on v7.

_H5_CLASS = {
    "float64": "double",
    "float32": "single",
    "int8": "int8",
    "uint8": "uint8",
    "int16": "int16",
    "uint16": "uint16",
    "int32": "int32",
    "uint32": "uint32",
    "int64": "int64",
    "uint64": "uint64",
}


def mat_header(version: int) -> bytes:
    """MATLAB's 128-byte MAT-file header (version 0x0100 = v5/v7, 0x0200 = v7.3)."""
    stamp = time.strftime("%a %b %d %H:%M:%S %Y")
    kind = "7.3" if version == 0x0200 else "5.0"
    text = (
        f"MATLAB {kind} MAT-file, Platform: {platform.system()}, Created on: {stamp} "
        f"by mat2grad {__version__}"
    )
    if version == 0x0200:
        text += " HDF5 schema 1.00 ."
    head = text.encode("ascii", "replace")[:116].ljust(116, b" ")
    return head + b"\0" * 8 + version.to_bytes(2, "little") + b"IM"


class H5Writer:
    """Writes values into an open h5py file following NOTE: [MAT v7.3 layout]."""

    def __init__(self, h5: Any):
        self.h5 = h5
        self._refs = 0

    def _refs_group(self) -> Any:
        return self.h5.require_group("#refs#")

    def next_ref_name(self) -> str:
        # MATLAB names them a, b, ..., z, A, ..., Z, aa, ab, ...
        letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
        k, name = self._refs, ""
        self._refs += 1
        while True:
            name = letters[k % 52] + name
            k = k // 52 - 1
            if k < 0:
                return name

    @staticmethod
    def set_class(obj: Any, classname: str) -> None:
        obj.attrs.create("MATLAB_class", np.bytes_(classname))

    def create_numeric(self, parent: Any, name: str, shape: tuple[int, ...], dtype: Any) -> Any:
        """An empty (preallocated) numeric dataset of MATLAB shape ``shape``."""
        dset = parent.create_dataset(name, shape=tuple(reversed(shape)), dtype=dtype)
        self.set_class(dset, _H5_CLASS[np.dtype(dtype).name])
        return dset

    def create_cell(self, parent: Any, name: str, items: np.ndarray) -> Any:
        """A cell of MATLAB shape ``items.shape`` whose elements are written by
        ``items[idx](refs_group, ref_name)`` callables returning the HDF5 object."""
        import h5py  # deferred: cuts start-up time; only v7.3 files need it

        refs = np.empty(items.shape, dtype=h5py.ref_dtype)
        for idx in np.ndindex(items.shape):
            obj = items[idx](self._refs_group(), self.next_ref_name())
            refs[idx] = obj.ref
        dset = parent.create_dataset(name, data=refs.T, dtype=h5py.ref_dtype)
        self.set_class(dset, "cell")
        return dset

    def write(self, parent: Any, name: str, value: Any) -> Any:
        """Write one value (the types :func:`write_mat` accepts)."""
        import h5py  # deferred: cuts start-up time; only v7.3 files need it

        if isinstance(value, Mapping):
            group = parent.create_group(name)
            for key, item in value.items():
                if not is_matlab_name(str(key)):
                    raise Mat2GradError(f"'{key}' is not a valid MATLAB struct field name")
                self.write(group, str(key), item)
            self.set_class(group, "struct")
            fields = np.empty(len(value), dtype=h5py.vlen_dtype(np.dtype("S1")))
            for k, key in enumerate(value):
                fields[k] = np.array([c.encode("ascii") for c in str(key)], dtype="S1")
            group.attrs.create("MATLAB_fields", fields)
            return group
        if isinstance(value, list | tuple):
            cell = np.empty((1, len(value)), dtype=object)
            for k, item in enumerate(value):
                cell[0, k] = item
            value = cell
        if isinstance(value, str):
            codes = np.frombuffer(value.encode("utf-16-le"), dtype="<u2").reshape(1, -1)
            if codes.size == 0:
                return self._empty(parent, name, (0, 0), "char")
            dset = parent.create_dataset(name, data=codes.T)
            self.set_class(dset, "char")
            dset.attrs.create("MATLAB_int_decode", np.int32(2))
            return dset
        if isinstance(value, bool | int | float | np.number | np.bool_):
            value = np.array([[value]], dtype=bool if isinstance(value, bool | np.bool_) else None)
            if value.dtype.kind in "iu" and not isinstance(value.flat[0], np.integer):
                value = value.astype(np.float64)  # never int64 in MATLAB
        if not isinstance(value, np.ndarray):
            value = getattr(value, "numpy", lambda: value)()
        if not isinstance(value, np.ndarray):
            raise Mat2GradError(f"cannot write {type(value).__name__} to a MAT-file")
        if value.ndim < 2:
            value = value.reshape(-1, 1)  # 1-D as a column, like write_mat's v7 path
        if value.dtype == object:
            if value.size == 0:
                return self._empty(parent, name, value.shape, "cell")
            makers = np.empty(value.shape, dtype=object)
            for idx, item in np.ndenumerate(value):
                makers[idx] = lambda grp, nm, item=item: self.write(grp, nm, item)
            return self.create_cell(parent, name, makers)
        if value.dtype.kind == "b":
            if value.size == 0:
                return self._empty(parent, name, value.shape, "logical")
            dset = parent.create_dataset(name, data=value.astype(np.uint8).T)
            self.set_class(dset, "logical")
            dset.attrs.create("MATLAB_int_decode", np.int32(1))
            return dset
        if value.dtype.name not in _H5_CLASS:
            raise Mat2GradError(
                f"cannot write a {value.dtype} array to a MAT-file (real numeric or logical only)"
            )
        if value.size == 0:
            return self._empty(parent, name, value.shape, _H5_CLASS[value.dtype.name])
        dset = parent.create_dataset(name, data=np.ascontiguousarray(value.T))
        self.set_class(dset, _H5_CLASS[value.dtype.name])
        return dset

    def _empty(self, parent: Any, name: str, shape: tuple[int, ...], classname: str) -> Any:
        dset = parent.create_dataset(name, data=np.array(shape, dtype=np.uint64))
        self.set_class(dset, classname)
        dset.attrs.create("MATLAB_empty", np.uint8(1))
        return dset


def open_h5(fh: IO[bytes]) -> Any:
    """A new HDF5 file, written through the open binary file ``fh`` (a temporary that may
    have no name, see NOTE: [Temporary files that cannot outlive the process]), with room for
    the MAT-file header (:func:`stamp_v73` writes it)."""
    try:
        import h5py  # deferred: cuts start-up time; only v7.3 files need it
    except ImportError:  # pragma: no cover - a declared dependency
        raise Mat2GradError("writing MAT v7.3 files needs the package h5py") from None
    return h5py.File(fh, "w", userblock_size=512, libver="earliest")


def stamp_v73(fh: IO[bytes]) -> None:
    """Write MATLAB's v7.3 header into the user block of a file whose HDF5 file is closed."""
    fh.seek(0)
    fh.write(mat_header(0x0200))
    fh.flush()


def write_v73_file(fh: IO[bytes], variables: Mapping[str, Any]) -> None:
    """Write ``variables`` (the values :func:`~mat2grad.matfile.write_mat` takes) as a
    complete v7.3 file through the open binary file ``fh``."""
    with open_h5(fh) as h5:
        writer = H5Writer(h5)
        for name, value in variables.items():
            writer.write(h5, name, value)
    stamp_v73(fh)
