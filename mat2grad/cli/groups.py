"""The argument groups the CLI's subcommands are built from (see :mod:`.parser`): every
option's dest is the field of the command's options dataclass it fills."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ..commands import CHOICES
from ..commands.matlab import WORKER_IDLE_TIMEOUT
from ..commands.options import below_minimum
from ..export import DEFAULT_OPSET, ONNX_OPSETS


def whole_number(name: str) -> Callable[[str], int]:
    """The argparse type of the whole-number option ``name`` (field name): an int no
    smaller than its :data:`~mat2grad.commands.options.MINIMUM`, else a usage error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, found {text!r}") from None
        why = below_minimum(name, value)
        if why:
            raise argparse.ArgumentTypeError(why)
        return value

    parse.__name__ = "whole number"  # how argparse names the type in its messages
    return parse


# --------------------------------------------------------------------------------------
# Each command's own arguments
# --------------------------------------------------------------------------------------


def add_info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="a MAT-file (or .onnx file)")
    p.add_argument("--json", action="store_true", help="print a JSON description instead")


def add_output_index_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--output-index",
        metavar="K",
        type=whole_number("output_index"),
        help="which row of Y to differentiate (1-based, default 1)",
    )


def add_check_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tol", type=float, default=1e-6, help="relative tolerance (default 1e-6, float64)"
    )
    p.add_argument(
        "--max-samples",
        type=whole_number("max_samples"),
        default=200,
        metavar="N",
        help="check at most N samples, evenly spaced (default 200)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for random points (default 0)")


def add_grad_args(p: argparse.ArgumentParser) -> None:
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


def add_convert_args(p: argparse.ArgumentParser) -> None:
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


def add_sens_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sensitivity analysis")
    g.add_argument(
        "--scale",
        choices=CHOICES["scale"],
        default="none",
        help="none: raw units (default); std: D * std(x_i) / std(y_k) over the samples; "
        "range: D * range(x_i) / range(y_k), the ranges the network recorded in training",
    )
    g.add_argument(
        "--ddof",
        type=int,
        choices=(0, 1),
        default=0,
        help="std divides by Q - DDOF: 0 the population std (default, NeuralSens' Python "
        "package), 1 the sample std (R's sd, MATLAB's std(D, 0, 3))",
    )
    g.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="B",
        help="B bootstrap replicates over the samples: adds S.<stat>_low and S.<stat>_high "
        "(percentile intervals; default 0, none)",
    )
    g.add_argument(
        "--conf-level",
        type=float,
        default=0.95,
        metavar="P",
        help="confidence level of the bootstrap intervals (default 0.95)",
    )
    g.add_argument(
        "--seed", type=int, default=0, help="seed of the bootstrap and of DGSM's samples"
    )
    g.add_argument(
        "--interactions",
        action="store_true",
        help="also S.interactions: mean, mean_abs, std and rms of the second derivatives "
        "d2y_k/dx_i dx_j (S x R x R)",
    )
    g.add_argument(
        "--dgsm",
        type=int,
        metavar="N",
        help="also S.dgsm: derivative-based global sensitivity measures (SALib's "
        "definition) over N samples drawn uniformly in the recorded input ranges",
    )
    g.add_argument(
        "--weights",
        action="store_true",
        help="also S.weights: Garson's and Olden's weight-based importance "
        "(one-hidden-layer networks; for comparison)",
    )
    g.add_argument(
        "--committee",
        action="store_true",
        help="pool every network in FILE (networks trained for the same task): adds "
        "S.<stat>_spread and S.<stat>_networks (S x R x M)",
    )
    g.add_argument(
        "--max-lag",
        metavar="L",
        type=int,
        help="dynamic networks: the largest delay analysed (default: the network's largest)",
    )
    g.add_argument(
        "--plot",
        metavar="CHART",
        help="also draw the charts into this .png, .svg or .pdf file (needs "
        "pip install 'mat2grad[plot]')",
    )


# --------------------------------------------------------------------------------------
# Argument groups several commands share
# --------------------------------------------------------------------------------------


def add_model_args(
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


def add_data_args(p: argparse.ArgumentParser, required: bool = True) -> None:
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


def add_output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", metavar="OUT.mat", required=True, help="result file")


def add_gradient_args(
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
        type=whole_number("chunk_size"),
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
        type=whole_number("threads"),
        metavar="N",
        help="CPU threads for torch (default 1: on a machine shared with other jobs it "
        "measured up to 4x faster than every core; on an idle one, every core is up to 1.2x "
        "faster)",
    )


def add_onnx_args(p: argparse.ArgumentParser, wrt: bool = True, extra: str = "") -> None:
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


def add_dynamic_args(p: argparse.ArgumentParser) -> None:
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
        type=whole_number("steps"),
        help="time steps to simulate when the network has no inputs (closed-loop narnet)",
    )


def add_form_args(p: argparse.ArgumentParser) -> None:
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
        type=whole_number("max_lag"),
        help="largest lag of --form step (default: numInputDelays)",
    )
    g.add_argument(
        "--weights-var",
        metavar="NAME",
        help="--form sum: output weights W (like Y) so the scalar is sum(W .* Y)",
    )


#: The argument groups of each command, in the order its --help lists them.


def add_matlab_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--folder", action="store_true", help="print only the folder of the helpers")
    p.add_argument(
        "--install",
        choices=("octave", "matlab"),
        help="write the setup into that program's startup file (~/.octaverc; "
        "Documents/MATLAB/startup.m)",
    )
    p.add_argument("--startup", metavar="FILE", help="the startup file to write instead")
    p.add_argument("--python", metavar="PYTHON", help="the Python to name (default: this one)")


def add_worker_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=WORKER_IDLE_TIMEOUT,
        metavar="SECONDS",
        help=f"end after SECONDS without a request (0: never; default {WORKER_IDLE_TIMEOUT:g})",
    )
