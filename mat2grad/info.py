"""``mat2grad info``: describe the networks in a file, as text and as JSON-ready data.

Describing a MAT-file imports no torch (only an ONNX model's description does)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .finding import find_networks, is_onnx
from .shallow.describe import describe_spec
from .shallow.record import NetworkSpec

__all__ = ["describe_file", "spec_summary"]


def describe_file(path: str | os.PathLike[str]) -> tuple[str, dict[str, Any]]:
    """Text and data describing every network in a MAT-file (or an ONNX model)."""
    if is_onnx(path):
        from .onnx import describe_onnx

        data = describe_onnx(path)
        return data.get("text", str(data)), data
    found = find_networks(path)
    if not found:
        return f"{path}: no MATLAB network found", {"file": str(path), "networks": []}
    lines = [f"{path}: {len(found)} network(s)"]
    nets = []
    for f in found:
        if f.spec is None:
            lines.append(f"'{f.path}': cannot be used: {f.error}")
            nets.append({"path": f.path, "error": f.error})
        else:
            lines.append(describe_spec(f.spec).replace(f" from {path}", "", 1))
            nets.append(spec_summary(f.spec))
    return "\n".join(lines), {"file": str(path), "networks": nets}


def spec_summary(spec: NetworkSpec) -> dict[str, Any]:
    """Plain data (str, int, float, list, dict) describing a network."""
    return {
        "path": spec.path,
        "name": spec.name,
        "version": spec.version,
        "performFcn": spec.perform_fcn,
        "trainFcn": spec.train_fcn,
        "dynamic": spec.is_dynamic,
        "inputs": [
            {
                "index": i.index,
                "name": i.name,
                "size": i.size,
                "processedSize": i.processed_size,
                "processFcns": [s.fcn for s in i.steps],
                "feedbackOutput": i.feedback_output,
                # [min max] per row, as MATLAB recorded it (inputs{i}.range); None if absent
                "range": None if i.range is None else np.asarray(i.range, float).tolist(),
            }
            for i in spec.inputs
        ],
        "layers": [
            {
                "index": layer.index,
                "name": layer.name,
                "size": layer.size,
                "transferFcn": layer.transfer,
                "netInputFcn": layer.net_input,
                "bias": spec.biases[layer.index - 1] is not None,
            }
            for layer in spec.layers
        ],
        "weights": [
            {
                "weight": w.label,
                "weightFcn": w.fcn,
                "delays": list(w.delays),
                "size": list(w.value.shape),
            }
            for w in spec.weights
        ],
        "outputs": [
            {
                "layer": o.layer,
                "name": o.name,
                "size": o.size,
                "processFcns": [s.fcn for s in o.steps],
                "feedbackMode": o.feedback_mode,
            }
            for o in spec.outputs
        ],
        "simulationOrder": list(spec.order),
        "zeroDerivative": list(spec.zero_derivative),
    }
