"""Long-lived worker processes with a time and memory limit per case, and the outcome table.

A case that kills its worker (a signal) is a ``crash``; one that runs past the time limit is
a ``timeout`` (the worker is killed); either way a fresh worker, forked from a preloaded
server, takes its place. The time limit counts the worker's CPU time where the system shows
it (Linux ``/proc``), so a machine busy with other jobs does not turn slow cases into
timeouts; wall time, at ``wall_factor`` times the limit, still catches a case that sleeps or
deadlocks (generous: a worker starved by a busy machine must not count as hung).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import wait

__all__ = ["OUTCOMES", "Result", "WorkerPool"]

OUTCOMES = ("loaded", "mat2grad_error", "other", "crash", "timeout", "memory")
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}


@dataclass
class Result:
    case: object
    outcome: str
    detail: str = ""


@dataclass
class _Worker:
    process: mp.Process
    conn: object
    case: object = None
    deadline: float = 0.0
    cpu_start: float = 0.0
    wall_start: float = 0.0

    def cpu(self) -> float | None:
        """CPU seconds the worker has used (None where /proc does not say)."""
        try:
            with open(f"/proc/{self.process.pid}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / _TICK
        except (OSError, IndexError, ValueError):
            return None

    def over(self, limit: float, now: float) -> bool:
        cpu = self.cpu()
        if cpu is None:
            return now >= self.wall_start + limit
        return cpu - self.cpu_start > limit or now >= self.deadline


@dataclass
class WorkerPool:
    """``workers`` processes; each case gets ``timeout`` seconds and ``memory`` bytes."""

    workers: int = 2
    timeout: float = 10.0
    memory: int = 2 << 30
    wall_factor: float = 30.0
    counts: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._ctx = mp.get_context("forkserver")
        self._ctx.set_forkserver_preload(["tests.fuzz.worker"])
        self._dir = tempfile.mkdtemp(prefix="m2g-fuzz-")
        self._pool: list[_Worker] = []
        self._started = 0
        self._sent = 0

    def _start(self) -> _Worker:
        from . import worker  # noqa: F401 - imported here so the parent loads it once

        saved = {k: os.environ.get(k) for k in _ENV}
        os.environ.update(_ENV)  # the forkserver starts with the first worker
        try:
            ours, theirs = self._ctx.Pipe()
            self._started += 1
            workdir = os.path.join(self._dir, f"w{self._started}")
            proc = self._ctx.Process(
                target=worker.serve, args=(theirs, workdir, self.memory), daemon=True
            )
            proc.start()
            theirs.close()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        return _Worker(proc, ours)

    def run(self, cases: Iterable[tuple[object, str, bytes]]) -> Iterator[Result]:
        """Run ``(case, suffix, bytes)`` cases; yield one :class:`Result` per case."""
        todo = iter(cases)
        self._pool = [self._start() for _ in range(self.workers)]
        busy: dict[object, _Worker] = {}
        exhausted = False
        try:
            while True:
                for w in self._pool:
                    if w.case is None and not exhausted:
                        nxt = next(todo, None)
                        if nxt is None:
                            exhausted = True
                            break
                        w.case = nxt[0]
                        w.wall_start = time.monotonic()
                        w.deadline = w.wall_start + self.wall_factor * self.timeout
                        w.cpu_start = w.cpu() or 0.0
                        self._sent += 1
                        w.conn.send((self._sent, nxt[1], nxt[2]))
                        busy[w.conn] = w
                if not busy:
                    return
                for conn in wait(list(busy), timeout=0.5):
                    w = busy.pop(conn)
                    try:
                        outcome, detail = conn.recv()
                    except (EOFError, OSError):
                        outcome, detail = self._died(w)
                    yield self._record(w, outcome, detail)
                now = time.monotonic()
                for conn, w in list(busy.items()):
                    if w.over(self.timeout, now):
                        busy.pop(conn)
                        w.process.kill()
                        w.process.join()
                        yield self._record(w, "timeout", f"over {self.timeout:g} s of CPU")
                        self._replace(w)
        finally:
            self.close()

    def _died(self, w: _Worker) -> tuple[str, str]:
        w.process.join(5)
        code = w.process.exitcode
        self._replace(w)
        if code is not None and code < 0:
            return "crash", f"signal {signal.Signals(-code).name}"
        return "crash", f"worker exited with status {code}"

    def _replace(self, w: _Worker) -> None:
        self._pool[self._pool.index(w)] = self._start()

    def _record(self, w: _Worker, outcome: str, detail: str) -> Result:
        case, w.case = w.case, None
        self.counts[outcome] += 1
        return Result(case, outcome, detail)

    def close(self) -> None:
        for w in self._pool:
            try:
                w.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        for w in self._pool:
            w.process.join(2)
            if w.process.is_alive():
                w.process.kill()
                w.process.join()
        self._pool = []
