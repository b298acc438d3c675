"""mat2grad.sensitivity: the file-in/file-out function (the struct S in a MAT-file) and
the charts (rendered with Agg to PNG, checked for size and content)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import mat2grad
from mat2grad import matfile
from mat2grad.errors import Mat2GradError
from mat2grad.sensitivity import interactions, lag_importance, sensitivity, sensitivity_file
from tests.sensitivity.test_local import CHUNK_RTOL, _rel, _samples
from tests.support.helpers import FIXTURES

plt = pytest.importorskip("matplotlib.pyplot")
from mat2grad.sensitivity import plots  # noqa: E402  (after the matplotlib skip)


def _png_shape(path):
    import matplotlib.image as mpimg

    return mpimg.imread(path).shape


def test_sensitivity_file_writes_struct(tmp_path):
    out = tmp_path / "S.mat"
    res = sensitivity_file(
        FIXTURES / "example_fitnet.mat",
        FIXTURES / "example_fitnet.mat",
        out,
        inputs_var="X",
        bootstrap=20,
        interactions=True,
        weights=True,
        dgsm_samples=200,
    )
    S = matfile.read_mat(out)["S"]
    X = matfile.read_mat(FIXTURES / "example_fitnet.mat")["X"]
    direct = sensitivity(mat2grad.load(FIXTURES / "example_fitnet.mat"), X.T.astype(float))
    for stat in ("mean", "std", "rms", "mean_abs"):
        assert S[stat].shape == (3, 10)
        assert _rel(S[stat], direct[stat]) <= CHUNK_RTOL
        assert S[f"{stat}_low"].shape == (3, 10)
    names = [str(np.asarray(n).item()) if np.size(n) else "" for n in S["inputs"].ravel()]
    assert names == [f"x{i}" for i in range(1, 11)]
    assert float(S["num_samples"].ravel()[0]) == X.shape[1]
    assert S["interactions"]["mean_abs"].shape == (3, 10, 10)
    assert S["weights"]["garson"].shape == (3, 10)
    assert S["dgsm"]["dgsm"].shape == (3, 10)
    assert "population" in str(S["settings"]["std"])
    assert res.parts.keys() == {"interactions", "weights", "dgsm"}


def test_samples_in_rows(tmp_path):
    X = matfile.read_mat(FIXTURES / "example_fitnet.mat")["X"].astype(float)
    matfile.write_mat(tmp_path / "rows.mat", {"D": X.T})
    a = sensitivity_file(
        FIXTURES / "example_fitnet.mat", tmp_path / "rows.mat", tmp_path / "a.mat", samples="rows"
    )
    b = sensitivity_file(
        FIXTURES / "example_fitnet.mat",
        FIXTURES / "example_fitnet.mat",
        tmp_path / "b.mat",
        inputs_var="X",
    )
    assert _rel(a["rms"], b["rms"]) <= CHUNK_RTOL
    with pytest.raises(Mat2GradError, match="--samples rows"):
        sensitivity_file(FIXTURES / "example_fitnet.mat", tmp_path / "rows.mat", tmp_path / "c.mat")


def test_dynamic_file(tmp_path):
    out = tmp_path / "S.mat"
    res = sensitivity_file(
        FIXTURES / "timedelaynet.mat", FIXTURES / "timedelaynet.mat", out, inputs_var="X"
    )
    S = matfile.read_mat(out)["S"]
    assert res.kind == "lags"
    assert S["rms"].shape == res["rms"].shape and S["rms"].ndim == 3


def test_plot_each_chart_to_png(tmp_path):
    net = mat2grad.load(FIXTURES / "example_fitnet.mat")
    xs = _samples(net, 40)
    res = sensitivity(net, *xs, bootstrap=20, keep=40)
    inter = interactions(net, xs[0][:10])
    dyn = mat2grad.load(FIXTURES / "timedelaynet.mat")
    lags = lag_importance(dyn, np.random.default_rng(0).random((2, 8, dyn.input_sizes[0])))
    charts = {
        "mean_std": plots.plot_mean_std(res),
        "rms": plots.plot_rms(res),
        "density": plots.plot_density(res),
        "interactions": plots.plot_interactions(inter),
        "lags": plots.plot_lags(lags),
    }
    for name, fig in charts.items():
        path = tmp_path / f"{name}.png"
        w, h = fig.get_size_inches()
        fig.savefig(path, dpi=50)
        plt.close(fig)
        shape = _png_shape(path)
        assert shape[:2] == (round(h * 50), round(w * 50)), name
        pixels = plt.imread(path)
        assert pixels[..., :3].std() > 0.01, f"{name} is blank"


def test_saliency_and_report(tmp_path):
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2)).double()
    res = sensitivity(model, np.random.default_rng(0).random((5, 3, 4)))
    fig = plots.plot_saliency(res)
    fig.savefig(tmp_path / "sal.png", dpi=40)
    plt.close(fig)
    assert _png_shape(tmp_path / "sal.png")[0] > 0
    net = mat2grad.load(FIXTURES / "example_fitnet.mat")
    rep = sensitivity(net, *_samples(net, 30), keep=30)
    for suffix in (".png", ".svg", ".pdf"):
        path = plots.save_report(rep, tmp_path / f"report{suffix}")
        assert path.stat().st_size > 1000
    with pytest.raises(Mat2GradError, match="png, .svg or .pdf"):
        plots.save_report(rep, tmp_path / "report.gif")


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    net = mat2grad.load(FIXTURES / "example_fitnet.mat")
    res = sensitivity(net, *_samples(net, 5))
    with pytest.raises(Mat2GradError, match=r"mat2grad\[plot\]"):
        plots.plot_rms(res)
