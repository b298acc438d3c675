"""The MAT-file validator: every inconsistency in the element stream is a Mat2GradError
naming what is wrong, before scipy's C reader sees the file; every valid file passes."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from mat2grad import matfile
from mat2grad.errors import Mat2GradError
from mat2grad.matfile.read import _mat_version
from mat2grad.matfile.validate import MAX_DEPTH, validate_mat
from tests.support.helpers import CORPUS

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
HEADER = b"MATLAB 5.0 MAT-file, test".ljust(116, b" ") + b"\0" * 8 + b"\x00\x01IM"


def _el(mdtype: int, payload: bytes) -> bytes:
    return struct.pack("<II", mdtype, len(payload)) + payload + b"\0" * (-len(payload) % 8)


def _matrix(mclass: int, dims: tuple[int, ...], body: bytes, name: bytes = b"x") -> bytes:
    flags = _el(6, struct.pack("<II", mclass, 0))
    head = flags + _el(5, struct.pack(f"<{len(dims)}i", *dims)) + _el(1, name)
    return _el(14, head + body)


def _double(values: list[float], dims: tuple[int, ...] | None = None) -> bytes:
    dims = dims or (1, len(values))
    return _matrix(6, dims, _el(9, struct.pack(f"<{len(values)}d", *values)), name=b"")


def _file(tmp_path: Path, *variables: bytes, compress: bool = False) -> Path:
    # a compressed element is not padded
    body = b"".join(
        struct.pack("<II", 15, len(zlib.compress(v))) + zlib.compress(v) if compress else v
        for v in variables
    )
    path = tmp_path / "f.mat"
    path.write_bytes(HEADER + body)
    return path


def _corrupt(path: Path, what: str) -> None:
    with pytest.raises(Mat2GradError, match=f"the MAT-file is corrupt: .*{what}"):
        matfile.read_mat(path)


def test_a_hand_built_file_is_valid_and_reads(tmp_path):
    cell = _matrix(1, (1, 2), _double([1.0, 2.0]) + _double([3.0]))
    path = _file(tmp_path, cell, compress=True)
    got = matfile.read_mat(path)["x"]
    np.testing.assert_array_equal(got[0, 0], [[1.0, 2.0]])


def test_a_cell_declaring_more_elements_than_bytes(tmp_path):
    # the 16.7-million-element cell from a 20 KB file: refused before any work
    cell = _matrix(1, (4096, 4096), _double([1.0]))
    _corrupt(_file(tmp_path, cell, compress=True), r"a cell of 16777216 elements in \d+ bytes")


def test_numeric_data_not_matching_its_dimensions(tmp_path):
    _corrupt(_file(tmp_path, _double([1.0, 2.0], dims=(3, 3))), "holds 2 values.* say 9")


def test_negative_dimension(tmp_path):
    _corrupt(_file(tmp_path, _double([1.0], dims=(1, -1))), r"dimensions \[1, -1\]")


def test_unknown_array_class(tmp_path):
    _corrupt(_file(tmp_path, _matrix(42, (1, 1), b"")), "array class 42")


def test_sparse_row_index_out_of_range(tmp_path):
    ir, jc = _el(5, struct.pack("<i", 7)), _el(5, struct.pack("<3i", 0, 1, 1))
    sparse = _matrix(5, (3, 2), ir + jc + _el(9, struct.pack("<d", 1.0)))
    _corrupt(_file(tmp_path, sparse), r"sparse row index outside 0\.\.2")


def test_sparse_column_starts_decreasing(tmp_path):
    ir, jc = _el(5, struct.pack("<2i", 0, 1)), _el(5, struct.pack("<3i", 0, 2, 1))
    sparse = _matrix(5, (3, 2), ir + jc + _el(9, struct.pack("<2d", 1.0, 2.0)))
    _corrupt(_file(tmp_path, sparse), "inconsistent sparse column starts")


def test_element_longer_than_the_file(tmp_path):
    data = bytearray(_double([1.0, 2.0]))
    data[4:8] = struct.pack("<I", 1 << 30)
    _corrupt(_file(tmp_path, bytes(data)), "declares 1073741824 bytes")


def test_struct_with_zero_field_name_length(tmp_path):
    body = _el(5, struct.pack("<i", 0)) + _el(1, b"")
    _corrupt(_file(tmp_path, _matrix(2, (1, 1), body)), "field-name length 0")


def test_truncated_compressed_variable(tmp_path):
    whole = _file(tmp_path, _matrix(1, (1, 2), _double([1.0]) + _double([2.0])), compress=True)
    data = whole.read_bytes()
    head = bytearray(data[:136])
    packed = data[136:-6]
    head[132:136] = struct.pack("<I", len(packed))
    whole.write_bytes(bytes(head) + packed)
    _corrupt(whole, "compressed data (ends early|is damaged)")


def test_nesting_deeper_than_the_limit(tmp_path):
    inner = _double([1.0])
    for _ in range(MAX_DEPTH + 2):
        inner = _matrix(1, (1, 1), inner, name=b"")
    path = _file(tmp_path, _matrix(1, (1, 1), inner))
    _corrupt(path, f"nested deeper than {MAX_DEPTH} levels")


def test_v4_header_announcing_more_data_than_present(tmp_path):
    path = tmp_path / "v4.mat"
    path.write_bytes(struct.pack("<5i", 0, 1000, 1000, 0, 2) + b"x\0" + b"\0" * 64)
    with pytest.raises(Mat2GradError, match="not a MATLAB MAT-file .*needs 8000000 bytes"):
        matfile.read_mat(path)


def test_flipping_a_bit_in_a_decompressed_array_header_never_crashes(tmp_path):
    """The issue's reproducer, over every byte of the first array headers of a v7 fixture:
    decompress the variable, flip one bit, recompress; each is read or refused cleanly."""
    data = (FIXTURES / "v7_newff.mat").read_bytes()
    nbytes = struct.unpack_from("<I", data, 132)[0]
    inner = zlib.decompress(data[136 : 136 + nbytes])
    outcomes = set()
    for k in range(8, 64):
        for bit in (0, 3, 7):
            mutated = bytearray(inner)
            mutated[k] ^= 1 << bit
            packed = zlib.compress(bytes(mutated))
            path = tmp_path / f"m{k}_{bit}.mat"
            path.write_bytes(data[:128] + struct.pack("<II", 15, len(packed)) + packed
                             + data[136 + nbytes :])  # fmt: skip
            try:
                matfile.read_mat(path)
                outcomes.add("read")
            except Mat2GradError:
                outcomes.add("refused")
    assert outcomes == {"read", "refused"}


def _valid_files() -> list[Path]:
    files = sorted(FIXTURES.glob("*.mat"))
    if CORPUS.is_dir():
        files += sorted(CORPUS.rglob("*.mat"))
    return files


@pytest.mark.parametrize("path", _valid_files(), ids=lambda p: p.name)
def test_every_valid_file_passes(path):
    version = _mat_version(path)
    if version == "7.3":
        pytest.skip("v7.3 files are HDF5; the MAT-5 validator does not apply")
    validate_mat(path, version)


def test_scipy_written_files_pass(tmp_path):
    path = tmp_path / "s.mat"
    values = {
        "a": np.arange(6.0).reshape(2, 3),
        "c": np.array([[np.ones((2, 2)), "text"]], dtype=object),
        "s": {"f": np.int16([[1, 2]]), "g": "é"},
        "z": np.zeros((0, 3)),
        "b": np.array([[True, False]]),
        "j": np.array([[1 + 2j]]),
        "sp": scipy.sparse.csc_array(np.eye(3)),
    }
    for compress in (False, True):
        scipy.io.savemat(path, values, do_compression=compress)
        validate_mat(path, "5")


def test_v73_dataset_claiming_more_than_the_file(tmp_path):
    import h5py

    path = tmp_path / "v73.mat"
    path.write_bytes((FIXTURES / "v73_fitnet.mat").read_bytes())
    with h5py.File(path, "a") as h5:  # a chunked dataset of 2^40 bytes, nothing written
        h5.create_dataset("huge", shape=(1 << 20, 1 << 17), dtype="f8", chunks=(64, 64))
    with pytest.raises(Mat2GradError, match="the MAT-file is corrupt: dataset 'huge' claims"):
        matfile.read_mat(path)


def test_v73_truncated(tmp_path):
    path = tmp_path / "v73.mat"
    path.write_bytes((FIXTURES / "v73_fitnet.mat").read_bytes()[:4000])
    with pytest.raises(Mat2GradError, match="corrupt|cannot be read"):
        matfile.read_mat(path)
