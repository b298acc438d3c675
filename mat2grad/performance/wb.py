"""Which of a network's weights and biases make up MATLAB's ``getwb`` vector, and in which
order; the vector itself and the ``b``/``IW``/``LW`` cells through :mod:`mat2grad.matfile`.

The module's parameters are named like MATLAB's cells (``b.1``, ``IW.1_1``, ``LW.2_1``,
1-based). The order is a property of the network (its ``learn`` flags) and of the MATLAB
release that calls ``getwb`` (see below), so it is decided here from the spec; flattening a
block column-major (``W(:)``) and keying cells by index is MATLAB layout, in ``matfile``.

NOTE: [getwb order]
    ``getwb(net)`` concatenates, layer by layer (i = 1..numLayers), the layer's bias
    ``b{i}``, then its input weights ``IW{i,j}`` (j = 1..numInputs), then its layer
    weights ``LW{i,j}`` (j = 1..numLayers), each flattened column-major (``W(:)``), and
    only those whose ``learn`` property is true: ``+nn/wb_indices.m`` (2012) and
    ``formwb.m``/``getwb.m`` (R2012b, NNET 8.0, and every release since). The current
    setwb.html example confirms it: after ``setwb(net, rand(10,1))`` it shows ``b{1}`` and
    then ``IW{1,1}`` as consecutive draws of MATLAB's default random stream. That is
    ``wb_order="bias-first"``, the default. MATLAB R2010b-R2012a (NNET 7) put the bias
    *last* in each layer (``IW{i,:}``, ``LW{i,:}``, ``b{i}``), as the ``net.hint`` indices
    stored in version-'7' network files show: ``wb_order="bias-last"``. The order belongs
    to the MATLAB that calls ``getwb``/``setwb``, not to the file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from ..matfile import flatten_column_major, weight_cell_dicts
from ..shallow.record import NetworkSpec
from .functions import check_choice

__all__ = ["WB_ORDERS", "WbEntry", "flatten_wb", "matlab_cells", "wb_layout"]

WB_ORDERS = ("bias-first", "bias-last")


@dataclass(frozen=True)
class WbEntry:
    """Where one bias or weight matrix sits in the ``getwb`` vector (0-based ``start``)."""

    kind: str  # 'b', 'IW' or 'LW'
    to: int  # layer (1-based)
    source: int  # input (IW) or layer (LW), 1-based; 0 for a bias
    start: int
    shape: tuple[int, ...]  # (S,) for a bias, (S, C) for a weight

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def param(self) -> str:
        """The module's parameter name (``b.1``, ``IW.1_1``, ``LW.2_1``)."""
        return f"b.{self.to}" if self.kind == "b" else f"{self.kind}.{self.to}_{self.source}"

    @property
    def label(self) -> str:
        """MATLAB's name: ``b{1}``, ``IW{1,1}``, ``LW{2,1}``."""
        if self.kind == "b":
            return f"b{{{self.to}}}"
        return f"{self.kind}{{{self.to},{self.source}}}"


def wb_layout(spec: NetworkSpec, wb_order: str = "bias-first") -> tuple[WbEntry, ...]:
    """The blocks of ``getwb(net)`` in order (see NOTE: [getwb order]).

    Weights and biases whose ``learn`` property is false are not part of the vector.
    """
    check_choice(wb_order, WB_ORDERS, "wb_order")
    entries: list[WbEntry] = []
    start = 0

    def add(kind: str, to: int, source: int, shape: tuple[int, ...]) -> None:
        nonlocal start
        entry = WbEntry(kind, to, source, start, shape)
        entries.append(entry)
        start += entry.size

    for layer in spec.layers:
        i = layer.index
        bias = spec.biases[i - 1]
        learn_bias = bias is not None and (not spec.bias_learn or spec.bias_learn[i - 1])
        if learn_bias and wb_order == "bias-first":
            add("b", i, 0, (layer.size,))
        for w in sorted((w for w in spec.input_weights if w.to == i), key=lambda w: w.source):
            if w.learn:
                add("IW", i, w.source, tuple(w.value.shape))
        for w in sorted((w for w in spec.layer_weights if w.to == i), key=lambda w: w.source):
            if w.learn:
                add("LW", i, w.source, tuple(w.value.shape))
        if learn_bias and wb_order == "bias-last":
            add("b", i, 0, (layer.size,))
    return tuple(entries)


def flatten_wb(blocks: Mapping[str, Tensor], layout: Sequence[WbEntry]) -> Tensor:
    """Blocks keyed by parameter name -> one ``getwb``-ordered vector (``(..., P)``, each
    block flattened column-major by :func:`mat2grad.matfile.column_major`, in ``layout``
    order; leading dims are kept)."""
    return flatten_column_major(blocks, [(entry.param, entry.shape) for entry in layout])


def matlab_cells(
    blocks: Mapping[str, Tensor], spec: NetworkSpec
) -> tuple[dict[int, Tensor], dict[tuple[int, int], Tensor], dict[tuple[int, int], Tensor]]:
    """Blocks keyed by parameter name -> MATLAB's cells ``b{i}``, ``IW{i,j}``, ``LW{i,j}``
    as dicts keyed by the 1-based cell index (every connected weight; biases that exist)."""
    return weight_cell_dicts(
        blocks,
        len(spec.layers),
        [(w.to, w.source) for w in spec.input_weights],
        [(w.to, w.source) for w in spec.layer_weights],
    )
