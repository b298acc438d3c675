"""How the front doors report: every message, warning or error, as one line on stderr."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from typing import Any

__all__ = ["one_line", "warnings_on_stderr"]


def one_line(text: str) -> str:
    """``text`` with every run of whitespace, line breaks included, as one space.

    Unlike :func:`mat2grad.errors.first_line`, which keeps a foreign library's first line,
    this keeps the whole of a message that spans lines.
    """
    return " ".join(text.split())


def _show_warning(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
    print(f"mat2grad: warning: {one_line(str(message))}", file=sys.stderr)


@contextlib.contextmanager
def warnings_on_stderr() -> Iterator[None]:
    """Within the block, each warning is the line ``mat2grad: warning: <message>`` on
    stderr (the previous way of showing warnings comes back afterwards)."""
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        yield
