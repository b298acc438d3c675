"""mat2grad: gradients of trained MATLAB networks and ONNX models, through PyTorch."""

from .errors import Mat2GradError

__all__ = ["Mat2GradError"]
__version__ = "0.1.0"
