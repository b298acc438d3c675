"""The options of each command: one dataclass per command, assembled from small groups that
several commands share, and the closed vocabularies (:data:`CHOICES`) every front door checks
against.

A field is named as the command line's long option is, dashes as underscores (``chunk_size``
is ``--chunk-size``), so a front door maps its own arguments onto a command by name:
:func:`from_namespace` for the CLI's parsed arguments, :func:`from_values` for keyword
values as MATLAB hands them over (text such as ``"64"``, ``""`` for a bare flag).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from .. import matfile
from ..errors import Mat2GradError
from .variables import Variables

__all__ = [
    "CHOICES",
    "MINIMUM",
    "CheckOptions",
    "ConvertOptions",
    "GradOptions",
    "HessianOptions",
    "InfoOptions",
    "JacobianOptions",
    "PredictOptions",
    "SERIES_OPTIONS",
    "SensOptions",
    "flag",
    "from_namespace",
    "from_values",
]

#: The values each closed option takes (the CLI's ``choices``; checked by :func:`from_values`).
CHOICES: dict[str, tuple[str, ...]] = {
    # the names of mat2grad.contract.DTYPES, spelt out: the command line is built without
    # torch (a test holds the two equal)
    "dtype": ("float64", "float32"),
    "samples": matfile.SAMPLES,
    "mode": ("auto", "rev", "fwd", "analytic"),
    "format": matfile.MAT_FORMATS,
    "layout": ("matlab", "onnx"),
    "normalization": ("none", "standard", "percent"),
    "convention": ("math", "matlab"),
    "wb_order": ("bias-first", "bias-last"),
    "form": ("full", "step", "sum"),
    "scale": ("none", "std", "range"),
}


#: The smallest value each whole-number option takes (the CLI's argument types; checked by
#: :func:`from_values`); smaller values are usage errors.
MINIMUM: dict[str, int] = {
    "chunk_size": 1,
    "threads": 1,
    "max_samples": 1,
    "output_index": 1,
    "steps": 1,
    "max_lag": 0,
}


def below_minimum(name: str, value: int) -> str | None:
    """Why ``value`` is too small for the whole-number option ``name`` (None if it is not)."""
    least = MINIMUM.get(name)
    if least is not None and value < least:
        return f"must be a whole number >= {least}, found {value}"
    return None


def flag(name: str) -> str:
    """The command-line option of field ``name`` (``chunk_size`` -> ``--chunk-size``)."""
    return "--" + name.replace("_", "-")


# --------------------------------------------------------------------------------------
# Groups of options that several commands share
# --------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class _Model:
    """Which network: FILE (a MAT-file or an .onnx file), the network's path inside a
    MAT-file, and the precision of the computation."""

    command: ClassVar[str] = ""
    file: str
    network: str | None = None
    dtype: str | None = "float64"


@dataclass(kw_only=True)
class _Data:
    """Where the data come from: the MAT-file ``inputs`` or the variables ``data`` given in
    memory, the variable holding the inputs, and the orientation of the samples."""

    inputs: str | None = None
    data: Variables | None = None
    inputs_var: str | None = None
    samples: str = "columns"


@dataclass(kw_only=True)
class _Output:
    """The result file (a command given a result sink in memory needs none)."""

    output: str | None = None


@dataclass(kw_only=True)
class _Chunks:
    """Samples per chunk (default: from a working-set budget) and CPU threads for torch."""

    chunk_size: int | None = None
    threads: int | None = None


@dataclass(kw_only=True)
class _Device:
    """The compute device (``cpu``, ``cuda``, ``cuda:N``, ``mps``; ``None``: the CPU)."""

    device: str | None = None


@dataclass(kw_only=True)
class _Onnx:
    """ONNX models: the data layout (``matlab`` or ``onnx``; ``None`` means ``matlab``)."""

    layout: str | None = None


@dataclass(kw_only=True)
class _Wrt:
    """ONNX models: the inputs to differentiate with respect to (each entry may be a comma
    list; default every floating input)."""

    wrt: list[str] | None = None


@dataclass(kw_only=True)
class _Series:
    """Dynamic networks: the variables holding the initial states, the targets and a known
    sequence, and how to run (preparets, closeloop, steps without inputs)."""

    xi_var: str | None = None
    ai_var: str | None = None
    targets_var: str | None = None
    prepare: bool = False
    closed_loop: bool = False
    known_inputs_var: str | None = None
    known_targets_var: str | None = None
    steps: int | None = None


@dataclass(kw_only=True)
class _Form:
    """Dynamic networks: the form of the gradients through time."""

    form: str | None = None
    max_lag: int | None = None
    weights_var: str | None = None


#: The options that apply to dynamic networks only (a static network refuses them).
SERIES_OPTIONS: tuple[str, ...] = (
    *(f.name for f in dataclasses.fields(_Form)),
    *(f.name for f in dataclasses.fields(_Series)),
)


# --------------------------------------------------------------------------------------
# One dataclass per command
# --------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class InfoOptions:
    """``info``: describe every network in FILE."""

    command: ClassVar[str] = "info"
    file: str


@dataclass(kw_only=True)
class PredictOptions(_Model, _Data, _Output, _Onnx, _Series, _Device):
    """``predict``: evaluate the network and write Y (dynamic networks: also Xf, Af)."""

    command: ClassVar[str] = "predict"


@dataclass(kw_only=True)
class JacobianOptions(_Model, _Data, _Chunks, _Output, _Onnx, _Wrt, _Series, _Form, _Device):
    """``jacobian``: per-sample Jacobians J and outputs Y (dynamic networks: through time)."""

    command: ClassVar[str] = "jacobian"
    mode: str = "auto"
    format: str = "auto"


@dataclass(kw_only=True)
class HessianOptions(_Model, _Data, _Chunks, _Output, _Onnx, _Wrt, _Device):
    """``hessian``: per-sample Hessians H of output row ``output_index`` (1-based) and Y."""

    command: ClassVar[str] = "hessian"
    output_index: int | None = None
    format: str = "auto"


@dataclass(kw_only=True)
class CheckOptions(_Model, _Data, _Chunks, _Onnx, _Wrt, _Device):
    """``check``: autograd Jacobians against central finite differences."""

    command: ClassVar[str] = "check"
    tol: float = 1e-6
    max_samples: int = 200
    seed: int = 0
    mode: str = "auto"


@dataclass(kw_only=True)
class GradOptions(_Model, _Data, _Output):
    """``grad``: the performance and its gradient with respect to the weights and biases."""

    command: ClassVar[str] = "grad"
    targets: str | None = None
    targets_var: str | None = None
    ew_var: str | None = None
    performance: str | None = None
    normalization: str | None = None
    regularization: float | None = None
    convention: str = "math"
    wb_order: str = "bias-first"


@dataclass(kw_only=True)
class ConvertOptions(_Model, _Output):
    """``convert``: write the network as a portable .pt2, .pt or .onnx file."""

    command: ClassVar[str] = "convert"
    dtype: str | None = None
    opset: int | None = None
    matlab_layout: bool = False


@dataclass(kw_only=True)
class SensOptions(_Model, _Data, _Chunks, _Output, _Device):
    """``sens``: which inputs matter: the struct S of derivative statistics (NeuralSens'
    mean, std, rms, mean_abs; per delay for dynamic networks), optionally with bootstrap
    intervals, Hessian interactions, DGSM, weight-based importance, or a committee of every
    network in FILE; ``plot`` also draws the charts into that file."""

    command: ClassVar[str] = "sens"
    format: str = "auto"
    scale: str = "none"
    ddof: int = 0
    bootstrap: int = 0
    conf_level: float = 0.95
    seed: int = 0
    interactions: bool = False
    dgsm: int | None = None
    weights: bool = False
    committee: bool = False
    max_lag: int | None = None
    plot: str | None = None


# --------------------------------------------------------------------------------------
# Building options from a front door's arguments
# --------------------------------------------------------------------------------------


def from_namespace(cls: type[Any], args: Any) -> Any:
    """Options of class ``cls`` from parsed arguments: every attribute of ``args`` that
    names a field; fields the parser does not define keep their defaults."""
    names = [f.name for f in dataclasses.fields(cls)]
    return cls(**{n: getattr(args, n) for n in names if hasattr(args, n)})


def from_values(cls: type[Any], values: Mapping[str, Any], **fixed: Any) -> Any:
    """Options of class ``cls`` from loosely typed ``values``, as MATLAB hands them over:
    numbers as text (``"64"``) or as floats, ``""`` for a bare flag, one name or a sequence
    of names for a repeatable option. ``fixed`` are fields set by the caller itself (the
    file, the data). Values are converted to the field's type and checked against
    :data:`CHOICES`; ``None`` leaves the default.

    Raises:
        Mat2GradError: an option the command does not have, or a value it cannot take.
    """
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls) if f.name not in ("data", "output")]
    unknown = [n for n in values if n not in known or n in fixed]
    if unknown:
        given = " ".join(
            flag(n) + ("" if values[n] in ("", None) else f" {values[n]}") for n in unknown
        )
        raise Mat2GradError(
            f"{cls.command}: unrecognized arguments: {given} (its options: "
            f"{', '.join(sorted(n for n in known if n not in fixed))})"
        )
    kwargs = {n: _convert(n, hints[n], v) for n, v in values.items() if v is not None}
    return cls(**kwargs, **fixed)


def _convert(name: str, hint: Any, value: Any) -> Any:
    kinds = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    kind = typing.get_origin(kinds[0]) or kinds[0]
    try:
        if kind is bool:
            if value == "" or value is True or value is False:
                return value is not False
            raise ValueError
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            number = int(value)
            why = below_minimum(name, number)
            if why:
                raise Mat2GradError(f"argument {flag(name)}: {why}")
            return number
        if kind is float:
            return float(value)
        if kind is list:
            return [value] if isinstance(value, str) else [str(v) for v in value]
    except (TypeError, ValueError):
        what = "a flag: pass ''" if kind is bool else f"invalid {kind.__name__} value"
        raise Mat2GradError(f"argument {flag(name)}: {what}: {value!r}") from None
    value = str(value)
    if name in CHOICES and value not in CHOICES[name]:
        choose = ", ".join(repr(c) for c in CHOICES[name])
        raise Mat2GradError(
            f"argument {flag(name)}: invalid choice: {value!r} (choose from {choose})"
        )
    return value
