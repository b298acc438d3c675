"""What a command reads: the network named by its options, and its data, from a MAT-file or
from arrays handed over in memory, in the library's batch-first layout. The data variables
themselves (:class:`Variables`) are in :mod:`.variables`, which needs no torch; they are
re-exported here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .. import matfile
from ..contract import contract_of, parse_device, parse_dtype
from ..errors import Mat2GradError
from ..loading import is_onnx, load
from .variables import IN_MEMORY, Variables, read_variables

__all__ = [
    "IN_MEMORY",
    "Variables",
    "inputs_of",
    "load_model",
    "model_and_inputs",
    "read_variables",
    "refuse_series_options",
    "series",
    "set_threads",
    "wrt_indices",
]

# --------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------

#: ``loading.load``'s signature: (path, network=None, *, dtype, **onnx options) -> model.
Loader = Callable[..., nn.Module]


def load_model(opts: Any, loader: Loader | None = None) -> nn.Module:
    """The network of ``opts.file`` in ``opts.dtype`` on ``opts.device`` (if given), after
    checking that the options suit the kind of file (``--network`` chooses inside a MAT-file;
    ``--layout onnx`` and ``--wrt`` apply to ONNX models). ``loader`` replaces
    :func:`mat2grad.load` (a cache)."""
    loader = loader or load
    dtype = parse_dtype(opts.dtype, "--dtype") or torch.float64
    device = getattr(opts, "device", None)
    placed = {"device": str(parse_device(device, "--device"))} if device else {}
    layout, wrt = getattr(opts, "layout", None), getattr(opts, "wrt", None)
    if is_onnx(opts.file):
        if opts.network:
            raise Mat2GradError(
                f"{opts.file}: --network chooses a network inside a MAT-file; an ONNX file "
                "holds one model"
            )
        names = _wrt_names(wrt)
        return loader(opts.file, dtype=dtype, **placed, **({"wrt": names} if names else {}))
    if layout == "onnx" or wrt:
        which = "--layout onnx" if layout == "onnx" else "--wrt"
        raise Mat2GradError(
            f"{opts.file}: {which} applies to ONNX models; a MATLAB network takes R x Q "
            "inputs (--samples rows for Q x R)"
        )
    model = loader(opts.file, opts.network, dtype=dtype, **placed)
    if placed and contract_of(model).is_dynamic and placed["device"] != "cpu":
        raise Mat2GradError(
            f"{opts.file}: --device {device} applies to static networks; a network with "
            "delays or feedback is simulated step by step on the CPU: drop --device"
        )
    return model


def _wrt_names(wrt: list[str] | None) -> list[str]:
    """--wrt values: repeatable, each may be a comma list."""
    names = [n.strip() for v in wrt or () for n in v.split(",")]
    names = [n for n in names if n]
    if wrt and not names:
        raise Mat2GradError("--wrt needs an input name")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise Mat2GradError(f"--wrt names {', '.join(repr(n) for n in twice)} more than once")
    return names


def wrt_indices(opts: Any, model: nn.Module) -> tuple[int, ...]:
    """The inputs of an ONNX model to differentiate (0-based): --wrt, else every floating
    input."""
    idx = tuple(model.input_names.index(n) for n in model.wrt)
    if not idx:
        raise Mat2GradError(
            f"{opts.file}: the model has no floating inputs to differentiate (inputs: "
            f"{', '.join(model.input_names)})"
        )
    return idx


#: torch threads when a command is not told (``--threads``): measured with
#: ``benchmarks/threads.py`` on 2 cores (model A at 1e5 samples, B at 1e4, a one-sample
#: LSTM, an ONNX CNN): on an idle machine every core was 1.0-1.23x faster than one thread;
#: beside one busy process, one thread was 1.3-4.2x faster (the LSTM 80 against 334 ms).
#: One thread loses little where the machine is free and much less where it is shared.
DEFAULT_THREADS = 1


def set_threads(opts: Any) -> None:
    """Apply --threads to torch (DEFAULT_THREADS when not given)."""
    threads = DEFAULT_THREADS if opts.threads is None else opts.threads
    if threads < 1:
        raise Mat2GradError(f"--threads must be >= 1, found {threads}")
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------
# Static data
# --------------------------------------------------------------------------------------


def model_and_inputs(opts: Any, loader: Loader | None = None) -> tuple[nn.Module, list[Any]]:
    """Load the network of FILE and its inputs in batch-first layout."""
    model = load_model(opts, loader)
    return model, inputs_of(opts, model)


def inputs_of(opts: Any, model: nn.Module) -> list[Any]:
    """The inputs of a static network (or ONNX model) in batch-first layout, one array per
    input."""
    contract = contract_of(model)
    if contract.is_dynamic:
        raise Mat2GradError(
            f"{opts.file}: network '{contract.spec.path}' is dynamic (delays or feedback); "
            f"'mat2grad {opts.command}' supports static networks only (dynamic networks: "
            "mat2grad predict, and the gradients through time of mat2grad.dynamic)"
        )
    data = read_variables(opts)
    name, value = data.select(opts.inputs_var)
    if is_onnx(opts.file):
        layout = getattr(opts, "layout", None) or "matlab"  # grad has no --layout
        return matfile.inputs_from_mat(
            model, value, layout=layout, samples=opts.samples, what=data.what(name)
        )
    sizes = tuple(int(s[0]) for s in contract.input_shapes)
    return matfile.samples_from_matlab(value, sizes, samples=opts.samples, what=data.what(name))


def refuse_series_options(opts: Any, names: tuple[str, ...]) -> None:
    """A static network refuses the options of dynamic ones (``names``) when given."""
    given = [n for n in names if getattr(opts, n, None) not in (None, False)]
    if given:
        flags = ", ".join("--" + n.replace("_", "-") for n in given)
        raise Mat2GradError(
            f"{opts.file}: {flags} apply to dynamic networks (delays or feedback); this "
            "network is static"
        )


# --------------------------------------------------------------------------------------
# Time series (dynamic networks)
# --------------------------------------------------------------------------------------


def series(model: nn.Module, opts: Any) -> matfile.SeriesData:
    """The time series the options name, for a dynamic network, batch-first, from the
    options' MAT-file (``inputs``) or the variables they carry in memory (``data``)."""
    spec = model.spec
    network = matfile.SeriesNetwork(
        input_sizes=tuple(model.input_sizes),
        feedback_inputs=tuple(i.index for i in spec.inputs if i.feedback_output is not None),
        output_sizes=tuple(o.size for o in spec.outputs),
        output_feedback=tuple(o.feedback_mode != "none" for o in spec.outputs),
        layer_sizes=tuple(layer.size for layer in spec.layers),
        num_input_delays=spec.num_input_delays,
        num_layer_delays=spec.num_layer_delays,
    )
    names = matfile.SeriesNames(
        inputs=opts.inputs_var,
        xi=opts.xi_var,
        ai=opts.ai_var,
        targets=opts.targets_var,
        known_inputs=opts.known_inputs_var,
        known_targets=opts.known_targets_var,
    )
    data = read_variables(opts)
    return matfile.series_from_variables(
        data.values,
        network,
        names,
        samples=opts.samples,
        source=data.source,
        prepared=bool(opts.prepare or opts.closed_loop),
    )
