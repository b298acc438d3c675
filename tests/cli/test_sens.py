"""``mat2grad sens``: the command line and MATLAB's in-process route write the struct S the
library computes (same statistics, names, settings), refuse bad options in one line, and
draw the charts with --plot."""

from __future__ import annotations

import numpy as np
import pytest

import mat2grad
from mat2grad import matfile, matlab_api
from mat2grad.cli import main
from mat2grad.errors import Mat2GradError
from tests.support.helpers import FIXTURES
from tests.support.records import cell, empty, tiny_record, to_mat

#: two float64 runs of the same accumulation, chunked alike: round-off of the merges only
#: (the chunked-vs-one-shot bound of the sensitivity tests)
RTOL = 1e-12
FITNET = FIXTURES / "example_fitnet.mat"
STATS = ("mean", "std", "rms", "mean_abs")


def _rel(a, b) -> float:
    scale = np.max(np.abs(b))
    return float(np.max(np.abs(np.asarray(a) - b)) / (scale if scale > 0 else 1.0))


def _names(cell_value) -> list[str]:
    return [str(np.asarray(n).item()) for n in np.asarray(cell_value, dtype=object).ravel()]


def _fitnet_inputs():
    x = matfile.read_mat(FITNET)["X"].astype(float)  # R x Q
    return mat2grad.load(FITNET), x


def _sens(tmp_path, *args: str) -> tuple[int, dict]:
    out = tmp_path / "S.mat"
    code = main(
        ["sens", str(FITNET), "--inputs", str(FITNET), "--inputs-var", "X", *args, "-o", str(out)]
    )
    return code, (matfile.read_mat(out)["S"] if code == 0 else {})


def test_sens_writes_the_library_statistics(tmp_path):
    net, x = _fitnet_inputs()
    code, S = _sens(tmp_path, "--scale", "std", "--ddof", "1", "--chunk-size", "7")
    assert code == 0
    direct = mat2grad.sensitivity(net, x.T, scale="std", ddof=1)
    for stat in STATS:
        assert S[stat].shape == (3, 10)
        assert _rel(S[stat], direct[stat]) <= RTOL
    # independent of the library's accumulation: numpy over the Jacobians, scaled by hand
    J = mat2grad.jacobian(net, x.T).numpy()
    sx, sy = x.T.std(0, ddof=1), mat2grad.predict(net, x.T).numpy().std(0, ddof=1)
    f = sx[None, :] / sy[:, None]
    assert _rel(S["std"], J.std(0, ddof=1) * f) <= RTOL
    assert _rel(S["rms"], np.sqrt((J**2).mean(0)) * f) <= RTOL
    assert _names(S["inputs"]) == [f"x{i}" for i in range(1, 11)]
    assert _names(S["outputs"]) == ["y1", "y2", "y3"]
    assert float(np.ravel(S["num_samples"])[0]) == x.shape[1]
    assert str(S["settings"]["std"]) == "sample"
    assert str(S["settings"]["scale"]) == "std"


def test_sens_parts_and_samples_in_rows(tmp_path):
    net, x = _fitnet_inputs()
    matfile.write_mat(tmp_path / "rows.mat", {"D": x.T})
    out = tmp_path / "S.mat"
    args = ["sens", str(FITNET), "--inputs", str(tmp_path / "rows.mat"), "--samples", "rows"]
    extra = ["--bootstrap", "20", "--interactions", "--weights", "--dgsm", "300", "--seed", "3"]
    assert main([*args, *extra, "-o", str(out)]) == 0
    S = matfile.read_mat(out)["S"]
    assert _rel(S["rms"], mat2grad.sensitivity(net, x.T)["rms"]) <= RTOL
    assert np.all(S["rms_low"] <= S["rms_high"])
    assert S["interactions"]["mean_abs"].shape == (3, 10, 10)
    assert S["weights"]["garson"].shape == (3, 10)
    assert S["dgsm"]["dgsm"].shape == (3, 10)
    assert float(np.ravel(S["settings"]["bootstrap"])[0]) == 20


def test_sens_committee_pools_every_network(tmp_path):
    second = tiny_record(LW=cell(empty(), np.array([[0.6, -0.2]]), empty(), empty(), shape=(2, 2)))
    path = tmp_path / "nets.mat"
    x = np.array([[0.5, 1.0, -0.3, 2.0, 0.1], [-1.0, 0.2, 0.7, 1.5, -0.4]])
    matfile.write_mat(path, {"net1": to_mat(tiny_record()), "net2": to_mat(second), "X": x})
    out = tmp_path / "S.mat"
    assert main(["sens", str(path), "--inputs", str(path), "--committee", "-o", str(out)]) == 0
    S = matfile.read_mat(out)["S"]
    ja = mat2grad.jacobian(mat2grad.load(path, "net1"), x.T).numpy()
    jb = mat2grad.jacobian(mat2grad.load(path, "net2"), x.T).numpy()
    pooled = np.concatenate([ja, jb])
    assert _rel(S["mean"], pooled.mean(0)) <= RTOL
    assert _rel(S["std"], pooled.std(0)) <= RTOL
    assert S["rms_networks"].shape == (1, 2, 2)


def test_sens_plot(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.image as mpimg

    chart = tmp_path / "S.png"
    code, S = _sens(tmp_path, "--plot", str(chart), "--bootstrap", "10")
    assert code == 0 and "rms" in S
    image = mpimg.imread(chart)
    # three charts stacked (mean-std, rms, density), three outputs side by side at 100 dpi
    assert image.shape[0] > 2 * image.shape[1] / 3 and image.shape[1] >= 1000
    assert image[..., :3].std() > 0.05  # not a blank canvas


@pytest.mark.parametrize(
    "args, message",
    [
        (["--plot", "S.txt"], "plots are written as .png, .svg or .pdf"),
        (["--max-lag", "2"], "--max-lag apply to dynamic networks"),
        (["--committee", "--network", "net"], "--committee pools every network"),
        (["--bootstrap", "1"], "bootstrap"),
    ],
)
def test_sens_refuses_in_one_line(tmp_path, capsys, args, message):
    code, _ = _sens(tmp_path, *args)
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("mat2grad: ") and err.count("\n") == 1
    assert message in err
    assert not (tmp_path / "S.mat").exists()


def test_sens_range_scale_needs_recorded_ranges(tmp_path, capsys):
    path = tmp_path / "tiny.mat"  # a struct network without inputs{1}.range
    matfile.write_mat(path, {"net": to_mat(tiny_record()), "X": np.array([[0.5, 1.0], [-1, 0.2]])})
    args = ["sens", str(path), "--inputs", str(path), "--scale", "range", "-o", "S.mat"]
    assert main(args) == 1
    assert "scale='range' needs the input and output ranges" in capsys.readouterr().err


def test_sens_usage_errors_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sens", str(FITNET), "--inputs", str(FITNET), "--ddof", "2", "-o", "S.mat"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["sens", str(FITNET), "--inputs", str(FITNET), "--scale", "z", "-o", "S.mat"])
    assert exc.value.code == 2


def test_matlab_api_runs_sens_like_the_cli(tmp_path):
    _, x = _fitnet_inputs()
    code, S = _sens(tmp_path, "--bootstrap", "10", "--seed", "2")
    assert code == 0
    r = matlab_api.run("sens", str(FITNET), X=np.asfortranarray(x), bootstrap="10", seed=2.0)
    got = r["S"]
    for stat in (*STATS, "rms_low", "rms_high"):
        assert _rel(got[stat], S[stat]) <= RTOL
    assert [row for row in got["inputs"]] == [[f"x{i}" for i in range(1, 11)]]
    assert got["settings"]["std"] == "population"
    assert got["num_samples"].shape == (1, 1)
    with pytest.raises(Mat2GradError, match="--ddof"):
        matlab_api.run("sens", str(FITNET), X=x, ddof="half")
