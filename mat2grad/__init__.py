"""mat2grad: gradients of trained MATLAB networks and ONNX models, through PyTorch.

The public API::

    net = mat2grad.load("net.mat")                 # a MATLAB network as an nn.Module
    y = mat2grad.predict(net, x)                   # x (Q, R) -> y (Q, S), like sim(net, x')'
    mat2grad.find_networks("workspace.mat")        # every network in a file, with its path
    J = mat2grad.jacobian(net, x)                  # x (Q, R) -> J (Q, S, R), J[q] = dy[q]/dx[q]
    H = mat2grad.hessian(net, x, output=0)         # (Q, R, R), second derivatives of y[:, 0]
    mat2grad.check(net, x).passed                  # autograd vs central finite differences
"""

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
from .loading import FoundNetwork, find_networks, load
from .predict import predict

__all__ = [
    "Mat2GradError",
    "FoundNetwork",
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
]
__version__ = "0.1.0"
