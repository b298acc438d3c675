"""The command line: argparse subcommands -> the commands of :mod:`mat2grad.commands` ->
exit codes. No logic here.

Exit codes: 0 success, 1 a runtime error (one line ``mat2grad: <message>`` on stderr), 2 a
usage error (argparse), 130 interrupted. ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from ..commands import FileResults, JacobianOptions, from_namespace, jacobian
from ..commands.messages import one_line, warnings_on_stderr
from ..errors import Mat2GradError
from .handlers import HANDLERS

# _add_*: compatibility re-exports for tests that build a parser from the argument groups
# (see also _jacobian_dynamic below); they go once those tests call main([...]).
from .parser import (  # noqa: F401
    _add_data_args,
    _add_dynamic_args,
    _add_form_args,
    _add_model_args,
    _add_output_args,
    build_parser,
)

__all__ = ["build_parser", "main", "run_handler"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (tests call it in-process)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_handler(args, HANDLERS[args.command])


def run_handler(args: argparse.Namespace, handler: Callable[[argparse.Namespace], Any]) -> int:
    """Run ``handler(args)`` the way the command line does: its exit code, or 1 with one
    line ``mat2grad: <message>`` on stderr for an error (the traceback with ``--debug``),
    130 when interrupted; warnings go to stderr. The worker runs its requests through it."""
    try:
        with warnings_on_stderr():
            return int(handler(args) or 0)
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


def _jacobian_dynamic(args: argparse.Namespace, model: Any) -> int:
    """Compatibility: :func:`mat2grad.commands.jacobian.run_dynamic` for parsed arguments
    (tests call it directly)."""
    jacobian.run_dynamic(from_namespace(JacobianOptions, args), model, FileResults(args.output))
    return 0
