"""``mat2grad matlab``: the helpers' folder, the setup line, and --install into a startup
file (idempotent: one block, replaced when run again)."""

from __future__ import annotations

import sys

import pytest

from mat2grad.cli import main
from mat2grad.commands.matlab import MARK_BEGIN, MARK_END, helpers_folder
from tests.support.helpers import ROOT


def test_folder_and_line(capsys):
    assert main(["matlab", "--folder"]) == 0
    folder = capsys.readouterr().out.strip()
    assert folder == str(helpers_folder()) == str(ROOT / "matlab")  # a clone: its matlab/
    assert main(["matlab", "--python", "/opt/it's/python"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1].strip()
    assert line == (f"addpath('{folder}'); mat2grad_setup('PythonExecutable', '/opt/it''s/python')")


def test_install_is_idempotent(tmp_path, capsys):
    rc = tmp_path / "sub" / "startup.m"
    assert main(["matlab", "--install", "matlab", "--startup", str(rc)]) == 0
    assert str(rc) in capsys.readouterr().out
    first = rc.read_text()
    assert first.splitlines()[0] == MARK_BEGIN and first.splitlines()[-1] == MARK_END
    assert f"setenv('MAT2GRAD_PYTHON', '{sys.executable}');" in first
    rc.write_text("disp('mine');\n" + first + "x = 2;\n")
    assert main(["matlab", "--install", "matlab", "--startup", str(rc), "--python", "/p"]) == 0
    text = rc.read_text()
    assert text.count(MARK_BEGIN) == 1 and text.count("addpath(") == 1
    assert text.startswith("disp('mine');\n") and text.endswith("x = 2;\n")
    assert "setenv('MAT2GRAD_PYTHON', '/p');" in text and sys.executable not in text


def test_install_needs_a_writable_file(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["matlab", "--install", "octave", "--startup", str(blocker / "rc")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mat2grad: cannot write the startup file") and "--startup" in err


@pytest.mark.parametrize("bad", [["--install", "emacs"], ["--nonsense"]])
def test_usage_errors(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["matlab", *bad])
    assert exc.value.code == 2
