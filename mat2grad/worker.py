"""A warm worker: one long-lived Python process that runs mat2grad commands for MATLAB or
Octave, so that a call costs milliseconds instead of starting Python and importing PyTorch.

``python -m mat2grad worker`` (``mat2grad worker``) reads requests on standard input and
answers on standard output, one JSON line each. The MATLAB helpers start it with
``mat2grad_setup('Worker', true)`` and send it exactly the command lines they would otherwise
run through ``system()``; the data and results still travel as MAT-files in the helper's
temporary folder. See NOTE: [Worker protocol].

A command runs as the command line runs it: the CLI hands the worker its own way of running
one command line (:func:`mat2grad.cli.run_line`: the same commands, the same messages and
exit codes), with networks read once and kept, keyed by (path, modification time, size)
(:func:`mat2grad.loading.cached_load`).

The worker ends when its standard input closes (the MATLAB/Octave process that started it
ended, however it ended), when that parent process is gone (it is checked every second), or
after ``idle_timeout`` seconds without a request.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from ._version import __version__
from .commands.matlab import WORKER_IDLE_TIMEOUT

__all__ = ["handle", "serve"]

#: Commands a worker does not run (they are not about networks, or would nest workers).
_REFUSED = ("worker", "matlab")

# NOTE: [Worker protocol]
# One line of JSON per message, UTF-8, on the worker's standard input and output:
#   worker -> client, once, when it is ready:   {"ready": "mat2grad 1.2.3", "pid": 4242}
#   client -> worker, per request:              {"id": 7, "cwd": "/home/me", "argv": [...]}
#   worker -> client, per request:              {"id": 7, "status": 0, "out": "...",
#                                                "err": "..."}
# argv is the command line after "mat2grad" (["jacobian", "net.mat", "--inputs", ...]);
# status, out and err are what that command line would exit with and print on stdout and
# stderr, so the client reports results and errors exactly as it does for system().
# The id lets a client that gave up waiting (Ctrl-C) skip the late answer to an old
# request; cwd resolves relative paths as the client's current folder does now.
# Only this module writes to the protocol's stream: the process's own standard output
# (file descriptor 1) is pointed at standard error, so nothing a library prints can
# corrupt an answer. Data travel as MAT-files named on the command line, not as arrays in
# the pipe: benchmarks/matlab_worker.py measures saving the inputs and loading the results
# at about 9 ms of a 40-55 ms warm call in Octave (2 loaded cores), and in exchange every
# option, cell and network struct takes the command line's one well-tested route.


#: runs one command line in this process and returns its exit code (output on sys.stdout/err)
RunLine = Callable[[list[str]], int]


def serve(
    run_line: RunLine,
    requests: int | None = None,
    *,
    idle_timeout: float | None = WORKER_IDLE_TIMEOUT,
    watch_parent: bool = True,
) -> int:
    """Answer requests until standard input closes, the parent process is gone, or
    ``idle_timeout`` seconds (``None`` or ``0``: no limit) pass without a request.

    Args:
        run_line: runs one command line (the CLI's :func:`mat2grad.cli.run_line`).
        requests: the file descriptor requests come from (default: standard input's);
            answers go to the process's standard output, reserved for them from then on.
        idle_timeout: seconds to wait for a request before ending.
        watch_parent: end as soon as the process that started the worker is gone.

    Returns:
        0, the exit code.
    """
    answers = _claim_stdout()
    inbox: queue.Queue[bytes | None] = queue.Queue()
    source = requests if requests is not None else sys.stdin.fileno()
    threading.Thread(target=_read_lines, args=(source, inbox), daemon=True).start()
    if watch_parent:
        threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    _send(answers, {"ready": f"mat2grad {__version__}", "pid": os.getpid()})
    while True:
        try:
            line = inbox.get(timeout=idle_timeout or None)
        except queue.Empty:
            return 0  # idle: the client starts a new worker when it needs one
        if line is None:
            return 0  # standard input closed: the client is gone
        _send(answers, handle(line, run_line))


def handle(line: bytes | str, run_line: RunLine) -> dict[str, Any]:
    """The answer to one request line (see NOTE: [Worker protocol])."""
    try:
        request = json.loads(line)
        ident, argv = request.get("id"), request["argv"]
        if not (isinstance(argv, list) and all(isinstance(a, str) for a in argv)):
            raise TypeError("argv must be a list of strings")
        cwd = request.get("cwd")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        text = f"mat2grad: worker: malformed request ({exc}); expected {{'id', 'cwd', 'argv'}}"
        return {"id": None, "status": 2, "out": "", "err": text + "\n"}
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = _run(argv, cwd, run_line)
    return {"id": ident, "status": status, "out": out.getvalue(), "err": err.getvalue()}


def _run(argv: list[str], cwd: str | None, run_line: RunLine) -> int:
    """One command line, run in this process; its exit code (output on sys.stdout/err)."""
    if argv and argv[0] in _REFUSED:
        print(f"mat2grad: worker: '{argv[0]}' is not run by a worker", file=sys.stderr)
        return 2
    try:
        if cwd:
            os.chdir(cwd)
    except OSError as exc:
        print(f"mat2grad: worker: cannot use the folder {cwd} ({exc})", file=sys.stderr)
        return 1
    return run_line(argv)


# --------------------------------------------------------------------------------------
# The process: its streams and its parent
# --------------------------------------------------------------------------------------


def _claim_stdout() -> IO[str]:
    """A text stream on (a copy of) standard output for the answers; file descriptor 1
    itself then points at standard error, so that stray output cannot reach the client."""
    sys.stdout.flush()
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8", newline="\n")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return answers


def _send(stream: IO[str], message: dict[str, Any]) -> None:
    stream.write(json.dumps(message) + "\n")
    stream.flush()


def _read_lines(source: int, inbox: queue.Queue[bytes | None]) -> None:
    """Every line read from the file descriptor ``source`` into ``inbox``, then ``None``
    for the end. Plain os.read, no buffered stream: this thread may still be blocked in
    it when the process ends (idle timeout), and a buffered stream's lock would then stop
    the interpreter's shutdown."""
    pending = b""
    try:
        while chunk := os.read(source, 1 << 16):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                if line.strip():
                    inbox.put(line)
    except OSError:
        pass  # a broken pipe is an end like any other
    finally:
        inbox.put(None)


def _watch_parent(parent: int) -> None:
    """End the process as soon as its parent is gone (POSIX: it is then re-parented),
    even in the middle of a command: nobody is left to read the answer."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)
