"""Where an exported file meets MATLAB's layout: ``R x Q`` inputs and ``S x Q`` outputs, one
sample per column, as ``sim(net, X)`` (``matlab_layout=True``), instead of batch-first ``(Q, R)``
/ ``(Q, S)``. See NOTE: [Converted-file layout] in ``mat2grad.export``.

Every transpose of the export path is one of the small functions here, so that the layout has
its one home in :mod:`mat2grad.matfile`; the export package imports them from this module.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import Tensor

from ..errors import Mat2GradError

__all__ = [
    "BATCH_FIRST_TEXT",
    "MATLAB_TEXT",
    "arrays_from_matlab",
    "arrays_to_matlab",
    "batch_axis",
    "check_vector_inputs",
    "data_format",
    "dims_with_batch",
    "example_to_matlab",
    "from_matlab",
    "to_matlab",
]

#: how a file's description states its layout
MATLAB_TEXT = (
    "MATLAB layout: each input R x Q and each output S x Q, one sample per column (as sim(net, X))"
)
BATCH_FIRST_TEXT = (
    "batch-first, features last: each input (Q, R), each output (Q, S), one sample per row"
)


def batch_axis(matlab_layout: bool) -> int:
    """The axis of a file's tensors that holds the samples."""
    return 1 if matlab_layout else 0


def dims_with_batch(shape: Sequence[int | None], matlab_layout: bool) -> list[int | str | None]:
    """A per-sample shape with the batch dimension ``"Q"`` added where the file has it."""
    sizes = [None if n is None else int(n) for n in shape]
    return [*sizes, "Q"] if matlab_layout else ["Q", *sizes]


def data_format(matlab_layout: bool) -> str:
    """MATLAB's data format (``importNetworkFromONNX``) of a vector input or output."""
    return "CB" if matlab_layout else "BC"


def check_vector_inputs(input_shapes: Sequence[Sequence[int | None]]) -> None:
    """The MATLAB layout (features x samples) exists for vector inputs only."""
    for j, shape in enumerate(input_shapes):
        if len(shape) != 1:
            raise Mat2GradError(
                f"input {j + 1} has per-sample shape {tuple(shape)}; the MATLAB layout "
                "(features x samples) applies to vector inputs only"
            )


def from_matlab(x: Tensor) -> Tensor:
    """An ``R x Q`` input as the batch-first ``(Q, R)`` the network takes (in the graph)."""
    return x.transpose(0, 1)


def to_matlab(y: Tensor) -> Tensor:
    """A batch-first ``(Q, S)`` output as ``S x Q`` (in the graph)."""
    return y.transpose(0, 1)


def example_to_matlab(x: Tensor) -> Tensor:
    """A batch-first example input as the ``R x Q`` tensor the exporter traces with."""
    return x.T.contiguous()


def arrays_to_matlab(xs: Sequence[Tensor], matlab_layout: bool) -> list[np.ndarray]:
    """Batch-first inputs as the arrays a runtime feeds the file."""
    return [x.numpy().T.copy() if matlab_layout else x.numpy() for x in xs]


def arrays_from_matlab(ys: Sequence[np.ndarray], matlab_layout: bool) -> list[np.ndarray]:
    """What a runtime returns from the file, batch-first."""
    return [y.T if matlab_layout else y for y in ys]
