"""Per-sample results written chunk by chunk into a MAT-file laid out up front, in MATLAB's
layout (see NOTE: [MATLAB layout of per-sample results]), so results larger than memory go
straight to disk."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Mat2GradError
from ._v73 import H5Writer, mat_header, open_h5, stamp_v73
from .atomic import replace_atomically, target_folder, temporary_beside
from .layout import SampleBlock, check_samples, float64_numpy
from .write import check_names, choose_format

__all__ = ["SampleWriter"]


class SampleWriter:
    """Write per-sample results into a MAT-file chunk by chunk, in MATLAB layout, so that
    results larger than memory can be written (memory is bounded by one chunk).

    Args:
        path: the MAT-file to write (atomically: a temporary file in the same folder is
            moved over it by :meth:`commit`; see NOTE: [Temporary files that cannot outlive
            the process]).
        num_samples: Q.
        variables: name -> per-sample shape (a tuple, or a :class:`SampleBlock` to place
            the sample index elsewhere), or a 2-D nested list of them for a cell
            (numOutputs x numInputs).
        samples: "columns" or "rows" (see NOTE: [MATLAB layout of per-sample results]): where
            the sample index goes for variables given by their shape alone.
        format: "auto" (v7.3 when a variable is over :func:`v73_threshold` bytes), "v7" or
            "v7.3".
        v73_threshold: overrides the threshold.

    Use as a context manager: the file appears only if the block completes::

        with SampleWriter("out.mat", q, {"J": (3, 10), "Y": (3,)}) as w:
            for start, J, Y in chunks:
                w.write(start, {"J": J, "Y": Y})     # J (c, 3, 10), Y (c, 3)

    v7 files are written uncompressed (float64 Jacobians are incompressible: zlib takes
    about 20x longer for 5% less) by a streaming MAT v5 writer; v7.3 files through h5py
    into preallocated datasets.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        num_samples: int,
        variables: Mapping[str, Any],
        *,
        samples: str = "columns",
        format: str = "auto",
        v73_threshold: int | None = None,
    ):
        self.path = Path(path)
        check_names(variables)
        target_folder(self.path)  # fail before any work if the folder is missing
        check_samples(samples)
        self.q = int(num_samples)
        self.samples = samples
        self.layout: dict[str, np.ndarray | SampleBlock] = {}
        sizes = {}
        for name, spec in variables.items():
            if isinstance(spec, list):
                grid = np.empty((len(spec), len(spec[0])), dtype=object)
                for k, row in enumerate(spec):
                    for j, shape in enumerate(row):
                        grid[k, j] = self._block(name, shape)
                self.layout[name] = grid
                sizes[name] = sum(8 * math.prod(b.shape) * self.q for b in grid.flat)
            else:
                self.layout[name] = self._block(name, spec)
                sizes[name] = 8 * math.prod(self.layout[name].shape) * self.q
        self.format = choose_format(format, sizes, v73_threshold, where=str(self.path))
        self._tmp = temporary_beside(self.path)
        self._done = False
        try:
            if self.format == "v7.3":
                self._backend: _V73Stream | _V5Stream = _V73Stream(self)
            else:
                self._backend = _V5Stream(self, self._tmp.fd)
        except BaseException:
            self._tmp.discard()
            raise

    def _block(self, name: str, spec: Any) -> SampleBlock:
        if isinstance(spec, SampleBlock):
            block = SampleBlock(tuple(int(d) for d in spec.shape), int(spec.axis))
            if not 0 <= block.axis <= len(block.shape or (1,)):
                raise Mat2GradError(
                    f"{self.path}: '{name}': sample axis {block.axis} is outside the "
                    f"dimensions {block.shape}"
                )
            return block
        shape = tuple(int(d) for d in spec)
        return SampleBlock(shape, len(shape or (1,)) if self.samples == "columns" else 0)

    def write(self, start: int, values: Mapping[str, Any]) -> None:
        """Write samples ``start:start+c`` of each variable: an array ``(c, *d)`` (numpy or
        torch), or nested lists ``[k][j]`` of them for a cell."""
        for name, value in values.items():
            layout = self.layout[name]
            if isinstance(layout, np.ndarray):
                for (k, j), shape in np.ndenumerate(layout):
                    self._write_block(name, (k, j), start, value[k][j], shape)
            else:
                self._write_block(name, None, start, value, layout)

    def _write_block(
        self, name: str, idx: tuple[int, int] | None, start: int, value: Any, block: SampleBlock
    ) -> None:
        arr = float64_numpy(value)
        c = arr.shape[0]
        shape = block.shape
        if tuple(arr.shape[1:]) != tuple(shape) or start < 0 or start + c > self.q:
            raise Mat2GradError(
                f"{self.path}: '{name}' chunk of shape {arr.shape} at sample {start} does not "
                f"fit {self.q} samples of shape {shape}"
            )
        self._backend.write(name, idx, start, arr.reshape(c, *(shape or (1,))), block.axis)

    def commit(self) -> Path:
        """Finish the file and move it into place."""

        def finish() -> None:
            self._backend.close()

        replace_atomically(self._tmp, finish)
        self._done = True
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; the target is left untouched."""
        if not self._done:
            try:
                self._backend.close()
            except Exception:
                pass
            self._tmp.discard()
            self._done = True

    def __enter__(self) -> SampleWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class _V73Stream:
    """Preallocated HDF5 datasets in MATLAB's layout; chunks are hyperslab writes."""

    def __init__(self, owner: SampleWriter):
        self.owner = owner
        self.fh = owner._tmp.file()
        self.h5 = open_h5(self.fh)
        writer = H5Writer(self.h5)
        self.dsets: dict[tuple[str, Any], Any] = {}
        q = owner.q
        for name, layout in owner.layout.items():
            if isinstance(layout, np.ndarray):
                makers = np.empty(layout.shape, dtype=object)
                for idx, block in np.ndenumerate(layout):

                    def make(
                        grp: Any, nm: str, name: str = name, idx: Any = idx, block: Any = block
                    ) -> Any:
                        dset = writer.create_numeric(grp, nm, block.dims(q), np.float64)
                        self.dsets[(name, idx)] = dset
                        return dset

                    makers[idx] = make
                writer.create_cell(self.h5, name, makers)
            else:
                self.dsets[(name, None)] = writer.create_numeric(
                    self.h5, name, layout.dims(q), np.float64
                )

    def write(self, name: str, idx: Any, start: int, arr: np.ndarray, axis: int) -> None:
        dset = self.dsets[(name, idx)]
        c = arr.shape[0]
        # MATLAB (*d[:axis], Q, *d[axis:]) is HDF5 (*reversed(d[axis:]), Q, *reversed(d[:axis])):
        # reverse each sample's axes and put the sample index after the outer ones
        outer = arr.ndim - 1 - axis
        rev = arr.transpose(0, *range(arr.ndim - 1, 0, -1))
        dset[(slice(None),) * outer + (slice(start, start + c),)] = np.moveaxis(rev, 0, outer)

    def close(self) -> None:
        if self.h5 is not None:
            self.h5.close()
            self.h5 = None
            stamp_v73(self.fh)
            self.fh.close()


# MAT v5 data types and array classes (MathWorks, "MAT-File Format", tables 1-2 and 1-3)
_MI_INT8, _MI_UINT32, _MI_INT32, _MI_DOUBLE, _MI_MATRIX = 1, 6, 5, 9, 14
_MX_CELL, _MX_DOUBLE = 1, 6


def _v5_element(mi_type: int, payload: bytes) -> bytes:
    """A data element: 8-byte tag, then the payload padded to a multiple of 8 bytes."""
    pad = (-len(payload)) % 8
    return (
        mi_type.to_bytes(4, "little") + len(payload).to_bytes(4, "little") + payload + b"\0" * pad
    )


def _v5_matrix_head(mx_class: int, dims: tuple[int, ...], name: str) -> bytes:
    """Array flags, dimensions and name subelements of a miMATRIX element."""
    if any(d >= 2**31 for d in dims):
        raise Mat2GradError(
            f"MAT v7 dimensions are limited to 2^31-1, found {dims}; use --format v7.3"
        )
    flags = _v5_element(_MI_UINT32, mx_class.to_bytes(4, "little") + b"\0" * 4)
    dim_bytes = b"".join(int(d).to_bytes(4, "little", signed=True) for d in dims)
    return flags + _v5_element(_MI_INT32, dim_bytes) + _v5_element(_MI_INT8, name.encode("ascii"))


class _V5Stream:
    """An uncompressed MAT v5 (v6/v7-readable) file laid out up front: headers are written
    once, data regions are filled by positioned writes (``os.pwrite``), so chunks may
    arrive in any order and nothing is held in memory."""

    def __init__(self, owner: SampleWriter, fd: int):
        self.owner = owner
        self.fd = fd
        self.regions: dict[tuple[str, Any], tuple[int, tuple[int, ...]]] = {}
        q = owner.q
        pos = 128
        os.pwrite(fd, mat_header(0x0100), 0)
        for name, layout in owner.layout.items():
            if isinstance(layout, np.ndarray):
                children = []
                for idx in np.ndindex(*layout.shape[::-1]):  # column-major cell order
                    idx = idx[::-1]
                    dims = layout[idx].dims(q)
                    children.append((idx, dims))
                cell_head = _v5_matrix_head(_MX_CELL, layout.shape, name)
                body = len(cell_head) + sum(
                    8 + len(_v5_matrix_head(_MX_DOUBLE, dims, "")) + 8 + 8 * math.prod(dims)
                    for _, dims in children
                )
                self._check_size(name, body)
                os.pwrite(fd, _MI_MATRIX.to_bytes(4, "little") + body.to_bytes(4, "little"), pos)
                os.pwrite(fd, cell_head, pos + 8)
                pos += 8 + len(cell_head)
                for idx, dims in children:
                    pos = self._matrix(name, idx, dims, "", pos)
            else:
                pos = self._matrix(name, None, layout.dims(q), name, pos)
        os.ftruncate(fd, pos)

    def _check_size(self, name: str, body: int) -> None:
        if body >= 2**32:
            raise Mat2GradError(
                f"{self.owner.path}: '{name}' is too large for a MAT v7 file; use --format v7.3"
            )

    def _matrix(self, name: str, idx: Any, dims: tuple[int, ...], label: str, pos: int) -> int:
        head = _v5_matrix_head(_MX_DOUBLE, dims, label)
        nbytes = 8 * math.prod(dims)
        body = len(head) + 8 + nbytes  # data is a multiple of 8 bytes: no padding
        self._check_size(name, body)
        os.pwrite(
            self.fd,
            _MI_MATRIX.to_bytes(4, "little")
            + body.to_bytes(4, "little")
            + head
            + _MI_DOUBLE.to_bytes(4, "little")
            + nbytes.to_bytes(4, "little"),
            pos,
        )
        data = pos + 8 + len(head) + 8
        self.regions[(name, idx)] = (data, dims)
        return data + nbytes

    def write(self, name: str, idx: Any, start: int, arr: np.ndarray, axis: int) -> None:
        offset, _dims = self.regions[(name, idx)]
        c = arr.shape[0]
        d = arr.shape[1:]
        axes = tuple(range(arr.ndim - 1, 0, -1))  # a sample's axes, reversed: column-major
        inner = math.prod(d[:axis])  # elements before the sample index in MATLAB's order
        if axis == len(d):
            # MATLAB (*d, Q): sample q's values are contiguous, in column-major order
            data = np.ascontiguousarray(arr.transpose(0, *axes), dtype="<f8")
            _pwrite_all(self.fd, data, offset + 8 * start * inner)
        else:
            # MATLAB (*d[:axis], Q, *d[axis:]): for each outer element o, the chunk is one
            # run of c * inner values (axis 0: element e of every sample, a run of c values)
            runs = np.ascontiguousarray(
                arr.transpose(*axes[: len(d) - axis], 0, *axes[len(d) - axis :]), dtype="<f8"
            ).reshape(-1, c * inner)
            for o in range(runs.shape[0]):
                _pwrite_all(self.fd, runs[o], offset + 8 * inner * (o * self.owner.q + start))

    def close(self) -> None:
        self.fd = None  # the descriptor belongs to the temporary file, which closes it


def _pwrite_all(fd: int, arr: np.ndarray, offset: int) -> None:
    view = memoryview(arr).cast("B")
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n
