"""Compatibility re-export: the torch modules now live with their op family in
:mod:`mat2grad.onnx.ops`."""

from .ops.activations import Gelu, Mish, PReluWhere  # noqa: F401
from .ops.cast import TORCH_TO_ONNX_DTYPE, OnnxCastFollowingDtype  # noqa: F401
from .ops.flatten import Flatten  # noqa: F401
from .ops.pad import Pad  # noqa: F401
from .ops.recurrent import (  # noqa: F401
    DEFAULT_ACTIVATIONS,
    OnnxGRUOrRNN,
    OnnxLSTM,
    OnnxRecurrent,
    activation_list,
)
from .ops.reduce import Reduce, SumOutOfPlace  # noqa: F401
from .ops.resize import Resize  # noqa: F401
from .ops.slice import Slice, Split  # noqa: F401
