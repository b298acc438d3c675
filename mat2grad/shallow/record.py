"""A saved MATLAB ``network`` record -> a typed, validated :class:`NetworkSpec`.

The record is what MATLAB writes for a ``network`` object, read into the neutral tree of
:mod:`mat2grad.matfile`: an old-style object (format versions '7' and '8'), the struct inside
the MCOS object's property ``any`` (version '9'), or the same fields as a plain struct (what
Octave sends, or ``struct(net)``). The three versions are one schema: their processing
settings differ (rebuilt in :mod:`mat2grad.shallow.settings`); v9 has ``revertProps`` where
v8 has ``revert`` and v7 has an extra ``hint``, neither of which matters for simulation.

Indices in the spec are MATLAB's: 1-based layer, input and output numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import Mat2GradError
from ..matfile import (
    MatStruct,
    as_float,
    cell_item,
    cell_item2,
    cell_item_or_none,
    describe,
    stored_example,
    stored_range,
)
from .fields import (
    bool_matrix,
    float_or,
    learn_flag,
    matrix,
    optional_int,
    perform_param,
    text,
    whole_number,
)
from .names import NET_INPUT_NAMES, TRANSFER_NAMES, WEIGHT_NAMES, check_supported
from .settings import parse_steps
from .spec import (  # noqa: F401  respec: a compatibility re-export (old import path)
    InputSpec,
    LayerSpec,
    NetworkSpec,
    OutputSpec,
    ProcessStep,
    WeightSpec,
    Where,
    respec,
    sim_order,
)

__all__ = ["is_network_record", "network_record", "parse_network"]

#: Fields every network record has, whatever its format version.
_REQUIRED = (
    "numInputs",
    "numLayers",
    "biasConnect",
    "inputConnect",
    "layerConnect",
    "outputConnect",
    "inputs",
    "layers",
    "outputs",
    "inputWeights",
    "layerWeights",
    "IW",
    "LW",
    "b",
)


# --------------------------------------------------------------------------------------
# Finding records
# --------------------------------------------------------------------------------------


def network_record(value: Any) -> MatStruct | None:
    """The record inside a tree value if it is a network, else None.

    Accepts an old-style ``network`` object, the MCOS ``network`` object (record in its
    property ``any``), or a plain struct with the network fields (Octave, ``struct(net)``).
    """
    if not isinstance(value, MatStruct):
        return None
    if value.classname == "network" and isinstance(value.fields.get("any"), MatStruct):
        # MCOS (version 9): the top-level properties hold an empty network's defaults and
        # the saved record sits in the property `any`.
        inner = value.fields["any"]
        return inner if _has_fields(inner) else None
    if value.classname in (None, "network") and _has_fields(value):
        return value
    return None


def is_network_record(value: Any) -> bool:
    return network_record(value) is not None


def _has_fields(value: MatStruct) -> bool:
    return all(name in value.fields for name in _REQUIRED)


# --------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------


def parse_network(value: Any, *, source: str = "", path: str = "net") -> NetworkSpec:
    """Parse and validate a network record (see :func:`network_record`).

    Raises:
        Mat2GradError: the value is not a network, a field is malformed, sizes disagree,
            a function is not supported, or the connections contain a zero-delay loop.
    """
    rec = network_record(value)
    ctx = Where(source, path)
    if rec is None:
        prefix = f"{source}: " if source else ""
        raise Mat2GradError(
            f"{prefix}'{path}' is {describe(value)}, not a MATLAB network (expected a "
            f"network object or a struct with fields {', '.join(_REQUIRED)})"
        )
    num_inputs = whole_number(rec["numInputs"], ctx, "numInputs")
    num_layers = whole_number(rec["numLayers"], ctx, "numLayers")
    if num_layers < 1:
        raise ctx.err("numLayers", "the network has no layers (was it configured and trained?)")
    bias_connect = bool_matrix(rec["biasConnect"], (num_layers, 1), ctx, "biasConnect")
    input_connect = bool_matrix(rec["inputConnect"], (num_layers, num_inputs), ctx, "inputConnect")
    layer_connect = bool_matrix(rec["layerConnect"], (num_layers, num_layers), ctx, "layerConnect")
    output_connect = bool_matrix(rec["outputConnect"], (1, num_layers), ctx, "outputConnect")

    layers = tuple(
        _parse_layer(cell_item(rec["layers"], k, ctx, "layers"), k + 1, ctx)
        for k in range(num_layers)
    )
    inputs = tuple(
        _parse_input(cell_item(rec["inputs"], k, ctx, "inputs"), k + 1, ctx)
        for k in range(num_inputs)
    )
    outputs = tuple(
        _parse_output(cell_item(rec["outputs"], k, ctx, "outputs"), k + 1, layers[k], ctx)
        for k in range(num_layers)
        if output_connect[0, k]
    )
    if not outputs:
        raise ctx.err("outputConnect", "no layer is connected to an output")

    biases: list[np.ndarray | None] = []
    for i in range(num_layers):
        if not bias_connect[i, 0]:
            biases.append(None)
            continue
        b = matrix(cell_item(rec["b"], i, ctx, "b"), ctx, f"b{{{i + 1}}}")
        if b.shape != (layers[i].size, 1):
            raise ctx.err(
                f"b{{{i + 1}}}",
                f"expected a {layers[i].size}x1 bias (layers{{{i + 1}}}.size), "
                f"found {b.shape[0]}x{b.shape[1]}",
            )
        biases.append(b[:, 0].copy())

    input_weights = []
    for i in range(num_layers):
        for j in range(num_inputs):
            if input_connect[i, j]:
                input_weights.append(
                    _parse_weight(
                        rec, "IW", i + 1, j + 1, layers[i].size, inputs[j].processed_size, ctx
                    )
                )
    layer_weights = []
    for i in range(num_layers):
        for j in range(num_layers):
            if layer_connect[i, j]:
                layer_weights.append(
                    _parse_weight(rec, "LW", i + 1, j + 1, layers[i].size, layers[j].size, ctx)
                )

    for out in outputs:
        if out.feedback_mode == "open" and out.feedback_input is None:
            raise ctx.err(
                f"outputs{{{out.layer}}}", "feedbackMode is 'open' but feedbackInput is empty"
            )

    spec = NetworkSpec(
        source=source,
        path=path,
        version=text(rec.get("version", ""), ""),
        name=text(rec.get("name", ""), ""),
        inputs=inputs,
        layers=layers,
        biases=tuple(biases),
        input_weights=tuple(input_weights),
        layer_weights=tuple(layer_weights),
        outputs=outputs,
        order=sim_order(num_layers, layer_weights, ctx),
        perform_fcn=text(rec.get("performFcn", ""), ""),
        perform_param=perform_param(rec.get("performParam")),
        train_fcn=text(rec.get("trainFcn", ""), ""),
        sample_time=float_or(rec.get("sampleTime"), 1.0),
        bias_learn=tuple(
            learn_flag(cell_item_or_none(rec.get("biases"), i)) for i in range(num_layers)
        ),
    )
    return spec


def _parse_layer(value: Any, index: int, ctx: Where) -> LayerSpec:
    where = f"layers{{{index}}}"
    if not isinstance(value, MatStruct):
        raise ctx.err(where, f"expected a struct, found {describe(value)}")
    transfer = text(value.get("transferFcn"), where + ".transferFcn")
    net_input = text(value.get("netInputFcn", "netsum"), where + ".netInputFcn") or "netsum"
    check_supported(TRANSFER_NAMES, transfer, "transfer", ctx.place(where))
    check_supported(NET_INPUT_NAMES, net_input, "net input", ctx.place(where))
    return LayerSpec(
        index=index,
        name=text(value.get("name", ""), ""),
        size=whole_number(value.get("size"), ctx, where + ".size"),
        transfer=transfer,
        net_input=net_input,
    )


def _parse_input(value: Any, index: int, ctx: Where) -> InputSpec:
    where = f"inputs{{{index}}}"
    if not isinstance(value, MatStruct):
        raise ctx.err(where, f"expected a struct, found {describe(value)}")
    size, steps, processed = _rows_and_steps(value, value.get("size"), ctx, where)
    if "processedSize" in value.fields:
        declared = whole_number(value["processedSize"], ctx, where + ".processedSize")
        if declared != processed:
            raise ctx.err(
                where,
                f"processing maps {size} rows to {processed}, but processedSize is {declared}",
            )
    return InputSpec(
        index=index,
        name=text(value.get("name", ""), ""),
        size=size,
        processed_size=processed,
        steps=steps,
        feedback_output=optional_int(value.get("feedbackOutput")),
        example=stored_example(value.get("exampleInput"), size),
        range=stored_range(value.get("range"), size),
    )


def _parse_output(value: Any, layer: int, layer_spec: LayerSpec, ctx: Where) -> OutputSpec:
    where = f"outputs{{{layer}}}"
    if not isinstance(value, MatStruct):
        raise ctx.err(where, f"outputConnect({layer}) is 1 but the output is {describe(value)}")
    size, steps, processed = _rows_and_steps(value, value.get("size", layer_spec.size), ctx, where)
    if processed != layer_spec.size:
        raise ctx.err(
            where,
            f"output processing maps {size} rows to {processed}, but layer {layer} has "
            f"{layer_spec.size} neurons",
        )
    mode = text(value.get("feedbackMode", "none"), "") or "none"
    return OutputSpec(
        layer=layer,
        name=text(value.get("name", ""), ""),
        size=size,
        processed_size=processed,
        steps=steps,
        feedback_input=optional_int(value.get("feedbackInput")),
        feedback_mode=mode,
        feedback_delay=int(float_or(value.get("feedbackDelay"), 0.0)),
        range=stored_range(value.get("range"), size),
    )


def _rows_and_steps(
    value: MatStruct, size_field: Any, ctx: Where, where: str
) -> tuple[int, tuple[ProcessStep, ...], int]:
    """An input's or output's raw rows, processing steps and processed rows."""
    size = whole_number(size_field, ctx, where + ".size")
    steps = parse_steps(value, size, ctx, where)
    return size, steps, steps[-1].out_size if steps else size


def _parse_weight(
    rec: MatStruct, kind: str, to: int, source: int, rows: int, cols_per_delay: int, ctx: Where
) -> WeightSpec:
    props = "inputWeights" if kind == "IW" else "layerWeights"
    label = f"{kind}{{{to},{source}}}"
    prop = cell_item2(rec[props], to - 1, source - 1, ctx, props)
    if not isinstance(prop, MatStruct):
        raise ctx.err(f"{props}{{{to},{source}}}", f"expected a struct, found {describe(prop)}")
    fcn = text(prop.get("weightFcn", "dotprod"), "") or "dotprod"
    check_supported(WEIGHT_NAMES, fcn, "weight", ctx.place(f"{props}{{{to},{source}}}"))
    delays_raw = as_float(prop.get("delays", np.zeros((1, 1))), f"{props}.delays").reshape(-1)
    if delays_raw.size == 0 or np.any(delays_raw < 0) or np.any(delays_raw != np.round(delays_raw)):
        raise ctx.err(
            f"{props}{{{to},{source}}}", f"delays must be whole numbers >= 0, found {delays_raw}"
        )
    delays = tuple(int(d) for d in delays_raw)
    value = matrix(cell_item2(rec[kind], to - 1, source - 1, ctx, kind), ctx, label)
    expected = (rows, cols_per_delay * len(delays))
    if value.shape != expected:
        what = f"inputs{{{source}}}.processedSize" if kind == "IW" else f"layers{{{source}}}.size"
        raise ctx.err(
            label,
            f"expected {expected[0]}x{expected[1]} (layers{{{to}}}.size x {len(delays)} delay(s) "
            f"x {what}), found {value.shape[0]}x{value.shape[1]}",
        )
    return WeightSpec(kind, to, source, delays, fcn, value, learn=learn_flag(prop))
