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

The command modules are imported the first time they are used (``commands.jacobian``), so a
front door that runs one command imports only what that command needs: ``info`` and
``matlab`` need no torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
from .variables import IN_MEMORY, Variables

if TYPE_CHECKING:
    from . import check, files, grad, hessian, jacobian, matlab, predict, sens

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


#: the command modules, imported on first use
_COMMAND_MODULES = frozenset(
    {"check", "files", "grad", "hessian", "jacobian", "matlab", "predict", "sens"}
)


def __getattr__(name: str) -> Any:
    if name not in _COMMAND_MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return importlib.import_module(f".{name}", __name__)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


@dataclass(frozen=True)
class Command:
    """A command that hands result variables over: its options, and the module (of this
    package) whose ``run`` runs it, imported when the command first runs."""

    options: type[Any]
    module: str

    def run(self, options: Any, results: Results | None = None, *, loader: Any = None) -> None:
        """``run(options, results=None, *, loader=None)`` of the command's module."""
        command = importlib.import_module(f".{self.module}", __name__)
        command.run(options, results, loader=loader)


#: The commands whose results are variables (a MAT-file's, or a dict's), by name.
RESULT_COMMANDS: dict[str, Command] = {
    "predict": Command(PredictOptions, "predict"),
    "jacobian": Command(JacobianOptions, "jacobian"),
    "hessian": Command(HessianOptions, "hessian"),
    "grad": Command(GradOptions, "grad"),
    "sens": Command(SensOptions, "sens"),
}
