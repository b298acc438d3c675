"""The load-time check of a converted model against onnxruntime.

onnxruntime runs the file as it is (or, where onnxruntime refuses the file -- MATLAB's 2018
``Gemm`` on a rank-4 tensor, PyTorch 0.3's LSTM-1 -- the normalised graph, and the report
says so) on a seeded random input at the batch size the file declares. The converted module
runs the same input in its own dtype. Outputs must agree within :func:`float32_tolerance`;
otherwise the check looks for the first node whose output diverges (onnxruntime asked for
every intermediate value of the normalised graph; the fx graph interpreted with the same
input) and raises :class:`Mat2GradError` naming it.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np
import torch
from onnx import ModelProto, TensorProto, shape_inference
from torch import fx

from ..contract import to_numpy
from ..errors import Mat2GradError, first_line, is_out_of_memory, out_of_memory
from .graph import FLOAT_TYPES

__all__ = [
    "MAX_FEED_ELEMENTS",
    "MAX_SEQUENCE_STEPS",
    "check_declared_sizes",
    "float32_tolerance",
    "check_against_onnxruntime",
    "onnxruntime_available",
    "import_onnxruntime",
]

#: Relative tolerance for float32 evaluation against onnxruntime, as a fraction of the
#: reference's largest magnitude (at least 1): accumulated float32 round-off in a deep or wide
#: network stays orders of magnitude below it, and a wrong operator does not.
FLOAT32_RTOL = 1e-4


def float32_tolerance(reference: np.ndarray) -> float:
    """Largest absolute difference from ``reference`` accepted as float32 round-off."""
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    return FLOAT32_RTOL * max(1.0, scale)


def onnxruntime_available() -> bool:
    """Whether onnxruntime can be imported."""
    return importlib.util.find_spec("onnxruntime") is not None


_NP = {
    TensorProto.FLOAT: np.float32,
    TensorProto.DOUBLE: np.float64,
    TensorProto.FLOAT16: np.float16,
    TensorProto.INT64: np.int64,
    TensorProto.INT32: np.int32,
    TensorProto.INT8: np.int8,
    TensorProto.UINT8: np.uint8,
    TensorProto.BOOL: np.bool_,
}


def import_onnxruntime():
    """Import onnxruntime with its telemetry off unless the user decided otherwise:
    onnxruntime (1.32) otherwise writes a session file ``.ses`` into TMPDIR on import."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime

    return onnxruntime


def _session(model: ModelProto):
    ort = import_onnxruntime()

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4  # refusals are handled here
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


#: The most elements one input of a load-time run may have (128 MiB in float64), and the
#: most fixed time steps of a recurrent input (each step is one Python-level loop turn).
MAX_FEED_ELEMENTS = 1 << 24
MAX_SEQUENCE_STEPS = 4096


def check_declared_sizes(infos: Any, path: Any) -> None:
    """Refuse inputs whose declared sizes a load-time run could not afford, before any
    array is allocated: more than :data:`MAX_FEED_ELEMENTS` elements at batch size 2 (a
    symbolic dimension counted as 3), or a recurrent input fixing more than
    :data:`MAX_SEQUENCE_STEPS` time steps.

    Raises:
        Mat2GradError: naming the input, its declared size and what to do.
    """
    for info in infos:
        dims = [(2 if k == info.batch_axis else 3) if d is None else d
                for k, d in enumerate(info.dims)]  # fmt: skip
        count = int(np.prod(dims, dtype=object)) if dims else 1
        if any(d < 0 for d in dims) or count > MAX_FEED_ELEMENTS:
            raise Mat2GradError(
                f"{path}: input '{info.name}' declares dimensions {list(info.dims)} "
                f"({count} elements at batch size 2; at most {MAX_FEED_ELEMENTS} are "
                "supported); the file is corrupt, or export it with symbolic (named) sizes"
            )
        # a recurrent input is (time, batch, features) or (batch, time, features)
        steps = [d or 1 for k, d in enumerate(info.dims[:-1]) if k != info.batch_axis]
        if info.role == "sequence" and int(np.prod(steps, dtype=object)) > MAX_SEQUENCE_STEPS:
            raise Mat2GradError(
                f"{path}: input '{info.name}' fixes {steps} time steps (at most "
                f"{MAX_SEQUENCE_STEPS} are supported); the file is corrupt, or export it "
                "with a symbolic sequence length"
            )


def random_feeds(net: Any, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs at the shapes the file declares; where the batch is symbolic, 2 samples
    if the graph treats samples independently (``net.batches_independently``), else 1."""
    rng = np.random.default_rng(seed)
    batch = 2 if getattr(net, "batches_independently", False) else 1
    feeds = {}
    for info in net.input_infos:
        dims = [
            (batch if k == info.batch_axis else 3) if d is None else d
            for k, d in enumerate(info.dims)
        ]
        dtype = _NP.get(info.elem_type)
        if dtype is None:
            raise Mat2GradError(
                f"{net.source}: input '{info.name}' has element type "
                f"{TensorProto.DataType.Name(info.elem_type)}, which mat2grad cannot feed"
            )
        if info.elem_type in FLOAT_TYPES:
            feeds[info.name] = rng.uniform(-1.0, 1.0, size=dims).astype(dtype)
        else:
            feeds[info.name] = np.zeros(dims, dtype=dtype)
    return feeds


def run_module(net: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run ``net`` on file-layout arrays; outputs come back in file layout too."""
    args = []
    for info in net.input_infos:
        x = np.moveaxis(feeds[info.name], info.batch_axis, 0)  # not MATLAB layout: batch first
        args.append(torch.from_numpy(x.copy()))
    with torch.no_grad():
        outs = net(*args)
    outs = outs if isinstance(outs, tuple) else (outs,)
    result = []
    for y, axis in zip(outs, net.output_batch_axes, strict=True):
        y = to_numpy(y)
        y = y[0] if axis is None else np.moveaxis(y, 0, axis)  # not MATLAB layout: file's axis
        result.append(y)
    return result


def check_against_onnxruntime(net: Any, original: ModelProto, normalised: ModelProto) -> dict:
    """Compare ``net`` with onnxruntime on a random input; raise on a mismatch.

    Returns:
        a report: ``{"reference": "file" | "normalised graph", "max_abs_error": float,
        "tolerance": float, "outputs": {...}}``, or ``{"skipped": reason}``.

    Raises:
        Mat2GradError: an output differs beyond :func:`float32_tolerance`; the message names
            the first diverging node when it can be found.
    """
    if not onnxruntime_available():
        return {"skipped": "onnxruntime is not installed"}
    try:
        session, reference = _session(original), "file"
    except Exception as first:  # noqa: BLE001 - onnxruntime raises its own types
        try:
            session, reference = _session(normalised), "normalised graph"
        except Exception as exc:  # noqa: BLE001
            return {
                "skipped": "onnxruntime cannot load the file "
                f"({first_line(first, limit=300)}) nor the normalised graph "
                f"({first_line(exc, limit=300)})"
            }
    feeds = random_feeds(net)
    try:
        expected = session.run(None, feeds)
    except Exception as exc:  # noqa: BLE001
        return {"skipped": f"onnxruntime failed to run the model: {first_line(exc, limit=300)}"}
    try:
        got = run_module(net, feeds)
    except Mat2GradError:
        raise
    except Exception as exc:  # noqa: BLE001 - a converter defect must still be one error type
        if is_out_of_memory(exc):
            raise out_of_memory(f"{net.source}: the load-time check", exc) from None
        raise Mat2GradError(
            f"{net.source}: the converted model fails on the random input that onnxruntime "
            f"runs ({type(exc).__name__}: {first_line(exc, limit=300)}). This is a mat2grad "
            "or onnx2torch defect; please report the file (load with check=False to skip "
            "this check)"
        ) from None
    report: dict[str, Any] = {"reference": reference, "outputs": {}}
    worst = 0.0
    for name, ref, mine in zip(net.output_names, expected, got, strict=True):
        ref = np.asarray(ref)
        if ref.shape != mine.shape:
            mixing = (
                ""
                if net.batches_independently
                else (
                    " (the graph does not treat the samples of a batch independently, e.g. "
                    "Flatten(axis=0) or a Reshape across the batch, while mat2grad evaluates one "
                    "sample at a time)"
                )
            )
            raise Mat2GradError(
                f"{net.source}: output '{name}' has shape {mine.shape} after conversion but "
                f"{ref.shape} in onnxruntime{mixing}"
            )
        err = float(np.max(np.abs(mine.astype(np.float64) - ref.astype(np.float64)), initial=0))
        tol = float32_tolerance(ref.astype(np.float64))
        report["outputs"][name] = {"max_abs_error": err, "tolerance": tol}
        worst = max(worst, err)
        if not err <= tol:
            where = first_diverging_node(net, normalised, feeds)
            raise Mat2GradError(
                f"{net.source}: the converted model does not match onnxruntime: output "
                f"'{name}' differs by {err:.3g} (float32 tolerance {tol:.3g}); {where}. This "
                "is a mat2grad or onnx2torch defect; please report the file (load with "
                "check=False to use the model anyway)"
            )
    report["max_abs_error"] = worst
    return report


class _Recorder(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self.values: dict[str, torch.Tensor] = {}

    def call_module(self, target, args, kwargs):  # noqa: D102
        result = super().call_module(target, args, kwargs)
        module = self.fetch_attr(target)
        mapping = getattr(module, "onnx_mapping", None)
        if mapping is not None:
            outs = result if isinstance(result, tuple | list) else (result,)
            for name, value in zip(mapping.outputs, outs, strict=False):
                if name and isinstance(value, torch.Tensor):
                    self.values[name] = value
        return result


def first_diverging_node(net: Any, normalised: ModelProto, feeds: dict[str, np.ndarray]) -> str:
    """Name the first node of the normalised graph whose output differs from onnxruntime's."""
    try:
        probe = ModelProto()
        probe.CopyFrom(normalised)
        inferred = shape_inference.infer_shapes(probe)
        typed = {vi.name: vi for vi in inferred.graph.value_info}
        present = {o.name for o in probe.graph.output}
        for node in probe.graph.node:
            for name in node.output:
                if name and name in typed and name not in present:
                    probe.graph.output.append(typed[name])
                    present.add(name)
        names = [o.name for o in probe.graph.output]
        values = dict(zip(names, _session(probe).run(None, feeds), strict=True))
        recorder = _Recorder(net.graph_module)
        args = []
        for info in net.input_infos:
            x = torch.from_numpy(feeds[info.name])
            args.append(x.to(net.dtype) if x.is_floating_point() else x)
        with torch.no_grad():
            recorder.run(*args)
    except Exception as exc:  # noqa: BLE001 - the diagnosis is best effort
        return f"the diverging node could not be located ({first_line(exc, limit=300)})"
    for node in normalised.graph.node:
        for name in node.output:
            if name not in values or name not in recorder.values:
                continue
            ref = np.asarray(values[name]).astype(np.float64)
            mine = to_numpy(recorder.values[name]).astype(np.float64)
            if mine.shape != ref.shape:
                return (
                    f"first diverging node: '{node.name or name}' ({node.op_type}), output "
                    f"'{name}' has shape {mine.shape} instead of {ref.shape}"
                )
            err = float(np.max(np.abs(mine - ref), initial=0))
            if not err <= float32_tolerance(ref):
                return (
                    f"first diverging node: '{node.name or name}' ({node.op_type}), output "
                    f"'{name}' differs by {err:.3g}"
                )
    return "no single node could be blamed (each node matches within tolerance)"
