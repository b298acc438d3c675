"""``info`` and ``convert``: commands on a network file as a whole (no data). ``info`` on a
MAT-file imports no torch; ``convert`` imports the exporters when it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import matfile
from ..errors import Mat2GradError
from ..finding import is_onnx, network_file
from ..info import describe_file
from .options import ConvertOptions, InfoOptions

__all__ = ["convert_file", "info"]


def info(opts: InfoOptions) -> tuple[str, dict[str, Any]]:
    """The text and the JSON-ready data describing every network in ``opts.file``.

    Raises:
        Mat2GradError: the file holds no network (or is not a network file).
    """
    network_file(opts.file)
    text, data = describe_file(opts.file)
    if not is_onnx(opts.file) and not data.get("networks"):
        names = ", ".join(sorted(matfile.read_mat(opts.file))) or "none"
        raise Mat2GradError(
            f"{opts.file}: no MATLAB network found (variables: {names}); save the trained "
            "network itself, e.g. save('net.mat', 'net')"
        )
    return text, data


def convert_file(opts: ConvertOptions) -> Path:
    """Write the network as the portable file ``opts.output`` (its suffix picks the format);
    returns the path written."""
    from ..export import convert  # deferred: torch and the exporters, which info needs not

    return convert(
        opts.file,
        opts.output,
        network=opts.network,
        dtype=opts.dtype,
        opset=opts.opset,
        matlab_layout=opts.matlab_layout,
    )
