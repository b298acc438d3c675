"""What cannot be exported, said before trying (dynamic networks, open sizes), and after an
exporter fails, which part of a shallow network it could not express."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..contract import contract_of
from ..errors import Mat2GradError
from ..shallow.functions import NET_INPUT, TRANSFER, WEIGHT
from ..shallow.module import ProcessingChain
from .portable import Apply, Fn
from .prepare import example_inputs
from .writers import FORMATS

__all__ = ["check_convertible", "unexportable_part"]


def check_convertible(model: nn.Module, where: str) -> None:
    """Refuse what no format can hold: a dynamic network, or a per-sample size left open."""
    contract = contract_of(model)
    spec = contract.spec
    if spec is not None and spec.is_dynamic:
        delays = [w.label for w in spec.weights if w.delays != (0,)]
        feedback = [f"output {o.layer}" for o in spec.outputs if o.feedback_mode != "none"]
        parts = ", ".join(
            ([f"tapped delays on {', '.join(delays)}"] if delays else [])
            + ([f"feedback from {', '.join(feedback)}"] if feedback else [])
        )
        raise Mat2GradError(
            f"{where} is a dynamic network ({parts}); converting dynamic networks is not "
            "supported: their simulation steps through time with delay states, which a traced "
            "file would fix to one sequence length; use mat2grad itself (predict, jacobian)"
        )
    for name, shape in zip(contract.input_names, contract.input_shapes or (), strict=True):
        if any(n is None for n in shape):
            dims = ", ".join("?" if n is None else str(n) for n in shape)
            raise Mat2GradError(
                f"{where}: input '{name}' has per-sample shape ({dims}), with a size the "
                "model leaves open; a converted file fixes every size but the batch"
            )
        if any(int(n) < 1 for n in shape):
            raise Mat2GradError(f"{where}: input '{name}' has an empty shape {tuple(shape)}")


def unexportable_part(
    model: nn.Module, suffix: str, opset: int | None, dtype: torch.dtype
) -> str | None:
    """Export each MATLAB function of a shallow network alone with the same writer; return
    the first part that fails ("layer 2 transfer function 'compet'"), or None."""
    spec = contract_of(model).spec
    if spec is None:
        return None
    processing = [
        (f"input {i.index} processing", step, "apply", step.in_size)
        for i in spec.inputs
        for step in i.steps
    ] + [
        (f"output {o.layer} reverse processing", step, "reverse", step.out_size)
        for o in spec.outputs
        for step in o.steps
    ]
    parts: list[tuple[str, nn.Module, list[int]]] = [
        (f"{label} function '{step.fcn}'", Apply(ProcessingChain([step], dtype), method), [n])
        for label, step, method, n in processing
    ]
    for w in spec.weights:
        weights = (model.IW if w.kind == "IW" else model.LW)[f"{w.to}_{w.source}"]
        parts.append(
            (
                f"weight {w.label} function '{w.fcn}'",
                Fn(lambda p, f=WEIGHT[w.fcn], W=weights: f(W, p)),
                [weights.shape[1]],
            )
        )
    for layer in spec.layers:
        parts.append(
            (
                f"layer {layer.index} net input function '{layer.net_input}'",
                Fn(lambda a, b, f=NET_INPUT[layer.net_input]: f([a, b])),
                [layer.size, layer.size],
            )
        )
        parts.append(
            (
                f"layer {layer.index} transfer function '{layer.transfer}'",
                Fn(TRANSFER[layer.transfer].apply),
                [layer.size],
            )
        )
    for label, module, sizes in parts:
        module.input_shapes = tuple((n,) for n in sizes)
        module.input_names = tuple(f"x{k}" for k in range(len(sizes)))
        module.output_names = ("y",)
        example = example_inputs(module, dtype)
        with torch.no_grad():
            module.output_shapes = ((int(module(*example).shape[-1]),),)
        try:
            FORMATS[suffix](module, example, _PART_INFO, opset, False)
        except Exception:
            return label
    return None


#: the description a part is written with (it is never saved)
_PART_INFO: dict[str, Any] = {
    "producer": "",
    "format": "",
    "source_file": None,
    "network_path": None,
    "network_name": "part",
    "dtype": "",
    "layout": "",
    "inputs": [],
    "outputs": [],
    "zero_derivative": [],
}
