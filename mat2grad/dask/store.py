"""Results written block by block, never gathered whole on the client, and atomically: a
zarr store is written under a temporary name beside the target and renamed at the end; a
MAT-file goes through :class:`mat2grad.matfile.SampleWriter` (a temporary file renamed by its
commit). An interrupted job leaves no result behind.

NOTE: [Blocks written where they are computed]
    Arrays made by :func:`mat2grad.dask.predict` or :func:`~mat2grad.dask.jacobian` carry
    how their blocks are computed (:class:`~.compute.Blocks`). Given such arrays (all from
    one call, blocks of equal size), :func:`to_zarr` runs one task per block that computes
    it and writes its results into the store, instead of one task computing the block and
    one more per array writing it: the block's results never wait in a worker's memory
    for a writer, are not counted and handed between tasks, and the scheduler sees a third
    of the tasks. The values written are the same (the same function on the same blocks);
    any other array (a slice of J, a sum) is written by :func:`dask.array.to_zarr`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np

from ..errors import Mat2GradError
from ..matfile.stream import SampleWriter
from .compute import Blocks, recipe_of

__all__ = ["compute", "to_mat", "to_zarr"]


def _client() -> Any:
    """The active ``distributed.Client``, or None (threads)."""
    try:
        from distributed import get_client
    except ImportError:  # pragma: no cover - the dask extra installs it
        return None
    try:
        return get_client()
    except ValueError:
        return None


def compute(*collections: Any, progress: bool | None = None) -> tuple[Any, ...]:
    """``dask.compute`` with Dask's own progress bar (``progress=None``: on terminals only):
    the distributed one under a client, the local one otherwise."""
    show = sys.stderr.isatty() if progress is None else progress
    client = _client()
    if client is not None:
        futures = client.compute(list(collections))
        if show:
            from distributed import progress as bar

            bar(futures)
        return tuple(client.gather(futures))
    ctx: Any = contextlib.nullcontext()
    if show:
        from dask.diagnostics import ProgressBar

        ctx = ProgressBar(out=sys.stderr)
    with ctx:
        return dask.compute(*collections)


@contextlib.contextmanager
def _atomic_dir(target: Path) -> Iterator[Path]:
    """A temporary folder beside ``target``, renamed to it when the block completes and
    removed when it fails; an existing ``target`` is replaced only then."""
    folder = target.parent
    if not folder.is_dir():
        raise Mat2GradError(f"{target}: the folder {folder} does not exist; create it first")
    tmp = folder / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        yield tmp
        if target.exists():
            old = folder / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():  # the job failed after writing some chunks
            _remove_settled(tmp)


def _remove_settled(tmp: Path, quiet: float = 0.2, limit: float = 10.0) -> None:
    """Remove ``tmp`` and keep removing it until it has stayed absent for ``quiet`` seconds
    (at most ``limit``): when one task of a job fails, the scheduler raises at once while
    tasks already running still write their chunks, recreating the folder behind us."""
    deadline = time.monotonic() + limit
    absent_since: float | None = None
    while time.monotonic() < deadline:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
            absent_since = None
        elif absent_since is None:
            absent_since = time.monotonic()
        elif time.monotonic() - absent_since >= quiet:
            return
        time.sleep(0.02)


def _is_regular(sizes: tuple[int, ...]) -> bool:
    """Equal blocks along samples (the last may be smaller), as a zarr array's chunks are."""
    return len(set(sizes[:-1])) <= 1 and sizes[-1] <= sizes[0]


def _regular(x: da.Array) -> da.Array:
    """``x`` with regular blocks (:func:`_is_regular`): uneven ones rechunked to the largest."""
    return x if _is_regular(x.chunks[0]) else x.rechunk({0: max(x.chunks[0])})


def to_zarr(
    path: str | os.PathLike[str],
    arrays: Mapping[str, da.Array],
    *,
    compress: bool = False,
    progress: bool | None = None,
) -> Path:
    """Write ``arrays`` (name -> batch-first dask array) as the arrays of one zarr group at
    ``path``, block by block on the workers (who need ``path`` on a shared file system).

    ``compress=False`` (the default) stores raw chunks: float64 derivatives barely compress,
    and zarr's default compressor measured 4.6x the Jacobian's own time per block (the
    10-20-3 network, one thread); ``True`` keeps zarr's default codec.

    Returns:
        The store's path, which appears only once every block is written.

    Example:
        >>> J, Y = mat2grad.dask.jacobian("net.mat", x, return_outputs=True)  # doctest: +SKIP
        >>> to_zarr("J.zarr", {"J": J, "Y": Y})      # zarr.open("J.zarr")["J"][q] is J[q]
    """
    target = Path(path).absolute()
    _names(arrays, target)
    codec: dict[str, Any] = {} if compress else {"compressors": None}
    # every block is written as it is: zarr's check for blocks equal to the fill value
    # (skipped when they are) reads each block once more, a fifth of its write time
    codec["config"] = {"write_empty_chunks": True}
    fused = _fused(arrays)
    with _atomic_dir(target) as tmp:
        if fused is None:
            writes = [
                da.to_zarr(_regular(x), str(tmp), component=name, compute=False, **codec)
                for name, x in arrays.items()
            ]
        else:
            writes = _fused_writes(tmp, arrays, *fused, codec)
        compute(*writes, progress=progress)
    return target


def _fused(arrays: Mapping[str, da.Array]) -> tuple[Blocks, list[int]] | None:
    """The recipe shared by every array and each array's place in its results, where the
    blocks can be written where they are computed (see NOTE: [Blocks written where they
    are computed]); else None."""
    found = [f for f in (recipe_of(x) for x in arrays.values()) if f is not None]
    if len(found) < len(arrays) or len({id(recipe) for recipe, _ in found}) != 1:
        return None  # an array of its own, or arrays of several calls
    recipe = found[0][0]
    if not _is_regular(recipe.xs[0].chunks[0]):
        return None  # uneven blocks: the other way rechunks them
    return recipe, [place for _, place in found]


def _fused_writes(
    tmp: Path, arrays: Mapping[str, da.Array], recipe: Blocks, picks: list[int], codec: Any
) -> list[Any]:
    """The zarr arrays created at ``tmp`` (as :func:`dask.array.to_zarr` creates them),
    and one task per block that computes it and writes its results."""
    import zarr

    group = zarr.open_group(str(tmp), mode="w")
    sizes = recipe.xs[0].chunks[0]
    targets = [
        group.create_array(
            name, shape=x.shape, chunks=(sizes[0], *x.shape[1:]), dtype=x.dtype, **codec
        )
        for name, x in arrays.items()
    ]
    blocks = [x.to_delayed().ravel() for x in recipe.xs]
    task = dask.delayed(_compute_and_write, pure=False)
    starts = np.cumsum((0,) + sizes[:-1])
    return [
        task(recipe.fn, recipe.args, targets, picks, int(a), *[b[i] for b in blocks])
        for i, a in enumerate(starts)
    ]


def _compute_and_write(
    fn: Any, args: tuple[Any, ...], targets: list[Any], picks: list[int], start: int, *blocks: Any
) -> None:
    """One block's results computed and written (a task: the results live only here)."""
    out = fn(*args, *blocks)
    for target, k in zip(targets, picks, strict=True):
        target[start : start + out[k].shape[0]] = out[k]


def to_mat(
    path: str | os.PathLike[str],
    arrays: Mapping[str, da.Array],
    *,
    samples: str = "columns",
    format: str = "v7.3",
    window: int | None = None,
    progress: bool | None = None,
) -> Path:
    """Write ``arrays`` (name -> batch-first dask array ``(Q, *shape)``) into a MAT-file in
    MATLAB's layout (``S x R x Q`` for a Jacobian; see NOTE: [MATLAB layout of per-sample
    results]) through :class:`~mat2grad.matfile.SampleWriter`.

    Blocks are computed ``window`` at a time (default: twice the workers, or the threads)
    and written as they arrive, so the client holds at most ``window`` blocks. ``format``
    is that of the writer (v7.3 for results over 2 GiB, which v7 cannot hold).
    """
    _names(arrays, Path(path))
    xs = list(arrays.values())
    chunks = xs[0].chunks[0]
    for name, x in arrays.items():
        if x.shape[0] != xs[0].shape[0]:
            raise Mat2GradError(f"{path}: '{name}' has {x.shape[0]} samples, not {xs[0].shape[0]}")
    xs = [x.rechunk({0: chunks}) for x in xs]
    shapes = {name: tuple(int(n) for n in x.shape[1:]) for name, x in zip(arrays, xs, strict=True)}
    starts = np.cumsum((0,) + chunks[:-1])
    size = window or 2 * _parallelism()
    blocks = [x.to_delayed().ravel() for x in xs]
    with SampleWriter(path, int(xs[0].shape[0]), shapes, samples=samples, format=format) as w:
        bar = _bar(int(xs[0].shape[0]), progress)
        try:
            for a in range(0, len(chunks), size):
                batch = [[b[i] for b in blocks] for i in range(a, min(a + size, len(chunks)))]
                for i, parts in enumerate(compute(*batch, progress=False)):
                    w.write(int(starts[a + i]), dict(zip(arrays, parts, strict=True)))
                    bar.update(chunks[a + i])
        finally:
            bar.close()
    return Path(path)


def _bar(total: int, progress: bool | None) -> Any:
    from tqdm.auto import tqdm  # function-local: tqdm costs start-up time

    return tqdm(
        total=total,
        desc="written",
        unit="sample",
        unit_scale=True,
        disable=None if progress is None else not progress,
        leave=False,
        file=sys.stderr,
    )


def _parallelism() -> int:
    client = _client()
    if client is not None:
        return max(1, sum(client.nthreads().values()))
    return os.cpu_count() or 1


def _names(arrays: Mapping[str, Any], where: Path) -> None:
    if not arrays:
        raise Mat2GradError(f"{where}: nothing to write (no arrays given)")
    for name, x in arrays.items():
        if not isinstance(x, da.Array):
            raise Mat2GradError(
                f"{where}: '{name}' is a {type(x).__name__}; pass dask arrays (a numpy array "
                "can be written with mat2grad.matfile.write_mat)"
            )
