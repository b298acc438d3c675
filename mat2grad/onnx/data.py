"""Compatibility re-export: MATLAB data in and out of ONNX models now lives in
:mod:`mat2grad.matfile.onnx_layout`."""

from ..matfile.onnx_layout import (  # noqa: F401
    LAYOUTS,
    ResultLayout,
    inputs_from_mat,
    matlab_size_text,
    whole,
)
