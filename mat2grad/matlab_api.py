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
runs the command line's own code in this process, for the commands in :data:`COMMANDS`.

Arrays arrive as MATLAB hands them over (a ``memoryview`` with column-major strides, an
``array.array`` for a row vector, a ``float`` for a scalar, or a numpy array) and keep
MATLAB's layout: inputs ``R x Q``, one column per sample (``samples="rows"``: ``Q x R``). A
1-D array is a MATLAB row vector (``1 x N``). Several inputs: a tuple or list with one array
per input (a MATLAB cell). Results are float64 numpy arrays in MATLAB layout (``Y`` is
``S x Q``), a tuple for several outputs; MATLAB turns them into doubles with ``double(...)``.

Everything else is the library's: loading, the layout conversion of
:mod:`mat2grad.matfile`, evaluation. Errors are :class:`mat2grad.Mat2GradError`, which MATLAB
reports as ``Python Error: Mat2GradError: <message>``.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np
import torch
from torch import nn

from . import matfile
from .errors import Mat2GradError
from .loading import load
from .predict import predict_arrays

__all__ = ["COMMANDS", "predict", "run"]

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


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

    Example:
        >>> y = predict("net.mat", np.random.rand(16, 100))   # doctest: +SKIP
        >>> assert y.shape == (1, 100)
    """
    model = _model(path, network, dtype)
    if hasattr(model, "input_layouts"):  # an ONNX model
        from .onnx.data import ResultLayout, inputs_from_mat

        value = _cell(x, "X") if isinstance(x, list | tuple) else np.asarray(x)
        if value.ndim < 2 and value.dtype != object:
            value = value.reshape(1, -1)
        inputs = inputs_from_mat(model, value, layout=layout, samples=samples, what="X")
        res = ResultLayout(model, layout, samples)
        y = [res.output_array(k, o) for k, o in enumerate(predict_arrays(model, inputs))]
        return y[0] if len(y) == 1 else tuple(y)
    inputs = _inputs(model, x, samples)
    y = [matfile.samples_to_matlab(o, samples) for o in predict_arrays(model, inputs)]
    return y[0] if len(y) == 1 else tuple(y)


#: Data variables :func:`run` accepts, and the options naming them in the data file.
_DATA = {
    "X": ("--inputs-var",),
    "T": ("--targets-var",),
    "EW": ("--ew-var",),
    "Xi": ("--xi-var",),
    "Ai": ("--ai-var",),
    "X1": ("--known-inputs-var",),
    "T1": ("--known-targets-var",),
    "W": ("--weights-var",),
}


def run(command: str, path: str, **kwargs: Any) -> dict[str, Any]:
    """Run the CLI command ``command`` in this process, with arrays instead of data files.

    The MATLAB helpers' in-process route: exactly what ``mat2grad COMMAND PATH --inputs
    DATA.mat ... -o OUT.mat`` computes (the same code, so the same numbers and the same
    messages), without starting Python and importing PyTorch again.

    Args:
        command: a CLI subcommand that writes a result file (:data:`COMMANDS`).
        path: the network's MAT-file or ONNX file.
        **kwargs: data, by MATLAB variable name, in MATLAB layout: ``X`` (inputs), ``T``
            (targets), ``EW`` (error weights), ``Xi``/``Ai`` (initial delay states),
            ``X1``/``T1`` (a known sequence), ``W`` (output weights); a cell as a tuple of
            row tuples (or a flat tuple: a column cell). They go to a temporary data file,
            deleted afterwards.
            Any other keyword is a long option of the command, underscores for dashes
            (``network="net1"``, ``samples="rows"``, ``chunk_size="64"``); ``""`` stands
            for a bare flag (``prepare=""``).

    Returns:
        The result file's variables: numeric arrays as float64 arrays in MATLAB layout, cell
        arrays as lists of rows (lists), e.g. ``{"Y": ...}`` or ``{"perf": ..., "db": ...}``.

    Raises:
        Mat2GradError: the command's own error (its one-line message), or a usage error.
    """
    import tempfile

    if command not in COMMANDS:
        raise Mat2GradError(
            f"matlab_api: no in-process command '{command}' (available: {', '.join(COMMANDS)})"
        )
    with tempfile.TemporaryDirectory(prefix="mat2grad-") as folder:
        data = os.path.join(folder, "data.mat")
        out = os.path.join(folder, "result.mat")
        argv = [command, str(path)]
        variables = {}
        for name, value in kwargs.items():
            if value is None:
                continue
            if name in _DATA:
                variables[name] = (
                    _cell(value, name)
                    if isinstance(value, list | tuple)
                    else (_matrix(value, name))
                )
                argv += [*_DATA[name], name]
            else:
                argv += [f"--{name.replace('_', '-')}"] + ([str(value)] if value != "" else [])
        if variables:
            matfile.write_mat(data, variables)
            argv += ["--inputs", data]
        argv += ["-o", out]
        _run_cli(argv, scrub=((f"{data}: ", ""), (data, "the data passed from MATLAB")))
        return {name: _plain(value) for name, value in matfile.read_mat(out).items()}


def _run_cli(argv: list[str], scrub: tuple[tuple[str, str], ...]) -> None:
    """``mat2grad.cli.main(argv)``, its failure raised as Mat2GradError with its message
    (temporary file names replaced as ``scrub`` says); what a successful run prints on
    stderr (warnings) is passed on to this process's stderr."""
    import contextlib
    import io
    import sys

    from .cli import main

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: a usage error
            code = exc.code if isinstance(exc.code, int) else 2
    text = stderr.getvalue()
    for old, new in scrub:
        text = text.replace(old, new)
    if code == 0:
        sys.stderr.write(text)
        return
    lines = [line for line in text.splitlines() if line.strip()]
    message = lines[-1] if lines else f"exit status {code}"
    raise Mat2GradError(message.removeprefix("mat2grad: "))


def _result_commands() -> tuple[str, ...]:
    """The CLI subcommands that write a result file (-o): the ones :func:`run` offers."""
    import argparse

    from .cli import build_parser

    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return tuple(
        name for name, parser in sub.choices.items() if "-o" in parser._option_string_actions
    )


#: The commands :func:`run` offers (CLI subcommands that write a result file).
COMMANDS: tuple[str, ...] = _result_commands()


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


def _plain(value: Any) -> Any:
    """A result variable -> float64 arrays, and lists of rows for cells (MATLAB converts
    a list of lists into a 2-D cell)."""
    if isinstance(value, np.ndarray) and value.dtype == object:
        return [[_plain(item) for item in row] for row in value]
    if isinstance(value, str):
        return value
    return matfile.as_float(value, "result")


# --------------------------------------------------------------------------------------


def _model(path: str, network: str | None, dtype: str) -> nn.Module:
    if dtype not in _DTYPES:
        raise Mat2GradError(f"dtype must be float64 or float32, not '{dtype}'")
    try:
        stat = os.stat(path)
    except OSError:
        raise Mat2GradError(f"{path}: no such file") from None
    # A MATLAB session calls again and again with the same file: keep the last few
    # networks, keyed on the file's identity and modification time.
    key = (os.path.realpath(path), stat.st_mtime_ns, stat.st_size)
    return _cached_model(key, path, network, dtype)


@functools.lru_cache(maxsize=4)
def _cached_model(key: tuple[Any, ...], path: str, network: str | None, dtype: str) -> nn.Module:
    return load(path, network, dtype=_DTYPES[dtype])


def _inputs(model: nn.Module, x: Any, samples: str) -> list[np.ndarray]:
    """MATLAB-layout inputs (an array, or a tuple/list for several) -> batch-first arrays."""
    value = _cell(x, "X") if isinstance(x, list | tuple) else _matrix(x, "X")
    sizes = tuple(int(s[0]) for s in model.input_shapes)
    return matfile.samples_from_matlab(value, sizes, samples=samples, what="X")


def _matrix(x: Any, what: str) -> np.ndarray:
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
