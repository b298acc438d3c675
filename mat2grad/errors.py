"""The one exception type mat2grad raises for bad input and unsupported networks."""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from typing import Any, TypeVar, cast

__all__ = [
    "Mat2GradError",
    "first_line",
    "is_out_of_memory",
    "out_of_memory",
    "refuse_out_of_memory",
]

F = TypeVar("F", bound=Callable[..., Any])


class Mat2GradError(Exception):
    """Raised for every user-facing failure: unreadable files, unsupported networks, bad data.

    Messages follow one pattern: where (file, network path, layer, function), what was
    expected, what was found, and what to do. The CLI prints them as one line,
    ``mat2grad: <message>``, and exits 1.
    """


def first_line(what: BaseException | str, limit: int | None = None) -> str:
    """The first non-blank line of a message or of an exception's text, stripped.

    An exception with no text gives its type's name; ``limit`` cuts the line to that many
    characters (foreign libraries' messages can be pages long).
    """
    text = str(what)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if lines:
        line = lines[0]
    else:
        line = type(what).__name__ if isinstance(what, BaseException) else ""
    return line[:limit] if limit is not None else line


_OUT_OF_MEMORY = re.compile(r"can't allocate memory|out of memory", re.IGNORECASE)
_TRIED = re.compile(r"allocate (\d+) bytes|allocate ([\d.]+ [KMGT]iB)")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure: ``MemoryError``, or torch's "can't
    allocate memory" / "out of memory" ``RuntimeError``."""
    return isinstance(exc, MemoryError) or (
        isinstance(exc, RuntimeError) and bool(_OUT_OF_MEMORY.search(str(exc)))
    )


def out_of_memory(where: str, exc: BaseException, remedy: str | None = None) -> Mat2GradError:
    """The Mat2GradError for the allocation failure ``exc`` in ``where``: how much more
    was asked for, and what to do (``remedy``; by default, smaller batches or streaming)."""
    found = _TRIED.search(str(exc))
    size = ""
    if found and found.group(1):
        size = f" ({int(found.group(1)) / 2**20:.4g} MiB more)"
    elif found:
        size = f" ({found.group(2)} more)"
    remedy = remedy or (
        "pass fewer samples per call or a smaller chunk_size, or stream the results "
        "(jacobian_chunks, --scheduler/--workers)"
    )
    return Mat2GradError(f"{where}: out of memory{size} ({type(exc).__name__}); {remedy}")


def refuse_out_of_memory(fn: F, name: str | None = None) -> F:
    """``fn`` with its allocation failures (see :func:`is_out_of_memory`) raised as the
    Mat2GradError of :func:`out_of_memory`, naming ``name`` (default: the function's).
    A generator function keeps being one."""
    where = name or fn.__name__

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except (MemoryError, RuntimeError) as exc:
                if not is_out_of_memory(exc):
                    raise
                raise out_of_memory(where, exc) from None

        return cast(F, stream)

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (MemoryError, RuntimeError) as exc:
            if not is_out_of_memory(exc):
                raise
            raise out_of_memory(where, exc) from None

    return cast(F, call)
