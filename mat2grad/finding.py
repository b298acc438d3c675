"""Finding networks in files, without torch: which kind of file holds a network, and every
network a MAT-file holds, parsed into its :class:`~mat2grad.shallow.spec.NetworkSpec`.
``mat2grad info`` needs no more; :mod:`.loading` builds the modules (and re-exports these
names, their usual import path)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import matfile
from .errors import Mat2GradError
from .shallow.record import NetworkSpec, network_record, parse_network

__all__ = [
    "FoundNetwork",
    "find_networks",
    "is_onnx",
    "load_spec",
    "network_file",
]


@dataclass(frozen=True)
class FoundNetwork:
    """A network found in a MAT-file: its MATLAB-style path and the parsed spec, or the
    reason it could not be parsed."""

    path: str
    spec: NetworkSpec | None
    error: str | None = None


def is_onnx(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() == ".onnx"


def network_file(path: Any) -> Path:
    """``path`` checked as the name of an existing file holding a network.

    Raises:
        Mat2GradError: not a path, a directory, or no such file.
    """
    if not isinstance(path, str | os.PathLike):
        raise Mat2GradError(
            "expected the path of a MAT-file or .onnx file holding the network, found "
            f"{type(path).__name__}"
        )
    p = Path(path)
    if p.is_dir():
        raise Mat2GradError(
            f"{p}: is a directory; give the MAT-file (or .onnx file) holding the network"
        )
    if not p.exists():
        raise Mat2GradError(f"{p}: no such file")
    return p


def find_networks(
    path: str | os.PathLike[str], variables: dict[str, Any] | None = None
) -> list[FoundNetwork]:
    """Every network in a MAT-file, wherever it sits (any variable, struct fields, cells,
    nntool GUI state), in file order. Undecodable neighbours (Java objects) are skipped.

    A network whose record cannot be parsed is listed with ``spec=None`` and the reason.
    """
    source = str(path)
    if variables is None:
        variables = matfile.read_mat(path)
    found: list[FoundNetwork] = []
    skip_under: list[str] = []
    for where, value in matfile.walk(variables):
        if any(where.startswith(p + ".") or where.startswith(p + "{") for p in skip_under):
            continue  # inside a network record: its cells are not separate networks
        if network_record(value) is None:
            continue
        skip_under.append(where)
        try:
            found.append(FoundNetwork(where, parse_network(value, source=source, path=where)))
        except Mat2GradError as exc:
            found.append(FoundNetwork(where, None, str(exc)))
    return found


def load_spec(
    path: str | os.PathLike[str],
    network: str | None = None,
    *,
    variables: dict[str, Any] | None = None,
) -> NetworkSpec:
    """The parsed spec of one network in a MAT-file (see :func:`load`)."""
    source = str(path)
    if variables is None:
        variables = matfile.read_mat(path)
    if network is not None:
        value = matfile.resolve(variables, network, source=source)
        return parse_network(value, source=source, path=network)
    found = find_networks(path, variables)
    if not found:
        names = ", ".join(sorted(variables)) or "none"
        raise Mat2GradError(
            f"{source}: no MATLAB network found (variables: {names}); save the trained "
            "network itself, e.g. save('net.mat', 'net')"
        )
    if len(found) > 1:
        paths = ", ".join(f.path for f in found)
        raise Mat2GradError(
            f"{source}: {len(found)} networks found ({paths}); choose one with "
            "--network PATH (MATLAB: 'Network', PATH; Python: network=PATH)"
        )
    if found[0].spec is None:
        raise Mat2GradError(found[0].error or f"{source}: the network cannot be read")
    return found[0].spec
