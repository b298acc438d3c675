"""The MATLAB route after ``pip install`` of a built wheel, with no clone: the wheel ships the
helpers (``mat2grad/matlab``), ``mat2grad matlab`` names them, ``mat2grad matlab --install``
puts them in Octave's startup file, and the README's calls work in a fresh Octave."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.matlab.test_worker import EXAMPLE, OCTAVE, _text
from tests.support.helpers import ROOT

pytestmark = pytest.mark.skipif(
    OCTAVE is None or importlib.util.find_spec("hatchling") is None or os.name != "posix",
    reason="needs GNU Octave and hatchling (the build backend: pip install hatchling)",
)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A new venv holding only the wheel; its dependencies come from this environment
    through a .pth file (no download). Returns the venv's python."""
    root = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["-w", str(root / "dist"), str(ROOT)],
        check=True,
        timeout=300,
    )
    (wheel,) = (root / "dist").glob("mat2grad-*.whl")
    assert "mat2grad/matlab/mat2grad_setup.m" in zipfile.ZipFile(wheel).namelist()
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps"]
        + ["--no-index", str(wheel)],
        check=True,
        timeout=300,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # the dependencies (torch, scipy, ...): this environment's site-packages, after the
    # venv's own; its .pth files (an editable mat2grad) are not processed from there
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MAT2GRAD_PYTHON")}
    return dict(env, HOME=str(home), TMPDIR=str(home), TORCHINDUCTOR_CACHE_DIR=str(home / "tc"))


def test_wheel_helpers_in_a_fresh_octave(installed, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = _clean_env(home)
    run = dict(env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    where = subprocess.run([str(installed), "-m", "mat2grad", "matlab", "--folder"], **run)
    folder = Path(where.stdout.strip())
    assert where.returncode == 0 and folder.is_relative_to(installed.parent.parent), where
    assert not folder.is_relative_to(ROOT)
    shown = subprocess.run([str(installed), "-m", "mat2grad", "matlab"], **run).stdout
    line = shown.strip().splitlines()[-1].strip()
    assert line.startswith("addpath(") and str(installed) in line, shown

    # 1. the pasted line, then the README's calls (system() and the worker)
    code = (
        f"{line}; file = {_text(EXAMPLE)}; S = load(file); "
        "Y = mat2grad_predict(file, S.X); "
        "assert(max(abs(Y(:) - S.Y(:))) < 1e-12 * max(abs(S.Y(:)))); "
        "mat2grad_setup('Worker', true); [J, Y2] = mat2grad_jacobian(file, S.X(:, 1:5)); "
        "assert(size(J), [3 10 5]); assert(max(abs(Y2(:) - Y(1:15)')) < 1e-12 * max(abs(Y(:)))); "
        "printf('M2G-OK\\n');"
    )
    octave = [OCTAVE, "--no-gui", "--no-history", "--norc", "--quiet", "--eval", code]
    proc = subprocess.run(octave, **run)
    assert "M2G-OK" in proc.stdout, proc.stdout + proc.stderr

    # 2. --install writes ~/.octaverc once (twice: still one block), and Octave reads it
    (home / ".octaverc").write_text("x_before = 1;\n")
    install = [str(installed), "-m", "mat2grad", "matlab", "--install", "octave"]
    for _ in range(2):
        done = subprocess.run(install, **run)
        assert done.returncode == 0, done.stderr
    rc = (home / ".octaverc").read_text()
    assert rc.startswith("x_before = 1;\n") and rc.count("addpath(") == 1, rc
    code = (
        f"file = {_text(EXAMPLE)}; S = load(file); c = mat2grad_setup(); "
        f"assert(c.PythonExecutable, {_text(installed)}); "
        "Y = mat2grad_predict(file, S.X(:, 1:3)); assert(size(Y), [3 3]); printf('M2G-OK\\n');"
    )
    proc = subprocess.run([OCTAVE, "--no-gui", "--no-history", "--quiet", "--eval", code], **run)
    assert "M2G-OK" in proc.stdout, proc.stdout + proc.stderr
