"""The per-call setup every derivative shares: argument checks, the model in the compute
dtype/device, the inputs as batch-first tensors, the shapes, and the model frozen (eval
mode, no parameter gradients) for the duration of the call."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..contract import Contract, contract_of, model_dtype_device, on_device, parse_device
from ..errors import Mat2GradError
from ..predict import check_sample_shape, integer_tensor, numeric_tensor, sample_count

__all__ = ["ZeroDerivativeWarning", "Nested"]


class ZeroDerivativeWarning(UserWarning):
    """The network contains functions whose derivative is zero almost everywhere
    (hardlim, hardlims, compet): Jacobians through them are exactly zero by construction."""


#: one tensor (one output, one input) or ``J[k][j]``, a tuple per output of tuples per input
Nested = Tensor | tuple[tuple[Tensor, ...], ...]


@dataclass
class Setup:
    """One call's model (in the compute dtype/device), inputs, shapes and selection."""

    model: nn.Module
    xs: list[Tensor]  # on the compute device, in the compute dtype
    q: int
    wrt: tuple[int, ...]
    in_shapes: tuple[tuple[int, ...], ...]
    out_shapes: tuple[tuple[int, ...], ...]
    tuple_output: bool  # the model returns a tuple (several outputs)
    dtype: torch.dtype
    device: torch.device
    result_device: torch.device
    contract: Contract
    name: str = "the model"
    restore: list[Callable[[], None]] = field(default_factory=list)

    def numel_in(self, j: int) -> int:
        return math.prod(self.in_shapes[j])

    def numel_out(self, k: int) -> int:
        return math.prod(self.out_shapes[k])

    def state_key(self, xs: list[Tensor], batch: bool) -> tuple:
        """What a result measured or checked on the model depends on: the same module
        objects in the same modes, the compute dtype, the inputs differentiated, and the
        chunk's shapes (with its number of samples where ``batch``)."""
        return (
            tuple((id(m), m.training) for m in self.model.modules()),
            self.dtype,
            self.wrt,
            tuple(tuple(x.shape if batch else x.shape[1:]) for x in xs),
        )


def _check_differentiable(contract: Contract, warn: bool = True) -> None:
    reason, name = contract.not_differentiable, contract.name
    if reason:
        raise Mat2GradError(
            f"{name}: gradients with respect to the inputs are not defined: "
            f"{reason.removeprefix(f'{name}: ')}"
        )
    zero = contract.zero_derivative
    if zero and warn:
        warnings.warn(
            ZeroDerivativeWarning(
                f"{name}: the derivative of {', '.join(zero)} is zero almost "
                "everywhere, so the Jacobian through it is zero by construction"
            ),
            stacklevel=3,
        )


def as_tensor(
    x: Any, j: int, dtype: torch.dtype, device: torch.device, integer: bool = False
) -> Tensor:
    """Input (or vector) ``j`` as a tensor on ``device``: floating in ``dtype``, or, for an
    input the model declares non-floating, integer."""
    if integer:
        return integer_tensor(x, f"input {j + 1}").to(device=device)
    t = numeric_tensor(x, f"input {j + 1}")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    return t.to(device=device, dtype=dtype)


def as_tuple(y: Any) -> tuple[Tensor, ...]:
    """A model's return value as a tuple with one tensor per output."""
    return tuple(y) if isinstance(y, tuple | list) else (y,)


def nest(blocks: list[list[Tensor]]) -> Nested:
    """``blocks[k][j]`` as the result convention: one tensor for one block, else
    a tuple per output of tuples per input."""
    if len(blocks) == 1 and len(blocks[0]) == 1:
        return blocks[0][0]
    return tuple(tuple(row) for row in blocks)


def as_outputs(setup: Setup, outs: list[Tensor]) -> Tensor | tuple[Tensor, ...]:
    """Per-output tensors in the model's own return convention."""
    return tuple(outs) if setup.tuple_output else outs[0]


def _selection(
    wrt: int | Sequence[int] | None, integer: tuple[bool, ...], name: str
) -> tuple[int, ...]:
    n_inputs = len(integer)
    if wrt is None:
        sel = tuple(j for j in range(n_inputs) if not integer[j])
        if not sel:
            raise Mat2GradError(f"{name}: no floating inputs to differentiate")
        return sel
    sel = (wrt,) if isinstance(wrt, int) else tuple(wrt)
    if not sel or any(not isinstance(j, int) or not 0 <= j < n_inputs for j in sel):
        raise Mat2GradError(f"wrt must name inputs 0..{n_inputs - 1} (0-based), found {wrt!r}")
    if len(set(sel)) != len(sel):
        raise Mat2GradError(f"wrt names an input twice: {wrt!r}")
    if any(integer[j] for j in sel):
        bad = next(j for j in sel if integer[j])
        raise Mat2GradError(
            f"{name}: input {bad + 1} is an integer input; only floating inputs can be "
            "differentiated"
        )
    return sel


def setup_call(
    model: nn.Module,
    xs: Sequence[Any],
    *,
    dtype: torch.dtype | None,
    device: str | torch.device | None,
    wrt: int | Sequence[int] | None,
    warn: bool = True,
) -> Setup:
    """Check the arguments and prepare one call (the model is frozen: use :func:`session`)."""
    if not isinstance(model, nn.Module):
        raise Mat2GradError(
            f"expected a torch.nn.Module (e.g. from mat2grad.load), found {type(model).__name__}"
        )
    if not xs:
        raise Mat2GradError("no inputs given: pass one batch-first array per network input")
    contract = contract_of(model)
    _check_differentiable(contract, warn)
    model_dtype, model_device = model_dtype_device(model)
    dtype = dtype or model_dtype
    if dtype not in (torch.float64, torch.float32):
        raise Mat2GradError(f"dtype must be torch.float64 or torch.float32, not {dtype}")
    device = parse_device(device) or model_device
    moved = on_device(model, device, dtype)
    if moved is not model:
        model, contract = moved, contract_of(moved)
    first = xs[0]
    result_device = first.device if isinstance(first, Tensor) else torch.device("cpu")
    integer = contract.integer_inputs(len(xs))
    tensors = [as_tensor(x, j, dtype, device, integer[j]) for j, x in enumerate(xs)]

    declared = contract.input_shapes
    for j, t in enumerate(tensors):
        # a single sample shaped exactly like the declared per-sample shape: a batch of one
        if declared is not None and j < len(declared) and tuple(t.shape) == declared[j]:
            tensors[j] = t = t.unsqueeze(0)
        if t.ndim == 0:
            raise Mat2GradError(f"input {j + 1} is a scalar; pass a batch-first array (Q, ...)")
        if declared is not None and j < len(declared) and t.ndim != len(declared[j]) + 1:
            check_sample_shape(t, declared[j], j)  # e.g. (1, Q, R) for a (Q, R) network
    q = sample_count(tensors)
    setup = Setup(
        model=model,
        xs=tensors,
        q=q,
        wrt=_selection(wrt, integer, contract.name),
        in_shapes=tuple(tuple(t.shape[1:]) for t in tensors),
        out_shapes=(),
        tuple_output=False,
        dtype=dtype,
        device=device,
        result_device=result_device,
        contract=contract,
        name=contract.name,
    )
    freeze(setup)
    declared_out = contract.output_shapes
    if declared is not None and declared_out and declared == setup.in_shapes:
        # the model declares its shapes (the model contract) and the inputs match them
        setup.tuple_output = len(declared_out) > 1
        setup.out_shapes = declared_out  # type: ignore[assignment]  # no None: they match
        return setup
    try:  # otherwise the shapes come from evaluating one sample
        with torch.no_grad():
            probe = model(*[t[:1] for t in tensors])
    except Mat2GradError:
        unfreeze(setup)
        raise
    except Exception as exc:
        unfreeze(setup)
        raise Mat2GradError(
            f"{setup.name}: evaluating the model on inputs of shape "
            f"{[tuple(t.shape[1:]) for t in tensors]} (per sample) failed: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    setup.tuple_output = isinstance(probe, tuple | list)
    outs = tuple(probe) if setup.tuple_output else (probe,)
    for k, o in enumerate(outs):
        if not isinstance(o, Tensor) or o.ndim == 0 or o.shape[0] != 1:
            unfreeze(setup)
            raise Mat2GradError(
                f"{setup.name}: output {k + 1} is not batch-first (found "
                f"{getattr(o, 'shape', type(o).__name__)} for a batch of 1)"
            )
    setup.out_shapes = tuple(tuple(o.shape[1:]) for o in outs)
    return setup


def freeze(setup: Setup) -> None:
    """Eval mode and no parameter gradients for the duration of the computation."""
    model = setup.model
    was_training = model.training
    frozen = [p for p in model.parameters() if p.requires_grad]
    model.eval()
    for p in frozen:
        p.requires_grad_(False)

    def restore() -> None:
        for p in frozen:
            p.requires_grad_(True)
        if was_training:  # eval() above already left an eval-mode model as it was
            model.train(True)

    setup.restore.append(restore)


def unfreeze(setup: Setup) -> None:
    """Undo every :func:`freeze` of ``setup``, latest first."""
    while setup.restore:
        setup.restore.pop()()


@contextlib.contextmanager
def session(setup: Setup) -> Iterator[Setup]:
    """The model stays frozen inside the block and is restored on leaving it."""
    try:
        yield setup
    finally:
        unfreeze(setup)
