"""``predict`` and ``jacobian`` on dask arrays: one task per block of samples, lazy results
chunked like the inputs.

Each task rebuilds (once per worker thread, see NOTE: [One module per worker thread]) the
network from its :class:`NetworkRef` and runs the in-memory function on its block, so the
numbers are those of :func:`mat2grad.predict` and :func:`mat2grad.jacobian` (samples are
independent: see NOTE: [Samples are independent]). The per-sample shapes are known before
anything runs: the client evaluates the first sample once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np

from ..autodiff import jacobian as _jacobian
from ..contract import to_numpy
from ..errors import Mat2GradError
from ..predict import predict_arrays
from .arrays import aligned, block_for, first_samples, samples_of
from .network import NetworkRef, as_ref

__all__ = ["Blocks", "Plan", "jacobian", "predict", "recipe_of"]


@dataclass(frozen=True)
class Plan:
    """How each block is differentiated (as :func:`mat2grad.jacobian` takes it)."""

    mode: str = "auto"
    chunk_size: int | None = None
    wrt: tuple[int, ...] | None = None


def _flat(nested: Any) -> list[Any]:
    """A tensor, or a tuple (of tuples) of them, as a flat list in row order."""
    if isinstance(nested, tuple | list):
        return [leaf for item in nested for leaf in _flat(item)]
    return [nested]


def _float64(parts: Sequence[Any]) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(to_numpy(p), dtype=np.float64) for p in parts)


def predict_block(ref: NetworkRef, threads: int, *blocks: np.ndarray) -> tuple[np.ndarray, ...]:
    """One block's outputs ``(c, *out_k)``, float64 (a task)."""
    return tuple(predict_arrays(ref.model(threads), [np.asarray(b) for b in blocks]))


def jacobian_block(
    ref: NetworkRef, threads: int, plan: Plan, *blocks: np.ndarray
) -> tuple[np.ndarray, ...]:
    """One block's Jacobian blocks ``J[k][j]`` (row order) then outputs ``Y[k]``, float64
    (a task)."""
    J, Y = _jacobian(
        ref.model(threads),
        *[np.asarray(b) for b in blocks],
        mode=plan.mode,
        chunk_size=plan.chunk_size,
        wrt=plan.wrt,
        progress=False,
        return_outputs=True,
    )
    return _float64(_flat(J) + _flat(Y))


@dataclass(frozen=True, eq=False)
class Blocks:
    """How the arrays of one :func:`per_block` call are computed: ``fn(*args, *blocks)``
    on each block of samples of ``xs`` gives one result per array. A writer that finds
    this recipe on every array it is given (see :func:`recipe_of`) runs it once per block
    and writes the results where they are computed (see NOTE: [Blocks written where they
    are computed])."""

    fn: Callable[..., tuple[np.ndarray, ...]]
    args: tuple[Any, ...]
    xs: tuple[da.Array, ...]


#: the attribute of a dask array made by per_block: (its Blocks, which result it is).
#: Any array derived from it (a slice, a sum) is a new array without it.
_RECIPE = "_mat2grad_blocks"


def recipe_of(x: Any) -> tuple[Blocks, int] | None:
    """``(Blocks, index)`` for an array made by :func:`per_block`, else None."""
    return getattr(x, _RECIPE, None)


def per_block(
    fn: Callable[..., tuple[np.ndarray, ...]],
    args: Sequence[Any],
    xs: Sequence[da.Array],
    shapes: Sequence[tuple[int, ...]],
) -> list[da.Array]:
    """``fn(*args, *blocks)`` on every block of samples, its results (one per per-sample
    shape in ``shapes``) as lazy float64 arrays ``(Q, *shape)`` chunked like ``xs[0]``."""
    blocks = [x.to_delayed().ravel() for x in xs]
    task = dask.delayed(fn, pure=True, nout=len(shapes))
    parts: list[list[da.Array]] = [[] for _ in shapes]
    for i, c in enumerate(xs[0].chunks[0]):
        out = task(*args, *[b[i] for b in blocks])
        for k, shape in enumerate(shapes):
            parts[k].append(da.from_delayed(out[k], shape=(c, *shape), dtype=np.float64))
    recipe = Blocks(fn, tuple(args), tuple(xs))
    results = [da.concatenate(p, axis=0) for p in parts]
    for k, r in enumerate(results):
        setattr(r, _RECIPE, (recipe, k))
    return results


def _inputs(x: Sequence[Any], block: int | None) -> list[da.Array]:
    if not x:
        raise Mat2GradError("no inputs given: pass one batch-first array per network input")
    return aligned([samples_of(xj, block) for xj in x])


def sized(
    x: Sequence[Any], xs: list[da.Array], block: int | None, bytes_per_sample: float
) -> list[da.Array]:
    """``xs`` in blocks of :func:`~.arrays.block_for` the bytes of one sample's results,
    where the blocks are this module's to choose: no ``block`` given, and no input a dask
    array with chunks of its own."""
    if block is not None or any(isinstance(xj, da.Array) for xj in x):
        return xs
    size = block_for(bytes_per_sample)
    return [xj.rechunk({0: size}) for xj in xs]


def predict(
    source: Any,
    *x: Any,
    network: str | None = None,
    dtype: str = "float64",
    threads: int = 1,
    block: int | None = None,
) -> da.Array | tuple[da.Array, ...]:
    """Lazy :func:`mat2grad.predict` on batch-first inputs, block by block.

    Args:
        source: the network file (a MAT-file or ``.onnx``) or a :class:`NetworkRef`.
        *x: one batch-first array per network input ``(Q, *in_j)``: dask arrays (chunked
            along samples; other chunking is undone), numpy arrays or memory maps.
        network, dtype: which network in a MAT-file, and the precision (with a path).
        threads: torch CPU threads per worker thread (default 1).
        block: samples per block (default: the chunks of ``x``; for numpy inputs, blocks
            whose results take about :data:`~mat2grad.dask.arrays.BLOCK_BYTES`).

    Returns:
        ``(Q, *out)`` float64 dask array (a tuple for several outputs), chunked like ``x``.

    Example:
        >>> Y = predict("net.mat", da.random.random((10**8, 10), chunks=2**16))  # doctest: +SKIP
        >>> assert Y.shape == (10**8, 3)
    """
    ref = as_ref(source, network, dtype)
    xs = _inputs(x, block)
    first = first_samples(xs)
    ys1 = predict_arrays(ref.model(), first)
    xs = sized(x, xs, block, sum(a.nbytes for a in [*ys1, *first]))
    ys = per_block(predict_block, (ref, threads), xs, [y.shape[1:] for y in ys1])
    return ys[0] if len(ys) == 1 else tuple(ys)


def jacobian(
    source: Any,
    *x: Any,
    network: str | None = None,
    dtype: str = "float64",
    mode: str = "auto",
    chunk_size: int | None = None,
    wrt: int | Sequence[int] | None = None,
    threads: int = 1,
    block: int | None = None,
    return_outputs: bool = False,
) -> Any:
    """Lazy :func:`mat2grad.jacobian` on batch-first inputs: Jacobian chunks ``(c, S, R)``.

    Args:
        source, *x, network, dtype, threads, block: as for :func:`predict`.
        mode, chunk_size, wrt: as for :func:`mat2grad.jacobian`, within each block
            (``chunk_size`` bounds a task's working set; ``block`` is the task).
        return_outputs: also return the outputs ``Y`` (computed in the same tasks).

    Returns:
        ``J`` ``(Q, *out, *in)`` float64 dask array, e.g. ``(Q, S, R)``, chunked along
        samples like ``x``; for several outputs or inputs a tuple of tuples ``J[k][j]``.
        With ``return_outputs``, ``(J, Y)``. Nothing is computed until asked (``.compute()``,
        :func:`mat2grad.dask.to_zarr`, :func:`mat2grad.dask.to_mat`).

    Example:
        >>> J = jacobian("net.mat", da.ones((1000, 10), chunks=100))  # doctest: +SKIP
        >>> assert J.shape == (1000, 3, 10) and J.chunks[0][0] == 100
    """
    ref = as_ref(source, network, dtype)
    sel = (wrt,) if isinstance(wrt, int) else (None if wrt is None else tuple(wrt))
    plan = Plan(mode, chunk_size, sel)
    xs = _inputs(x, block)
    # the first sample, on the client: the per-sample shapes, and bad input fails here
    J1, Y1 = _jacobian(
        ref.model(), *first_samples(xs), mode=mode, wrt=sel, progress=False, return_outputs=True
    )
    probe = _float64(_flat(J1) + _flat(Y1))
    xs = sized(x, xs, block, sum(p.nbytes for p in probe))
    n_j = len(_flat(J1))
    parts = per_block(jacobian_block, (ref, threads, plan), xs, [p.shape[1:] for p in probe])
    blocks, outs = parts[:n_j], parts[n_j:]
    if isinstance(J1, tuple):
        width = len(J1[0])
        J: Any = tuple(tuple(blocks[k * width : (k + 1) * width]) for k in range(len(J1)))
    else:
        J = blocks[0]
    if not return_outputs:
        return J
    return J, (outs[0] if len(outs) == 1 else tuple(outs))
