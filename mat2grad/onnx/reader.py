"""Reading an ONNX file safely, and what can be known about it before converting it.

Safety
------
* The file is parsed as a protobuf and nothing else: no pickles, no custom-op libraries, no
  Python from the file. Operators outside the standard ``ai.onnx`` domain are refused before
  conversion (:func:`scan`).
* **External data** (large models keep tensors in side files named by a ``location`` key) is
  resolved by mat2grad before onnx reads it: the location must be a relative path without
  ``..`` components whose resolved path (symbolic links followed) stays inside the model's
  own folder, must name an existing file, and ``offset``/``length`` must lie inside it.
  Anything else is a :class:`Mat2GradError`; nothing is read from outside the folder.
* ``onnx.checker.check_model`` runs on the file as it is (structure, operator schemas,
  attribute types). The strict shape-inference check (``full_check=True``) runs on the
  normalised graph (:mod:`mat2grad.onnx.normalize`), because MATLAB's 2018 exporter wrote
  graphs that fail it (``Gemm`` on a rank-4 tensor) and the rewrite is what makes them valid.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath

import onnx
from onnx import ModelProto, TensorProto

from ..errors import Mat2GradError, first_line
from ._onnx2torch import VISION_OPS
from .proto import all_nodes

__all__ = [
    "read_model",
    "scan",
    "operator_counts",
    "NOT_DIFFERENTIABLE_OPS",
    "ZERO_DERIVATIVE_OPS",
    "SHAPE_ONLY_OPS",
    "elem_type_name",
    "MATLAB_PRODUCER",
]

#: ``producer_name`` of every ONNX file MATLAB's exporter writes.
MATLAB_PRODUCER = "MATLAB Deep Learning Toolbox Converter for ONNX Model Format"

_ML_DOMAINS = ("ai.onnx.ml",)
# the operator to blame first in a classical-ML graph, and why it has no gradient
_ML_REASONS = {
    "OneHotEncoder": "encodes categorical values as 0/1 columns (not differentiable)",
    "LabelEncoder": "maps categories to labels (not differentiable)",
    "CategoryMapper": "maps categories to integers (not differentiable)",
    "DictVectorizer": "turns dictionaries of categories into columns (not differentiable)",
    "TreeEnsembleRegressor": "is a tree ensemble: piecewise constant, zero gradient almost "
    "everywhere",
    "TreeEnsembleClassifier": "is a tree ensemble: piecewise constant, zero gradient almost "
    "everywhere",
    "TreeEnsemble": "is a tree ensemble: piecewise constant, zero gradient almost everywhere",
    "ArrayFeatureExtractor": "selects columns by index",
    "Imputer": "replaces missing values",
    "ZipMap": "returns maps, not tensors",
}
_ML_PRIORITY = tuple(_ML_REASONS)

#: Operators whose outputs carry no derivative with respect to their data inputs:
#: op -> why. Graph outputs reached from the inputs only through them are not differentiable.
NOT_DIFFERENTIABLE_OPS = {
    "ArgMax": "returns indices",
    "ArgMin": "returns indices",
    "TopK": "its indices output is integer (its values output is differentiable)",
    "NonMaxSuppression": "returns box indices",
    "NonZero": "returns indices",
    "Equal": "returns booleans",
    "Greater": "returns booleans",
    "GreaterOrEqual": "returns booleans",
    "Less": "returns booleans",
    "LessOrEqual": "returns booleans",
    "Not": "returns booleans",
    "And": "returns booleans",
    "Or": "returns booleans",
    "Xor": "returns booleans",
    "IsNaN": "returns booleans",
    "IsInf": "returns booleans",
    "Shape": "returns a shape",
    "Size": "returns a size",
    "RandomNormalLike": "is random",
    "RandomUniformLike": "is random",
    "Bernoulli": "is random",
    "Multinomial": "returns sampled indices",
}

#: Operators that are piecewise constant: differentiable, with derivative zero almost everywhere.
ZERO_DERIVATIVE_OPS = ("Floor", "Ceil", "Round", "Sign")

#: Operators whose output depends only on the *shape* of their first input.
SHAPE_ONLY_OPS = ("Shape", "Size", "ConstantOfShape", "EyeLike")


def elem_type_name(elem_type: int) -> str:
    """ONNX element type as a lower-case name (``float``, ``double``, ``int64``, ...)."""
    try:
        return TensorProto.DataType.Name(elem_type).lower()
    except ValueError:
        return f"type{elem_type}"


def read_model(path: str | os.PathLike[str]) -> ModelProto:
    """Read an ONNX file; external data is resolved only inside the file's own folder.

    Raises:
        Mat2GradError: the file is missing, not ONNX, fails ``onnx.checker``, or names
            external data outside its folder.
    """
    path = Path(path)
    if not path.is_file():
        raise Mat2GradError(f"{path}: no such file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises several unrelated types
        raise Mat2GradError(
            f"{path}: not an ONNX model (the protobuf could not be parsed: {exc})"
        ) from None
    if not model.graph.node and not model.graph.output:
        raise Mat2GradError(f"{path}: not an ONNX model (no graph found)")
    if model.ir_version < 3:
        raise Mat2GradError(
            f"{path}: ONNX IR version {model.ir_version} is older than any supported (3)"
        )
    _load_external_data(model, path)
    try:
        _check_structure(model)
    except onnx.checker.ValidationError as exc:
        raise Mat2GradError(f"{path}: onnx.checker rejects the model: {first_line(exc)}") from None
    except UnicodeDecodeError as exc:  # the checker decodes names and strings as UTF-8
        raise Mat2GradError(
            f"{path}: the file is corrupt: a name or string is not valid UTF-8 (byte "
            f"0x{exc.object[exc.start]:02x}); export the model again"
        ) from None
    except Exception as exc:  # noqa: BLE001 - shape inference and the C++ checker's re-parse
        raise Mat2GradError(
            f"{path}: the file is corrupt: onnx.checker cannot check it "
            f"({type(exc).__name__}: {first_line(exc)}); export the model again"
        ) from None
    return model


def _check_structure(model: ModelProto) -> None:
    """``onnx.checker.check_model`` (structure, schemas, attributes; no shape inference).

    The checker insists that graph outputs declare a shape, which the ONNX IR leaves
    optional and some exporters omit; such outputs are given the shape inference finds
    (on a copy) before checking.
    """
    missing = [o for o in model.graph.output if not o.type.tensor_type.HasField("shape")]
    if missing and all(o.type.WhichOneof("value") == "tensor_type" for o in missing):
        probe = ModelProto()
        probe.CopyFrom(model)
        inferred = onnx.shape_inference.infer_shapes(probe, strict_mode=False)
        known = {v.name: v for v in (*inferred.graph.value_info, *inferred.graph.output)}
        for out in probe.graph.output:
            vi = known.get(out.name)
            if not out.type.tensor_type.HasField("shape") and vi is not None:
                out.type.CopyFrom(vi.type)
            if not out.type.tensor_type.HasField("shape"):
                out.type.tensor_type.shape.SetInParent()  # rank unknown to inference too
                out.type.tensor_type.shape.dim.add()
        model = probe
    onnx.checker.check_model(model, full_check=False)


def _all_tensors(graph: onnx.GraphProto) -> Iterator[TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _all_tensors(attr.g)
            for sub in attr.graphs:
                yield from _all_tensors(sub)


def _load_external_data(model: ModelProto, path: Path) -> None:
    folder = path.parent.resolve()
    external = [t for t in _all_tensors(model.graph) if t.data_location == TensorProto.EXTERNAL]
    for tensor in external:
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        where = f"{path}: tensor '{tensor.name}' keeps its data in external file '{location}'"
        if not location:
            raise Mat2GradError(
                f"{path}: tensor '{tensor.name}' has external data without a location"
            )
        pure = [PurePosixPath(location), PureWindowsPath(location)]
        if any(p.is_absolute() or p.drive or p.root for p in pure) or any(
            ".." in p.parts for p in pure
        ):
            raise Mat2GradError(
                f"{where}: only paths relative to the model's folder, without '..', are allowed"
            )
        target = (folder / location).resolve()
        if not target.is_relative_to(folder):
            raise Mat2GradError(f"{where}, which resolves outside the model's folder {folder}")
        if not target.is_file():
            raise Mat2GradError(f"{where}, which does not exist in {folder}")
        size = target.stat().st_size
        offset = int(info.get("offset", 0) or 0)
        length = int(info.get("length", size - offset) or 0)
        if offset < 0 or length < 0 or offset + length > size:
            raise Mat2GradError(
                f"{where}: offset {offset} + length {length} exceeds the file's {size} bytes"
            )
    if external:
        try:
            onnx.load_external_data_for_model(model, str(folder))
        except Exception as exc:  # noqa: BLE001
            raise Mat2GradError(f"{path}: could not read external data ({exc})") from None


def operator_counts(model: ModelProto) -> dict[str, int]:
    """``{"domain:op" or "op": count}`` over the main graph, most frequent first."""
    counts = collections.Counter(
        (f"{n.domain}:{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type)
        for n in model.graph.node
    )
    return dict(counts.most_common())


def scan(model: ModelProto, path: str | os.PathLike[str], torchvision_problem: str | None) -> None:
    """Refuse, before conversion, graphs mat2grad cannot turn into a differentiable module.

    Raises:
        Mat2GradError: operators from other domains (scikit-learn pipelines: ``ai.onnx.ml``),
            ``SequenceMap`` (control flow over sequences; ``Loop``/``Scan``/``If`` are
            converted), detection operators without a loadable
            torchvision, or string inputs -- naming the operator or input.
    """
    nodes = list(all_nodes(model.graph))
    foreign = [n for n in nodes if n.domain not in ("", "ai.onnx")]
    if foreign:
        by_domain: dict[str, list[str]] = {}
        for node in foreign:
            ops = by_domain.setdefault(node.domain, [])
            if node.op_type not in ops:
                ops.append(node.op_type)
        first = foreign[0]
        listing = "; ".join(f"{d}: {', '.join(ops)}" for d, ops in by_domain.items())
        if any(d in _ML_DOMAINS for d in by_domain):
            ml = [n for n in foreign if n.domain in _ML_DOMAINS]
            ml.sort(
                key=lambda n: _ML_PRIORITY.index(n.op_type) if n.op_type in _ML_PRIORITY else 99
            )
            blame = ml[0]
            why = _ML_REASONS.get(blame.op_type, "is a classical machine-learning operator")
            raise Mat2GradError(
                f"{path}: operator {blame.op_type} (node '{blame.name}', domain "
                f"{blame.domain}) {why}: this is a scikit-learn-style pipeline, not a neural "
                "network, and it has no meaningful gradient with respect to its inputs, so "
                f"mat2grad does not convert it. Operators found: {listing}"
            )
        raise Mat2GradError(
            f"{path}: operator {first.op_type} (node '{first.name}') is in domain "
            f"'{first.domain}', which mat2grad does not support (custom operators are never "
            f"run). Operators found: {listing}"
        )
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    for node in nodes:
        if node.op_type == "Scan" and opset < 9:
            raise Mat2GradError(
                f"{path}: operator Scan (node '{node.name}') is version 8 (opset {opset}), "
                "whose batch axis and sequence_lens mat2grad does not convert; re-export the "
                "model at opset 9 or later"
            )
        if node.op_type == "SequenceMap":
            raise Mat2GradError(
                f"{path}: operator {node.op_type} (node '{node.name}') is ONNX control flow "
                "over sequences, which mat2grad does not convert (Loop, Scan and If are "
                "converted); re-export the model without ONNX sequence types"
            )
        missing = _missing_required_input(node, opset)
        if missing is not None:
            raise Mat2GradError(
                f"{path}: the file is corrupt: node '{node.name}' ({node.op_type}) leaves its "
                f"input #{missing + 1} empty, which the operator requires; export the model "
                "again"
            )
        if node.op_type in VISION_OPS and torchvision_problem is not None:
            raise Mat2GradError(
                f"{path}: operator {node.op_type} (node '{node.name}') needs "
                f"{VISION_OPS[node.op_type]}, but torchvision could not be loaded "
                f"({torchvision_problem}); install the torchvision build that matches torch"
            )
    inits = {t.name for t in model.graph.initializer}
    for value in model.graph.input:
        if value.name in inits:
            continue
        kind = value.type.WhichOneof("value")
        if kind != "tensor_type":
            raise Mat2GradError(
                f"{path}: input '{value.name}' is a {kind}, not a tensor; only tensor inputs "
                "are supported"
            )
        elem = value.type.tensor_type.elem_type
        if elem in (TensorProto.UINT16, TensorProto.UINT32, TensorProto.UINT64):
            raise Mat2GradError(
                f"{path}: input '{value.name}' is {elem_type_name(elem)}, for which PyTorch "
                "has no arithmetic; cast the data to a signed or floating type in the model"
            )
        if elem == TensorProto.STRING:
            raise Mat2GradError(
                f"{path}: input '{value.name}' holds strings; string inputs are categorical "
                "and have no gradient, so mat2grad does not convert this model"
            )


def _missing_required_input(node: onnx.NodeProto, opset: int) -> int | None:
    """Index of the first input ``node`` leaves empty although its operator requires it.

    An empty name marks an omitted optional input; anywhere else the checker lets it
    through, and onnxruntime's kernels then dereference the missing tensor.
    """
    empty = [i for i, name in enumerate(node.input) if not name]
    if not empty:
        return None
    try:
        formal = onnx.defs.get_schema(node.op_type, opset, node.domain or "").inputs
    except onnx.defs.SchemaError:
        return None  # the checker has already judged operators it does not know
    optional = onnx.defs.OpSchema.FormalParameterOption.Optional
    for i in empty:
        if not formal or formal[min(i, len(formal) - 1)].option != optional:
            return i
    return None
