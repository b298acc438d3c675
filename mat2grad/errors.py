"""The one exception type mat2grad raises for bad input and unsupported networks."""

from __future__ import annotations

import contextlib
import functools
import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

__all__ = [
    "Mat2GradError",
    "first_line",
    "is_out_of_memory",
    "out_of_memory",
    "refuse_out_of_memory",
    "size_text",
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


def size_text(nbytes: float) -> str:
    """``nbytes`` for people: 1.5 GiB, 12 TiB."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if nbytes < 1024 or unit == "TiB":
            return f"{nbytes:.3g} {unit}" if unit != "bytes" else f"{int(nbytes)} bytes"
        nbytes /= 1024
    return f"{nbytes:.3g} PiB"  # pragma: no cover - the loop returns


def out_of_memory(where: str, exc: BaseException, remedy: str | None = None) -> Mat2GradError:
    """The Mat2GradError for the allocation failure ``exc`` in ``where``: how much more
    was asked for, and what to do (``remedy``; by default, smaller batches or streaming)."""
    found = _TRIED.search(str(exc))
    size = ""
    if found and found.group(1):
        size = f" ({size_text(int(found.group(1)))} more)"
    elif found:
        size = f" ({found.group(2)} more)"
    remedy = remedy or (
        "pass fewer samples per call or a smaller chunk_size, or stream the results "
        "(jacobian_chunks, --scheduler/--workers)"
    )
    return Mat2GradError(f"{where}: out of memory{size} ({type(exc).__name__}); {remedy}")


@contextlib.contextmanager
def _memory_as_error(where: str) -> Iterator[None]:
    """Allocation failures inside the block raised as :func:`out_of_memory`'s error."""
    try:
        yield
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            raise
        raise out_of_memory(where, exc) from None


def refuse_out_of_memory(fn: F, name: str | None = None) -> F:
    """``fn`` with its allocation failures (see :func:`is_out_of_memory`) raised as the
    Mat2GradError of :func:`out_of_memory`, naming ``name`` (default: the function's).
    A generator function keeps being one."""
    where = name or fn.__name__

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream(*args: Any, **kwargs: Any) -> Any:
            with _memory_as_error(where):
                yield from fn(*args, **kwargs)

        return cast(F, stream)

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        with _memory_as_error(where):
            return fn(*args, **kwargs)

    return cast(F, call)
