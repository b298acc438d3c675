"""Finding and loading networks: the one entry point shared by the API, the CLI and the
MATLAB helpers. Finding needs no torch and lives in :mod:`.finding`; its names are
re-exported here."""

from __future__ import annotations

import functools
import os
from typing import Any

import torch
from torch import nn

from .contract import parse_device
from .errors import Mat2GradError, refuse_out_of_memory
from .finding import FoundNetwork, find_networks, is_onnx, load_spec, network_file
from .shallow.module import ShallowNetwork

__all__ = [
    "FoundNetwork",
    "cached_load",
    "find_networks",
    "load",
    "load_spec",
    "is_onnx",
    "network_file",
]


@refuse_out_of_memory
def load(
    path: str | os.PathLike[str],
    network: str | None = None,
    *,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device | None = None,
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
        device: where the module computes, e.g. ``"cuda"`` (default: the CPU); an ONNX
            file is checked against onnxruntime on the CPU first.
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
    where = parse_device(device)
    if is_onnx(path):
        from .onnx import load_onnx

        model = load_onnx(path, dtype=dtype, **options)
    elif options:
        raise Mat2GradError(f"unexpected options for a MAT-file: {', '.join(options)}")
    else:
        model = ShallowNetwork(load_spec(path, network), dtype=dtype)
    return model if where is None else model.to(where)


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
