"""Entry points for MATLAB's Python interface (``py.``): plain arrays in, plain arrays out,
MATLAB layout.

The MATLAB helpers in ``matlab/`` call mat2grad's command line through ``system()``. In
MATLAB (not Octave) they can instead call this module inside MATLAB's own Python session,
which saves starting Python and importing PyTorch for every call. PyTorch must not be loaded
into MATLAB's process, so the session has to run out of process::

    pyenv(Version="/path/to/venv/bin/python", ExecutionMode="OutOfProcess");
    api = py.importlib.import_module('mat2grad.matlab_api');
    Y = double(api.predict('net.mat', X));            % X: R x Q double -> Y: S x Q

``mat2grad_setup('InProcess', true)`` makes the helpers do this through :func:`run` for the
commands in :data:`COMMANDS`.

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
import inspect
import os
from collections.abc import Callable
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

    Returns:
        ``S x Q`` float64 (``Q x S`` for ``samples="rows"``), a tuple for several outputs.

    Example:
        >>> y = predict("net.mat", np.random.rand(16, 100))   # doctest: +SKIP
        >>> assert y.shape == (1, 100)
    """
    model = _model(path, network, dtype)
    inputs = _inputs(model, x, samples)
    y = [matfile.samples_to_matlab(o, samples) for o in predict_arrays(model, inputs)]
    return y[0] if len(y) == 1 else tuple(y)


#: The commands :func:`run` offers, named like the CLI's subcommands.
COMMANDS: tuple[str, ...] = ("predict",)

#: The function behind each command and the name of its result(s) in the CLI's result file.
_COMMANDS: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {
    "predict": (predict, ("Y",)),
}


def run(command: str, path: str, x: Any = None, t: Any = None, **options: Any) -> dict[str, Any]:
    """Run ``command`` as the CLI would, returning what its result file would hold.

    The MATLAB helpers' in-process route: ``options`` carry the CLI's option names with
    underscores (``network``, ``samples``, ``dtype``, ...) and values as the helpers pass
    them (text). ``x`` and ``t`` are the inputs and targets (``t`` unused by ``predict``).

    Returns:
        A dict named like the variables of the CLI's result file, e.g. ``{"Y": ...}``; a
        tuple stands for a MATLAB cell.

    Raises:
        Mat2GradError: an unknown command or option, or any error of the command itself.
    """
    if command not in _COMMANDS:
        raise Mat2GradError(
            f"matlab_api: no in-process command '{command}' (available: {', '.join(COMMANDS)})"
        )
    function, names = _COMMANDS[command]
    accepted = [
        p.name
        for p in inspect.signature(function).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise Mat2GradError(
            f"{command}: option(s) {', '.join(unknown)} not accepted in-process "
            f"(accepted: {', '.join(accepted)})"
        )
    if x is None:
        raise Mat2GradError(f"{command}: no inputs given")
    result = function(str(path), x, **{k: v for k, v in options.items() if v is not None})
    values = result if len(names) > 1 else (result,)
    return dict(zip(names, values, strict=True))


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
    if isinstance(x, list | tuple):
        value: Any = np.empty((len(x), 1), dtype=object)
        for k, item in enumerate(x):
            value[k, 0] = _matrix(item, f"X{{{k + 1}}}")
    else:
        value = _matrix(x, "X")
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
