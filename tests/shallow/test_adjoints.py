"""The closed form's adjoint kernels: mat2grad.shallow.adjoints (NOTE: [Outer-product
kernels]). The kernel K against the per-sample route it replaces, when the layer-weight path
is taken, and closed-form Jacobians through it against reverse mode and forward mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mat2grad
from mat2grad.shallow import jacobian as closed
from mat2grad.shallow.adjoints import OUTER_K_BYTES, outer_k, outer_k_pays
from tests.support.helpers import MODES_RTOL, assert_close
from tests.support.records import network


def test_outer_k_equals_the_adjoint_times_the_derivative_times_the_weight():
    g = torch.Generator().manual_seed(0)
    s, h, m, c = 3, 5, 4, 7
    adj = torch.randn(s, h, generator=g, dtype=torch.float64)
    weight = torch.randn(h, m, generator=g, dtype=torch.float64)
    d = torch.rand(c, h, generator=g, dtype=torch.float64)
    got = (d @ outer_k(adj, weight)).view(c, s, m)
    want = torch.stack([adj @ torch.diag(d[q]) @ weight for q in range(c)])
    assert_close(got.numpy(), want.numpy(), MODES_RTOL, "d @ K")


def test_the_layer_weight_path_needs_enough_samples_and_a_small_kernel():
    adj = torch.zeros(10, 256, dtype=torch.float64)
    weight = torch.zeros(256, 256, dtype=torch.float64)
    assert outer_k_pays(adj, weight, 256)
    assert not outer_k_pays(adj, weight, 255)  # K would cost more to form than g * d
    wide = torch.zeros(OUTER_K_BYTES // (8 * 256 * 256) + 1, 256, dtype=torch.float64)
    assert not outer_k_pays(wide, weight, 10**6)  # K over OUTER_K_BYTES


def _count_kernels(monkeypatch) -> list[tuple[int, ...]]:
    """The weight shape of every outer-product kernel the closed form makes, in order."""
    kernels = []
    original = closed.outer_k

    def counted(adj, weight):
        kernels.append(tuple(weight.shape))
        return original(adj, weight)

    monkeypatch.setattr(closed, "outer_k", counted)
    return kernels


@pytest.mark.parametrize("chunk", [None, 16])
def test_closed_form_through_the_layer_weight_path_agrees_with_autograd(monkeypatch, chunk):
    net = network(
        input_sizes=(4,),
        layers=((6, "tansig"), (7, "logsig"), (5, "tansig"), (2, "purelin")),
        seed=3,
        dtype=torch.float64,
    )
    x = torch.from_numpy(np.random.default_rng(1).uniform(-2, 2, (40, 4)))
    kernels = _count_kernels(monkeypatch)
    analytic = mat2grad.jacobian(net, x, mode="analytic", chunk_size=chunk)
    # layer 3 <- 2 (W 5 x 7, a constant adjoint from the purelin output) takes the path, its
    # K formed once for all chunks (16, 16, 8 samples, each at least 7); below it the
    # adjoints are per sample
    assert kernels == [(5, 7)], kernels
    assert not net.__dict__["_mat2grad_closed_form"][1]._kept  # dropped after the call
    for mode in ("rev", "fwd"):
        other = mat2grad.jacobian(net, x, mode=mode)
        assert_close(analytic.numpy(), other.numpy(), MODES_RTOL, f"analytic vs {mode}")


def test_the_input_weights_kernel_is_made_once_per_computation(monkeypatch):
    # one hidden layer: the whole Jacobian is d @ K, K formed on the first of 4 chunks
    net = network(input_sizes=(4,), layers=((6, "tansig"), (3, "purelin")), seed=5)
    x = torch.from_numpy(np.random.default_rng(2).uniform(-2, 2, (40, 4)))
    kernels = _count_kernels(monkeypatch)
    for _ in range(2):  # a second computation makes its own
        analytic = mat2grad.jacobian(net, x, mode="analytic", chunk_size=10)
    assert kernels == [(6, 4), (6, 4)], kernels
    other = mat2grad.jacobian(net, x, mode="rev")
    assert_close(analytic.numpy(), other.numpy(), MODES_RTOL, "analytic vs rev")
