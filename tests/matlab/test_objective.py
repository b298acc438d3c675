"""mat2grad_objective in Octave's fminunc, against scipy.optimize.minimize on the same
network: the same optimum from the same start, and fewer evaluations with the gradient."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import scipy.io
import scipy.optimize
import torch

import mat2grad
from tests.matlab.test_worker import EXAMPLE, OCTAVE, octave_command, octave_env

pytestmark = pytest.mark.skipif(OCTAVE is None, reason="needs GNU Octave (octave-cli on PATH)")

#: The objective: network output K plus a quadratic pull towards the sample C (scaled by
#: the inputs' spread S), so that the minimum is interior (m2g_test_penalised.m).
K, SAMPLE = 1, 7


def _scipy_optimum(c: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The same objective in Python, its gradient by torch autograd on the loaded network
    (not through mat2grad's Jacobian commands), minimised by BFGS."""
    model = mat2grad.load(EXAMPLE)

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        xt = torch.tensor(x[None, :], dtype=torch.float64, requires_grad=True)
        y = model(xt)[0, K - 1]
        (g,) = torch.autograd.grad(y, xt)
        z = (x - c) / s
        return float(y.detach()) + 0.5 * float(z @ z), g[0].numpy() + z / s

    result = scipy.optimize.minimize(fun, c, jac=True, method="BFGS", options={"gtol": 1e-9})
    # BFGS may stop on "precision loss" once the objective no longer changes in float64;
    # what matters is the gradient there, in units of each input's spread
    assert np.max(np.abs(result.jac * s)) < 1e-8, result
    return result.x


def test_fminunc_with_the_gradient_finds_scipys_optimum(tmp_path):
    out = tmp_path / "out.mat"
    code = f"""
        mat2grad_setup('Worker', true);
        c = S.X(:, {SAMPLE}); s = std(S.X, 0, 2); s(s == 0) = 1;
        f = mat2grad_objective(file, 'Output', {K});
        fun = @(x) m2g_test_penalised(f, x, c, s);
        tight = {{'TolFun', 1e-14, 'TolX', 1e-14, 'MaxIter', 2000, 'MaxFunEvals', 20000}};
        [x1, v1, info1, out1] = fminunc(fun, c, optimset(tight{{:}}, 'GradObj', 'on'));
        [x0, v0, info0, out0] = fminunc(fun, c, optimset(tight{{:}}, 'GradObj', 'off'));
        n1 = out1.funcCount; n0 = out0.funcCount;
        save('-v7', '{out.as_posix()}', 'x1', 'x0', 'n1', 'n0', 'info1', 'info0', 'c', 's');
    """
    proc = subprocess.run(
        octave_command(code),
        env=octave_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0 and out.exists(), proc.stdout + proc.stderr
    r = scipy.io.loadmat(out)
    c, s = r["c"][:, 0], r["s"][:, 0]
    assert r["info1"].item() > 0, "fminunc with the gradient did not converge"
    x_ref = _scipy_optimum(c, s)
    # in units of each input's spread: both stop where the gradient is ~1e-10, and the
    # objective's curvature there is O(1) in those units
    assert np.max(np.abs(r["x1"][:, 0] - x_ref) / s) < 1e-6
    assert r["n1"].item() < r["n0"].item(), (r["n1"], r["n0"])
