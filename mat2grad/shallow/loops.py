"""The transformations MATLAB users apply around a dynamic network: ``closeloop``,
``openloop`` (on the spec and on the module), converting delay states to the closed loop,
and multistep prediction that closes the loop after a known sequence.

See NOTE: [closeloop / openloop]; the states follow NOTE: [Time-series semantics] in
:mod:`mat2grad.shallow.simulate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from ..contract import model_dtype_device
from ..errors import Mat2GradError
from .module import ShallowNetwork
from .preparets import as_series, preparets
from .simulate import Simulation, simulate, state_list
from .spec import InputSpec, NetworkSpec, OutputSpec, WeightSpec, respec

__all__ = [
    "closeloop",
    "openloop",
    "closeloop_spec",
    "openloop_spec",
    "closeloop_states",
    "predict_ahead",
    "closed_loop_after",
]

# NOTE: [closeloop / openloop]
# https://mathworks.com/help/deeplearning/ref/closeloop.html,
# https://mathworks.com/help/deeplearning/ref/openloop.html
#   ``closeloop`` "replaces its associated feedback input and their input weights with
#   layer weight connections coming from the output ... the value of
#   net.outputs{i}.feedbackDelay is added to the delays of the feedback layer weights";
#   the input is deleted and ``feedbackMode`` becomes 'closed'. ``openloop`` does the
#   reverse: a *new last* input that takes the output's processing settings, input weights
#   from the former layer weights, ``feedbackDelay`` subtracted from their delays.
#   ``[net,xi,ai] = closeloop(net,xi,ai)`` converts the delay states too: the feedback
#   input's states become the output layer's states (through the input's processing,
#   since layer states are processed values).


@dataclass
class _Wiring:
    """The parts of a spec that ``closeloop``/``openloop`` rewire, as lists to edit."""

    inputs: list[InputSpec]
    input_weights: list[WeightSpec]
    layer_weights: list[WeightSpec]
    outputs: list[OutputSpec]

    @classmethod
    def of(cls, spec: NetworkSpec) -> _Wiring:
        return cls(
            list(spec.inputs),
            list(spec.input_weights),
            list(spec.layer_weights),
            list(spec.outputs),
        )

    def respec(self, spec: NetworkSpec) -> NetworkSpec:
        """``spec`` with these connections, weights in MATLAB's cell order (by layer, then
        source), and the simulation order recomputed."""

        def order(w: WeightSpec) -> tuple[int, int]:
            return (w.to, w.source)

        return respec(
            spec,
            inputs=tuple(self.inputs),
            input_weights=tuple(sorted(self.input_weights, key=order)),
            layer_weights=tuple(sorted(self.layer_weights, key=order)),
            outputs=tuple(self.outputs),
        )


def closeloop_spec(spec: NetworkSpec) -> NetworkSpec:
    """MATLAB's ``closeloop(net)`` on a spec (see NOTE: [closeloop / openloop]).

    A network without open-loop feedback is returned unchanged, as MATLAB does.

    Raises:
        Mat2GradError: a feedback input that does not fit its output, an output layer that
            already feeds other layers (MATLAB would silently drop those weights), or a
            zero-delay loop after closing.
    """
    opened = [o for o in spec.outputs if o.feedback_mode == "open"]
    if not opened:
        return spec
    new = _Wiring.of(spec)
    removed: list[int] = []
    for out in opened:
        j = _feedback_input(spec, out)
        layer = spec.layers[out.layer - 1]
        if new.inputs[j - 1].processed_size != layer.size:
            raise Mat2GradError(
                f"{spec.where}: feedback input {j} has {new.inputs[j - 1].processed_size} "
                f"processed rows but output layer {out.layer} has {layer.size} neurons; "
                "the loop cannot be closed"
            )
        if any(w.source == out.layer for w in new.layer_weights):
            raise Mat2GradError(
                f"{spec.where}: output layer {out.layer} already feeds other layers through "
                "layer weights; MATLAB's closeloop would replace those weights, which "
                "mat2grad does not do silently"
            )
        for w in [w for w in new.input_weights if w.source == j]:
            new.layer_weights.append(_moved(spec, w, "LW", out.layer, out.feedback_delay, out))
            new.input_weights.remove(w)
        k = new.outputs.index(out)
        new.outputs[k] = replace(out, feedback_mode="closed", feedback_input=None)
        removed.append(j)

    for j in sorted(removed, reverse=True):  # delete inputs, renumbering those after them
        del new.inputs[j - 1]
        new.inputs = [replace(i, index=i.index - 1) if i.index > j else i for i in new.inputs]
        new.input_weights = [
            replace(w, source=w.source - 1) if w.source > j else w for w in new.input_weights
        ]
        new.outputs = [
            replace(o, feedback_input=o.feedback_input - 1)
            if o.feedback_input is not None and o.feedback_input > j
            else o
            for o in new.outputs
        ]
    return new.respec(spec)


def openloop_spec(spec: NetworkSpec) -> NetworkSpec:
    """MATLAB's ``openloop(net)`` on a spec: each closed-loop output gets a new last input
    (its feedback input) carrying the output's processing; the output layer's layer
    weights become input weights with ``feedbackDelay`` subtracted from their delays.

    A network without closed-loop feedback is returned unchanged.
    """
    closed = [o for o in spec.outputs if o.feedback_mode == "closed"]
    if not closed:
        return spec
    new = _Wiring.of(spec)
    for out in closed:
        j = len(new.inputs) + 1
        new.inputs.append(
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
        for w in [w for w in new.layer_weights if w.source == out.layer]:
            new.input_weights.append(_moved(spec, w, "IW", j, -out.feedback_delay, out))
            new.layer_weights.remove(w)
        new.outputs[new.outputs.index(out)] = replace(out, feedback_mode="open", feedback_input=j)
    return new.respec(spec)


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


def closeloop(net: Any) -> Any:
    """``netc = closeloop(net)``: a new module of the same dtype (the input is unchanged)."""
    return _rebuilt(net, closeloop_spec(net.spec))


def openloop(net: Any) -> Any:
    """``neto = openloop(net)``: a new module of the same dtype (the input is unchanged)."""
    return _rebuilt(net, openloop_spec(net.spec))


def _rebuilt(net: Any, spec: NetworkSpec) -> Any:
    if spec is net.spec:
        return net
    dtype, device = model_dtype_device(net)
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
    dtype, device = model_dtype_device(net)
    n_in = len(spec.inputs)
    xi = state_list(xi, n_in, "xi", "inputs", spec)
    ai = state_list(ai, len(spec.layers), "ai", "layers", spec)
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
    dtype, device = model_dtype_device(net)
    future = [
        as_series(v, dtype, device, f"future_inputs[{k}]") for k, v in enumerate(future_inputs)
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
