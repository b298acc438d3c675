"""Newer versions of operators onnx2torch already implements that only add element types.

The newer version adds tensor element types (bfloat16, 4-bit, float8, ...) and nothing else,
so onnx2torch's converter for the older version is registered for it too. Each alias is
checked against the ONNX schemas in the tests (:func:`schema_signature`): inputs, outputs and
attributes have the same names in both versions.
"""

from __future__ import annotations

from onnx import defs

__all__ = ["TYPE_ONLY_ALIASES", "schema_signature"]

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
