"""The command line: argparse subcommands -> the commands of :mod:`mat2grad.commands` ->
exit codes. No logic here.

Exit codes: 0 success, 1 a runtime error (one line ``mat2grad: <message>`` on stderr), 2 a
usage error (argparse), 130 interrupted. ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence

from ..commands.messages import one_line, warnings_on_stderr
from ..errors import Mat2GradError
from .handlers import HANDLERS
from .parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (tests call it in-process)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings_on_stderr():
            return int(HANDLERS[args.command](args) or 0)
    except Mat2GradError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"mat2grad: {one_line(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mat2grad: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line, the traceback behind --debug
        if args.debug:
            traceback.print_exc()
        print(
            f"mat2grad: internal error: {type(exc).__name__}: {one_line(str(exc))} "
            "(rerun with --debug for the traceback and report it)",
            file=sys.stderr,
        )
        return 1
