"""The CLI's arguments: one argparse subcommand per command, built from shared argument
groups. Every option's dest is the field of the command's options dataclass it fills
(:mod:`mat2grad.commands.options`); closed vocabularies come from its ``CHOICES``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial

from .._version import __version__
from .groups import (
    add_check_args,
    add_convert_args,
    add_data_args,
    add_dynamic_args,
    add_form_args,
    add_grad_args,
    add_gradient_args,
    add_info_args,
    add_matlab_args,
    add_model_args,
    add_onnx_args,
    add_output_args,
    add_output_index_args,
    add_sens_args,
    add_worker_args,
)
from .help import CHECK_ONNX, COMMANDS, CONVERT_DTYPE, CONVERT_EPILOG, EPILOG
from .placement import add_dask_args, add_device_args

__all__ = ["build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The ``mat2grad`` parser; its subcommand is ``args.command``."""
    parser = argparse.ArgumentParser(
        prog="mat2grad",
        description="Gradients of trained MATLAB shallow networks and ONNX models.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mat2grad {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (summary, description) in COMMANDS.items():
        extra = (
            {"epilog": CONVERT_EPILOG, "formatter_class": argparse.RawDescriptionHelpFormatter}
            if name == "convert"
            else {}
        )
        p = sub.add_parser(name, parents=[common], help=summary, description=description, **extra)
        for add in _GROUPS[name]:
            add(p)
    return parser


_GROUPS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], ...]] = {
    "info": (add_info_args,),
    "predict": (
        add_model_args,
        add_device_args,
        add_data_args,
        add_output_args,
        partial(add_onnx_args, wrt=False),
        add_dynamic_args,
        add_dask_args,
    ),
    "jacobian": (
        add_model_args,
        add_device_args,
        add_data_args,
        add_gradient_args,
        add_output_args,
        add_onnx_args,
        add_dynamic_args,
        add_form_args,
        partial(add_dask_args, threads=False),
    ),
    "hessian": (
        add_model_args,
        add_device_args,
        add_data_args,
        add_output_index_args,
        partial(add_gradient_args, mode=False),
        add_output_args,
        add_onnx_args,
    ),
    "check": (
        add_model_args,
        add_device_args,
        partial(add_data_args, required=False),
        add_check_args,
        partial(add_gradient_args, output_format=False),
        partial(add_onnx_args, extra=CHECK_ONNX),
    ),
    "grad": (add_model_args, add_data_args, add_grad_args, add_output_args),
    "sens": (
        add_model_args,
        add_device_args,
        add_data_args,
        add_sens_args,
        partial(add_gradient_args, mode=False),
        add_output_args,
        partial(add_dask_args, threads=False),
    ),
    "matlab": (add_matlab_args,),
    "worker": (add_worker_args,),
    "convert": (
        partial(add_model_args, dtype_help=CONVERT_DTYPE, dtype_default=None),
        add_convert_args,
    ),
}
