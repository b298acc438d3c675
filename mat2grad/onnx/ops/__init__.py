"""The ONNX operators mat2grad supplies: one family per module, with its torch module, its
onnx2torch converters and its post-conversion fix together (as onnx2torch keeps each op
family's module and registration in one file).

Every module here follows the ONNX operator definition, computes out of place, and reads its
shape-like arguments (``starts``, ``pads``, ``sizes``, ...) with ``.tolist()``: they are
constants or shapes, never batched data, so the modules run under ``torch.func.vmap`` /
``jacrev`` / ``jacfwd``.

Each family exports up to two tables:

* ``CONVERTERS``: ``(op_type, version, converter)`` pairs onnx2torch lacks. They are added
  through onnx2torch's own registry by :func:`register_converters`; ``add_converter`` refuses
  to register a pair twice, so only missing pairs are added and onnx2torch's own converters
  always win.
* ``FIXES``: fully qualified class name of a module onnx2torch builds wrongly (numerically,
  for ``torch.func`` transforms, or for float64) -> a builder of its replacement. A wrong
  *existing* converter is never overridden; the module it built is swapped after conversion
  by :func:`mat2grad.onnx.fixes.apply_fixes`.

====================  ==========================================================================
``recurrent``         ``LSTM``, ``GRU``, ``RNN`` (7, 14, 22): converters
``cast``              ``Cast`` that follows the working dtype: converters (6, 19-25) and fix
``slice``             ``Slice`` (converter for version 1, fix) and ``Split`` (converter for 18)
``gemm``              ``Gemm`` out of place (fix)
``reverse_sequence``  ``ReverseSequence`` (10, 28): converters
``flatten``           ``Flatten`` for every axis and rank: fixes
``pad``               ``Pad`` on any axes in every mode: converters (18-25) and fixes
``resize``            ``Resize``, the whole operator: converters (18, 19) and fixes
``pooling``           ``AveragePool`` 19 and 22 without dilations: converters
``reduce``            ``Sum``/``Mean`` out of place (fixes), ``Reduce*`` with axes as input (18, 20)
``activations``       ``PRelu`` (fix), ``Gelu`` (20), ``Mish`` (18, 22)
``dropout``           ``Dropout`` modules as ``nn.Identity`` (fixes)
``control_flow``      ``Loop``, ``Scan`` (9+), ``If``: converters; subgraphs converted by
                      ``control_flow_body`` with their outer-scope values passed in
``aliases``           newer versions that only add element types: onnx2torch's older converter
====================  ==========================================================================
"""

from __future__ import annotations

from .._onnx2torch import import_onnx2torch
from . import (
    activations,
    cast,
    control_flow,
    control_flow_body,
    dropout,
    flatten,
    gemm,
    pad,
    pooling,
    recurrent,
    reduce,
    resize,
    reverse_sequence,
    slice,
)
from ._common import Converter, Fix
from .aliases import TYPE_ONLY_ALIASES

__all__ = ["CONVERTERS", "FIXES", "register_converters"]

_FAMILIES = (
    recurrent,
    reverse_sequence,
    control_flow,
    cast,
    slice,
    gemm,
    flatten,
    pad,
    resize,
    pooling,
    reduce,
    activations,
    dropout,
)

#: every ``(op_type, version, converter)`` mat2grad adds, family by family
CONVERTERS: list[tuple[str, int, Converter]] = [
    entry for family in _FAMILIES for entry in family.CONVERTERS
]
#: qualified class name of a module onnx2torch builds wrongly -> builder of its replacement
FIXES: dict[str, Fix] = {name: fix for family in _FAMILIES for name, fix in family.FIXES.items()}
control_flow_body.SUBGRAPH_FIXES.update(FIXES)  # subgraphs are fixed like the main graph

_registered: list[bool] = []


def register_converters() -> None:
    """Add mat2grad's converters to onnx2torch's registry (idempotent).

    Only pairs absent from the registry are added; onnx2torch's own converters always win
    (``add_converter`` raises ``ValueError`` for a registered pair, which is skipped here).
    """
    if _registered:
        return
    import_onnx2torch()
    # onnx2torch only after the torchvision guard above has imported it
    from onnx2torch.node_converters.registry import add_converter, get_converter

    def add(op_type: str, version: int, converter: Converter) -> None:
        try:
            add_converter(operation_type=op_type, version=version)(converter)
        except ValueError:
            pass  # onnx2torch has its own: it wins

    for op_type, version, converter in CONVERTERS:
        add(op_type, version, converter)
    for (op_type, version), existing in TYPE_ONLY_ALIASES.items():
        try:
            target = get_converter(operation_type=op_type, version=existing)
        except NotImplementedError:
            continue
        add(op_type, version, target)
    _registered.append(True)
