"""Evaluating a loaded network on data: ``mat2grad.predict``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .budget import budget_chunk, empty, forward_bytes_per_sample, ranges
from .contract import (
    Contract,
    closed_form_of,
    contract_of,
    model_dtype,
    model_dtype_device,
    on_device,
    parse_device,
    to_numpy,
)
from .errors import Mat2GradError, refuse_out_of_memory

__all__ = [
    "predict",
    "predict_arrays",
    "as_batch",
    "as_batches",
    "float_tensor",
    "integer_tensor",
    "numeric_tensor",
    "sample_count",
    "check_sample_shape",
]


def as_batch(
    model: nn.Module,
    x: Any,
    index: int = 0,
    contract: Contract | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """A numpy array or tensor -> a tensor in the model's dtype, batch-first ``(Q, *shape)``.

    A single sample (``x.shape == input_shape``) is accepted and given a batch of 1.
    ``None`` in the model's ``input_shapes`` (a time axis, a dimension an ONNX file leaves
    symbolic) matches any size. Inputs the model declares non-floating (``input_float``,
    e.g. the int64 indices of an ONNX model) keep an integer dtype (whole-valued floats
    become int64); all others take the model's float dtype. ``contract`` and ``dtype``,
    where given, are the model's (read once by callers that convert several inputs).
    """
    contract = contract or contract_of(model)
    dtype = dtype or model_dtype(model)
    if contract.integer_inputs(index + 1)[index]:
        t = integer_tensor(x, f"input {index + 1}")
    elif isinstance(x, Tensor):
        numeric_tensor(x, f"input {index + 1}")  # refuses complex tensors
        t = x.to(dtype)
    else:
        t = float_tensor(x, dtype, f"input {index + 1}")
    shape = _declared(contract)[index]
    if _matches(tuple(t.shape), shape):
        t = t.unsqueeze(0)
    check_sample_shape(t, shape, index)
    return t


def check_sample_shape(t: Tensor, shape: tuple[int | None, ...], index: int) -> None:
    """Refuse a batch ``t`` whose per-sample shape is not the declared ``shape`` (``None``
    matches any size), e.g. a 3-D array given to a network that takes ``(Q, R)``."""
    if not _matches(tuple(t.shape[1:]), shape):
        dims = ", ".join("TS" if n is None else str(n) for n in shape)
        raise Mat2GradError(
            f"input {index + 1} has shape {tuple(t.shape)}; the network takes "
            f"(Q, {dims}) (batch first: one sample per row)"
        )


def numeric_tensor(x: Any, what: str) -> Tensor:
    """A tensor (detached) or a numeric array-like as a tensor of its own dtype."""
    if isinstance(x, Tensor):
        if x.is_complex():
            raise Mat2GradError(f"{what}: expected a real numeric array, found dtype {x.dtype}")
        return x.detach()
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError):
        raise Mat2GradError(f"{what}: expected a numeric array, found {type(x).__name__}") from None
    if arr.dtype.kind not in "biuf":
        raise Mat2GradError(f"{what}: expected a numeric array, found dtype {arr.dtype}")
    return torch.from_numpy(np.ascontiguousarray(arr))


def float_tensor(x: Any, dtype: torch.dtype, what: str) -> Tensor:
    """A tensor (detached) or a numeric array-like as a floating tensor of ``dtype``."""
    return numeric_tensor(x, what).to(dtype)


def integer_tensor(x: Any, what: str) -> Tensor:
    """An integer input (ONNX indices, counts) as an integer tensor: integer and boolean
    arrays keep their dtype; floats must be whole numbers and become int64."""
    t = numeric_tensor(x, what)
    if t.is_floating_point():
        if not bool(torch.isfinite(t).all()) or not bool((t == t.round()).all()):
            raise Mat2GradError(
                f"{what} is an integer input of the model, but holds values that are not "
                "whole numbers"
            )
        t = t.to(torch.int64)
    return t


def _matches(actual: tuple[int, ...], shape: tuple[int | None, ...]) -> bool:
    """``actual`` fits ``shape``, where None (a dynamic network's time axis) is any size."""
    if len(actual) != len(shape):
        return False
    return all(n is None or a == n for a, n in zip(actual, shape, strict=True))


def as_batches(model: nn.Module, parts: Sequence[Any]) -> tuple[Tensor, ...]:
    """One array per network input -> batch-first tensors (see :func:`as_batch`), checked
    for the number of inputs and a common, non-zero number of samples."""
    contract, dtype = contract_of(model), model_dtype(model)
    n = len(_declared(contract))
    if len(parts) != n:
        raise Mat2GradError(
            f"the network has {n} input(s); pass one batch-first array per input, found "
            f"{len(parts)}"
        )
    xs = tuple(as_batch(model, xj, j, contract, dtype) for j, xj in enumerate(parts))
    sample_count(xs)
    return xs


def sample_count(xs: Sequence[Tensor]) -> int:
    """The common, non-zero number of samples (first dimension) of batch-first inputs."""
    q = xs[0].shape[0]
    for j, xj in enumerate(xs):
        if xj.shape[0] != q:
            raise Mat2GradError(
                f"every input needs the same number of samples (rows, batch first); input 1 "
                f"has {q} and input {j + 1} has {xj.shape[0]}"
            )
    if q == 0:
        raise Mat2GradError("no samples: the inputs have 0 rows")
    return q


def _declared(contract: Contract) -> tuple[tuple[int | None, ...], ...]:
    """The model's per-sample input shapes (the model contract), which predict needs."""
    if contract.input_shapes is None:
        raise Mat2GradError(
            f"{contract.name}: predict needs the model's per-sample input shapes "
            "(input_shapes); use a network from mat2grad.load, or call the module directly"
        )
    return contract.input_shapes


@refuse_out_of_memory
def predict(
    model: nn.Module,
    *x: Any,
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
) -> Tensor | tuple[Tensor, ...]:
    """Evaluate ``model`` on batch-first inputs without building an autograd graph.

    Samples are evaluated in chunks sized by the same working-set budget as the Jacobian
    (about 32 MB per chunk, see :mod:`mat2grad.budget`) and written into one preallocated
    result, so memory beyond the inputs and outputs stays flat in Q, also for image models.

    Args:
        model: a network from :func:`mat2grad.load`.
        *x: one array per network input, ``(Q, R_j)`` (numpy or torch); for a dynamic
            network ``(Q, TS, R_j)`` sequences, simulated from zero delay states (for
            states, ``preparets`` and closed loops see :mod:`mat2grad.dynamic`).
        chunk_size: samples per chunk (default: from the working-set budget).
        device: compute device, e.g. ``"cuda"`` (default: the model's); the results land
            on the device of the first input (CPU for numpy inputs).

    Returns:
        ``(Q, S)`` (dynamic: ``(Q, TS, S)``) for one output, else a tuple, in the model's
        dtype (float64 by default).

    Raises:
        Mat2GradError: malformed inputs, a bad ``chunk_size``, or a model whose outputs
            are not batch-first.

    Example:
        >>> y = mat2grad.predict(net, np.random.rand(100, 16))   # doctest: +SKIP
        >>> assert y.shape == (100, 1)
    """
    batch = as_batches(model, x)
    q = batch[0].shape[0]
    whole = isinstance(chunk_size, int | np.integer) and not isinstance(chunk_size, bool)
    if chunk_size is not None and (not whole or chunk_size < 1):
        raise Mat2GradError(f"chunk_size must be a whole number >= 1, found {chunk_size!r}")
    model = on_device(model, parse_device(device))
    home, result = model_dtype_device(model)[1], batch[0].device
    if any(t.device != home for t in batch):
        batch = tuple(t.to(home) for t in batch)
    outs = _outputs(model, batch, q, chunk_size)
    if result == home:
        return outs
    if isinstance(outs, tuple):
        return tuple(o.to(result) for o in outs)
    return outs.to(result)


def _outputs(model: nn.Module, batch: Sequence[Tensor], q: int, chunk_size: int | None) -> Any:
    """The outputs on the model's device, chunk by chunk (see :func:`predict`)."""
    with torch.no_grad():
        plan, _ = closed_form_of(model, tuple(range(len(batch))))
        if plan is not None:  # a static shallow network: the closed form's forward pass
            size = chunk_size or budget_chunk(plan.forward_bytes_per_sample, q)
            return _closed_form_outputs(plan, batch, q, int(size))
        if chunk_size is None:
            # a handful of samples fits any budget: skip measuring the model
            small = q <= _UNMEASURED
            chunk_size = q if small else budget_chunk(forward_bytes_per_sample(model, batch), q)
        if chunk_size >= q:
            return model(*batch)
        return _chunked(model, batch, q, int(chunk_size))


#: batches of at most this many samples are evaluated whole, without measuring the model
_UNMEASURED = 64


def _closed_form_outputs(plan: Any, batch: Sequence[Tensor], q: int, size: int) -> Any:
    """The outputs of a closed-form plan (``ClosedForm.outputs``), ``size`` samples at a
    time, into one result per output: the very values the Jacobian returns with them."""
    like = batch[0]
    outs = [empty((q, out.size), like.dtype, like.device) for out in plan.spec.outputs]
    try:
        for a, b in ranges(q, size):
            plan.outputs([t[a:b] for t in batch], [o[a:b] for o in outs])
    finally:
        plan.release()
    return tuple(outs) if len(outs) > 1 else outs[0]


def _chunked(model: nn.Module, batch: Sequence[Tensor], q: int, size: int) -> Any:
    """The model on ``size`` samples at a time, each chunk written into one result."""
    outs: list[Tensor] = []
    several = False
    for a, b in ranges(q, size):
        got = model(*[t[a:b] for t in batch])
        several = isinstance(got, tuple | list)
        ys = tuple(got) if several else (got,)
        if not outs:
            for k, y in enumerate(ys):
                if not isinstance(y, Tensor) or y.ndim == 0 or y.shape[0] != b - a:
                    raise Mat2GradError(
                        f"{contract_of(model).name}: output {k + 1} is not batch-first "
                        f"(found {getattr(y, 'shape', type(y).__name__)} for a chunk of "
                        f"{b - a} samples)"
                    )
                outs.append(empty((q, *y.shape[1:]), y.dtype, y.device))
        for o, y in zip(outs, ys, strict=True):
            o[a:b].copy_(y)
    return tuple(outs) if several else outs[0]


def predict_arrays(model: nn.Module, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """:func:`predict` for numpy ``(Q, R_j)`` arrays; returns float64 ``(Q, S_k)`` arrays."""
    y = predict(model, *inputs)
    outs = y if isinstance(y, tuple) else (y,)
    return [to_numpy(o.to(torch.float64)) for o in outs]
