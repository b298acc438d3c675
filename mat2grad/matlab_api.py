"""Entry points for MATLAB's Python interface (``py.``): plain arrays in, plain arrays out,
MATLAB layout.

The MATLAB helpers in ``matlab/`` call mat2grad's command line through ``system()``. In
MATLAB (not Octave) they can instead call this module inside MATLAB's own Python session,
which saves starting Python and importing PyTorch for every call. PyTorch must not be loaded
into MATLAB's process, so the session has to run out of process::

    pyenv(Version="/path/to/venv/bin/python", ExecutionMode="OutOfProcess");
    api = py.importlib.import_module('mat2grad.matlab_api');
    Y = double(api.predict('net.mat', X));            % X: R x Q double -> Y: S x Q

``mat2grad_setup('InProcess', true)`` makes the helpers do this through :func:`run`, which
runs the command line's own commands (:mod:`mat2grad.commands`) on the arrays in this
process, for the commands in :data:`COMMANDS`.

Arrays arrive as MATLAB hands them over (a ``memoryview`` with column-major strides, an
``array.array`` for a row vector, a ``float`` for a scalar, or a numpy array) and keep
MATLAB's layout: inputs ``R x Q``, one column per sample (``samples="rows"``: ``Q x R``). A
1-D array is a MATLAB row vector (``1 x N``). Several inputs: a tuple or list with one array
per input (a MATLAB cell). Results are float64 numpy arrays in MATLAB layout (``Y`` is
``S x Q``), a tuple for several outputs; MATLAB turns them into doubles with ``double(...)``.

Everything else is the commands' and the library's: loading, the layout conversion of
:mod:`mat2grad.matfile` (values as ``py.`` hands them over: its ``python_values``),
evaluation. Errors are :class:`mat2grad.Mat2GradError`, which MATLAB
reports as ``Python Error: Mat2GradError: <message>``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from . import matfile
from .commands import RESULT_COMMANDS, MemoryResults, PredictOptions, Variables, from_values
from .commands import predict as predict_command
from .commands.messages import one_line, warnings_on_stderr
from .commands.sources import load_model
from .contract import DTYPES, contract_of
from .errors import Mat2GradError
from .loading import cached_load, is_onnx

__all__ = ["COMMANDS", "predict", "run"]

#: The commands :func:`run` offers: those whose results are variables (the CLI writes them
#: to the -o file).
COMMANDS: tuple[str, ...] = tuple(RESULT_COMMANDS)

#: Data variables :func:`run` accepts, and the option naming each.
_DATA = {
    "X": "inputs_var",
    "T": "targets_var",
    "EW": "ew_var",
    "Xi": "xi_var",
    "Ai": "ai_var",
    "X1": "known_inputs_var",
    "T1": "known_targets_var",
    "W": "weights_var",
}


def predict(
    path: str,
    x: Any,
    *,
    network: str | None = None,
    samples: str = "columns",
    dtype: str = "float64",
    layout: str = "matlab",
) -> np.ndarray | tuple[np.ndarray, ...]:
    """Evaluate the network of ``path`` on MATLAB-layout inputs, like MATLAB's ``sim``.

    Args:
        path: a MAT-file holding the network, or an ``.onnx`` file.
        x: ``R x Q`` inputs (``Q x R`` with ``samples="rows"``); a tuple/list of such arrays
            for a network with several inputs.
        network: MATLAB-style path of the network in the file (``net1.net``), when it holds
            several.
        samples: ``"columns"`` (MATLAB's convention) or ``"rows"``.
        dtype: ``"float64"`` or ``"float32"``: the precision of the computation.
        layout: ONNX models: ``"matlab"`` (inputs as MATLAB holds them: ``C x N``
            features, ``H x W x C x N`` images, ``C x N x T`` sequences; outputs alike) or
            ``"onnx"`` (batch-first, see :mod:`mat2grad.matfile.onnx_layout`).

    Returns:
        ``S x Q`` float64 (``Q x S`` for ``samples="rows"``), a tuple for several outputs.

    Raises:
        Mat2GradError: a missing file, bad data, or a dynamic network (give its time series
            to :func:`run`).

    Example:
        >>> y = predict("net.mat", np.random.rand(16, 100))   # doctest: +SKIP
        >>> assert y.shape == (1, 100)
    """
    if dtype not in DTYPES:
        raise Mat2GradError(f"dtype must be {' or '.join(DTYPES)}, not '{dtype}'")
    onnx = is_onnx(path)
    opts = PredictOptions(
        file=path, network=network, dtype=dtype, samples=samples, layout=layout if onnx else None
    )
    if contract_of(load_model(opts, cached_load)).is_dynamic:
        raise Mat2GradError(
            f"matlab_api.predict: {path}: the network is dynamic (delays or feedback); give "
            "its time series to matlab_api.run('predict', path, X=..., Xi=..., Ai=...)"
        )
    if isinstance(x, list | tuple):
        value = matfile.cell_from_python(x, "X")
    else:
        value = matfile.array_from_python(x, "X", onnx)
    results = MemoryResults()
    data = Variables({"X": value}, quote=False)
    predict_command.run(replace(opts, data=data, inputs_var="X"), results, loader=cached_load)
    return matfile.outputs_to_python(results.variables["Y"])


def run(command: str, path: str, **kwargs: Any) -> dict[str, Any]:
    """Run the command ``command`` in this process, with arrays instead of data files.

    The MATLAB helpers' in-process route: exactly what ``mat2grad COMMAND PATH --inputs
    DATA.mat ... -o OUT.mat`` computes (the same commands, so the same numbers and the same
    messages), without starting Python and importing PyTorch again, and without files.

    Args:
        command: a command whose results are variables (:data:`COMMANDS`).
        path: the network's MAT-file or ONNX file.
        **kwargs: data, by MATLAB variable name, in MATLAB layout: ``X`` (inputs), ``T``
            (targets), ``EW`` (error weights), ``Xi``/``Ai`` (initial delay states),
            ``X1``/``T1`` (a known sequence), ``W`` (output weights); a cell as a tuple of
            row tuples (or a flat tuple: a column cell).
            Any other keyword is a long option of the command, underscores for dashes
            (``network="net1"``, ``samples="rows"``, ``chunk_size="64"``); ``""`` stands
            for a bare flag (``prepare=""``).

    Returns:
        The result variables, as the command line's result file holds them: numeric arrays
        as float64 arrays in MATLAB layout, cell arrays as lists of rows (lists), e.g.
        ``{"Y": ...}`` or ``{"perf": ..., "db": ...}``.

    Raises:
        Mat2GradError: the command's own error (its one-line message), or a usage error.
    """
    if command not in COMMANDS:
        raise Mat2GradError(
            f"matlab_api: no in-process command '{command}' (available: {', '.join(COMMANDS)})"
        )
    spec = RESULT_COMMANDS[command]
    data = {n: v for n, v in kwargs.items() if n in _DATA and v is not None}
    options = {n: v for n, v in kwargs.items() if n not in _DATA}
    options.update({_DATA[n]: n for n in data})
    results = MemoryResults()
    try:
        with warnings_on_stderr():
            opts = from_values(
                spec.options,
                options,
                file=str(path),
                data=Variables({n: matfile.value_from_python(v, n) for n, v in data.items()})
                if data
                else None,
            )
            spec.run(opts, results, loader=cached_load)
    except Mat2GradError as exc:
        raise Mat2GradError(one_line(str(exc))) from None
    except KeyboardInterrupt:
        raise Mat2GradError("interrupted") from None
    except Exception as exc:  # a bug: one line, as the command line reports it
        raise Mat2GradError(
            f"internal error: {type(exc).__name__}: {one_line(str(exc))} (please report it)"
        ) from exc
    return {name: matfile.result_to_python(value) for name, value in results.variables.items()}


# --------------------------------------------------------------------------------------
