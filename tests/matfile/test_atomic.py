"""The one atomic replace (see NOTE: [Temporary files that cannot outlive the process]):
both kinds of temporary, the sweep of stale named ones, and a folder that cannot be
written to."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from mat2grad import Mat2GradError, matfile
from mat2grad.matfile import atomic
from tests.support.helpers import read_only

KINDS = [
    pytest.param(
        True,
        id="unnamed",
        marks=pytest.mark.skipif(not atomic.use_o_tmpfile, reason="no O_TMPFILE on this system"),
    ),
    pytest.param(False, id="named"),
]


@pytest.mark.parametrize("unnamed", KINDS)
@pytest.mark.parametrize("fmt", ["v7", "v7.3"])
def test_writers_leave_only_the_result(tmp_path, monkeypatch, unnamed, fmt):
    monkeypatch.setattr(atomic, "use_o_tmpfile", unnamed)
    x = np.arange(6.0).reshape(2, 3)
    matfile.write_mat(tmp_path / "a.mat", {"X": x}, format=fmt)
    with matfile.SampleWriter(tmp_path / "s.mat", 4, {"J": (2, 3)}, format=fmt) as w:
        w.write(0, {"J": np.ones((4, 2, 3))})
    matfile.write_bytes_atomically(tmp_path / "b.bin", b"abc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mat", "b.bin", "s.mat"]
    np.testing.assert_array_equal(matfile.read_mat(tmp_path / "a.mat")["X"], x)
    assert matfile.read_mat(tmp_path / "s.mat")["J"].shape == (2, 3, 4)
    assert (tmp_path / "b.bin").read_bytes() == b"abc"


@pytest.mark.skipif(not atomic.use_o_tmpfile, reason="no O_TMPFILE on this system")
def test_an_unnamed_temporary_has_no_name_while_written(tmp_path):
    tmp = atomic.temporary_beside(tmp_path / "r.bin")
    os.write(tmp.fd, b"data")
    assert list(tmp_path.iterdir()) == []
    tmp.commit()
    assert [p.name for p in tmp_path.iterdir()] == ["r.bin"]


@pytest.mark.parametrize("unnamed", KINDS)
def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch, unnamed):
    monkeypatch.setattr(atomic, "use_o_tmpfile", unnamed)
    (tmp_path / "r.bin").write_bytes(b"old")
    tmp = atomic.temporary_beside(tmp_path / "r.bin")

    def finish():
        os.write(tmp.fd, b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(Mat2GradError, match="could not write the file .*No space left"):
        atomic.replace_atomically(tmp, finish, what="file")
    assert [p.name for p in tmp_path.iterdir()] == ["r.bin"]
    assert (tmp_path / "r.bin").read_bytes() == b"old"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_named_temporaries_are_swept_by_the_next_write(tmp_path):
    host = atomic._HOST
    other_host = "0" * 8 if host != "0" * 8 else "1" * 8
    dead = f".J.mat.m2g{host}p{_dead_pid()}.abc123.tmp"
    live = f".J.mat.m2g{host}p{os.getppid()}.abc123.tmp"  # our parent is alive
    elsewhere = f".J.mat.m2g{other_host}p{_dead_pid()}.abc123.tmp"  # another host's
    unrelated = ".J.mat.abc123.tmp"  # no owner recorded: never removed
    for name in (dead, live, elsewhere, unrelated):
        (tmp_path / name).write_bytes(b"x")
    matfile.write_mat(tmp_path / "Y.mat", {"Y": np.ones((1, 1))})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [live, elsewhere, unrelated, "Y.mat"]
    )


def test_a_folder_that_cannot_be_written_is_a_mat2grad_error(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    read_only(folder, monkeypatch)
    with pytest.raises(Mat2GradError, match="cannot create a file in the folder .*ro"):
        matfile.write_mat(folder / "J.mat", {"J": np.ones((2, 2))})
    assert list(folder.iterdir()) == []
