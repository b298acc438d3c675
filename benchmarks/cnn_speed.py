"""The ONNX CNN rows of the speed table (run by benchmarks/speed.py, which pins every worker
to one CPU): ``mat2grad.jacobian`` against torch.func's methods on the same module, and
``mat2grad.predict``'s peak memory at two sizes, at N = 1e4 by default (``--cnn-n``).

The networks, loaded with ``mat2grad.load(path, dtype=torch.float64, check=False)``:

- ``corpus``: the corpus's MNIST CNN ``onnx/pytorch_ntcue_cnn.onnx`` (a PyTorch export:
  1x28x28 -> five 3x3 convolutions of 32-128 channels with ReLU, global average pooling,
  a 32 -> 10 Gemm). Skipped, saying so, where the corpus is absent.
- ``fixture``: the repository's ``fixtures/onnx/matlab2020a_conv_fc_dropout.onnx`` (a
  MATLAB export: 1x4x3 -> two convolutions, ReLU, softmax over 3 outputs), always there.

The methods, each timed on the same inputs (uniform in [0, 1], batch-first):

- ``mat2grad``: ``mat2grad.jacobian(net, x)``.
- ``vmap(jacrev)``, ``vmap(jacfwd)``: ``torch.func.vmap(torch.func.jacrev(f))`` and the same
  with ``jacfwd``, where ``f(s) = net(s[None])[0].reshape(-1)`` maps one sample to its
  flattened outputs, with vmap's ``chunk_size`` from ``CNNS`` (the corpus CNN saves about
  4 MB of activations per sample, so the whole batch at once would need 40 GB).
- ``autograd loop``: the sum-over-batch trick by hand, per chunk of the same size: one
  forward pass with the inputs requiring grad, then one ``torch.autograd.grad`` per output
  element of the outputs summed over the samples (what mat2grad's reverse mode does).

Forward mode pushes one tangent per input element: on the corpus CNN (784 inputs, 10
outputs) one sample took 23 s and 7 GB, so there it runs on ``fwd_samples`` samples only
and its time is scaled to N (marked ``*``). Times are the best of rounds that run every
method in turn (a machine slowing down for a while slows them all), as many as fit a
budget, at least one: a corpus-CNN Jacobian of 1e4 samples takes about a quarter of an
hour on one CPU in float64 (im2col convolutions, 0.3 GFLOP a sample), so there it is one
round. ``max diff``: the largest ``|mat2grad - method|`` over every Jacobian element of
every method, and that over ``max |J|``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from timing import best, peak_mb  # beside this file


def best_within(fn: Callable, budget: float = 20.0, repeats: int = 7) -> tuple[float, object]:
    """The best time of runs of ``fn`` until ``budget`` seconds are spent (at least one)."""
    return best(fn, budget, repeats)


ROOT = Path(__file__).resolve().parents[1]
CORPUS = (ROOT / ".." / "shared" / "corpus").resolve()


class Cnn(NamedTuple):
    path: Path
    chunk: int | None  # vmap chunk_size of the torch baselines (None: the whole batch)
    fwd_samples: int | None  # the samples forward mode runs on (None: all N)
    predict_sizes: tuple[float, float]  # predict's two sizes, in multiples of N
    label: str


CNNS = {
    # predict at 100 N and 1000 N: its chunks hold 2^16 samples, so N = 1e4 would be one
    # chunk (and 10 N two, the second smaller), showing the chunk's growth, not N's
    "fixture": Cnn(
        ROOT / "fixtures" / "onnx" / "matlab2020a_conv_fc_dropout.onnx",
        None,
        None,
        (100, 1000),
        "fixture matlab2020a_conv_fc_dropout 1x4x3 -> 3",
    ),
    "corpus": Cnn(
        CORPUS / "onnx" / "pytorch_ntcue_cnn.onnx",
        16,
        2,
        (0.1, 1),
        "corpus pytorch_ntcue_cnn 1x28x28 -> 10",
    ),
}
TORCH_FUNC = ("vmap(jacrev)", "vmap(jacfwd)")


def _load(name: str):
    import torch

    import mat2grad

    path = CNNS[name].path
    if not path.is_file():
        return None, f"{path} is absent (the corpus lives in ../shared/corpus)"
    return mat2grad.load(str(path), dtype=torch.float64, check=False), ""


def _inputs(net, n: int):
    import numpy as np
    import torch

    shape = (n, *net.input_shapes[0])
    return torch.from_numpy(np.random.default_rng(0).uniform(0.0, 1.0, shape))


def _autograd_loop(net, x, chunk: int):
    """Per chunk: one forward pass, one backward pass per output element of the outputs
    summed over the chunk's samples (samples are independent)."""
    import torch

    n = x.shape[0]
    n_out = int(net(x[:1]).numel())
    jac = torch.empty(n, n_out, *x.shape[1:], dtype=x.dtype)
    for a in range(0, n, chunk):
        xc = x[a : a + chunk].detach().requires_grad_(True)
        total = net(xc).reshape(xc.shape[0], -1).sum(0)
        for e in range(n_out):
            (g,) = torch.autograd.grad(total[e], xc, retain_graph=e < n_out - 1)
            jac[a : a + chunk, e] = g
    return jac


def worker_cnn(name: str, n: int, budget: float = 20.0, repeats: int = 7) -> dict:
    """Jacobian times of every method on ``name`` over ``n`` samples (the best of rounds
    that run every method once, until ``budget`` seconds are spent, at least one), and
    their agreement with mat2grad's."""
    import torch

    import mat2grad

    net, why = _load(name)
    if net is None:
        return {"skipped": why}
    chunk, fwd_samples = CNNS[name].chunk, CNNS[name].fwd_samples
    x = _inputs(net, n)
    f = lambda s: net(s.unsqueeze(0))[0].reshape(-1)  # noqa: E731  one sample -> outputs
    step = chunk or n
    methods = {
        "mat2grad": (lambda xs: mat2grad.jacobian(net, xs), n),
        "vmap(jacrev)": (torch.func.vmap(torch.func.jacrev(f), chunk_size=chunk), n),
        "vmap(jacfwd)": (
            torch.func.vmap(torch.func.jacfwd(f), chunk_size=1 if fwd_samples else chunk),
            min(n, fwd_samples or n),
        ),
        "autograd loop": (lambda xs: _autograd_loop(net, xs, step), n),
    }
    # a subset as a tensor of its own: forward AD makes the tangents of a view's whole base
    # (x[:2] of 1e4 corpus images asked vmap(jacfwd) for 49 GB)
    inputs = {method: x if m == n else x[:m].clone() for method, (_, m) in methods.items()}
    for fn, _ in methods.values():
        fn(x[:1].clone())  # first calls outside the timing
    t: dict = {"n": n, "chunk": chunk, "samples": {}, "diff": {}, "rounds": 0}
    best = dict.fromkeys(methods, float("inf"))
    spent, ref = 0.0, None
    # interleaved rounds, so that a machine slowing down for a while slows every method
    while t["rounds"] < repeats and (t["rounds"] == 0 or spent < budget):
        for method, (fn, m) in methods.items():
            start = time.perf_counter()
            jac = fn(inputs[method])
            seconds = time.perf_counter() - start
            spent += seconds
            best[method] = min(best[method], seconds)
            if t["rounds"] == 0:  # agreement, once
                flat = jac.detach().reshape(m, -1)
                if ref is None:
                    ref, t["scale"] = flat, float(flat.abs().max())
                else:
                    t["diff"][method] = float((flat - ref[:m]).abs().max())
                del flat
            del jac
        t["rounds"] += 1
    for method, (_, m) in methods.items():
        t[method] = best[method] * n / m
        t["samples"][method] = m
    return t


def worker_cnn_predict(name: str, n: int) -> dict:
    """``mat2grad.predict``'s time and peak memory above the inputs and outputs, in a
    process of its own."""
    import mat2grad

    net, why = _load(name)
    if net is None:
        return {"skipped": why}
    x = _inputs(net, n)
    mat2grad.predict(net, x[:2])
    before = peak_mb()
    seconds, y = best_within(lambda: mat2grad.predict(net, x))
    return {"predict": seconds, "extra_mb": peak_mb() - before - y.numel() * 8 / 2**20}


def _ms(t: dict, method: str) -> str:
    if method not in t:
        return "-"
    star = "*" if t["samples"][method] < t["n"] else ""
    ms = t[method] * 1e3
    return f"{ms:.{0 if ms >= 100 else 1 if ms >= 10 else 2}f}{star}"


def cnn_table(spawn: Callable[..., dict], n: int) -> None:
    """Print the CNN rows; ``spawn(*args)`` runs ``speed.py --worker *args`` and returns its
    result."""
    print(f"  ONNX CNNs, float64, N={n:.0e}: Jacobian ms for the N samples (* = measured on")
    print("  fewer samples, scaled to N); goal: mat2grad <= 1.0x the best torch.func method")
    head = ("mat2grad", *TORCH_FUNC, "autograd loop", "/ torch.func", "/ autograd")
    print("    " + "".join(h.rjust(14) for h in head) + "   max diff (relative)")
    for name, (_, chunk, _, multiples, label) in CNNS.items():
        t = spawn("--kind", "cnn", "--model", name, "--n", str(n))
        print(f"    {label}:")
        if "error" in t or "skipped" in t:
            why = f"failed: {t['error']}" if "error" in t else f"skipped: {t['skipped']}"
            print(f"      {why}")
            continue
        best = min(TORCH_FUNC, key=lambda m: t[m])
        diff = max(t["diff"].values())
        cells = [
            *(_ms(t, m) for m in ("mat2grad", *TORCH_FUNC, "autograd loop")),
            f"{t['mat2grad'] / t[best]:.2f}",
            f"{t['mat2grad'] / t['autograd loop']:.2f}",
        ]
        print(
            "    "
            + "".join(c.rjust(14) for c in cells)
            + f"   {diff:.1e} ({diff / max(t['scale'], 1e-300):.1e})"
        )
        where = "the whole batch at once" if chunk is None else f"chunks of {chunk} samples"
        fwd = t["samples"]["vmap(jacfwd)"]
        fwd_note = f"; vmap(jacfwd) on {fwd} samples, chunk_size=1" if fwd < n else ""
        print(
            f"      best of {t['rounds']} round(s); best torch.func: {best}; torch baselines "
            f"over {where}{fwd_note}"
        )
        peaks = []
        for m in (max(1, round(n * k)) for k in multiples):
            p = spawn("--kind", "cnn-predict", "--model", name, "--n", str(m))
            if "error" in p:
                peaks.append(f"N={m:.0e} failed: {p['error']}")
            else:
                peaks.append(f"{p['extra_mb']:.0f} MB at N={m:.0e} ({p['predict']:.2f} s)")
        print(f"      predict peak above x, y: {'; '.join(peaks)}")
