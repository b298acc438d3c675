"""The network as it travels to Dask workers: what it is made of, never a live module.

A :class:`NetworkRef` is a file path, the network's path inside it and a dtype. Each worker
rebuilds the module the first time a task needs it and keeps it (see NOTE: [One module per
worker thread]); a changed file (mtime or size) is read again.

NOTE: [One module per worker thread]
    The engine freezes a module (eval mode, parameters without gradients) while it runs and
    restores it afterwards, so two threads must not share one module. The cache is therefore
    per thread: a worker process with one thread (the default of :func:`local_cluster`)
    builds the network once; the threads-only scheduler builds it once per thread.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..contract import parse_dtype
from ..errors import Mat2GradError
from .allocator import restore_thresholds

__all__ = ["NetworkRef", "as_ref", "cache_info"]

_LOCAL = threading.local()
#: builds in this process (for tests and diagnostics: one per worker thread and file)
_BUILDS = {"count": 0}
_BUILDS_LOCK = threading.Lock()


@dataclass(frozen=True)
class NetworkRef:
    """A network by what it is made of: ``file`` (a MAT-file or an ``.onnx`` file), the
    MATLAB-style ``network`` path inside a MAT-file (None: the only one), and the dtype
    (``"float64"``, MATLAB's double, or ``"float32"``).

    Example:
        >>> ref = NetworkRef("net.mat")                       # doctest: +SKIP
        >>> ref.model().output_shapes                         # the module, built here once
    """

    file: str
    network: str | None = None
    dtype: str = "float64"

    def __post_init__(self) -> None:
        object.__setattr__(self, "file", os.path.abspath(os.fspath(self.file)))
        if parse_dtype(self.dtype) is None:
            raise Mat2GradError("dtype must be 'float64' or 'float32', not None")

    def model(self, threads: int | None = None) -> nn.Module:
        """The module, built once per process and thread (see NOTE: [One module per worker
        thread]); ``threads`` sets torch's CPU threads of this process first."""
        if threads is not None:
            set_threads(threads)
        restore_thresholds()  # see NOTE: [Allocator thresholds in Dask workers]
        try:
            st = os.stat(self.file)
        except OSError:
            raise Mat2GradError(
                f"{self.file}: the network file cannot be read on this worker; workers need "
                "the file at the same path (a shared file system)"
            ) from None
        key = (self, st.st_mtime_ns, st.st_size)
        cache = getattr(_LOCAL, "models", None)
        if cache is None:
            cache = _LOCAL.models = {}
        model = cache.get(key)
        if model is None:
            from ..loading import load  # deferred: loading pulls in the readers (start-up)

            model = load(Path(self.file), self.network, dtype=parse_dtype(self.dtype))
            for old in [k for k in cache if k[0] == self]:
                del cache[old]  # the file changed: drop the stale module
            cache[key] = model
            with _BUILDS_LOCK:
                _BUILDS["count"] += 1
        return model


def as_ref(source: Any, network: str | None = None, dtype: str = "float64") -> NetworkRef:
    """A :class:`NetworkRef` from a ref or a path; a live module is refused."""
    if isinstance(source, NetworkRef):
        return source
    if isinstance(source, nn.Module):
        raise Mat2GradError(
            "mat2grad.dask takes the network as a file (a path or NetworkRef(file, network)), "
            "not a loaded module: workers rebuild it from the file"
        )
    if isinstance(source, str | os.PathLike):
        return NetworkRef(os.fspath(source), network, dtype)
    raise Mat2GradError(
        f"expected a network file path or a NetworkRef, found {type(source).__name__}"
    )


def set_threads(threads: int) -> None:
    """torch's CPU threads for this process (a no-op when already set)."""
    if not isinstance(threads, int) or threads < 1:
        raise Mat2GradError(f"threads must be a whole number >= 1, found {threads!r}")
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def cache_info() -> dict[str, int]:
    """``{"builds": ...}``: how many modules this process has built."""
    return {"builds": _BUILDS["count"]}
