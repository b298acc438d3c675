"""Arrays handed to mat2grad, numpy or torch, as numpy arrays, without importing torch
(reading MAT-files and ``mat2grad info`` run without it)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

__all__ = ["to_numpy"]


def to_numpy(value: Any) -> np.ndarray:
    """A tensor (any device, with or without grad) or array-like as a numpy array.

    A tensor can only exist once something has imported torch, so torch is looked up among
    the loaded modules, never imported here.
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)
