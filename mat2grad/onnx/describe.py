"""``describe_onnx``: what ``mat2grad info`` prints about an ONNX file.

The file is loaded as :func:`~mat2grad.onnx.load_onnx` would (without the onnxruntime check)
to report what mat2grad will do with it; when that fails, the rest is read from the file alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..errors import Mat2GradError
from ..matfile.onnx_layout import matlab_size_text
from .graph import CONTROL_FLOW_OPS, RECURRENT_OPS, graph_inputs, infer_layout
from .loader import load_onnx
from .proto import all_nodes, drop_initializer_inputs, free_values, subgraphs
from .reader import MATLAB_PRODUCER, elem_type_name, operator_counts, read_model

__all__ = ["describe_onnx"]


def describe_onnx(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Describe an ONNX file (for ``mat2grad info``).

    The file is loaded as :func:`load_onnx` would (without the onnxruntime check) to report
    what mat2grad will do with it; when that fails, the reason is in ``problem`` and the
    rest is read from the file alone.

    Returns:
        ``{"file", "producer", "producer_version", "matlab_exporter", "ir_version",
        "opsets": {domain: version}, "graph_name", "inputs": [...], "outputs": [...],
        "operators": {op: count}, "initializers", "parameters", "notes", "zero_derivative",
        "not_differentiable", "control_flow", "problem", "text"}``. Each input and output has
        ``name``, ``type``, ``shape`` (as declared in the file: symbolic dimensions by name,
        ``None`` when unnamed; old MATLAB exporters declare wrong output shapes),
        ``batch_axis``, ``sample_shape`` (what the loaded model takes / returns per sample),
        ``matlab_layout`` and ``matlab_size`` (the MATLAB array for N samples, e.g.
        ``"28x28x1xN"``). ``notes`` lists the rewrites mat2grad applies; ``control_flow``
        one line per Loop/Scan/If and how it is converted; ``text`` is the whole description
        as lines for a terminal.

    Raises:
        Mat2GradError: the file cannot be read safely.
    """
    model = read_model(path)
    problem, net = None, None
    try:
        net = load_onnx(path, check=False)
    except Mat2GradError as exc:
        problem = str(exc).removeprefix(f"{path}: ")
    declared = {v.name: v for v in (*model.graph.input, *model.graph.output)}
    producer = model.producer_name
    inputs, outputs = [], []
    if net is not None:
        for info, layout in zip(net.input_infos, net.input_layouts, strict=True):
            inputs.append(_entry(info.name, declared, info.batch_axis, info.sample_shape, layout))
        for k, name in enumerate(net.output_names):
            axis, sample = net.output_batch_axes[k], net.output_shapes[k]
            outputs.append(_entry(name, declared, axis, sample, net.output_layouts[k]))
    else:
        recurrent = any(n.op_type in RECURRENT_OPS for n in model.graph.node)
        for info in graph_inputs(_without_inits(model)):
            layout = infer_layout(
                info.sample_shape, producer=producer, role=info.role, recurrent=recurrent
            )
            inputs.append(_entry(info.name, declared, info.batch_axis, info.sample_shape, layout))
        for out in model.graph.output:
            outputs.append(_entry(out.name, declared, None, None, None))
    inits = model.graph.initializer
    data = {
        "file": str(Path(path)),
        "producer": producer,
        "producer_version": model.producer_version,
        "matlab_exporter": producer == MATLAB_PRODUCER,
        "ir_version": int(model.ir_version),
        "opsets": {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import},
        "graph_name": model.graph.name,
        "inputs": inputs,
        "outputs": outputs,
        "operators": operator_counts(model),
        "initializers": len(inits),
        "parameters": int(sum(int(np.prod(t.dims)) for t in inits)),
        "notes": list(net.notes) if net is not None else [],
        "zero_derivative": list(net.zero_derivative) if net is not None else [],
        "not_differentiable": net.not_differentiable if net is not None else None,
        "control_flow": _control_flow(model, net),
        "problem": problem,
    }
    data["text"] = _describe_text(data)
    return data


def _entry(
    name: str,
    declared: dict[str, Any],
    axis: int | None,
    sample: Sequence[int | None] | None,
    layout: str | None,
) -> dict[str, Any]:
    value = declared.get(name)
    return {
        "name": name,
        "type": elem_type_name(value.type.tensor_type.elem_type) if value is not None else "",
        "shape": _shape_text(value),
        "batch_axis": axis,
        "sample_shape": None if sample is None else tuple(sample),
        "matlab_layout": layout,
        "matlab_size": _matlab_size(sample, layout),
    }


def _matlab_size(sample: Sequence[int | None] | None, layout: str | None) -> str | None:
    """The MATLAB array a user passes (or gets) for N samples, e.g. ``28x28x1xN``."""
    if sample is None or layout is None:
        return None
    try:
        return matlab_size_text(tuple(sample), layout).split(" (")[0]
    except Mat2GradError:
        return None


def _describe_text(d: dict[str, Any]) -> str:
    def dims(shape: Sequence[Any] | None) -> str:
        if shape is None:
            return "?"
        return "[" + ", ".join("?" if x is None else str(x) for x in shape) + "]"

    def value(v: dict[str, Any]) -> str:
        text = f"  {v['name']}: {v['type']} {dims(v['shape'])}"
        if v["sample_shape"] is not None:
            text += (
                f"; one sample {dims(v['sample_shape'])} (batch axis {v['batch_axis']}), "
                f"MATLAB layout '{v['matlab_layout']}'"
            )
            if v.get("matlab_size"):
                text += f" ({v['matlab_size']})"
        return text

    opsets = ", ".join(f"{k} {v}" for k, v in d["opsets"].items())
    who = f"{d['producer']} {d['producer_version']}".strip() or "an unknown producer"
    lines = [
        f"{d['file']}: ONNX model by {who}"
        + (" (MATLAB's exporter)" if d["matlab_exporter"] else "")
        + f", IR {d['ir_version']}, opset {opsets}",
        "inputs:",
        *(value(v) for v in d["inputs"]),
        "outputs:",
        *(value(v) for v in d["outputs"]),
        "operators: " + ", ".join(f"{op} x{n}" for op, n in d["operators"].items()),
        f"weights: {d['initializers']} initializers, {d['parameters']} values",
    ]
    lines += [f"control flow: {c}" for c in d["control_flow"]]
    lines += [f"note: {n}" for n in d["notes"]]
    if d["zero_derivative"]:
        lines.append("zero derivative almost everywhere: " + ", ".join(d["zero_derivative"]))
    if d["not_differentiable"]:
        lines.append(f"not differentiable: {d['not_differentiable']}")
    if d["problem"]:
        lines.append(f"cannot be loaded: {d['problem']}")
    return "\n".join(lines)


_HOW = {
    "Loop": "its body runs as a torch module in a Python loop (trip count and condition "
    "read per call), loop-carried values passed on, scan outputs stacked",
    "Scan": "its body runs as a torch module once per slice of the scan inputs",
    "If": "both branches converted to torch modules, the branch chosen at run time",
}


def _control_flow(model: onnx.ModelProto, net: Any) -> list[str]:
    """One line per Loop/Scan/If (nested ones included): the node, its subgraph, and how
    mat2grad converts it (``net``: the converted network, or None where it is not)."""
    converted = net is not None
    hoisting = {
        m.where: m.hoisting for m in (net.modules() if converted else ()) if hasattr(m, "hoisting")
    }
    lines = []
    for node in all_nodes(model.graph):
        if node.op_type not in CONTROL_FLOW_OPS:
            continue
        subs = list(subgraphs(node))
        size = sum(len(list(all_nodes(g))) for g in subs)
        outer = list(dict.fromkeys(v for g in subs for v in free_values(g)))
        how = _HOW[node.op_type] if converted else "not converted (see 'cannot be loaded')"
        plan = hoisting.get(f"{node.op_type} node '{node.name or node.output[0]}'")
        if plan is not None:
            how += f"; {plan.describe()}"
        lines.append(
            f"{node.op_type} (node '{node.name or node.output[0]}'): {size} nodes in "
            f"{len(subs)} subgraph(s), reading {len(outer)} outer-scope value(s); {how}"
        )
    return lines


def _without_inits(model: onnx.ModelProto) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    drop_initializer_inputs(m)
    return m


def _shape_text(value: Any) -> tuple[int | str | None, ...]:
    if value is None or not value.type.tensor_type.HasField("shape"):
        return ()
    dims = []
    for d in value.type.tensor_type.shape.dim:
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return tuple(dims)
