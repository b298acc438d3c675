"""What an analysis needs to know about a network: its inputs and outputs as flat lists of
named elements (the S x R layout of every result), its recorded ranges, and a flat view of
the model for engines that take one input and one output.

NOTE: [Sensitivity layout]
    Every network input j (per-sample shape ``in_j``) contributes ``prod(in_j)`` columns
    and every output k ``prod(out_k)`` rows, in network order, each block flattened in C
    order (row-major, as torch and numpy flatten). A MATLAB shallow network with one input
    and one output so gets exactly its ``S x R`` Jacobian layout; several inputs give
    MATLAB's ``[X{1}; X{2}; ...]`` row order. Integer (index) inputs of ONNX models are
    not differentiated and get no columns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..contract import contract_of, to_numpy
from ..errors import Mat2GradError

__all__ = ["FlatModel", "Layout", "element_names", "layout_of"]

_DEFAULT_IN = {"", "input", "inputs"}
_DEFAULT_OUT = {"", "output", "outputs", "target", "targets"}


def element_names(
    names: Sequence[str], sizes: Sequence[int], default: str, defaults: set[str]
) -> tuple[str, ...]:
    """Element names: ``x1..xR`` for one unnamed (MATLAB's default ``Input``) signal,
    ``x{j}_{r}`` for several, ``name`` or ``name_{r}`` for named ones; made unique."""
    out: list[str] = []
    several = len(sizes) > 1
    for j, size in enumerate(sizes):
        name = names[j].strip() if j < len(names) and names[j] else ""
        if name.lower().rstrip("0123456789 ") in defaults:  # MATLAB's 'Input', 'Input 2'...
            base = f"{default}{j + 1}_" if several else default
            out += [f"{base}{r + 1}" for r in range(size)]
        elif size == 1:
            out.append(name)
        else:
            out += [f"{name}_{r + 1}" for r in range(size)]
    seen: dict[str, int] = {}
    unique = []
    for n in out:
        seen[n] = seen.get(n, 0) + 1
        unique.append(n if seen[n] == 1 else f"{n}_{seen[n]}")
    return tuple(unique)


@dataclass(frozen=True)
class Layout:
    """A network's inputs and outputs as flat element lists (see NOTE: [Sensitivity
    layout])."""

    name: str
    wrt: tuple[int, ...]  # the differentiated (floating) inputs
    in_shapes: tuple[tuple[int, ...], ...]  # of the inputs in wrt
    out_shapes: tuple[tuple[int, ...], ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    is_dynamic: bool

    @property
    def in_sizes(self) -> tuple[int, ...]:
        return tuple(math.prod(s) for s in self.in_shapes)

    @property
    def out_sizes(self) -> tuple[int, ...]:
        return tuple(math.prod(s) for s in self.out_shapes)


def layout_of(
    model: nn.Module,
    in_shapes: Sequence[tuple[int, ...]],
    out_shapes: Sequence[tuple[int, ...]],
    wrt: Sequence[int],
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
) -> Layout:
    """The layout for the per-sample shapes an engine reported (``in_shapes`` of the inputs
    in ``wrt``); ``input_names``/``output_names`` override the element names."""
    c = contract_of(model)
    in_shapes = tuple(tuple(int(d) for d in s) for s in in_shapes)
    out_shapes = tuple(tuple(int(d) for d in s) for s in out_shapes)
    names_in = [c.input_names[j] if j < len(c.input_names) else "" for j in wrt]
    ins = element_names(names_in, [math.prod(s) for s in in_shapes], "x", _DEFAULT_IN)
    outs = element_names(
        list(c.output_names), [math.prod(s) for s in out_shapes], "y", _DEFAULT_OUT
    )
    ins = _override(ins, input_names, "input_names")
    outs = _override(outs, output_names, "output_names")
    return Layout(c.name, tuple(wrt), in_shapes, out_shapes, ins, outs, c.is_dynamic)


def _override(names: tuple[str, ...], given: Sequence[str] | None, what: str) -> tuple[str, ...]:
    if given is None:
        return names
    given = tuple(str(g) for g in given)
    if len(given) != len(names):
        raise Mat2GradError(
            f"{what} has {len(given)} names but the network has {len(names)} elements"
        )
    return given


def recorded_ranges(model: nn.Module, side: str) -> np.ndarray | None:
    """The ``(n, 2)`` [min max] ranges MATLAB recorded for the network's inputs or outputs
    (``inputs{i}.range``, ``outputs{i}.range``, i.e. the training data's ranges), stacked
    in layout order; None when the network recorded none (ONNX models)."""
    spec = contract_of(model).spec
    items = getattr(spec, side, None)
    if not items:
        return None
    blocks = []
    for item in items:
        rng = getattr(item, "range", None)
        if rng is None:
            return None
        blocks.append(np.asarray(rng, dtype=np.float64).reshape(-1, 2))
    return np.concatenate(blocks, axis=0)


class FlatModel(nn.Module):
    """``model`` as a module of one ``(Q, R)`` input and one ``(Q, S)`` output (see NOTE:
    [Sensitivity layout]); for engines that take one input (Hessians, SALib)."""

    def __init__(self, model: nn.Module, layout: Layout):
        super().__init__()
        self.inner = model
        self.shapes = layout.in_shapes
        self.sizes = layout.in_sizes
        self.input_shapes = ((sum(self.sizes),),)
        self.output_shapes = ((sum(layout.out_sizes),),)
        c = contract_of(model)
        self.zero_derivative = c.zero_derivative
        self.not_differentiable = c.not_differentiable
        self.source = c.name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, list(self.sizes), dim=1)
        args = [p.reshape(p.shape[0], *s) for p, s in zip(parts, self.shapes, strict=True)]
        y = self.inner(*args)
        ys = y if isinstance(y, tuple | list) else (y,)
        return torch.cat([o.reshape(o.shape[0], -1) for o in ys], dim=1)


def flat_model(model: nn.Module, layout: Layout) -> nn.Module:
    """``model`` itself when it already takes one flat input and gives one flat output."""
    c = contract_of(model)
    if any(c.integer_inputs(len(c.input_float) or 1)):
        raise Mat2GradError(
            f"{layout.name}: this analysis needs every input to be floating point; the model "
            "has integer (index) inputs"
        )
    flat = (
        len(layout.in_shapes) == 1
        and len(layout.in_shapes[0]) == 1
        and len(layout.out_shapes) == 1
        and len(layout.out_shapes[0]) == 1
    )
    return model if flat else FlatModel(model, layout)


def flatten_inputs(xs: Sequence[Any], layout: Layout) -> np.ndarray:
    """The differentiated inputs as one ``(Q, R)`` float64 array."""
    parts = [to_numpy(xs[j]).astype(np.float64, copy=False) for j in layout.wrt]
    return np.concatenate([p.reshape(p.shape[0], -1) for p in parts], axis=1)


def split_inputs(x: np.ndarray, layout: Layout) -> list[np.ndarray]:
    """A ``(Q, R)`` array as one ``(Q, *in_j)`` array per input (inverse of
    :func:`flatten_inputs`)."""
    out, a = [], 0
    for size, shape in zip(layout.in_sizes, layout.in_shapes, strict=True):
        out.append(x[:, a : a + size].reshape(x.shape[0], *shape))
        a += size
    return out
