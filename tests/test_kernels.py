"""The closed form's dense kernels: mat2grad.kernels.

Independent check: torch's own ``matmul``/``tanh`` on the same values, within the
standard rounding bound of a K-term product (``gamma_K |a| |b|``, Higham 3.1) or a few
units in the last place, for both backends forced in turn; and which backend a process
chooses when ``MAT2GRAD_KERNELS`` fixes it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from mat2grad import kernels
from tests.support.helpers import checkout_env

BACKENDS = ["numpy", "torch"]


def _run(code: str, **env: str) -> str:
    """``code`` in a fresh interpreter (a process chooses its kernels once)."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**{k: v for k, v in checkout_env().items() if k != "MAT2GRAD_KERNELS"}, **env},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    monkeypatch.setenv("MAT2GRAD_KERNELS", request.param)
    return request.param


def _product_bound(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    k = a.shape[-1]
    u = torch.finfo(a.dtype).eps / 2
    return 2 * (k * u / (1 - k * u)) * (a.abs() @ b.abs())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(7, 5), (3, 4, 5)], ids=["matrix", "stacked"])
@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("into", [False, True])
def test_products_are_torch_products(backend, dtype, shape, transposed, into):
    g = torch.Generator().manual_seed(1)
    a = torch.randn(*shape, generator=g, dtype=dtype)
    b = (
        torch.randn(6, 5, generator=g, dtype=dtype).T
        if transposed
        else torch.randn(5, 6, generator=g, dtype=dtype)
    )
    expected = torch.matmul(a, b)
    out = torch.empty(*shape[:-1], 6, dtype=dtype) if into else None
    got = kernels.mm(a, b, out=out)
    assert got.shape == expected.shape and got.dtype == dtype
    if into:
        assert got.data_ptr() == out.data_ptr()
    assert ((got - expected).abs() <= _product_bound(a, b)).all()


def test_tanh_is_torch_tanh_to_a_few_ulps(backend):
    x = torch.linspace(-20, 20, 10001, dtype=torch.float64)
    out = torch.empty_like(x)
    got = kernels.tanh(x, out=out)
    assert got.data_ptr() == out.data_ptr()
    ulp = torch.finfo(torch.float64).eps * torch.tanh(x).abs().clamp_min(1e-300)
    assert ((got - torch.tanh(x)).abs() <= 4 * ulp).all()


def test_autograd_keeps_torch(monkeypatch):
    """Tensors autograd must see are never handed to numpy: the product stays in the graph."""
    monkeypatch.setenv("MAT2GRAD_KERNELS", "numpy")
    a = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, 2, dtype=torch.float64)
    y = kernels.mm(a, b)
    assert y.grad_fn is not None
    (g,) = torch.autograd.grad(y.sum(), a)
    torch.testing.assert_close(g, b.sum(1).expand(4, 3), rtol=0, atol=1e-15)
    with torch.no_grad():  # without autograd, parameters are plain values
        assert kernels.mm(a, b).grad_fn is None


@pytest.mark.parametrize("forced", ["torch", "numpy"])
def test_the_environment_fixes_the_choice(forced):
    code = "from mat2grad import kernels; print(kernels.choice('mm'), kernels.choice('tanh'))"
    out = _run(code, MAT2GRAD_KERNELS=forced)
    assert out.split() == [forced, forced]


def test_numpy_blas_follows_torch_threads():
    code = (
        "import torch, threadpoolctl\n"
        "from mat2grad import kernels\n"
        "torch.set_num_threads(1)\n"
        "ones = torch.ones(64, 64, dtype=torch.float64)\n"
        "kernels.mm(ones, ones)\n"
        "blas = threadpoolctl.threadpool_info()\n"
        "print(sorted({i['num_threads'] for i in blas if i['user_api'] == 'blas'}))"
    )
    assert _run(code, MAT2GRAD_KERNELS="numpy").strip() == "[1]"


def test_numpy_only_where_torch_runs_one_thread():
    """With several torch threads the two libraries' thread pools would fight over the
    cores: torch keeps every kernel; with one, the measured choice stands."""
    code = (
        "import torch\n"
        "from mat2grad import kernels\n"
        "torch.set_num_threads(2)\n"
        "print(kernels.choice('mm'), kernels.choice('tanh'))\n"
        "torch.set_num_threads(1)\n"
        "print(kernels.choice('mm') in ('numpy', 'torch'), kernels._chosen == {})\n"
    )
    first, second = _run(code).splitlines()
    assert first.split() == ["torch", "torch"]
    assert second.split() == ["True", "False"]  # measured once one thread runs
