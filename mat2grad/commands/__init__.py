"""File-in/file-out operations shared by the front doors: the CLI (``mat2grad.cli``) and
MATLAB's in-process route (``mat2grad.matlab_api``).

Each command takes one options dataclass (:mod:`.options`; no argparse here) and reads its
network and data (:mod:`.sources`: a MAT-file, or arrays in memory); the commands that
compute results hand them, in MATLAB's layout, to a receiver (:mod:`.results`: a MAT-file,
or a dict in memory). What a front door adds is only its own parsing and printing::

    opts = JacobianOptions(file="net.mat", inputs="data.mat", output="J.mat")
    jacobian.run(opts)                                  # writes J.mat

    results = MemoryResults()
    jacobian.run(replace(opts, inputs=None, data=Variables({"X": x})), results)
    results.variables["J"]                              # S x R x Q
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import check, files, grad, hessian, jacobian, matlab, predict, sens
from .options import (
    CHOICES,
    CheckOptions,
    ConvertOptions,
    GradOptions,
    HessianOptions,
    InfoOptions,
    JacobianOptions,
    PredictOptions,
    SensOptions,
    flag,
    from_namespace,
    from_values,
)
from .results import FileResults, MemoryResults, Results
from .sources import IN_MEMORY, Variables

__all__ = [
    "CHOICES",
    "IN_MEMORY",
    "RESULT_COMMANDS",
    "CheckOptions",
    "Command",
    "ConvertOptions",
    "FileResults",
    "GradOptions",
    "HessianOptions",
    "InfoOptions",
    "JacobianOptions",
    "MemoryResults",
    "PredictOptions",
    "Results",
    "SensOptions",
    "Variables",
    "check",
    "files",
    "flag",
    "from_namespace",
    "from_values",
    "grad",
    "hessian",
    "jacobian",
    "matlab",
    "predict",
    "sens",
]


@dataclass(frozen=True)
class Command:
    """A command that hands result variables over: its options and its ``run(options,
    results=None, *, loader=None)``."""

    options: type[Any]
    run: Callable[..., None]


#: The commands whose results are variables (a MAT-file's, or a dict's), by name.
RESULT_COMMANDS: dict[str, Command] = {
    "predict": Command(PredictOptions, predict.run),
    "jacobian": Command(JacobianOptions, jacobian.run),
    "hessian": Command(HessianOptions, hessian.run),
    "grad": Command(GradOptions, grad.run),
    "sens": Command(SensOptions, sens.run),
}
