"""ONNX -> ONNX rewrites before conversion (see :mod:`.pipeline` for the list and the order).

==============  ===========================================================================
``pipeline``    :func:`normalize`: the rewrites in order, and the documented list of them
``hygiene``     Dropout, unused optional outputs, Clip bounds, output Identities, node names
``matlab``      MATLAB's 2018 exporter: ``Gemm`` on a tensor of rank > 2
``opset``       the upgrade to :data:`TARGET_OPSET` with ``onnx.version_converter``
``padding``     ``auto_pad``, pooling and ConvTranspose padding PyTorch cannot express
==============  ===========================================================================
"""

from ..reader import MATLAB_PRODUCER
from .opset import TARGET_OPSET, default_opset
from .pipeline import Normalized, normalize

__all__ = ["MATLAB_PRODUCER", "TARGET_OPSET", "Normalized", "normalize", "default_opset"]
