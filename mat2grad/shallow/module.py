"""``NetworkSpec`` -> :class:`ShallowNetwork`, a plain ``nn.Module`` that simulates like
MATLAB's ``sim(net, X)``.

Tensors are batch-first with features last: an input is ``(..., R)``, an output ``(..., S)``.
The same forward serves a batch ``(Q, R)``, a single sample ``(R,)``, and ``torch.func.vmap``;
nothing is updated in place. Dynamic networks are simulated over time by
:mod:`mat2grad.shallow.simulate`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import Mat2GradError
from .describe import describe_spec
from .functions import NET_INPUT, TRANSFER, WEIGHT
from .jacobian import closed_form
from .processing import ProcessingChain
from .simulate import simulate
from .spec import NetworkSpec

# ProcessingChain and describe_spec are also re-exported here for their old import path.
__all__ = ["ShallowNetwork", "ProcessingChain", "describe_spec"]

# NOTE: [Simulation semantics]
# Verified against MATLAB's saved outputs (the reference tests):
#   * inputs are processed in ``processFcns`` order; outputs are reverse-processed in
#     reverse order;
#   * layer i: ``a_i = transferFcn_i(netInputFcn_i(weightFcn(IW{i,j}, p_j) for connected
#     inputs j, weightFcn(LW{i,k}, a_k) for connected layers k, b_i))``, the weighted inputs
#     in that order (inputs, then layers, then the bias);
#   * layers run in topological order of the zero-delay connections.


class ShallowNetwork(nn.Module):
    """A MATLAB shallow network as a PyTorch module.

    ``forward(*x)`` takes one tensor per network input, ``(Q, R_j)`` in raw (unprocessed)
    units, and returns ``(Q, S_k)`` raw outputs: one tensor for one output, else a tuple in
    MATLAB's output order. Weights are parameters named like MATLAB's cells:
    ``IW.1_1``, ``LW.2_1``, ``b.1`` (1-based), with ``requires_grad=False`` by default.

    Example:
        >>> net = mat2grad.load("net.mat")          # doctest: +SKIP
        >>> y = net(torch.rand(100, net.input_sizes[0], dtype=torch.float64))
        >>> assert y.shape == (100, net.output_sizes[0])
    """

    def __init__(self, spec: NetworkSpec, dtype: torch.dtype = torch.float64):
        super().__init__()
        if dtype not in (torch.float64, torch.float32):
            raise Mat2GradError(f"dtype must be torch.float64 or torch.float32, not {dtype}")
        self.spec = spec
        self.IW = nn.ParameterDict(
            {f"{w.to}_{w.source}": _param(w.value, dtype) for w in spec.input_weights}
        )
        self.LW = nn.ParameterDict(
            {f"{w.to}_{w.source}": _param(w.value, dtype) for w in spec.layer_weights}
        )
        self.b = nn.ParameterDict(
            {str(i + 1): _param(b, dtype) for i, b in enumerate(spec.biases) if b is not None}
        )
        self.input_processing = nn.ModuleList(ProcessingChain(i.steps, dtype) for i in spec.inputs)
        self.output_processing = nn.ModuleList(
            ProcessingChain(o.steps, dtype) for o in spec.outputs
        )
        self.input_sizes = tuple(i.size for i in spec.inputs)
        self.output_sizes = tuple(o.size for o in spec.outputs)
        #: True for tapped delays, layer delays or feedback: inputs are then sequences
        #: ``(Q, TS, R)`` and the time dimension of the shapes is ``None`` (any length).
        self.is_dynamic = spec.is_dynamic
        self.num_input_delays = spec.num_input_delays
        self.num_layer_delays = spec.num_layer_delays
        time = (None,) if self.is_dynamic else ()
        self.input_shapes = tuple((*time, n) for n in self.input_sizes)
        self.output_shapes = tuple((*time, n) for n in self.output_sizes)
        self.input_names = _names([i.name for i in spec.inputs], "input")
        self.output_names = _names([o.name for o in spec.outputs], "output")
        self.zero_derivative = spec.zero_derivative
        self.not_differentiable: str | None = None
        # Per layer: the weights feeding it, inputs first then layers (MATLAB's order).
        self._incoming = {layer.index: spec.incoming(layer.index) for layer in spec.layers}
        self.eval()

    # ----------------------------------------------------------------------------------
    def forward(
        self,
        *x: Tensor,
        xi: Sequence[Tensor | None] | None = None,
        ai: Sequence[Tensor | None] | None = None,
        steps: int | None = None,
    ) -> Tensor | tuple[Tensor, ...]:
        """Static networks: ``(Q, R_j)`` per input -> ``(Q, S_k)``.

        Dynamic networks (``is_dynamic``): ``(Q, TS, R_j)`` per input -> ``(Q, TS, S_k)``,
        simulated like MATLAB's ``sim(net, X, Xi, Ai)`` from initial input delay states
        ``xi`` (raw units, ``(Q, numInputDelays, R_j)`` per input, oldest first) and layer
        delay states ``ai`` (``(Q, numLayerDelays, S_i)`` per layer), both zeros by
        default; ``steps`` gives the length for a network without inputs (a closed-loop
        ``narnet``). See :mod:`mat2grad.shallow.simulate`.
        """
        spec = self.spec
        if self.is_dynamic:
            return simulate(self, x, xi=xi, ai=ai, steps=steps).output
        if xi is not None or ai is not None or steps is not None:
            raise Mat2GradError(
                f"{spec.where} is a static network: it has no delay states (xi, ai) or time "
                "steps; pass only the inputs"
            )
        if len(x) != len(spec.inputs):
            raise Mat2GradError(
                f"{spec.where} has {len(spec.inputs)} input(s), but {len(x)} were given"
            )
        for j, (xj, size) in enumerate(zip(x, self.input_sizes, strict=True)):
            if not isinstance(xj, Tensor):
                raise Mat2GradError(
                    f"input {j + 1}: expected a torch.Tensor, found {type(xj).__name__}"
                )
            if xj.ndim == 0 or xj.shape[-1] != size:
                raise Mat2GradError(
                    f"{spec.where}: input {j + 1} has shape {tuple(xj.shape)} but the network "
                    f"takes {size} features (inputs{{{j + 1}}}.size); pass (Q, {size})"
                )
        p = [chain.apply(xj) for chain, xj in zip(self.input_processing, x, strict=True)]
        a = self._layers(p, batch_shape=x[0].shape[:-1])
        out = tuple(
            chain.reverse(a[o.layer])
            for chain, o in zip(self.output_processing, spec.outputs, strict=True)
        )
        return out[0] if len(out) == 1 else out

    def _layers(self, p: list[Tensor], batch_shape: torch.Size) -> dict[int, Tensor]:
        """Layer activations (processed units) for processed inputs ``p``."""
        spec = self.spec
        a: dict[int, Tensor] = {}
        for i in spec.order:
            layer = spec.layers[i - 1]
            zs = []
            for w in self._incoming[i]:
                weights = (self.IW if w.kind == "IW" else self.LW)[f"{w.to}_{w.source}"]
                source = p[w.source - 1] if w.kind == "IW" else a[w.source]
                zs.append(WEIGHT[w.fcn](weights, source))
            if str(i) in self.b:
                # broadcast over the samples (one Add in an exported graph); a layer fed by
                # its bias alone takes the batch shape from the expansion
                bias = self.b[str(i)]
                zs.append(bias if zs else bias.expand(*batch_shape, layer.size))
            if not zs:
                raise Mat2GradError(f"{spec.where}, layer {i}: the layer has no inputs and no bias")
            a[i] = TRANSFER[layer.transfer].apply(NET_INPUT[layer.net_input](zs))
        return a

    def closed_form_jacobian(self, wrt: tuple[int, ...]) -> tuple[object | None, str]:
        """The model contract's closed-form hook (see ``mat2grad.contract.Model``): the
        closed-form Jacobian for inputs ``wrt``, or ``(None, why not)``."""
        return closed_form(self, wrt)

    # ----------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"ShallowNetwork({describe_spec(self.spec)})"


def _param(value: np.ndarray, dtype: torch.dtype) -> nn.Parameter:
    return nn.Parameter(
        torch.as_tensor(np.ascontiguousarray(value), dtype=dtype), requires_grad=False
    )


def _names(names: list[str], kind: str) -> tuple[str, ...]:
    if all(names) and len(set(names)) == len(names):
        return tuple(names)
    return tuple(f"{kind}{k + 1}" for k in range(len(names)))
