"""The adjoints of the closed-form Jacobian (:mod:`mat2grad.shallow.jacobian`) and the
kernels that carry them back through a layer: the outer-product kernel K of a constant
adjoint and a weight, and the softmax-type transfer functions' per-sample product."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

__all__ = ["OUTER_K_BYTES", "Adjoint", "columnwise_vjp", "outer_k", "outer_k_pays"]

# NOTE: [Outer-product kernels]
#   For a constant adjoint g (S, H) of a layer with per-sample derivative d (c, H), the
#   product through the layer's incoming weight W (H, M) is, per sample, (g diag(d_q)) W =
#   sum_h d_q[h] g[:, h] W[h, :]: one GEMM d @ K with K[h, (s, m)] = g[s, h] W[h, m]
#   (H, S*M), the same multiply-adds as the per-sample route, g * d formed for every sample
#   (c, S, H) and multiplied by W, without forming it. Used into the Jacobian where W is an
#   input weight, and into the previous layer's adjoint where W is a layer weight and K
#   costs no more to form than g * d (c >= M) and stays small. g and W are the same for
#   every chunk of a computation, so K is made on its first chunk and kept (model B of
#   benchmarks/speed.py, 64-256-256-10: 25.1 GMAC/s for (385 x 256) @ (256 x 2560) against
#   22.1 for (3850 x 256) @ (256 x 256), and no 2 MB product of g and d per chunk).

#: the largest K of the layer-weight path (NOTE: [Outer-product kernels]), in bytes
OUTER_K_BYTES = 8 * 2**20


def outer_k(g: Tensor, weight: Tensor) -> Tensor:
    """K[h, (s, m)] = g[s, h] weight[h, m] for a constant adjoint ``g`` (S, H) and a weight
    (H, M): (H, S*M)."""
    # not MATLAB layout: (S, H) adjoint -> (H, S) for K[h, (s, m)]
    return (g.T[:, :, None] * weight[:, None, :]).reshape(weight.shape[0], -1)


def outer_k_pays(g: Tensor, weight: Tensor, c: int) -> bool:
    """Whether a chunk of ``c`` samples takes the layer-weight path through K (NOTE:
    [Outer-product kernels]): K costs S*H*M to form against c*S*H for g * d."""
    size = g.shape[0] * weight.shape[0] * weight.shape[1] * weight.element_size()
    return c >= weight.shape[1] and size <= OUTER_K_BYTES


@dataclass
class Adjoint:
    """d(stacked outputs)/d(activation of a layer): constant (S, H) or batched (c, S, H)."""

    value: Tensor
    batched: bool

    def plus(self, other: Adjoint) -> Adjoint:
        return Adjoint(self.value + other.value, self.batched or other.batched)


def columnwise_vjp(transfer: str, g: Adjoint, n: Tensor, a: Tensor) -> Adjoint:
    """g . d(transfer)/dn for softmax-type layers, per sample: (c, S, H)."""
    gv = g.value if g.batched else g.value[None]
    am = a[:, None, :]
    out = am * (gv - (gv * am).sum(-1, keepdim=True))  # softmax: a (g - <g, a>)
    if transfer == "radbasn":  # a = softmax(-n^2)
        out = out * (-2.0 * n[:, None, :])
    return Adjoint(out, True)
