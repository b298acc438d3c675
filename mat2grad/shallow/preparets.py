"""MATLAB's ``preparets``: input, feedback and target series -> the shifted series and
initial delay states that a dynamic network simulates from (see NOTE: [preparets]).

Series are batch-first: ``(Q, TS, R)``, Q independent series of TS time steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..contract import model_dtype_device
from ..errors import Mat2GradError
from .spec import InputSpec, NetworkSpec, OutputSpec

__all__ = ["Prepared", "preparets", "as_series"]

# NOTE: [preparets]
# https://mathworks.com/help/deeplearning/ref/preparets.html: "shifts input and target time
# series as many steps as are needed to fill the initial input and layer delay states. If
# the network has open-loop feedback, then it copies feedback targets into the inputs"; the
# details below are the toolbox's preparets.m (R2010b), read as facts, and match the
# documented narxnet(1:2,1:2) example: Xs = X(3:end), Xi = X(1:2), closed loop Ai{2,:} =
# processed T(1:2).
#   * inputs (and open-loop feedback targets, copied into their feedback inputs) are placed
#     unshifted; targets of an output with ``feedbackDelay`` d are placed d steps earlier;
#   * the shift is ``max(numInputDelays, numLayerDelays, max(closed-loop feedback layer
#     weight delays) - d)``; the first ``shift`` steps fill Xi (the last ``numInputDelays``
#     of them) and the rest is X;
#   * Ai is zeros, except the output layers, whose states are the targets of the
#     ``numLayerDelays`` steps before X, *processed* with the output's processing.


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
    dtype, device = model_dtype_device(net)
    input_only = [i for i in spec.inputs if i.feedback_output is None]
    fb_outputs = [o for o in spec.outputs if o.feedback_mode != "none"]
    plain_outputs = [o for o in spec.outputs if o.feedback_mode == "none"]
    inputs = [as_series(v, dtype, device, f"inputs[{k}]") for k, v in enumerate(inputs)]
    targets = [as_series(v, dtype, device, f"targets[{k}]") for k, v in enumerate(targets)]
    feedback = [as_series(v, dtype, device, f"feedback[{k}]") for k, v in enumerate(feedback)]

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


def as_series(value: Any, dtype: torch.dtype, device: torch.device, what: str) -> Tensor:
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
