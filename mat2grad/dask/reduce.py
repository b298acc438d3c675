"""``sensitivity`` on dask arrays: per-block moment states merged in a tree, so only states
of size O(S*R) ever travel, whatever N is.

The three steps are those of :mod:`mat2grad.sensitivity.moments` (chunk -> combine ->
aggregate), as in memory: each block's Jacobians fold into a state
(:func:`mat2grad.sensitivity.stream.accumulate`), states merge ``split_every`` at a time
(:func:`~mat2grad.sensitivity.stream.merge`, see NOTE: [Parallel moment merge]), and the
client turns the one final state into statistics
(:func:`~mat2grad.sensitivity.local.local_result`). Bootstrap weights and the kept subset
depend on each sample's global index only, so any blocking gives the same replicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np

from ..contract import contract_of
from ..errors import Mat2GradError
from ..sensitivity.bootstrap import check_bootstrap
from ..sensitivity.local import local_result
from ..sensitivity.result import SensitivityResult
from ..sensitivity.stream import State, accumulate, merge, new_state
from .arrays import aligned, first_samples, samples_of
from .compute import sized
from .network import NetworkRef, as_ref

__all__ = ["sensitivity", "sensitivity_states"]


@dataclass(frozen=True)
class _Fold:
    """What each block's task needs besides the samples."""

    ref: NetworkRef
    threads: int
    sizes: tuple[int, int]  # (S, R) of the flattened layout
    replicates: int
    seed: int
    keep: int
    chunk_size: int | None
    mode: str


def state_block(how: _Fold, start: int, *blocks: np.ndarray) -> State:
    """The state of samples ``start : start + c`` (a task)."""
    state = new_state(*how.sizes, how.replicates, how.seed, how.keep)
    state.seen = start  # the global index: bootstrap weights and the kept subset use it
    accumulate(
        how.ref.model(how.threads),
        [np.asarray(b) for b in blocks],
        state=state,
        chunk_size=how.chunk_size,
        mode=how.mode,
        progress=False,
    )
    state.layout = None  # the client has it; keep what travels small
    return state


def merge_states(*states: State) -> State:
    """:func:`~mat2grad.sensitivity.stream.merge` over several states (a task)."""
    out = states[0]
    for s in states[1:]:
        out = merge(out, s)
    return out


def sensitivity_states(how: _Fold, xs: Sequence[Any], split_every: int = 8) -> dask.delayed.Delayed:
    """The lazy final state: one task per block, then a merge tree ``split_every`` wide."""
    if split_every < 2:
        raise Mat2GradError(f"split_every must be at least 2, found {split_every}")
    blocks = [x.to_delayed().ravel() for x in xs]
    starts = np.cumsum((0,) + xs[0].chunks[0][:-1])
    fold = dask.delayed(state_block, pure=True)
    level = [fold(how, int(a), *[b[i] for b in blocks]) for i, a in enumerate(starts)]
    combine = dask.delayed(merge_states, pure=True)
    while len(level) > 1:
        level = [combine(*level[i : i + split_every]) for i in range(0, len(level), split_every)]
    return level[0]


def sensitivity(
    source: Any,
    *x: Any,
    network: str | None = None,
    dtype: str = "float64",
    scale: str | None = None,
    ddof: int = 0,
    bootstrap: int = 0,
    conf_level: float = 0.95,
    seed: int = 0,
    keep: int = 0,
    chunk_size: int | None = None,
    mode: str = "auto",
    threads: int = 1,
    block: int | None = None,
    split_every: int = 8,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
) -> SensitivityResult:
    """:func:`mat2grad.sensitivity.sensitivity` of a static network over dask arrays.

    The statistics are those of the in-memory function on the same samples (to round-off:
    1e-12 relative), computed by a tree reduction of per-block moment states; nothing of
    size N is stored or gathered. It runs on the current Dask scheduler (a
    ``distributed.Client`` if one is active, else threads).

    Args:
        source, *x, network, dtype, threads, block: as for :func:`mat2grad.dask.predict`.
        scale, ddof, bootstrap, conf_level, seed, keep, chunk_size, mode, input_names,
            output_names: as for :func:`mat2grad.sensitivity.sensitivity`.
        split_every: states merged per task of the tree.

    Returns:
        A :class:`~mat2grad.sensitivity.SensitivityResult` (``result["rms"]`` is ``(S, R)``).

    Raises:
        Mat2GradError: a dynamic network (its lag statistics run in memory only), bad
            samples or options.
    """
    ref = as_ref(source, network, dtype)
    model = ref.model()
    if contract_of(model).is_dynamic:
        raise Mat2GradError(
            f"{ref.file}: sensitivity on Dask takes static networks; a dynamic network's lag "
            "statistics run in memory (mat2grad.sensitivity.sensitivity)"
        )
    if not x:
        raise Mat2GradError("no inputs given: pass one batch-first array per network input")
    xs = aligned([samples_of(xj, block) for xj in x])
    q = int(xs[0].shape[0])
    check_bootstrap(bootstrap, q, conf_level, "sensitivity")
    # the first sample, on the client: the layout (names, sizes), and bad input fails here
    first = first_samples(xs)
    probe = accumulate(
        model,
        first,
        mode=mode,
        progress=False,
        input_names=input_names,
        output_names=output_names,
    )
    layout = probe.layout
    assert layout is not None
    # blocks sized by one sample's Jacobian (what a block's work grows with)
    xs = sized(x, xs, block, 8.0 * len(layout.outputs) * len(layout.inputs))
    how = _Fold(
        ref,
        threads,
        (len(layout.outputs), len(layout.inputs)),
        bootstrap,
        seed,
        keep,
        chunk_size,
        mode,
    )
    (state,) = dask.compute(sensitivity_states(how, xs, split_every))
    state.layout = layout
    return local_result(state, model, scale=scale, ddof=ddof, conf_level=conf_level)
