"""The one exception type mat2grad raises for bad input and unsupported networks."""

from __future__ import annotations

__all__ = ["Mat2GradError", "first_line"]


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
