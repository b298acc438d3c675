"""Where a command's results go: a MAT-file (the CLI), or a dict in memory (matlab_api).

A command hands its results over in MATLAB's layout, either whole (:meth:`save`) or sample
chunk by sample chunk (:meth:`stream`, the interface of
:class:`mat2grad.matfile.SampleWriter`), and never knows which of the two receives them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Protocol

from .. import matfile

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
    object arrays; streamed variables assembled in MATLAB's layout, float64, by
    :class:`matfile.ArrayWriter`)."""

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
    ) -> matfile.ArrayWriter:
        return matfile.ArrayWriter(
            num_samples, variables, samples=samples, commit=self.variables.update
        )
