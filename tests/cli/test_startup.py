"""What the command line imports: ``mat2grad info`` on a MAT-file and ``--version`` start
without torch (a second of the call, measured), and print what they printed when everything
was imported at start-up. The checks run in a fresh interpreter (a subprocess)."""

from __future__ import annotations

import textwrap

from mat2grad.commands import CHOICES
from mat2grad.contract import DTYPES
from tests.support.helpers import FIXTURES, run_python

FITNET = FIXTURES / "example_fitnet.mat"

#: what ``mat2grad info fixtures/example_fitnet.mat`` printed before start-up went lazy
FITNET_INFO = """\
{file}: 1 network(s)
'net'
  name: Function Fitting Neural Network; format version 8; performance mse; training trainlm
  10 -> [20 tansig] -> [3 purelin] -> 3
  input 1 'Input': 10 rows -> 9 after processing (removeconstantrows, mapminmax)
  layer 1 'Hidden': 20 tansig <- IW{{1,1}} dotprod + b
  layer 2 'Output': 3 purelin <- LW{{2,1}} dotprod + b
  output 2 'Output': layer 2 (3 rows) -> 3 rows after reverse processing (mapminmax)
"""


def test_python_dash_m_info_prints_the_networks():
    r = run_python("-m", "mat2grad", "info", "fixtures/example_fitnet.mat")
    assert r.returncode == 0, r.stderr
    assert r.stdout == FITNET_INFO.format(file="fixtures/example_fitnet.mat")
    assert r.stderr == ""


def test_info_on_a_mat_file_imports_no_torch():
    code = f"""
        import sys
        from mat2grad.cli import main
        code = main(["info", {str(FITNET)!r}])
        code_json = main(["info", "--json", {str(FITNET)!r}])
        print(code, code_json, "torch" in sys.modules)
        """
    r = run_python("-c", textwrap.dedent(code))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(FITNET_INFO.format(file=FITNET))
    assert r.stdout.splitlines()[-1] == "0 0 False"


def test_describe_file_imports_no_torch():
    code = f"""
        import sys
        from mat2grad.info import describe_file
        import mat2grad
        text, data = describe_file({str(FITNET)!r})
        found = mat2grad.find_networks({str(FITNET)!r})
        print(len(data["networks"]), found[0].path, "torch" in sys.modules)
        """
    r = run_python("-c", textwrap.dedent(code))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "net", "False"]


def test_jacobian_of_a_matlab_network_imports_neither_sympy_nor_dynamo(tmp_path):
    # torch imports sympy (0.5 s) when autograd is handed a cotangent tensor, and
    # torch._dynamo (1.2 s) on torch.func's first backward pass: the CLI's jacobian on a
    # shallow network needs neither (its whole run took 2.2 s against 1.8 s for importing
    # torch and scipy.io)
    code = f"""
        import sys
        from mat2grad.cli import main
        rc = main(["jacobian", {str(FITNET)!r}, "--inputs", {str(FITNET)!r},
                   "-o", {str(tmp_path / "J.mat")!r}])
        print(rc, "sympy" in sys.modules, "torch._dynamo" in sys.modules)
        """
    r = run_python("-c", textwrap.dedent(code))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-3:] == ["0", "False", "False"]


def test_version_imports_no_torch():
    code = """
        import sys
        from mat2grad.cli import main
        try:
            main(["--version"])
        except SystemExit as exc:
            print(exc.code, "torch" in sys.modules)
        """
    r = run_python("-c", textwrap.dedent(code))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-2:] == ["0", "False"]
    r = run_python("-X", "importtime", "-m", "mat2grad", "--version")
    assert r.returncode == 0 and r.stdout.startswith("mat2grad ")
    imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines()}
    assert "torch" not in imported


def test_the_dtype_choices_are_the_model_dtypes():
    # spelt out in the options so that the command line is built without torch
    assert CHOICES["dtype"] == tuple(DTYPES)
