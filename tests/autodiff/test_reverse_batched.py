"""Reverse mode with batched cotangents (see NOTE: [Batched cotangents] in
mat2grad/autodiff/methods.py): for a model with many outputs per sample, every row of the
Jacobian - from the loop of backward passes, from replicated samples or from a backward
pass vmapped over the rows - agrees with forward mode and with the per-sample autograd
Jacobian of torch.func, and a model vmap cannot run keeps the other ways."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import mat2grad
from mat2grad.autodiff import methods
from mat2grad.autodiff.methods import (
    _loop_rows,
    _replicated_rows,
    _replication_may_win,
    _vmapped_rows,
)
from mat2grad.budget import saved_bytes_per_sample
from tests.support.helpers import MODES_RTOL, assert_close, custom_sin


class _Forecaster(nn.Module):
    """A small sequence-to-sequence model: a tanh recurrence over T steps of R features,
    then a linear map of the last state to an (H, R) forecast (H * R outputs)."""

    def __init__(self, steps: int = 6, features: int = 2, hidden: int = 5, horizon: int = 4):
        super().__init__()
        torch.manual_seed(0)
        self.cell = nn.RNNCell(features, hidden, dtype=torch.float64)
        self.head = nn.Linear(hidden, horizon * features, dtype=torch.float64)
        self.input_shapes = ((steps, features),)
        self.output_shapes = ((horizon, features),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.new_zeros(x.shape[0], self.cell.hidden_size)
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)
        return self.head(h).view(x.shape[0], *self.output_shapes[0])


def _reference(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    jac = torch.func.vmap(torch.func.jacrev(lambda s: model(s[None])[0]))
    return jac(x).detach().numpy()


@pytest.mark.parametrize("q", [1, 3])
def test_many_outputs_rev_agrees_with_fwd_and_torch_func(q):
    model = _Forecaster()
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(q, 6, 2)))
    rev = mat2grad.jacobian(model, x, mode="rev")
    fwd = mat2grad.jacobian(model, x, mode="fwd")
    assert rev.shape == (q, 4, 2, 6, 2)
    assert_close(rev.numpy(), fwd.numpy(), MODES_RTOL, "rev vs fwd")
    assert_close(rev.numpy(), _reference(model, x), MODES_RTOL, "rev vs torch.func")


def _frozen_and_looped(seed: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A frozen forecaster, 3 samples, and their 8 x 12 Jacobian rows by the loop."""
    model = _Forecaster()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.from_numpy(np.random.default_rng(seed).normal(size=(3, 6, 2)))
    looped = torch.zeros(3, 8, 12, dtype=torch.float64)
    leaf = x.clone().requires_grad_(True)
    total = model(leaf).reshape(3, -1).sum(0)
    _loop_rows(total, [leaf], [looped], 0, 8, retain=False)
    assert bool(looped.abs().max() > 0)
    return model, x, looped


def test_replicated_rows_equal_looped_rows():
    model, x, looped = _frozen_and_looped(1)
    replicated = torch.zeros_like(looped)
    _replicated_rows(model, [x], (0,), 0, 0, 5, [replicated])  # rows 0..4 in one pass
    _replicated_rows(model, [x], (0,), 0, 5, 3, [replicated])  # rows 5..7
    assert_close(replicated.numpy(), looped.numpy(), MODES_RTOL, "replicated vs loop")


def test_replication_is_tried_only_where_it_can_win():
    # g rows cost g backward passes in the loop; one replicated pass costs at least g
    # times the chunk's forward work plus one backward pass
    assert not _replication_may_win(2, backward=5e-3, work=3.7e-3)  # many samples, compute
    assert not _replication_may_win(9, backward=1.0, work=1.0)
    assert _replication_may_win(149, backward=1e-2, work=0.0)  # one sample: overhead only
    assert _replication_may_win(4, backward=1e-2, work=1e-3)


@pytest.mark.parametrize("may_win", [False, True])
def test_rev_rows_are_complete_whether_or_not_replication_is_tried(monkeypatch, may_win):
    calls = []

    def counted(*args, **kwargs):
        calls.append(args[4:6])  # (first row, rows)
        return _replicated_rows(*args, **kwargs)

    monkeypatch.setattr(methods, "_replication_may_win", lambda g, backward, work: may_win)
    monkeypatch.setattr(methods, "_replicated_rows", counted)
    model = _Forecaster()
    x = torch.from_numpy(np.random.default_rng(2).normal(size=(3, 6, 2)))
    rev = mat2grad.jacobian(model, x, mode="rev")
    assert_close(rev.numpy(), _reference(model, x), MODES_RTOL, "rev vs torch.func")
    if may_win:  # the trial computes rows 1.. of the first chunk by replication
        assert calls and calls[0][0] == 1
    else:  # untried: every row from the loop
        assert calls == []


def test_the_measured_choice_is_kept_for_the_same_model_and_chunk(monkeypatch):
    """The loop-or-replicate choice is measured once per model, input shapes and first chunk
    size; a later call like it reuses the choice (no trial), another chunk size measures."""
    trials: list[int] = []
    real = methods._one_sample_forward

    def counted(model, xs, wrt):
        trials.append(xs[0].shape[0])
        return real(model, xs, wrt)

    monkeypatch.setattr(methods, "_one_sample_forward", counted)
    model = _Forecaster()
    x = torch.randn(3, 6, 2, dtype=torch.float64)
    first = mat2grad.jacobian(model, x, mode="rev")
    assert len(trials) == 1
    again = mat2grad.jacobian(model, x * 0.5, mode="rev")
    assert len(trials) == 1  # kept: no second trial
    assert_close(again.numpy(), _reference(model, x * 0.5), MODES_RTOL, "kept choice")
    assert_close(first.numpy(), _reference(model, x), MODES_RTOL, "measured choice")
    mat2grad.jacobian(model, x[:2], mode="rev")
    assert len(trials) == 2  # another chunk size: measured again


def test_vmapped_rows_equal_looped_rows():
    model, x, looped = _frozen_and_looped(3)
    vmapped = torch.full_like(looped, np.nan)
    y = _vmapped_rows(model, [x], (0,), 0, 0, 5, 2, [vmapped])  # rows 0..4, 2 per pass
    _vmapped_rows(model, [x], (0,), 0, 5, 8, 8, [vmapped])  # rows 5..7 in one pass
    assert_close(vmapped.numpy(), looped.numpy(), MODES_RTOL, "vmapped vs loop")
    assert torch.equal(y, model(x))  # the chunk's outputs, from the same forward pass


@pytest.mark.parametrize("way", ["loop", "replicate", "vmap"])
def test_every_way_once_chosen_gives_every_row(monkeypatch, way):
    # the choice is made by timing; each way, once chosen, fills every row of every chunk
    monkeypatch.setattr(methods, "_trial", _choose(way))
    model = _Forecaster()
    x = torch.from_numpy(np.random.default_rng(4).normal(size=(5, 6, 2)))
    for chunk in (None, 2):  # one chunk; three chunks, the last of one sample
        rev, y = mat2grad.jacobian(model, x, mode="rev", chunk_size=chunk, return_outputs=True)
        assert model.__dict__[methods._CHOICE][1] == {"how": way}
        assert_close(rev.numpy(), _reference(model, x), MODES_RTOL, f"{way}, chunks {chunk}")
        assert_close(y.numpy(), model(x).detach().numpy(), MODES_RTOL, f"{way}: outputs")
        model.__dict__.pop(methods._CHOICE)


@pytest.mark.parametrize("way", ["replicate", "vmap"])
def test_every_way_gives_every_row_over_several_batched_passes(monkeypatch, way):
    # a budget of two replicas' activations: 4 x 2 rows per batched pass, so the 16 rows
    # of the 5-sample chunk take two passes, the second starting where the first stopped
    # (the one-sample check of NOTE: [Samples are independent] takes one pass of 16)
    monkeypatch.setattr(methods, "_trial", _choose(way))
    model = _Forecaster(horizon=8)
    x = torch.from_numpy(np.random.default_rng(5).normal(size=(5, 6, 2)))
    saved = saved_bytes_per_sample(model, [x], [True])[0]
    monkeypatch.setattr(methods, "CHUNK_BUDGET_BYTES", 2 * x.shape[0] * saved)
    name = "_replicated_rows" if way == "replicate" else "_vmapped_rows"
    original, passes = getattr(methods, name), []

    def counted(*args):
        passes.append(args)
        return original(*args)

    monkeypatch.setattr(methods, name, counted)
    rev = mat2grad.jacobian(model, x, mode="rev")
    assert_close(rev.numpy(), _reference(model, x), MODES_RTOL, way)
    if way == "replicate":  # (model, xs, wrt, k, e0, rows, flat)
        got = [(p[1][0].shape[0], p[4], p[5]) for p in passes]
        assert got == [(5, 0, 8), (5, 8, 8), (1, 0, 16)], got
    else:  # (model, xs, wrt, k, start, stop, rows per pass, flat)
        got = [(p[1][0].shape[0], p[4], p[5], p[6]) for p in passes]
        assert got == [(5, 0, 16, 8), (1, 0, 16, 40)], got


def _choose(way):
    def trial(setup, xs, k, total, targets, flat, forward, group, choice):
        choice["how"] = way
        return 0

    return trial


_NoVmap = custom_sin()  # torch.func cannot transform it


class _Wide(nn.Module):
    input_shapes = ((3,),)
    output_shapes = ((12,),)

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.lin = nn.Linear(3, 12, dtype=torch.float64)

    def forward(self, x):
        return _NoVmap.apply(self.lin(x))


def test_a_model_vmap_cannot_run_keeps_the_other_ways():
    model = _Wide()
    x = torch.from_numpy(np.random.default_rng(5).normal(size=(4, 3)))
    rev = mat2grad.jacobian(model, x, mode="rev")
    fwd_ref = torch.cos(model.lin(x)).detach()[:, :, None] * model.lin.weight.detach()
    assert_close(rev.numpy(), fwd_ref.numpy(), MODES_RTOL, "rev, vmap refused")
    assert model.__dict__.get(methods._NO_VMAP) is True
    assert model.__dict__[methods._CHOICE][1]["how"] in ("loop", "replicate")


def test_vmap_waits_until_its_set_up_pays():
    # torch.func's first backward pass imports torch._dynamo: tried once that is paid, or
    # once the process has spent twice as long on rows the other ways computed
    assert methods._vmap_affordable(0.0, ready=True)
    assert not methods._vmap_affordable(methods.VMAP_SETUP_SECONDS, ready=False)
    assert methods._vmap_affordable(2 * methods.VMAP_SETUP_SECONDS, ready=False)


def test_a_kept_choice_is_measured_again_once_vmap_is_affordable(monkeypatch):
    ready = [False]
    monkeypatch.setattr(methods, "_spent_and_ready", lambda: (0.0, ready[0]))
    model = _Forecaster()
    x = torch.from_numpy(np.random.default_rng(6).normal(size=(2, 6, 2)))
    mat2grad.jacobian(model, x, mode="rev")
    kept = model.__dict__[methods._CHOICE][1]
    assert kept["how"] in ("loop", "replicate") and not kept.get("vmap tried")
    again = mat2grad.jacobian(model, x, mode="rev")  # still not affordable: kept as it is
    assert model.__dict__[methods._CHOICE][1] == kept
    ready[0] = True
    later = mat2grad.jacobian(model, x, mode="rev")
    assert model.__dict__[methods._CHOICE][1]["vmap tried"] is True
    for got in (again, later):
        assert_close(got.numpy(), _reference(model, x), MODES_RTOL, "rev, kept or measured")
