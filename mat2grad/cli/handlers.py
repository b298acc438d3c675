"""The CLI's handlers: parsed arguments -> a command's options -> the command; then what
the command line prints and its exit status. No logic beyond that. A handler reaches its
command through :mod:`mat2grad.commands`, which imports a command's module when it first runs,
so ``mat2grad info`` imports no torch."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import commands
from ..commands import CheckOptions, ConvertOptions, InfoOptions, from_namespace

if TYPE_CHECKING:
    from ..commands.sources import Loader

__all__ = ["HANDLERS", "RESULT_HANDLER"]


def _info(args: argparse.Namespace) -> int:
    text, data = commands.files.info(from_namespace(InfoOptions, args))
    print(json.dumps(data, indent=2) if args.json else text)
    return 0


def _results(args: argparse.Namespace, loader: Loader | None = None) -> int:
    """predict, jacobian, hessian, grad, sens: the command writes its results to -o OUT.mat.
    ``loader`` replaces :func:`mat2grad.load` (the worker's cache)."""
    command = commands.RESULT_COMMANDS[args.command]
    if getattr(args, "scheduler", None) or getattr(args, "workers", None):
        return _dask(args)
    command.run(from_namespace(command.options, args), loader=loader)
    return 0


def _dask(args: argparse.Namespace) -> int:
    """predict, jacobian, sens with --scheduler/--workers: on Dask, the result file printed."""
    from ..commands import dask_run  # deferred: the optional dask extra (start-up time)

    command = commands.RESULT_COMMANDS[args.command]
    opts = from_namespace(command.options, args)
    print(dask_run.run(opts, from_namespace(dask_run.DaskOptions, args)))
    return 0


def _check(args: argparse.Namespace) -> int:
    report = commands.check.run(from_namespace(CheckOptions, args))
    print(f"checked at {report.source}")
    print(report.result.summary())
    if not report.result.passed:
        print(
            f"mat2grad: check failed: max relative error {report.result.max_error:.3g} is "
            f"above --tol {args.tol:g}",
            file=sys.stderr,
        )
        return 1
    return 0


def _convert(args: argparse.Namespace) -> int:
    print(commands.files.convert_file(from_namespace(ConvertOptions, args)))
    return 0


def _matlab(args: argparse.Namespace) -> int:
    opts = commands.matlab.MatlabOptions(args.install, args.startup, args.python)
    if args.install:
        path = commands.matlab.install(opts)
        print(f"mat2grad: the MATLAB/Octave helpers are set up at every start by {path}")
    elif args.folder:
        print(commands.matlab.helpers_folder())
    else:
        print(f"MATLAB/Octave helpers: {commands.matlab.helpers_folder()}")
        print("Paste this line into MATLAB or Octave once (the Python is remembered):")
        print(f"  {commands.matlab.setup_line(args.python)}")
    return 0


#: The handler of the commands whose results are variables; it takes a ``loader`` too.
RESULT_HANDLER = _results

#: The handler of each subcommand.
HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "info": _info,
    "predict": _results,
    "jacobian": _results,
    "hessian": _results,
    "check": _check,
    "grad": _results,
    "sens": _results,
    "convert": _convert,
    "matlab": _matlab,
}
