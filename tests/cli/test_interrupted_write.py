"""A CLI ``jacobian`` killed while it streams a large result leaves the old result and no
temporary file (see NOTE: [Temporary files that cannot outlive the process]): SIGKILL with
an unnamed (O_TMPFILE) temporary, SIGTERM with either kind, and SIGKILL with a named one,
which the next write to the folder removes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mat2grad import matfile
from mat2grad.matfile import atomic
from tests.support.helpers import FIXTURES, ROOT

pytestmark = pytest.mark.skipif(os.name != "posix", reason="sends POSIX signals")

NETWORK = FIXTURES / "example_fitnet.mat"  # R = 10
OLD = np.arange(6.0).reshape(2, 3)

# the CLI in a child process; argv[1] chooses the kind of temporary
CHILD = (
    "import sys\n"
    "from mat2grad.matfile import atomic\n"
    "atomic.use_o_tmpfile = sys.argv[1] == 'unnamed'\n"
    "from mat2grad.cli import main\n"
    "sys.exit(main(sys.argv[2:]))\n"
)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Enough samples, in chunks small enough, that writing J takes seconds."""
    path = tmp_path_factory.mktemp("data") / "X.mat"
    matfile.write_mat(path, {"X": np.random.default_rng(0).random((10, 50_000))})
    return path


def _start(kind: str, data: Path, out: Path) -> subprocess.Popen:
    argv = ["jacobian", str(NETWORK), "--inputs", str(data), "-o", str(out)]
    argv += ["--chunk-size", "16", "--threads", "1"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, kind, *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _writing(proc: subprocess.Popen, folder: Path) -> bool:
    """Whether the child has its temporary open in ``folder`` (named or not)."""
    if any(p.name.endswith(".tmp") for p in folder.iterdir()):
        return True
    try:
        links = [
            os.readlink(f"/proc/{proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{proc.pid}/fd")
        ]
    except OSError:
        return False
    return any(link.startswith(f"{folder}/#") for link in links)  # an O_TMPFILE inode


def _kill_mid_write(proc: subprocess.Popen, folder: Path, signum: int) -> None:
    deadline = time.monotonic() + 120
    while not _writing(proc, folder):
        if proc.poll() is not None:
            pytest.fail(f"the CLI ended before writing: {proc.stderr.read().decode()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the CLI did not start writing within 120 s")
        time.sleep(0.02)
    time.sleep(0.3)  # well into the stream
    if proc.poll() is not None:
        pytest.fail("the CLI finished before it could be killed mid-write")
    proc.send_signal(signum)
    assert proc.wait(60) == -signum


def _old_result(folder: Path) -> Path:
    out = folder / "J.mat"
    matfile.write_mat(out, {"J": OLD})
    return out


def _assert_untouched(folder: Path, out: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == ["J.mat"]
    np.testing.assert_array_equal(matfile.read_mat(out)["J"], OLD)


@pytest.mark.skipif(not atomic.use_o_tmpfile, reason="no O_TMPFILE on this system")
def test_sigkill_with_an_unnamed_temporary_leaves_nothing(tmp_path, data):
    out = _old_result(tmp_path)
    proc = _start("unnamed", data, out)
    _kill_mid_write(proc, tmp_path, signal.SIGKILL)
    _assert_untouched(tmp_path, out)


@pytest.mark.parametrize("kind", ["unnamed", "named"])
def test_sigterm_leaves_nothing(tmp_path, data, kind):
    if kind == "unnamed" and not atomic.use_o_tmpfile:
        pytest.skip("no O_TMPFILE on this system")
    out = _old_result(tmp_path)
    proc = _start(kind, data, out)
    _kill_mid_write(proc, tmp_path, signal.SIGTERM)
    _assert_untouched(tmp_path, out)


def test_sigkill_with_a_named_temporary_is_swept_by_the_next_write(tmp_path, data):
    out = _old_result(tmp_path)
    proc = _start("named", data, out)
    _kill_mid_write(proc, tmp_path, signal.SIGKILL)
    left = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(left) == 1 and f"p{proc.pid}." in left[0]  # SIGKILL cannot be caught
    np.testing.assert_array_equal(matfile.read_mat(out)["J"], OLD)
    matfile.write_mat(tmp_path / "other.mat", {"Y": OLD})  # the next write to the folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["J.mat", "other.mat"]
