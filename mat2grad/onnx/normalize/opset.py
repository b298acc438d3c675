"""The opset upgrade (number 6 of :mod:`mat2grad.onnx.normalize.pipeline`'s list).

Graphs older than :data:`TARGET_OPSET` are upgraded with ``onnx.version_converter``
(onnx2torch lacks many old versions: Flatten-1, Gemm-6, BatchNormalization-7, Dropout-7, ...);
where the converter fails, the graph keeps its opset and a note says why.
"""

from __future__ import annotations

import onnx
import onnx.version_converter
from onnx import ModelProto, helper

__all__ = ["TARGET_OPSET", "default_opset", "upgrade"]

#: Opset every older graph is upgraded to before conversion.
TARGET_OPSET = 13

_HIDDEN_DOMAIN = "mat2grad.hidden"
_RECURRENT = ("LSTM", "GRU", "RNN")


def default_opset(model: ModelProto) -> int:
    """The model's ``ai.onnx`` opset version (1 when it imports none)."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 1


def upgrade(original: ModelProto, notes: list[str]) -> ModelProto:
    """Upgrade to TARGET_OPSET; when the version converter fails, keep the graph as it is
    (onnx2torch or mat2grad may still have converters for its versions) and say so."""
    m = ModelProto()
    m.CopyFrom(original)
    old = default_opset(m)
    hidden: list[str] = []
    if old < 7:
        # the version converter needs the shapes below a hidden node: declare its outputs'
        known = onnx.shape_inference.infer_shapes(m, strict_mode=False).graph.value_info
        hidden_outputs = {o for n in m.graph.node if n.op_type in _RECURRENT for o in n.output if o}
        m.graph.value_info.extend(vi for vi in known if vi.name in hidden_outputs)
        for node in m.graph.node:
            if node.op_type in _RECURRENT and node.domain in ("", "ai.onnx"):
                node.domain = _HIDDEN_DOMAIN
                kept = [a for a in node.attribute if a.name != "output_sequence"]
                del node.attribute[:]
                node.attribute.extend(kept)
                hidden.append(node.op_type)
        if hidden:
            m.opset_import.append(helper.make_opsetid(_HIDDEN_DOMAIN, 1))
    if m.ir_version < 4:
        m.ir_version = 4
    # Upsample and Resize-10 compute with asymmetric coordinates (nearest: floor); the
    # converter's Resize 10 -> 11 adapter omits those attributes, so the upgraded node would
    # take Resize-11's defaults (half_pixel, round_prefer_floor): a different result
    # (every Resize of an upgraded graph older than opset 11 is such a node)
    try:
        up = onnx.version_converter.convert_version(m, TARGET_OPSET)
    except Exception as exc:  # noqa: BLE001 - the converter raises RuntimeError/others
        text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        notes.append(f"opset {old} kept: onnx.version_converter failed ({text[:200]})")
        return original
    del up.graph.value_info[:]
    for node in up.graph.node:
        if node.op_type == "Resize" and old < 11:
            have = {a.name for a in node.attribute}
            if "coordinate_transformation_mode" not in have:
                node.attribute.append(
                    helper.make_attribute("coordinate_transformation_mode", "asymmetric")
                )
            if "nearest_mode" not in have:
                node.attribute.append(helper.make_attribute("nearest_mode", "floor"))
    if hidden:
        for node in up.graph.node:
            if node.domain == _HIDDEN_DOMAIN:
                node.domain = ""
        keep = [o for o in up.opset_import if o.domain != _HIDDEN_DOMAIN]
        del up.opset_import[:]
        up.opset_import.extend(keep)
        notes.append(
            f"{', '.join(sorted(set(hidden)))} (opset {old}) relabelled to version 7 "
            "(no version adapter exists; version 7 only dropped 'output_sequence')"
        )
    notes.append(f"upgraded opset {old} -> {TARGET_OPSET} with onnx.version_converter")
    return up
