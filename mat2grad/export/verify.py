"""Verification: the written bytes, loaded back as a user would load them, reproduce the
network at batch sizes no export or recording used."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..contract import contract_of, to_numpy
from ..errors import Mat2GradError, first_line
from ..matfile.export_layout import arrays_from_matlab, arrays_to_matlab
from .describe import FORMAT_NAMES
from .prepare import example_inputs

__all__ = ["verify"]

#: relative agreement demanded of a reloaded file (max |difference| / max |y|): loose enough
#: for another runtime's round-off, tight enough for any structural error (a batch size baked
#: into the graph, a wrong layout) to show
_VERIFY_RTOL = {torch.float64: 1e-10, torch.float32: 1e-4}
#: batch sizes a reloaded file is run at: 1, and one that no export or recording used
#: (the exporters trace 3 samples; ONNX networks are recorded at 2, 3 and 5)
_VERIFY_BATCHES = (1, 4)

Run = Callable[[tuple[Tensor, ...]], list[np.ndarray]]


def verify(
    suffix: str, data: bytes, model: nn.Module, dtype: torch.dtype, ml: bool, where: str
) -> None:
    """Reload ``data`` as a user would and compare it with ``model`` on batches of
    :data:`_VERIFY_BATCHES` samples. ``.onnx`` is run by onnxruntime when it is installed
    (by onnx's reference evaluator where onnxruntime has no float64 kernel)."""
    name = FORMAT_NAMES[suffix]
    try:
        run = _LOADERS[suffix](data, ml)
    except Exception as exc:
        raise Mat2GradError(
            f"{where}: the written {name} cannot be loaded back ({type(exc).__name__}: "
            f"{first_line(str(exc))})"
        ) from exc
    if run is None:
        return
    step_functions = bool(contract_of(model).zero_derivative)
    for q in _VERIFY_BATCHES:
        xs = example_inputs(model, dtype, q, seed=q)
        with torch.no_grad():
            expected = _outputs(model(*xs))
        try:
            got = run(xs)
        except Exception as exc:
            raise Mat2GradError(
                f"{where}: the written {name} fails on a batch of {q} sample(s) "
                f"({type(exc).__name__}: {first_line(str(exc))}); the network's graph "
                "probably fixes the batch size"
            ) from exc
        for k, (y, e) in enumerate(zip(got, expected, strict=True)):
            if tuple(y.shape) != tuple(e.shape):
                raise Mat2GradError(
                    f"{where}: the written {name} returns output {k + 1} of shape "
                    f"{tuple(y.shape)} for a batch of {q}, expected {tuple(e.shape)}"
                )
            if dtype == torch.float32 and step_functions:
                continue  # a step function may flip where two float32 runtimes round apart
            err = _relative_error(y, e)
            if not err <= _VERIFY_RTOL[dtype]:
                raise Mat2GradError(
                    f"{where}: the written {name} does not reproduce the network: output "
                    f"{k + 1} differs by {err:.1e} (relative) on a batch of {q}"
                )


def _outputs(y: Any) -> list[np.ndarray]:
    outs = y if isinstance(y, tuple | list) else (y,)
    return [to_numpy(o) for o in outs]


def _relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |a - e| / max |e| over finite entries; inf where non-finite entries differ."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    finite = np.isfinite(e)
    same_nonfinite = np.array_equal(a[~finite], e[~finite], equal_nan=True)
    if not same_nonfinite or not np.all(np.isfinite(a[finite])):
        return float("inf")
    scale = np.max(np.abs(e[finite]), initial=0.0)
    diff = np.max(np.abs(a[finite] - e[finite]), initial=0.0)
    return float(diff / scale) if scale > 0 else float(diff)


def _load_pt2(data: bytes, ml: bool) -> Run:
    module = torch.export.load(io.BytesIO(data)).module()
    return lambda xs: _outputs(module(*xs))


def _load_torchscript(data: bytes, ml: bool) -> Run:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # see writers._write_torchscript
        module = torch.jit.load(io.BytesIO(data))
    return lambda xs: _outputs(module(*xs))


def _load_onnx(data: bytes, ml: bool) -> Run | None:
    try:
        import onnxruntime  # local: optional, and a heavy import (start-up time)
    except ImportError:  # not a dependency of mat2grad: the checker's verdict stands alone
        return None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4  # fatal only: a failing run raises, and is reported
    try:
        session = onnxruntime.InferenceSession(
            data, sess_options=options, providers=["CPUExecutionProvider"]
        )
        names = [i.name for i in session.get_inputs()]
    except Exception as exc:
        if type(exc).__name__ != "NotImplemented":
            raise
        # onnxruntime's CPU kernels for Conv, ConvTranspose and pooling are float32 only
        # ("Could not find an implementation for Conv(11)"): a float64 file is valid ONNX
        # (the checker passed), and it is verified with onnx's own reference evaluator
        # local: onnx is a heavy import (start-up time)
        from onnx import load_from_string
        from onnx.reference import ReferenceEvaluator

        proto = load_from_string(data)
        weights = {t.name for t in proto.graph.initializer}  # graph inputs below opset 9
        session = ReferenceEvaluator(proto)
        names = [i.name for i in proto.graph.input if i.name not in weights]

    def run(xs: tuple[Tensor, ...]) -> list[np.ndarray]:
        arrays = arrays_to_matlab(xs, ml)
        outs = session.run(None, dict(zip(names, arrays, strict=True)))
        return arrays_from_matlab(outs, ml)

    return run


_LOADERS = {".pt2": _load_pt2, ".pt": _load_torchscript, ".onnx": _load_onnx}
