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
never touched until the new file is complete. It writes v7 (scipy), or v7.3 (HDF5 in
MATLAB's own layout, NOTE [MAT v7.3 layout]) when a variable is over 2^31 bytes
(``MAT2GRAD_V73_THRESHOLD`` lowers that for tests) or on request. :class:`SampleWriter`
writes per-sample results (Jacobians, outputs) chunk by chunk into a file laid out up front,
in MATLAB's layout (NOTE [MATLAB layout of per-sample results]), so results larger than
memory go straight to disk.
"""

from __future__ import annotations

import math
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
    "FORMATS",
    "V7_MAX_BYTES",
    "v73_threshold",
    "variable_nbytes",
    "choose_format",
    "matlab_shape",
    "per_sample_to_matlab",
    "results_to_matlab",
    "SampleWriter",
    "SampleBlock",
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


def temporary_beside(path: Path) -> tuple[int, str]:
    """A new temporary file in ``path``'s folder, for writing ``path`` atomically (write it,
    then ``os.replace``). It gets the permissions a plainly created file would get
    (0666 minus the umask), not mkstemp's private 0600, since it becomes the result file."""
    folder = _target_folder(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)
    except (AttributeError, OSError):  # Windows: no fchmod; mkstemp's mode is fine there
        pass
    return fd, tmp


def write_mat(
    path: str | os.PathLike[str],
    variables: Mapping[str, Any],
    *,
    compress: bool = True,
    format: str = "auto",
    v73_threshold: int | None = None,
) -> Path:
    """Write variables to a MAT-file, atomically.

    Values: numpy arrays (written as they are: float64 stays double), lists of arrays
    (written as a 1xN cell), 2-D object arrays (cells), dicts (structs), str (char).
    Names must be valid MATLAB identifiers of at most 63 characters.

    ``format``: ``"v7"`` (scipy; compressed unless ``compress=False``), ``"v7.3"`` (HDF5
    in MATLAB's layout, see NOTE [MAT v7.3 layout]), or ``"auto"``: v7.3 when any variable
    is larger than ``v73_threshold`` bytes (default 2^31, MATLAB's limit for v7; the
    environment variable ``MAT2GRAD_V73_THRESHOLD`` lowers it, for tests), else v7.
    """
    path = Path(path)
    _check_names(variables)
    _target_folder(path)  # fail before any work if the folder is missing
    sizes = {name: variable_nbytes(value) for name, value in variables.items()}
    chosen = choose_format(format, sizes, v73_threshold, where=str(path))
    fd, tmp = temporary_beside(path)
    try:
        if chosen == "v7.3":
            os.close(fd)
            _write_v73_file(tmp, variables)
        else:
            import scipy.io

            payload = {name: _to_savemat(value) for name, value in variables.items()}
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


def _check_names(variables: Mapping[str, Any]) -> None:
    for name in variables:
        if not _NAME.match(name):
            raise Mat2GradError(
                f"'{name}' is not a valid MATLAB variable name (letters, digits, underscores, "
                "starting with a letter, at most 63 characters)"
            )


def _target_folder(path: Path) -> Path:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise Mat2GradError(f"{path}: the folder {folder} does not exist")
    return folder


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
# Which MAT-file version to write
# --------------------------------------------------------------------------------------

#: MATLAB's limit for one variable in a v6/v7 MAT-file ("For variables larger than 2GB use
#: MAT-file version 7.3"); above it results are written as v7.3.
V7_MAX_BYTES = 2**31

#: ``format`` values accepted by :func:`write_mat` and :class:`SampleWriter`
FORMATS = ("auto", "v7", "v7.3")


def v73_threshold(value: int | None = None) -> int:
    """The size (bytes per variable) above which ``format="auto"`` writes v7.3: ``value``,
    else the environment variable ``MAT2GRAD_V73_THRESHOLD``, else 2^31."""
    if value is not None:
        return int(value)
    env = os.environ.get("MAT2GRAD_V73_THRESHOLD")
    if env:
        try:
            return int(float(env))
        except ValueError:
            raise Mat2GradError(
                f"MAT2GRAD_V73_THRESHOLD must be a number of bytes, found '{env}'"
            ) from None
    return V7_MAX_BYTES


def variable_nbytes(value: Any) -> int:
    """Bytes of data a value occupies in a MAT-file (cells and structs: their contents)."""
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return sum(variable_nbytes(v) for v in value.flat)
        return int(value.nbytes)
    if isinstance(value, Mapping):
        return sum(variable_nbytes(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(variable_nbytes(v) for v in value)
    if isinstance(value, str):
        return 2 * len(value)
    nbytes = getattr(value, "nbytes", None)  # torch tensors, scipy.sparse
    return int(nbytes) if isinstance(nbytes, int) else 8


def choose_format(
    format: str, sizes: Mapping[str, int], threshold: int | None = None, *, where: str = ""
) -> str:
    """Resolve ``format`` ("auto", "v7", "v7.3") for variables of the given sizes."""
    if format not in FORMATS:
        raise Mat2GradError(f"format must be one of {', '.join(FORMATS)}; found '{format}'")
    limit = v73_threshold(threshold)
    big = {n: b for n, b in sizes.items() if b > limit}
    if format == "auto":
        return "v7.3" if big else "v7"
    if format == "v7":
        too_big = {n: b for n, b in sizes.items() if b > V7_MAX_BYTES}
        if too_big:
            listed = ", ".join(f"{n} ({b / 2**30:.2f} GiB)" for n, b in too_big.items())
            raise Mat2GradError(
                f"{where + ': ' if where else ''}MAT v7 files hold at most 2 GiB per variable, "
                f"and {listed} is larger; write v7.3 instead (--format v7.3, or auto)"
            )
    return format


# --------------------------------------------------------------------------------------
# Writing v7.3 (HDF5) in MATLAB's own layout
# --------------------------------------------------------------------------------------

# NOTE: [MAT v7.3 layout]
#     A v7.3 MAT-file is an HDF5 file with a 512-byte user block holding MATLAB's 128-byte
#     header (116 bytes of text, 8 bytes subsystem offset, version 0x0200, 'IM'). Every
#     variable is an HDF5 object at the root carrying a ``MATLAB_class`` attribute (a
#     fixed-length ASCII string: double, single, int8 ... uint64, logical, char, cell,
#     struct). HDF5 is row-major and MATLAB column-major, so the bytes are the same and
#     only the shape is reversed: MATLAB S x R x Q is dataset shape (Q, R, S). logical is
#     stored as uint8 with ``MATLAB_int_decode = 1``, char as uint16 with
#     ``MATLAB_int_decode = 2``; an empty array is a uint64 vector of its dimensions with
#     ``MATLAB_empty = 1``. A cell is a dataset of object references (shape reversed) to
#     datasets in the group ``/#refs#``; a 1x1 struct is a group with a ``MATLAB_fields``
#     attribute (variable-length arrays of single characters). This is what MATLAB itself
#     writes (research/interop.md 2.2; the same layout as the C matio library's
#     mat73.c, whose files MATLAB loads). Octave cannot read v7.3 files reliably: the
#     Octave path stays on v7.

_H5_CLASS = {
    "float64": "double",
    "float32": "single",
    "int8": "int8",
    "uint8": "uint8",
    "int16": "int16",
    "uint16": "uint16",
    "int32": "int32",
    "uint32": "uint32",
    "int64": "int64",
    "uint64": "uint64",
}


def _mat_header(version: int) -> bytes:
    """MATLAB's 128-byte MAT-file header (version 0x0100 = v5/v7, 0x0200 = v7.3)."""
    import platform
    import time

    from ._version import __version__

    stamp = time.strftime("%a %b %d %H:%M:%S %Y")
    kind = "7.3" if version == 0x0200 else "5.0"
    text = (
        f"MATLAB {kind} MAT-file, Platform: {platform.system()}, Created on: {stamp} "
        f"by mat2grad {__version__}"
    )
    if version == 0x0200:
        text += " HDF5 schema 1.00 ."
    head = text.encode("ascii", "replace")[:116].ljust(116, b" ")
    return head + b"\0" * 8 + version.to_bytes(2, "little") + b"IM"


class _H5Writer:
    """Writes values into an open h5py file following NOTE [MAT v7.3 layout]."""

    def __init__(self, h5: Any):
        self.h5 = h5
        self._refs = 0

    def _refs_group(self) -> Any:
        return self.h5.require_group("#refs#")

    def next_ref_name(self) -> str:
        # MATLAB names them a, b, ..., z, A, ..., Z, aa, ab, ...
        letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
        k, name = self._refs, ""
        self._refs += 1
        while True:
            name = letters[k % 52] + name
            k = k // 52 - 1
            if k < 0:
                return name

    @staticmethod
    def set_class(obj: Any, classname: str) -> None:
        obj.attrs.create("MATLAB_class", np.bytes_(classname))

    def create_numeric(self, parent: Any, name: str, shape: tuple[int, ...], dtype: Any) -> Any:
        """An empty (preallocated) numeric dataset of MATLAB shape ``shape``."""
        dset = parent.create_dataset(name, shape=tuple(reversed(shape)), dtype=dtype)
        self.set_class(dset, _H5_CLASS[np.dtype(dtype).name])
        return dset

    def create_cell(self, parent: Any, name: str, items: np.ndarray) -> Any:
        """A cell of MATLAB shape ``items.shape`` whose elements are written by
        ``items[idx](refs_group, ref_name)`` callables returning the HDF5 object."""
        import h5py

        refs = np.empty(items.shape, dtype=h5py.ref_dtype)
        for idx in np.ndindex(items.shape):
            obj = items[idx](self._refs_group(), self.next_ref_name())
            refs[idx] = obj.ref
        dset = parent.create_dataset(name, data=refs.T, dtype=h5py.ref_dtype)
        self.set_class(dset, "cell")
        return dset

    def write(self, parent: Any, name: str, value: Any) -> Any:
        """Write one value (the types :func:`write_mat` accepts)."""
        import h5py

        if isinstance(value, Mapping):
            group = parent.create_group(name)
            for key, item in value.items():
                if not _NAME.match(str(key)):
                    raise Mat2GradError(f"'{key}' is not a valid MATLAB struct field name")
                self.write(group, str(key), item)
            self.set_class(group, "struct")
            fields = np.empty(len(value), dtype=h5py.vlen_dtype(np.dtype("S1")))
            for k, key in enumerate(value):
                fields[k] = np.array([c.encode("ascii") for c in str(key)], dtype="S1")
            group.attrs.create("MATLAB_fields", fields)
            return group
        if isinstance(value, list | tuple):
            cell = np.empty((1, len(value)), dtype=object)
            for k, item in enumerate(value):
                cell[0, k] = item
            value = cell
        if isinstance(value, str):
            codes = np.frombuffer(value.encode("utf-16-le"), dtype="<u2").reshape(1, -1)
            if codes.size == 0:
                return self._empty(parent, name, (0, 0), "char")
            dset = parent.create_dataset(name, data=codes.T)
            self.set_class(dset, "char")
            dset.attrs.create("MATLAB_int_decode", np.int32(2))
            return dset
        if isinstance(value, bool | int | float | np.number | np.bool_):
            value = np.array([[value]], dtype=bool if isinstance(value, bool | np.bool_) else None)
            if value.dtype.kind in "iu" and not isinstance(value.flat[0], np.integer):
                value = value.astype(np.float64)  # never int64 in MATLAB
        if not isinstance(value, np.ndarray):
            value = getattr(value, "numpy", lambda: value)()
        if not isinstance(value, np.ndarray):
            raise Mat2GradError(f"cannot write {type(value).__name__} to a MAT-file")
        if value.ndim < 2:
            value = value.reshape(-1, 1)  # 1-D as a column, like write_mat's v7 path
        if value.dtype == object:
            if value.size == 0:
                return self._empty(parent, name, value.shape, "cell")
            makers = np.empty(value.shape, dtype=object)
            for idx, item in np.ndenumerate(value):
                makers[idx] = lambda grp, nm, item=item: self.write(grp, nm, item)
            return self.create_cell(parent, name, makers)
        if value.dtype.kind == "b":
            if value.size == 0:
                return self._empty(parent, name, value.shape, "logical")
            dset = parent.create_dataset(name, data=value.astype(np.uint8).T)
            self.set_class(dset, "logical")
            dset.attrs.create("MATLAB_int_decode", np.int32(1))
            return dset
        if value.dtype.name not in _H5_CLASS:
            raise Mat2GradError(
                f"cannot write a {value.dtype} array to a MAT-file (real numeric or logical only)"
            )
        if value.size == 0:
            return self._empty(parent, name, value.shape, _H5_CLASS[value.dtype.name])
        dset = parent.create_dataset(name, data=np.ascontiguousarray(value.T))
        self.set_class(dset, _H5_CLASS[value.dtype.name])
        return dset

    def _empty(self, parent: Any, name: str, shape: tuple[int, ...], classname: str) -> Any:
        dset = parent.create_dataset(name, data=np.array(shape, dtype=np.uint64))
        self.set_class(dset, classname)
        dset.attrs.create("MATLAB_empty", np.uint8(1))
        return dset


def _open_h5(path: str | os.PathLike[str]) -> Any:
    try:
        import h5py
    except ImportError:  # pragma: no cover - a declared dependency
        raise Mat2GradError("writing MAT v7.3 files needs the package h5py") from None
    return h5py.File(path, "w", userblock_size=512, libver="earliest")


def _stamp_v73(path: str | os.PathLike[str]) -> None:
    with open(path, "r+b") as fh:
        fh.write(_mat_header(0x0200))


def _write_v73_file(path: str | os.PathLike[str], variables: Mapping[str, Any]) -> None:
    with _open_h5(path) as h5:
        writer = _H5Writer(h5)
        for name, value in variables.items():
            writer.write(h5, name, value)
    _stamp_v73(path)


# --------------------------------------------------------------------------------------
# Per-sample results in MATLAB layout, written chunk by chunk
# --------------------------------------------------------------------------------------

# NOTE: [MATLAB layout of per-sample results]
#     The library is batch-first: a result is (Q, *d) with d the per-sample shape (outputs
#     (S,), Jacobians (S, R), Hessians (R, R)). In a MAT-file, with samples="columns"
#     (MATLAB's shallow-network convention) the sample index moves last: MATLAB array
#     (*d, Q), so that J(:,:,q) = dY(:,q)/dX(:,q) and J(s+1, r+1, q+1) = J_batch[q, s, r];
#     Y is S x Q, H is R x R x Q. With samples="rows" the batch-first shape is kept:
#     Q x S x R, Q x S. A per-sample scalar (d = ()) is 1 x Q (columns) or Q x 1 (rows).
#     Several outputs/inputs: a numOutputs x numInputs cell of such blocks (outputs:
#     numOutputs x 1).


def matlab_shape(per_sample: tuple[int, ...], q: int, samples: str = "columns") -> tuple[int, ...]:
    """The MATLAB dimensions of ``q`` samples of per-sample shape ``per_sample``."""
    if samples not in SAMPLES:
        raise Mat2GradError(f"samples must be 'columns' or 'rows', not '{samples}'")
    d = tuple(per_sample) or (1,)
    return (*d, q) if samples == "columns" else (q, *d)


@dataclass(frozen=True)
class SampleBlock:
    """A :class:`SampleWriter` variable whose sample index sits at MATLAB axis ``axis`` of
    the written array instead of last (or first): ``shape`` is one sample's MATLAB
    dimensions, and the array is ``(*shape[:axis], Q, *shape[axis:])``. A sequence
    ``C x N x T`` (MATLAB's CBT order) is ``SampleBlock((C, T), 1)``; chunks are still
    written batch-first, ``(c, *shape)``."""

    shape: tuple[int, ...]
    axis: int

    def dims(self, q: int) -> tuple[int, ...]:
        """The MATLAB dimensions of the whole variable for ``q`` samples."""
        d = tuple(self.shape) or (1,)
        return (*d[: self.axis], q, *d[self.axis :])


def per_sample_to_matlab(batch: Any, samples: str = "columns") -> np.ndarray:
    """A batch-first ``(Q, *d)`` array -> its MATLAB layout (NOTE [MATLAB layout of
    per-sample results]) as a float64 numpy array that savemat writes index-for-index."""
    arr = _numpy(batch)
    if arr.ndim == 1:
        arr = arr[:, None]
    if samples not in SAMPLES:
        raise Mat2GradError(f"samples must be 'columns' or 'rows', not '{samples}'")
    return np.moveaxis(arr, 0, -1) if samples == "columns" else arr


def results_to_matlab(results: Any, samples: str = "columns") -> Any:
    """A batch-first result, or nested tuples of them (``J[k][j]``, ``Y[k]``), in MATLAB
    layout: an array, or a cell (numOutputs x numInputs; numOutputs x 1 for a flat tuple)."""
    if not isinstance(results, tuple | list):
        return per_sample_to_matlab(results, samples)
    rows = [r if isinstance(r, tuple | list) else (r,) for r in results]
    cell = np.empty((len(rows), len(rows[0])), dtype=object)
    for k, row in enumerate(rows):
        for j, item in enumerate(row):
            cell[k, j] = per_sample_to_matlab(item, samples)
    return cell


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


class SampleWriter:
    """Write per-sample results into a MAT-file chunk by chunk, in MATLAB layout, so that
    results larger than memory can be written (memory is bounded by one chunk).

    Args:
        path: the MAT-file to write (atomically: a temporary file in the same folder is
            renamed over it by :meth:`commit`).
        num_samples: Q.
        variables: name -> per-sample shape (a tuple, or a :class:`SampleBlock` to place
            the sample index elsewhere), or a 2-D nested list of them for a cell
            (numOutputs x numInputs).
        samples: "columns" or "rows" (NOTE [MATLAB layout of per-sample results]): where
            the sample index goes for variables given by their shape alone.
        format: "auto" (v7.3 when a variable is over :func:`v73_threshold` bytes), "v7" or
            "v7.3".
        v73_threshold: overrides the threshold.

    Use as a context manager: the file appears only if the block completes::

        with SampleWriter("out.mat", q, {"J": (3, 10), "Y": (3,)}) as w:
            for start, J, Y in chunks:
                w.write(start, {"J": J, "Y": Y})     # J (c, 3, 10), Y (c, 3)

    v7 files are written uncompressed (float64 Jacobians are incompressible: zlib took
    20x longer for 5% less, research/perf.md 10) by a streaming MAT v5 writer; v7.3 files
    through h5py into preallocated datasets.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        num_samples: int,
        variables: Mapping[str, Any],
        *,
        samples: str = "columns",
        format: str = "auto",
        v73_threshold: int | None = None,
    ):
        self.path = Path(path)
        _check_names(variables)
        _target_folder(self.path)  # fail before any work if the folder is missing
        if samples not in SAMPLES:
            raise Mat2GradError(f"samples must be 'columns' or 'rows', not '{samples}'")
        self.q = int(num_samples)
        self.samples = samples
        self.layout: dict[str, np.ndarray | SampleBlock] = {}
        sizes = {}
        for name, spec in variables.items():
            if isinstance(spec, list):
                grid = np.empty((len(spec), len(spec[0])), dtype=object)
                for k, row in enumerate(spec):
                    for j, shape in enumerate(row):
                        grid[k, j] = self._block(name, shape)
                self.layout[name] = grid
                sizes[name] = sum(8 * math.prod(b.shape) * self.q for b in grid.flat)
            else:
                self.layout[name] = self._block(name, spec)
                sizes[name] = 8 * math.prod(self.layout[name].shape) * self.q
        self.format = choose_format(format, sizes, v73_threshold, where=str(self.path))
        fd, self._tmp = temporary_beside(self.path)
        self._done = False
        try:
            if self.format == "v7.3":
                os.close(fd)
                self._backend: _V73Stream | _V5Stream = _V73Stream(self)
            else:
                self._backend = _V5Stream(self, fd)
        except BaseException:
            self._remove_tmp()
            raise

    def _block(self, name: str, spec: Any) -> SampleBlock:
        if isinstance(spec, SampleBlock):
            block = SampleBlock(tuple(int(d) for d in spec.shape), int(spec.axis))
            if not 0 <= block.axis <= len(block.shape or (1,)):
                raise Mat2GradError(
                    f"{self.path}: '{name}': sample axis {block.axis} is outside the "
                    f"dimensions {block.shape}"
                )
            return block
        shape = tuple(int(d) for d in spec)
        return SampleBlock(shape, len(shape or (1,)) if self.samples == "columns" else 0)

    def write(self, start: int, values: Mapping[str, Any]) -> None:
        """Write samples ``start:start+c`` of each variable: an array ``(c, *d)`` (numpy or
        torch), or nested lists ``[k][j]`` of them for a cell."""
        for name, value in values.items():
            layout = self.layout[name]
            if isinstance(layout, np.ndarray):
                for (k, j), shape in np.ndenumerate(layout):
                    self._write_block(name, (k, j), start, value[k][j], shape)
            else:
                self._write_block(name, None, start, value, layout)

    def _write_block(
        self, name: str, idx: tuple[int, int] | None, start: int, value: Any, block: SampleBlock
    ) -> None:
        arr = _numpy(value)
        c = arr.shape[0]
        shape = block.shape
        if tuple(arr.shape[1:]) != tuple(shape) or start < 0 or start + c > self.q:
            raise Mat2GradError(
                f"{self.path}: '{name}' chunk of shape {arr.shape} at sample {start} does not "
                f"fit {self.q} samples of shape {shape}"
            )
        self._backend.write(name, idx, start, arr.reshape(c, *(shape or (1,))), block.axis)

    def commit(self) -> Path:
        """Finish the file and move it into place."""
        try:
            self._backend.close()
            if self.format == "v7.3":
                _stamp_v73(self._tmp)
            os.replace(self._tmp, self.path)
            self._done = True
        except BaseException as exc:
            self._remove_tmp()
            if isinstance(exc, Mat2GradError | KeyboardInterrupt):
                raise
            raise Mat2GradError(f"{self.path}: could not write the MAT-file ({exc})") from None
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; the target is left untouched."""
        if not self._done:
            try:
                self._backend.close()
            except Exception:
                pass
            self._remove_tmp()
            self._done = True

    def _remove_tmp(self) -> None:
        try:
            os.unlink(self._tmp)
        except OSError:
            pass

    def __enter__(self) -> SampleWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class _V73Stream:
    """Preallocated HDF5 datasets in MATLAB's layout; chunks are hyperslab writes."""

    def __init__(self, owner: SampleWriter):
        self.owner = owner
        self.h5 = _open_h5(owner._tmp)
        writer = _H5Writer(self.h5)
        self.dsets: dict[tuple[str, Any], Any] = {}
        q = owner.q
        for name, layout in owner.layout.items():
            if isinstance(layout, np.ndarray):
                makers = np.empty(layout.shape, dtype=object)
                for idx, block in np.ndenumerate(layout):

                    def make(
                        grp: Any, nm: str, name: str = name, idx: Any = idx, block: Any = block
                    ) -> Any:
                        dset = writer.create_numeric(grp, nm, block.dims(q), np.float64)
                        self.dsets[(name, idx)] = dset
                        return dset

                    makers[idx] = make
                writer.create_cell(self.h5, name, makers)
            else:
                self.dsets[(name, None)] = writer.create_numeric(
                    self.h5, name, layout.dims(q), np.float64
                )

    def write(self, name: str, idx: Any, start: int, arr: np.ndarray, axis: int) -> None:
        dset = self.dsets[(name, idx)]
        c = arr.shape[0]
        # MATLAB (*d[:axis], Q, *d[axis:]) is HDF5 (*reversed(d[axis:]), Q, *reversed(d[:axis])):
        # reverse each sample's axes and put the sample index after the outer ones
        outer = arr.ndim - 1 - axis
        rev = arr.transpose(0, *range(arr.ndim - 1, 0, -1))
        dset[(slice(None),) * outer + (slice(start, start + c),)] = np.moveaxis(rev, 0, outer)

    def close(self) -> None:
        if self.h5 is not None:
            self.h5.close()
            self.h5 = None


# MAT v5 data types and array classes (MathWorks, "MAT-File Format", tables 1-2 and 1-3)
_MI_INT8, _MI_UINT32, _MI_INT32, _MI_DOUBLE, _MI_MATRIX = 1, 6, 5, 9, 14
_MX_CELL, _MX_DOUBLE = 1, 6


def _v5_element(mi_type: int, payload: bytes) -> bytes:
    """A data element: 8-byte tag, then the payload padded to a multiple of 8 bytes."""
    pad = (-len(payload)) % 8
    return (
        mi_type.to_bytes(4, "little") + len(payload).to_bytes(4, "little") + payload + b"\0" * pad
    )


def _v5_matrix_head(mx_class: int, dims: tuple[int, ...], name: str) -> bytes:
    """Array flags, dimensions and name subelements of a miMATRIX element."""
    if any(d >= 2**31 for d in dims):
        raise Mat2GradError(
            f"MAT v7 dimensions are limited to 2^31-1, found {dims}; use --format v7.3"
        )
    flags = _v5_element(_MI_UINT32, mx_class.to_bytes(4, "little") + b"\0" * 4)
    dim_bytes = b"".join(int(d).to_bytes(4, "little", signed=True) for d in dims)
    return flags + _v5_element(_MI_INT32, dim_bytes) + _v5_element(_MI_INT8, name.encode("ascii"))


class _V5Stream:
    """An uncompressed MAT v5 (v6/v7-readable) file laid out up front: headers are written
    once, data regions are filled by positioned writes (``os.pwrite``), so chunks may
    arrive in any order and nothing is held in memory."""

    def __init__(self, owner: SampleWriter, fd: int):
        self.owner = owner
        self.fd = fd
        self.regions: dict[tuple[str, Any], tuple[int, tuple[int, ...]]] = {}
        q = owner.q
        pos = 128
        os.pwrite(fd, _mat_header(0x0100), 0)
        for name, layout in owner.layout.items():
            if isinstance(layout, np.ndarray):
                children = []
                for idx in np.ndindex(*layout.shape[::-1]):  # column-major cell order
                    idx = idx[::-1]
                    dims = layout[idx].dims(q)
                    children.append((idx, dims))
                cell_head = _v5_matrix_head(_MX_CELL, layout.shape, name)
                body = len(cell_head) + sum(
                    8 + len(_v5_matrix_head(_MX_DOUBLE, dims, "")) + 8 + 8 * math.prod(dims)
                    for _, dims in children
                )
                self._check_size(name, body)
                os.pwrite(fd, _MI_MATRIX.to_bytes(4, "little") + body.to_bytes(4, "little"), pos)
                os.pwrite(fd, cell_head, pos + 8)
                pos += 8 + len(cell_head)
                for idx, dims in children:
                    pos = self._matrix(name, idx, dims, "", pos)
            else:
                pos = self._matrix(name, None, layout.dims(q), name, pos)
        os.ftruncate(fd, pos)

    def _check_size(self, name: str, body: int) -> None:
        if body >= 2**32:
            raise Mat2GradError(
                f"{self.owner.path}: '{name}' is too large for a MAT v7 file; use --format v7.3"
            )

    def _matrix(self, name: str, idx: Any, dims: tuple[int, ...], label: str, pos: int) -> int:
        head = _v5_matrix_head(_MX_DOUBLE, dims, label)
        nbytes = 8 * math.prod(dims)
        body = len(head) + 8 + nbytes  # data is a multiple of 8 bytes: no padding
        self._check_size(name, body)
        os.pwrite(
            self.fd,
            _MI_MATRIX.to_bytes(4, "little")
            + body.to_bytes(4, "little")
            + head
            + _MI_DOUBLE.to_bytes(4, "little")
            + nbytes.to_bytes(4, "little"),
            pos,
        )
        data = pos + 8 + len(head) + 8
        self.regions[(name, idx)] = (data, dims)
        return data + nbytes

    def write(self, name: str, idx: Any, start: int, arr: np.ndarray, axis: int) -> None:
        offset, _dims = self.regions[(name, idx)]
        c = arr.shape[0]
        d = arr.shape[1:]
        axes = tuple(range(arr.ndim - 1, 0, -1))  # a sample's axes, reversed: column-major
        inner = math.prod(d[:axis])  # elements before the sample index in MATLAB's order
        if axis == len(d):
            # MATLAB (*d, Q): sample q's values are contiguous, in column-major order
            data = np.ascontiguousarray(arr.transpose(0, *axes), dtype="<f8")
            _pwrite_all(self.fd, data, offset + 8 * start * inner)
        else:
            # MATLAB (*d[:axis], Q, *d[axis:]): for each outer element o, the chunk is one
            # run of c * inner values (axis 0: element e of every sample, a run of c values)
            runs = np.ascontiguousarray(
                arr.transpose(*axes[: len(d) - axis], 0, *axes[len(d) - axis :]), dtype="<f8"
            ).reshape(-1, c * inner)
            for o in range(runs.shape[0]):
                _pwrite_all(self.fd, runs[o], offset + 8 * inner * (o * self.owner.q + start))

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _pwrite_all(fd: int, arr: np.ndarray, offset: int) -> None:
    view = memoryview(arr).cast("B")
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


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


__all__ += ["matlab_block", "batch_to_matlab_samples", "matlab_element_order"]


def matlab_block(shape: Sequence[int], layout: str) -> SampleBlock:
    """Where one batch-first sample of per-sample ``shape`` sits in its MATLAB array: the
    MATLAB per-sample dimensions and the axis of the sample index, for :class:`SampleWriter`
    (NOTE [MATLAB layouts for ONNX models]).

    Example:
        >>> matlab_block((1, 28, 28), "image")
        SampleBlock(shape=(28, 28, 1), axis=3)
        >>> matlab_block((5, 3), "sequence")   # C x N x T
        SampleBlock(shape=(3, 5), axis=1)
    """
    shape = tuple(int(d) for d in shape)
    if layout == "features":
        _single_axis_shape(shape, layout)
        return SampleBlock((math.prod(shape),), 1)
    rank, _ = _layout_row(layout)
    if rank is not None and len(shape) != rank:
        raise Mat2GradError(f"a '{layout}' sample has {rank} axes, got the shape {shape}")
    perm = _full_perm(layout, len(shape))
    full = (1, *shape)
    axis = perm.index(0)
    return SampleBlock(tuple(full[a] for a in perm if a != 0), axis)


def batch_to_matlab_samples(array: Any, layout: str) -> np.ndarray:
    """A batch-first ONNX-layout chunk ``(c, ...)`` -> ``(c, *matlab_block(...).shape)``:
    each sample in its MATLAB per-sample axis order, the batch still first (what
    :class:`SampleWriter` takes for a :class:`SampleBlock`)."""
    x = np.asarray(array)
    block = matlab_block(x.shape[1:], layout)
    return np.moveaxis(batch_to_matlab(x, layout), block.axis, 0)


def matlab_element_order(shape: Sequence[int], layout: str) -> np.ndarray:
    """For each element of one sample in MATLAB's column-major order of its MATLAB
    per-sample array, its flat index in the batch-first sample (C order): element ``k``
    (0-based) of ``X(:, n)``-style flattening is ``x[n].reshape(-1)[order[k]]``."""
    shape = tuple(int(d) for d in shape)
    idx = np.arange(math.prod(shape)).reshape((1, *shape))
    return batch_to_matlab_samples(idx, layout)[0].reshape(-1, order="F")
