"""A saved MATLAB ``network`` record -> a typed, validated :class:`NetworkSpec`.

The record is what MATLAB writes for a ``network`` object, read into the neutral tree of
:mod:`mat2grad.matfile`: an old-style object (format versions '7' and '8'), the struct inside
the MCOS object's property ``any`` (version '9'), or the same fields as a plain struct (what
Octave sends, or ``struct(net)``). The three versions are one schema; their differences are
handled here and nowhere else:

* v7 ``mapminmax``/``mapstd`` settings lack ``gain``/``xoffset``: rebuilt with MATLAB's
  create rule (``MAPMINMAX.CREATE``: ``xoffset = xmin; gain = yrange ./ xrange``; rows with
  ``|gain| > 1e14``, non-finite or zero range get ``gain = 1, xoffset = ymin``).
* v7 keeps no-op processing functions with ``no_change = 1``: they become identities.
* settings are keyed on ``processFcns{k}``, never on ``settings.name`` (absent in v8).
* v9 has ``revertProps`` where v8 has ``revert``; v7 has an extra ``hint``. Neither matters
  for simulation.

Indices in the spec are MATLAB's: 1-based layer, input and output numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import Mat2GradError
from ..matfile import MatStruct, as_float, as_text, describe
from .functions import NET_INPUT, PROCESSING, TRANSFER, WEIGHT, lookup

__all__ = [
    "ProcessStep",
    "InputSpec",
    "LayerSpec",
    "WeightSpec",
    "OutputSpec",
    "NetworkSpec",
    "is_network_record",
    "network_record",
    "parse_network",
    "respec",
]

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


@dataclass(frozen=True)
class ProcessStep:
    """One processing function of an input or output, with settings ready for torch.

    ``settings`` holds float64 arrays (row vectors of length ``in_size``/``out_size`` or
    matrices) and int64 index arrays (0-based) as :data:`functions.PROCESSING` needs them.
    """

    fcn: str
    in_size: int  # rows before the step (raw side)
    out_size: int  # rows after the step (processed side)
    settings: dict[str, np.ndarray] = field(repr=False)


@dataclass(frozen=True)
class InputSpec:
    index: int
    name: str
    size: int  # raw rows, inputs{i}.size
    processed_size: int  # rows the weights see, inputs{i}.processedSize
    steps: tuple[ProcessStep, ...]
    feedback_output: int | None  # layer whose output this input stands for (open-loop NARX)
    example: np.ndarray | None = field(default=None, repr=False)  # raw R x Q, if stored
    range: np.ndarray | None = field(default=None, repr=False)  # R x 2 [min max]


@dataclass(frozen=True)
class LayerSpec:
    index: int
    name: str
    size: int
    transfer: str
    net_input: str


@dataclass(frozen=True)
class WeightSpec:
    kind: str  # "IW" (from an input) or "LW" (from a layer)
    to: int  # layer number
    source: int  # input number (IW) or layer number (LW)
    delays: tuple[int, ...]
    fcn: str
    value: np.ndarray = field(repr=False)  # S x (len(delays) * source size)
    learn: bool = True  # inputWeights{i,j}.learn / layerWeights{i,j}.learn (getwb skips False)

    @property
    def label(self) -> str:
        return f"{self.kind}{{{self.to},{self.source}}}"


@dataclass(frozen=True)
class OutputSpec:
    layer: int  # the layer whose activation this output is
    name: str
    size: int  # raw rows, outputs{i}.size
    processed_size: int  # rows of the layer, outputs{i}.processedSize
    steps: tuple[ProcessStep, ...]  # in processFcns order; reversed when simulating
    feedback_input: int | None
    feedback_mode: str  # 'none', 'open', 'closed'
    feedback_delay: int
    range: np.ndarray | None = field(default=None, repr=False)


@dataclass(frozen=True)
class NetworkSpec:
    """Everything needed to simulate and differentiate one saved network."""

    source: str  # file the network came from ('' when built in memory)
    path: str  # MATLAB-style path inside the file
    version: str
    name: str
    inputs: tuple[InputSpec, ...]
    layers: tuple[LayerSpec, ...]
    biases: tuple[np.ndarray | None, ...] = field(repr=False)  # per layer, length S, or None
    input_weights: tuple[WeightSpec, ...]
    layer_weights: tuple[WeightSpec, ...]
    outputs: tuple[OutputSpec, ...]  # in layer order, as MATLAB numbers outputs
    order: tuple[int, ...]  # layers in simulation order (zero-delay topological order)
    perform_fcn: str
    perform_param: dict[str, Any] = field(repr=False)
    train_fcn: str = ""
    sample_time: float = 1.0
    #: biases{i}.learn per layer (getwb skips a bias whose learn is 0); empty = all learn
    bias_learn: tuple[bool, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.source}: network '{self.path}'" if self.source else f"network '{self.path}'"

    @property
    def weights(self) -> tuple[WeightSpec, ...]:
        return self.input_weights + self.layer_weights

    @property
    def is_dynamic(self) -> bool:
        """True when any weight has a delay other than a single 0 (tapped delay lines,
        recurrent layer connections, NARX feedback)."""
        return any(w.delays != (0,) for w in self.weights) or any(
            o.feedback_mode == "open" for o in self.outputs
        )

    @property
    def num_input_delays(self) -> int:
        return max((max(w.delays) for w in self.input_weights), default=0)

    @property
    def num_layer_delays(self) -> int:
        return max((max(w.delays) for w in self.layer_weights), default=0)

    @property
    def zero_derivative(self) -> tuple[str, ...]:
        from .functions import ZERO_DERIVATIVE

        return tuple(
            f"layer {layer.index} ({layer.transfer})"
            for layer in self.layers
            if layer.transfer in ZERO_DERIVATIVE
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


class _Ctx:
    """Where we are, for error messages."""

    def __init__(self, source: str, path: str):
        self.source = source
        self.path = path

    def place(self, where: str) -> str:
        prefix = f"{self.source}: " if self.source else ""
        return f"{prefix}network '{self.path}', {where}"

    def err(self, where: str, message: str) -> Mat2GradError:
        return Mat2GradError(f"{self.place(where)}: {message}")


def parse_network(value: Any, *, source: str = "", path: str = "net") -> NetworkSpec:
    """Parse and validate a network record (see :func:`network_record`).

    Raises:
        Mat2GradError: the value is not a network, a field is malformed, sizes disagree,
            a function is not supported, or the connections contain a zero-delay loop.
    """
    rec = network_record(value)
    ctx = _Ctx(source, path)
    if rec is None:
        prefix = f"{source}: " if source else ""
        raise Mat2GradError(
            f"{prefix}'{path}' is {describe(value)}, not a MATLAB network (expected a "
            f"network object or a struct with fields {', '.join(_REQUIRED)})"
        )
    num_inputs = _int(rec["numInputs"], ctx, "numInputs")
    num_layers = _int(rec["numLayers"], ctx, "numLayers")
    if num_layers < 1:
        raise ctx.err("numLayers", "the network has no layers (was it configured and trained?)")
    bias_connect = _bool_matrix(rec["biasConnect"], (num_layers, 1), ctx, "biasConnect")
    input_connect = _bool_matrix(rec["inputConnect"], (num_layers, num_inputs), ctx, "inputConnect")
    layer_connect = _bool_matrix(rec["layerConnect"], (num_layers, num_layers), ctx, "layerConnect")
    output_connect = _bool_matrix(rec["outputConnect"], (1, num_layers), ctx, "outputConnect")

    layers = tuple(
        _parse_layer(_cell_item(rec["layers"], k, ctx, "layers"), k + 1, ctx)
        for k in range(num_layers)
    )
    inputs = tuple(
        _parse_input(_cell_item(rec["inputs"], k, ctx, "inputs"), k + 1, ctx)
        for k in range(num_inputs)
    )
    outputs = tuple(
        _parse_output(_cell_item(rec["outputs"], k, ctx, "outputs"), k + 1, layers[k], ctx)
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
        b = _matrix(_cell_item(rec["b"], i, ctx, "b"), ctx, f"b{{{i + 1}}}")
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
        version=_text(rec.get("version", ""), ""),
        name=_text(rec.get("name", ""), ""),
        inputs=inputs,
        layers=layers,
        biases=tuple(biases),
        input_weights=tuple(input_weights),
        layer_weights=tuple(layer_weights),
        outputs=outputs,
        order=_sim_order(num_layers, layer_weights, ctx),
        perform_fcn=_text(rec.get("performFcn", ""), ""),
        perform_param=_perform_param(rec.get("performParam")),
        train_fcn=_text(rec.get("trainFcn", ""), ""),
        sample_time=_float_or(rec.get("sampleTime"), 1.0),
        bias_learn=tuple(
            _learn(_cell_items_or_none(rec.get("biases"), i)) for i in range(num_layers)
        ),
    )
    return spec


def respec(spec: NetworkSpec, **changes: Any) -> NetworkSpec:
    """A copy of ``spec`` with fields replaced (``inputs``, ``input_weights``,
    ``layer_weights``, ``outputs``, ...) and the simulation order recomputed, for the
    transformations MATLAB applies to a network object (``closeloop``, ``openloop``).

    Raises:
        Mat2GradError: the new connections contain a zero-delay loop.
    """
    new = replace(spec, **changes)
    ctx = _Ctx(spec.source, spec.path)
    return replace(new, order=_sim_order(len(new.layers), list(new.layer_weights), ctx))


def _parse_layer(value: Any, index: int, ctx: _Ctx) -> LayerSpec:
    where = f"layers{{{index}}}"
    if not isinstance(value, MatStruct):
        raise ctx.err(where, f"expected a struct, found {describe(value)}")
    transfer = _text(value.get("transferFcn"), where + ".transferFcn")
    net_input = _text(value.get("netInputFcn", "netsum"), where + ".netInputFcn") or "netsum"
    lookup(TRANSFER, transfer, "transfer", ctx.place(where))
    lookup(NET_INPUT, net_input, "net input", ctx.place(where))
    return LayerSpec(
        index=index,
        name=_text(value.get("name", ""), ""),
        size=_int(value.get("size"), ctx, where + ".size"),
        transfer=transfer,
        net_input=net_input,
    )


def _parse_input(value: Any, index: int, ctx: _Ctx) -> InputSpec:
    where = f"inputs{{{index}}}"
    if not isinstance(value, MatStruct):
        raise ctx.err(where, f"expected a struct, found {describe(value)}")
    size = _int(value.get("size"), ctx, where + ".size")
    steps = _parse_steps(value, size, ctx, where)
    processed = steps[-1].out_size if steps else size
    if "processedSize" in value.fields:
        declared = _int(value["processedSize"], ctx, where + ".processedSize")
        if declared != processed:
            raise ctx.err(
                where,
                f"processing maps {size} rows to {processed}, but processedSize is {declared}",
            )
    fb = value.get("feedbackOutput")
    example = value.get("exampleInput")
    example_arr = None
    if isinstance(example, np.ndarray) and example.dtype.kind in "biuf" and example.ndim == 2:
        if example.shape[0] == size and example.shape[1] > 0:
            example_arr = example  # storage dtype kept: cast when used
    return InputSpec(
        index=index,
        name=_text(value.get("name", ""), ""),
        size=size,
        processed_size=processed,
        steps=steps,
        feedback_output=_optional_int(fb),
        example=example_arr,
        range=_range(value.get("range"), size),
    )


def _parse_output(value: Any, layer: int, layer_spec: LayerSpec, ctx: _Ctx) -> OutputSpec:
    where = f"outputs{{{layer}}}"
    if not isinstance(value, MatStruct):
        raise ctx.err(where, f"outputConnect({layer}) is 1 but the output is {describe(value)}")
    size = _int(value.get("size", layer_spec.size), ctx, where + ".size")
    steps = _parse_steps(value, size, ctx, where)
    processed = steps[-1].out_size if steps else size
    if processed != layer_spec.size:
        raise ctx.err(
            where,
            f"output processing maps {size} rows to {processed}, but layer {layer} has "
            f"{layer_spec.size} neurons",
        )
    mode = _text(value.get("feedbackMode", "none"), "") or "none"
    return OutputSpec(
        layer=layer,
        name=_text(value.get("name", ""), ""),
        size=size,
        processed_size=processed,
        steps=steps,
        feedback_input=_optional_int(value.get("feedbackInput")),
        feedback_mode=mode,
        feedback_delay=int(_float_or(value.get("feedbackDelay"), 0.0)),
        range=_range(value.get("range"), size),
    )


def _parse_steps(value: MatStruct, size: int, ctx: _Ctx, where: str) -> tuple[ProcessStep, ...]:
    fcns = value.get("processFcns")
    settings = value.get("processSettings")
    names = [_text(f, f"{where}.processFcns") for f in _cell_list(fcns)]
    sets = _cell_list(settings)
    if len(sets) != len(names):
        raise ctx.err(
            where,
            f"{len(names)} processFcns but {len(sets)} processSettings; the record is damaged",
        )
    steps: list[ProcessStep] = []
    rows = size
    for k, (name, s) in enumerate(zip(names, sets, strict=True)):
        here = f"{where}.processFcns{{{k + 1}}}"
        lookup(PROCESSING, name, "processing", ctx.place(here))
        if not isinstance(s, MatStruct):
            raise ctx.err(here, f"settings for {name} are {describe(s)}, expected a struct")
        step = _complete_settings(name, s, rows, ctx, here)
        if step is None:  # no_change = 1: identity
            continue
        steps.append(step)
        rows = step.out_size
    return tuple(steps)


def _complete_settings(
    name: str, s: MatStruct, rows: int, ctx: _Ctx, where: str
) -> ProcessStep | None:
    """Turn a MATLAB settings struct into the arrays :mod:`functions` needs."""

    def f(field_name: str) -> np.ndarray:
        if field_name not in s.fields:
            raise ctx.err(where, f"{name} settings have no field '{field_name}'")
        return as_float(s[field_name], f"{where}.{field_name}")

    def col(field_name: str, n: int) -> np.ndarray:
        arr = f(field_name).reshape(-1)
        if arr.size == 1:
            arr = np.full(n, arr[0])
        if arr.size != n:
            raise ctx.err(
                where, f"{name} settings field '{field_name}' has {arr.size} values, expected {n}"
            )
        return arr

    def xrows() -> int:
        n = int(f("xrows").reshape(-1)[0]) if "xrows" in s.fields else rows
        if n != rows:
            raise ctx.err(where, f"{name} expects {n} rows but receives {rows}")
        return n

    no_change = "no_change" in s.fields and bool(as_float(s["no_change"]).reshape(-1)[0])

    if name == "lvqoutputs":
        return None
    if name in ("mapminmax", "mapstd"):
        n = xrows()
        if no_change:
            return None
        base = "ymin" if name == "mapminmax" else "ymean"
        if "gain" in s.fields and "xoffset" in s.fields:
            gain, xoffset = col("gain", n), col("xoffset", n)
        elif name == "mapminmax":  # v7: MAPMINMAX.CREATE's rule
            xmin, xmax = col("xmin", n), col("xmax", n)
            ymin, ymax = col("ymin", n), col("ymax", n)
            with np.errstate(divide="ignore", invalid="ignore"):
                gain = (ymax - ymin) / (xmax - xmin)
            xoffset = xmin.copy()
            fix = (np.abs(gain) > 1e14) | ~np.isfinite(xmax - xmin) | (xmax - xmin == 0)
            gain[fix] = 1.0
            xoffset[fix] = ymin[fix]
        else:  # v7 mapstd: MAPSTD.CREATE's rule
            xmean, xstd = col("xmean", n), col("xstd", n)
            ymean, ystd = col("ymean", n), col("ystd", n)
            with np.errstate(divide="ignore", invalid="ignore"):
                gain = ystd / xstd
            xoffset = xmean.copy()
            fix = (np.abs(gain) > 1e14) | ~np.isfinite(xmean) | ~np.isfinite(xstd) | (xstd == 0)
            gain[fix] = 1.0
            xoffset[fix] = ymean[fix]
        return ProcessStep(name, n, n, {"gain": gain, "xoffset": xoffset, base: col(base, n)})
    if name == "removeconstantrows":
        n = xrows()
        if no_change:
            return None
        keep = _indices(s.get("keep"), n, ctx, where + ".keep")
        remove = _indices(s.get("remove"), n, ctx, where + ".remove")
        if "constants" in s.fields and as_float(s["constants"]).size == remove.size:
            constants = as_float(s["constants"]).reshape(-1)
        else:
            constants = as_float(s.get("value", np.zeros((0, 1)))).reshape(-1)
        if sorted(np.concatenate([keep, remove]).tolist()) != list(range(n)):
            raise ctx.err(where, f"keep and remove do not partition the {n} rows")
        if constants.size != remove.size:
            raise ctx.err(where, f"{remove.size} removed rows but {constants.size} constants")
        order = np.empty(n, dtype=np.int64)
        order[keep] = np.arange(keep.size)
        order[remove] = keep.size + np.arange(remove.size)
        return ProcessStep(
            name, n, int(keep.size), {"keep": keep, "constants": constants, "order": order}
        )
    if name == "fixunknowns":
        n = xrows()
        if no_change:
            return None
        unknown = _indices(s.get("unknown"), n, ctx, where + ".unknown")
        shift = as_float(s.get("shift")).reshape(-1).astype(np.int64)
        xmeans = col("xmeans", n)
        yrows = n + unknown.size
        if shift.size != n:
            raise ctx.err(where, f"fixunknowns shift has {shift.size} values, expected {n}")
        value_rows = np.arange(n) + shift  # y(shiftInd,:) = x
        flag_rows = unknown + shift[unknown] + 1  # y(flagInd,:) = ~isnan(x(unknown,:))
        order = np.empty(yrows, dtype=np.int64)
        order[value_rows] = np.arange(n)
        order[flag_rows] = n + np.arange(unknown.size)
        if sorted(np.concatenate([value_rows, flag_rows]).tolist()) != list(range(yrows)):
            raise ctx.err(where, "fixunknowns shift/unknown settings are inconsistent")
        return ProcessStep(
            name,
            n,
            yrows,
            {"xmeans": xmeans, "unknown": unknown, "order": order, "value_rows": value_rows},
        )
    if name == "processpca":
        transform = f("transform")
        if transform.ndim != 2 or transform.shape[1] != rows:
            raise ctx.err(where, f"processpca transform is {transform.shape}, expected ?x{rows}")
        if no_change:
            return None
        if "inverseTransform" in s.fields and as_float(s["inverseTransform"]).size:
            inverse = f("inverseTransform")
        else:
            inverse = np.linalg.pinv(transform)
        return ProcessStep(
            name,
            rows,
            transform.shape[0],
            {"transform": transform, "inverseTransform": inverse},
        )
    raise ctx.err(where, f"processing function '{name}' has no settings rule")  # pragma: no cover


def _parse_weight(
    rec: MatStruct, kind: str, to: int, source: int, rows: int, cols_per_delay: int, ctx: _Ctx
) -> WeightSpec:
    props = "inputWeights" if kind == "IW" else "layerWeights"
    label = f"{kind}{{{to},{source}}}"
    prop = _cell_item2(rec[props], to - 1, source - 1, ctx, props)
    if not isinstance(prop, MatStruct):
        raise ctx.err(f"{props}{{{to},{source}}}", f"expected a struct, found {describe(prop)}")
    fcn = _text(prop.get("weightFcn", "dotprod"), "") or "dotprod"
    lookup(WEIGHT, fcn, "weight", ctx.place(f"{props}{{{to},{source}}}"))
    delays_raw = as_float(prop.get("delays", np.zeros((1, 1))), f"{props}.delays").reshape(-1)
    if delays_raw.size == 0 or np.any(delays_raw < 0) or np.any(delays_raw != np.round(delays_raw)):
        raise ctx.err(
            f"{props}{{{to},{source}}}", f"delays must be whole numbers >= 0, found {delays_raw}"
        )
    delays = tuple(int(d) for d in delays_raw)
    value = _matrix(_cell_item2(rec[kind], to - 1, source - 1, ctx, kind), ctx, label)
    expected = (rows, cols_per_delay * len(delays))
    if value.shape != expected:
        what = f"inputs{{{source}}}.processedSize" if kind == "IW" else f"layers{{{source}}}.size"
        raise ctx.err(
            label,
            f"expected {expected[0]}x{expected[1]} (layers{{{to}}}.size x {len(delays)} delay(s) "
            f"x {what}), found {value.shape[0]}x{value.shape[1]}",
        )
    return WeightSpec(kind, to, source, delays, fcn, value, learn=_learn(prop))


def _sim_order(num_layers: int, layer_weights: list[WeightSpec], ctx: _Ctx) -> tuple[int, ...]:
    """Topological order of the zero-delay layer connections (Kahn's algorithm, stable)."""
    deps = {i: set() for i in range(1, num_layers + 1)}
    for w in layer_weights:
        if 0 in w.delays:
            deps[w.to].add(w.source)
    order: list[int] = []
    done: set[int] = set()
    while len(order) < num_layers:
        ready = [i for i in range(1, num_layers + 1) if i not in done and deps[i] <= done]
        if not ready:
            loop = sorted(i for i in deps if i not in done)
            raise ctx.err(
                "layerConnect",
                f"layers {loop} form a zero-delay loop (MATLAB refuses to simulate it too)",
            )
        order.append(ready[0])
        done.add(ready[0])
    return tuple(order)


# --------------------------------------------------------------------------------------
# Small readers
# --------------------------------------------------------------------------------------


def _text(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    try:
        return as_text(value)
    except Mat2GradError:
        if what:
            raise Mat2GradError(
                f"{what}: expected a function name, found {describe(value)}"
            ) from None
        return ""


def _int(value: Any, ctx: _Ctx, what: str) -> int:
    try:
        arr = as_float(value, what).reshape(-1)
    except Mat2GradError:
        raise ctx.err(what, f"expected a whole number, found {describe(value)}") from None
    if arr.size != 1 or arr[0] != round(arr[0]) or arr[0] < 0:
        raise ctx.err(what, f"expected one whole number >= 0, found {arr[:4]}")
    return int(arr[0])


def _optional_int(value: Any) -> int | None:
    if value is None:
        return None
    try:
        arr = as_float(value).reshape(-1)
    except Mat2GradError:
        return None
    return int(arr[0]) if arr.size else None


def _float_or(value: Any, default: float) -> float:
    try:
        arr = as_float(value).reshape(-1)
    except Mat2GradError:
        return default
    return float(arr[0]) if arr.size else default


def _bool_matrix(value: Any, shape: tuple[int, int], ctx: _Ctx, what: str) -> np.ndarray:
    arr = as_float(value, what)
    if arr.size == 0 and 0 in shape:
        return np.zeros(shape, dtype=bool)
    if arr.shape != shape:
        raise ctx.err(what, f"expected a {shape[0]}x{shape[1]} matrix, found {describe(value)}")
    return arr != 0


def _matrix(value: Any, ctx: _Ctx, what: str) -> np.ndarray:
    if not (isinstance(value, np.ndarray) and value.dtype.kind in "biuf"):
        raise ctx.err(what, f"expected a numeric matrix, found {describe(value)}")
    arr = as_float(value, what)
    if arr.ndim != 2:
        raise ctx.err(what, f"expected a 2-D matrix, found {describe(value)}")
    return arr


def _cell_list(value: Any) -> list[Any]:
    """Elements of a cell in MATLAB (column-major) order; [] for an empty value."""
    if isinstance(value, np.ndarray) and value.dtype == object:
        return list(value.reshape(-1, order="F"))
    if value is None or (isinstance(value, np.ndarray) and value.size == 0):
        return []
    if isinstance(value, str):  # a single name stored as char (hand-made structs)
        return [value]
    return [value]


def _cell_item(value: Any, k: int, ctx: _Ctx, what: str) -> Any:
    items = _cell_list(value)
    if k >= len(items):
        raise ctx.err(what, f"expected at least {k + 1} elements, found {len(items)}")
    return items[k]


def _cell_item2(value: Any, i: int, j: int, ctx: _Ctx, what: str) -> Any:
    if not (isinstance(value, np.ndarray) and value.dtype == object and value.ndim == 2):
        raise ctx.err(what, f"expected a cell array, found {describe(value)}")
    if i >= value.shape[0] or j >= value.shape[1]:
        raise ctx.err(
            what, f"is {value.shape[0]}x{value.shape[1]}, has no element {{{i + 1},{j + 1}}}"
        )
    return value[i, j]


def _indices(value: Any, n: int, ctx: _Ctx, what: str) -> np.ndarray:
    if value is None:
        return np.zeros(0, dtype=np.int64)
    arr = as_float(value, what).reshape(-1)
    if arr.size and (np.any(arr < 1) or np.any(arr > n) or np.any(arr != np.round(arr))):
        raise ctx.err(what, f"row indices must be whole numbers in 1..{n}")
    return arr.astype(np.int64) - 1


def _range(value: Any, size: int) -> np.ndarray | None:
    try:
        arr = as_float(value)
    except Mat2GradError:
        return None
    return arr if arr.shape == (size, 2) else None


def _learn(prop: Any) -> bool:
    """A weight's or bias's ``learn`` flag (absent, as in hand-made structs: True)."""
    if not isinstance(prop, MatStruct) or "learn" not in prop.fields:
        return True
    try:
        arr = as_float(prop["learn"]).reshape(-1)
    except Mat2GradError:
        return True
    return bool(arr[0]) if arr.size else True


def _cell_items_or_none(value: Any, k: int) -> Any:
    items = _cell_list(value)
    return items[k] if k < len(items) else None


def _perform_param(value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(value, MatStruct):
        for k, v in value.fields.items():
            if isinstance(v, str):
                out[k] = v
            else:
                try:
                    arr = as_float(v).reshape(-1)
                    out[k] = float(arr[0]) if arr.size == 1 else arr
                except Mat2GradError:
                    continue
    return out
