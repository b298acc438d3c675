"""The MATLAB/Octave helpers in ``matlab/``, run end to end in real GNU Octave.

Every ``.m`` file with ``%!`` test blocks (``matlab/*.m`` and ``matlab/private/*.m``) runs in
its own ``octave-cli`` process: ``[n, nmax] = test(name, 'quiet', stdout)`` and the process
exits with ``n ~= nmax``, so one failing block fails the pytest case (Octave's own
``runtests`` exits 0 on failure and is not used). Private functions are tested with the
``private`` folder as the current folder, the only way Octave lets a test reach them.

The Octave process gets:

* ``MAT2GRAD_PYTHON`` = this Python and ``PYTHONPATH`` = the repository, so the helpers run
  the mat2grad under test;
* a fresh ``HOME`` (preferences written by ``mat2grad_setup`` stay in the test) and a fresh
  ``TMPDIR``, which must be empty afterwards: no helper may leave a temporary file behind;
* ``M2G_CORPUS`` (the real-file corpus, when present) and ``M2G_FEATURES`` (the CLI commands
  this mat2grad has, plus ``onnx``), read by the test-support functions in ``tests/matlab``.
  Blocks for commands not on this branch yet are ``%!testif ; m2g_test_has ('jacobian')``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tests.helpers import CORPUS, HAVE_CORPUS, ROOT

OCTAVE = shutil.which("octave-cli")
MATLAB_DIR = ROOT / "matlab"
SUPPORT_DIR = ROOT / "tests" / "matlab"
FILES = sorted(
    p
    for p in [*MATLAB_DIR.glob("*.m"), *MATLAB_DIR.glob("private/*.m")]
    if re.search(r"^%!", p.read_text(encoding="utf-8"), re.MULTILINE)
)

pytestmark = pytest.mark.skipif(
    OCTAVE is None,
    reason="GNU Octave is not installed (octave-cli not on PATH); CI installs it "
    "(apt-get install -y --no-install-recommends octave)",
)


def _features() -> str:
    """The CLI subcommands of the mat2grad under test, plus 'onnx' when it reads ONNX."""
    from mat2grad.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]  # the subparsers action
    names = sorted(sub.choices)
    if importlib.util.find_spec("mat2grad.onnx") is not None:
        names.append("onnx")
    return ",".join(names)


def _octave_text(path: Path) -> str:
    return "'" + path.as_posix().replace("'", "''") + "'"


def test_every_helper_has_octave_tests():
    public = {p.stem for p in MATLAB_DIR.glob("mat2grad_*.m")}
    tested = {p.stem for p in FILES}
    assert public, f"no helpers found in {MATLAB_DIR}"
    assert public <= tested, f"helpers without %!test blocks: {sorted(public - tested)}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(MATLAB_DIR).as_posix())
def test_octave_blocks(path: Path, tmp_path: Path):
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = dict(
        os.environ,
        MAT2GRAD_PYTHON=sys.executable,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        HOME=str(home),
        TMPDIR=str(tmp),
        M2G_CORPUS=str(CORPUS) if HAVE_CORPUS else "",
        M2G_FEATURES=_features(),
    )
    env.pop("MAT2GRAD_INPROCESS", None)
    private = path.parent.name == "private"
    code = (
        f"addpath({_octave_text(MATLAB_DIR)}); addpath({_octave_text(SUPPORT_DIR)}); "
        f"[n, nmax, nxfail, nbug, nskip, nrtskip] = test('{path.stem}', 'quiet', stdout); "
        "printf('M2G-RESULT %d %d %d\\n', n, nmax, nskip + nrtskip); exit(n ~= nmax);"
    )
    proc = subprocess.run(
        [OCTAVE, "--no-gui", "--no-history", "--norc", "--quiet", "--eval", code],
        cwd=path.parent if private else tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = proc.stdout + proc.stderr
    result = re.search(r"M2G-RESULT (\d+) (\d+) (\d+)", proc.stdout)
    assert proc.returncode == 0 and result, f"Octave tests of {path.name} failed:\n{output}"
    passed, total, skipped = map(int, result.groups())
    assert passed == total
    left = sorted(p.name for p in tmp.iterdir())
    assert not left, f"{path.name}: temporary files left behind in TMPDIR: {left}"
    if skipped:
        warnings.warn(
            f"{path.name}: {skipped} Octave test block(s) skipped (corpus absent, or a "
            f"command this mat2grad lacks; features: {env['M2G_FEATURES']})",
            stacklevel=1,
        )
