"""The processing functions of one network input or output as a module of buffers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .functions import PROCESSING
from .spec import ProcessStep

__all__ = ["ProcessingChain"]


class ProcessingChain(nn.Module):
    """The processing functions of one input or output, as buffers (they move with
    ``.to(dtype)`` and are not weights)."""

    def __init__(self, steps: Sequence[ProcessStep], dtype: torch.dtype):
        super().__init__()
        self.steps = tuple(steps)
        # (setting name, buffer attribute) per step, so a forward pass looks buffers up
        # directly instead of scanning them (they are re-read each call: .to() replaces them)
        self._keys = tuple(
            tuple((name, f"s{k}_{name}") for name in step.settings)
            for k, step in enumerate(self.steps)
        )
        for k, step in enumerate(self.steps):
            for name, value in step.settings.items():
                if np.issubdtype(value.dtype, np.integer):
                    tensor = torch.as_tensor(value, dtype=torch.int64)
                else:
                    tensor = torch.as_tensor(value, dtype=dtype)
                self.register_buffer(f"s{k}_{name}", tensor)

    def _settings(self, k: int) -> dict[str, Tensor]:
        return {name: getattr(self, attr) for name, attr in self._keys[k]}

    def apply(self, x: Tensor) -> Tensor:
        for k, step in enumerate(self.steps):
            x = PROCESSING[step.fcn].apply(x, self._settings(k))
        return x

    def reverse(self, y: Tensor) -> Tensor:
        for k in reversed(range(len(self.steps))):
            y = PROCESSING[self.steps[k].fcn].reverse(y, self._settings(k))
        return y

    def extra_repr(self) -> str:
        return " -> ".join(f"{s.fcn}({s.in_size}->{s.out_size})" for s in self.steps) or "none"
