"""The MAT-file boundary: the only module that knows how MATLAB lays data out on disk.

Reading
-------
``read_mat(path)`` returns every variable of a MAT-file as a *neutral tree* that does not
depend on which reader decoded it:

* a 1x1 struct or old-style object  -> :class:`MatStruct` (``.fields``, ``.classname``)
* a struct array of any other shape -> :class:`MatStructArray` (object array of MatStruct)
* a cell array                      -> ``numpy.ndarray`` of dtype object, MATLAB shape kept
* numeric / logical                 -> ``numpy.ndarray``, at least 2-D, MATLAB shape kept,
  *storage dtype kept* (MATLAB stores whole numbers compactly: uint8, int16, ...; use
  :func:`as_float` to get float64; casting lazily keeps a 340x63159 uint8 example input at
  21 MB instead of 171 MB)
* char                              -> ``str`` (a char matrix becomes an object array of rows)
* anything that cannot be decoded   -> :class:`Opaque` (Java objects, function handles, ...)

v4/v6/v7 files are read with scipy (``squeeze_me=False`` so cell shapes and vector
orientation survive); classdef (MCOS) objects, which scipy returns as opaque, and v7.3 (HDF5)
files are read with mat-io (``import matio``, built on h5py). A variable that no reader can
decode becomes an :class:`Opaque` and never stops the rest of the file from loading.

Paths
-----
``resolve(tree, "STATE.network.values{1}")`` addresses a value the way MATLAB would write it:
``.field``, ``{k}`` / ``{i,j}`` for cells, ``(k)`` / ``(i,j)`` for struct arrays, all 1-based.

Writing
-------
``write_mat(path, variables)`` writes results atomically (temporary file in the target
folder, then ``os.replace``): a failed ``savemat`` leaves a truncated file, so the target is
never touched until the new file is complete.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import Mat2GradError

__all__ = [
    "MatStruct",
    "MatStructArray",
    "Opaque",
    "read_mat",
    "resolve",
    "walk",
    "as_float",
    "as_text",
    "write_mat",
    "parse_path",
]


# --------------------------------------------------------------------------------------
# The neutral tree
# --------------------------------------------------------------------------------------


@dataclass
class MatStruct:
    """A 1x1 MATLAB struct, or an object (``classname`` set) stored as a struct."""

    fields: dict[str, Any]
    classname: str | None = None

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)

    def __contains__(self, name: str) -> bool:
        return name in self.fields

    def __repr__(self) -> str:  # keep reprs short: records hold megabytes
        names = list(self.fields)
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        return f"<{self.classname or 'struct'} with fields {shown}>"


@dataclass
class MatStructArray:
    """A struct array whose shape is not 1x1 (including empty struct arrays)."""

    items: np.ndarray  # object array of MatStruct, MATLAB shape
    classname: str | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.items.shape


@dataclass
class Opaque:
    """A value no reader could decode (a Java object, a function handle, an MCOS object
    mat-io could not read). Kept in the tree so a scan can report it and move on."""

    classname: str
    reason: str = ""


def as_float(value: Any, what: str = "value") -> np.ndarray:
    """Return a numeric or logical MATLAB value as a float64 array (shape kept)."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return np.asarray(value, dtype=np.float64)
    if isinstance(value, np.ndarray) and value.dtype.kind == "c":
        raise Mat2GradError(f"{what}: complex values are not supported; pass real data")
    if isinstance(value, bool | int | float):
        return np.array([[float(value)]])
    try:  # scipy.sparse
        import scipy.sparse as sp

        if sp.issparse(value):
            return np.asarray(value.toarray(), dtype=np.float64)
    except ImportError:  # pragma: no cover
        pass
    raise Mat2GradError(f"{what}: expected a numeric array, found {describe(value)}")


def as_text(value: Any) -> str:
    """Return a MATLAB char value as a Python str ('' for an empty array)."""
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray) and value.size == 0:
        return ""
    if isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        return as_text(value.flat[0])
    raise Mat2GradError(f"expected text, found {describe(value)}")


def describe(value: Any) -> str:
    """A short MATLAB-flavoured description of a tree value, for error messages."""
    if isinstance(value, MatStruct):
        return f"a 1x1 {value.classname or 'struct'}"
    if isinstance(value, MatStructArray):
        return f"a {_dims(value.shape)} {value.classname or 'struct'} array"
    if isinstance(value, Opaque):
        return f"an undecodable {value.classname} object"
    if isinstance(value, str):
        return f"char '{value[:40]}'"
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return f"a {_dims(value.shape)} cell"
        kind = {"b": "logical", "c": "complex"}.get(value.dtype.kind, _matlab_class(value.dtype))
        return f"a {_dims(value.shape)} {kind} array"
    return type(value).__name__


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape) if shape else "1x1"


def _matlab_class(dtype: np.dtype) -> str:
    return {"float64": "double", "float32": "single"}.get(dtype.name, dtype.name)


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


def read_mat(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read every variable of a MAT-file (v4, v6, v7, v7.3) into the neutral tree.

    Raises:
        Mat2GradError: the file is missing, not a MAT-file, or truncated.
    """
    path = Path(path)
    if not path.is_file():
        raise Mat2GradError(f"{path}: no such file")
    version = _mat_version(path)
    if version == "7.3":
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
    from scipy.io.matlab import matfile_version

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
    import scipy.io

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
    return {name: _from_scipy(value) for name, value in raw.items() if not name.startswith("__")}


def _is_scipy_opaque(value: Any) -> bool:
    return isinstance(value, Opaque)


def _read_with_matio(path: Path, version: str) -> dict[str, Any]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # mat-io sets a deprecated pandas option
            import matio
    except ImportError:  # pragma: no cover - a declared dependency
        raise Mat2GradError(
            f"{path}: reading this file needs the package mat-io (pip install mat-io)"
        ) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = matio.load_from_mat(str(path))
        return {n: _from_matio(v) for n, v in raw.items() if not n.startswith("__")}
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
                out[name] = _from_matio(one[name])
            except Exception as exc:
                out[name] = Opaque("unknown", f"{type(exc).__name__}: {exc}")
        return out


def _from_scipy(value: Any) -> Any:
    from scipy.io.matlab import MatlabFunction, MatlabObject, MatlabOpaque

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
            return _struct(value, classname, _from_scipy)
        if value.dtype == object:
            out = np.empty(value.shape, dtype=object)
            for idx, item in np.ndenumerate(value):
                out[idx] = _from_scipy(item)
            return out
        if value.dtype.kind == "U":
            return _char(value)
        return value
    try:
        import scipy.sparse as sp

        if sp.issparse(value):
            return value
    except ImportError:  # pragma: no cover
        pass
    return value


def _from_matio(value: Any) -> Any:
    from matio.utils.matclass import (
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
            fields = {str(k): _from_matio(v) for k, v in props.items()}
            return MatStruct(fields, classname=classname)
        return Opaque(classname, "mat-io returned no properties")
    if isinstance(value, MatlabFunction):
        return Opaque("function_handle")
    if isinstance(value, EmptyMatStruct):
        return np.empty(value.shape, dtype=object)
    if isinstance(value, np.ndarray):
        classname = value.classname if isinstance(value, MatlabObject) else None
        if value.dtype.names is not None:
            return _struct(value, classname, _from_matio)
        if value.dtype == object:
            out = np.empty(value.shape if value.ndim >= 2 else (1, value.size), dtype=object)
            for idx, item in np.ndenumerate(value.reshape(out.shape)):
                out[idx] = _from_matio(item)
            return out
        if value.dtype.kind == "U":
            return _char(value)
        return value if value.ndim >= 2 else value.reshape(1, -1)
    if isinstance(value, dict):
        return MatStruct({str(k): _from_matio(v) for k, v in value.items()})
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float | np.number):
        return np.array([[value]])
    try:
        import scipy.sparse as sp

        if sp.issparse(value):
            return value
    except ImportError:  # pragma: no cover
        pass
    return Opaque(type(value).__name__, "unrecognised value")


def _struct(value: np.ndarray, classname: str | None, convert) -> MatStruct | MatStructArray:
    names = value.dtype.names or ()

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


# --------------------------------------------------------------------------------------
# MATLAB-style paths
# --------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\.?(?P<field>[A-Za-z_][A-Za-z0-9_]*)      # .field or a leading name
      | \{(?P<cell>[0-9 ,]+)\}                    # {k} or {i,j}
      | \((?P<paren>[0-9 ,]+)\)                   # (k) or (i,j)
    """,
    re.VERBOSE,
)


def parse_path(path: str) -> list[tuple[str, Any]]:
    """Split ``a.b{1}.c(2,1)`` into ``[('field','a'), ('field','b'), ('cell',(1,)), ...]``."""
    steps: list[tuple[str, Any]] = []
    pos = 0
    text = path.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos or (pos == 0 and text.startswith(".")):
            raise Mat2GradError(
                f"'{path}' is not a MATLAB-style path (expected e.g. net, net1.net, "
                "STATE.network.values{1})"
            )
        if m.group("field"):
            steps.append(("field", m.group("field")))
        else:
            kind = "cell" if m.group("cell") is not None else "paren"
            raw = m.group("cell") if kind == "cell" else m.group("paren")
            try:
                idx = tuple(int(s) for s in raw.split(","))
            except ValueError:
                raise Mat2GradError(f"'{path}': bad index '{raw}'") from None
            if any(i < 1 for i in idx):
                raise Mat2GradError(f"'{path}': MATLAB indices start at 1")
            steps.append((kind, idx))
        pos = m.end()
    if not steps or steps[0][0] != "field":
        raise Mat2GradError(f"'{path}' must start with a variable name")
    return steps


def format_path(steps: list[tuple[str, Any]]) -> str:
    out = ""
    for kind, arg in steps:
        if kind == "field":
            out += ("." if out else "") + arg
        elif kind == "cell":
            out += "{" + ",".join(map(str, arg)) + "}"
        else:
            out += "(" + ",".join(map(str, arg)) + ")"
    return out


def resolve(variables: Mapping[str, Any], path: str, *, source: str = "") -> Any:
    """Return the value at a MATLAB-style path (``net``, ``net1.net``, ``S.v{2}``)."""
    where = f"{source}: " if source else ""
    steps = parse_path(path)
    value: Any = None
    done: list[tuple[str, Any]] = []
    for k, (kind, arg) in enumerate(steps):
        if k == 0:
            if arg not in variables:
                names = ", ".join(sorted(variables)) or "none"
                raise Mat2GradError(f"{where}no variable '{arg}' (variables: {names})")
            value = variables[arg]
        elif kind == "field":
            if isinstance(value, MatStruct) and arg in value.fields:
                value = value.fields[arg]
            else:
                have = ", ".join(value.fields) if isinstance(value, MatStruct) else describe(value)
                raise Mat2GradError(
                    f"{where}'{format_path(done)}' has no field '{arg}' (it holds: {have})"
                )
        else:
            container = value.items if isinstance(value, MatStructArray) else value
            ok = (kind == "cell" and isinstance(value, np.ndarray) and value.dtype == object) or (
                kind == "paren" and isinstance(value, MatStructArray | MatStruct)
            )
            if not ok:
                raise Mat2GradError(
                    f"{where}'{format_path(done)}' is {describe(value)}; "
                    f"cannot index it with {'{}' if kind == 'cell' else '()'}"
                )
            if isinstance(value, MatStruct):
                if arg in ((1,), (1, 1)):
                    done.append((kind, arg))
                    continue
                raise Mat2GradError(f"{where}'{format_path(done)}' is 1x1; index out of range")
            value = _index(container, arg, f"{where}'{format_path(done)}'")
        done.append((kind, arg))
    return value


def _index(arr: np.ndarray, idx: tuple[int, ...], what: str) -> Any:
    try:
        if len(idx) == 1:
            # MATLAB linear indexing is column-major
            flat = arr.reshape(-1, order="F")
            return flat[idx[0] - 1]
        return arr[tuple(i - 1 for i in idx)]
    except IndexError:
        raise Mat2GradError(
            f"{what} has size {_dims(arr.shape)}; index {idx} is out of range"
        ) from None


def walk(variables: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """Yield ``(path, value)`` for every value in the tree, depth first, in file order.

    Cells and struct arrays are entered element by element (column-major, as MATLAB
    numbers them); undecodable values are yielded as :class:`Opaque` and not entered.
    """

    def rec(path: str, value: Any, depth: int) -> Iterator[tuple[str, Any]]:
        yield path, value
        if depth > 32:
            return
        if isinstance(value, MatStruct):
            for name, child in value.fields.items():
                yield from rec(f"{path}.{name}", child, depth + 1)
        elif isinstance(value, MatStructArray):
            for k, item in enumerate(value.items.reshape(-1, order="F")):
                yield from rec(f"{path}({k + 1})", item, depth + 1)
        elif isinstance(value, np.ndarray) and value.dtype == object:
            for k, item in enumerate(value.reshape(-1, order="F")):
                yield from rec(f"{path}{{{k + 1}}}", item, depth + 1)

    for name, value in variables.items():
        yield from rec(name, value, 0)


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")


def write_mat(
    path: str | os.PathLike[str],
    variables: Mapping[str, Any],
    *,
    compress: bool = True,
) -> Path:
    """Write variables to a v7 MAT-file, atomically.

    Values: numpy arrays (written as they are: float64 stays double), lists of arrays
    (written as a 1xN cell), 2-D object arrays (cells), dicts (structs), str (char).
    Names must be valid MATLAB identifiers of at most 63 characters.
    """
    import scipy.io

    path = Path(path)
    for name in variables:
        if not _NAME.match(name):
            raise Mat2GradError(
                f"'{name}' is not a valid MATLAB variable name (letters, digits, underscores, "
                "starting with a letter, at most 63 characters)"
            )
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise Mat2GradError(f"{path}: the folder {folder} does not exist")
    payload = {name: _to_savemat(value) for name, value in variables.items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            scipy.io.savemat(
                fh,
                payload,
                format="5",
                long_field_names=True,
                do_compression=compress,
                oned_as="column",
            )
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, Mat2GradError | KeyboardInterrupt):
            raise
        raise Mat2GradError(f"{path}: could not write the MAT-file ({exc})") from None
    return path


def _to_savemat(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            out = np.empty(value.shape, dtype=object)
            for idx, item in np.ndenumerate(value):
                out[idx] = _to_savemat(item)
            return out
        return value
    if isinstance(value, list | tuple):
        out = np.empty((1, len(value)), dtype=object)
        for k, item in enumerate(value):
            out[0, k] = _to_savemat(item)
        return out
    if isinstance(value, dict):
        return {k: _to_savemat(v) for k, v in value.items()}
    if isinstance(value, bool):
        return np.array([[value]])
    if isinstance(value, int | float):
        return np.array([[float(value)]])  # never int64 in MATLAB
    return value


# --------------------------------------------------------------------------------------
# Sample layout: MATLAB's R x Q (one column per sample) <-> the library's batch-first (Q, R)
# --------------------------------------------------------------------------------------

SAMPLES = ("columns", "rows")


def select_variable(
    variables: Mapping[str, Any],
    name: str | None,
    *,
    source: str,
    role: str = "inputs",
    option: str = "--inputs-var",
    defaults: tuple[str, ...] = ("X", "x"),
    exclude: tuple[str, ...] = (),
) -> tuple[str, Any]:
    """Pick the data variable: ``name`` if given (a MATLAB-style path), else one of
    ``defaults``, else the only numeric matrix or cell in the file, else an error listing
    the candidates."""
    if name:
        return name, resolve(variables, name, source=source)
    for candidate in defaults:
        if candidate in variables and candidate not in exclude:
            return candidate, variables[candidate]
    candidates = [
        n
        for n, v in variables.items()
        if n not in exclude
        and (
            (isinstance(v, np.ndarray) and v.dtype.kind in "biuf" and v.size > 0)
            or (isinstance(v, np.ndarray) and v.dtype == object)
        )
    ]
    if len(candidates) == 1:
        return candidates[0], variables[candidates[0]]
    listed = ", ".join(f"{n} ({describe(variables[n])})" for n in candidates) or "none"
    raise Mat2GradError(
        f"{source}: which variable holds the {role}? No variable is named "
        f"{' or '.join(defaults)}; candidates: {listed}. Name it with {option} NAME"
    )


def samples_from_matlab(
    value: Any,
    sizes: tuple[int, ...],
    *,
    samples: str = "columns",
    what: str = "inputs",
    size_names: Sequence[str] | None = None,
) -> list[np.ndarray]:
    """MATLAB data -> one float64 ``(Q, R_j)`` array per network input.

    ``value`` is an ``R x Q`` matrix (``samples='columns'``, MATLAB's convention) or ``Q x R``
    (``samples='rows'``); for several inputs, a cell with one such matrix per input. The
    same serves targets (one ``S_k x Q`` matrix per output): ``size_names`` then names the
    sizes in messages (default ``inputs{j}.size``).
    """
    if samples not in SAMPLES:
        raise Mat2GradError(f"samples must be 'columns' or 'rows', not '{samples}'")
    if isinstance(value, np.ndarray) and value.dtype == object:
        parts = list(value.reshape(-1, order="F"))
    else:
        parts = [value]
    if len(parts) != len(sizes):
        raise Mat2GradError(
            f"{what}: the network has {len(sizes)} inputs, so it needs a cell array with "
            f"{len(sizes)} matrices (one per input); found {describe(value)}"
        )
    out = []
    q_seen = None
    for j, (part, size) in enumerate(zip(parts, sizes, strict=True)):
        label = what if len(sizes) == 1 else f"{what}{{{j + 1}}}"
        if isinstance(part, str) or not isinstance(part, np.ndarray) or part.dtype == object:
            raise Mat2GradError(f"{label}: expected a numeric matrix, found {describe(part)}")
        arr = as_float(part, label)
        if arr.ndim != 2:
            raise Mat2GradError(f"{label}: expected a 2-D matrix, found {describe(part)}")
        rows, cols = arr.shape
        feat = rows if samples == "columns" else cols
        if feat != size:
            other = "rows" if samples == "columns" else "columns"
            hint = ""
            alt = cols if samples == "columns" else rows
            if alt == size:
                flip = "rows" if samples == "columns" else "columns"
                hint = f"; if samples are stored in {flip}, pass --samples {flip}"
            size_name = size_names[j] if size_names else f"inputs{{{j + 1}}}.size"
            raise Mat2GradError(
                f"{label} has {feat} {other} but the network takes {size} ({size_name}){hint}"
            )
        batch = arr.T if samples == "columns" else arr
        if batch.shape[0] == 0:
            raise Mat2GradError(f"{label}: no samples (the matrix is {rows}x{cols})")
        if q_seen is not None and batch.shape[0] != q_seen:
            raise Mat2GradError(
                f"{what}: every input needs the same number of samples; found {q_seen} and "
                f"{batch.shape[0]}"
            )
        q_seen = batch.shape[0]
        out.append(np.ascontiguousarray(batch))
    return out


def samples_to_matlab(batch: np.ndarray, samples: str = "columns") -> np.ndarray:
    """A batch-first ``(Q, S)`` array -> MATLAB ``S x Q`` (or ``Q x S`` for 'rows')."""
    batch = np.asarray(batch, dtype=np.float64)
    return np.ascontiguousarray(batch.T) if samples == "columns" else np.ascontiguousarray(batch)


# --------------------------------------------------------------------------------------
# Time-series layout: MATLAB's numSignals x TS cell of R x Q matrices <-> the library's
# batch-first sequences (Q, TS, R)
# --------------------------------------------------------------------------------------
# NOTE: [MATLAB time-series data] (sim help text; train doc
# https://www.mathworks.com/help/deeplearning/ref/train.html): inputs are an Ni x TS cell
# whose element {i, ts} is R_i x Q (Q series simulated side by side); delay states are
# Ni x ID (Xi) and Nl x LD (Ai) cells ordered oldest first. A plain R x TS matrix is taken
# as one series (a convenience: MATLAB itself would read a matrix as one time step of TS
# samples), and results then come back as plain S x TS matrices. With samples='rows' the
# matrices are transposed: Q x R cell elements, TS x R plain matrices.


def sequences_from_matlab(
    value: Any,
    sizes: tuple[int, ...],
    *,
    samples: str = "columns",
    what: str = "inputs",
) -> tuple[list[np.ndarray], int, bool]:
    """MATLAB time-series data -> one float64 ``(Q, TS, R_j)`` array per signal.

    Returns ``(arrays, TS, matrix_form)``; ``matrix_form`` is True for a plain matrix (one
    series), so results can be written back the same way. A ``0 x TS`` cell (no signals:
    a closed-loop ``narnet``) gives no arrays and its TS.
    """
    if samples not in SAMPLES:
        raise Mat2GradError(f"samples must be 'columns' or 'rows', not '{samples}'")
    n = len(sizes)
    if isinstance(value, np.ndarray) and value.dtype == object:
        if value.ndim != 2:
            raise Mat2GradError(f"{what}: expected a 2-D cell, found {describe(value)}")
        if value.shape[0] != n:
            hint = ""
            if n == 1 and value.shape[1] == 1 and value.shape[0] > 1:
                hint = " (a TS x 1 cell: transpose it, as con2seq returns 1 x TS)"
            raise Mat2GradError(
                f"{what}: the network takes {n} signal(s), so the time series must be a "
                f"{n} x TS cell of matrices (one row per signal); found {describe(value)}{hint}"
            )
        ts = value.shape[1]
        layout = "R x Q: one column per series" if samples == "columns" else "Q x R"
        out, q_seen = [], None
        for j, size in enumerate(sizes):
            steps = []
            for t in range(ts):
                label = f"{what}{{{j + 1},{t + 1}}}"
                part = value[j, t]
                if not (isinstance(part, np.ndarray) and part.dtype.kind in "biuf"):
                    raise Mat2GradError(
                        f"{label}: expected a numeric matrix, found {describe(part)}"
                    )
                arr = as_float(part, label)
                if arr.ndim != 2:
                    raise Mat2GradError(f"{label}: expected a 2-D matrix, found {describe(part)}")
                batch = arr.T if samples == "columns" else arr
                if batch.shape[1] != size:
                    raise Mat2GradError(
                        f"{label} is {arr.shape[0]}x{arr.shape[1]} but signal {j + 1} has "
                        f"{size} features ({layout})"
                    )
                if q_seen is not None and batch.shape[0] != q_seen:
                    raise Mat2GradError(
                        f"{what}: every cell element needs the same number of series (columns); "
                        f"found {q_seen} and {batch.shape[0]}"
                    )
                q_seen = batch.shape[0]
                steps.append(batch)
            out.append(np.ascontiguousarray(np.stack(steps, axis=1)) if steps else None)
        if ts == 0 and n:
            raise Mat2GradError(f"{what}: the time series has no time steps")
        return out, ts, False
    if n != 1:
        raise Mat2GradError(
            f"{what}: the network takes {n} signal(s), so the time series must be a {n} x TS "
            f"cell of matrices (one row per signal); found {describe(value)}"
        )
    if isinstance(value, str) or not (isinstance(value, np.ndarray) and value.dtype.kind in "biuf"):
        raise Mat2GradError(f"{what}: expected a cell or a numeric matrix, found {describe(value)}")
    arr = as_float(value, what)
    if arr.ndim != 2:
        raise Mat2GradError(f"{what}: expected a 2-D matrix, found {describe(value)}")
    seq = arr.T if samples == "columns" else arr  # (TS, R)
    if seq.shape[1] != sizes[0]:
        flip = "rows" if samples == "columns" else "columns"
        hint = (
            f"; if time runs down the rows, pass --samples {flip}"
            if seq.shape[0] == sizes[0]
            else ""
        )
        raise Mat2GradError(
            f"{what} is {arr.shape[0]}x{arr.shape[1]}: as one series it has {seq.shape[1]} "
            f"features per time step but the network takes {sizes[0]}{hint}"
        )
    return [np.ascontiguousarray(seq[None])], seq.shape[0], True


def states_from_matlab(
    value: Any,
    sizes: tuple[int, ...],
    depth: int,
    *,
    samples: str = "columns",
    what: str = "Xi",
) -> list[np.ndarray] | None:
    """MATLAB delay states (``Xi``: numInputs x ID cell, ``Ai``: numLayers x LD cell, of
    R x Q matrices, oldest first) -> one float64 ``(Q, depth, R_i)`` array per signal.

    ``None`` or an empty value means zero states (returns None). A plain ``R x depth``
    matrix is accepted for a single signal and one series.
    """
    if value is None or (isinstance(value, np.ndarray) and value.size == 0 and depth > 0):
        return None
    if depth == 0:
        return [np.zeros((1, 0, n)) for n in sizes]
    if isinstance(value, np.ndarray) and value.dtype == object:
        if value.shape != (len(sizes), depth):
            raise Mat2GradError(
                f"{what}: expected a {len(sizes)}x{depth} cell (one row per signal, one column "
                f"per delay, oldest first), found {describe(value)}"
            )
        arrays, _, _ = sequences_from_matlab(value, sizes, samples=samples, what=what)
        return arrays
    arrays, ts, _ = sequences_from_matlab(value, sizes, samples=samples, what=what)
    if ts != depth:
        raise Mat2GradError(f"{what}: expected {depth} delay column(s), found {ts}")
    return arrays


def sequences_to_matlab(
    seqs: list[np.ndarray], *, matrix: bool = False, samples: str = "columns"
) -> np.ndarray:
    """Batch-first ``(Q, TS, S_k)`` arrays -> MATLAB's numSignals x TS cell of S x Q
    matrices (Q x S with samples='rows'); a plain S x TS matrix (TS x S) when
    ``matrix`` is set and there is one signal and one series."""
    seqs = [np.asarray(s, dtype=np.float64) for s in seqs]
    if matrix and len(seqs) == 1 and seqs[0].shape[0] == 1:
        one = seqs[0][0]  # (TS, S)
        return np.ascontiguousarray(one.T if samples == "columns" else one)
    ts = seqs[0].shape[1] if seqs else 0
    cell = np.empty((len(seqs), ts), dtype=object)
    for k, s in enumerate(seqs):
        for t in range(ts):
            step = s[:, t, :]  # (Q, S)
            cell[k, t] = np.ascontiguousarray(step.T if samples == "columns" else step)
    return cell


def sequence_jacobian_to_matlab(block: np.ndarray) -> np.ndarray:
    """A ``(Q, TS, S, T2, R)`` Jacobian block -> MATLAB ``S x R x TS x T2 x Q`` so that
    ``J(:, :, t, u, q)`` is ``dY{t}(:, q) / dX{u}(:, q)`` (``T2`` = TS for the full form,
    lags+1 for the step form). MATLAB drops the trailing singleton when Q = 1."""
    return np.ascontiguousarray(np.transpose(np.asarray(block, dtype=np.float64), (2, 4, 1, 3, 0)))


def error_weights_from_matlab(
    value: Any, num_outputs: int, *, samples: str = "columns", what: str = "error weights"
) -> list[np.ndarray]:
    """MATLAB error weights ``EW`` -> one batch-first array per output, broadcastable to
    ``(Q, S_k)``.

    MATLAB's ``EW`` is a scalar, ``1 x Q`` (per sample), ``S x 1`` (per row) or ``S x Q``
    (``perform.html``); with ``samples='rows'`` the same transposed. A cell holds one such
    array per output (or a single array applies to every output).
    """
    if samples not in SAMPLES:
        raise Mat2GradError(f"samples must be 'columns' or 'rows', not '{samples}'")
    if isinstance(value, np.ndarray) and value.dtype == object:
        parts = list(value.reshape(-1, order="F"))
    else:
        parts = [value] * num_outputs
    if len(parts) != num_outputs:
        raise Mat2GradError(
            f"{what}: the network has {num_outputs} outputs; give a cell with one array per "
            f"output, found {describe(value)}"
        )
    out = []
    for k, part in enumerate(parts):
        label = what if num_outputs == 1 else f"{what}{{{k + 1}}}"
        if isinstance(part, str) or not isinstance(part, np.ndarray) or part.dtype == object:
            raise Mat2GradError(f"{label}: expected a numeric array, found {describe(part)}")
        arr = as_float(part, label)
        if arr.ndim != 2:
            raise Mat2GradError(f"{label}: expected a 2-D array, found {describe(part)}")
        out.append(np.ascontiguousarray(arr.T if samples == "columns" else arr))
    return out


def weight_cells(shape: tuple[int, int], blocks: Mapping[tuple[int, int], Any]) -> np.ndarray:
    """Weight or bias blocks keyed by MATLAB's 1-based ``(i, j)`` -> a MATLAB cell array of
    ``shape`` (like ``net.IW``, ``net.LW``, or ``net.b`` with ``j = 1``), holding ``[]``
    (0x0 double) where nothing is connected. 1-D blocks (biases) become ``S x 1`` columns;
    everything is written as double."""
    cells = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        cells[idx] = np.zeros((0, 0))
    for (i, j), block in blocks.items():
        arr = np.asarray(block, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr.reshape(-1, 1)
        cells[i - 1, j - 1] = np.ascontiguousarray(arr)
    return cells


def column(vector: Any) -> np.ndarray:
    """A vector -> a MATLAB ``n x 1`` double column (``getwb`` returns columns)."""
    return np.asarray(vector, dtype=np.float64).reshape(-1, 1)


# ======================================================================================
# MATLAB layouts of ONNX inputs and outputs (owned by the ONNX work; keep edits here)
# ======================================================================================
#
# NOTE: [MATLAB layouts for ONNX models]
# The Python API is batch-first, in the ONNX file's own axis order: an input of per-sample
# shape ``(C, H, W)`` is an array ``(N, C, H, W)``. A MATLAB user holds the same data
# MATLAB's way; ``exportONNXNetwork`` permuted the *weights* so that the ONNX graph takes
# ONNX order, and never inserts a Transpose at the input. One table row per layout kind:
#
#   kind      ONNX batch-first     MATLAB array       MATLAB per-sample     where
#   features  (N, C)               C x N              C                     featureInputLayer, MLPs
#   image     (N, C, H, W)         H x W x C x N      H x W x C             imageInputLayer
#   volume    (N, C, D, H, W)      H x W x D x C x N  H x W x D x C         image3dInputLayer
#   sequence  (N, T, C)            C x N x T          C x T                 sequenceInputLayer
#   generic   (N, d1, ..., dk)     d1 x ... x dk x N  d1 x ... x dk         anything else
#
# * ``features`` also covers per-sample shapes with singleton axes, such as the
#   ``[1, 1, 1, n]`` inputs of MATLAB's old exporters (``imageInputLayer([1 n 1])``, the usual
#   way to export an MLP before featureInputLayer): the user holds ``n x N``; the image form
#   ``1 x n x 1 x N`` is accepted too.
# * ``sequence`` is MATLAB's ``CBT`` order: the batch is the *middle* axis. The ONNX graph may
#   be time-major (``[T, N, C]``, the LSTM default); the model's batch-first API already moved
#   the batch to the front, so the per-sample shape is ``(T, C)`` either way.
# * MATLAB drops trailing singleton dimensions (one image is ``H x W x C``, one sample of
#   features ``C x 1``): missing trailing dimensions are read as 1.
#
# Jacobians. For output j and input k of sample n, MATLAB gets ``J`` of size
# ``S x R x N`` with S = numel of one output sample and R = numel of one input sample, both
# flattened in MATLAB's column-major order *of the MATLAB per-sample array*. For an image
# input, ``reshape(J(s, :, n), H, W, C)`` is the gradient image of output s for sample n:
#
#     J = ...;                                % S x (H*W*C) x N from mat2grad
#     G = reshape(J(3, :, 1), 28, 28, 1);     % d output 3 / d pixel, sample 1
#     imagesc(G); axis image; colorbar
#
# and ``J(s, :, n)`` for a ``features`` input is the gradient row ``dy_s/dx`` as usual.

# kind -> (per-sample rank, or None for any; permutation from batch-first ONNX axes to the
# MATLAB array's axes, or None for "batch last, same order")
_MATLAB_LAYOUTS: dict[str, tuple[int | None, tuple[int, ...] | None]] = {
    "features": (1, (1, 0)),
    "image": (3, (2, 3, 1, 0)),
    "volume": (4, (3, 4, 2, 1, 0)),
    "sequence": (2, (2, 0, 1)),
    "generic": (None, None),
}

#: The layout kinds :func:`matlab_to_batch` and :func:`batch_to_matlab` understand.
MATLAB_LAYOUTS = tuple(_MATLAB_LAYOUTS)

__all__ += ["MATLAB_LAYOUTS", "matlab_to_batch", "batch_to_matlab", "jacobian_to_matlab"]


def _layout_row(layout: str) -> tuple[int | None, tuple[int, ...] | None]:
    if layout not in _MATLAB_LAYOUTS:
        raise Mat2GradError(
            f"layout '{layout}' is not a MATLAB layout kind (supported: "
            f"{', '.join(MATLAB_LAYOUTS)})"
        )
    return _MATLAB_LAYOUTS[layout]


def _full_perm(layout: str, sample_rank: int) -> tuple[int, ...]:
    """Permutation taking a batch-first array to the MATLAB array's axis order."""
    rank, perm = _layout_row(layout)
    if perm is None:
        return tuple(range(1, sample_rank + 1)) + (0,)
    return perm


def _single_axis_shape(shape: tuple[int, ...], layout: str) -> None:
    if sum(d != 1 for d in shape) > 1:
        raise Mat2GradError(
            f"layout '{layout}' needs one non-singleton axis per sample, but the model's "
            f"per-sample shape is {shape}; use layout 'generic' or 'image'"
        )


def matlab_to_batch(array: Any, layout: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A MATLAB-layout array -> batch-first ONNX layout ``(N, *shape)``.

    Args:
        array: the MATLAB array (``C x N``, ``H x W x C x N``, ``C x N x T``, ...; see NOTE
            [MATLAB layouts for ONNX models]); trailing singleton dimensions may be missing.
        layout: the layout kind (``model.input_layouts[k]``).
        shape: the model's per-sample shape (``model.input_shapes[k]``); when given, the
            result is reshaped to ``(N, *shape)`` (``features`` into singleton axes such as
            ``(1, 1, n)``) and checked, with ``None`` entries matching any size.

    Returns:
        a new C-contiguous array ``(N, ...)``, dtype kept.

    Raises:
        Mat2GradError: the array does not fit the layout or the shape.

    Example:
        >>> matlab_to_batch(np.zeros((28, 28, 1, 5)), "image").shape
        (5, 1, 28, 28)
    """
    x = np.asarray(array)
    rank, _ = _layout_row(layout)
    if layout == "features" and x.ndim > 2 and shape is not None and len(shape) == 3:
        layout, rank = "image", 3  # the H x W x C x N form of an old feature input
    if rank is None:
        rank = len(shape) if shape is not None else max(x.ndim - 1, 1)
    full = rank + 1
    if x.ndim > full:
        if any(d != 1 for d in x.shape[full:]):
            raise Mat2GradError(
                f"a MATLAB '{layout}' array has {full} dimensions, got an array of size "
                f"{'x'.join(map(str, x.shape))}"
            )
        x = x.reshape(x.shape[:full])
    x = x.reshape(x.shape + (1,) * (full - x.ndim))
    perm = _full_perm(layout, rank)
    out = np.ascontiguousarray(np.transpose(x, np.argsort(perm)))
    if shape is not None:
        shape = tuple(shape)
        if layout == "features" and len(shape) != 1:
            _single_axis_shape(tuple(1 if d is None else d for d in shape), layout)
            known = [d for d in shape if d is not None]
            if len(known) == len(shape) and int(np.prod(known)) == out.shape[1]:
                out = out.reshape((out.shape[0],) + shape)
        if out.ndim != len(shape) + 1 or any(
            d is not None and d != g for d, g in zip(shape, out.shape[1:], strict=True)
        ):
            want = "x".join("?" if d is None else str(d) for d in shape)
            raise Mat2GradError(
                f"a MATLAB '{layout}' array of size {'x'.join(map(str, np.shape(array)))} "
                f"gives samples of shape {out.shape[1:]}, but the model takes {want}"
            )
    return out


def batch_to_matlab(array: Any, layout: str) -> np.ndarray:
    """A batch-first ONNX-layout array ``(N, ...)`` -> the MATLAB-layout array.

    ``features`` outputs with singleton axes per sample (``(N, 1, K)``, ``(N, K, 1, 1)``)
    become ``K x N``. The inverse of :func:`matlab_to_batch`.

    Example:
        >>> batch_to_matlab(np.zeros((5, 1, 28, 28)), "image").shape
        (28, 28, 1, 5)
    """
    x = np.asarray(array)
    if x.ndim < 1:
        raise Mat2GradError("batch_to_matlab needs a batch-first array, got a scalar")
    rank, _ = _layout_row(layout)
    if layout == "features":
        _single_axis_shape(x.shape[1:], layout)
        x = x.reshape(x.shape[0], -1)
    elif rank is not None and x.ndim != rank + 1:
        raise Mat2GradError(
            f"a batch-first '{layout}' array has {rank + 1} dimensions, got shape {x.shape}"
        )
    return np.ascontiguousarray(np.transpose(x, _full_perm(layout, x.ndim - 1)))


def _sample_perm(layout: str, sample_rank: int) -> tuple[int, ...]:
    """Permutation of one sample's ONNX axes into the MATLAB per-sample array's axes."""
    full = _full_perm(layout, sample_rank)
    batch_pos = full.index(0)
    return tuple(a - 1 for k, a in enumerate(full) if k != batch_pos)


def jacobian_to_matlab(
    jac: Any, out_layout: str, in_layout: str, out_shape: tuple[int, ...]
) -> np.ndarray:
    """Batch-first Jacobian ``(N, *out_sample, *in_sample)`` -> MATLAB ``S x R x N``.

    S and R count the elements of one output and one input sample, each flattened in
    MATLAB's column-major order of its MATLAB per-sample array (``H x W x C`` for an image),
    so ``reshape(J(s, :, n), H, W, C)`` is the gradient image (NOTE [MATLAB layouts for
    ONNX models]).

    Args:
        jac: the Jacobian, batch-first.
        out_layout, in_layout: layout kinds of the output and the input.
        out_shape: the output's per-sample shape (splits the Jacobian's axes).

    Example:
        >>> jacobian_to_matlab(np.zeros((5, 10, 1, 28, 28)), "features", "image", (10,)).shape
        (10, 784, 5)
    """
    j = np.asarray(jac)
    n_out = len(out_shape)
    n_in = j.ndim - 1 - n_out
    if n_in < 0:
        raise Mat2GradError(f"a Jacobian of shape {j.shape} cannot have outputs {out_shape}")
    out_dims, in_dims = j.shape[1 : 1 + n_out], j.shape[1 + n_out :]
    if out_layout == "features":
        _single_axis_shape(out_dims, out_layout)
        j = j.reshape((j.shape[0], int(np.prod(out_dims, dtype=np.int64))) + in_dims)
        out_dims, n_out = j.shape[1:2], 1
    if in_layout == "features":
        _single_axis_shape(in_dims, in_layout)
        j = j.reshape(j.shape[: 1 + n_out] + (int(np.prod(in_dims, dtype=np.int64)),))
        in_dims, n_in = j.shape[1 + n_out :], 1
    for layout, rank in ((out_layout, n_out), (in_layout, n_in)):
        want, _ = _layout_row(layout)
        if want is not None and want != rank:
            raise Mat2GradError(
                f"a '{layout}' sample has {want} axes, but the Jacobian has {rank} for it"
            )
    po = _sample_perm(out_layout, n_out)
    pi = _sample_perm(in_layout, n_in)
    # MATLAB per-sample order, then reversed so that a C-order reshape is column-major
    axes = (0,) + tuple(1 + a for a in reversed(po)) + tuple(1 + n_out + a for a in reversed(pi))
    j = np.transpose(j, axes)
    s = int(np.prod(out_dims, dtype=np.int64))
    r = int(np.prod(in_dims, dtype=np.int64))
    j = j.reshape(j.shape[0], s, r)
    return np.ascontiguousarray(np.moveaxis(j, 0, -1))
