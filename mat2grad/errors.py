"""The one exception type mat2grad raises for bad input and unsupported networks."""

from __future__ import annotations

__all__ = ["Mat2GradError"]


class Mat2GradError(Exception):
    """Raised for every user-facing failure: unreadable files, unsupported networks, bad data.

    Messages follow one pattern: where (file, network path, layer, function), what was
    expected, what was found, and what to do. The CLI prints them as one line,
    ``mat2grad: <message>``, and exits 1.
    """
