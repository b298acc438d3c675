"""The package itself (``mat2grad/__init__.py``): ``import mat2grad`` imports no torch, and
every public name, imported on first use, is what the eager import of the API gave.

The checks that depend on what a fresh interpreter has imported run in a subprocess.
"""

from __future__ import annotations

import pkgutil
import textwrap
import types

import pytest

import mat2grad
from tests.support.helpers import run_python


def fresh(code: str) -> str:
    """Run ``code`` in a new interpreter that imports this checkout; its stdout."""
    r = run_python("-c", textwrap.dedent(code))
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_import_mat2grad_imports_no_torch():
    out = fresh(
        """
        import sys
        import mat2grad
        print(mat2grad.__version__, "torch" in sys.modules)
        """
    )
    assert out.split() == [mat2grad.__version__, "False"]


def test_every_public_name_resolves():
    for name in mat2grad.__all__:
        assert getattr(mat2grad, name) is not None, name
    assert set(mat2grad.__all__) <= set(dir(mat2grad))
    namespace: dict[str, object] = {}
    exec("from mat2grad import *", namespace)
    assert set(mat2grad.__all__) <= set(namespace)


def test_public_names_are_the_objects_of_their_modules():
    from mat2grad.autodiff import jacobian
    from mat2grad.errors import Mat2GradError
    from mat2grad.loading import find_networks, load

    assert mat2grad.jacobian is jacobian
    assert mat2grad.load is load
    assert mat2grad.find_networks is find_networks
    assert mat2grad.Mat2GradError is Mat2GradError


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'frobnicate'"):
        _ = mat2grad.frobnicate
    assert not hasattr(mat2grad, "__wrapped__")


def test_the_modules_are_attributes_as_before():
    # the eager import of the API left every module there; code still reads them so
    assert isinstance(mat2grad.loading, types.ModuleType)
    assert mat2grad.loading.load_spec is not None
    assert isinstance(mat2grad.matfile, types.ModuleType)


def test_the_functions_win_over_their_modules_imported_first():
    # Importing a module sets the package's attribute of its name to the module; the
    # functions of the same names must still be what the package answers, whoever imported
    # the modules first and whenever.
    out = fresh(
        """
        from mat2grad.performance import weight_gradient
        from mat2grad.sensitivity import sensitivity
        from mat2grad.predict import predict
        import mat2grad.performance.wb
        import mat2grad.sensitivity.api
        import mat2grad
        from mat2grad import performance as p
        print(callable(mat2grad.performance), mat2grad.performance is p)
        print(mat2grad.sensitivity is sensitivity, mat2grad.predict is predict)
        print(mat2grad.weight_gradient is weight_gradient)
        import sys
        print(sys.modules["mat2grad.performance"].weight_gradient is weight_gradient)
        """
    )
    assert out.split() == ["True"] * 6


def test_the_functions_win_when_asked_for_first():
    out = fresh(
        """
        import mat2grad
        f, s, p = mat2grad.performance, mat2grad.sensitivity, mat2grad.predict
        from mat2grad.performance import weight_gradient
        from mat2grad.sensitivity import dgsm
        import mat2grad.dask
        print(mat2grad.performance is f, mat2grad.sensitivity is s, mat2grad.predict is p)
        print(all(callable(g) and not isinstance(g, type(mat2grad)) for g in (f, s, p)))
        """
    )
    assert out.split() == ["True"] * 4


def test_every_public_name_shared_with_a_module_is_shadowed():
    modules = {m.name for m in pkgutil.iter_modules(mat2grad.__path__)}
    shared = modules & set(mat2grad.__all__)
    assert shared == {"performance", "predict", "sensitivity"}
    assert shared <= mat2grad._SHADOWED
    for name in shared:
        assert callable(getattr(mat2grad, name)) and not isinstance(
            getattr(mat2grad, name), types.ModuleType
        ), name
