"""The warm worker (``mat2grad worker``) driven by real GNU Octave through the helpers:
first and repeat calls, errors, a killed worker, two Octave sessions at once, and no worker
left behind when Octave itself is killed."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.helpers import FIXTURES, ROOT

OCTAVE = shutil.which("octave-cli")
pytestmark = pytest.mark.skipif(
    OCTAVE is None or not hasattr(os, "getpgid"),
    reason="needs GNU Octave (octave-cli on PATH) and a POSIX system",
)

EXAMPLE = FIXTURES / "example_fitnet.mat"


def _text(path: Path) -> str:
    return "'" + path.as_posix().replace("'", "''") + "'"


def octave_env(tmp_path: Path) -> dict[str, str]:
    """The test runner's environment for Octave: this Python, a fresh HOME and TMPDIR."""
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir(exist_ok=True)
    tmp.mkdir(exist_ok=True)
    return dict(
        os.environ,
        MAT2GRAD_PYTHON=sys.executable,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        HOME=str(home),
        TMPDIR=str(tmp),
        TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "torch-cache"),
    )


def octave_command(code: str) -> list[str]:
    prelude = (
        f"addpath({_text(ROOT / 'matlab')}); addpath({_text(ROOT / 'tests' / 'matlab')}); "
        f"file = {_text(EXAMPLE)}; S = load(file); X = S.X(:, 1:5); "
    )
    return [OCTAVE, "--no-gui", "--no-history", "--norc", "--quiet", "--eval", prelude + code]


def is_running(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def worker_pid(session: subprocess.Popen) -> int:
    """The worker's process id, as the Octave session prints it."""
    lines = []
    for line in session.stdout:
        lines.append(line)
        found = re.match(r"M2G-WORKER (\d+)", line)
        if found:
            return int(found.group(1))
    raise AssertionError("the Octave session ended early:\n" + "".join(lines))


def test_worker_calls_errors_and_restart(tmp_path):
    """Results through the worker equal the system() route's and MATLAB's own outputs;
    repeat calls reuse the process; errors keep their identifiers; a killed worker is
    replaced at the next call; nothing is left in TMPDIR."""
    code = """
        mat2grad_setup('Worker', true);
        [J1, Y1] = mat2grad_jacobian(file, X);
        c = mat2grad_setup(); pid = c.WorkerPid;
        assert(pid > 0 && c.Worker);
        [J2, Y2] = mat2grad_jacobian(file, X);
        Y3 = mat2grad_predict(file, X);
        c = mat2grad_setup(); assert(c.WorkerPid, pid);
        % MATLAB's stored outputs: to round-off of a 3-layer float64 evaluation
        assert(max(abs(Y1(:) - S.Y(1:15)')) < 1e-12 * max(1, max(abs(S.Y(:)))));
        assert(isequal(J1, J2) && isequal(Y1, Y2) && isequal(Y1, Y3));
        try
          mat2grad_jacobian(file, X(1:3, :));
          error('no error raised');
        catch err
          assert(err.identifier, 'mat2grad:jacobian:failed');
          assert(~isempty(strfind(err.message, 'rows')), err.message);
        end
        kill(pid, 9); pause(0.2);
        J4 = mat2grad_jacobian(file, X);
        c = mat2grad_setup(); assert(c.WorkerPid > 0 && c.WorkerPid ~= pid);
        mat2grad_setup('Worker', false);
        J0 = mat2grad_jacobian(file, X);
        c = mat2grad_setup(); assert(c.WorkerPid, 0);
        % the same computation in another process: equal up to the order of float64 sums
        scale = max(abs(J0(:)));
        assert(max(abs(J4(:) - J0(:))) <= 1e-13 * scale);
        assert(max(abs(J1(:) - J0(:))) <= 1e-13 * scale);
        printf('M2G-OK\\n');
    """
    env = octave_env(tmp_path)
    proc = subprocess.run(
        octave_command(code), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert "M2G-OK" in proc.stdout, proc.stdout + proc.stderr
    assert not list((tmp_path / "tmp").iterdir()), "temporary files left behind"


def test_two_sessions_and_no_orphans(tmp_path):
    """Two Octave sessions at once each get their own worker; killing an Octave process
    (SIGKILL: no chance to clean up) ends its worker."""
    code = """
        mat2grad_setup('Worker', true);
        for k = 1:3
          J = mat2grad_jacobian(file, X);
          assert(size(J), [3 10 5]);
        end
        c = mat2grad_setup();
        printf('M2G-WORKER %d\\n', c.WorkerPid);
        fflush(stdout);
        pause(300);
    """
    env = octave_env(tmp_path)
    sessions = [
        subprocess.Popen(
            octave_command(code),
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        workers = [worker_pid(session) for session in sessions]
        assert workers[0] != workers[1]
        assert all(is_running(pid) for pid in workers)
        for session in sessions:
            session.send_signal(signal.SIGKILL)
            session.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(is_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(is_running(pid) for pid in workers), "a worker outlived its Octave"
    finally:
        for session in sessions:
            if session.poll() is None:
                session.kill()
                session.wait()
