"""Validating a MAT-file's bytes before a decoder (scipy, mat-io) sees them.

scipy's MAT-5 reader is written in C (Cython) and trusts the file: a corrupt dimension, class
or sparse index can crash the process, and a tiny file can declare a cell of millions of
elements. :func:`validate_mat` walks the whole element stream first and turns every
inconsistency into ``Mat2GradError("FILE: the MAT-file is corrupt: <what, where>; ...")``;
only a file whose every size is backed by bytes actually present reaches the decoder. See
NOTE: [MAT-5 element stream].
"""

from __future__ import annotations

import math
import mmap
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import Mat2GradError

__all__ = ["MAX_INFLATION", "validate_mat", "validate_mat4", "validate_mat5", "validate_v73"]

# NOTE: [MAT-5 element stream]
#     After the 128-byte header (116 bytes text, 8 bytes subsystem offset, version 0x0100,
#     endian indicator 'IM' little / 'MI' big) a MAT-5 file is a sequence of data elements.
#     Each starts with an 8-byte tag: data type (uint32) and byte count (uint32), then the
#     data padded to 8 bytes. Small-element format: when the upper 16 bits of the first word
#     are non-zero they hold the byte count (at most 4), the lower 16 bits the type, and the
#     data sits in the tag's last 4 bytes. A top-level element is miMATRIX (14) or
#     miCOMPRESSED (15: a zlib stream holding one miMATRIX element, not padded). A miMATRIX
#     holds sub-elements: array flags (miUINT32, 8 bytes: class in the low byte, complex
#     0x800, global 0x400, logical 0x200; then nzmax), dimensions (miINT32, >= 2 of them),
#     the name (miINT8), then by class:
#       numeric (6-15)  real part, imaginary part if complex, prod(dims) values each;
#       char (4)        one element of prod(dims) characters;
#       sparse (5)      ir (row indices), jc (N+1 column starts), pr (values), pi if complex;
#       cell (1)        prod(dims) miMATRIX elements;
#       struct (2)      field-name length (miINT32, 1 value), the names (miINT8, length
#                       each, NUL padded), then prod(dims) x fields miMATRIX elements;
#       object (3)      the class name (miINT8), then as struct;
#       function (16)   one miMATRIX element;
#       opaque (17)     no dims or name: three miINT8 strings, then one miMATRIX element.
#     A miMATRIX element with byte count 0 is an empty array.

# zlib's deflate cannot compress by more than 1032:1; a stream that inflates further is
# corrupt (or built to exhaust memory).
MAX_INFLATION = 1032
MAX_DEPTH = 100  # nesting of cells/structs; the decoder recurses once per level
MAX_DIMS = 32  # numpy's limit, and scipy's
MAX_FIELD_NAME = 4096  # MATLAB's field names have at most 63 characters

_MI_ITEMSIZE = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 9: 8, 12: 8, 13: 8, 16: 1, 17: 2, 18: 4}
_NUMERIC_MI = {1, 2, 3, 4, 5, 6, 7, 9, 12, 13}
_TEXT_MI = {1, 2, 16}
_MATRIX, _COMPRESSED = 14, 15
_CELL, _STRUCT, _OBJECT, _CHAR, _SPARSE, _FUNCTION, _OPAQUE = 1, 2, 3, 4, 5, 16, 17
_NUMERIC_CLASSES = set(range(6, 16))


class _Corrupt(Exception):
    """Raised inside the walk; :func:`validate_mat5` adds the file name."""


def validate_mat(path: str | os.PathLike[str], version: str) -> None:
    """Validate a v4 or v5/v7 MAT-file's structure (``version`` as ``"4"`` or ``"5"``).

    Raises:
        Mat2GradError: the element stream is inconsistent (the message says what and where).
    """
    path = Path(path)
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            raise Mat2GradError(f"{path}: the file is empty; save the network again from MATLAB")
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            if version == "4":
                validate_mat4(memoryview(mm), path)
            else:
                validate_mat5(memoryview(mm), path)
        finally:
            try:
                mm.close()
            except BufferError:  # views still held by an error's traceback: closed with them
                pass


def _corrupt(path: object, what: str) -> Mat2GradError:
    return Mat2GradError(
        f"{path}: the MAT-file is corrupt: {what}; it is truncated or corrupt: copy it again, "
        "or save it again from MATLAB"
    )


def _not_v4(path: object, what: str) -> Mat2GradError:
    # a file without a v5/v7.3 header is taken for v4: most often it is no MAT-file at all
    name = Path(str(path)).name
    return Mat2GradError(
        f"{path}: not a MATLAB MAT-file (no MAT-file header, and not a valid v4 file: {what}); "
        f"save it in MATLAB with save('{name}', 'net', '-v7')"
    )


def validate_mat4(buf: memoryview, path: object = "file") -> None:
    """Validate a MAT v4 file: every 20-byte header and the data it announces."""
    pos, end = 0, len(buf)
    while pos < end:
        if end - pos < 20:
            raise _not_v4(path, f"{end - pos} stray bytes at offset {pos} (a v4 header has 20)")
        for order in "<>":
            mopt, mrows, ncols, imagf, namlen = np.frombuffer(buf[pos : pos + 20], order + "i4")
            if 0 <= mopt <= 4052 and (mopt // 100) % 10 == 0:
                break
        else:
            raise _not_v4(path, f"the v4 header at offset {pos} has type code {int(mopt)}")
        if min(mrows, ncols, namlen) < 0 or imagf not in (0, 1) or namlen > 64 * 1024:
            raise _not_v4(path, f"the v4 header at offset {pos} has impossible sizes")
        itemsize = (8, 4, 4, 2, 2, 1)[(mopt // 10) % 10] if (mopt // 10) % 10 <= 5 else 0
        if itemsize == 0 or mopt % 10 > 2:
            raise _not_v4(path, f"the v4 header at offset {pos} has type code {int(mopt)}")
        count = int(mrows) * int(ncols) * itemsize * (1 + int(imagf))
        pos += 20 + int(namlen)
        if count > end - pos:
            raise _not_v4(path, f"a v4 variable needs {count} bytes, {max(end - pos, 0)} remain")
        pos += count


def validate_mat5(buf: memoryview, path: object = "file") -> None:
    """Validate a MAT-5 (v6/v7) file's element stream; see NOTE: [MAT-5 element stream]."""
    if len(buf) < 128:
        raise _corrupt(path, f"it has {len(buf)} bytes, less than the 128-byte header")
    indicator = bytes(buf[126:128])
    if indicator not in (b"IM", b"MI"):
        raise _corrupt(path, f"the endian indicator is {indicator!r}, expected 'IM' or 'MI'")
    walker = _Walker("<" if indicator == b"IM" else ">", len(buf))
    pos = 128
    try:
        while pos < len(buf):
            pos = walker.top_level(buf, pos)
    except _Corrupt as exc:
        raise _corrupt(path, str(exc)) from None


class _Walker:
    def __init__(self, order: str, file_size: int):
        self.tag_words = struct.Struct(order + "II")
        self.u32 = np.dtype(order + "u4")
        self.i32 = np.dtype(order + "i4")
        self.order = order
        self.budget = MAX_INFLATION * file_size + 65536  # bytes all streams may inflate to

    # -- tags -------------------------------------------------------------------------------
    def tag(self, buf: memoryview, pos: int, end: int, where: str) -> tuple[int, int, int, int]:
        """(type, data start, byte count, next element's offset) of the element at ``pos``."""
        if end - pos < 8:
            raise _Corrupt(f"{where}: a tag needs 8 bytes, {end - pos} remain at offset {pos}")
        first, nbytes = self.tag_words.unpack_from(buf, pos)
        if first >> 16:
            nbytes = first >> 16
            if nbytes > 4:
                raise _Corrupt(f"{where}: small element of {nbytes} bytes at offset {pos}")
            return first & 0xFFFF, pos + 4, nbytes, pos + 8
        if nbytes > end - pos - 8:
            raise _Corrupt(
                f"{where}: element at offset {pos} declares {nbytes} bytes, {end - pos - 8} remain"
            )
        return first, pos + 8, nbytes, min(pos + 8 + nbytes + (-nbytes % 8), end)

    def typed(self, buf, pos, end, where, allowed) -> tuple[int, memoryview, int]:
        mdtype, start, nbytes, nxt = self.tag(buf, pos, end, where)
        if mdtype not in allowed:
            raise _Corrupt(f"{where}: data type {mdtype} at offset {pos}")
        if nbytes % _MI_ITEMSIZE[mdtype]:
            raise _Corrupt(f"{where}: {nbytes} bytes is not a whole number of type {mdtype}")
        return mdtype, buf[start : start + nbytes], nxt

    # -- top level --------------------------------------------------------------------------
    def top_level(self, buf: memoryview, pos: int) -> int:
        end = len(buf)
        where = f"variable at offset {pos}"
        mdtype, start, nbytes, nxt = self.tag(buf, pos, end, where)
        if nbytes == 0:
            raise _Corrupt(f"{where}: an element of 0 bytes")
        if mdtype == _MATRIX:
            self.matrix(buf, start, start + nbytes, where, 0)
            return nxt
        if mdtype != _COMPRESSED:
            raise _Corrupt(f"{where}: data type {mdtype}, expected a matrix (14 or 15)")
        inner = memoryview(self.inflate(buf[start : start + nbytes], where))
        itype, istart, inbytes, _ = self.tag(inner, 0, len(inner), where + " (inflated)")
        if itype != _MATRIX:
            raise _Corrupt(f"{where}: the compressed data holds type {itype}, expected 14")
        self.matrix(inner, istart, istart + inbytes, where + " (inflated)", 0)
        return start + nbytes  # compressed elements are not padded

    def inflate(self, data: memoryview, where: str) -> bytes:
        engine = zlib.decompressobj()
        try:
            out = engine.decompress(data, self.budget + 1)
        except zlib.error as exc:
            raise _Corrupt(f"{where}: the compressed data is damaged ({exc})") from None
        if len(out) > self.budget or engine.unconsumed_tail:
            raise _Corrupt(f"{where}: the compressed data inflates beyond {self.budget} bytes")
        if not engine.eof:
            raise _Corrupt(f"{where}: the compressed data ends early")
        self.budget -= len(out)
        return out

    # -- arrays -----------------------------------------------------------------------------
    def matrix(self, buf: memoryview, pos: int, end: int, where: str, depth: int) -> None:
        """Validate the contents of one miMATRIX element, ``buf[pos:end]``."""
        if pos == end:
            return  # an empty array
        if depth > MAX_DEPTH:
            raise _Corrupt(f"{where}: nested deeper than {MAX_DEPTH} levels")
        _, flags, pos = self.typed(buf, pos, end, where + ", array flags", {6, 5})
        if len(flags) != 8:
            raise _Corrupt(f"{where}: array flags of {len(flags)} bytes, expected 8")
        word = self.tag_words.unpack_from(flags)[0]
        mclass, is_complex = word & 0xFF, bool(word & 0x800)
        if mclass == _OPAQUE:
            for _ in range(3):
                _, _, pos = self.typed(buf, pos, end, where + ", opaque header", _TEXT_MI)
            self.one_matrix(buf, pos, end, where + ", opaque data", depth)
            return
        _, raw, pos = self.typed(buf, pos, end, where + ", dimensions", {5, 6})
        dims = list(struct.unpack_from(f"{self.order}{len(raw) // 4}i", raw))
        if not 2 <= len(dims) <= MAX_DIMS or min(dims) < 0:
            raise _Corrupt(f"{where}: dimensions {dims[: MAX_DIMS + 1]}")
        count = math.prod(dims)
        _, name, pos = self.typed(buf, pos, end, where + ", name", _TEXT_MI)
        if depth == 0 and name:
            where = f"variable '{bytes(name).decode('latin1')[:63]}'"
        if mclass in _NUMERIC_CLASSES:
            self.numeric(buf, pos, end, where, count, 2 if is_complex else 1)
        elif mclass == _CHAR:
            self.char(buf, pos, end, where, count)
        elif mclass == _SPARSE:
            self.sparse(buf, pos, end, where, dims, is_complex)
        elif mclass == _CELL:
            self.cells(buf, pos, end, where, count, depth)
        elif mclass in (_STRUCT, _OBJECT):
            if mclass == _OBJECT:
                _, _, pos = self.typed(buf, pos, end, where + ", class name", _TEXT_MI)
            self.struct(buf, pos, end, where, count, depth)
        elif mclass == _FUNCTION:
            self.one_matrix(buf, pos, end, where + ", function handle", depth)
        else:
            raise _Corrupt(f"{where}: array class {mclass}")

    def one_matrix(self, buf: memoryview, pos: int, end: int, where: str, depth: int) -> int:
        mdtype, start, nbytes, nxt = self.tag(buf, pos, end, where)
        if mdtype != _MATRIX:
            raise _Corrupt(f"{where}: data type {mdtype} at offset {pos}, expected 14")
        self.matrix(buf, start, start + nbytes, where, depth + 1)
        return nxt

    def numeric(self, buf, pos, end, where, count: int, parts: int) -> None:
        for part in ("real part", "imaginary part")[:parts]:
            mdtype, raw, pos = self.typed(buf, pos, end, f"{where}, {part}", _NUMERIC_MI)
            if len(raw) // _MI_ITEMSIZE[mdtype] != count:
                raise _Corrupt(
                    f"{where}: the {part} holds {len(raw) // _MI_ITEMSIZE[mdtype]} values, "
                    f"its dimensions say {count}"
                )

    def char(self, buf, pos, end, where, count: int) -> None:
        mdtype, raw, _ = self.typed(buf, pos, end, where + ", text", set(_MI_ITEMSIZE))
        if mdtype in (16, 17, 18):  # UTF-8/16/32: a character takes one or more code units
            if count > len(raw) // _MI_ITEMSIZE[mdtype]:
                raise _Corrupt(f"{where}: {len(raw)} bytes of text for {count} characters")
            return
        found = len(raw) // _MI_ITEMSIZE[mdtype]
        if found != count:
            raise _Corrupt(f"{where}: {found} characters, its dimensions say {count}")

    def sparse(self, buf, pos, end, where, dims: list[int], is_complex: bool) -> None:
        if len(dims) != 2:
            raise _Corrupt(f"{where}: a sparse array with {len(dims)} dimensions")
        rows, cols = dims
        _, ir_raw, pos = self.typed(buf, pos, end, where + ", row indices", {5, 6})
        _, jc_raw, pos = self.typed(buf, pos, end, where + ", column starts", {5, 6})
        ir = np.frombuffer(ir_raw, self.i32)
        jc = np.frombuffer(jc_raw, self.i32)
        if len(jc) != cols + 1 or jc[0] != 0 or np.any(np.diff(jc) < 0) or jc[-1] > len(ir):
            raise _Corrupt(f"{where}: inconsistent sparse column starts")
        nnz = int(jc[-1])
        if nnz and (ir[:nnz].min() < 0 or ir[:nnz].max() >= rows):
            raise _Corrupt(f"{where}: a sparse row index outside 0..{rows - 1}")
        for part in ("real part", "imaginary part")[: 2 if is_complex else 1]:
            mdtype, raw, pos = self.typed(buf, pos, end, f"{where}, {part}", _NUMERIC_MI)
            if len(raw) // _MI_ITEMSIZE[mdtype] < nnz:
                raise _Corrupt(f"{where}: the sparse {part} holds fewer than {nnz} values")

    def cells(self, buf, pos, end, where, count: int, depth: int) -> None:
        if count * 8 > end - pos:
            raise _Corrupt(f"{where}: a cell of {count} elements in {end - pos} bytes")
        for k in range(count):
            pos = self.one_matrix(buf, pos, end, f"{where}{{{k + 1}}}", depth)

    def struct(self, buf, pos, end, where, count: int, depth: int) -> None:
        _, raw, pos = self.typed(buf, pos, end, where + ", field-name length", {5, 6})
        if len(raw) != 4:
            raise _Corrupt(f"{where}: field-name length of {len(raw)} bytes, expected 4")
        length = int(np.frombuffer(raw, self.i32)[0])
        if not 0 < length <= MAX_FIELD_NAME:
            raise _Corrupt(f"{where}: field-name length {length}")
        _, names_raw, pos = self.typed(buf, pos, end, where + ", field names", _TEXT_MI)
        if len(names_raw) % length:
            raise _Corrupt(f"{where}: {len(names_raw)} bytes of field names of length {length}")
        names = [
            bytes(names_raw[k : k + length]).split(b"\0")[0]
            for k in range(0, len(names_raw), length)
        ]
        if any(not n for n in names) or len(set(names)) != len(names):
            raise _Corrupt(f"{where}: empty or repeated field names")
        if count > len(buf) or count * len(names) * 8 > end - pos:
            raise _Corrupt(f"{where}: a struct array of {count} elements in {end - pos} bytes")
        for k in range(count * len(names)):
            field = names[k % len(names)].decode("latin1")
            pos = self.one_matrix(buf, pos, end, f"{where}.{field}", depth)


def validate_v73(path: str | os.PathLike[str]) -> None:
    """Check a v7.3 (HDF5) file's datasets against the file's size before decoding them: a
    dataset may not claim more bytes than its storage can inflate to (its storage itself
    is at most the file).

    Raises:
        Mat2GradError: HDF5 cannot open the file, or a dataset's size is impossible.
    """
    import h5py  # deferred: cuts start-up time; only v7.3 files need it

    path = Path(path)
    limit = MAX_INFLATION * path.stat().st_size + 65536
    problems: list[str] = []

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset) and not problems:
            claimed = math.prod(obj.shape or ()) * obj.dtype.itemsize
            stored = obj.id.get_storage_size()
            if claimed > limit or (obj.compression is None and obj.chunks is None
                                   and 0 < stored < claimed):  # fmt: skip
                problems.append(f"dataset '{name}' claims {claimed} bytes, {stored} stored")

    try:
        with h5py.File(path, "r") as h5:
            h5.visititems(visit)
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError, KeyError, RuntimeError, ...
        raise _corrupt(path, f"HDF5 cannot read it ({type(exc).__name__}: {exc})") from None
    if problems:
        raise _corrupt(path, problems[0])
