"""Writing results for MATLAB: v7 and v7.3 (HDF5, MATLAB's layout), chosen by size,
streamed chunk by chunk, atomically; read back by independent readers (scipy, h5py,
mat-io, and Octave where installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings

import h5py
import numpy as np
import pytest
import scipy.io

from mat2grad import Mat2GradError, matfile
from mat2grad.matfile import SampleWriter, per_sample_to_matlab, results_to_matlab, write_mat

OCTAVE = shutil.which("octave-cli")


def _matio(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mat-io sets a deprecated pandas option on import
        import matio

        return matio.load_from_mat(str(path))


def _no_temp_files(folder):
    return not [p for p in os.listdir(folder) if p.endswith(".tmp")]


# --------------------------------------------------------------------------------------
# v7.3 written in MATLAB's layout
# --------------------------------------------------------------------------------------

VALUES = {
    "a3": np.arange(24.0).reshape(2, 3, 4),
    "single": np.array([[1.5, -2.0]], dtype=np.float32),
    "i8": np.array([[1, -2, 3]], dtype=np.int8),
    "flags": np.array([[True, False, True]]),
    "text": "hello",
    "empty": np.zeros((0, 3)),
    "cell": [np.eye(2), "abc"],
    "s": {"x": 2.5, "name": "net", "inner": {"v": np.ones((2, 1))}},
    "col": np.array([1.0, 2.0, 3.0]),  # 1-D: written as a column, like the v7 path
}


def test_v73_raw_layout(tmp_path):
    path = tmp_path / "r.mat"
    write_mat(path, VALUES, format="v7.3")
    head = path.read_bytes()[:128]
    assert head.startswith(b"MATLAB 7.3 MAT-file")
    assert head[124:128] == b"\x00\x02IM"  # version 0x0200, little-endian
    assert path.read_bytes()[512:516] == b"\x89HDF"  # the HDF5 superblock after the user block
    with h5py.File(path, "r") as h5:
        a3 = h5["a3"]
        assert a3.shape == (4, 3, 2)  # MATLAB 2x3x4, dimensions reversed
        assert a3.attrs["MATLAB_class"] == b"double"
        assert a3[3, 2, 1] == VALUES["a3"][1, 2, 3]
        assert h5["single"].attrs["MATLAB_class"] == b"single"
        assert h5["i8"].attrs["MATLAB_class"] == b"int8"
        flags = h5["flags"]
        assert flags.dtype == np.uint8 and flags.attrs["MATLAB_class"] == b"logical"
        assert flags.attrs["MATLAB_int_decode"] == 1
        text = h5["text"]
        assert text.dtype == np.uint16 and text.attrs["MATLAB_int_decode"] == 2
        assert "".join(map(chr, text[:, 0])) == "hello"
        empty = h5["empty"]
        assert empty.attrs["MATLAB_empty"] == 1 and list(empty[()]) == [0, 3]
        cell = h5["cell"]
        assert cell.attrs["MATLAB_class"] == b"cell" and cell.shape == (2, 1)
        first = h5[cell[0, 0]]
        assert first.name.startswith("/#refs#/") and first.attrs["MATLAB_class"] == b"double"
        s = h5["s"]
        assert s.attrs["MATLAB_class"] == b"struct"
        fields = ["".join(c.decode() for c in f) for f in s.attrs["MATLAB_fields"]]
        assert fields == ["x", "name", "inner"]
        assert h5["col"].shape == (1, 3)  # MATLAB 3x1


def test_v73_read_back_by_mat_io(tmp_path):
    path = tmp_path / "m.mat"
    write_mat(path, VALUES, format="v7.3")
    d = _matio(path)
    np.testing.assert_array_equal(d["a3"], VALUES["a3"])
    assert d["single"].dtype == np.float32 and d["i8"].dtype == np.int8
    np.testing.assert_array_equal(d["flags"], VALUES["flags"])
    assert str(np.asarray(d["text"]).reshape(-1)[0]) == "hello"
    assert d["empty"].shape == (0, 3)
    np.testing.assert_array_equal(d["cell"][0, 0], np.eye(2))
    assert d["s"]["x"][0, 0][0, 0] == 2.5
    assert d["col"].shape == (3, 1)
    # and by mat2grad's own reader
    tree = matfile.read_mat(path)
    np.testing.assert_array_equal(tree["a3"], VALUES["a3"])
    assert tree["s"]["name"] == "net"


# --------------------------------------------------------------------------------------
# Which version: 2^31 bytes per variable, lowered for tests
# --------------------------------------------------------------------------------------


def _version(path):
    with open(path, "rb") as fh:
        return scipy.io.matlab.matfile_version(fh)[0]


def test_auto_switches_to_v73_above_the_threshold(tmp_path, monkeypatch):
    small, big = np.zeros((2, 2)), np.zeros((100, 10))  # 32 and 8000 bytes
    write_mat(tmp_path / "a.mat", {"x": small, "y": big})
    assert _version(tmp_path / "a.mat") == 1  # v5 (v6/v7)
    write_mat(tmp_path / "b.mat", {"x": small, "y": big}, v73_threshold=1000)
    assert _version(tmp_path / "b.mat") == 2  # v7.3
    monkeypatch.setenv("MAT2GRAD_V73_THRESHOLD", "1000")
    write_mat(tmp_path / "c.mat", {"x": small, "y": big})
    assert _version(tmp_path / "c.mat") == 2
    write_mat(tmp_path / "d.mat", {"x": small})
    assert _version(tmp_path / "d.mat") == 1
    # a cell counts with all its contents
    write_mat(tmp_path / "e.mat", {"c": [np.zeros((10, 10)), np.zeros((10, 10))]})
    assert _version(tmp_path / "e.mat") == 2


def test_format_choice_rules():
    big = {"J": 2**31 + 8}
    assert matfile.choose_format("auto", big) == "v7.3"
    assert matfile.choose_format("auto", {"J": 2**31}) == "v7"  # at the limit: still v7
    assert matfile.choose_format("v7.3", {"J": 8}) == "v7.3"
    with pytest.raises(Mat2GradError, match="at most 2 GiB per variable.*v7.3"):
        matfile.choose_format("v7", big)
    with pytest.raises(Mat2GradError, match="format must be one of"):
        matfile.choose_format("v8", big)


def test_bad_threshold_environment_variable(monkeypatch):
    monkeypatch.setenv("MAT2GRAD_V73_THRESHOLD", "lots")
    with pytest.raises(Mat2GradError, match="MAT2GRAD_V73_THRESHOLD"):
        matfile.v73_threshold()


# --------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["v7", "v7.3"])
def test_failed_write_leaves_the_target_untouched(tmp_path, fmt):
    path = tmp_path / "out.mat"
    write_mat(path, {"old": np.ones((2, 2))})
    before = path.read_bytes()
    with pytest.raises(Mat2GradError):
        write_mat(path, {"good": np.ones(3), "bad": None}, format=fmt)
    assert path.read_bytes() == before
    assert _no_temp_files(tmp_path)


@pytest.mark.parametrize("fmt", ["v7", "v7.3"])
def test_interrupted_stream_leaves_the_target_untouched(tmp_path, fmt):
    path = tmp_path / "J.mat"
    write_mat(path, {"old": np.ones((2, 2))})
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="boom"):
        with SampleWriter(path, 10, {"J": (2, 3)}, format=fmt) as w:
            w.write(0, {"J": np.ones((5, 2, 3))})
            raise RuntimeError("boom")
    assert path.read_bytes() == before
    assert _no_temp_files(tmp_path)


# --------------------------------------------------------------------------------------
# Streaming per-sample results: orientation element by element
# --------------------------------------------------------------------------------------

Q = 11
RNG = np.random.default_rng(0)
J = RNG.standard_normal((Q, 3, 4))  # batch-first (Q, S, R)
Y = RNG.standard_normal((Q, 3))
CELL = [
    [RNG.standard_normal((Q, 2, 4)), RNG.standard_normal((Q, 2, 5))],
    [RNG.standard_normal((Q, 1, 4)), RNG.standard_normal((Q, 1, 5))],
]
LAYOUT = {"J": (3, 4), "Y": (3,), "C": [[(2, 4), (2, 5)], [(1, 4), (1, 5)]]}


def _stream(path, fmt, samples, order=None):
    with SampleWriter(path, Q, LAYOUT, samples=samples, format=fmt) as w:
        starts = list(range(0, Q, 4))
        for a in order(starts) if order else starts:
            b = min(Q, a + 4)
            w.write(a, {"J": J[a:b], "Y": Y[a:b], "C": [[blk[a:b] for blk in row] for row in CELL]})
    return w.format


def _check_orientation(d, samples):
    """J[q, s, r] <-> MATLAB J(s+1, r+1, q+1) (columns) or J(q+1, s+1, r+1) (rows)."""
    mj, my = np.asarray(d["J"]), np.asarray(d["Y"])
    if samples == "columns":
        assert mj.shape == (3, 4, Q) and my.shape == (3, Q)
        for q, s, r in np.ndindex(Q, 3, 4):
            assert mj[s, r, q] == J[q, s, r]
        assert all(my[s, q] == Y[q, s] for q, s in np.ndindex(Q, 3))
    else:
        assert mj.shape == (Q, 3, 4) and my.shape == (Q, 3)
        np.testing.assert_array_equal(mj, J)
        np.testing.assert_array_equal(my, Y)
    cell = d["C"]
    assert cell.shape == (2, 2)
    for k, j in np.ndindex(2, 2):
        expected = CELL[k][j] if samples == "rows" else np.moveaxis(CELL[k][j], 0, -1)
        np.testing.assert_array_equal(np.asarray(cell[k, j]), expected)


@pytest.mark.parametrize("samples", ["columns", "rows"])
def test_stream_v7_read_by_scipy(tmp_path, samples):
    path = tmp_path / "s.mat"
    assert _stream(path, "v7", samples, order=reversed) == "v7"  # chunks in any order
    assert _version(path) == 1
    _check_orientation(scipy.io.loadmat(path), samples)
    _check_orientation(_matio(path), samples)


@pytest.mark.parametrize("samples", ["columns", "rows"])
def test_stream_v73_read_by_h5py_and_mat_io(tmp_path, samples, monkeypatch):
    monkeypatch.setenv("MAT2GRAD_V73_THRESHOLD", "100")  # J is 264 bytes
    path = tmp_path / "s.mat"
    assert _stream(path, "auto", samples) == "v7.3"
    _check_orientation(_matio(path), samples)
    with h5py.File(path, "r") as h5:  # raw: dimensions reversed
        raw = h5["J"][()]
        assert h5["J"].attrs["MATLAB_class"] == b"double"
        if samples == "columns":
            assert raw.shape == (Q, 4, 3)
            assert all(raw[q, r, s] == J[q, s, r] for q, s, r in np.ndindex(Q, 3, 4))
        else:
            assert raw.shape == (4, 3, Q)
            assert all(raw[r, s, q] == J[q, s, r] for q, s, r in np.ndindex(Q, 3, 4))
        assert h5["C"].attrs["MATLAB_class"] == b"cell"
    tree = matfile.read_mat(path)
    assert tree["C"].shape == (2, 2)


SEQ = RNG.standard_normal((Q, 3, 2, 5))  # batch-first chunks of a (3, 2, 5) sample


@pytest.mark.parametrize("axis", [0, 1, 2, 3])
@pytest.mark.parametrize("fmt", ["v7", "v7.3"])
def test_stream_sample_axis_anywhere(tmp_path, fmt, axis, monkeypatch):
    """SampleBlock(shape, axis): the sample index at MATLAB axis ``axis`` (a sequence
    C x N x T is axis 1), element by element, alone and inside a cell, chunks in any order."""
    monkeypatch.setenv("MAT2GRAD_V73_THRESHOLD", "100")
    path = tmp_path / "s.mat"
    block = matfile.SampleBlock((3, 2, 5), axis)
    with SampleWriter(path, Q, {"S": block, "C": [[(3,)], [block]]}, format=fmt) as w:
        for a in reversed(range(0, Q, 4)):
            b = min(Q, a + 4)
            w.write(a, {"S": SEQ[a:b], "C": [[Y[a:b]], [SEQ[a:b]]]})
    tree = matfile.read_mat(path)
    expected = np.moveaxis(SEQ, 0, axis)
    for got in (tree["S"], tree["C"][1, 0]):
        assert got.shape == expected.shape
        for q, i, j, k in np.ndindex(*SEQ.shape):
            idx = [i, j, k]
            idx.insert(axis, q)
            assert got[tuple(idx)] == SEQ[q, i, j, k]
    np.testing.assert_array_equal(tree["C"][0, 0], Y.T)


def test_sample_axis_outside_the_dimensions_is_refused(tmp_path):
    with pytest.raises(Mat2GradError, match="sample axis 3 is outside"):
        SampleWriter(tmp_path / "s.mat", 2, {"S": matfile.SampleBlock((3, 2), 3)})
    assert _no_temp_files(tmp_path)


@pytest.mark.skipif(OCTAVE is None, reason="GNU Octave (octave-cli) is not installed")
def test_stream_v7_read_by_octave(tmp_path):
    path = tmp_path / "s.mat"
    _stream(path, "v7", "columns")
    script = (
        f"load('{path}'); printf('%d %d %d|', size(J)); printf('%.17g|', J(2,3,5)); "
        "printf('%s|', class(C)); printf('%d %d %d|', size(C{2,2})); printf('%.17g', Y(3,11));"
    )
    out = subprocess.run(
        [OCTAVE, "--no-gui", "--no-history", "--norc", "--quiet", "--eval", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    size, j235, cls, csize, y = out.stdout.strip().split("|")
    assert size == "3 4 11" and cls == "cell" and csize == "1 5 11"
    assert float(j235) == J[4, 1, 2] and float(y) == Y[10, 2]


def test_stream_rejects_chunks_that_do_not_fit(tmp_path):
    with pytest.raises(Mat2GradError, match="does not fit"):
        with SampleWriter(tmp_path / "x.mat", 4, {"J": (2, 3)}) as w:
            w.write(2, {"J": np.ones((3, 2, 3))})
    with pytest.raises(Mat2GradError, match="does not fit"):
        with SampleWriter(tmp_path / "x.mat", 4, {"J": (2, 3)}) as w:
            w.write(0, {"J": np.ones((2, 3, 2))})
    assert not (tmp_path / "x.mat").exists() and _no_temp_files(tmp_path)


def test_stream_forced_v7_refuses_variables_over_2_gib(tmp_path):
    # nothing is allocated: the layout alone is over the limit
    with pytest.raises(Mat2GradError, match="at most 2 GiB"):
        SampleWriter(tmp_path / "x.mat", 10**8, {"J": (3, 10)}, format="v7")
    assert _no_temp_files(tmp_path)


def test_stream_writes_a_large_result_chunk_by_chunk(tmp_path):
    """A J of 2e5 samples written from one reused 64k-sample buffer (the benchmark
    measures the memory)."""
    q = 2 * 10**5
    path = tmp_path / "big.mat"
    with SampleWriter(path, q, {"J": (3, 10)}, format="v7.3") as w:
        chunk = np.ones((2**16, 3, 10))
        for a in range(0, q, 2**16):
            b = min(q, a + 2**16)
            w.write(a, {"J": chunk[: b - a] * (a // 2**16)})
    with h5py.File(path, "r") as h5:
        assert h5["J"].shape == (q, 10, 3)
        assert h5["J"][q - 1, 0, 0] == (q - 1) // 2**16


# --------------------------------------------------------------------------------------
# In-memory conversion helpers
# --------------------------------------------------------------------------------------


def test_per_sample_to_matlab_and_cells():
    m = per_sample_to_matlab(J)
    assert m.shape == (3, 4, Q) and m[2, 1, 5] == J[5, 2, 1]
    assert per_sample_to_matlab(J, "rows").shape == (Q, 3, 4)
    assert per_sample_to_matlab(np.arange(5.0)).shape == (1, 5)  # per-sample scalars: 1 x Q
    cell = results_to_matlab(tuple(tuple(r) for r in CELL))
    assert cell.shape == (2, 2) and cell[1, 0].shape == (1, 4, Q)
    flat = results_to_matlab((Y, Y[:, :1]))
    assert flat.shape == (2, 1) and flat[1, 0].shape == (1, Q)


@pytest.mark.parametrize("fmt", ["v7", "v7.3"])
def test_results_get_ordinary_file_permissions(tmp_path, fmt):
    """Atomic writes go through a private temporary file; the result must still get the
    mode a plainly created file would (0666 minus the umask), not mkstemp's 0600."""
    umask = os.umask(0o022)
    try:
        out = tmp_path / "r.mat"
        matfile.write_mat(out, {"Y": np.ones((2, 2))}, format=fmt)
        assert out.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(umask)
