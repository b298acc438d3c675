"""Weight-based importance for one-hidden-layer networks: Garson's and Olden's measures.

These read the trained weights only (no derivatives, no data), as users hand-code them
today; they are offered for comparison beside the derivative-based statistics and are
labelled ``kind="weights"``. For a network ``x -> IW (H x R) -> hidden -> LW (S x H) -> y``
(biases ignored), per output k and input i:

* Garson (1991), "Interpreting neural-network connection weights", AI Expert 6(4): each
  hidden unit's outgoing weight is shared among the inputs in proportion to their absolute
  incoming weights, ``G[k, i] = sum_h |LW[k,h]| |IW[h,i]| / sum_i' |IW[h,i']|``, normalised so
  each output's row sums to 1 (unsigned, relative).
* Olden & Jackson (2002), "Illuminating the black box", Ecol. Model. 154: the connection
  weight product ``O[k, i] = sum_h IW[h,i] LW[k,h]`` (signed, unnormalised).

The weights act on processed data (after ``mapminmax``/``mapstd``), so both measures are in
processed units; inputs removed by ``removeconstantrows`` get 0.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from ..contract import contract_of
from ..errors import Mat2GradError
from .network import element_names
from .result import SensitivityResult

__all__ = ["garson", "olden", "weight_importance"]

#: processing functions that keep rows apart (row i of the output depends on row i only)
_ROWWISE = {"mapminmax", "mapstd"}


def _rows(steps: tuple, size: int, where: str) -> np.ndarray:
    """Raw row of each processed row, through row-wise steps and removeconstantrows."""
    rows = np.arange(size)
    for step in steps:
        if step.fcn == "removeconstantrows":
            rows = rows[np.asarray(step.settings["keep"], dtype=np.int64)]
        elif step.fcn not in _ROWWISE:
            raise Mat2GradError(
                f"{where}: weight-based importance needs inputs and outputs processed row by "
                f"row (mapminmax, mapstd, removeconstantrows); found {step.fcn}; use the "
                "derivative-based mat2grad.sensitivity instead"
            )
    return rows


def _one_hidden(model: nn.Module) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, object]:
    c = contract_of(model)
    spec = c.spec
    ok = (
        spec is not None
        and hasattr(spec, "layers")
        and len(spec.layers) == 2
        and len(spec.inputs) == 1
        and len(spec.outputs) == 1
        and spec.outputs[0].layer == 2
        and len(spec.input_weights) == 1
        and len(spec.layer_weights) == 1
        and (spec.input_weights[0].to, spec.layer_weights[0].to) == (1, 2)
        and spec.layer_weights[0].source == 1
        and all(w.delays == (0,) and w.fcn == "dotprod" for w in spec.weights)
        and all(layer.net_input == "netsum" for layer in spec.layers)
    )
    if not ok:
        raise Mat2GradError(
            f"{c.name}: Garson's and Olden's measures are defined for MATLAB networks with one "
            "input, one hidden layer and one output layer (dotprod weights, no delays); use "
            "the derivative-based mat2grad.sensitivity for this network"
        )
    iw = np.asarray(spec.input_weights[0].value, dtype=np.float64)  # H x R_processed
    lw = np.asarray(spec.layer_weights[0].value, dtype=np.float64)  # S_processed x H
    rin = _rows(spec.inputs[0].steps, spec.inputs[0].size, c.name)
    rout = _rows(spec.outputs[0].steps, spec.outputs[0].size, c.name)
    return iw, lw, rin, rout, spec


def _place(values: np.ndarray, rout: np.ndarray, rin: np.ndarray, s: int, r: int) -> np.ndarray:
    out = np.zeros((s, r))
    out[np.ix_(rout, rin)] = values
    return out


def _result(model: nn.Module, stats: dict[str, np.ndarray], spec: object) -> SensitivityResult:
    c = contract_of(model)
    s, r = next(iter(stats.values())).shape
    ins = element_names([spec.inputs[0].name], [r], "x", {"", "input", "inputs"})
    outs = element_names([spec.outputs[0].name], [s], "y", {"", "output", "outputs"})
    return SensitivityResult(
        kind="weights",
        stats=stats,
        inputs=ins,
        outputs=outs,
        num_samples=0,
        settings={"basis": "weights (processed units), not derivatives", "network": c.name},
    )


def _garson(iw: np.ndarray, lw: np.ndarray) -> np.ndarray:
    a = np.abs(iw)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = a / a.sum(axis=1, keepdims=True)  # H x R: each hidden unit's input shares
        g = np.abs(lw) @ np.nan_to_num(share)  # S x R
        return g / g.sum(axis=1, keepdims=True)


def weight_importance(model: nn.Module) -> SensitivityResult:
    """Garson's (``garson``) and Olden's (``olden``) importance, ``(S, R)`` each."""
    iw, lw, rin, rout, spec = _one_hidden(model)
    s, r = spec.outputs[0].size, spec.inputs[0].size
    stats = {
        "garson": _place(_garson(iw, lw), rout, rin, s, r),
        "olden": _place(lw @ iw, rout, rin, s, r),
    }
    return _result(model, stats, spec)


def garson(model: nn.Module) -> SensitivityResult:
    """Garson's relative importance ``(S, R)`` (rows sum to 1); see the module docstring."""
    res = weight_importance(model)
    res.stats.pop("olden")
    return res


def olden(model: nn.Module) -> SensitivityResult:
    """Olden's connection-weight importance ``(S, R)`` (signed); see the module docstring."""
    res = weight_importance(model)
    res.stats.pop("garson")
    return res
