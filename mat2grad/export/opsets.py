"""The ONNX opsets ``convert`` writes (no torch: the command line's ``--opset`` is built
from them)."""

from __future__ import annotations

__all__ = ["DEFAULT_OPSET", "ONNX_OPSETS"]

#: ONNX opset written by default: the highest MATLAB's own exporter writes (see the package
#: docstring), so the one importNetworkFromONNX is most likely to read.
DEFAULT_OPSET = 14
#: the opsets the TorchScript-based ONNX exporter of torch 2.13 writes; below 9 some MATLAB
#: functions have no ONNX form (hardlim, compet, dist, elliot2sig, fixunknowns; normprod
#: below 11) and converting them fails naming the function
ONNX_OPSETS = range(7, 21)
