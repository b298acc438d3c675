"""ONNX models as differentiable PyTorch modules, through onnx2torch.

Public API: :func:`load_onnx` (a module that meets mat2grad's model contract) and
:func:`describe_onnx` (what ``mat2grad info`` prints). The package mirrors onnx2torch's
organisation:

==================  ========================================================================
``reader``          safe reading (external data confined to the model's folder), checker,
                    refusal of non-differentiable / unsupported graphs before conversion
``normalize``       ONNX -> ONNX rewrites before conversion (MATLAB 2018 Gemm on 4-D,
                    opset upgrade, Dropout, padding, outputs) -- each documented
``ops``             one module per op family: the torch module mat2grad supplies, the
                    onnx2torch converters it adds (LSTM/GRU/RNN, Cast, Slice-1, newer
                    versions) and the fix of a wrong upstream module, together
``fixes``           post-conversion swap of wrong upstream modules (Slice, Sum, Mean,
                    PRelu, Cast, ...) -- the one place they are replaced
``proto``           small readers of ONNX protos (attributes, inferred shapes and types)
``graph``           batch axes, MATLAB layout kinds, differentiability analysis
``loader``          :func:`load_onnx`: read, normalise, convert, fix, wrap, check
``describe``        :func:`describe_onnx`: what ``mat2grad info`` prints
``model``           :class:`OnnxNetwork`, the per-sample ``vmap`` evaluator
``check``           the load-time comparison with onnxruntime
``data``            MATLAB data in and out (``--layout matlab|onnx``): what the CLI and the
                    MATLAB helpers read and write
``portable``        the network as one batch-generic graph of ATen operations, what
                    ``mat2grad.convert`` exports (``.pt2``, ``.pt``, ``.onnx``)
``_onnx2torch``     the narrow torchvision guard for ``import onnx2torch``
``modules``,        compatibility re-exports of names that moved to ``ops``
``converters``
==================  ========================================================================
"""

from .describe import describe_onnx
from .loader import load_onnx
from .model import OnnxNetwork

__all__ = ["load_onnx", "describe_onnx", "OnnxNetwork"]
