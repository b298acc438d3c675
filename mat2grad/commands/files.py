"""``info`` and ``convert``: commands on a network file as a whole (no data)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..export import convert
from ..info import describe_file
from .options import ConvertOptions, InfoOptions

__all__ = ["convert_file", "info"]


def info(opts: InfoOptions) -> tuple[str, dict[str, Any]]:
    """The text and the JSON-ready data describing every network in ``opts.file``."""
    return describe_file(opts.file)


def convert_file(opts: ConvertOptions) -> Path:
    """Write the network as the portable file ``opts.output`` (its suffix picks the format);
    returns the path written."""
    return convert(
        opts.file,
        opts.output,
        network=opts.network,
        dtype=opts.dtype,
        opset=opts.opset,
        matlab_layout=opts.matlab_layout,
    )
