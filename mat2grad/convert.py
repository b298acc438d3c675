"""Compatibility re-export: exporting a network now lives in ``mat2grad.export`` (``export`` is
the function once called ``convert``)."""

from .export import DEFAULT_OPSET, FORMATS, ONNX_OPSETS  # noqa: F401
from .export import export as convert  # noqa: F401
