"""``matlab``: where the MATLAB/Octave helpers are, the line that sets them up, and (on
request) that line in MATLAB's or Octave's startup file.

The helpers (``mat2grad_predict.m``, ``mat2grad_jacobian.m``, ...) ship inside the package as
``mat2grad/matlab`` (the wheel force-includes the repository's ``matlab/`` folder there); in a
clone or an editable install they are the repository's ``matlab/`` folder itself.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import Mat2GradError

__all__ = [
    "MARK_BEGIN",
    "MARK_END",
    "WORKER_IDLE_TIMEOUT",
    "MatlabOptions",
    "helpers_folder",
    "install",
    "setup_line",
]

#: Seconds without a request after which the helpers' worker (``mat2grad worker``) ends;
#: the helpers start a new one when they need it.
WORKER_IDLE_TIMEOUT = 1800.0

#: The lines around the block ``install`` writes; a later install replaces that block.
MARK_BEGIN = "% >>> mat2grad helpers (written by 'mat2grad matlab --install') >>>"
MARK_END = "% <<< mat2grad helpers <<<"


@dataclass(frozen=True)
class MatlabOptions:
    """Options of ``mat2grad matlab``.

    Attributes:
        install: ``"octave"`` or ``"matlab"``: add the helpers to that program's startup
            file; ``None``: only print.
        startup: the startup file to write instead of the program's usual one.
        python: the Python the helpers should run (default: this one).
    """

    install: str | None = None
    startup: str | None = None
    python: str | None = None


def helpers_folder() -> Path:
    """The folder of the ``.m`` helpers: ``mat2grad/matlab`` in an installed wheel, the
    repository's ``matlab/`` in a clone."""
    package = Path(__file__).resolve().parent.parent
    for folder in (package / "matlab", package.parent / "matlab"):
        if (folder / "mat2grad_setup.m").is_file():
            return folder
    raise Mat2GradError(
        f"the MATLAB helpers are not installed beside {package} (no matlab/mat2grad_setup.m); "
        "reinstall mat2grad from a wheel or a clone of the repository"
    )


def _text(value: str) -> str:
    """A MATLAB char literal."""
    return "'" + value.replace("'", "''") + "'"


def setup_line(python: str | None = None) -> str:
    """The line to paste into MATLAB or Octave: ``addpath(...)`` and ``mat2grad_setup``
    with this Python (which stores it for later sessions)."""
    exe = python or sys.executable
    return (
        f"addpath({_text(str(helpers_folder()))}); mat2grad_setup('PythonExecutable', {_text(exe)})"
    )


def startup_file(program: str) -> Path:
    """Where ``program`` (``"octave"`` or ``"matlab"``) reads its user startup code:
    ``~/.octaverc``, or ``startup.m`` in MATLAB's default userpath (``Documents/MATLAB``
    in the home folder)."""
    home = Path.home()
    if program == "octave":
        return home / ".octaverc"
    if program == "matlab":
        return home / "Documents" / "MATLAB" / "startup.m"
    raise Mat2GradError(f"--install takes 'octave' or 'matlab', not '{program}'")


def install(opts: MatlabOptions) -> Path:
    """Write the helpers' setup into the startup file (once: an earlier block written by
    this command is replaced, anything else in the file is kept). Returns the file.

    The block adds the helpers to the path and names the Python in ``MAT2GRAD_PYTHON``
    (cheap at every start; ``mat2grad_setup`` would start Python to check it).
    """
    if opts.install is None:
        raise Mat2GradError("install: say which program: --install octave or --install matlab")
    path = Path(opts.startup) if opts.startup else startup_file(opts.install)
    exe = opts.python or sys.executable
    block = [
        MARK_BEGIN,
        f"addpath({_text(str(helpers_folder()))});",
        f"setenv('MAT2GRAD_PYTHON', {_text(exe)});",
        MARK_END,
    ]
    try:
        old = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        if MARK_BEGIN in old and MARK_END in old[old.index(MARK_BEGIN) :]:
            start = old.index(MARK_BEGIN)
            end = old.index(MARK_END, start)
            lines = old[:start] + block + old[end + 1 :]
        else:
            lines = old + block
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".mat2grad-tmp")
        temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        raise Mat2GradError(
            f"cannot write the startup file {path} ({exc.strerror or exc}); name another "
            "with --startup FILE, or paste the line 'mat2grad matlab' prints"
        ) from None
    return path
