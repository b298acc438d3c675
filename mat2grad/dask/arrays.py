"""Inputs as dask arrays, from where large data lives, chunked along samples only.

Every reader here is lazy and picklable (a path and a name), so each worker reads its own
blocks: MAT v7.3 variables (HDF5), ``.npy`` files (memory maps), zarr arrays; any dask or
numpy array is taken as it is.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np

from ..errors import Mat2GradError
from ..matfile.lazy import V73Samples

__all__ = [
    "BLOCK_BYTES",
    "DEFAULT_BLOCK",
    "block_for",
    "first_samples",
    "from_mat",
    "from_npy",
    "from_zarr",
    "samples_of",
]

#: samples per block of the readers when none is given
DEFAULT_BLOCK = 2**16
#: the results of one block when the block size is chosen here (:func:`block_for`): the
#: scheduler's cost per task (about 5 ms on a 2-worker LocalCluster) is then under 5 % of
#: a task's work for the smallest networks (2^18 samples of a 10-20-3 network's Jacobian
#: and outputs, 66 MB: about 90 ms computed and written), and a task's memory stays bounded
BLOCK_BYTES = 64 * 2**20


def from_mat(
    path: str | os.PathLike[str],
    variable: str,
    *,
    samples: str = "columns",
    block: int = DEFAULT_BLOCK,
) -> da.Array:
    """A numeric matrix of a MAT v7.3 file as lazy ``(Q, R)`` samples (``R x Q`` in the file,
    or ``Q x R`` with ``samples="rows"``), in blocks of ``block`` samples."""
    src = V73Samples(path, variable, samples)
    return da.from_array(src, chunks=(_block(block), -1), lock=False, asarray=True, name=False)


def from_npy(path: str | os.PathLike[str], *, block: int = DEFAULT_BLOCK) -> da.Array:
    """A batch-first ``.npy`` file ``(Q, ...)`` as lazy samples (a memory map per block)."""
    try:
        arr = np.load(os.fspath(path), mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise Mat2GradError(f"{path}: cannot read as a .npy file ({exc})") from None
    chunks = (_block(block),) + (-1,) * (arr.ndim - 1)
    return da.from_array(arr, chunks=chunks, lock=False, name=False)


def from_zarr(
    path: str | os.PathLike[str], component: str | None = None, *, block: int | None = None
) -> da.Array:
    """A batch-first zarr array ``(Q, ...)`` (``component``: its name in a group); in the
    store's own chunks along samples, or ``block`` samples."""
    try:
        arr = da.from_zarr(os.fspath(path), component=component)
    except Exception as exc:  # zarr raises several types for a missing or bad store
        raise Mat2GradError(f"{path}: cannot read as a zarr array ({exc})") from None
    chunks = {ax: -1 for ax in range(1, arr.ndim)}
    if block is not None:
        chunks[0] = _block(block)
    return arr.rechunk(chunks)


def samples_of(x: Any, block: int | None = None) -> da.Array:
    """One batch-first input as a dask array chunked along samples only (axis 0): a dask
    array is rechunked where it is split along another axis; anything else is wrapped."""
    if not isinstance(x, da.Array):
        x = np.asarray(x)
        x = da.from_array(x, chunks=(_block(block or DEFAULT_BLOCK),) + (-1,) * (x.ndim - 1))
    if x.ndim < 1 or x.shape[0] == 0 or any(math.isnan(n) for n in x.shape):
        raise Mat2GradError(
            f"inputs must be batch-first arrays (Q, ...) of known, non-zero size; found "
            f"shape {x.shape} (call .compute_chunk_sizes() on arrays of unknown size)"
        )
    want = {ax: -1 for ax in range(1, x.ndim) if len(x.chunks[ax]) > 1}
    if block is not None:
        want[0] = _block(block)
    return x.rechunk(want) if want else x


def block_for(bytes_per_sample: float) -> int:
    """Samples per block whose results take about :data:`BLOCK_BYTES`: the nearest power
    of two, from 2^10 to 2^20."""
    n = BLOCK_BYTES / max(float(bytes_per_sample), 1.0)
    return int(2 ** min(20, max(10, round(math.log2(n)))))


def aligned(xs: Sequence[da.Array]) -> list[da.Array]:
    """The inputs with the first one's sample chunks (one sample count for all)."""
    q = xs[0].shape[0]
    for j, x in enumerate(xs):
        if x.shape[0] != q:
            raise Mat2GradError(
                f"every input needs the same number of samples; input 1 has {q} and input "
                f"{j + 1} has {x.shape[0]}"
            )
    return [xs[0]] + [x.rechunk({0: xs[0].chunks[0]}) for x in xs[1:]]


def first_samples(xs: Sequence[da.Array]) -> list[np.ndarray]:
    """The first sample of each input, here on the client (one round trip, with whatever
    scheduler is active: an array persisted on a cluster is only there)."""
    return [np.asarray(x) for x in dask.compute(*[x[:1] for x in xs])]


def _block(block: int) -> int:
    if not isinstance(block, int | np.integer) or block < 1:
        raise Mat2GradError(f"block (samples per block) must be a whole number >= 1: {block!r}")
    return int(block)
