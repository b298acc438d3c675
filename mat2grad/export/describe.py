"""What an exported file records about itself: the description (JSON in every format), the
ONNX docstring, and the names of its inputs and outputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .._version import __version__
from ..contract import contract_of
from ..matfile.export_layout import BATCH_FIRST_TEXT, MATLAB_TEXT, data_format, dims_with_batch

__all__ = ["FORMAT_NAMES", "description", "docstring", "io_names"]

#: output suffix -> the format's name in messages and descriptions
FORMAT_NAMES = {
    ".pt2": "torch.export ExportedProgram (.pt2)",
    ".pt": "TorchScript, traced (.pt)",
    ".onnx": "ONNX (.onnx)",
}


def description(
    model: nn.Module,
    source_name: str | None,
    suffix: str,
    dtype: torch.dtype,
    opset: int | None,
    matlab_layout: bool,
) -> dict[str, Any]:
    """The file's description: where the network came from, its layout, inputs and outputs
    with the processing folded in, and (``.onnx``) how MATLAB imports it."""
    contract = contract_of(model)
    spec = contract.spec
    in_names, out_names = io_names(model)
    inputs = []
    for j, (name, shape) in enumerate(zip(in_names, model.input_shapes, strict=True)):
        steps = [s.fcn for s in spec.inputs[j].steps] if spec is not None else []
        dims = dims_with_batch(shape, matlab_layout)
        inputs.append({"name": name, "shape": dims, "processing": steps})
    outputs = []
    for k, name in enumerate(out_names):
        shape = contract.output_shapes[k] if contract.output_shapes is not None else ()
        steps = [s.fcn for s in reversed(spec.outputs[k].steps)] if spec is not None else []
        dims = dims_with_batch(shape, matlab_layout)
        outputs.append({"name": name, "shape": dims, "reverse_processing": steps})
    info: dict[str, Any] = {
        "producer": f"mat2grad {__version__}",
        "format": FORMAT_NAMES[suffix],
        "source_file": source_name,
        "network_path": spec.path if spec is not None else None,
        "network_name": spec.name if spec is not None else None,
        "dtype": str(dtype).removeprefix("torch."),
        "layout": MATLAB_TEXT if matlab_layout else BATCH_FIRST_TEXT,
        "inputs": inputs,
        "outputs": outputs,
        "processing": "the processing functions are part of the graph: raw inputs in, raw "
        "outputs out, as MATLAB's sim",
        "zero_derivative": list(contract.zero_derivative),
    }
    if getattr(model, "producer", None) is not None and hasattr(model, "notes"):
        # an ONNX network: what wrote the source, and what mat2grad rewrote in it (the
        # MATLAB 2018 exporter's Gemm on a 4-D tensor, old opsets, Dropout, ...)
        info["source_producer"] = model.producer
        info["source_opset"] = getattr(model, "opset", None)
        info["rewrites"] = list(model.notes)
    if opset is not None:
        info["opset"] = opset
        matlab = _matlab_import(model, spec, matlab_layout)
        if matlab is not None:
            info["matlab"] = matlab
    return info


def _matlab_import(model: nn.Module, spec: Any, matlab_layout: bool) -> str | None:
    """How MATLAB's ``importNetworkFromONNX`` reads the file, where that can be said."""
    if spec is not None or not hasattr(model, "input_layouts"):
        fmt = data_format(matlab_layout)
        return (
            f'net = importNetworkFromONNX(file, InputDataFormats="{fmt}", '
            f'OutputDataFormats="{fmt}"); Y = extractdata(predict(net, dlarray(X, "CB"))) '
            "with X R x Q, as sim(net, X) (not verified here: MATLAB is not available to "
            "mat2grad's tests)"
        )
    ins = _matlab_formats(model.input_shapes, model.input_layouts, matlab_layout)
    outs = _matlab_formats(model.output_shapes, model.output_layouts, matlab_layout)
    if ins is None or outs is None:
        return None
    return (
        f"net = importNetworkFromONNX(file, InputDataFormats={ins}, "
        f"OutputDataFormats={outs}) (not verified here: MATLAB is not available "
        "to mat2grad's tests)"
    )


def _matlab_formats(
    shapes: Sequence[tuple], layouts: Sequence[str], matlab_layout: bool
) -> str | None:
    """MATLAB data formats of a converted ONNX network's batch-first tensors ("BC" for
    (Q, C), "BCSS" for (Q, C, H, W), "BTC" for a (Q, T, C) sequence), as a MATLAB string or
    string array; None where a tensor has none of these forms."""
    formats = []
    for shape, layout in zip(shapes, layouts, strict=True):
        if len(shape) == 1:
            formats.append(data_format(matlab_layout))
        elif len(shape) == 2 and layout == "sequence":
            formats.append("BTC")
        elif len(shape) in (3, 4) and layout != "sequence":
            formats.append("BC" + "S" * (len(shape) - 1))
        else:
            return None
    quoted = [f'"{f}"' for f in formats]
    return quoted[0] if len(quoted) == 1 else f"[{', '.join(quoted)}]"


def docstring(info: dict[str, Any]) -> str:
    """The description as the text of an ONNX model's ``doc_string``."""
    where = info["source_file"] or "a loaded model"
    if info["network_path"]:
        where = f"network '{info['network_path']}' of {where}"
    lines = [f"{info['producer']}: {where}, as {info['format']} ({info['dtype']})."]
    lines.append(f"Layout: {info['layout']}; Q, the batch, is dynamic.")
    if "source_producer" in info:
        who = info["source_producer"] or "an unknown producer"
        lines.append(f"Source: ONNX by {who}, opset {info['source_opset']}.")
        lines += [f"Rewritten on loading: {note}." for note in info["rewrites"]]
    for i in info["inputs"]:
        proc = ", ".join(i["processing"]) or "none"
        lines.append(f"Input '{i['name']}' {i['shape']}: processing folded in: {proc}.")
    for o in info["outputs"]:
        proc = ", ".join(o["reverse_processing"]) or "none"
        lines.append(f"Output '{o['name']}' {o['shape']}: reverse processing folded in: {proc}.")
    if info["zero_derivative"]:
        lines.append(
            f"Derivatives are zero almost everywhere through {', '.join(info['zero_derivative'])}."
        )
    if "matlab" in info:
        lines.append(f"MATLAB: {info['matlab']}.")
    return "\n".join(lines)


def io_names(model: nn.Module) -> tuple[list[str], list[str]]:
    """Input and output names, distinct across both (ONNX values share one namespace)."""
    ins = [str(n) for n in model.input_names]
    outs = []
    for n in map(str, model.output_names):
        name, k = n, 1
        while name in ins or name in outs:
            k += 1
            name = f"{n}_{k}"
        outs.append(name)
    return ins, outs
