"""``mat2grad worker``: requests answered as the command line would (status, stdout,
stderr), malformed requests refused, and the process's ends (stdin closed, idle timeout).
The MATLAB/Octave side is tested in tests/matlab/test_worker.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import scipy.io

from mat2grad.cli import main, run_line
from mat2grad.worker import handle as _handle
from tests.support.helpers import FIXTURES, ROOT, checkout_env

EXAMPLE = FIXTURES / "example_fitnet.mat"


def handle(line):
    """The worker's answer to one request line, run as the CLI runs command lines."""
    return _handle(line, run_line)


def _request(argv, cwd=None, ident=1) -> str:
    return json.dumps({"id": ident, "cwd": cwd, "argv": argv})


def test_a_request_runs_like_the_command_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # the request moves to its own cwd; the test's is restored
    x = scipy.io.loadmat(EXAMPLE)["X"][:, :5]
    scipy.io.savemat(tmp_path / "in.mat", {"X": x})
    argv = ["jacobian", str(EXAMPLE), "--inputs", "in.mat", "-o"]
    reply = handle(_request([*argv, "w.mat"], cwd=str(tmp_path), ident=7))
    assert reply == {"id": 7, "status": 0, "out": "", "err": ""}
    assert os.getcwd() == str(tmp_path)
    assert main([*argv, "cli.mat"]) == 0
    w, cli = scipy.io.loadmat(tmp_path / "w.mat"), scipy.io.loadmat(tmp_path / "cli.mat")
    # the same computation in the same process: equal up to float64 round-off
    np.testing.assert_allclose(w["J"], cli["J"], rtol=0, atol=1e-13 * np.abs(cli["J"]).max())
    # a runtime error: exit 1, the command line's one line on stderr
    reply = handle(
        _request(["jacobian", str(tmp_path / "none.mat"), "--inputs", "in.mat", "-o", "x.mat"])
    )
    assert reply["status"] == 1 and reply["err"].startswith("mat2grad: ")
    capsys.readouterr()


def test_usage_version_and_malformed_requests():
    assert handle(_request(["--version"]))["out"].startswith("mat2grad ")
    usage = handle(_request(["predict"]))
    assert usage["status"] == 2 and "usage:" in usage["err"]
    assert handle(_request(["worker"]))["status"] == 2
    for bad in ["not json", json.dumps({"id": 1}), json.dumps({"argv": [1, 2]}), "[]"]:
        reply = handle(bad)
        assert reply["status"] == 2 and "malformed request" in reply["err"], bad


def _start(*extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mat2grad", "worker", *extra],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=checkout_env(),
    )


def test_the_process_answers_and_ends_when_stdin_closes():
    proc = _start()
    try:
        ready = json.loads(proc.stdout.readline())
        assert ready["pid"] == proc.pid and ready["ready"].startswith("mat2grad ")
        proc.stdin.write(_request(["info", str(EXAMPLE)], ident=3) + "\n")
        proc.stdin.flush()
        reply = json.loads(proc.stdout.readline())
        assert reply["id"] == 3 and reply["status"] == 0 and "Function Fitting" in reply["out"]
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()


def test_the_process_ends_when_idle():
    proc = _start("--idle-timeout", "0.5")
    try:
        json.loads(proc.stdout.readline())
        start = time.monotonic()
        assert proc.wait(timeout=30) == 0
        assert time.monotonic() - start < 25
    finally:
        proc.kill()
