"""Samples in chunks: the chunk size from a working-set budget, the one chunk loop (with its
progress bar), preallocated results, and the guard that samples are independent."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import budget
from ..budget import CHUNK_BUDGET_BYTES, MAX_CHUNK, check_fits, empty, ranges
from ..errors import Mat2GradError
from .setup import Setup

__all__ = ["CHUNK_BUDGET_BYTES", "MAX_CHUNK"]


def alloc_blocks(setup: Setup, c: int, device: torch.device) -> list[list[Tensor]]:
    """Jacobian blocks ``[k][jj]`` ``(c, *out_k, *in_wrt[jj])``.

    Raises:
        Mat2GradError: they cannot fit in memory (checked before allocating).
    """
    itemsize = torch.tensor([], dtype=setup.dtype).element_size()
    per_sample = sum(
        setup.numel_out(k) * setup.numel_in(j)
        for k in range(len(setup.out_shapes))
        for j in setup.wrt
    )
    if c > 1:
        remedy = (
            "take it chunk by chunk with mat2grad.jacobian_chunks (same arguments), or "
            "write it to a MAT-file with 'mat2grad jacobian', which streams it to disk"
        )
    else:
        remedy = "one sample's Jacobian does not fit: differentiate fewer inputs (wrt=...)"
    check_fits(
        c * per_sample * itemsize,
        device,
        f"{setup.name}: the Jacobian of {c} sample(s) ({per_sample} derivatives each)",
        remedy,
    )
    return [
        [
            empty((c, *setup.out_shapes[k], *setup.in_shapes[j]), setup.dtype, device)
            for j in setup.wrt
        ]
        for k in range(len(setup.out_shapes))
    ]


def alloc_like(
    setup: Setup, shapes: tuple[tuple[int, ...], ...], c: int, device: torch.device
) -> list[Tensor]:
    """One ``(c, *shape)`` tensor per shape (outputs, inputs) in the compute dtype."""
    return [empty((c, *s), setup.dtype, device) for s in shapes]


def _progress(total: int, progress: bool | None, desc: str) -> Any:
    from tqdm.auto import tqdm  # function-local: tqdm costs start-up time, bars are rare

    return tqdm(
        total=total,
        desc=desc,
        unit="sample",
        unit_scale=True,
        disable=None if progress is None else not progress,  # None: only on terminals
        delay=2.0 if progress is None else 0.0,  # and only for jobs longer than 2 s
        leave=False,
        file=sys.stderr,
        dynamic_ncols=True,
    )


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


@contextlib.contextmanager
def chunk_loop(
    q: int, size: int, progress: bool | None, desc: str
) -> Iterator[Iterator[tuple[int, int]]]:
    """The one chunk loop: ``with chunk_loop(...) as steps: for a, b in steps: ...``. The
    progress bar advances after each chunk is processed and closes when the block ends.
    Where no bar could show (one chunk, or by default off a terminal) none is made: a
    tqdm object costs ~0.2 ms, a tenth of a small call."""
    quiet = progress is False or (progress is None and (q <= size or not sys.stderr.isatty()))
    bar = _NoBar() if quiet else _progress(q, progress, desc)

    def steps() -> Iterator[tuple[int, int]]:
        for a, b in ranges(q, size):
            yield a, b
            bar.update(b - a)

    try:
        yield steps()
    finally:
        bar.close()


def samples_per_chunk(chunk_size: int | None, per_sample_bytes: float, q: int) -> int:
    """``chunk_size`` checked, or the samples per chunk that fit the working-set budget."""
    if chunk_size is not None:
        if not isinstance(chunk_size, int | np.integer) or chunk_size < 1:
            raise Mat2GradError(f"chunk_size must be a whole number >= 1, found {chunk_size!r}")
        return int(min(chunk_size, q))
    size = int(CHUNK_BUDGET_BYTES // max(per_sample_bytes, 1.0))
    return max(1, min(size, MAX_CHUNK, q))


def saved_bytes_per_sample(setup: Setup) -> float:
    """Bytes autograd saves per sample for one forward pass (measured, not guessed; see
    :func:`mat2grad.budget.saved_bytes_per_sample`), the selected inputs requiring grad."""
    grad = [j in setup.wrt for j in range(len(setup.xs))]
    return max(budget.saved_bytes_per_sample(setup.model, setup.xs, grad)[0], 1.0)


# NOTE: [Samples are independent]
#   The fast generic methods differentiate ``sum_q y[q, e]`` with respect to the whole batch
#   (one backward pass per output element, all samples at once). That equals the per-sample
#   Jacobian only if no sample's output depends on another sample's input, which the model
#   contract requires (eval mode, no batch statistics). The engine puts the model in eval
#   mode, and on the first chunk compares one sample computed alone with the batched result;
#   a model that mixes samples is refused instead of giving a wrong answer. A model that
#   passed is not checked again while it is the same: the same module objects in the same
#   modes, computing in the same dtype on samples of the same shapes (the check cost a
#   sixth of a 10^4-image Jacobian of a small CNN).


def guard_independence(
    setup: Setup,
    xs: list[Tensor],
    batched: list[Tensor],
    alone: Callable[[list[Tensor]], list[Tensor]],
    what: str,
) -> None:
    """See NOTE: [Samples are independent]. ``batched`` are the first chunk's results (one
    tensor per block, batch first); ``alone(xs[:1])`` computes the same blocks for sample 1
    by itself. Skipped for a chunk of one sample or a first sample with NaN/Inf."""
    if xs[0].shape[0] < 2 or not all(bool(torch.isfinite(x[:1]).all()) for x in xs):
        return
    model = setup.model
    key = (what, setup.state_key(xs, batch=False))
    if model.__dict__.get(_PASSED) == key:
        return
    single = alone([x[:1] for x in xs])
    tol = 1e-9 if setup.dtype == torch.float64 else 1e-4
    for b, s in zip(batched, single, strict=True):
        scale = float(torch.nan_to_num(s).abs().max()) if s.numel() else 0.0
        diff = float(torch.nan_to_num(b[:1] - s).abs().max()) if s.numel() else 0.0
        if diff > tol * max(scale, 1e-300) and diff > 0:
            raise Mat2GradError(
                f"{setup.name}: the model mixes samples within a batch (sample 1's "
                f"{what} computed alone differs from the batched one by {diff:.3g}, "
                f"relative {diff / max(scale, 1e-300):.3g}), so per-sample gradients "
                "would be wrong; put the model in eval mode and remove operations that "
                "combine samples (batch statistics, reshapes across the batch)"
            )
    object.__setattr__(model, _PASSED, key)


#: the attribute where a model keeps the key of its last passed independence check
_PASSED = "_mat2grad_independent"
