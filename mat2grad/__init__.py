"""mat2grad: gradients of trained MATLAB networks and ONNX models, through PyTorch.

The public API::

    net = mat2grad.load("net.mat")                 # a MATLAB network as an nn.Module
    y = mat2grad.predict(net, x)                   # x (Q, R) -> y (Q, S), like sim(net, x')'
    mat2grad.find_networks("workspace.mat")        # every network in a file, with its path
"""

from .errors import Mat2GradError
from .loading import FoundNetwork, find_networks, load
from .predict import predict

__all__ = ["Mat2GradError", "FoundNetwork", "find_networks", "load", "predict"]
__version__ = "0.1.0"
