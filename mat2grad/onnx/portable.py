"""Compatibility re-export: the batch-generic graph now lives in ``mat2grad.export.portable``."""

from ..export.generalise import generalise as _generalise  # noqa: F401
from ..export.generalise import tracing_variant as _tracing_variant  # noqa: F401
from ..export.portable import TRACE_BATCHES, PortableOnnxNetwork, portable_network  # noqa: F401
from ..export.record import NotDirect as _NotDirect  # noqa: F401
from ..export.record import record as _record  # noqa: F401
