"""MATLAB's layout of a shallow network's weights and biases: each block flattened
column-major (``W(:)``) into the ``getwb`` vector, and the ``b``/``IW``/``LW`` cells keyed by
their 1-based cell indices.

Which blocks make up the vector, and in which order, is the caller's (``performance``'s
``wb_layout``: it depends on the network's ``learn`` flags and on the calling MATLAB's
release); the parameters are named like MATLAB's cells (``b.1``, ``IW.1_1``, ``LW.2_1``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import Tensor

__all__ = ["column_major", "flatten_column_major", "weight_cell_dicts"]


def column_major(block: Tensor, shape: tuple[int, ...]) -> Tensor:
    """One block (trailing dims = ``shape``, ``(S,)`` or ``(S, C)``) as MATLAB's ``W(:)``:
    flattened column-major, leading dims kept, ``(..., prod(shape))``."""
    lead = block.shape[: block.ndim - len(shape)]
    if len(shape) == 2:
        block = block.transpose(-1, -2)  # column-major: W(:) runs down the columns
    size = 1
    for n in shape:
        size *= int(n)
    return block.reshape(*lead, size)


def flatten_column_major(
    blocks: Mapping[str, Tensor], order: Sequence[tuple[str, tuple[int, ...]]]
) -> Tensor:
    """Blocks keyed by parameter name -> one vector (``(..., P)``): the blocks named by
    ``order`` (``(name, shape)`` pairs), each by :func:`column_major`, concatenated in that
    order; leading dims are kept."""
    parts = [column_major(blocks[name], shape) for name, shape in order]
    if not parts:
        return torch.zeros(0, dtype=next(iter(blocks.values())).dtype)
    return torch.cat(parts, dim=-1)


def weight_cell_dicts(
    blocks: Mapping[str, Tensor],
    num_layers: int,
    input_weights: Iterable[tuple[int, int]],
    layer_weights: Iterable[tuple[int, int]],
) -> tuple[dict[int, Tensor], dict[tuple[int, int], Tensor], dict[tuple[int, int], Tensor]]:
    """Blocks keyed by parameter name -> MATLAB's cells ``b{i}``, ``IW{i,j}``, ``LW{i,j}``
    as dicts keyed by the 1-based cell index: the biases that exist among layers
    ``1..num_layers``, and every connected weight ``(to, source)`` given."""
    db = {i: blocks[f"b.{i}"] for i in range(1, num_layers + 1) if f"b.{i}" in blocks}
    d_iw = {(to, source): blocks[f"IW.{to}_{source}"] for to, source in input_weights}
    d_lw = {(to, source): blocks[f"LW.{to}_{source}"] for to, source in layer_weights}
    return db, d_iw, d_lw
