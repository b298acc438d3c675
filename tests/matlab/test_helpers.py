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
  ``TMPDIR``, which must be empty afterwards: no helper may leave a temporary file behind
  (PyTorch's own cache folder is sent elsewhere with ``TORCHINDUCTOR_CACHE_DIR``);
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

from tests.support.helpers import CORPUS, HAVE_CORPUS, ROOT

OCTAVE = shutil.which("octave-cli")
MATLAB_DIR = ROOT / "matlab"
SUPPORT_DIR = ROOT / "tests" / "matlab"
FILES = sorted(
    p
    for p in [*MATLAB_DIR.glob("*.m"), *MATLAB_DIR.glob("private/*.m")]
    if re.search(r"^%!", p.read_text(encoding="utf-8"), re.MULTILINE)
)

requires_octave = pytest.mark.skipif(
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


# --------------------------------------------------------------------------------------
# What Octave cannot check: MATLAB must parse the same files. Octave accepts syntax that
# MATLAB rejects (x += 1, "..." as char, endif, #-comments, printf, !=); and MATLAB-only
# or Octave-only functions must not slip into the shared code. The %! test blocks are
# comments to MATLAB and may use Octave's syntax.
# --------------------------------------------------------------------------------------

NOT_PORTABLE = {
    r"(\+|-|\*|/)=": "Octave-only operator (x += 1)",
    r"!=|!(?!=)": "Octave-only negation (use ~ and ~=)",
    r"\bend(if|for|while|function|switch|_try_catch)\b": "Octave-only end keyword",
    r"(?<![.\w])(printf|puts|fputs|columns|rows|ifelse|merge)\s*\(": "Octave-only function",
    r"\bunwind_protect\b": "Octave-only block (use onCleanup)",
    r"(?<![.\w])(contains|string|strlength|join|split|MException|getReport)\s*\(": (
        "not available in Octave"
    ),
    r"^\s*arguments\b": "arguments blocks (Octave ignores or rejects them)",
    r"\"": "double-quoted text is a string in MATLAB but char in Octave: use '...'",
    r"#": "Octave-only comment character",
}


def _code(line: str) -> str:
    """A line of MATLAB code with char literals and the trailing comment removed.

    A quote opens a char literal unless it follows something that can be transposed
    (a name, a number, a closing bracket, a quote): then it is the transpose operator.
    """
    out, k, n = [], 0, len(line)
    while k < n:
        ch = line[k]
        if ch == "%":
            break
        if ch == "'" and not (out and re.match(r"[\w)\]}.']", out[-1])):
            k += 1
            while k < n and not (line[k] == "'" and line[k + 1 : k + 2] != "'"):
                k += 2 if line[k] == "'" else 1
            out.append("''")  # an empty literal keeps the shape of the line
        else:
            out.append(ch)
        k += 1
    return "".join(out)


MFILES = sorted([*MATLAB_DIR.glob("*.m"), *MATLAB_DIR.glob("private/*.m")])


@pytest.mark.parametrize("path", MFILES, ids=lambda p: p.relative_to(MATLAB_DIR).as_posix())
def test_matlab_code_is_portable(path: Path):
    problems = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("%"):
            continue  # comments, help text and %! test blocks
        code = _code(line)
        problems += [
            f"{path.name}:{number}: {why}: {line.strip()}"
            for pattern, why in NOT_PORTABLE.items()
            if re.search(pattern, code)
        ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "line, code",
    [
        ("x = 'it''s % not a comment'; % comment", "x = ''; "),
        ("y = a'; z = [b' c'];", "y = a'; z = [b' c'];"),
        ("q = ['\"' s '\"'];", "q = ['' s ''];"),
    ],
)
def test_code_scanner(line, code):
    assert _code(line) == code


@pytest.mark.parametrize(
    "line",
    [
        "n += 1;",
        "if a != b",
        "endif",
        "printf('%d', n);",
        "ok = contains(name, 'x');",
        "  arguments",
        'name = "net";',
        "x = 1; # note",
        "unwind_protect",
    ],
)
def test_portability_check_catches(line):
    assert any(re.search(pattern, _code(line)) for pattern in NOT_PORTABLE), line


def test_contents_lists_every_helper():
    contents = (MATLAB_DIR / "Contents.m").read_text(encoding="utf-8")
    for path in sorted(MATLAB_DIR.glob("mat2grad_*.m")):
        h1 = path.read_text(encoding="utf-8").splitlines()[1]
        summary = h1.split(None, 1)[1].strip()
        assert re.search(rf"%\s+{path.stem}\s+- {re.escape(summary)}", contents), path.stem


WINDOWS_ARGS = [
    "plain",
    "a b",
    "C:\\Program Files\\Python 3.11\\python.exe",
    "C:\\dir with space\\",
    'say "hi" now',
    'a\\"b c',
    "x y\\\\",
    "",
]


@requires_octave
def test_windows_quoting_matches_the_c_runtime(tmp_path):
    """quote_arg(..., 'windows') quotes like Python's subprocess.list2cmdline, which
    implements the Microsoft C runtime's argv rules (quoted whether needed or not)."""
    import numpy as np
    import scipy.io

    cases = np.empty((len(WINDOWS_ARGS), 1), dtype=object)
    cases[:, 0] = WINDOWS_ARGS
    scipy.io.savemat(tmp_path / "in.mat", {"cases": cases})
    code = (
        f"S = load({_octave_text(tmp_path / 'in.mat')}); q = cellfun(@(s) quote_arg(s, "
        "'windows'), S.cases, 'UniformOutput', false); "
        f"save('-v7', {_octave_text(tmp_path / 'out.mat')}, 'q');"
    )
    subprocess.run(
        [OCTAVE, "--no-gui", "--no-history", "--norc", "--quiet", "--eval", code],
        cwd=MATLAB_DIR / "private",
        check=True,
        timeout=60,
    )
    got = [str(c[0]) if c.size else "" for c in scipy.io.loadmat(tmp_path / "out.mat")["q"][:, 0]]
    for arg, quoted in zip(WINDOWS_ARGS, got, strict=True):
        reference = subprocess.list2cmdline([arg])
        # list2cmdline leaves plain words unquoted; quote_arg always quotes
        if not reference.startswith('"'):
            reference = f'"{reference}"'
        assert quoted == reference, (arg, quoted, reference)


def test_every_helper_has_octave_tests():
    public = {p.stem for p in MATLAB_DIR.glob("mat2grad_*.m")}
    tested = {p.stem for p in FILES}
    assert public, f"no helpers found in {MATLAB_DIR}"
    assert public <= tested, f"helpers without %!test blocks: {sorted(public - tested)}"


@requires_octave
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
        # torch.func keeps a cache folder in the temporary folder (torchinductor_<user>):
        # PyTorch's, persistent by design, so it goes elsewhere for the leftover check
        TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "torch-cache"),
        M2G_CORPUS=str(CORPUS) if HAVE_CORPUS else "",
        M2G_FEATURES=_features(),
    )
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
    assert total > 0 and passed == total
    left = sorted(p.name for p in tmp.iterdir())
    assert not left, f"{path.name}: temporary files left behind in TMPDIR: {left}"
    if skipped:
        warnings.warn(
            f"{path.name}: {skipped} Octave test block(s) skipped (corpus absent, or a "
            f"command this mat2grad lacks; features: {env['M2G_FEATURES']})",
            stacklevel=1,
        )
