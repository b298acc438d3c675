"""The command line: argparse subcommands -> library calls -> exit codes. No logic here.

Exit codes: 0 success, 1 a runtime error (one line ``mat2grad: <message>`` on stderr), 2 a
usage error (argparse), 130 interrupted. ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
import warnings
from collections.abc import Sequence
from typing import Any

from . import __version__
from .errors import Mat2GradError

__all__ = ["main", "build_parser"]

EPILOG = """\
Data layout: MAT-files hold MATLAB's layout (inputs R x Q, one column per sample; outputs
S x Q; Jacobians S x R x Q, so that J(:,:,q) = dY(:,q)/dX(:,q)); pass --samples rows for
data stored one sample per row. Results are written atomically as MAT v7 files, or v7.3
(HDF5) when a variable is over 2 GiB.

examples:
  mat2grad info net.mat
  mat2grad predict net.mat --inputs data.mat -o Y.mat
  mat2grad predict workspace.mat --inputs workspace.mat --inputs-var Input_Training \\
      --samples rows --network net -o Y.mat
  mat2grad jacobian net.mat --inputs data.mat -o J.mat
  mat2grad hessian net.mat --inputs data.mat --output-index 1 -o H.mat
  mat2grad check net.mat
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
        "jacobian",
        parents=[common],
        help="per-sample Jacobians dY/dX of the outputs with respect to the inputs",
        description="Compute the Jacobian of the raw outputs with respect to the raw inputs "
        "(through all input and output processing) for every sample, and write J and Y. "
        "J is S x R x Q with J(:,:,q) = dY(:,q)/dX(:,q) (Q x S x R with --samples rows); "
        "for several inputs or outputs J is a numOutputs x numInputs cell of such blocks.",
    )
    _add_model_args(p)
    _add_data_args(p)
    _add_gradient_args(p)
    _add_output_args(p)
    p.set_defaults(handler=_cmd_jacobian)

    p = sub.add_parser(
        "hessian",
        parents=[common],
        help="per-sample Hessians d2Y(k)/dX2 of one output row",
        description="Compute the Hessian of output row K with respect to the inputs for "
        "every sample, and write H (R x R x Q, Q x R x R with --samples rows) and Y. "
        "Networks with one input and one output.",
    )
    _add_model_args(p)
    _add_data_args(p)
    p.add_argument(
        "--output-index",
        metavar="K",
        type=int,
        help="which row of Y (1-based); needed when the network has several output rows",
    )
    _add_gradient_args(p, mode=False)
    _add_output_args(p)
    p.set_defaults(handler=_cmd_hessian)

    p = sub.add_parser(
        "check",
        parents=[common],
        help="compare autograd Jacobians with finite differences",
        description="Compare the Jacobian mat2grad computes with central finite differences "
        "and print the maximum relative error per output; exit status 1 when it is above "
        "--tol. Without --inputs the network's stored exampleInput is used, else random "
        "points inside the input ranges it recorded.",
    )
    _add_model_args(p)
    _add_data_args(p, required=False)
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
    _add_gradient_args(p, output_format=False)
    p.set_defaults(handler=_cmd_check)
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


def _add_gradient_args(
    p: argparse.ArgumentParser, mode: bool = True, output_format: bool = True
) -> None:
    if mode:
        p.add_argument(
            "--mode",
            choices=("auto", "rev", "fwd", "analytic"),
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
            choices=("auto", "v7", "v7.3"),
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


def _cmd_jacobian(args: argparse.Namespace) -> int:
    from . import matfile
    from .autodiff import jacobian_chunks

    _set_threads(args)
    model, inputs = _model_and_inputs(args)
    chunks = jacobian_chunks(model, *inputs, mode=args.mode, chunk_size=args.chunk_size)
    outs, ins = chunks.output_shapes, chunks.input_shapes
    single = len(outs) == 1 and len(ins) == 1
    layout = {
        "J": (*outs[0], *ins[0]) if single else [[(*o, *i) for i in ins] for o in outs],
        "Y": outs[0] if len(outs) == 1 else [[o] for o in outs],
    }
    with matfile.SampleWriter(
        args.output, chunks.num_samples, layout, samples=args.samples, format=args.format
    ) as writer:
        for chunk in chunks:
            writer.write(
                chunk.start,
                {
                    "J": chunk.jacobian[0][0] if single else chunk.jacobian,
                    "Y": chunk.outputs[0] if len(outs) == 1 else [[o] for o in chunk.outputs],
                },
            )
    return 0


def _cmd_hessian(args: argparse.Namespace) -> int:
    import numpy as np

    from . import matfile
    from .autodiff import hessian
    from .errors import Mat2GradError

    _set_threads(args)
    model, inputs = _model_and_inputs(args)
    shapes = getattr(model, "output_shapes", None) or ()
    if len(inputs) != 1 or len(shapes) != 1:
        raise Mat2GradError(
            f"{args.file}: hessian supports networks with one input and one output (this one "
            f"has {len(inputs)} and {len(shapes)}); use the Python API, "
            "mat2grad.hessian(net, *x, output=(i, k), wrt=j)"
        )
    rows = int(np.prod(shapes[0]))
    k = args.output_index
    if k is None:
        if rows != 1:
            raise Mat2GradError(
                f"{args.file}: the network has {rows} output rows; choose one with "
                "--output-index K (1-based)"
            )
        k = 1
    if not 1 <= k <= rows:
        raise Mat2GradError(f"--output-index {k} is out of range: the output has {rows} rows")
    H, Y = hessian(model, *inputs, output=k - 1, chunk_size=args.chunk_size, return_outputs=True)
    matfile.write_mat(
        args.output,
        {
            "H": matfile.batch_to_matlab(H, args.samples),
            "Y": matfile.batch_to_matlab(Y, args.samples),
        },
        compress=False,
        format=args.format,
    )
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    import numpy as np

    from .autodiff import check, check_points

    _set_threads(args)
    if args.inputs:
        model, inputs = _model_and_inputs(args)
        source = f"{len(inputs[0])} samples from {args.inputs}"
    else:
        import torch

        from .loading import load

        dtype = torch.float64 if args.dtype == "float64" else torch.float32
        model = load(args.file, args.network, dtype=dtype)
        inputs, source = check_points(model, max_samples=args.max_samples, seed=args.seed)
    q = len(inputs[0])
    if q > args.max_samples:
        idx = np.unique(np.linspace(0, q - 1, args.max_samples).round().astype(int))
        inputs = [x[idx] for x in inputs]
        source += f" ({len(idx)} of them, evenly spaced; --max-samples)"
    result = check(model, *inputs, mode=args.mode, tol=args.tol, chunk_size=args.chunk_size)
    print(f"checked at {source}")
    print(result.summary())
    if not result.passed:
        print(
            f"mat2grad: check failed: max relative error {result.max_error:.3g} is above "
            f"--tol {args.tol:g}",
            file=sys.stderr,
        )
        return 1
    return 0


def _set_threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        import torch

        if args.threads < 1:
            from .errors import Mat2GradError

            raise Mat2GradError(f"--threads must be >= 1, found {args.threads}")
        torch.set_num_threads(args.threads)


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
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
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


def _show_warning(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
    print(f"mat2grad: warning: {_one_line(str(message))}", file=sys.stderr)


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
