"""Per-sample Jacobians: :func:`jacobian` (one preallocated result) and
:func:`jacobian_chunks` (a stream of chunks, for results larger than memory). Both run the
same chunk stream."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import refuse_out_of_memory
from .chunks import alloc_blocks, alloc_like, chunk_loop, guard_independence
from .methods import Plan, choose_plan
from .setup import Nested, Setup, as_outputs, freeze, nest, session, setup_call

__all__ = ["jacobian", "jacobian_chunks", "JacobianChunk", "JacobianChunks"]

#: where a chunk's results go: ``(start, stop) -> (J blocks, outputs)`` for those samples
Buffers = Callable[[int, int], tuple[list[list[Tensor]], list[Tensor]]]


@dataclass
class JacobianChunk:
    """Results for samples ``start:stop``. The tensors are reused for the next chunk: copy
    what you keep."""

    start: int
    stop: int
    jacobian: list[list[Tensor]]  # [output][selected input] (c, *out_k, *in_j)
    outputs: list[Tensor]  # [output] (c, *out_k)


def _stream(
    setup: Setup, plan: Plan, progress: bool | None, buffers: Buffers
) -> Iterator[JacobianChunk]:
    """The Jacobian chunk by chunk (the model must be frozen while it runs); the first
    chunk is checked for independent samples (see NOTE: [Samples are independent])."""

    def alone(xs: list[Tensor]) -> list[Tensor]:
        single = alloc_blocks(setup, 1, setup.device)
        plan.method(xs, single, None)
        return [blk for row in single for blk in row]

    try:
        with chunk_loop(setup.q, plan.chunk, progress, "jacobian") as steps:
            for a, b in steps:
                xs = [x[a:b] for x in setup.xs]
                Jc, Yc = buffers(a, b)
                plan.method(xs, Jc, Yc)
                if a == 0 and plan.mode != "analytic":
                    batched = [blk for row in Jc for blk in row]
                    guard_independence(setup, xs, batched, alone, "Jacobian")
                yield JacobianChunk(a, b, Jc, Yc)
    finally:
        plan.release()


def _workspace(setup: Setup, plan: Plan) -> Buffers:
    """Chunk-sized buffers on the compute device, reused for every chunk."""
    J = alloc_blocks(setup, plan.chunk, setup.device)
    Y = alloc_like(setup, setup.out_shapes, plan.chunk, setup.device)

    def buffers(a: int, b: int) -> tuple[list[list[Tensor]], list[Tensor]]:
        c = b - a
        return [[blk[:c] for blk in row] for row in J], [y[:c] for y in Y]

    return buffers


class JacobianChunks:
    """An iterable of :class:`JacobianChunk` (see :func:`jacobian_chunks`). The shapes are
    known before iterating, so a writer can lay out its file first."""

    def __init__(self, setup: Setup, plan: Plan, progress: bool | None):
        self._setup = setup
        self._plan = plan
        self._progress = progress
        self.num_samples = setup.q
        self.input_shapes = tuple(setup.in_shapes[j] for j in setup.wrt)
        self.output_shapes = setup.out_shapes
        self.wrt = setup.wrt
        self.mode = plan.mode
        self.chunk_size = plan.chunk
        self.dtype = setup.dtype

    @partial(refuse_out_of_memory, name="jacobian_chunks")
    def __iter__(self) -> Iterator[JacobianChunk]:
        setup, plan = self._setup, self._plan
        freeze(setup)
        with session(setup):
            yield from _stream(setup, plan, self._progress, _workspace(setup, plan))


@refuse_out_of_memory
def jacobian_chunks(
    model: nn.Module,
    *x: Any,
    mode: str = "auto",
    chunk_size: int | None = None,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    wrt: int | Sequence[int] | None = None,
) -> JacobianChunks:
    """:func:`jacobian` as a stream of chunks, for results larger than memory.

    Returns an iterable whose ``output_shapes``, ``input_shapes``, ``num_samples``, ``mode``
    (resolved) and ``chunk_size`` are known before iterating; each item is a
    :class:`JacobianChunk` with ``jacobian[k][j]`` ``(c, *out_k, *in_j)`` and
    ``outputs[k]`` ``(c, *out_k)`` for samples ``start:stop``, in buffers that are reused
    for the next chunk. Memory is bounded by the chunk, not by Q.
    """
    setup = setup_call(model, x, dtype=dtype, device=device, wrt=wrt)
    with session(setup):  # __iter__ freezes the model again while it runs
        how = choose_plan(setup, mode, chunk_size)
    return JacobianChunks(setup, how, progress)


@refuse_out_of_memory
def jacobian(
    model: nn.Module,
    *x: Any,
    mode: str = "auto",
    chunk_size: int | None = None,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    wrt: int | Sequence[int] | None = None,
    return_outputs: bool = False,
) -> Nested | tuple[Nested, Tensor | tuple[Tensor, ...]]:
    """Per-sample Jacobians of the outputs with respect to the inputs.

    Args:
        model: a network from :func:`mat2grad.load`, or any ``nn.Module`` following the
            model contract (batch-first, samples independent).
        *x: one batch-first array per network input, ``(Q, *in_j)`` (numpy or torch). For a
            MATLAB shallow network ``(Q, R)``: raw, unprocessed inputs, one sample per row.
        mode: ``"auto"`` (default: the closed form where the model has one, else reverse
            mode unless outputs outnumber inputs 3 to 1), ``"rev"``, ``"fwd"``, or
            ``"analytic"`` (the closed form; an error where there is none). All agree to
            round-off (1e-13 relative in float64).
        chunk_size: samples per chunk (default: from a ~32 MB working-set budget).
        dtype: compute in ``torch.float64`` or ``torch.float32`` (default: the model's).
        device: compute device (default: the model's); results land on the device of
            the first input (CPU for numpy inputs).
        progress: ``None`` (a bar on terminals for jobs over 2 s), ``True``, ``False``.
        wrt: differentiate with respect to these inputs only (0-based index or indices).
        return_outputs: also return the outputs ``y`` (computed in the same pass).

    Returns:
        ``J`` of shape ``(Q, *out, *in)``, e.g. ``(Q, S, R)`` for a shallow network, with
        ``J[q, s, r] = dy[q, s] / dx[q, r]``; for several outputs or inputs a tuple of
        tuples ``J[k][j]``. With ``return_outputs``, ``(J, y)``.

    Raises:
        Mat2GradError: the model is not differentiable (``not_differentiable``), inputs are
            malformed, the model mixes samples, or ``mode`` is not available.

    Warns:
        ZeroDerivativeWarning: the model contains hardlim/hardlims/compet.

    Example:
        >>> net = mat2grad.load("net.mat")                  # doctest: +SKIP
        >>> J = mat2grad.jacobian(net, np.random.rand(64, 10))
        >>> assert J.shape == (64, 3, 10)                   # (Q, S, R)
    """
    setup = setup_call(model, x, dtype=dtype, device=device, wrt=wrt)
    with session(setup):
        how = choose_plan(setup, mode, chunk_size)
        out = alloc_blocks(setup, setup.q, setup.result_device)
        ys = alloc_like(setup, setup.out_shapes, setup.q, setup.result_device)
        direct = setup.result_device == setup.device
        if direct:  # each chunk is computed straight into its rows of the result

            def buffers(a: int, b: int) -> tuple[list[list[Tensor]], list[Tensor]]:
                return [[blk[a:b] for blk in row] for row in out], [y[a:b] for y in ys]

        else:  # computed on the compute device, then copied to the result's device
            buffers = _workspace(setup, how)
        with contextlib.closing(_stream(setup, how, progress, buffers)) as stream:
            for chunk in stream:
                if not direct:
                    a, b = chunk.start, chunk.stop
                    for row_o, row_c in zip(out, chunk.jacobian, strict=True):
                        for o, blk in zip(row_o, row_c, strict=True):
                            o[a:b].copy_(blk)
                    for o, y in zip(ys, chunk.outputs, strict=True):
                        o[a:b].copy_(y)
    J = nest(out)
    return (J, as_outputs(setup, ys)) if return_outputs else J
