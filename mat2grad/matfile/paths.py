"""MATLAB-style paths into the neutral tree, and choosing which variable holds the data.

``resolve(tree, "STATE.network.values{1}")`` addresses a value the way MATLAB would write it:
``.field``, ``{k}`` / ``{i,j}`` for cells, ``(k)`` / ``(i,j)`` for struct arrays, all 1-based
(a single index is MATLAB's linear, column-major one).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from ..errors import Mat2GradError
from .tree import MatStruct, MatStructArray, describe, size_text

__all__ = ["parse_path", "format_path", "resolve", "walk", "select_variable"]

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
    """The inverse of :func:`parse_path`: steps -> ``a.b{1}.c(2,1)``."""
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
            f"{what} has size {size_text(arr.shape)}; index {idx} is out of range"
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
    where = f"{source}: " if source else ""
    raise Mat2GradError(
        f"{where}which variable holds the {role}? No variable is named "
        f"{' or '.join(defaults)}; candidates: {listed}. Name it with {option} NAME"
    )
