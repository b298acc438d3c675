"""The CLI: subcommands call the library, errors are one line on stderr with exit 1, usage
errors exit 2, outputs are never half-written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io

from mat2grad.cli import main
from tests.support.helpers import CORPUS, assert_close, requires_corpus, run_python


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, pattern):
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mat2grad: ")
    assert "Traceback" not in err
    import re

    assert re.search(pattern, lines[0]), lines[0]


@requires_corpus
def test_info_lists_every_network(capsys):
    code, out, _ = run(capsys, "info", CORPUS / "shallow/juanpovedapl_net1.mat")
    assert code == 0
    assert "2 network(s)" in out and "'net1'" in out and "'net3'" in out
    assert "hardlim" in out and "zero derivative" in out


@requires_corpus
def test_info_json(capsys):
    code, out, _ = run(capsys, "info", "--json", CORPUS / "shallow/marakaido_network.mat")
    data = json.loads(out)
    (net,) = data["networks"]
    assert net["inputs"][0]["processFcns"] == ["removeconstantrows", "mapminmax"]
    assert net["inputs"][0]["size"] == 768 and net["inputs"][0]["processedSize"] == 627


@requires_corpus
def test_predict_reproduces_matlab(capsys, tmp_path):
    src = CORPUS / "shallow/marakaido_network.mat"
    out = tmp_path / "Y.mat"
    code, _, err = run(capsys, "predict", src, "--inputs", src, "--inputs-var", "x", "-o", out)
    assert code == 0, err
    y = scipy.io.loadmat(out)["Y"]
    expected = scipy.io.loadmat(src)["y"]
    assert y.shape == expected.shape == (4, 20)
    assert_close(y, expected, 1e-12, "predict")


@requires_corpus
def test_predict_samples_rows(capsys, tmp_path):
    src = CORPUS / "shallow/kudvaakshay_net1.mat"
    out = tmp_path / "Y.mat"
    code, _, err = run(
        capsys, "predict", src, "--network", "net1", "--inputs", src, "--samples", "rows", "-o", out
    )
    assert code == 0, err
    y = scipy.io.loadmat(out)["Y"]
    assert y.shape == (9568, 1)
    assert_close(y, scipy.io.loadmat(src)["Y_pred"], 1e-12, "rows")


@requires_corpus
def test_nan_inputs_propagate_like_matlab(capsys, tmp_path):
    src = CORPUS / "shallow/mahmoudjumaa_net.mat"
    out = tmp_path / "Y.mat"
    code, _, err = run(
        capsys,
        "predict",
        src,
        "--inputs",
        src,
        "--inputs-var",
        "Input_Training",
        "--samples",
        "rows",
        "-o",
        out,
    )
    assert code == 0, err
    x = scipy.io.loadmat(src)["Input_Training"]
    y = scipy.io.loadmat(out)["Y"]
    np.testing.assert_array_equal(np.isnan(y[:, 0]), np.isnan(x).any(axis=1))


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "data.mat"
    scipy.io.savemat(
        path,
        {
            "X": np.zeros((3, 4)),
            "bad": np.array(["text"]),
            "E": np.zeros((3, 0)),
            "T": np.zeros((4, 3)),
        },
    )
    return path


@requires_corpus
@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["--inputs-var", "bad"], "'bad': expected a numeric matrix, found char"),
        (["--inputs-var", "E"], "'E': no samples"),
        (["--inputs-var", "T"], "'T' has 4 rows but the network takes 3 .*pass --samples rows"),
        (["--inputs-var", "nope"], "no variable 'nope'"),
        (["--network", "fg.zz"], "'fg' has no field 'zz'"),
        (["--network", "fg_outputs"], "'fg_outputs' is a 2x18 double array, not a MATLAB network"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(capsys, tmp_path, data_file, args, pattern):
    out = tmp_path / "Y.mat"
    code, _, err = run(
        capsys,
        "predict",
        CORPUS / "shallow/abj247_ann.mat",
        "--inputs",
        data_file,
        *args,
        "-o",
        out,
    )
    assert_one_line_error(code, err, pattern)
    assert not out.exists()


@requires_corpus
def test_several_networks_need_network(capsys, tmp_path):
    src = CORPUS / "shallow/juanpovedapl_net1.mat"
    code, _, err = run(
        capsys, "predict", src, "--inputs", src, "--inputs-var", "p", "-o", tmp_path / "Y.mat"
    )
    assert_one_line_error(code, err, r"2 networks found \(net1, net3\); choose one with --network")


def test_no_network_in_file(capsys, tmp_path, data_file):
    code, _, err = run(
        capsys, "predict", data_file, "--inputs", data_file, "-o", tmp_path / "Y.mat"
    )
    assert_one_line_error(code, err, "no MATLAB network found \\(variables: E, T, X, bad\\)")


@pytest.mark.parametrize("seed", range(5))
def test_not_a_mat_file(capsys, tmp_path, seed):
    bad = tmp_path / "x.mat"
    rng = np.random.default_rng(seed)
    payload = b"\x00\x01garbage" * 10 if seed == 0 else rng.bytes(300)
    bad.write_bytes(payload)
    code, _, err = run(capsys, "info", bad)
    assert_one_line_error(code, err, "not a MATLAB MAT-file")


def test_existing_output_survives_a_failure(capsys, tmp_path, data_file):
    out = tmp_path / "Y.mat"
    out.write_bytes(b"precious")
    code, _, _ = run(capsys, "predict", data_file, "--inputs", data_file, "-o", out)
    assert code == 1
    assert out.read_bytes() == b"precious"


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["predict"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2


@requires_corpus
def test_python_dash_m_entry_point(tmp_path):
    src = CORPUS / "shallow/abj247_ann.mat"
    r = run_python("-m", "mat2grad", "info", str(src), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "'fg'" in r.stdout
    r = run_python("-m", "mat2grad", "info", str(tmp_path / "none.mat"), cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "no such file" in r.stderr


def test_debug_shows_the_traceback(capsys, tmp_path):
    code, _, err = run(capsys, "info", "--debug", tmp_path / "none.mat")
    assert code == 1 and "Traceback" in err


def test_a_reader_that_goes_away_is_not_an_error(tmp_path):
    """``mat2grad info FILE | head -1``: the pipe closes while mat2grad still writes; it
    stops quietly (no internal error, no traceback from the interpreter's last flush)."""
    import subprocess
    import sys

    from tests.support.helpers import FIXTURES, checkout_env

    src = str(FIXTURES / "example_fitnet.mat")
    code = f"from mat2grad.cli import main\nfor _ in range(200): main(['info', {src!r}])\n"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=checkout_env(),
        cwd=tmp_path,
    )
    assert proc.stdout.read(10)
    proc.stdout.close()  # the reader goes away while the writer still has lines to write
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "internal error" not in err and "Traceback" not in err, err
