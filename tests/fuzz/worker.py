"""One fuzz case, run inside a worker process: load -> predict -> jacobian, classified."""

from __future__ import annotations

import os
import resource
import signal
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import torch

import mat2grad
from mat2grad.contract import contract_of, model_dtype_device

__all__ = ["serve", "run_case"]

MAX_ELEMENTS = 1_000_000  # the harness's own input size cap: beyond it, stop after loading


def run_case(path: Path, action=None) -> tuple[str, str]:
    """``(outcome, detail)`` of ``action(path)`` (load -> predict -> jacobian by default):
    loaded, mat2grad_error, memory or other."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (action or _exercise)(path)
        return "loaded", ""
    except mat2grad.Mat2GradError as exc:
        text = str(exc)
        return "mat2grad_error", text if "\n" not in text.strip() else "MULTILINE " + text
    except MemoryError:
        return "memory", "MemoryError: " + traceback.format_exc(limit=-3)
    except Exception as exc:  # noqa: BLE001 - classifying every other exception is the point
        detail = f"{type(exc).__name__}: {exc}"[:300] + "\n" + traceback.format_exc(limit=-4)
        if "allocate" in str(exc) or isinstance(exc, MemoryError):
            return "memory", detail
        return "other", detail


def _exercise(path: Path) -> None:
    net = mat2grad.load(path)
    contract = contract_of(net)
    if contract.not_differentiable:
        return
    dtype, _ = model_dtype_device(net)
    gen = torch.Generator().manual_seed(0)
    xs = []
    for shape in contract.input_shapes:
        dims = (2, *(3 if d is None else d for d in (shape or ())))
        if any(d < 0 for d in dims) or int(np.prod(dims, dtype=object)) > MAX_ELEMENTS:
            return
        xs.append(torch.rand(dims, generator=gen, dtype=dtype))
    if not xs:
        return
    mat2grad.predict(net, *xs)
    mat2grad.jacobian(net, *xs)


def _hang(path: Path) -> None:
    while True:
        time.sleep(1)


#: Cases that misbehave on purpose, so the tests see each outcome classified.
SELF_TESTS = {
    ".segv": lambda path: os.kill(os.getpid(), signal.SIGSEGV),
    ".hang": _hang,
    ".memory": lambda path: bytearray(4 << 30),  # beyond the 2 GiB address-space limit
    ".other": lambda path: [][0],
}


def serve(conn, workdir: str, memory_limit: int) -> None:
    """Worker loop: receive ``(case id, suffix, bytes)``, send back ``(outcome, detail)``."""
    if memory_limit:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    torch.set_num_threads(1)
    os.makedirs(workdir, exist_ok=True)
    while True:
        msg = conn.recv()
        if msg is None:
            return
        case_id, suffix, data = msg
        path = Path(workdir) / f"case{case_id}{suffix}"
        path.write_bytes(data)
        try:
            result = run_case(path, SELF_TESTS.get(suffix, _exercise))
        finally:
            path.unlink(missing_ok=True)
        conn.send(result)
