"""Dynamic shallow networks (``timedelaynet``, ``distdelaynet``, ``narxnet``, ``narnet``,
``layrecnet``, ...) simulated over time exactly as MATLAB's ``sim(net, X, Xi, Ai)``.

Tensors are batch-first with time second and features last: an input sequence is
``(Q, TS, R)`` (Q independent series), input delay states ``(Q, numInputDelays, R)``, layer
delay states ``(Q, numLayerDelays, S)``; any number of leading batch dimensions works
(none: one series ``(TS, R)``), so the same code serves a batch, one series and
``torch.func.vmap``. Nothing is updated in place: the time loop builds lists and stacks
them, so reverse mode through time keeps memory linear in TS. See NOTE: [Time-series
semantics].

The network is any module built like :class:`~mat2grad.shallow.module.ShallowNetwork`
(``spec``, ``IW``/``LW``/``b`` parameters, processing chains): this module is below it and
does not import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..contract import describe_like, model_dtype_device
from ..errors import Mat2GradError
from .functions import NET_INPUT, TRANSFER, WEIGHT
from .spec import NetworkSpec, WeightSpec

__all__ = ["Simulation", "WithStates", "simulate", "state_list", "check_tensor"]

# NOTE: [Time-series semantics]
# MATLAB's documentation and the toolbox behaviour it describes; the page each rule comes
# from is named.
#   * Delay states are ordered oldest first: ``Xi{i,k}`` is input i at time ``k - ID`` and
#     ``Ai{i,k}`` is layer i's output at time ``k - LD`` (``sim`` help text;
#     https://mathworks.com/help/deeplearning/ref/network.sim.html). ``ID`` and ``LD`` are
#     ``net.numInputDelays`` / ``net.numLayerDelays``, the largest input / layer weight
#     delay.
#   * ``Xi`` is in raw input units: it is put in front of X and the two are processed
#     together (``processFcns`` order). ``Ai`` holds layer outputs, i.e. processed units.
#     Both default to zeros (``sim`` help: "Xi - Initial input delay conditions, default =
#     zeros"). The final states are the same kinds: ``Xf`` the last raw inputs, ``Af``
#     the last layer outputs (MATLAB's genFunction code: ``Xf = [Xi(:,xits) X(:,xts)]``,
#     ``Af(i,:) = Ad_i(:,ats)``).
#   * Tapped delays stack delay-major: a weight with delays ``[d1 ... dk]`` sees
#     ``[x(t-d1); x(t-d2); ...; x(t-dk)]``, each block R rows (checked against a real
#     narxnet and MATLAB's genFunction code).
#   * Per time step, layers run in topological order of the zero-delay connections; a
#     delayed layer weight reads the layer's output from earlier steps (or ``Ai``).
#   * Closed loop: the fed-back value is the output layer's activation *before* reverse
#     output processing, so initial feedback states are *processed* targets
#     (``preparets``: "Ai ... initial layer delay states").


@dataclass(frozen=True)
class Simulation:
    """What ``[Y, Xf, Af] = sim(net, X, Xi, Ai)`` returns, batch-first.

    ``outputs``: one ``(..., TS, S_k)`` tensor per output (raw units); ``xf``: final input
    delay states ``(..., ID, R_j)`` per input (raw units); ``af``: final layer delay states
    ``(..., LD, S_i)`` per layer (processed units). ``xf``/``af`` continue the simulation:
    ``simulate(net, x2, xf, af)`` equals the second half of simulating ``[x, x2]``.
    """

    outputs: tuple[Tensor, ...]
    xf: tuple[Tensor, ...]
    af: tuple[Tensor, ...]

    @property
    def output(self) -> Tensor | tuple[Tensor, ...]:
        """One tensor for one output, else the tuple (the module's return convention)."""
        return self.outputs[0] if len(self.outputs) == 1 else self.outputs


def simulate(
    net: Any,
    x: Sequence[Tensor],
    xi: Sequence[Tensor | None] | None = None,
    ai: Sequence[Tensor | None] | None = None,
    *,
    steps: int | None = None,
) -> Simulation:
    """Simulate a (dynamic) :class:`~mat2grad.shallow.module.ShallowNetwork` over time.

    Args:
        net: the network module (its parameters and processing chains are used).
        x: one raw input sequence ``(..., TS, R_j)`` per network input (for a network saved
            or converted to closed loop: its remaining, non-feedback inputs).
        xi: initial input delay states, ``(..., numInputDelays, R_j)`` per input, raw
            units, oldest first; ``None`` (or a ``None`` entry): zeros, MATLAB's default.
        ai: initial layer delay states, ``(..., numLayerDelays, S_i)`` per layer, layer
            outputs (processed units), oldest first; ``None``: zeros.
        steps: the number of time steps, needed only when the network has no inputs (a
            closed-loop ``narnet``); must agree with TS otherwise.

    Returns:
        :class:`Simulation` with outputs ``(..., TS, S_k)`` and the final states.

    Raises:
        Mat2GradError: wrong number of inputs or states, wrong sizes, time lengths that
            disagree, batch shapes that do not broadcast.

    Example:
        >>> sim = simulate(net, [torch.rand(4, 50, 2, dtype=torch.float64)])  # doctest: +SKIP
        >>> assert sim.outputs[0].shape == (4, 50, net.output_sizes[0])
    """
    spec: NetworkSpec = net.spec
    n_in, n_layers = len(spec.inputs), len(spec.layers)
    nid, nld = spec.num_input_delays, spec.num_layer_delays
    x = tuple(x)
    if len(x) != n_in:
        closed = any(o.feedback_mode == "closed" for o in spec.outputs)
        hint = " (a closed-loop network has no feedback input)" if closed else ""
        raise Mat2GradError(
            f"{spec.where} has {n_in} input(s){hint}, but {len(x)} sequence(s) were given"
        )
    xi = state_list(xi, n_in, "xi", "inputs", spec)
    ai = state_list(ai, n_layers, "ai", "layers", spec)

    batch_shapes: list[torch.Size] = []
    ts: int | None = None
    for j, (xj, size) in enumerate(zip(x, net.input_sizes, strict=True)):
        check_tensor(xj, f"input {j + 1}")
        if xj.ndim < 2 or xj.shape[-1] != size:
            raise Mat2GradError(
                f"{spec.where}: input {j + 1} has shape {tuple(xj.shape)} but the network "
                f"takes sequences of {size} features (inputs{{{j + 1}}}.size); pass "
                f"(Q, TS, {size})"
            )
        if ts is not None and xj.shape[-2] != ts:
            raise Mat2GradError(
                f"{spec.where}: every input sequence needs the same number of time steps; "
                f"found {ts} and {xj.shape[-2]}"
            )
        ts = xj.shape[-2]
        batch_shapes.append(xj.shape[:-2])
    if ts is None:
        if steps is None:
            raise Mat2GradError(
                f"{spec.where} has no inputs: say how many time steps to simulate (steps=N; "
                "CLI: --steps N)"
            )
        ts = int(steps)
    elif steps is not None and int(steps) != ts:
        raise Mat2GradError(f"steps={steps} but the input sequences have {ts} time steps")
    if ts < 0:
        raise Mat2GradError(f"the number of time steps must be >= 0, not {ts}")

    for what, states, sizes, depth in (
        ("xi", xi, net.input_sizes, nid),
        ("ai", ai, tuple(layer.size for layer in spec.layers), nld),
    ):
        for k, (s, size) in enumerate(zip(states, sizes, strict=True)):
            if s is None:
                continue
            check_tensor(s, f"{what}[{k}]")
            if s.ndim < 2 or s.shape[-2:] != (depth, size):
                unit, count, rows = (
                    ("input", "numInputDelays", "rows")
                    if what == "xi"
                    else ("layer", "numLayerDelays", "neurons")
                )
                raise Mat2GradError(
                    f"{spec.where}: {what}[{k}] ({unit} {k + 1}) has shape {tuple(s.shape)}, "
                    f"expected (Q, {depth}, {size}) ({count} = {depth}, {size} {rows})"
                )
            batch_shapes.append(s.shape[:-2])
    try:
        batch = torch.broadcast_shapes(*batch_shapes) if batch_shapes else torch.Size()
    except RuntimeError:
        shapes = ", ".join(str(tuple(b)) for b in batch_shapes)
        raise Mat2GradError(
            f"{spec.where}: the batch (series) dimensions of the inputs and delay states do "
            f"not agree: {shapes}"
        ) from None

    dtype, device = model_dtype_device(net)

    # Inputs: [Xi X], processed together, then the tapped delay lines of every input weight
    # for all time steps at once (inputs do not depend on the network's own outputs).
    combined: list[Tensor] = []
    processed: list[Tensor] = []
    for j, (xj, sj) in enumerate(zip(x, xi, strict=True)):
        size = net.input_sizes[j]
        if sj is None:
            sj = torch.zeros((*batch, nid, size), dtype=dtype, device=device)
        cj = torch.cat([sj.expand(*batch, nid, size), xj.expand(*batch, ts, size)], dim=-2)
        combined.append(cj)
        processed.append(net.input_processing[j].apply(cj))
    z_in = {
        (w.to, w.source): WEIGHT[w.fcn](
            _weight(net, w), _taps(processed[w.source - 1], w.delays, nid, ts)
        )
        for w in spec.input_weights
    }

    layers_seq = _run_layers(net, z_in, ai, batch, ts, dtype, device)

    outputs = tuple(
        chain.reverse(layers_seq[o.layer][0])
        for chain, o in zip(net.output_processing, spec.outputs, strict=True)
    )
    xf = tuple(c[..., ts:, :] for c in combined)
    af = tuple(layers_seq[i][1] for i in range(1, n_layers + 1))
    return Simulation(outputs, xf, af)


def _run_layers(
    net: Any,
    z_in: dict[tuple[int, int], Tensor],
    ai: Sequence[Tensor | None],
    batch: torch.Size,
    ts: int,
    dtype: torch.dtype,
    device: torch.device,
) -> dict[int, tuple[Tensor, Tensor]]:
    """Layer activations over time: ``{layer: ((..., TS, S), final states (..., LD, S))}``."""
    spec: NetworkSpec = net.spec
    nld = spec.num_layer_delays
    incoming = {
        layer.index: [w for w in spec.layer_weights if w.to == layer.index] for layer in spec.layers
    }
    iw_into = {layer.index: [key for key in z_in if key[0] == layer.index] for layer in spec.layers}

    def layer_output(i: int, zs: list[Tensor], shape: tuple[int, ...]) -> Tensor:
        layer = spec.layers[i - 1]
        if str(i) in net.b:
            zs.append(net.b[str(i)].expand(*shape, layer.size))
        if not zs:
            raise Mat2GradError(f"{spec.where}, layer {i}: the layer has no inputs and no bias")
        return TRANSFER[layer.transfer].apply(NET_INPUT[layer.net_input](zs))

    if nld == 0:
        # No layer delays: every time step is independent, so all steps run as one batch
        # (zero-delay layer weights only; MATLAB flattens time the same way).
        a: dict[int, Tensor] = {}
        for i in spec.order:
            zs = [z_in[key] for key in iw_into[i]]
            zs += [
                WEIGHT[w.fcn](_weight(net, w), torch.cat([a[w.source]] * len(w.delays), dim=-1))
                for w in incoming[i]
            ]
            a[i] = layer_output(i, zs, (*batch, ts))
        empty = {
            i: torch.zeros((*batch, 0, spec.layers[i - 1].size), dtype=dtype, device=device)
            for i in a
        }
        return {i: (a[i], empty[i]) for i in a}

    # Layer delays: step through time. history[i][m] is layer i's output at time
    # m + 1 - LD (m < LD: the initial states Ai), so time t - d of step index `step`
    # (t = step + 1) sits at history[i][step - d + LD].
    history: dict[int, list[Tensor]] = {}
    for layer in spec.layers:
        state = ai[layer.index - 1]
        if state is None:
            state = torch.zeros((*batch, nld, layer.size), dtype=dtype, device=device)
        else:
            state = state.expand(*batch, nld, layer.size)
        history[layer.index] = list(state.unbind(dim=-2))
    # unbind once: indexing one step at a time would make every backward step allocate
    # and add a gradient the size of the whole sequence (quadratic in TS)
    z_steps = {key: z.unbind(dim=-2) for key, z in z_in.items()}
    for step in range(ts):
        now: dict[int, Tensor] = {}
        for i in spec.order:
            zs = [z_steps[key][step] for key in iw_into[i]]
            for w in incoming[i]:
                taps = [
                    now[w.source] if d == 0 else history[w.source][step - d + nld] for d in w.delays
                ]
                p = taps[0] if len(taps) == 1 else torch.cat(taps, dim=-1)
                zs.append(WEIGHT[w.fcn](_weight(net, w), p))
            now[i] = layer_output(i, zs, tuple(batch))
        for i, value in now.items():
            history[i].append(value)
    return {
        i: (
            _stack_time(hist[nld:], batch, spec.layers[i - 1].size, dtype, device),
            torch.stack(hist[len(hist) - nld :], dim=-2),
        )
        for i, hist in history.items()
    }


def _taps(p: Tensor, delays: tuple[int, ...], nid: int, ts: int) -> Tensor:
    """Delay-major tapped delay line of the combined processed input ``p`` ``(..., ID+TS,
    P)``: ``(..., TS, len(delays) * P)`` whose block k at step t is ``p(t - delays[k])``."""
    blocks = [p[..., nid - d : nid - d + ts, :] for d in delays]
    return blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=-1)


def _stack_time(
    values: list[Tensor], batch: torch.Size, size: int, dtype: torch.dtype, device: torch.device
) -> Tensor:
    if values:
        return torch.stack(values, dim=-2)
    return torch.zeros((*batch, 0, size), dtype=dtype, device=device)


def _weight(net: Any, w: WeightSpec) -> Tensor:
    return (net.IW if w.kind == "IW" else net.LW)[f"{w.to}_{w.source}"]


def state_list(
    states: Sequence[Tensor | None] | None, n: int, name: str, per: str, spec: NetworkSpec
) -> tuple[Tensor | None, ...]:
    if states is None:
        return (None,) * n
    if isinstance(states, Tensor):
        raise Mat2GradError(
            f"{name} must be a sequence with one tensor per {per[:-1]} (or None), not a tensor"
        )
    states = tuple(states)
    if len(states) != n:
        raise Mat2GradError(
            f"{spec.where} has {n} {per}, so {name} needs {n} entries (one per {per[:-1]}, "
            f"None for zeros); found {len(states)}"
        )
    return states


def check_tensor(value: Any, what: str) -> None:
    if not isinstance(value, Tensor):
        raise Mat2GradError(f"{what}: expected a torch.Tensor, found {type(value).__name__}")


class WithStates(torch.nn.Module):
    """A dynamic network whose initial delay states are ordinary inputs.

    ``forward(x_1, ..., x_n, xi_1, ..., xi_n, ai_1, ..., ai_L)``: the n input sequences
    ``(Q, TS, R_j)``, then the input delay states ``(Q, numInputDelays, R_j)``, then the layer
    delay states ``(Q, numLayerDelays, S_i)``, all batch-first, so a generic engine that
    slices samples into chunks keeps every series with its own states, and can
    differentiate with respect to the sequences only (``wrt=range(n)``) or the states too.
    Follows the model contract (names, shapes, ``zero_derivative``, ``not_differentiable``).

    Example:
        >>> m = WithStates(net)                                     # doctest: +SKIP
        >>> y = m(x, t, xi_x, xi_t, ai_1, ai_2)   # == net(x, t, xi=[xi_x, xi_t], ai=[ai_1, ai_2])
    """

    def __init__(self, net: Any):
        super().__init__()
        if not getattr(net, "is_dynamic", False):
            raise Mat2GradError(f"{net.spec.where} is static: it has no delay states")
        self.net = net
        spec: NetworkSpec = net.spec
        self.spec = spec
        self.is_dynamic = True
        n_in, nid, nld = len(spec.inputs), spec.num_input_delays, spec.num_layer_delays
        self.num_sequences = n_in
        self.input_names = (
            tuple(net.input_names)
            + tuple(f"xi_{name}" for name in net.input_names)
            + tuple(f"ai_layer{layer.index}" for layer in spec.layers)
        )
        self.input_shapes = (
            tuple(net.input_shapes)
            + tuple((nid, size) for size in net.input_sizes)
            + tuple((nld, layer.size) for layer in spec.layers)
        )
        self.input_sizes = net.input_sizes
        self.output_sizes = net.output_sizes
        outputs = ("output_names", "output_shapes", "zero_derivative", "not_differentiable")
        describe_like(self, net, outputs)
        self.eval()

    def forward(self, *args: Tensor) -> Tensor | tuple[Tensor, ...]:
        n, n_layers = self.num_sequences, len(self.spec.layers)
        if len(args) != 2 * n + n_layers:
            raise Mat2GradError(
                f"{self.spec.where} with its states takes {n} sequence(s), {n} input state(s) "
                f"and {n_layers} layer state(s) ({2 * n + n_layers} tensors); found {len(args)}"
            )
        return simulate(self.net, args[:n], args[n : 2 * n], args[2 * n :]).output
