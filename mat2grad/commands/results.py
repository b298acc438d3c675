"""Where a command's results go: a MAT-file (the CLI), or a dict in memory (matlab_api).

A command hands its results over in MATLAB's layout, either whole (:meth:`save`) or sample
chunk by sample chunk (:meth:`stream`, the interface of
:class:`mat2grad.matfile.SampleWriter`), and never knows which of the two receives them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from .. import matfile
from ..contract import to_numpy
from ..errors import Mat2GradError

__all__ = ["FileResults", "MemoryResults", "Results"]


class Results(Protocol):
    """The receiver of a command's results."""

    def save(self, variables: Mapping[str, Any], **how: Any) -> None:
        """Take whole variables; ``how`` is :func:`matfile.write_mat`'s ``compress`` and
        ``format`` (a file's concern)."""

    def stream(self, num_samples: int, variables: Mapping[str, Any], **how: Any) -> Any:
        """A context manager taking per-sample variables chunk by chunk: the arguments
        (``how``: ``samples``, ``format``) and the ``write(start, values)`` of
        :class:`matfile.SampleWriter`."""


class FileResults:
    """Results written atomically to the MAT-file ``path``."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = path

    def save(self, variables: Mapping[str, Any], **how: Any) -> None:
        matfile.write_mat(self.path, variables, **how)

    def stream(
        self, num_samples: int, variables: Mapping[str, Any], **how: Any
    ) -> matfile.SampleWriter:
        return matfile.SampleWriter(self.path, num_samples, variables, **how)


class MemoryResults:
    """Results kept in :attr:`variables`, as the MAT-file would hold them (cells as 2-D
    object arrays; streamed variables assembled in MATLAB's layout, float64)."""

    def __init__(self) -> None:
        self.variables: dict[str, Any] = {}

    def save(self, variables: Mapping[str, Any], **how: Any) -> None:
        self.variables.update(variables)

    def stream(
        self,
        num_samples: int,
        variables: Mapping[str, Any],
        *,
        samples: str = "columns",
        **how: Any,
    ) -> _MemoryStream:
        return _MemoryStream(self, num_samples, variables, samples)


class _MemoryStream:
    """:class:`matfile.SampleWriter` into preallocated arrays; they reach the owner's
    variables only when the block completes."""

    # NOTE: [Per-sample results in memory]
    # The placement rule is SampleWriter's: a variable given by its per-sample shape d has
    # its sample index last (samples "columns": d x Q) or first ("rows": Q x d); a
    # SampleBlock(shape, axis) puts it at MATLAB axis `axis`. A chunk (c, *shape) lands at
    # samples start:start+c of that axis.

    def __init__(
        self, owner: MemoryResults, num_samples: int, variables: Mapping[str, Any], samples: str
    ):
        if samples not in matfile.SAMPLES:
            raise Mat2GradError(f"samples must be 'columns' or 'rows', not '{samples}'")
        self.owner = owner
        self.q = int(num_samples)
        self.blocks: dict[str, Any] = {}
        self.arrays: dict[str, Any] = {}
        for name, spec in variables.items():
            if isinstance(spec, list):  # a cell: numOutputs x numInputs blocks
                blocks = np.empty((len(spec), len(spec[0])), dtype=object)
                arrays = np.empty(blocks.shape, dtype=object)
                for (k, j), _ in np.ndenumerate(blocks):
                    blocks[k, j] = _block(spec[k][j], samples)
                    arrays[k, j] = np.empty(blocks[k, j].dims(self.q))
            else:
                blocks = _block(spec, samples)
                arrays = np.empty(blocks.dims(self.q))
            self.blocks[name], self.arrays[name] = blocks, arrays

    def write(self, start: int, values: Mapping[str, Any]) -> None:
        for name, value in values.items():
            blocks, arrays = self.blocks[name], self.arrays[name]
            if isinstance(blocks, np.ndarray):
                for (k, j), block in np.ndenumerate(blocks):
                    _place(arrays[k, j], block, start, value[k][j])
            else:
                _place(arrays, blocks, start, value)

    def __enter__(self) -> _MemoryStream:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.owner.variables.update(self.arrays)


def _block(spec: Any, samples: str) -> matfile.SampleBlock:
    """A variable's per-sample shape (or SampleBlock) as a SampleBlock.
    See NOTE: [Per-sample results in memory]"""
    if isinstance(spec, matfile.SampleBlock):
        return spec
    shape = tuple(int(d) for d in spec)
    return matfile.SampleBlock(shape, len(shape or (1,)) if samples == "columns" else 0)


def _place(array: np.ndarray, block: matfile.SampleBlock, start: int, chunk: Any) -> None:
    """Copy a batch-first chunk ``(c, *block.shape)`` into ``array`` at samples
    ``start:start+c``. See NOTE: [Per-sample results in memory]"""
    arr = np.asarray(to_numpy(chunk), dtype=np.float64)
    c = arr.shape[0]
    at = (slice(None),) * block.axis + (slice(start, start + c),)
    array[at] = np.moveaxis(arr.reshape(c, *(block.shape or (1,))), 0, block.axis)
