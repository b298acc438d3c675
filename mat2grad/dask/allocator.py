"""The C allocator's thresholds in a Dask worker process, set back to glibc's own.

NOTE: [Allocator thresholds in Dask workers]
    Dask's nanny starts each worker process with ``MALLOC_TRIM_THRESHOLD_=65536`` (its
    ``distributed.nanny.pre-spawn-environ``), so that freed memory goes back to the system
    at once. Setting any threshold by hand turns off glibc's own adjustment, which raises
    the mmap threshold (up to 32 MiB) once a large block is freed: with it off, every
    allocation of 128 KiB or more is a fresh mapping, and every temporary array of a
    block's computation pays a page fault per 4 KiB page. Measured on the 10-20-3 network
    with two workers, one torch thread each: a block of 2^16 samples took 33 ms (8842 page
    faults) against 16 ms (108) with glibc's thresholds; a block of 2^18, 100 ms against
    65 ms. So the first task a worker runs sets the thresholds glibc itself would reach
    (mmap 32 MiB, trim 64 MiB): a worker then keeps at most 64 MiB of freed memory for
    reuse. Nothing is changed where ``MALLOC_TRIM_THRESHOLD_`` is not in the environment
    (threads in the client's process, a worker started another way), where
    ``MALLOC_MMAP_THRESHOLD_`` is (a choice made on purpose: set it to keep yours), outside
    a Dask worker (a process whose user set the variable), or off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "restore_thresholds"]

#: glibc's largest dynamic mmap threshold on 64-bit systems, and the trim threshold its
#: adjustment sets with it (twice the mmap threshold)
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3

_LOCK = threading.Lock()
_DONE: list[str] = []  # what restore_thresholds did in this process, once done


def restore_thresholds(workers_only: bool = True) -> str:
    """Set glibc's thresholds in this process if a fixed trim threshold turned its own off
    (once per process; see NOTE: [Allocator thresholds in Dask workers]), and, with
    ``workers_only``, only in a Dask worker's task (elsewhere the variable is the user's).

    Returns:
        What was done: ``"restored"``, or why not (``"not fixed"``, ``"chosen"``,
        ``"not a worker"``, ``"not glibc"``).
    """
    with _LOCK:
        if not _DONE:
            _DONE.append(_restore(workers_only))
        return _DONE[0]


def _in_worker() -> bool:
    try:
        from distributed import get_worker
    except ImportError:  # pragma: no cover - the dask extra installs it
        return False
    try:
        get_worker()
    except ValueError:
        return False
    return True


def _restore(workers_only: bool) -> str:
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return "not fixed"
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return "chosen"
    if workers_only and not _in_worker():
        return "not a worker"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - glibc only: other C libraries lack it
    except (OSError, AttributeError):
        return "not glibc"
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1:  # pragma: no cover - glibc accepts
        return "not glibc"
    mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    return "restored"
