"""Importing onnx2torch without a loadable torchvision (a narrow, documented guard).

onnx2torch imports torchvision at import time, for exactly two detection operators:
``NonMaxSuppression`` (``torchvision.ops.nms``, ``torchvision.ops.box_convert``) and
``RoiAlign`` (``torchvision.ops.roi_align``). With the CPU build of torch and the PyPI
torchvision wheel, ``import torchvision`` fails (``RuntimeError: operator torchvision::nms
does not exist``), and with it ``import onnx2torch`` -- although no network mat2grad
differentiates needs those two operators.

The guard, and nothing more:

1. ``import torchvision`` is tried first. When it works, onnx2torch is imported as published
   and the two operators work.
2. When it fails, a stand-in module named ``torchvision`` with a ``torchvision.ops`` that has
   only ``nms``, ``box_convert`` and ``roi_align`` is put into ``sys.modules`` *for the
   duration of* ``import onnx2torch`` and removed right after, so nothing else in the process
   ever sees it. Each stand-in function raises :class:`Mat2GradError` naming the operator and
   the reason torchvision did not load. :func:`mat2grad.onnx.load_onnx` also rejects graphs
   with those operators before conversion (:data:`VISION_OPS`), so the stand-ins are a second
   line of defence only.

onnx2torch itself is not modified.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

from ..errors import Mat2GradError

__all__ = ["VISION_OPS", "import_onnx2torch", "torchvision_problem"]

#: ONNX operators whose onnx2torch converters call torchvision.
VISION_OPS = {"NonMaxSuppression": "torchvision.ops.nms", "RoiAlign": "torchvision.ops.roi_align"}

_state: dict[str, Any] = {}


def torchvision_problem() -> str | None:
    """Why torchvision cannot be imported here (``None`` when it can)."""
    if "problem" not in _state:
        try:
            importlib.import_module("torchvision")
        except Exception as exc:  # noqa: BLE001 - any failure means "not loadable"
            _state["problem"] = f"{type(exc).__name__}: {exc}"
        else:
            _state["problem"] = None
    return _state["problem"]


def _stand_in(problem: str) -> tuple[types.ModuleType, types.ModuleType]:
    def unavailable(name: str):
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise Mat2GradError(
                f"{name} is needed by this ONNX graph but torchvision could not be loaded "
                f"({problem}); install a torchvision build that matches torch "
                f"{_torch_version()} to use NonMaxSuppression / RoiAlign"
            )

        return fail

    tv = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")
    ops.nms = unavailable("torchvision.ops.nms (ONNX NonMaxSuppression)")
    ops.box_convert = unavailable("torchvision.ops.box_convert (ONNX NonMaxSuppression)")
    ops.roi_align = unavailable("torchvision.ops.roi_align (ONNX RoiAlign)")
    tv.ops = ops
    tv.__mat2grad_stand_in__ = True
    return tv, ops


def _torch_version() -> str:
    import torch

    return torch.__version__


def import_onnx2torch() -> types.ModuleType:
    """Import and return the ``onnx2torch`` package, guarding against a broken torchvision.

    Raises:
        Mat2GradError: onnx2torch is not installed, or its import fails.
    """
    if "module" in _state:
        return _state["module"]
    if importlib.util.find_spec("onnx2torch") is None:
        raise Mat2GradError(
            "loading ONNX models needs the onnx2torch package, which is not installed; "
            "install it with: pip install 'mat2grad[onnx]'"
        )
    problem = torchvision_problem()
    try:
        module = _import(problem)
    except Exception as exc:  # noqa: BLE001 - whatever breaks inside onnx2torch's import
        raise Mat2GradError(
            f"onnx2torch could not be imported ({type(exc).__name__}: {exc}); reinstall it "
            "with: pip install 'mat2grad[onnx]'"
        ) from None
    _state["module"] = module
    return module


def _import(problem: str | None) -> types.ModuleType:
    if problem is None:
        module = importlib.import_module("onnx2torch")
    else:
        names = ("torchvision", "torchvision.ops")
        saved = {name: sys.modules.get(name) for name in names}
        tv, ops = _stand_in(problem)
        sys.modules["torchvision"], sys.modules["torchvision.ops"] = tv, ops
        try:
            module = importlib.import_module("onnx2torch")
        finally:
            for name in names:
                if saved[name] is None:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = saved[name]
    return module
