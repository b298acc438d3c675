"""Converters onnx2torch lacks, added through its own registration API.

onnx2torch keeps one table of converters keyed by ``(domain, op_type, since_version)``;
``add_converter`` refuses to register a pair twice. This module adds pairs that are missing,
and only those: a wrong *existing* converter is never overridden here but fixed after
conversion in :mod:`mat2grad.onnx.fixes`. The torch modules live in
:mod:`mat2grad.onnx.modules`.

What is added, and why:

* ``LSTM``, ``GRU``, ``RNN`` (versions 7, 14, 22): onnx2torch has no recurrent converters.
  MATLAB exports ``lstmLayer`` as an ONNX ``LSTM`` with its initial states as batch-1
  initializers; PyTorch 0.3 exports take ``h0``/``c0`` as graph inputs. Version 1 nodes are
  relabelled to version 7 by :mod:`mat2grad.onnx.normalize`.
* ``Cast`` (6 and 19-25): a cast to a floating type follows the working dtype (see
  :class:`~mat2grad.onnx.modules.OnnxCastFollowingDtype`); newer versions only add float8 /
  4-bit targets and the ``saturate``/``round_mode`` attributes that apply to those.
* ``Slice`` (version 1): onnx2torch registers a "Slice-9", a version ONNX never had, so
  opset 1-9 Slice nodes find no converter.
* ``Pad`` (18-25, the ``axes`` input and ``wrap`` mode) and ``Resize`` (18, 19: ``axes``,
  ``antialias``, ``keep_aspect_ratio_policy``, ``half_pixel_symmetric``), with mat2grad's
  modules, which implement the whole operator.
* ``ReduceMean``, ``ReduceMax``, ... (18, and 20 for Max/Min): ``axes`` moved from an
  attribute to an input in opset 18 (PyTorch's exporter writes opset 18 by default).
* ``Split`` (18: ``num_outputs``), ``Gelu`` (20), ``Mish`` (18, 22): missing upstream.
* ``AveragePool`` (19, 22): ``dilations`` was added in 19; without dilations (or all 1)
  onnx2torch's version-11 converter applies, with dilations the node is refused.
* Pure type-extension versions of operators onnx2torch already implements
  (:data:`TYPE_ONLY_ALIASES`): the newer version adds tensor element types (bfloat16,
  4-bit, float8, ...) and nothing else. Each alias is checked against the ONNX schemas in
  the tests: inputs, outputs and attributes have the same names in both versions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from onnx import defs

from ._onnx2torch import import_onnx2torch
from .modules import (
    DEFAULT_ACTIVATIONS,
    Gelu,
    Mish,
    OnnxCastFollowingDtype,
    OnnxGRUOrRNN,
    OnnxLSTM,
    Pad,
    Reduce,
    Resize,
    Slice,
    Split,
    activation_list,
)

__all__ = ["TYPE_ONLY_ALIASES", "register_converters", "schema_signature", "resize_module"]


def _result(node: Any, module: Any) -> Any:
    from onnx2torch.utils.common import OperationConverterResult, onnx_mapping_from_node

    return OperationConverterResult(torch_module=module, onnx_mapping=onnx_mapping_from_node(node))


def _recurrent_converter(kind: str) -> Callable[[Any, Any], Any]:
    def convert(node: Any, graph: Any) -> Any:
        attrs = node.attributes
        direction = attrs.get("direction", "forward")
        if direction not in ("forward", "reverse", "bidirectional"):
            raise ValueError(f"{kind} direction '{direction}' is not forward/reverse/bidirectional")
        num_dir = 2 if direction == "bidirectional" else 1
        per_dir = len(DEFAULT_ACTIVATIONS[kind])
        names = list(attrs.get("activations", list(DEFAULT_ACTIVATIONS[kind]) * num_dir))
        if len(names) == per_dir and num_dir == 2:
            names = names * 2
        if len(names) != per_dir * num_dir:
            raise ValueError(
                f"{kind} needs {per_dir * num_dir} activations for direction '{direction}', "
                f"got {len(names)}"
            )
        activations = activation_list(
            kind, names, attrs.get("activation_alpha", []), attrs.get("activation_beta", [])
        )
        clip = attrs.get("clip")
        cls = OnnxLSTM if kind == "LSTM" else OnnxGRUOrRNN
        module = cls(
            kind=kind,
            hidden_size=int(attrs["hidden_size"]),
            direction=direction,
            layout=int(attrs.get("layout", 0)),
            activations=activations,
            clip=None if clip is None else float(clip),
            input_forget=bool(attrs.get("input_forget", 0)),
            linear_before_reset=bool(attrs.get("linear_before_reset", 0)),
            num_outputs=len(node.output_values),
        )
        return _result(node, module)

    return convert


def _cast_converter(node: Any, graph: Any) -> Any:
    return _result(node, OnnxCastFollowingDtype(int(node.attributes["to"])))


def _slice_v1_converter(node: Any, graph: Any) -> Any:
    attrs = node.attributes
    module = Slice(list(attrs["starts"]), list(attrs["ends"]), attrs.get("axes"))
    return _result(node, module)


def _pad_converter(node: Any, graph: Any) -> Any:
    return _result(node, Pad(node.attributes.get("mode", "constant")))


def _reduce_converter(node: Any, graph: Any) -> Any:
    attrs = node.attributes
    module = Reduce(
        node.operation_type,
        keepdims=bool(attrs.get("keepdims", 1)),
        noop_with_empty_axes=bool(attrs.get("noop_with_empty_axes", 0)),
    )
    return _result(node, module)


def _split_converter(node: Any, graph: Any) -> Any:
    attrs = node.attributes
    module = Split(
        int(attrs.get("axis", 0)), int(attrs.get("num_outputs", len(node.output_values)))
    )
    return _result(node, module)


def _gelu_converter(node: Any, graph: Any) -> Any:
    return _result(node, Gelu(node.attributes.get("approximate", "none")))


def _mish_converter(node: Any, graph: Any) -> Any:
    return _result(node, Mish())


def resize_module(attrs: Any, version: int) -> Resize:
    """A :class:`~mat2grad.onnx.modules.Resize` for an ONNX Resize node's attributes."""
    return Resize(
        mode=attrs.get("mode", "nearest"),
        coordinate_transformation_mode=attrs.get(
            "coordinate_transformation_mode", "half_pixel" if version >= 11 else "asymmetric"
        ),
        nearest_mode=attrs.get("nearest_mode", "round_prefer_floor" if version >= 11 else "floor"),
        cubic_coeff_a=float(attrs.get("cubic_coeff_a", -0.75)),
        exclude_outside=bool(attrs.get("exclude_outside", 0)),
        extrapolation_value=float(attrs.get("extrapolation_value", 0.0)),
        antialias=bool(attrs.get("antialias", 0)),
        axes=attrs.get("axes"),
        keep_aspect_ratio_policy=attrs.get("keep_aspect_ratio_policy", "stretch"),
        scales_only=version < 11,
    )


def _resize_converter(node: Any, graph: Any) -> Any:
    return _result(node, resize_module(node.attributes, 18))


def _average_pool_converter(node: Any, graph: Any) -> Any:
    from onnx2torch.node_converters.registry import get_converter

    dilations = node.attributes.get("dilations")
    if dilations is not None and any(int(d) != 1 for d in dilations):
        raise NotImplementedError(f"AveragePool with dilations {list(dilations)} is not supported")
    return get_converter("AveragePool", 11)(node, graph)


# --------------------------------------------------------------------------------------
# Newer versions that only add element types
# --------------------------------------------------------------------------------------

#: (op_type, newer version) -> version onnx2torch registers, where the newer schema only adds
#: tensor element types (checked in the tests: same input, output and attribute names).
TYPE_ONLY_ALIASES: dict[tuple[str, int], int] = {
    **{("Identity", v): 16 for v in (19, 21, 23, 24, 25)},
    **{("Reshape", v): 14 for v in (19, 21, 23, 24, 25)},
    **{("Flatten", v): 13 for v in (21, 23, 24, 25)},
    **{("Transpose", v): 13 for v in (21, 23, 24, 25)},
    **{("Squeeze", v): 21 for v in (23, 24, 25)},
    **{("Unsqueeze", v): 13 for v in (21, 23, 24, 25)},
    **{("Shape", v): 15 for v in (19, 21, 23, 24, 25)},
    **{("Constant", v): 13 for v in (19, 21, 23, 24, 25)},
    **{("ConstantOfShape", v): 9 for v in (20, 21, 23, 24, 25)},
    **{(op, 22): 7 for op in ("Acos", "Asin", "Atan", "Cos", "Sin", "Tan")},
    ("Equal", 19): 13,
    ("GreaterOrEqual", 16): 12,
    ("LessOrEqual", 16): 12,
    ("IsInf", 20): 10,
    ("IsNaN", 20): 13,
    ("Round", 22): 11,
    ("HardSwish", 22): 14,
    ("EyeLike", 22): 9,
    ("Conv", 22): 11,
    ("ConvTranspose", 22): 11,
    ("MaxPool", 22): 12,
    ("GlobalAveragePool", 22): 1,
    ("Elu", 22): 6,
    ("Selu", 22): 6,
    ("HardSigmoid", 22): 6,
    ("Softplus", 22): 1,
    ("Softsign", 22): 1,
    ("InstanceNormalization", 22): 6,
}


def schema_signature(op_type: str, version: int) -> tuple[tuple[str, ...], ...]:
    """Input, output and attribute names of an ONNX operator schema at ``version``."""
    schema = defs.get_schema(op_type, version)
    return (
        tuple(i.name for i in schema.inputs),
        tuple(o.name for o in schema.outputs),
        tuple(sorted(schema.attributes)),
    )


# --------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------

_registered: list[bool] = []


def register_converters() -> None:
    """Add mat2grad's converters to onnx2torch's registry (idempotent).

    Only pairs absent from the registry are added; onnx2torch's own converters always win
    (``add_converter`` raises ``ValueError`` for a registered pair, which is skipped here).
    """
    if _registered:
        return
    import_onnx2torch()
    from onnx2torch.node_converters.registry import add_converter, get_converter

    def add(op_type: str, version: int, converter: Callable[[Any, Any], Any]) -> None:
        try:
            add_converter(operation_type=op_type, version=version)(converter)
        except ValueError:
            pass  # onnx2torch has its own: it wins

    for kind in ("LSTM", "GRU", "RNN"):
        for version in (7, 14, 22):
            add(kind, version, _recurrent_converter(kind))
    for version in (6, 19, 21, 23, 24, 25):
        add("Cast", version, _cast_converter)
    add("Slice", 1, _slice_v1_converter)
    for version in (18, 19, 21, 23, 24, 25):
        add("Pad", version, _pad_converter)
    for version in (18, 19):
        add("Resize", version, _resize_converter)
    for version in (19, 22):
        add("AveragePool", version, _average_pool_converter)
    for op_type in (
        "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
        "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare",
    ):  # fmt: skip
        add(op_type, 18, _reduce_converter)
    for op_type in ("ReduceMax", "ReduceMin"):
        add(op_type, 20, _reduce_converter)
    add("Split", 18, _split_converter)
    add("Gelu", 20, _gelu_converter)
    add("Mish", 18, _mish_converter)
    add("Mish", 22, _mish_converter)
    for (op_type, version), existing in TYPE_ONLY_ALIASES.items():
        try:
            target = get_converter(operation_type=op_type, version=existing)
        except NotImplementedError:
            continue
        add(op_type, version, target)
    _registered.append(True)
