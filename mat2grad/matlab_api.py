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
:mod:`mat2grad.matfile`, evaluation. Errors are :class:`mat2grad.Mat2GradError`, which MATLAB
reports as ``Python Error: Mat2GradError: <message>``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from .commands import RESULT_COMMANDS, MemoryResults, PredictOptions, Variables, from_values
from .commands import predict as predict_command
from .commands.messages import one_line, warnings_on_stderr
from .commands.sources import load_model
from .contract import DTYPES, contract_of
from .errors import Mat2GradError
from .loading import cached_load, is_onnx
from .matfile import as_float

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
            ``"onnx"`` (batch-first, see :mod:`mat2grad.onnx.data`).

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
    value = _cell(x, "X") if isinstance(x, list | tuple) else _array(x, "X", onnx)
    results = MemoryResults()
    data = Variables({"X": value}, quote=False)
    predict_command.run(replace(opts, data=data, inputs_var="X"), results, loader=cached_load)
    y = results.variables["Y"]
    return tuple(y[:, 0]) if y.dtype == object else y


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
                data=Variables({n: _data_value(v, n) for n, v in data.items()}) if data else None,
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
    return {name: _plain(value) for name, value in results.variables.items()}


# --------------------------------------------------------------------------------------
# MATLAB's values as Python receives them, and back
# --------------------------------------------------------------------------------------


def _data_value(value: Any, name: str) -> np.ndarray:
    """A data variable as MATLAB hands it over -> a matrix, or a cell."""
    return _cell(value, name) if isinstance(value, list | tuple) else _matrix(value, name)


def _cell(items: list[Any] | tuple[Any, ...], name: str) -> np.ndarray:
    """A MATLAB cell sent as a tuple of row tuples -> a cell (object array) of that shape;
    a flat tuple/list of matrices -> an N x 1 cell (one matrix per input or output)."""
    rows = [list(r) if isinstance(r, list | tuple) else [r] for r in items]
    if rows and not all(isinstance(r, list | tuple) for r in items):
        rows = [[r] for r in items]
    width = max((len(r) for r in rows), default=0)
    if any(len(r) != width for r in rows):
        raise Mat2GradError(f"{name}: the rows of the cell have different lengths")
    cell = np.empty((len(rows), width), dtype=object)
    for i, row in enumerate(rows):
        for j, item in enumerate(row):
            cell[i, j] = _matrix(item, f"{name}{{{i + 1},{j + 1}}}")
    return cell


def _array(x: Any, what: str, onnx: bool) -> np.ndarray:
    """One array as MATLAB hands it over: a float64 matrix for a MATLAB network; for an
    ONNX model its own type (integer inputs stay integers), a 1-D array as 1 x N."""
    if not onnx:
        return _matrix(x, what)
    value = np.asarray(x)
    return value.reshape(1, -1) if value.ndim < 2 and value.dtype != object else value


def _matrix(x: Any, what: str) -> np.ndarray:
    """A numeric value as MATLAB hands it over -> a float64 matrix (a scalar 1 x 1, a
    1-D buffer a 1 x N row vector)."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise Mat2GradError(
            f"{what}: expected a real numeric matrix, found {type(x).__name__}"
        ) from None
    if arr.ndim == 0:
        return arr.reshape(1, 1)
    if arr.ndim == 1:  # MATLAB passes a 1 x N row vector as a 1-D buffer
        return arr.reshape(1, -1)
    return arr


def _plain(value: Any) -> Any:
    """A result variable, in MATLAB's layout -> float64 arrays (a scalar 1 x 1), and lists
    of rows for cells (MATLAB converts a list of lists into a 2-D cell)."""
    if isinstance(value, np.ndarray) and value.dtype == object:
        return [[_plain(item) for item in row] for row in value]
    if isinstance(value, str):
        return value
    return as_float(value, "result")
