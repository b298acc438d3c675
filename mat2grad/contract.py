"""What every engine (autodiff, predict, performance, export, commands) may assume of a model.

A model is any ``torch.nn.Module`` whose ``forward`` takes one batch-first tensor per input,
``(Q, *input_shapes[j])``, and returns one tensor, or a tuple of tensors, per output,
``(Q, *output_shapes[k])``; every sample is computed independently of the others. The
models mat2grad builds (MATLAB shallow networks, ONNX models, portable wrappers) also
describe themselves through the optional attributes of :class:`Model`; a plain module
without them is accepted and described by defaults. Engines read those attributes only
through :func:`contract_of` (never with scattered ``getattr``), so the list below is the
whole contract.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from .arrays import to_numpy
from .errors import Mat2GradError

__all__ = [
    "DTYPES",
    "Contract",
    "Model",
    "DESCRIPTION",
    "describe_like",
    "closed_form_of",
    "contract_of",
    "model_dtype",
    "model_dtype_device",
    "model_name",
    "on_device",
    "parse_device",
    "parse_dtype",
    "to_numpy",
]

#: the floating types a model may be built or run in, by the names the CLI and MATLAB use
DTYPES: dict[str, torch.dtype] = {"float64": torch.float64, "float32": torch.float32}


@runtime_checkable
class Model(Protocol):
    """The optional self-description of a model (all attributes may be absent).

    Attributes:
        input_shapes, output_shapes: per-sample shapes, one tuple per input/output
            (``None`` for a size the model does not fix, such as a sequence's length).
        input_names, output_names: names for messages and results.
        input_float: per input, whether it is floating point (ONNX integer inputs are not
            differentiated).
        zero_derivative: names of functions on every path whose derivative is zero almost
            everywhere (``hardlim``, ``compet``, ``ArgMax``...).
        not_differentiable: a reason why gradients with respect to the inputs are not
            defined at all, or ``None``.
        is_dynamic: a MATLAB time-series network (tapped delays, feedback).
        spec / source: where the model came from, for messages.

    Methods:
        closed_form_jacobian(wrt): an optional hook for a model that knows its Jacobian in
            closed form (read through :func:`closed_form_of`). Given the 0-based inputs
            ``wrt`` it returns ``(method, "")`` or ``(None, why not)``. ``method(xs, J, Y)``
            fills, for one chunk of inputs ``xs``, ``J[k][jj]`` ``(c, *out_k, *in_wrt[jj])``
            and, unless ``Y`` is None, the outputs ``Y[k]`` ``(c, *out_k)``; it has an
            attribute ``bytes_per_sample`` (its working set, for sizing chunks) and may have
            ``release()`` (drop its work buffers when a computation ends).
    """

    input_shapes: Sequence[tuple[int | None, ...]]
    output_shapes: Sequence[tuple[int | None, ...]]

    def forward(self, *inputs: torch.Tensor) -> Any: ...


@dataclass(frozen=True)
class Contract:
    """A model's self-description, read once, with the defaults a plain module gets."""

    name: str
    input_shapes: tuple[tuple[int | None, ...], ...] | None
    output_shapes: tuple[tuple[int | None, ...], ...] | None
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    input_float: tuple[bool, ...]
    zero_derivative: tuple[str, ...]
    not_differentiable: str | None
    is_dynamic: bool
    spec: Any
    source: Any

    def integer_inputs(self, n: int) -> tuple[bool, ...]:
        """Which of ``n`` inputs the model declares non-floating (never differentiated)."""
        floats = self.input_float
        return tuple(j < len(floats) and not floats[j] for j in range(n))


def _shapes(value: Any) -> tuple[tuple[int | None, ...], ...] | None:
    return None if value is None else tuple(tuple(s) for s in value)


def contract_of(model: nn.Module) -> Contract:
    """Read ``model``'s optional self-description (see :class:`Model`)."""
    spec = getattr(model, "spec", None)
    source = getattr(model, "source", None)
    reason = getattr(model, "not_differentiable", None)
    return Contract(
        name=model_name(model),
        input_shapes=_shapes(getattr(model, "input_shapes", None)),
        output_shapes=_shapes(getattr(model, "output_shapes", None)),
        input_names=tuple(getattr(model, "input_names", ()) or ()),
        output_names=tuple(getattr(model, "output_names", ()) or ()),
        input_float=tuple(bool(f) for f in (getattr(model, "input_float", None) or ())),
        zero_derivative=tuple(getattr(model, "zero_derivative", ()) or ()),
        not_differentiable=str(reason) if reason else None,
        is_dynamic=bool(getattr(model, "is_dynamic", False)),
        spec=spec,
        source=source,
    )


def closed_form_of(model: nn.Module, wrt: tuple[int, ...]) -> tuple[Any, str]:
    """The model's closed-form Jacobian for inputs ``wrt`` (its optional
    ``closed_form_jacobian`` hook, see :class:`Model`), or ``(None, why not)``."""
    hook = getattr(model, "closed_form_jacobian", None)
    if hook is None:
        return None, f"no closed form is known for {type(model).__name__} models"
    return hook(wrt)


#: the self-description a wrapper copies from the model it wraps (see :func:`describe_like`)
DESCRIPTION = (
    "input_names",
    "output_names",
    "input_shapes",
    "output_shapes",
    "zero_derivative",
    "not_differentiable",
)


def describe_like(
    wrapper: nn.Module, model: nn.Module, names: tuple[str, ...] = DESCRIPTION
) -> None:
    """Give ``wrapper`` the self-description ``names`` of the ``model`` it wraps (a
    portable graph, a network with its delay states as inputs)."""
    for name in names:
        setattr(wrapper, name, getattr(model, name))


def model_name(model: nn.Module) -> str:
    """How messages name a model: its network's place (MATLAB), its file (ONNX), its type."""
    spec = getattr(model, "spec", None)
    where = getattr(spec, "where", None) or getattr(model, "source", None)
    return str(where) if where else type(model).__name__


def model_dtype_device(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    """The floating dtype and device of a model's first floating parameter or buffer
    (float64 on the CPU for a model that has none)."""
    for t in itertools.chain(model.parameters(), model.buffers()):  # stop at the first
        if t.is_floating_point():
            return t.dtype, t.device
    return torch.float64, torch.device("cpu")


def on_device(
    model: nn.Module, device: torch.device | None, dtype: torch.dtype | None = None
) -> nn.Module:
    """``model`` itself where ``device`` and ``dtype`` (``None``: the model's own) are its
    own, else a copy of it moved there: the caller's model is never moved."""
    own_dtype, own_device = model_dtype_device(model)
    if (device or own_device) == own_device and (dtype or own_dtype) == own_dtype:
        return model
    return copy.deepcopy(model).to(device=device or own_device, dtype=dtype or own_dtype)


def model_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of a model (see :func:`model_dtype_device`)."""
    return model_dtype_device(model)[0]


def parse_dtype(dtype: torch.dtype | str | None, what: str = "dtype") -> torch.dtype | None:
    """``'float64'``/``'float32'`` (or the torch dtypes themselves) -> torch dtype;
    ``None`` stays ``None`` (keep the model's own)."""
    if dtype is None or dtype in DTYPES.values():
        return dtype  # type: ignore[return-value]
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise Mat2GradError(
        f"{what} must be one of {', '.join(DTYPES)} (or torch.float64/torch.float32); got {dtype!r}"
    )


def parse_device(device: torch.device | str | None, what: str = "device") -> torch.device | None:
    """``'cpu'``, ``'cuda'``, ``'cuda:N'``, ``'mps'`` (or a torch.device) -> a device torch can
    compute on in this process; ``None`` stays ``None`` (keep the model's own)."""
    if device is None:
        return None
    try:
        dev = torch.device(device.strip().lower() if isinstance(device, str) else device)
    except (RuntimeError, TypeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise Mat2GradError(
            f"{what} must be cpu, cuda, cuda:N or mps (a torch device); got {device!r}"
        )
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise Mat2GradError(
            f"{what} {device!r}: torch sees no CUDA device here (a CPU-only build of torch, "
            "or no GPU); compute on cpu, or install a CUDA build of torch on a GPU machine"
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise Mat2GradError(
            f"{what} {device!r}: torch sees {torch.cuda.device_count()} CUDA device(s), "
            f"numbered from 0"
        )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise Mat2GradError(f"{what} {device!r}: torch sees no MPS device here; compute on cpu")
    return dev
