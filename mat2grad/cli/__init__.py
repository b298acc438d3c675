"""The command line: argparse subcommands -> the commands of :mod:`mat2grad.commands` ->
exit codes. No logic here. Only the command that runs is imported (see
:mod:`mat2grad.commands`): ``info`` on a MAT-file and ``--version`` import no torch.

Exit codes: 0 success, 1 a runtime error (one line ``mat2grad: <message>`` on stderr), 2 a
usage error (argparse), 130 interrupted. ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from ..commands import RESULT_COMMANDS
from ..commands.messages import one_line, warnings_on_stderr
from ..errors import Mat2GradError
from .handlers import HANDLERS, RESULT_HANDLER
from .parser import build_parser

__all__ = ["build_parser", "main", "run_handler", "run_line"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (tests call it in-process)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "worker":  # the worker runs command lines the way run_line does
        from ..worker import serve

        return serve(partial(run_line, parser=parser), idle_timeout=args.idle_timeout)
    return run_handler(args, HANDLERS[args.command])


def run_line(argv: Sequence[str], parser: argparse.ArgumentParser | None = None) -> int:
    """One command line run in this process, as the worker runs its requests: networks are
    kept between calls (:func:`mat2grad.loading.cached_load`); returns the exit code."""
    parser = parser or build_parser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:  # usage errors, --help, --version: argparse has printed
        return exc.code if isinstance(exc.code, int) else 1
    if args.command in RESULT_COMMANDS:
        from ..loading import cached_load  # torch: only the commands that compute need it

        return run_handler(args, partial(RESULT_HANDLER, loader=cached_load))
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
    except BrokenPipeError:
        # the reader went away (``mat2grad info f | head``): nothing to report; stdout is
        # pointed at /dev/null so that the interpreter's own flush at exit fails no more
        _quiet_stdout()
        return 1
    except Exception as exc:  # a bug: still one line, the traceback behind --debug
        if args.debug:
            traceback.print_exc()
        print(
            f"mat2grad: internal error: {type(exc).__name__}: {one_line(str(exc))} "
            "(rerun with --debug for the traceback and report it)",
            file=sys.stderr,
        )
        return 1


def _quiet_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (captured)
        pass
