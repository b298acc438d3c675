"""The command line: argparse subcommands -> library calls -> exit codes. No logic here.

Exit codes: 0 success, 1 a runtime error (one line ``mat2grad: <message>`` on stderr), 2 a
usage error (argparse), 130 interrupted. ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from . import __version__
from .errors import Mat2GradError

__all__ = ["main", "build_parser"]

EPILOG = """\
Data layout: MAT-files hold MATLAB's layout (inputs R x Q, one column per sample; outputs
S x Q); pass --samples rows for data stored one sample per row. Results are written
atomically as MAT v7 files.

examples:
  mat2grad info net.mat
  mat2grad predict net.mat --inputs data.mat -o Y.mat
  mat2grad predict workspace.mat --inputs workspace.mat --inputs-var Input_Training \\
      --samples rows --network net -o Y.mat
  mat2grad grad net.mat --inputs data.mat --targets data.mat -o G.mat
"""


def build_parser() -> argparse.ArgumentParser:
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

    p = sub.add_parser(
        "info",
        parents=[common],
        help="describe every network in a file",
        description="Describe every network in a MAT-file (its path, format version, inputs, "
        "layers, outputs, processing functions, delays) or an ONNX model.",
    )
    p.add_argument("file", metavar="FILE", help="a MAT-file (or .onnx file)")
    p.add_argument("--json", action="store_true", help="print a JSON description instead")
    p.set_defaults(handler=_cmd_info)

    p = sub.add_parser(
        "predict",
        parents=[common],
        help="evaluate a network on inputs (like MATLAB's sim) and write Y",
        description="Evaluate the network on the inputs and write Y (S x Q; Q x S with "
        "--samples rows; a cell with one matrix per output for several outputs).",
    )
    _add_model_args(p)
    _add_data_args(p)
    _add_output_args(p)
    p.set_defaults(handler=_cmd_predict)

    p = sub.add_parser(
        "grad",
        parents=[common],
        help="gradient of the performance (mse, crossentropy, ...) w.r.t. weights and biases",
        description="Backpropagation: the network's performance on the inputs and targets "
        "(as MATLAB's perform computes it) and its gradient with respect to every weight and "
        "bias. Writes perf; db, dIW, dLW (cells shaped like net.b, net.IW, net.LW, [] where "
        "nothing is connected); dwb (a column in getwb(net) order).",
    )
    _add_model_args(p)
    _add_data_args(p)
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
        choices=("none", "standard", "percent"),
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
        choices=("math", "matlab"),
        default="math",
        help="math: +d perf/d w (default); matlab: what defaultderiv('dperf_dwb',...) "
        "returns, the negative gradient",
    )
    p.add_argument(
        "--wb-order",
        choices=("bias-first", "bias-last"),
        default="bias-first",
        help="order of dwb: bias-first is getwb(net) in MATLAB R2012b and later (default); "
        "bias-last is R2010b-R2012a",
    )
    _add_output_args(p)
    p.set_defaults(handler=_cmd_grad)
    return parser


# --------------------------------------------------------------------------------------
# Shared argument groups
# --------------------------------------------------------------------------------------


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="MAT-file holding the network (or .onnx)")
    p.add_argument(
        "--network",
        metavar="PATH",
        help="MATLAB-style path of the network in FILE (net, net1.net, "
        "STATE.network.values{1}); needed when FILE holds several",
    )
    p.add_argument(
        "--dtype",
        choices=("float64", "float32"),
        default="float64",
        help="computation precision (default float64, MATLAB's double); results are "
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
        choices=("columns", "rows"),
        default="columns",
        help="columns: R x Q, one sample per column (MATLAB's convention, default); "
        "rows: Q x R; results follow the same convention",
    )


def _add_output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", metavar="OUT.mat", required=True, help="result file")


# --------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------


def _cmd_info(args: argparse.Namespace) -> int:
    from .info import describe_file

    text, data = describe_file(args.file)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(text)
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from . import matfile
    from .predict import predict_arrays

    model, inputs = _model_and_inputs(args)
    outputs = predict_arrays(model, inputs)
    y = [matfile.samples_to_matlab(o, args.samples) for o in outputs]
    matfile.write_mat(args.output, {"Y": y[0] if len(y) == 1 else _column_cell(y)})
    return 0


def _cmd_grad(args: argparse.Namespace) -> int:
    from . import matfile
    from .performance import weight_gradient

    model, inputs = _model_and_inputs(args)
    targets, ew = _targets(args, model)
    g = weight_gradient(
        model,
        inputs,
        targets,
        performance=args.performance,
        ew=ew,
        normalization=args.normalization,
        regularization=args.regularization,
        convention=args.convention,
        wb_order=args.wb_order,
    )
    layers, n_in = g.num_layers, g.num_inputs
    matfile.write_mat(
        args.output,
        {
            "perf": g.perf,
            "db": matfile.weight_cells((layers, 1), {(i, 1): v for i, v in g.db.items()}),
            "dIW": matfile.weight_cells((layers, n_in), g.dIW),
            "dLW": matfile.weight_cells((layers, layers), g.dLW),
            "dwb": matfile.column(g.dwb),
        },
    )
    return 0


def _targets(args: argparse.Namespace, model: Any) -> tuple[list[Any], list[Any] | None]:
    """The targets (and error weights) of --targets in batch-first layout."""
    from . import matfile

    source = args.targets or args.inputs
    variables = matfile.read_mat(source)
    same_file = source == args.inputs
    exclude = (args.inputs_var,) if same_file and args.inputs_var else ()
    name, value = matfile.select_variable(
        variables,
        args.targets_var,
        source=source,
        role="targets",
        option="--targets-var",
        defaults=("T", "t"),
        exclude=exclude,
    )
    spec = getattr(model, "spec", None)  # MATLAB networks; others fail in weight_gradient
    sizes = tuple(int(s[0]) for s in model.output_shapes)
    targets = matfile.samples_from_matlab(
        value,
        sizes,
        samples=args.samples,
        what=f"{source}: '{name}'",
        size_names=[f"outputs{{{o.layer}}}.size" for o in spec.outputs] if spec else None,
    )
    ew = None
    if args.ew_var:
        ew_value = matfile.resolve(variables, args.ew_var, source=source)
        ew = matfile.error_weights_from_matlab(
            ew_value, len(sizes), samples=args.samples, what=f"{source}: '{args.ew_var}'"
        )
    return targets, ew


def _model_and_inputs(args: argparse.Namespace) -> tuple[Any, list[Any]]:
    """Load the network of FILE and the inputs of --inputs in batch-first layout."""
    import torch

    from . import matfile
    from .loading import load

    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    model = load(args.file, args.network, dtype=dtype)
    variables = matfile.read_mat(args.inputs)
    name, value = matfile.select_variable(variables, args.inputs_var, source=args.inputs)
    sizes = tuple(int(s[0]) for s in model.input_shapes)
    inputs = matfile.samples_from_matlab(
        value, sizes, samples=args.samples, what=f"{args.inputs}: '{name}'"
    )
    return model, inputs


def _column_cell(items: Sequence[Any]) -> Any:
    import numpy as np

    cell = np.empty((len(items), 1), dtype=object)
    for k, item in enumerate(items):
        cell[k, 0] = item
    return cell


# --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (tests call it in-process)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except Mat2GradError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"mat2grad: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mat2grad: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line, the traceback behind --debug
        if args.debug:
            traceback.print_exc()
        print(
            f"mat2grad: internal error: {type(exc).__name__}: {_one_line(str(exc))} "
            "(rerun with --debug for the traceback and report it)",
            file=sys.stderr,
        )
        return 1


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
