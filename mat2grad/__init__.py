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
"""

from ._version import __version__
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
from .loading import FoundNetwork, find_networks, load
from .performance import error_jacobian, getwb, performance, weight_gradient
from .predict import predict
from .sensitivity import SensitivityResult, salib_model, sensitivity

# NOTE: `mat2grad.performance` and `mat2grad.sensitivity` are the functions; the packages of
# the same names are reached with `from mat2grad.performance import ...` and
# `from mat2grad.sensitivity import ...` (Python finds them in sys.modules).

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
