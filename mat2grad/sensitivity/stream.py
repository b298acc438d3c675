"""The one accumulation loop: Jacobian chunks from :func:`mat2grad.jacobian_chunks` folded
into moment states, never the whole Jacobian (memory O(S*R) beyond one chunk).

The state holds, for D[q, s, r] = dy_s/dx_r at sample q (see NOTE: [Sensitivity layout]):
moments of D, |D| and D^2 ``(S, R)``, of the inputs ``(R,)`` and of the outputs ``(S,)``;
optionally the same for B Poisson bootstrap replicates (a leading axis B; see NOTE:
[Poisson bootstrap]) and a reservoir of raw derivatives for density plots. Every quantity
the analyses report is a function of this state.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from ..autodiff import jacobian_chunks
from ..contract import to_numpy
from . import moments as mom
from .bootstrap import Reservoir, poisson_weights
from .network import Layout, layout_of

__all__ = ["State", "accumulate", "fold", "merge", "new_state"]

#: the quantities a state tracks, each a Moments
QUANTITIES = ("d", "abs", "sq", "x", "y")


@dataclass
class State:
    """Moment states of one analysis (see the module docstring)."""

    main: dict[str, mom.Moments]
    boot: dict[str, mom.Moments] | None
    replicates: int
    seed: int
    reservoir: Reservoir | None = None
    seen: int = 0  # samples folded in so far (global sample index of the next one)
    #: keep the spread of D^2 too (DGSM's nu_std); otherwise D^2 and |D| are only averaged
    spread_sq: bool = False
    layout: Layout | None = field(default=None, repr=False)

    @property
    def count(self) -> int:
        return int(self.main["d"].count)


def new_state(s: int, r: int, replicates: int = 0, seed: int = 0, keep: int = 0) -> State:
    shapes = {"d": (s, r), "abs": (s, r), "sq": (s, r), "x": (r,), "y": (s,)}
    main = {k: mom.empty(v) for k, v in shapes.items()}
    boot = {k: mom.empty(v, (replicates,)) for k, v in shapes.items()} if replicates else None
    return State(main, boot, replicates, seed, Reservoir(keep, seed) if keep else None)


def fold(state: State, d: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
    """Fold samples ``state.seen ...`` into the state: ``d`` ``(c, S, R)``, ``x`` ``(c, R)``,
    ``y`` ``(c, S)`` (float64)."""
    c = d.shape[0]
    if c == 0:
        return
    if state.reservoir is not None:
        state.reservoir.add(state.seen, d)
    if state.boot is not None:
        _fold_boot(state, d, x, y)
    # one scratch array serves the deviations of D, then |D|, then D^2 (see NOTE: [Chunk
    # sums by BLAS]); D^2 is only averaged unless its spread is wanted
    work = np.empty_like(d)
    parts = {
        "d": mom.chunk(d, work=work),
        "abs": mom.chunk(np.abs(d, out=work), second=False),
        "sq": (mom.chunk(np.multiply(d, d, out=work)) if state.spread_sq else mom.mean_square(d)),
        "x": mom.chunk(x),
        "y": mom.chunk(y),
    }
    for k, v in parts.items():
        state.main[k] = mom.combine(state.main[k], v)
    state.seen += c


def _fold_boot(state: State, d: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
    """The Poisson bootstrap replicates' share of :func:`fold` (see NOTE: [Poisson
    bootstrap])."""
    assert state.boot is not None
    data = {"d": d, "abs": np.abs(d), "sq": d * d, "x": x, "y": y}
    second = {"d": True, "abs": False, "sq": state.spread_sq, "x": True, "y": True}
    w = poisson_weights(state.seed, state.seen, state.seen + d.shape[0], state.replicates)
    for k, v in data.items():
        state.boot[k] = mom.combine(state.boot[k], mom.chunk(v, w, second=second[k]))


def merge(a: State, b: State) -> State:
    """The state of two disjoint sample sets (chunks, workers, or the networks of a
    committee). Bootstrap replicates merge replicate by replicate."""
    main = {k: mom.combine(a.main[k], b.main[k]) for k in QUANTITIES}
    boot = None
    if a.boot is not None and b.boot is not None:
        boot = {k: mom.combine(a.boot[k], b.boot[k]) for k in QUANTITIES}
    res = None
    if a.reservoir is not None and b.reservoir is not None:
        res = a.reservoir.merge(b.reservoir)
    return replace(a, main=main, boot=boot, reservoir=res, seen=a.seen + b.seen)


def _flat_chunk(chunk: Any, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """A JacobianChunk's blocks as one ``(c, S, R)`` array and its outputs ``(c, S)``."""
    rows = []
    for row in chunk.jacobian:
        blocks = [
            to_numpy(b).reshape(b.shape[0], -1, n)
            for b, n in zip(row, layout.in_sizes, strict=True)
        ]
        rows.append(np.concatenate(blocks, axis=2) if len(blocks) > 1 else blocks[0])
    d = np.concatenate(rows, axis=1) if len(rows) > 1 else rows[0]
    ys = [to_numpy(o).reshape(o.shape[0], -1) for o in chunk.outputs]
    y = np.concatenate(ys, axis=1) if len(ys) > 1 else ys[0]
    return d.astype(np.float64, copy=False), y.astype(np.float64, copy=False)


def accumulate(
    model: nn.Module,
    xs: Sequence[Any],
    *,
    state: State | None = None,
    replicates: int = 0,
    seed: int = 0,
    keep: int = 0,
    chunk_size: int | None = None,
    mode: str = "auto",
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    spread_sq: bool = False,
) -> State:
    """Stream the Jacobians of ``model`` at the samples ``xs`` (one batch-first array per
    network input) into a state (a new one, or ``state`` continued)."""
    chunks = jacobian_chunks(
        model,
        *xs,
        mode=mode,
        chunk_size=chunk_size,
        dtype=dtype,
        device=device,
        progress=progress,
    )
    layout = layout_of(
        model, chunks.input_shapes, chunks.output_shapes, chunks.wrt, input_names, output_names
    )
    if state is None:
        state = new_state(len(layout.outputs), len(layout.inputs), replicates, seed, keep)
        state.spread_sq = spread_sq
    state.layout = layout
    xflat = [to_numpy(xs[j]) for j in chunks.wrt]
    for ch in chunks:
        d, y = _flat_chunk(ch, layout)
        parts = [p[ch.start : ch.stop].reshape(ch.stop - ch.start, -1) for p in xflat]
        x = (np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]).astype(
            np.float64, copy=False
        )
        fold(state, d, x, y)
    return state


def states(items: Iterable[State]) -> State:
    """:func:`merge` over several states."""
    it = iter(items)
    out = next(it)
    for s in it:
        out = merge(out, s)
    return out
