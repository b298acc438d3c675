"""The names of MATLAB's shallow-network functions mat2grad supports, by family, without
torch: reading a network record checks its functions against these (``mat2grad info`` runs
without torch), and :mod:`.functions` implements exactly these (a test holds them equal).
"""

from __future__ import annotations

from collections.abc import Collection

from ..errors import Mat2GradError

__all__ = [
    "NET_INPUT_NAMES",
    "PROCESSING_NAMES",
    "TRANSFER_NAMES",
    "WEIGHT_NAMES",
    "ZERO_DERIVATIVE",
    "check_supported",
]

TRANSFER_NAMES = frozenset(
    {
        "tansig",
        "logsig",
        "purelin",
        "poslin",
        "satlin",
        "satlins",
        "radbas",
        "radbasn",
        "tribas",
        "softmax",
        "elliotsig",
        "elliot2sig",
        "hardlim",
        "hardlims",
        "compet",
        "netinv",
    }
)

#: transfer functions whose derivative is zero almost everywhere (the steps, and compet)
ZERO_DERIVATIVE = frozenset({"hardlim", "hardlims", "compet"})

WEIGHT_NAMES = frozenset({"dotprod", "dist", "negdist", "mandist", "normprod"})

NET_INPUT_NAMES = frozenset({"netsum", "netprod"})

PROCESSING_NAMES = frozenset(
    {"mapminmax", "mapstd", "removeconstantrows", "fixunknowns", "processpca", "lvqoutputs"}
)


def check_supported(names: Collection[str], name: str, family: str, where: str) -> None:
    """Raise a Mat2GradError listing the supported names unless ``name`` is one of them."""
    if name not in names:
        supported = ", ".join(sorted(names))
        raise Mat2GradError(
            f"{where}: {family} function '{name}' is not supported (supported: {supported})"
        )
