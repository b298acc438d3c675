"""The tables of MATLAB's shallow-network functions, written in torch.

One dict per family, one row per MATLAB function, for exactly the names of :mod:`.names`
(which reading a record checks against, without torch); an unknown name is rejected with
the list of supported names. Every function works on tensors whose
*last* dimension is the feature (row) dimension of MATLAB's ``R x Q`` / ``S x Q`` arrays and
whose leading dimensions are samples, so the same code serves a batch ``(Q, S)``, one sample
``(S,)`` and ``torch.func.vmap``. Nothing updates a tensor in place.

Sources (MathWorks documentation pages; the formulas are checked against MATLAB's own saved
outputs by the reference tests):

* transfer functions: https://mathworks.com/help/deeplearning/ref/<name>.html
  (tansig, logsig, purelin, poslin, satlin, satlins, radbas, radbasn, tribas, softmax,
  elliotsig, elliot2sig, hardlim, hardlims, compet, netinv)
* processing functions: mapminmax.html, mapstd.html, removeconstantrows.html,
  processpca.html, fixunknowns.html, lvqoutputs.html
* weight functions: dotprod.html, dist.html, negdist.html, normprod.html, mandist.html
* net input functions: netsum.html, netprod.html
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .names import ZERO_DERIVATIVE, check_supported

__all__ = [
    "TransferFcn",
    "TRANSFER",
    "WEIGHT",
    "NET_INPUT",
    "PROCESSING",
    "ZERO_DERIVATIVE",
    "lookup",
]


def lookup(table: Mapping[str, object], name: str, family: str, where: str) -> object:
    """Return ``table[name]``, or raise a Mat2GradError listing the supported names."""
    check_supported(table.keys(), name, family, where)
    return table[name]


# --------------------------------------------------------------------------------------
# Transfer functions  a = f(n)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransferFcn:
    apply: Callable[[Tensor], Tensor]
    #: "elementwise" or "columnwise" (softmax, radbasn, compet act across a whole column)
    kind: str = "elementwise"


def _step(n: Tensor, low: float) -> Tensor:
    # `n * 0` keeps the result attached to the autograd graph, so its derivative is an
    # honest zero (not "output does not require grad") wherever the step is flat.
    return torch.where(n >= 0, 1.0, low).to(n.dtype) + n * 0


def _compet(n: Tensor) -> Tensor:
    # MATLAB: [~, i] = max(n, [], 1); a = full(ind2vec(i)). torch.argmax returns the first
    # maximal index, as MATLAB's max does.
    idx = torch.argmax(n, dim=-1, keepdim=True)
    positions = torch.arange(n.shape[-1], device=n.device)
    return (positions == idx).to(n.dtype) + n * 0


TRANSFER: dict[str, TransferFcn] = {
    # tansig(n) = 2/(1+exp(-2n))-1, mathematically tanh (MATLAB's own doc says so); tanh
    # is exact where MATLAB's formula loses digits near 0 and overflows its derivative.
    "tansig": TransferFcn(torch.tanh),
    "logsig": TransferFcn(torch.sigmoid),  # 1/(1+exp(-n))
    "purelin": TransferFcn(lambda n: n),
    # poslin(n) = max(0, n). At n == 0 the derivative is torch's convention for relu: 0.
    "poslin": TransferFcn(torch.relu),
    # satlin/satlins clip; at the corners torch.clamp passes derivative 1.
    "satlin": TransferFcn(lambda n: torch.clamp(n, 0.0, 1.0)),
    "satlins": TransferFcn(lambda n: torch.clamp(n, -1.0, 1.0)),
    "radbas": TransferFcn(lambda n: torch.exp(-(n * n))),
    # radbasn: exp(-n^2) normalised over the column = softmax(-n^2) (MATLAB subtracts the
    # column max before exp, as softmax does).
    "radbasn": TransferFcn(lambda n: torch.softmax(-(n * n), dim=-1), kind="columnwise"),
    "tribas": TransferFcn(lambda n: torch.clamp(1.0 - torch.abs(n), min=0.0)),
    "softmax": TransferFcn(lambda n: torch.softmax(n, dim=-1), kind="columnwise"),
    "elliotsig": TransferFcn(lambda n: n / (1.0 + torch.abs(n))),
    "elliot2sig": TransferFcn(lambda n: torch.sign(n) * (n * n) / (1.0 + n * n)),
    # the derivative of these three is zero almost everywhere (names.ZERO_DERIVATIVE)
    "hardlim": TransferFcn(lambda n: _step(n, 0.0)),
    "hardlims": TransferFcn(lambda n: _step(n, -1.0)),
    "compet": TransferFcn(_compet, kind="columnwise"),
    "netinv": TransferFcn(lambda n: 1.0 / n),  # "returns 1/N"
}


# --------------------------------------------------------------------------------------
# Weight functions  z = f(W, p): W is S x R, p is (..., R), z is (..., S)
# --------------------------------------------------------------------------------------


def _dotprod(w: Tensor, p: Tensor) -> Tensor:
    return p @ w.T  # not MATLAB layout: z = W p with samples in rows


def _sqdist(w: Tensor, p: Tensor) -> Tensor:
    diff = p.unsqueeze(-2) - w  # (..., S, R)
    return (diff * diff).sum(-1)


def _dist(w: Tensor, p: Tensor) -> Tensor:
    # Euclidean distance. Its derivative is unbounded where p equals a weight row; there
    # (d == 0) this returns the subgradient 0 instead of NaN.
    d2 = _sqdist(w, p)
    positive = d2 > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, d2, 1.0)), 0.0 * d2)


def _mandist(w: Tensor, p: Tensor) -> Tensor:
    return torch.abs(p.unsqueeze(-2) - w).sum(-1)


def _normprod(w: Tensor, p: Tensor) -> Tensor:
    # NORMPROD.APPLY: p = p + 1e-20*sign(p); sump = sum(abs(p)); sump(sump==0) = 1;
    # z = w * (p .* (1 ./ sump))
    p = p + 1e-20 * torch.sign(p)
    sump = torch.abs(p).sum(-1, keepdim=True)
    sump = torch.where(sump == 0, torch.ones_like(sump), sump)
    return (p * (1.0 / sump)) @ w.T  # not MATLAB layout: z = W p with samples in rows


WEIGHT: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "dotprod": _dotprod,
    "dist": _dist,
    "negdist": lambda w, p: -_dist(w, p),
    "mandist": _mandist,
    "normprod": _normprod,
}


# --------------------------------------------------------------------------------------
# Net input functions  n = f(z1, z2, ..., b)
# --------------------------------------------------------------------------------------


def _netsum(zs: Sequence[Tensor]) -> Tensor:
    n = zs[0]
    for z in zs[1:]:
        n = n + z
    return n


def _netprod(zs: Sequence[Tensor]) -> Tensor:
    n = zs[0]
    for z in zs[1:]:
        n = n * z
    return n


NET_INPUT: dict[str, Callable[[Sequence[Tensor]], Tensor]] = {
    "netsum": _netsum,
    "netprod": _netprod,
}


# --------------------------------------------------------------------------------------
# Processing functions: apply (raw -> processed) and reverse (processed -> raw).
# Settings are float64 tensors prepared by shallow.record; see module.ProcessStep.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessingFcn:
    apply: Callable[[Tensor, Mapping[str, Tensor]], Tensor]
    reverse: Callable[[Tensor, Mapping[str, Tensor]], Tensor]
    #: settings fields (after record.py has completed them) the functions read
    needs: tuple[str, ...]


def _affine_apply(x: Tensor, s: Mapping[str, Tensor], base: str) -> Tensor:
    # MAPMINMAX.APPLY / MAPSTD.APPLY: y = (x - xoffset) .* gain + ymin (or ymean)
    return (x - s["xoffset"]) * s["gain"] + s[base]


def _affine_reverse(y: Tensor, s: Mapping[str, Tensor], base: str) -> Tensor:
    # MAPMINMAX.REVERSE: x = (y - ymin) ./ gain + xoffset (a division, as MATLAB does)
    return (y - s[base]) / s["gain"] + s["xoffset"]


def _rcr_apply(x: Tensor, s: Mapping[str, Tensor]) -> Tensor:
    return torch.index_select(x, -1, s["keep"])


def _rcr_reverse(y: Tensor, s: Mapping[str, Tensor]) -> Tensor:
    # REMOVECONSTANTROWS.REVERSE: x(keep,:) = y; x(remove,:) = constants. Built without
    # in-place writes: append the constants, then gather rows into their original places.
    constants = s["constants"].expand(*y.shape[:-1], -1).to(y.dtype)
    return torch.index_select(torch.cat([y, constants], dim=-1), -1, s["order"])


def _fixunknowns_apply(x: Tensor, s: Mapping[str, Tensor]) -> Tensor:
    # FIXUNKNOWNS.APPLY: NaNs become the row means xmeans; each row listed in `unknown`
    # is followed by a flag row, 1 where the value was known and 0 where it was NaN.
    isnan = torch.isnan(x)
    filled = torch.where(isnan, s["xmeans"].to(x.dtype), x)
    flags = (~torch.index_select(isnan, -1, s["unknown"])).to(x.dtype)
    return torch.index_select(torch.cat([filled, flags], dim=-1), -1, s["order"])


def _fixunknowns_reverse(y: Tensor, s: Mapping[str, Tensor]) -> Tensor:
    return torch.index_select(y, -1, s["value_rows"])


def _pca_apply(x: Tensor, s: Mapping[str, Tensor]) -> Tensor:
    return x @ s["transform"].T  # not MATLAB layout: y = transform * x, samples in rows


def _pca_reverse(y: Tensor, s: Mapping[str, Tensor]) -> Tensor:
    return y @ s["inverseTransform"].T  # not MATLAB layout: x = inverseTransform * y, rows


def _identity(x: Tensor, s: Mapping[str, Tensor]) -> Tensor:
    return x


PROCESSING: dict[str, ProcessingFcn] = {
    "mapminmax": ProcessingFcn(
        lambda x, s: _affine_apply(x, s, "ymin"),
        lambda y, s: _affine_reverse(y, s, "ymin"),
        ("xoffset", "gain", "ymin"),
    ),
    "mapstd": ProcessingFcn(
        lambda x, s: _affine_apply(x, s, "ymean"),
        lambda y, s: _affine_reverse(y, s, "ymean"),
        ("xoffset", "gain", "ymean"),
    ),
    "removeconstantrows": ProcessingFcn(_rcr_apply, _rcr_reverse, ("keep", "constants", "order")),
    "fixunknowns": ProcessingFcn(
        _fixunknowns_apply, _fixunknowns_reverse, ("xmeans", "unknown", "order", "value_rows")
    ),
    "processpca": ProcessingFcn(_pca_apply, _pca_reverse, ("transform", "inverseTransform")),
    # lvqoutputs only records class ratios for training; simulation passes values through.
    "lvqoutputs": ProcessingFcn(_identity, _identity, ()),
}
