"""Transfer derivatives ``f'(n)`` for the closed-form Jacobian (:mod:`.jacobian`), from the
net input ``n`` and the activation ``a = f(n)``, elementwise, into a given buffer.
Conventions at kinks are torch's (See NOTE: [Kinks] in :mod:`mat2grad.autodiff`); the
tests check every one against torch's autograd of the transfer function itself."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["DERIVATIVE", "COLUMNWISE"]


def _tansig(n: Tensor, a: Tensor, out: Tensor) -> Tensor:
    return torch.addcmul(_one(a), a, a, value=-1.0, out=out)  # 1 - a^2


def _logsig(n: Tensor, a: Tensor, out: Tensor) -> Tensor:
    torch.sub(_one(a), a, out=out)
    return out.mul_(a)  # a (1 - a)


def _one(a: Tensor) -> Tensor:
    return torch.ones((), dtype=a.dtype, device=a.device)


DERIVATIVE: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor] | None] = {
    "purelin": None,  # identity: adjoints stay constant
    "tansig": _tansig,
    "logsig": _logsig,
    "poslin": lambda n, a, out: out.copy_(n > 0),  # relu'(0) = 0
    "satlin": lambda n, a, out: out.copy_((n >= 0) & (n <= 1)),  # clamp: 1 at the corners
    "satlins": lambda n, a, out: out.copy_((n >= -1) & (n <= 1)),
    "radbas": lambda n, a, out: torch.mul(n, a, out=out).mul_(-2.0),  # -2 n exp(-n^2)
    "tribas": lambda n, a, out: out.copy_(torch.where(torch.abs(n) <= 1, -torch.sign(n), 0.0)),
    "elliotsig": lambda n, a, out: out.copy_(1.0 / torch.square(1.0 + torch.abs(n))),
    "elliot2sig": lambda n, a, out: out.copy_(2.0 * torch.abs(n) / torch.square(1.0 + n * n)),
    "netinv": lambda n, a, out: torch.mul(a, a, out=out).neg_(),  # d(1/n) = -1/n^2
}

#: transfer functions acting on a whole column, with their vector-Jacobian products
COLUMNWISE = ("softmax", "radbasn")
