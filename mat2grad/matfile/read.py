"""Reading MAT-files (v4, v6, v7, v7.3) into the neutral tree (:mod:`.tree`).

v4/v6/v7 files are read with scipy (``squeeze_me=False`` so cell shapes and vector
orientation survive); classdef (MCOS) objects, which scipy returns as opaque, and v7.3 (HDF5)
files are read with mat-io (``import matio``, built on h5py). A variable that no reader can
decode becomes an :class:`~.tree.Opaque` and never stops the rest of the file from loading.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Mat2GradError
from .tree import MatStruct, MatStructArray, Opaque, is_sparse
from .validate import MAX_INFLATION, validate_mat, validate_v73

__all__ = ["read_mat"]

_RECENT: dict[tuple[str, int, int], dict[str, Any]] = {}


def read_mat(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read every variable of a MAT-file (v4, v6, v7, v7.3) into the neutral tree.

    One command often reads the same file several times (the network, the inputs and the
    targets of a workspace save): the last two files read are kept, keyed on path,
    modification time and size, so an unchanged file is decoded once. Treat the returned
    tree as read-only.

    Raises:
        Mat2GradError: the file is missing, not a MAT-file, or truncated.
    """
    path = Path(path)
    if not path.is_file():
        raise Mat2GradError(f"{path}: no such file")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _RECENT:
        variables = _read(path)
        while len(_RECENT) >= 2:
            _RECENT.pop(next(iter(_RECENT)))
        _RECENT[key] = variables
    return _RECENT[key]


def _read(path: Path) -> dict[str, Any]:
    version = _mat_version(path)
    if version == "7.3":
        validate_v73(path)  # sizes checked before h5py allocates them: see validate.py
        return _read_with_matio(path, version)
    variables = _read_with_scipy(path, version)
    # classdef (MCOS) objects: scipy returns an opaque placeholder, often under the name
    # 'None' because the real name lives in the MCOS subsystem. mat-io decodes them.
    if any(_is_scipy_opaque(v) for v in variables.values()):
        try:
            decoded = _read_with_matio(path, version)
        except Mat2GradError:
            decoded = {}
        variables.pop("None", None)
        for name, value in decoded.items():
            if name not in variables or isinstance(variables[name], Opaque):
                variables[name] = value
    return variables


def _mat_version(path: Path) -> str:
    from scipy.io.matlab import matfile_version  # deferred: cuts start-up time

    try:
        with open(path, "rb") as fh:
            major, _minor = matfile_version(fh)
    except Exception as exc:  # scipy raises ValueError / MatReadError / IndexError
        raise Mat2GradError(
            f"{path}: not a MATLAB MAT-file ({exc}); save it in MATLAB with "
            f"save('{path.name}', 'net', '-v7')"
        ) from None
    return {0: "4", 1: "5", 2: "7.3"}.get(major, "5")


def _read_with_scipy(path: Path, version: str = "5") -> dict[str, Any]:
    import scipy.io  # deferred: cuts start-up time

    validate_mat(path, version)  # scipy's C reader trusts the file: see validate.py
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # duplicate 'None' names from MCOS objects
            raw = scipy.io.loadmat(
                str(path),
                squeeze_me=False,
                struct_as_record=True,
                chars_as_strings=True,
                mat_dtype=False,
                verify_compressed_data_integrity=True,
            )
    except Exception as exc:
        if version == "4":  # no v5/v7.3 header: scipy guesses v4 for almost any bytes
            raise Mat2GradError(
                f"{path}: not a MATLAB MAT-file (no MAT-file header, and not a valid v4 file: "
                f"{exc}); save it in MATLAB with save('{path.name}', 'net', '-v7')"
            ) from None
        raise Mat2GradError(
            f"{path}: the MAT-file cannot be read ({type(exc).__name__}: {exc}); it may be "
            "truncated or corrupt: save it again from MATLAB"
        ) from None
    budget = _Budget(path)
    return {n: _from_scipy(v, budget) for n, v in raw.items() if not n.startswith("__")}


def _is_scipy_opaque(value: Any) -> bool:
    return isinstance(value, Opaque)


def _read_with_matio(path: Path, version: str) -> dict[str, Any]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # mat-io sets a deprecated pandas option
            import matio  # deferred: cuts start-up time (pandas, h5py)
    except ImportError:  # pragma: no cover - a declared dependency
        raise Mat2GradError(
            f"{path}: reading this file needs the package mat-io (pip install mat-io)"
        ) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = matio.load_from_mat(str(path))
        budget = _Budget(path)
        return {n: _from_matio(v, budget) for n, v in raw.items() if not n.startswith("__")}
    except Mat2GradError:
        raise
    except Exception as whole_exc:
        # One undecodable variable must not hide the others: read them one by one.
        try:
            names = list(matio.whosmat(str(path)))
        except Exception:
            raise Mat2GradError(
                f"{path}: the MAT-file (version {version}) cannot be read "
                f"({type(whole_exc).__name__}: {whole_exc}); it may be truncated or corrupt"
            ) from None
        out: dict[str, Any] = {}
        for name in names:
            if name.startswith("__"):
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    one = matio.load_from_mat(str(path), variable_names=[name])
                out[name] = _from_matio(one[name], _Budget(path))
            except Mat2GradError:
                raise
            except Exception as exc:
                out[name] = Opaque("unknown", f"{type(exc).__name__}: {exc}")
        return out


class _Budget:
    """How many tree nodes (cell elements, struct fields) a file may produce.

    Every node costs at least 8 bytes of (inflated) file data, and inflation is bounded by
    deflate's own limit, so a file of ``size`` bytes cannot honestly yield more than
    ``MAX_INFLATION * size / 8`` nodes; a file that does is corrupt, and stopping it bounds
    the work a tiny file can cause.
    """

    def __init__(self, path: Path):
        self.path = path
        self.left = MAX_INFLATION * path.stat().st_size // 8 + 4096

    def spend(self, nodes: int) -> None:
        self.left -= nodes
        if self.left < 0:
            raise Mat2GradError(
                f"{self.path}: the MAT-file is corrupt: it decodes to more cells and fields "
                "than its size allows; save it again from MATLAB"
            )


def _from_scipy(value: Any, budget: _Budget) -> Any:
    from scipy.io.matlab import MatlabFunction, MatlabObject, MatlabOpaque  # deferred: start-up

    if value is None:  # scipy's reading of an empty element inside some cells
        return np.zeros((0, 0))
    if isinstance(value, MatlabOpaque):
        try:
            kind = value[0]["s2"]
            kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        except Exception:
            kind = "opaque"
        return Opaque(kind, "scipy cannot decode classdef/Java objects")
    if isinstance(value, MatlabFunction):
        return Opaque("function_handle")
    if isinstance(value, np.ndarray):
        classname = value.classname if isinstance(value, MatlabObject) else None
        if value.dtype.names is not None:
            return _struct(value, classname, lambda v: _from_scipy(v, budget), budget)
        if value.dtype == object:
            budget.spend(value.size)
            out = np.empty(value.shape, dtype=object)
            for idx, item in np.ndenumerate(value):
                out[idx] = _from_scipy(item, budget)
            return out
        if value.dtype.kind == "U":
            return _char(value)
        return value
    return value  # scipy.sparse matrices and anything else scipy decoded, as they are


def _from_matio(value: Any, budget: _Budget) -> Any:
    from matio.utils.matclass import (  # deferred: cuts start-up time
        EmptyMatStruct,
        MatlabCanonicalEmpty,
        MatlabFunction,
        MatlabObject,
        MatlabOpaque,
    )

    if isinstance(value, MatlabCanonicalEmpty) or value is None:
        return np.zeros((0, 0))
    if isinstance(value, MatlabOpaque):
        classname = str(value.classname)
        props = value.properties
        if isinstance(props, dict):
            budget.spend(len(props))
            fields = {str(k): _from_matio(v, budget) for k, v in props.items()}
            return MatStruct(fields, classname=classname)
        return Opaque(classname, "mat-io returned no properties")
    if isinstance(value, MatlabFunction):
        return Opaque("function_handle")
    if isinstance(value, EmptyMatStruct):
        budget.spend(int(np.prod(value.shape, dtype=object)))
        return np.empty(value.shape, dtype=object)
    if isinstance(value, np.ndarray):
        classname = value.classname if isinstance(value, MatlabObject) else None
        if value.dtype.names is not None:
            return _struct(value, classname, lambda v: _from_matio(v, budget), budget)
        if value.dtype == object:
            budget.spend(value.size)
            out = np.empty(value.shape if value.ndim >= 2 else (1, value.size), dtype=object)
            for idx, item in np.ndenumerate(value.reshape(out.shape)):
                out[idx] = _from_matio(item, budget)
            return out
        if value.dtype.kind == "U":
            return _char(value)
        return value if value.ndim >= 2 else value.reshape(1, -1)
    if isinstance(value, dict):
        budget.spend(len(value))
        return MatStruct({str(k): _from_matio(v, budget) for k, v in value.items()})
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float | np.number):
        return np.array([[value]])
    if is_sparse(value):
        return value
    return Opaque(type(value).__name__, "unrecognised value")


def _struct(
    value: np.ndarray, classname: str | None, convert, budget: _Budget
) -> MatStruct | MatStructArray:
    names = value.dtype.names or ()
    budget.spend(value.size * max(len(names), 1))

    def one(rec) -> MatStruct:
        return MatStruct({n: convert(rec[n]) for n in names}, classname=classname)

    if value.shape == (1, 1):
        return one(value[0, 0])
    items = np.empty(value.shape, dtype=object)
    for idx in np.ndindex(value.shape):
        items[idx] = one(value[idx])
    return MatStructArray(items, classname=classname)


def _char(value: np.ndarray) -> Any:
    rows = [str(s) for s in value.reshape(-1)]
    if len(rows) == 0:
        return ""
    if len(rows) == 1:
        return rows[0]
    out = np.empty((len(rows), 1), dtype=object)
    for k, r in enumerate(rows):
        out[k, 0] = r
    return out
