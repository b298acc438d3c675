"""Finding and loading networks: the one entry point shared by the API, the CLI and the
MATLAB helpers."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import matfile
from .errors import Mat2GradError, refuse_out_of_memory
from .shallow.module import ShallowNetwork
from .shallow.record import NetworkSpec, network_record, parse_network

__all__ = [
    "FoundNetwork",
    "cached_load",
    "find_networks",
    "load",
    "load_spec",
    "is_onnx",
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


@refuse_out_of_memory
def load(
    path: str | os.PathLike[str],
    network: str | None = None,
    *,
    dtype: torch.dtype = torch.float64,
    **options: Any,
) -> nn.Module:
    """Load a trained network as a PyTorch module.

    Args:
        path: a MAT-file holding a MATLAB ``network`` (any format version; anywhere in the
            file), or an ``.onnx`` file.
        network: MATLAB-style path of the network inside the MAT-file (``net``,
            ``net1.net``, ``STATE.network.values{1}``); needed only when the file holds
            several networks.
        dtype: ``torch.float64`` (default, MATLAB's double) or ``torch.float32``.
        **options: passed to the ONNX loader (ignored for MAT-files).

    Returns:
        An ``nn.Module`` in eval mode. ``model(x)`` maps a batch-first ``(Q, R)`` tensor of
        raw inputs to ``(Q, S)`` raw outputs (a tuple for several outputs), exactly like
        MATLAB's ``sim(net, X.')``.'.

    Raises:
        Mat2GradError: unreadable file, no or several networks, unsupported functions.
    """
    network_file(path)
    if network is not None and not isinstance(network, str):
        raise Mat2GradError(
            f"{path}: network must be the MATLAB-style path of the network in the file, as "
            f"text ('net', 'net1.net'), found {type(network).__name__} {network!r}"
        )
    if is_onnx(path):
        from .onnx import load_onnx

        return load_onnx(path, dtype=dtype, **options)
    if options:
        raise Mat2GradError(f"unexpected options for a MAT-file: {', '.join(options)}")
    return ShallowNetwork(load_spec(path, network), dtype=dtype)


def cached_load(path: str, network: str | None = None, **options: Any) -> nn.Module:
    """:func:`load`, remembering the last few networks: the long-lived front doors (MATLAB's
    in-process route, the worker) are called again and again with the same file. The key is
    the file's identity, modification time and size, so a rewritten file is read again."""
    try:
        stat = os.stat(path)
    except OSError:
        raise Mat2GradError(f"{path}: no such file") from None
    key = (os.path.realpath(path), stat.st_mtime_ns, stat.st_size)
    frozen = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items()))
    return _load_once(key, path, network, frozen)


@functools.lru_cache(maxsize=4)
def _load_once(
    key: tuple[Any, ...], path: str, network: str | None, options: tuple[Any, ...]
) -> nn.Module:
    return load(path, network, **{k: list(v) if isinstance(v, tuple) else v for k, v in options})
