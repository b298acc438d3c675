"""mat2grad: gradients of trained MATLAB networks and ONNX models, through PyTorch.

The public API::

    net = mat2grad.load("net.mat")                 # a MATLAB network as an nn.Module
    y = mat2grad.predict(net, x)                   # x (Q, R) -> y (Q, S), like sim(net, x')'
    mat2grad.find_networks("workspace.mat")        # every network in a file, with its path
    mat2grad.performance(net, x, t)                # MATLAB's perform(net, t, sim(net, x))
    g = mat2grad.weight_gradient(net, x, t)        # d perf / d weights: g.db, g.dIW, g.dLW, g.dwb
    mat2grad.convert("net.mat", "net.onnx")        # a portable .pt2 / .pt / .onnx file
"""

from .convert import convert
from .errors import Mat2GradError
from .loading import FoundNetwork, find_networks, load
from .performance import error_jacobian, getwb, performance, weight_gradient
from .predict import predict

# NOTE: `mat2grad.performance` is the function; the module of the same name is reached with
# `from mat2grad.performance import ...` (Python finds it in sys.modules).

__all__ = [
    "Mat2GradError",
    "FoundNetwork",
    "convert",
    "find_networks",
    "load",
    "predict",
    "performance",
    "weight_gradient",
    "error_jacobian",
    "getwb",
]
__version__ = "0.1.0"
