"""Compatibility re-export of the old ``mat2grad.shallow.dynamic`` import path: delete once the
tests and :mod:`mat2grad.dynamic` import :mod:`.simulate`, :mod:`.preparets` and :mod:`.loops`."""

from .loops import (  # noqa: F401
    closed_loop_after,
    closeloop,
    closeloop_spec,
    closeloop_states,
    openloop,
    openloop_spec,
    predict_ahead,
)
from .preparets import Prepared, preparets  # noqa: F401
from .simulate import Simulation, WithStates, simulate  # noqa: F401
