"""Per-sample results assembled in memory in MATLAB's layout: :class:`ArrayWriter` takes the
variables and chunks a :class:`~mat2grad.matfile.SampleWriter` takes, and hands over the
arrays the MAT-file would hold; and the nested lists by which a result with several outputs
or inputs is given to either writer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from .layout import SampleBlock, check_samples, float64_numpy

__all__ = ["ArrayWriter", "output_cell", "result_cell", "sample_block"]

T = TypeVar("T")


def result_cell(blocks: Sequence[Sequence[T]]) -> T | list[list[T]]:
    """numOutputs x numInputs blocks as a writer variable: the block itself where there is
    one output and one input, else the nested lists of a numOutputs x numInputs cell."""
    if len(blocks) == 1 and len(blocks[0]) == 1:
        return blocks[0][0]
    return [list(row) for row in blocks]


def output_cell(items: Sequence[T]) -> T | list[list[T]]:
    """One block per output as a writer variable: the block itself for one output, else
    the nested lists of a numOutputs x 1 cell."""
    if len(items) == 1:
        return items[0]
    return [[item] for item in items]


def sample_block(spec: Any, samples: str) -> SampleBlock:
    """A variable's per-sample shape (or :class:`SampleBlock`) as a SampleBlock: the sample
    index last (``samples="columns"``: ``d x Q``) or first (``"rows"``: ``Q x d``). See NOTE:
    [MATLAB layout of per-sample results]."""
    if isinstance(spec, SampleBlock):
        return spec
    shape = tuple(int(d) for d in spec)
    return SampleBlock(shape, len(shape or (1,)) if samples == "columns" else 0)


def place_chunk(array: np.ndarray, block: SampleBlock, start: int, chunk: Any) -> None:
    """Copy a batch-first chunk ``(c, *block.shape)`` into ``array`` (``block.dims(Q)``) at
    samples ``start:start+c`` of its sample axis."""
    arr = float64_numpy(chunk)
    c = arr.shape[0]
    at = (slice(None),) * block.axis + (slice(start, start + c),)
    array[at] = np.moveaxis(arr.reshape(c, *(block.shape or (1,))), 0, block.axis)


class ArrayWriter:
    """:class:`~mat2grad.matfile.SampleWriter`'s interface, into preallocated float64 arrays
    (a cell as a 2-D object array of them) that reach ``commit`` only when the ``with``
    block completes.

    Args:
        num_samples: Q.
        variables: name -> per-sample shape, :class:`SampleBlock`, or a 2-D nested list of
            them for a cell (numOutputs x numInputs).
        samples: "columns" or "rows", as for SampleWriter.
        commit: receives ``{name: array or cell}`` at the end of a successful block.
    """

    def __init__(
        self,
        num_samples: int,
        variables: Mapping[str, Any],
        *,
        samples: str = "columns",
        commit: Callable[[dict[str, Any]], None],
    ):
        check_samples(samples)
        self.commit = commit
        self.q = int(num_samples)
        self.blocks: dict[str, Any] = {}
        self.arrays: dict[str, Any] = {}
        for name, spec in variables.items():
            if isinstance(spec, list):  # a cell: numOutputs x numInputs blocks
                blocks = np.empty((len(spec), len(spec[0])), dtype=object)
                arrays = np.empty(blocks.shape, dtype=object)
                for (k, j), _ in np.ndenumerate(blocks):
                    blocks[k, j] = sample_block(spec[k][j], samples)
                    arrays[k, j] = np.empty(blocks[k, j].dims(self.q))
            else:
                blocks = sample_block(spec, samples)
                arrays = np.empty(blocks.dims(self.q))
            self.blocks[name], self.arrays[name] = blocks, arrays

    def write(self, start: int, values: Mapping[str, Any]) -> None:
        """Place samples ``start:start+c`` of each variable (``(c, *d)`` arrays or tensors,
        nested lists ``[k][j]`` of them for a cell)."""
        for name, value in values.items():
            blocks, arrays = self.blocks[name], self.arrays[name]
            if isinstance(blocks, np.ndarray):
                for (k, j), block in np.ndenumerate(blocks):
                    place_chunk(arrays[k, j], block, start, value[k][j])
            else:
                place_chunk(arrays, blocks, start, value)

    def __enter__(self) -> ArrayWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.commit(self.arrays)
