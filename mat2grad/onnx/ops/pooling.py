"""ONNX ``AveragePool`` versions 19 and 22, through onnx2torch's version-11 converter.

``dilations`` was added in version 19; without dilations (or all 1) onnx2torch's version-11
converter applies, with dilations the node is refused.
"""

from __future__ import annotations

from typing import Any

from ._common import Converter, Fix

__all__ = ["CONVERTERS", "FIXES"]


def _average_pool_converter(node: Any, graph: Any) -> Any:
    # onnx2torch is imported only through the torchvision guard (mat2grad.onnx._onnx2torch),
    # which has run by the time a converter is called
    from onnx2torch.node_converters.registry import get_converter

    dilations = node.attributes.get("dilations")
    if dilations is not None and any(int(d) != 1 for d in dilations):
        raise NotImplementedError(f"AveragePool with dilations {list(dilations)} is not supported")
    return get_converter("AveragePool", 11)(node, graph)


CONVERTERS: list[tuple[str, int, Converter]] = [
    ("AveragePool", version, _average_pool_converter) for version in (19, 22)
]

FIXES: dict[str, Fix] = {}  # nothing onnx2torch builds for it needs replacing
