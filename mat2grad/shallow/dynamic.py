"""Dynamic shallow networks (``timedelaynet``, ``distdelaynet``, ``narxnet``, ``narnet``,
``layrecnet``, ...): simulation over time exactly as MATLAB's ``sim(net, X, Xi, Ai)``, and
the transformations MATLAB users apply around it: ``preparets``, ``closeloop``,
``openloop``, and closing the loop on delay states for multistep prediction.

Tensors are batch-first with time second and features last: an input sequence is
``(Q, TS, R)`` (Q independent series), input delay states ``(Q, numInputDelays, R)``, layer
delay states ``(Q, numLayerDelays, S)``; any number of leading batch dimensions works
(none: one series ``(TS, R)``), so the same code serves a batch, one series and
``torch.func.vmap``. Nothing is updated in place: the time loop builds lists and stacks
them, so reverse mode through time keeps memory linear in TS.

NOTE: [Time-series semantics] (MATLAB's documentation and the toolbox behaviour it
describes; the page each rule comes from is named)
    * Delay states are ordered oldest first: ``Xi{i,k}`` is input i at time ``k - ID`` and
      ``Ai{i,k}`` is layer i's output at time ``k - LD`` (``sim`` help text;
      https://mathworks.com/help/deeplearning/ref/network.sim.html). ``ID`` and ``LD`` are
      ``net.numInputDelays`` / ``net.numLayerDelays``, the largest input / layer weight
      delay.
    * ``Xi`` is in raw input units: it is put in front of X and the two are processed
      together (``processFcns`` order). ``Ai`` holds layer outputs, i.e. processed units.
      Both default to zeros (``sim`` help: "Xi - Initial input delay conditions, default =
      zeros"). The final states are the same kinds: ``Xf`` the last raw inputs, ``Af``
      the last layer outputs (MATLAB's genFunction code: ``Xf = [Xi(:,xits) X(:,xts)]``,
      ``Af(i,:) = Ad_i(:,ats)``).
    * Tapped delays stack delay-major: a weight with delays ``[d1 ... dk]`` sees
      ``[x(t-d1); x(t-d2); ...; x(t-dk)]``, each block R rows (DESIGN.md section 4, checked
      against a real narxnet and MATLAB's genFunction code).
    * Per time step, layers run in topological order of the zero-delay connections; a
      delayed layer weight reads the layer's output from earlier steps (or ``Ai``).
    * Closed loop: the fed-back value is the output layer's activation *before* reverse
      output processing (DESIGN.md section 4), so initial feedback states are *processed*
      targets (``preparets``: "Ai ... initial layer delay states").

NOTE: [closeloop / openloop] (https://mathworks.com/help/deeplearning/ref/closeloop.html,
https://mathworks.com/help/deeplearning/ref/openloop.html)
    ``closeloop`` "replaces its associated feedback input and their input weights with
    layer weight connections coming from the output ... the value of
    net.outputs{i}.feedbackDelay is added to the delays of the feedback layer weights";
    the input is deleted and ``feedbackMode`` becomes 'closed'. ``openloop`` does the
    reverse: a *new last* input that takes the output's processing settings, input weights
    from the former layer weights, ``feedbackDelay`` subtracted from their delays.
    ``[net,xi,ai] = closeloop(net,xi,ai)`` converts the delay states too: the feedback
    input's states become the output layer's states (through the input's processing,
    since layer states are processed values).

NOTE: [preparets] (https://mathworks.com/help/deeplearning/ref/preparets.html: "shifts
input and target time series as many steps as are needed to fill the initial input and
layer delay states. If the network has open-loop feedback, then it copies feedback targets
into the inputs"; the details below are the toolbox's preparets.m (R2010b), read as facts
from a public copy, and match the documented narxnet(1:2,1:2) example: Xs = X(3:end),
Xi = X(1:2), closed loop Ai{2,:} = processed T(1:2))
    * inputs (and open-loop feedback targets, copied into their feedback inputs) are placed
      unshifted; targets of an output with ``feedbackDelay`` d are placed d steps earlier;
    * the shift is ``max(numInputDelays, numLayerDelays, max(closed-loop feedback layer
      weight delays) - d)``; the first ``shift`` steps fill Xi (the last ``numInputDelays``
      of them) and the rest is X;
    * Ai is zeros, except the output layers, whose states are the targets of the
      ``numLayerDelays`` steps before X, *processed* with the output's processing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import Mat2GradError
from .functions import NET_INPUT, TRANSFER, WEIGHT
from .record import InputSpec, NetworkSpec, OutputSpec, WeightSpec, respec

__all__ = [
    "WithStates",
    "Simulation",
    "Prepared",
    "simulate",
    "preparets",
    "closeloop",
    "openloop",
    "closeloop_spec",
    "openloop_spec",
    "closeloop_states",
    "predict_ahead",
    "closed_loop_after",
]


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


@dataclass(frozen=True)
class Prepared:
    """What ``[Xs, Xi, Ai, Ts, ~, shift] = preparets(...)`` returns, batch-first.

    ``x``: ``(Q, TS - shift, R_j)`` per network input (feedback inputs hold the feedback
    targets); ``xi``: ``(Q, ID, R_j)`` per input; ``ai``: ``(Q, LD, S_i)`` per layer;
    ``t``: ``(Q, TS - shift, S_k)`` per output (NaN where no target was given); ``shift``:
    the number of leading time steps moved into the delay states.
    """

    x: tuple[Tensor, ...]
    xi: tuple[Tensor, ...]
    ai: tuple[Tensor, ...]
    t: tuple[Tensor, ...]
    shift: int


# --------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------


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
    xi = _states(xi, n_in, "xi", "inputs", spec)
    ai = _states(ai, n_layers, "ai", "layers", spec)

    batch_shapes: list[torch.Size] = []
    ts: int | None = None
    for j, (xj, size) in enumerate(zip(x, net.input_sizes, strict=True)):
        _check_tensor(xj, f"input {j + 1}")
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
            _check_tensor(s, f"{what}[{k}]")
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

    dtype, device = _dtype_device(net)

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


def _states(
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


def _check_tensor(value: Any, what: str) -> None:
    if not isinstance(value, Tensor):
        raise Mat2GradError(f"{what}: expected a torch.Tensor, found {type(value).__name__}")


def _dtype_device(net: Any) -> tuple[torch.dtype, torch.device]:
    for t in net.parameters():
        return t.dtype, t.device
    return torch.float64, torch.device("cpu")


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
        self.output_names = net.output_names
        self.output_shapes = net.output_shapes
        self.output_sizes = net.output_sizes
        self.zero_derivative = net.zero_derivative
        self.not_differentiable = net.not_differentiable
        self.eval()

    def forward(self, *args: Tensor) -> Tensor | tuple[Tensor, ...]:
        n, n_layers = self.num_sequences, len(self.spec.layers)
        if len(args) != 2 * n + n_layers:
            raise Mat2GradError(
                f"{self.spec.where} with its states takes {n} sequence(s), {n} input state(s) "
                f"and {n_layers} layer state(s) ({2 * n + n_layers} tensors); found {len(args)}"
            )
        return simulate(self.net, args[:n], args[n : 2 * n], args[2 * n :]).output


# --------------------------------------------------------------------------------------
# closeloop / openloop
# --------------------------------------------------------------------------------------


def closeloop_spec(spec: NetworkSpec) -> NetworkSpec:
    """MATLAB's ``closeloop(net)`` on a spec (see NOTE [closeloop / openloop]).

    A network without open-loop feedback is returned unchanged, as MATLAB does.

    Raises:
        Mat2GradError: a feedback input that does not fit its output, an output layer that
            already feeds other layers (MATLAB would silently drop those weights), or a
            zero-delay loop after closing.
    """
    opened = [o for o in spec.outputs if o.feedback_mode == "open"]
    if not opened:
        return spec
    inputs = list(spec.inputs)
    input_weights = list(spec.input_weights)
    layer_weights = list(spec.layer_weights)
    outputs = list(spec.outputs)
    removed: list[int] = []
    for out in opened:
        j = _feedback_input(spec, out)
        layer = spec.layers[out.layer - 1]
        if inputs[j - 1].processed_size != layer.size:
            raise Mat2GradError(
                f"{spec.where}: feedback input {j} has {inputs[j - 1].processed_size} "
                f"processed rows but output layer {out.layer} has {layer.size} neurons; "
                "the loop cannot be closed"
            )
        if any(w.source == out.layer for w in layer_weights):
            raise Mat2GradError(
                f"{spec.where}: output layer {out.layer} already feeds other layers through "
                "layer weights; MATLAB's closeloop would replace those weights, which "
                "mat2grad does not do silently"
            )
        for w in [w for w in input_weights if w.source == j]:
            layer_weights.append(_moved(spec, w, "LW", out.layer, out.feedback_delay, out))
            input_weights.remove(w)
        k = outputs.index(out)
        outputs[k] = replace(out, feedback_mode="closed", feedback_input=None)
        removed.append(j)

    for j in sorted(removed, reverse=True):  # delete inputs, renumbering those after them
        del inputs[j - 1]
        inputs = [replace(i, index=i.index - 1) if i.index > j else i for i in inputs]
        input_weights = [
            replace(w, source=w.source - 1) if w.source > j else w for w in input_weights
        ]
        outputs = [
            replace(o, feedback_input=o.feedback_input - 1)
            if o.feedback_input is not None and o.feedback_input > j
            else o
            for o in outputs
        ]
    return _rewired(spec, inputs, input_weights, layer_weights, outputs)


def openloop_spec(spec: NetworkSpec) -> NetworkSpec:
    """MATLAB's ``openloop(net)`` on a spec: each closed-loop output gets a new last input
    (its feedback input) carrying the output's processing; the output layer's layer
    weights become input weights with ``feedbackDelay`` subtracted from their delays.

    A network without closed-loop feedback is returned unchanged.
    """
    closed = [o for o in spec.outputs if o.feedback_mode == "closed"]
    if not closed:
        return spec
    inputs = list(spec.inputs)
    input_weights = list(spec.input_weights)
    layer_weights = list(spec.layer_weights)
    outputs = list(spec.outputs)
    for out in closed:
        j = len(inputs) + 1
        inputs.append(
            InputSpec(
                index=j,
                name=out.name,
                size=out.size,
                processed_size=out.processed_size,
                steps=out.steps,
                feedback_output=out.layer,
                example=None,
                range=out.range,
            )
        )
        for w in [w for w in layer_weights if w.source == out.layer]:
            input_weights.append(_moved(spec, w, "IW", j, -out.feedback_delay, out))
            layer_weights.remove(w)
        outputs[outputs.index(out)] = replace(out, feedback_mode="open", feedback_input=j)
    return _rewired(spec, inputs, input_weights, layer_weights, outputs)


def _moved(
    spec: NetworkSpec, w: WeightSpec, kind: str, source: int, shift: int, out: OutputSpec
) -> WeightSpec:
    """Weight ``w`` reconnected as a ``kind`` weight from ``source``, delays + ``shift``."""
    delays = tuple(d + shift for d in w.delays)
    if min(delays) < 0:
        raise Mat2GradError(
            f"{spec.where}: {w.label} delays {list(w.delays)} shifted by the feedbackDelay "
            f"{out.feedback_delay} of output {out.layer} become negative"
        )
    return WeightSpec(kind, w.to, source, delays, w.fcn, w.value)


def _rewired(
    spec: NetworkSpec,
    inputs: list[InputSpec],
    input_weights: list[WeightSpec],
    layer_weights: list[WeightSpec],
    outputs: list[OutputSpec],
) -> NetworkSpec:
    def order(w: WeightSpec) -> tuple[int, int]:  # MATLAB's cell order: by layer, then source
        return (w.to, w.source)

    return respec(
        spec,
        inputs=tuple(inputs),
        input_weights=tuple(sorted(input_weights, key=order)),
        layer_weights=tuple(sorted(layer_weights, key=order)),
        outputs=tuple(outputs),
    )


def closeloop(net: Any) -> Any:
    """``netc = closeloop(net)``: a new module of the same dtype (the input is unchanged)."""
    return _rebuilt(net, closeloop_spec(net.spec))


def openloop(net: Any) -> Any:
    """``neto = openloop(net)``: a new module of the same dtype (the input is unchanged)."""
    return _rebuilt(net, openloop_spec(net.spec))


def _rebuilt(net: Any, spec: NetworkSpec) -> Any:
    from .module import ShallowNetwork

    if spec is net.spec:
        return net
    dtype, device = _dtype_device(net)
    return ShallowNetwork(spec, dtype=dtype).to(device)


def _feedback_input(spec: NetworkSpec, out: OutputSpec) -> int:
    j = out.feedback_input
    if j is None or not 1 <= j <= len(spec.inputs):
        raise Mat2GradError(
            f"{spec.where}: output {out.layer} has feedbackMode 'open' but its feedbackInput "
            f"({j}) is not one of the {len(spec.inputs)} inputs"
        )
    if spec.inputs[j - 1].size != out.size:
        raise Mat2GradError(
            f"{spec.where}: feedback input {j} has {spec.inputs[j - 1].size} rows but output "
            f"{out.layer} has {out.size}"
        )
    return j


def closeloop_states(
    net: Any,
    xi: Sequence[Tensor | None] | None,
    ai: Sequence[Tensor | None] | None,
) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    """``[netc, xic, aic] = closeloop(net, xi, ai)``: the open-loop network's delay states
    converted to those of ``closeloop(net)``.

    The feedback input's states (raw units) become the output layer's states, processed
    with the feedback input's processing (layer states are processed values) and shifted
    by ``feedbackDelay``; other inputs keep their last ``numInputDelays`` (of the closed
    network) states; other layers keep theirs, padded with zeros at the old end.

    Args:
        net: the open-loop network module.
        xi: its input delay states ``(Q, ID, R_j)`` per input (e.g. ``Simulation.xf``).
        ai: its layer delay states ``(Q, LD, S_i)`` per layer (e.g. ``Simulation.af``).

    Returns:
        ``(xic, aic)`` for :func:`closeloop` ``(net)``.

    Raises:
        Mat2GradError: a ``feedbackDelay`` > 0 (after ``removedelay``): the closed-loop
            states would need feedback values of steps that have not happened yet.
    """
    spec: NetworkSpec = net.spec
    closed = closeloop_spec(spec)
    dtype, device = _dtype_device(net)
    n_in = len(spec.inputs)
    xi = _states(xi, n_in, "xi", "inputs", spec)
    ai = _states(ai, len(spec.layers), "ai", "layers", spec)
    nid_o, nld_o = spec.num_input_delays, spec.num_layer_delays
    nid_c, nld_c = closed.num_input_delays, closed.num_layer_delays
    shapes = [s.shape[:-2] for s in (*xi, *ai) if s is not None]
    batch = torch.broadcast_shapes(*shapes) if shapes else torch.Size()

    def full(s: Tensor | None, depth: int, size: int) -> Tensor:
        if s is None:
            return torch.zeros((*batch, depth, size), dtype=dtype, device=device)
        if s.shape[-2:] != (depth, size):
            raise Mat2GradError(
                f"{spec.where}: a delay state has shape {tuple(s.shape)}, expected "
                f"(Q, {depth}, {size})"
            )
        return s.expand(*batch, depth, size)

    xi_full = [full(s, nid_o, size) for s, size in zip(xi, net.input_sizes, strict=True)]
    feedback = {_feedback_input(spec, o): o for o in spec.outputs if o.feedback_mode == "open"}
    xic = tuple(
        xi_full[j - 1][..., nid_o - nid_c :, :] for j in range(1, n_in + 1) if j not in feedback
    )
    aic: list[Tensor] = []
    for layer in spec.layers:
        old = full(ai[layer.index - 1], nld_o, layer.size)
        pad = torch.zeros((*batch, nld_c - nld_o, layer.size), dtype=dtype, device=device)
        state = torch.cat([pad, old], dim=-2)
        fed = [(j, o) for j, o in feedback.items() if o.layer == layer.index]
        if fed:
            j, out = fed[0]
            d = out.feedback_delay
            if d > 0:
                raise Mat2GradError(
                    f"{spec.where}: output {out.layer} has feedbackDelay {d} (removedelay); "
                    "its closed-loop layer states would need feedback values of the next "
                    f"{d} step(s), which the open-loop input states do not hold. Prepare the "
                    "closed-loop network's states from the series with preparets instead"
                )
            proc = net.input_processing[j - 1].apply(xi_full[j - 1])  # (..., ID, S)
            # closed-loop time tau in 1-LDc..0 holds the feedback input at time tau + d
            keep = min(nld_c, nid_o)
            state = torch.cat([state[..., : nld_c - keep, :], proc[..., nid_o - keep :, :]], dim=-2)
        aic.append(state)
    return xic, tuple(aic)


# --------------------------------------------------------------------------------------
# preparets
# --------------------------------------------------------------------------------------


def preparets(
    net: Any,
    inputs: Sequence[Any] = (),
    targets: Sequence[Any] = (),
    feedback: Sequence[Any] = (),
) -> Prepared:
    """MATLAB's ``[Xs, Xi, Ai, Ts, ~, shift] = preparets(net, Xnf, Tnf, Tf)``.

    Args:
        net: the network module (open or closed loop, or without feedback).
        inputs: the non-feedback input series ``(Q, TS, R_j)``, in the network's input order
            with feedback inputs left out (MATLAB's ``Xnf``).
        targets: the series of the outputs without feedback ``(Q, TS, S_k)`` (``Tnf``);
            optional (NaN targets).
        feedback: the series of the feedback outputs, open or closed, in output order
            (``Tf``): copied into open-loop feedback inputs, and the source of closed-loop
            initial layer states.

    Returns:
        :class:`Prepared`; ``net(*p.x, xi=p.xi, ai=p.ai)`` simulates like ``net(Xs,Xi,Ai)``.

    Raises:
        Mat2GradError: series counts that do not match the network, lengths or series
            counts that disagree, a series too short to fill the delay states, feedback
            outputs without feedback targets, negative feedback delays.
    """
    spec: NetworkSpec = net.spec
    dtype, device = _dtype_device(net)
    input_only = [i for i in spec.inputs if i.feedback_output is None]
    fb_outputs = [o for o in spec.outputs if o.feedback_mode != "none"]
    plain_outputs = [o for o in spec.outputs if o.feedback_mode == "none"]
    inputs = [_as_series(v, dtype, device, f"inputs[{k}]") for k, v in enumerate(inputs)]
    targets = [_as_series(v, dtype, device, f"targets[{k}]") for k, v in enumerate(targets)]
    feedback = [_as_series(v, dtype, device, f"feedback[{k}]") for k, v in enumerate(feedback)]

    def count(given: list[Tensor], expected: int, what: str, hint: str) -> None:
        if len(given) != expected:
            raise Mat2GradError(
                f"{spec.where} has {expected} {what}, so preparets needs {expected} "
                f"{hint} series; found {len(given)}"
            )

    count(inputs, len(input_only), "non-feedback input(s)", "input")
    if targets:
        count(targets, len(plain_outputs), "output(s) without feedback", "target")
    if fb_outputs and not feedback:
        raise Mat2GradError(
            f"{spec.where} has feedback output(s) ({', '.join(str(o.layer) for o in fb_outputs)}"
            "): pass their target series as feedback (MATLAB: preparets(net, X, {}, T))"
        )
    count(feedback, len(fb_outputs), "feedback output(s)", "feedback")

    series = inputs + targets + feedback
    if not series:
        raise Mat2GradError("preparets needs at least one series (inputs, targets or feedback)")
    q, ts = series[0].shape[0], series[0].shape[1]
    for s in series:
        if s.shape[:2] != (q, ts):
            raise Mat2GradError(
                "every series needs the same number of series Q and time steps TS; found "
                f"(Q, TS) = {(q, ts)} and {tuple(s.shape[:2])}"
            )
    for o in spec.outputs:
        if o.feedback_delay < 0:
            raise Mat2GradError(
                f"{spec.where}: output {o.layer} has a negative feedbackDelay "
                f"({o.feedback_delay}, from adddelay); preparets for it is not supported"
            )

    fb_delay = max([0] + [o.feedback_delay for o in spec.outputs])
    length = fb_delay + ts
    fb_of = {o.layer: feedback[k] for k, o in enumerate(fb_outputs)}

    # Inputs unshifted at positions fb_delay .. fb_delay+TS-1 (zeros before).
    xx: list[Tensor] = []
    non_fb = iter(inputs)
    for inp in spec.inputs:
        if inp.feedback_output is None:
            data = next(non_fb)
        else:
            out = _output_of_input(spec, inp)
            data = fb_of[out.layer]
        _check_size(data, inp.size, f"the series for input {inp.index}")
        lead = torch.zeros((q, fb_delay, inp.size), dtype=dtype, device=device)
        xx.append(torch.cat([lead, data], dim=1))

    # Targets shifted d = feedbackDelay steps earlier, NaN elsewhere.
    tt: list[Tensor] = []
    plain = iter(targets) if targets else None
    for o in spec.outputs:
        if o.feedback_mode == "none":
            data = next(plain) if plain is not None else None
        else:
            data = fb_of[o.layer]
        if data is None:
            tt.append(torch.full((q, length, o.size), float("nan"), dtype=dtype, device=device))
            continue
        _check_size(data, o.size, f"the target series of output {o.layer}")
        d = o.feedback_delay
        before = torch.full((q, fb_delay - d, o.size), float("nan"), dtype=dtype, device=device)
        after = torch.full((q, d, o.size), float("nan"), dtype=dtype, device=device)
        tt.append(torch.cat([before, data, after], dim=1))

    nid, nld = spec.num_input_delays, spec.num_layer_delays
    layer_shift = nld
    for o in spec.outputs:
        if o.feedback_mode == "closed":
            for w in spec.layer_weights:
                if w.source == o.layer:
                    layer_shift = max(layer_shift, max(w.delays) - o.feedback_delay)
    shift = max(nid, layer_shift)
    start = fb_delay + shift
    if start >= length:
        raise Mat2GradError(
            f"{spec.where}: the series have {ts} time steps, but {shift} are needed to fill "
            "the delay states; nothing would be left to simulate"
        )
    xi = tuple(s[:, start - nid : start, :] for s in xx)
    x = tuple(s[:, start:, :] for s in xx)
    ai = [torch.zeros((q, nld, layer.size), dtype=dtype, device=device) for layer in spec.layers]
    for k, o in enumerate(spec.outputs):
        ai[o.layer - 1] = net.output_processing[k].apply(tt[k][:, start - nld : start, :])
    t = tuple(s[:, start:, :] for s in tt)
    return Prepared(x=x, xi=xi, ai=tuple(ai), t=t, shift=shift)


def _output_of_input(spec: NetworkSpec, inp: InputSpec) -> OutputSpec:
    for o in spec.outputs:
        if o.feedback_input == inp.index and o.feedback_mode == "open":
            return o
    raise Mat2GradError(
        f"{spec.where}: input {inp.index} is a feedback input (feedbackOutput "
        f"{inp.feedback_output}) but no open-loop output names it as its feedbackInput"
    )


def _as_series(value: Any, dtype: torch.dtype, device: torch.device, what: str) -> Tensor:
    if isinstance(value, Tensor):
        t = value.to(dtype=dtype, device=device)
    else:
        try:
            t = torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=dtype, device=device)
        except (TypeError, ValueError):
            raise Mat2GradError(
                f"{what}: expected a numeric array, found {type(value).__name__}"
            ) from None
    if t.ndim != 3:
        raise Mat2GradError(f"{what}: expected a (Q, TS, R) series, found shape {tuple(t.shape)}")
    return t


def _check_size(data: Tensor, size: int, what: str) -> None:
    if data.shape[-1] != size:
        raise Mat2GradError(f"{what} has {data.shape[-1]} features, expected {size}")


# --------------------------------------------------------------------------------------
# Multistep prediction following a known sequence
# --------------------------------------------------------------------------------------


def predict_ahead(
    net: Any,
    known_inputs: Sequence[Any],
    known_feedback: Sequence[Any],
    future_inputs: Sequence[Any] = (),
    *,
    steps: int | None = None,
) -> Simulation:
    """Multistep closed-loop prediction following a known sequence, MATLAB's recipe
    (https://mathworks.com/help/deeplearning/ug/multistep-neural-network-prediction.html)::

        [x, xi, ai] = preparets(net, X1, {}, T1);   % net in open-loop form
        [~, xf, af] = net(x, xi, ai);
        [netc, xi, ai] = closeloop(net, xf, af);
        Y2 = netc(X2, xi, ai);

    A network saved in closed-loop form is opened first (``openloop``).

    Args:
        net: a network with feedback outputs (open or closed loop).
        known_inputs: non-feedback input series ``(Q, TS1, R_j)`` up to the present.
        known_feedback: the feedback outputs' series ``(Q, TS1, S_k)`` up to the present.
        future_inputs: non-feedback input series ``(Q, TS2, R_j)`` of the prediction
            horizon (none for a ``narnet``: give ``steps``).
        steps: the horizon when the network has no non-feedback inputs.

    Returns:
        The closed-loop :class:`Simulation` over the horizon.
    """
    netc, xic, aic = closed_loop_after(net, known_inputs, known_feedback)
    dtype, device = _dtype_device(net)
    future = [
        _as_series(v, dtype, device, f"future_inputs[{k}]") for k, v in enumerate(future_inputs)
    ]
    return simulate(netc, future, xic, aic, steps=steps)


def closed_loop_after(
    net: Any, known_inputs: Sequence[Any], known_feedback: Sequence[Any]
) -> tuple[Any, tuple[Tensor, ...], tuple[Tensor, ...]]:
    """The first three lines of :func:`predict_ahead`'s recipe: the closed-loop network and
    its initial states after the known sequence (no autograd graph: the known part is data).

    Returns:
        ``(netc, xic, aic)``.
    """
    opened = openloop(net)
    if not any(o.feedback_mode == "open" for o in opened.spec.outputs):
        raise Mat2GradError(
            f"{net.spec.where} has no feedback output; multistep prediction needs a NARX-type "
            "network (narxnet, narnet)"
        )
    with torch.no_grad():
        prep = preparets(opened, known_inputs, (), known_feedback)
        sim = simulate(opened, prep.x, prep.xi, prep.ai)
        xic, aic = closeloop_states(opened, sim.xf, sim.af)
    return closeloop(opened), xic, aic
