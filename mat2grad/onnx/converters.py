"""Compatibility re-export: converters now live with their op family in :mod:`mat2grad.onnx.ops`."""

from .ops import register_converters  # noqa: F401
from .ops.aliases import TYPE_ONLY_ALIASES, schema_signature  # noqa: F401
from .ops.resize import resize_module  # noqa: F401
