"""mat2grad: gradients of trained MATLAB networks and ONNX models, through PyTorch.

The public API::

    net = mat2grad.load("net.mat")                 # a MATLAB network as an nn.Module
    y = mat2grad.predict(net, x)                   # x (Q, R) -> y (Q, S), like sim(net, x')'
    mat2grad.find_networks("workspace.mat")        # every network in a file, with its path
    J = mat2grad.jacobian(net, x)                  # x (Q, R) -> J (Q, S, R), J[q] = dy[q]/dx[q]
    H = mat2grad.hessian(net, x, output=0)         # (Q, R, R), second derivatives of y[:, 0]
    mat2grad.check(net, x).passed                  # autograd vs central finite differences
    mat2grad.performance(net, x, t)                # MATLAB's perform(net, t, sim(net, x))
    g = mat2grad.weight_gradient(net, x, t)        # d perf / d weights: g.db, g.dIW, g.dLW, g.dwb
    mat2grad.convert("net.mat", "net.onnx")        # a portable .pt2 / .pt / .onnx file
    S = mat2grad.sensitivity(net, x)               # which inputs matter: S["rms"] (S, R), ...
    f = mat2grad.salib_model(net)                  # SALib's (N, D) samples -> (N, S) outputs

``import mat2grad`` imports nothing heavy: each public name is imported from its module the
first time it is used (PEP 562), so ``mat2grad info`` and ``mat2grad --version`` start
without PyTorch. See NOTE: [Lazy public API].
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:  # what the names below are, for type checkers and editors
    from .autodiff import (
        CheckResult,
        ZeroDerivativeWarning,
        check,
        hessian,
        jacobian,
        jacobian_chunks,
        jvp,
        vjp,
    )
    from .errors import Mat2GradError
    from .export import convert
    from .finding import FoundNetwork, find_networks
    from .loading import load
    from .performance import error_jacobian, getwb, performance, weight_gradient
    from .predict import predict
    from .sensitivity import SensitivityResult, salib_model, sensitivity

__all__ = [
    "__version__",
    "Mat2GradError",
    "FoundNetwork",
    "convert",
    "find_networks",
    "load",
    "predict",
    "jacobian",
    "jacobian_chunks",
    "vjp",
    "jvp",
    "hessian",
    "check",
    "CheckResult",
    "ZeroDerivativeWarning",
    "performance",
    "weight_gradient",
    "error_jacobian",
    "getwb",
    "sensitivity",
    "SensitivityResult",
    "salib_model",
]

# NOTE: [Lazy public API]
# Each public name is read from the module below the first time it is asked for
# (``__getattr__``), then kept in the package's namespace; so is each module of the package
# (``mat2grad.loading``), which the eager import of the whole API used to leave there. Three
# names are also the names of modules: ``mat2grad.performance``, ``mat2grad.predict`` and
# ``mat2grad.sensitivity`` are the *functions*, while ``from mat2grad.performance import
# weight_gradient`` reaches the module (Python finds it in sys.modules). Importing a module
# makes Python set the package's attribute of that name to the module, whenever any code
# first imports it; so the package's class (:class:`_Package`) answers those names with the
# functions, always. ``import mat2grad.performance.wb as wb`` walks the attributes and so
# finds the function, as it did when the API was imported eagerly: use ``from`` imports for
# those packages' modules.

#: public name -> the module (relative to this package) that defines it
_SOURCES: dict[str, str] = {
    "Mat2GradError": ".errors",
    "FoundNetwork": ".finding",
    "find_networks": ".finding",
    "load": ".loading",
    "convert": ".export",
    "predict": ".predict",
    "jacobian": ".autodiff",
    "jacobian_chunks": ".autodiff",
    "vjp": ".autodiff",
    "jvp": ".autodiff",
    "hessian": ".autodiff",
    "check": ".autodiff",
    "CheckResult": ".autodiff",
    "ZeroDerivativeWarning": ".autodiff",
    "performance": ".performance",
    "weight_gradient": ".performance",
    "error_jacobian": ".performance",
    "getwb": ".performance",
    "sensitivity": ".sensitivity",
    "SensitivityResult": ".sensitivity",
    "salib_model": ".sensitivity",
}

#: the public functions named like the module that defines them (``performance``,
#: ``predict``, ``sensitivity``)
_SHADOWED = frozenset(name for name, module in _SOURCES.items() if module == f".{name}")


def _public(name: str) -> Any:
    """The public object ``name``, imported from its module."""
    return getattr(importlib.import_module(_SOURCES[name], __name__), name)


def __getattr__(name: str) -> Any:
    if name not in _SOURCES:
        # a module of the package (``mat2grad.loading``), as when the API was imported eagerly
        if name.startswith("__") or importlib.util.find_spec(f"{__name__}.{name}") is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        return importlib.import_module(f".{name}", __name__)
    value = _public(name)
    if name not in _SHADOWED:  # kept; the two functions are answered by _Package
        globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """The package's module type: the functions :data:`_SHADOWED` win over the subpackages
    of the same names (see NOTE: [Lazy public API])."""

    def __getattribute__(self, name: str) -> Any:
        if name in _SHADOWED:
            if name not in _functions:
                _functions[name] = _public(name)
            return _functions[name]
        return super().__getattribute__(name)


#: the functions :data:`_SHADOWED`, once imported
_functions: dict[str, Any] = {}


sys.modules[__name__].__class__ = _Package
