"""The CLI's arguments: one argparse subcommand per command, built from shared argument
groups. Every option's dest is the field of the command's options dataclass it fills
(:mod:`mat2grad.commands.options`); closed vocabularies come from its ``CHOICES``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial

from .._version import __version__
from ..commands import CHOICES
from ..commands.matlab import WORKER_IDLE_TIMEOUT
from ..convert import DEFAULT_OPSET, ONNX_OPSETS
from .help import CHECK_ONNX, COMMANDS, CONVERT_DTYPE, CONVERT_EPILOG, EPILOG

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


# --------------------------------------------------------------------------------------
# Each command's own arguments
# --------------------------------------------------------------------------------------


def _add_matlab_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--folder", action="store_true", help="print only the folder of the helpers")
    p.add_argument(
        "--install",
        choices=("octave", "matlab"),
        help="write the setup into that program's startup file (~/.octaverc; "
        "Documents/MATLAB/startup.m)",
    )
    p.add_argument("--startup", metavar="FILE", help="the startup file to write instead")
    p.add_argument("--python", metavar="PYTHON", help="the Python to name (default: this one)")


def _add_worker_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=WORKER_IDLE_TIMEOUT,
        metavar="SECONDS",
        help=f"end after SECONDS without a request (0: never; default {WORKER_IDLE_TIMEOUT:g})",
    )


def _add_info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="a MAT-file (or .onnx file)")
    p.add_argument("--json", action="store_true", help="print a JSON description instead")


def _add_output_index_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--output-index",
        metavar="K",
        type=int,
        help="which row of Y to differentiate (1-based, default 1)",
    )


def _add_check_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tol", type=float, default=1e-6, help="relative tolerance (default 1e-6, float64)"
    )
    p.add_argument(
        "--max-samples",
        type=int,
        default=200,
        metavar="N",
        help="check at most N samples, evenly spaced (default 200)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for random points (default 0)")


def _add_grad_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--targets",
        metavar="DATA.mat",
        help="MAT-file with the targets (default: the --inputs file)",
    )
    p.add_argument(
        "--targets-var",
        metavar="NAME",
        help="variable (or MATLAB-style path) holding the targets, S x Q (Q x S with "
        "--samples rows); default T or t; a cell with one matrix per output",
    )
    p.add_argument(
        "--ew-var",
        metavar="NAME",
        help="variable of the targets file holding error weights EW (1 x Q per sample, "
        "S x 1 per row, or S x Q; transposed with --samples rows)",
    )
    p.add_argument(
        "--performance",
        metavar="NAME",
        help="performance function: mse, sse, mae, sae or crossentropy (default: the "
        "network's performFcn)",
    )
    p.add_argument(
        "--normalization",
        choices=CHOICES["normalization"],
        help="error normalization (default: the network's performParam.normalization)",
    )
    p.add_argument(
        "--regularization",
        type=float,
        metavar="R",
        help="weight regularization in [0, 1] (default: performParam.regularization)",
    )
    p.add_argument(
        "--convention",
        choices=CHOICES["convention"],
        default="math",
        help="math: +d perf/d w (default); matlab: what defaultderiv('dperf_dwb',...) "
        "returns, the negative gradient",
    )
    p.add_argument(
        "--wb-order",
        choices=CHOICES["wb_order"],
        default="bias-first",
        help="order of dwb: bias-first is getwb(net) in MATLAB R2012b and later (default); "
        "bias-last is R2010b-R2012a",
    )


def _add_convert_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--opset",
        type=int,
        choices=ONNX_OPSETS,
        metavar="N",
        help=f".onnx only: ONNX opset, {ONNX_OPSETS.start} to {ONNX_OPSETS.stop - 1} (default "
        f"{DEFAULT_OPSET}, for MATLAB's importNetworkFromONNX)",
    )
    p.add_argument(
        "--matlab-layout",
        action="store_true",
        help=".onnx only: inputs R x Q and outputs S x Q, one sample per column as in MATLAB "
        "(default: batch-first (Q, R), features last)",
    )
    p.add_argument(
        "-o", "--output", metavar="OUT", required=True, help="the file to write (.pt2, .pt, .onnx)"
    )


# --------------------------------------------------------------------------------------
# Argument groups several commands share
# --------------------------------------------------------------------------------------


def _add_model_args(
    p: argparse.ArgumentParser, dtype_help: str | None = None, dtype_default: str | None = "float64"
) -> None:
    p.add_argument("file", metavar="FILE", help="MAT-file holding the network (or .onnx)")
    p.add_argument(
        "--network",
        metavar="PATH",
        help="MATLAB-style path of the network in FILE (net, net1.net, "
        "STATE.network.values{1}); needed when FILE holds several",
    )
    p.add_argument(
        "--dtype",
        choices=CHOICES["dtype"],
        default=dtype_default,
        help=dtype_help
        or "computation precision (default float64, MATLAB's double); results are "
        "written as double",
    )


def _add_data_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument(
        "--inputs",
        metavar="DATA.mat",
        required=required,
        help="MAT-file with the inputs (may be FILE itself)",
    )
    p.add_argument(
        "--inputs-var",
        metavar="NAME",
        help="variable (or MATLAB-style path) holding the inputs; default X or x, else the "
        "only numeric matrix; a cell with one matrix per input for several inputs",
    )
    p.add_argument(
        "--samples",
        choices=CHOICES["samples"],
        default="columns",
        help="columns: R x Q, one sample per column (MATLAB's convention, default); "
        "rows: Q x R; results follow the same convention",
    )


def _add_output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", metavar="OUT.mat", required=True, help="result file")


def _add_gradient_args(
    p: argparse.ArgumentParser, mode: bool = True, output_format: bool = True
) -> None:
    if mode:
        p.add_argument(
            "--mode",
            choices=CHOICES["mode"],
            default="auto",
            help="how to differentiate: auto (default: the closed form where the network "
            "has one, else reverse mode unless outputs outnumber inputs), rev, fwd, analytic",
        )
    p.add_argument(
        "--chunk-size",
        type=int,
        metavar="N",
        help="samples per chunk (default: from a ~32 MB working-set budget)",
    )
    if output_format:
        p.add_argument(
            "--format",
            choices=CHOICES["format"],
            default="auto",
            help="MAT-file version: auto (default: v7, or v7.3 when a variable is over "
            "2 GiB), v7, v7.3 (HDF5; MATLAB only, Octave cannot read it)",
        )
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads for torch (default: torch's choice; 1 is often faster on a "
        "machine shared with other jobs)",
    )


def _add_onnx_args(p: argparse.ArgumentParser, wrt: bool = True, extra: str = "") -> None:
    g = p.add_argument_group(
        "ONNX models",
        "Data for an .onnx FILE: one array per input (a cell for several, in the model's "
        "input order); 'mat2grad info FILE' shows each input's layout and sizes. " + extra,
    )
    g.add_argument(
        "--layout",
        choices=CHOICES["layout"],
        help="matlab (default): data as MATLAB holds it, features C x N (also for "
        "1x1x1xC inputs), images H x W x C x N, sequences C x N x T; results alike, "
        "Jacobians S x R x N with R the elements of one input sample in MATLAB's "
        "column-major order (reshape(J(s,:,n), H, W, C) is a gradient image). onnx: "
        "batch-first N x (the file's shape without its batch axis), results batch-first, "
        "Jacobians N x (output shape) x (input shape)",
    )
    if wrt:
        g.add_argument(
            "--wrt",
            metavar="NAME",
            action="append",
            help="differentiate with respect to this input (repeatable, or a comma list; "
            "default: every floating input); J is then numOutputs x (number of --wrt "
            "inputs)",
        )


def _add_dynamic_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "dynamic networks (time series)",
        "For networks with delays or feedback the inputs are a numInputs x TS cell of R x Q "
        "matrices (Q series side by side), or one R x TS matrix for one series; results "
        "come back in the same form, with the final delay states Xf and Af.",
    )
    g.add_argument(
        "--xi-var", metavar="NAME", help="initial input delay states Xi (numInputs x ID cell)"
    )
    g.add_argument(
        "--ai-var", metavar="NAME", help="initial layer delay states Ai (numLayers x LD cell)"
    )
    g.add_argument(
        "--targets-var",
        metavar="NAME",
        help="target series T (the feedback targets of a NARX network); implies --prepare, "
        "like preparets(net, X, {}, T)",
    )
    g.add_argument(
        "--prepare",
        action="store_true",
        help="shift the series to fill the delay states, like MATLAB's preparets",
    )
    g.add_argument(
        "--closed-loop",
        action="store_true",
        help="close the feedback loop first, like MATLAB's closeloop (multistep prediction)",
    )
    g.add_argument(
        "--known-inputs-var",
        metavar="NAME",
        help="inputs X1 of a known sequence: simulate it in open loop, close the loop on its "
        "final states, then predict over --inputs-var (MATLAB's multistep prediction)",
    )
    g.add_argument(
        "--known-targets-var", metavar="NAME", help="feedback targets T1 of the known sequence"
    )
    g.add_argument(
        "--steps",
        metavar="N",
        type=int,
        help="time steps to simulate when the network has no inputs (closed-loop narnet)",
    )


def _add_form_args(p: argparse.ArgumentParser) -> None:
    """The gradient form for dynamic networks (mat2grad jacobian)."""
    g = p.add_argument_group("gradients through time (dynamic networks)")
    g.add_argument(
        "--form",
        choices=CHOICES["form"],
        help="full (default): J(:,:,t,u,q) = dY{t}/dX{u}, S x R x TS x TS x Q (zero for u > t); "
        "step: J(:,:,t,d+1,q) = dY{t}/dX{t-d} for lags d = 0..--max-lag; sum: dX, the "
        "gradient of the sum of all outputs (or of --weights-var .* Y) over the whole "
        "sequence, in the inputs' layout (one reverse pass through time)",
    )
    g.add_argument(
        "--max-lag",
        metavar="L",
        type=int,
        help="largest lag of --form step (default: numInputDelays)",
    )
    g.add_argument(
        "--weights-var",
        metavar="NAME",
        help="--form sum: output weights W (like Y) so the scalar is sum(W .* Y)",
    )


#: The argument groups of each command, in the order its --help lists them.
_GROUPS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], ...]] = {
    "info": (_add_info_args,),
    "predict": (
        _add_model_args,
        _add_data_args,
        _add_output_args,
        partial(_add_onnx_args, wrt=False),
        _add_dynamic_args,
    ),
    "jacobian": (
        _add_model_args,
        _add_data_args,
        _add_gradient_args,
        _add_output_args,
        _add_onnx_args,
        _add_dynamic_args,
        _add_form_args,
    ),
    "hessian": (
        _add_model_args,
        _add_data_args,
        _add_output_index_args,
        partial(_add_gradient_args, mode=False),
        _add_output_args,
        _add_onnx_args,
    ),
    "check": (
        _add_model_args,
        partial(_add_data_args, required=False),
        _add_check_args,
        partial(_add_gradient_args, output_format=False),
        partial(_add_onnx_args, extra=CHECK_ONNX),
    ),
    "grad": (_add_model_args, _add_data_args, _add_grad_args, _add_output_args),
    "matlab": (_add_matlab_args,),
    "worker": (_add_worker_args,),
    "convert": (
        partial(_add_model_args, dtype_help=CONVERT_DTYPE, dtype_default=None),
        _add_convert_args,
    ),
}
