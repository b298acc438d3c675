"""Evaluating a loaded network on data: ``mat2grad.predict``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .errors import Mat2GradError

__all__ = ["predict", "predict_arrays", "as_batch"]


def as_batch(model: nn.Module, x: Any, index: int = 0) -> Tensor:
    """A numpy array or tensor -> a tensor in the model's dtype, batch-first ``(Q, *shape)``.

    A single sample (``x.shape == input_shape``) is accepted and given a batch of 1.
    """
    dtype = _model_dtype(model)
    if isinstance(x, Tensor):
        t = x.to(dtype)
    else:
        try:
            arr = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise Mat2GradError(
                f"input {index + 1}: expected a numeric array, found {type(x).__name__}"
            ) from None
        t = torch.from_numpy(np.ascontiguousarray(arr)).to(dtype)
    shape = tuple(model.input_shapes[index])
    if tuple(t.shape) == shape:
        t = t.unsqueeze(0)
    if tuple(t.shape[1:]) != shape:
        raise Mat2GradError(
            f"input {index + 1} has shape {tuple(t.shape)}; the network takes "
            f"(Q, {', '.join(map(str, shape))}) (batch first: one sample per row)"
        )
    return t


def predict(model: nn.Module, *x: Any) -> Tensor | tuple[Tensor, ...]:
    """Evaluate ``model`` on batch-first inputs without building an autograd graph.

    Args:
        model: a network from :func:`mat2grad.load`.
        *x: one array per network input, ``(Q, R_j)`` (numpy or torch).

    Returns:
        ``(Q, S)`` for one output, else a tuple, in the model's dtype (float64 by default).

    Example:
        >>> y = mat2grad.predict(net, np.random.rand(100, 16))   # doctest: +SKIP
        >>> assert y.shape == (100, 1)
    """
    batch = [as_batch(model, xj, j) for j, xj in enumerate(x)]
    with torch.no_grad():
        return model(*batch)


def predict_arrays(model: nn.Module, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """:func:`predict` for numpy ``(Q, R_j)`` arrays; returns float64 ``(Q, S_k)`` arrays."""
    y = predict(model, *inputs)
    outs = y if isinstance(y, tuple) else (y,)
    return [o.detach().to(torch.float64).numpy() for o in outs]


def _model_dtype(model: nn.Module) -> torch.dtype:
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.float64
