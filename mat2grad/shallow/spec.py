"""The typed description of one MATLAB shallow network: :class:`NetworkSpec` and its parts.

A spec is what :mod:`mat2grad.shallow.record` reads from a saved network and what the
module, the simulation and the loop transformations work from. It holds numpy arrays as
MATLAB stores them; indices are MATLAB's (1-based layer, input and output numbers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import Mat2GradError
from .names import ZERO_DERIVATIVE

__all__ = [
    "ProcessStep",
    "InputSpec",
    "LayerSpec",
    "WeightSpec",
    "OutputSpec",
    "NetworkSpec",
    "Where",
    "respec",
    "sim_order",
]


@dataclass(frozen=True)
class ProcessStep:
    """One processing function of an input or output, with settings ready for torch.

    ``settings`` holds float64 arrays (row vectors of length ``in_size``/``out_size`` or
    matrices) and int64 index arrays (0-based) as :data:`functions.PROCESSING` needs them.
    """

    fcn: str
    in_size: int  # rows before the step (raw side)
    out_size: int  # rows after the step (processed side)
    settings: dict[str, np.ndarray] = field(repr=False)


@dataclass(frozen=True)
class InputSpec:
    index: int
    name: str
    size: int  # raw rows, inputs{i}.size
    processed_size: int  # rows the weights see, inputs{i}.processedSize
    steps: tuple[ProcessStep, ...]
    feedback_output: int | None  # layer whose output this input stands for (open-loop NARX)
    example: np.ndarray | None = field(default=None, repr=False)  # raw R x Q, if stored
    range: np.ndarray | None = field(default=None, repr=False)  # R x 2 [min max]


@dataclass(frozen=True)
class LayerSpec:
    index: int
    name: str
    size: int
    transfer: str
    net_input: str


@dataclass(frozen=True)
class WeightSpec:
    kind: str  # "IW" (from an input) or "LW" (from a layer)
    to: int  # layer number
    source: int  # input number (IW) or layer number (LW)
    delays: tuple[int, ...]
    fcn: str
    value: np.ndarray = field(repr=False)  # S x (len(delays) * source size)
    learn: bool = True  # inputWeights{i,j}.learn / layerWeights{i,j}.learn (getwb skips False)

    @property
    def label(self) -> str:
        return f"{self.kind}{{{self.to},{self.source}}}"


@dataclass(frozen=True)
class OutputSpec:
    layer: int  # the layer whose activation this output is
    name: str
    size: int  # raw rows, outputs{i}.size
    processed_size: int  # rows of the layer, outputs{i}.processedSize
    steps: tuple[ProcessStep, ...]  # in processFcns order; reversed when simulating
    feedback_input: int | None
    feedback_mode: str  # 'none', 'open', 'closed'
    feedback_delay: int
    range: np.ndarray | None = field(default=None, repr=False)


@dataclass(frozen=True)
class NetworkSpec:
    """Everything needed to simulate and differentiate one saved network."""

    source: str  # file the network came from ('' when built in memory)
    path: str  # MATLAB-style path inside the file
    version: str
    name: str
    inputs: tuple[InputSpec, ...]
    layers: tuple[LayerSpec, ...]
    biases: tuple[np.ndarray | None, ...] = field(repr=False)  # per layer, length S, or None
    input_weights: tuple[WeightSpec, ...]
    layer_weights: tuple[WeightSpec, ...]
    outputs: tuple[OutputSpec, ...]  # in layer order, as MATLAB numbers outputs
    order: tuple[int, ...]  # layers in simulation order (zero-delay topological order)
    perform_fcn: str
    perform_param: dict[str, Any] = field(repr=False)
    train_fcn: str = ""
    sample_time: float = 1.0
    #: biases{i}.learn per layer (getwb skips a bias whose learn is 0); empty = all learn
    bias_learn: tuple[bool, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.source}: network '{self.path}'" if self.source else f"network '{self.path}'"

    @property
    def weights(self) -> tuple[WeightSpec, ...]:
        return self.input_weights + self.layer_weights

    def incoming(self, layer: int) -> list[WeightSpec]:
        """The weights feeding ``layer``: input weights, then layer weights (MATLAB's order
        of the weighted inputs of a layer's net input)."""
        return [w for w in self.input_weights if w.to == layer] + [
            w for w in self.layer_weights if w.to == layer
        ]

    @property
    def is_dynamic(self) -> bool:
        """True when any weight has a delay other than a single 0 (tapped delay lines,
        recurrent layer connections, NARX feedback)."""
        return any(w.delays != (0,) for w in self.weights) or any(
            o.feedback_mode == "open" for o in self.outputs
        )

    @property
    def num_input_delays(self) -> int:
        return max((max(w.delays) for w in self.input_weights), default=0)

    @property
    def num_layer_delays(self) -> int:
        return max((max(w.delays) for w in self.layer_weights), default=0)

    @property
    def zero_derivative(self) -> tuple[str, ...]:
        return tuple(
            f"layer {layer.index} ({layer.transfer})"
            for layer in self.layers
            if layer.transfer in ZERO_DERIVATIVE
        )


class Where:
    """Where we are in a network record, for error messages."""

    def __init__(self, source: str, path: str):
        self.source = source
        self.path = path

    def place(self, where: str) -> str:
        prefix = f"{self.source}: " if self.source else ""
        return f"{prefix}network '{self.path}', {where}"

    def err(self, where: str, message: str) -> Mat2GradError:
        return Mat2GradError(f"{self.place(where)}: {message}")


def respec(spec: NetworkSpec, **changes: Any) -> NetworkSpec:
    """A copy of ``spec`` with fields replaced (``inputs``, ``input_weights``,
    ``layer_weights``, ``outputs``, ...) and the simulation order recomputed, for the
    transformations MATLAB applies to a network object (``closeloop``, ``openloop``).

    Raises:
        Mat2GradError: the new connections contain a zero-delay loop.
    """
    new = replace(spec, **changes)
    ctx = Where(spec.source, spec.path)
    return replace(new, order=sim_order(len(new.layers), list(new.layer_weights), ctx))


def sim_order(num_layers: int, layer_weights: Sequence[WeightSpec], ctx: Where) -> tuple[int, ...]:
    """Topological order of the zero-delay layer connections (Kahn's algorithm, stable).

    Raises:
        Mat2GradError: the zero-delay connections contain a loop.
    """
    deps = {i: set() for i in range(1, num_layers + 1)}
    for w in layer_weights:
        if 0 in w.delays:
            deps[w.to].add(w.source)
    order: list[int] = []
    done: set[int] = set()
    while len(order) < num_layers:
        ready = [i for i in range(1, num_layers + 1) if i not in done and deps[i] <= done]
        if not ready:
            loop = sorted(i for i in deps if i not in done)
            raise ctx.err(
                "layerConnect",
                f"layers {loop} form a zero-delay loop (MATLAB refuses to simulate it too)",
            )
        order.append(ready[0])
        done.add(ready[0])
    return tuple(order)
