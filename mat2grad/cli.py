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

from ._version import __version__
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
  mat2grad grad net.mat --inputs data.mat --targets data.mat -o G.mat
  mat2grad convert net.mat -o net.onnx

ONNX models (.onnx): data in MATLAB's layout by default (features C x N, images
H x W x C x N, sequences C x N x T; a cell with one array per input, in the model's input
order), or batch-first as the file declares it with --layout onnx. Image Jacobians are
S x (H*W*C) x N, so that reshape(J(s,:,n), H, W, C) is the gradient image of output s:
  mat2grad info model.onnx
  mat2grad predict model.onnx --inputs images.mat -o Y.mat
  mat2grad jacobian model.onnx --inputs images.mat -o J.mat
  mat2grad jacobian lstm.onnx --inputs data.mat --wrt h0,c0 --layout onnx -o J.mat
  mat2grad check model.onnx --max-samples 5

dynamic networks (narxnet, timedelaynet, layrecnet, ...): time series are MATLAB's
numInputs x TS cells of R x Q matrices (a plain R x TS matrix is one series):
  mat2grad predict narx.mat --inputs data.mat --inputs-var X --targets-var T -o Y.mat
  mat2grad predict narx.mat --inputs data.mat --inputs-var X --targets-var T --closed-loop -o Y.mat
  mat2grad predict narx.mat --inputs data.mat --known-inputs-var X1 --known-targets-var T1 \\
      --inputs-var X2 -o Y2.mat
"""

CONVERT_EPILOG = """\
The file maps raw inputs to raw outputs exactly like MATLAB's sim(net, X): the processing
functions (mapminmax, removeconstantrows, ...) are part of its graph, and it runs without
mat2grad. Layout: batch-first, features last: one (Q, R) tensor per input, one (Q, S) tensor
per output (a tuple or list for several), Q any batch size; the transpose of MATLAB's R x Q.
With --matlab-layout an .onnx file takes MATLAB's R x Q and returns S x Q instead.
Gradients through a .pt2 or .pt file are mat2grad's; through hardlim, hardlims and compet
they are zero almost everywhere. Dynamic networks (delays, feedback) are not converted.

An .onnx FILE converts too: the network mat2grad loads (MATLAB 2018's Gemm on a 4-D tensor
fixed, old opsets upgraded, Dropout removed) is written with a dynamic batch Q, also where
FILE baked batch 1 into its Reshape constants; .onnx to .onnx gives a valid file at the
chosen opset. Its tensors are batch-first as mat2grad's ONNX networks take them: (Q, C, H, W)
for images, (Q, T, C) for sequences even where FILE holds them time-major (T, Q, C).

load it with:
  .pt2   torch.export.load("net.pt2").module()(x)
  .pt    torch.jit.load("net.pt")(x)
  .onnx  onnxruntime.InferenceSession("net.onnx").run(None, {"Input": x})
  MATLAB importNetworkFromONNX("net.onnx", InputDataFormats="BC", OutputDataFormats="BC")
         ("CB" for a --matlab-layout file); importNetworkFromPyTorch("net.pt2") (R2026a+),
         importNetworkFromPyTorch("net.pt", PyTorchInputSizes=[1 R]) (R2022b+)

examples:
  mat2grad convert net.mat -o net.pt2
  mat2grad convert workspace.mat --network net1.net -o net.onnx --opset 13 --dtype float32
  mat2grad convert matlab2018_export.onnx -o fixed.onnx
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
    _add_onnx_args(p, wrt=False)
    _add_dynamic_args(p)
    p.set_defaults(handler=_cmd_predict)

    p = sub.add_parser(
        "jacobian",
        parents=[common],
        help="per-sample Jacobians dY/dX of the outputs with respect to the inputs",
        description="Compute the Jacobian of the raw outputs with respect to the raw inputs "
        "(through all input and output processing) for every sample, and write J and Y. "
        "J is S x R x Q with J(:,:,q) = dY(:,q)/dX(:,q) (Q x S x R with --samples rows); "
        "for several inputs or outputs J is a numOutputs x numInputs cell of such blocks. "
        "Dynamic networks: gradients through time (--form).",
    )
    _add_model_args(p)
    _add_data_args(p)
    _add_gradient_args(p)
    _add_output_args(p)
    _add_onnx_args(p)
    _add_dynamic_args(p)
    _add_form_args(p)
    p.set_defaults(handler=_cmd_jacobian)

    p = sub.add_parser(
        "hessian",
        parents=[common],
        help="per-sample Hessians d2Y(k)/dX2 of one output row",
        description="Compute the Hessian of output row K (--output-index, default 1) with "
        "respect to the inputs for every sample, and write H (R x R x Q with H(:,:,q) the "
        "Hessian at sample q; Q x R x R with --samples rows) and Y. Networks with one input "
        "and one output.",
    )
    _add_model_args(p)
    _add_data_args(p)
    p.add_argument(
        "--output-index",
        metavar="K",
        type=int,
        help="which row of Y to differentiate (1-based, default 1)",
    )
    _add_gradient_args(p, mode=False)
    _add_output_args(p)
    _add_onnx_args(p)
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
    _add_onnx_args(
        p,
        extra="Without --inputs an ONNX model is checked at --max-samples random points, "
        "every element of every floating input uniform in [-1, 1] (seed --seed; symbolic "
        "dimensions get size 3). The finite differences cost 4 evaluations per input "
        "element: for large images pass a few points with --inputs.",
    )
    p.set_defaults(handler=_cmd_check)

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

    from .convert import DEFAULT_OPSET, ONNX_OPSETS

    p = sub.add_parser(
        "convert",
        parents=[common],
        help="write a network as a portable .pt2, .pt or .onnx file",
        description="Write the network as a file that plain PyTorch or any ONNX runtime runs "
        "without mat2grad; the suffix of OUT picks the format: .pt2 (torch.export "
        "ExportedProgram), .pt (traced TorchScript), .onnx.",
        epilog=CONVERT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_model_args(
        p,
        dtype_help="precision of the file's weights and arithmetic (default float64, "
        "MATLAB's double; for .onnx written from an .onnx FILE, that file's own precision, "
        "float32 for nearly every exporter)",
        dtype_default=None,
    )
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
    p.set_defaults(handler=_cmd_convert)
    return parser


# --------------------------------------------------------------------------------------
# Shared argument groups
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
        choices=("float64", "float32"),
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


def _add_onnx_args(p: argparse.ArgumentParser, wrt: bool = True, extra: str = "") -> None:
    g = p.add_argument_group(
        "ONNX models",
        "Data for an .onnx FILE: one array per input (a cell for several, in the model's "
        "input order); 'mat2grad info FILE' shows each input's layout and sizes. " + extra,
    )
    g.add_argument(
        "--layout",
        choices=("matlab", "onnx"),
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
        choices=("full", "step", "sum"),
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


_DYNAMIC_OPTIONS = (
    "form",
    "max_lag",
    "weights_var",
    "xi_var",
    "ai_var",
    "targets_var",
    "prepare",
    "closed_loop",
    "known_inputs_var",
    "known_targets_var",
    "steps",
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

    model = _load_model(args)
    if getattr(model, "is_dynamic", False):
        return _predict_dynamic(args, model)
    _refuse_dynamic_options(args)
    inputs = _inputs_of(args, model)
    outputs = predict_arrays(model, inputs)
    if _is_onnx(args):
        res = _result_layout(args, model)
        y = [res.output_array(k, o) for k, o in enumerate(outputs)]
        matfile.write_mat(args.output, {"Y": y[0] if len(y) == 1 else _column_cell(y)})
        return 0
    y = [matfile.samples_to_matlab(o, args.samples) for o in outputs]
    matfile.write_mat(args.output, {"Y": y[0] if len(y) == 1 else _column_cell(y)})
    return 0


def _cmd_jacobian(args: argparse.Namespace) -> int:
    from . import matfile
    from .autodiff import jacobian_chunks

    _set_threads(args)
    model = _load_model(args)
    if getattr(model, "is_dynamic", False):
        return _jacobian_dynamic(args, model)
    _refuse_dynamic_options(args)
    inputs = _inputs_of(args, model)
    if _is_onnx(args):
        return _jacobian_onnx(args, model, inputs)
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

    _set_threads(args)
    model, inputs = _model_and_inputs(args)
    if _is_onnx(args):
        return _hessian_onnx(args, model, inputs)
    shapes = getattr(model, "output_shapes", None) or ()
    if len(inputs) != 1 or len(shapes) != 1:
        raise Mat2GradError(
            f"{args.file}: hessian supports networks with one input and one output (this one "
            f"has {len(inputs)} and {len(shapes)}); use the Python API, "
            "mat2grad.hessian(net, *x, output=(i, k), wrt=j)"
        )
    rows = int(np.prod(shapes[0]))
    k = 1 if args.output_index is None else args.output_index
    if not 1 <= k <= rows:
        raise Mat2GradError(f"--output-index {k} is out of range: the output has {rows} rows")
    H, Y = hessian(model, *inputs, output=k - 1, chunk_size=args.chunk_size, return_outputs=True)
    matfile.write_mat(
        args.output,
        {
            "H": matfile.per_sample_to_matlab(H, args.samples),
            "Y": matfile.per_sample_to_matlab(Y, args.samples),
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
        model = _load_model(args)
        inputs, source = check_points(model, max_samples=args.max_samples, seed=args.seed)
    q = len(inputs[0])
    if q > args.max_samples:
        idx = np.unique(np.linspace(0, q - 1, args.max_samples).round().astype(int))
        inputs = [x[idx] for x in inputs]
        source += f" ({len(idx)} of them, evenly spaced; --max-samples)"
    wrt = _wrt_indices(args, model) if _is_onnx(args) else None
    result = check(
        model, *inputs, mode=args.mode, tol=args.tol, chunk_size=args.chunk_size, wrt=wrt
    )
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
            raise Mat2GradError(f"--threads must be >= 1, found {args.threads}")
        torch.set_num_threads(args.threads)


def _cmd_convert(args: argparse.Namespace) -> int:
    from .convert import convert

    out = convert(
        args.file,
        args.output,
        network=args.network,
        dtype=args.dtype,
        opset=args.opset,
        matlab_layout=args.matlab_layout,
    )
    print(out)
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


def _jacobian_dynamic(args: argparse.Namespace, model: Any) -> int:
    """jacobian for networks with delays or feedback: gradients through time of the run
    predict would make (--targets-var/--prepare, --closed-loop, known sequence), written in
    MATLAB's layout with the outputs Y."""
    from . import matfile
    from .dynamic import gradient_series, gradient_to_matlab, series_from_file

    data = series_from_file(model, args)
    form = args.form or "full"
    weights = None
    if getattr(args, "weights_var", None):
        if form != "sum":
            raise Mat2GradError("--weights-var applies to --form sum")
        value = matfile.resolve(matfile.read_mat(args.inputs), args.weights_var, source=args.inputs)
        weights, _, _ = matfile.sequences_from_matlab(
            value, tuple(model.output_sizes), samples=args.samples, what=args.weights_var
        )
    run, result = gradient_series(
        model,
        data.inputs,
        form=form,
        mode=getattr(args, "mode", "auto") or "auto",
        max_lag=getattr(args, "max_lag", None),
        chunk_size=getattr(args, "chunk_size", None),
        weights=weights,
        **data.how(prepare=args.prepare, closed_loop=args.closed_loop, steps=args.steps),
    )
    sim = run.simulate()
    outs = [o.detach().double().numpy() for o in sim.outputs]
    name = "dX" if form == "sum" else "J"
    matfile.write_mat(
        args.output,
        {
            name: gradient_to_matlab(result, form, matrix=data.matrix, samples=args.samples),
            "Y": matfile.sequences_to_matlab(outs, matrix=data.matrix, samples=args.samples),
        },
    )
    return 0


def _model_and_inputs(args: argparse.Namespace) -> tuple[Any, list[Any]]:
    """Load the network of FILE and the inputs of --inputs in batch-first layout."""
    model = _load_model(args)
    return model, _inputs_of(args, model)


def _load_model(args: argparse.Namespace) -> Any:
    import torch

    from .loading import load

    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    if _is_onnx(args):
        if args.network:
            raise Mat2GradError(
                f"{args.file}: --network chooses a network inside a MAT-file; an ONNX file "
                "holds one model"
            )
        names = _wrt_names(args)
        return load(args.file, dtype=dtype, **({"wrt": names} if names else {}))
    if getattr(args, "layout", None) == "onnx" or getattr(args, "wrt", None):
        flag = "--layout onnx" if getattr(args, "layout", None) == "onnx" else "--wrt"
        raise Mat2GradError(
            f"{args.file}: {flag} applies to ONNX models; a MATLAB network takes R x Q "
            "inputs (--samples rows for Q x R)"
        )
    return load(args.file, args.network, dtype=dtype)


def _is_onnx(args: argparse.Namespace) -> bool:
    from .loading import is_onnx

    return is_onnx(args.file)


def _wrt_names(args: argparse.Namespace) -> list[str]:
    """--wrt values: repeatable, each may be a comma list."""
    names = [n.strip() for v in getattr(args, "wrt", None) or () for n in v.split(",")]
    names = [n for n in names if n]
    if getattr(args, "wrt", None) and not names:
        raise Mat2GradError("--wrt needs an input name")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise Mat2GradError(f"--wrt names {', '.join(repr(n) for n in twice)} more than once")
    return names


def _wrt_indices(args: argparse.Namespace, model: Any) -> tuple[int, ...]:
    """The inputs to differentiate (0-based): --wrt, else every floating input."""
    idx = tuple(model.input_names.index(n) for n in model.wrt)
    if not idx:
        raise Mat2GradError(
            f"{args.file}: the model has no floating inputs to differentiate (inputs: "
            f"{', '.join(model.input_names)})"
        )
    return idx


def _result_layout(args: argparse.Namespace, model: Any) -> Any:
    from .onnx.data import ResultLayout

    return ResultLayout(model, args.layout or "matlab", args.samples)


def _jacobian_onnx(args: argparse.Namespace, model: Any, inputs: list[Any]) -> int:
    """jacobian for ONNX models: J and Y in the --layout, streamed chunk by chunk."""
    from . import matfile
    from .autodiff import jacobian_chunks

    wrt = _wrt_indices(args, model)
    chunks = jacobian_chunks(model, *inputs, mode=args.mode, chunk_size=args.chunk_size, wrt=wrt)
    res = _result_layout(args, model)
    outs, ins = chunks.output_shapes, chunks.input_shapes
    single = len(outs) == 1 and len(ins) == 1
    j_blocks = [
        [res.jacobian_block(k, j, o, i) for j, i in zip(wrt, ins, strict=True)]
        for k, o in enumerate(outs)
    ]
    y_blocks = [res.output_block(k, o) for k, o in enumerate(outs)]
    layout = {
        "J": j_blocks[0][0] if single else j_blocks,
        "Y": y_blocks[0] if len(outs) == 1 else [[b] for b in y_blocks],
    }
    with matfile.SampleWriter(
        args.output, chunks.num_samples, layout, samples=args.samples, format=args.format
    ) as writer:
        for chunk in chunks:
            J = [
                [res.jacobian_chunk(k, j, blk, outs[k]) for j, blk in zip(wrt, row, strict=True)]
                for k, row in enumerate(chunk.jacobian)
            ]
            Y = [res.output_chunk(k, y) for k, y in enumerate(chunk.outputs)]
            writer.write(
                chunk.start,
                {"J": J[0][0] if single else J, "Y": Y[0] if len(Y) == 1 else [[y] for y in Y]},
            )
    return 0


def _hessian_onnx(args: argparse.Namespace, model: Any, inputs: list[Any]) -> int:
    """hessian for ONNX models: one --wrt input, one output, H and Y in the --layout."""
    from . import matfile
    from .autodiff import hessian
    from .predict import predict_arrays

    wrt = _wrt_indices(args, model)
    if len(wrt) != 1:
        names = ", ".join(model.input_names[j] for j in wrt)
        raise Mat2GradError(
            f"{args.file}: hessian differentiates with respect to one input; choose one of "
            f"{names} with --wrt NAME"
        )
    if len(model.output_names) != 1:
        raise Mat2GradError(
            f"{args.file}: hessian supports models with one output (this one has "
            f"{len(model.output_names)}: {', '.join(model.output_names)}); use the Python "
            "API, mat2grad.hessian(net, *x, output=(i, k), wrt=j)"
        )
    res = _result_layout(args, model)
    shape = model.output_shapes[0]
    if any(d is None for d in shape):  # symbolic: the size these inputs give
        shape = predict_arrays(model, [x[:1] for x in inputs])[0].shape[1:]
    k = 1 if args.output_index is None else args.output_index
    element = res.element(0, shape, k)
    H, Y = hessian(
        model,
        *inputs,
        output=element,
        wrt=wrt[0],
        chunk_size=args.chunk_size,
        return_outputs=True,
    )
    matfile.write_mat(
        args.output,
        {"H": res.hessian_array(wrt[0], H), "Y": res.output_array(0, Y)},
        compress=False,
        format=args.format,
    )
    return 0


def _inputs_of(args: argparse.Namespace, model: Any) -> list[Any]:
    from . import matfile

    if getattr(model, "is_dynamic", False):
        raise Mat2GradError(
            f"{args.file}: network '{model.spec.path}' is dynamic (delays or feedback); "
            f"'mat2grad {args.command}' supports static networks only (dynamic networks: "
            "mat2grad predict, and the gradients through time of mat2grad.dynamic)"
        )
    variables = matfile.read_mat(args.inputs)
    name, value = matfile.select_variable(variables, args.inputs_var, source=args.inputs)
    if _is_onnx(args):
        from .onnx.data import inputs_from_mat

        return inputs_from_mat(
            model,
            value,
            layout=args.layout or "matlab",
            samples=args.samples,
            what=f"{args.inputs}: '{name}'",
        )
    sizes = tuple(int(s[0]) for s in model.input_shapes)
    return matfile.samples_from_matlab(
        value, sizes, samples=args.samples, what=f"{args.inputs}: '{name}'"
    )


def _refuse_dynamic_options(args: argparse.Namespace) -> None:
    given = [o for o in _DYNAMIC_OPTIONS if getattr(args, o, None) not in (None, False)]
    if given:
        flags = ", ".join("--" + o.replace("_", "-") for o in given)
        raise Mat2GradError(
            f"{args.file}: {flags} apply to dynamic networks (delays or feedback); this "
            "network is static"
        )


def _predict_dynamic(args: argparse.Namespace, model: Any) -> int:
    """predict for networks with delays or feedback: MATLAB's time-series cells in and out."""
    from . import matfile
    from .dynamic import predict_series, series_from_file

    data = series_from_file(model, args)
    _, sim = predict_series(
        model,
        data.inputs,
        **data.how(prepare=args.prepare, closed_loop=args.closed_loop, steps=args.steps),
    )
    outs = [o.detach().double().numpy() for o in sim.outputs]
    matfile.write_mat(
        args.output,
        {
            "Y": matfile.sequences_to_matlab(outs, matrix=data.matrix, samples=args.samples),
            "Xf": matfile.sequences_to_matlab([s.detach().double().numpy() for s in sim.xf]),
            "Af": matfile.sequences_to_matlab([s.detach().double().numpy() for s in sim.af]),
        },
    )
    return 0


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
