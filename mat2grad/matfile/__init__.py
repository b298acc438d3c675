"""The MAT-file boundary: the only package that knows how MATLAB lays data out.

The library speaks PyTorch (batch-first tensors and arrays); MAT-files speak MATLAB. Every
conversion between the two, and every byte read from or written to a MAT-file, is here:

=================  =====================================================================
``tree``           the neutral tree a MAT-file's variables become (MatStruct, cells, ...)
``read``           ``read_mat``: v4/v6/v7 through scipy, classdef objects and v7.3 through
                   mat-io, one undecodable variable never hiding the others
``paths``          MATLAB-style paths (``STATE.network.values{1}``), choosing the data variable
``write``          ``write_mat`` (v7 or v7.3) and the one atomic replace every writer uses
``_v73``           MAT v7.3 (HDF5) in MATLAB's own layout, and the MAT-file header
``stream``         ``SampleWriter``: per-sample results chunk by chunk, larger than memory
``layout``         shallow networks' ``R x Q`` samples, per-sample results, weight cells
``sequences``      time series (numSignals x TS cells), delay states
``layout_kinds``   ONNX models' arrays by layout kind (features, image, volume, sequence)
``onnx_layout``    ONNX models' inputs from MAT data, results in the chosen layout
``records``        where things sit in a saved network record (cells, row indices, examples)
``weights``        weights and biases: ``W(:)`` column-major into ``getwb``'s vector, cells
``series``         which variables hold a dynamic network's series and states; gradients
                   through time written back
``memory``         per-sample results assembled in memory (``ArrayWriter``), result cells
``python_values``  values as MATLAB's Python interface (``py.``) hands them over, and back
``export_layout``  exported files in MATLAB's layout (``R x Q`` in, ``S x Q`` out)
=================  =====================================================================

Import the names below from ``mat2grad.matfile`` itself; the modules are its parts. Reading
a MAT-file does not import torch: the parts that need it (``weights``, ``onnx_layout``,
``export_layout``) are imported the first time one of their names is asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .atomic import temporary_beside, write_bytes_atomically
from .layout import (
    SAMPLES,
    SampleBlock,
    check_samples,
    column,
    column_cell,
    error_weights_from_matlab,
    per_sample_to_matlab,
    results_to_matlab,
    row_cell,
    samples_from_matlab,
    samples_to_matlab,
    weight_cells,
)
from .layout_kinds import (
    MATLAB_LAYOUTS,
    batch_to_matlab,
    batch_to_matlab_samples,
    jacobian_to_matlab,
    matlab_block,
    matlab_element_order,
    matlab_to_batch,
)
from .memory import ArrayWriter, output_cell, result_cell, sample_block
from .paths import parse_path, resolve, select_variable, walk
from .python_values import (
    array_from_python,
    cell_from_python,
    matrix_from_python,
    outputs_to_python,
    result_to_python,
    value_from_python,
)
from .read import read_mat
from .records import (
    cell_item,
    cell_item2,
    cell_item_or_none,
    cell_list,
    example_count,
    example_samples,
    row_indices,
    stored_example,
    stored_range,
)
from .sequences import (
    sequence_jacobian_to_matlab,
    sequences_from_matlab,
    sequences_to_matlab,
    states_from_matlab,
)
from .series import (
    SeriesData,
    SeriesNames,
    SeriesNetwork,
    series_from_variables,
    series_gradient_to_matlab,
)
from .stream import SampleWriter
from .tree import (
    MatStruct,
    MatStructArray,
    Opaque,
    as_float,
    as_text,
    cell_elements,
    describe,
    is_cell,
)
from .write import MAT_FORMATS, choose_format, v73_threshold, write_mat

if TYPE_CHECKING:
    from . import export_layout
    from .onnx_layout import ResultLayout, inputs_from_mat, matlab_size_text
    from .weights import column_major, flatten_column_major, weight_cell_dicts

#: the names whose modules import torch -> those modules, imported on first use
_LAZY: dict[str, str] = {
    "export_layout": ".export_layout",
    "column_major": ".weights",
    "flatten_column_major": ".weights",
    "weight_cell_dicts": ".weights",
    "ResultLayout": ".onnx_layout",
    "inputs_from_mat": ".onnx_layout",
    "matlab_size_text": ".onnx_layout",
}

__all__ = [
    # the neutral tree
    "MatStruct",
    "MatStructArray",
    "Opaque",
    "as_float",
    "as_text",
    "describe",
    "is_cell",
    "cell_elements",
    # reading and addressing
    "read_mat",
    "parse_path",
    "resolve",
    "walk",
    "select_variable",
    # writing
    "write_mat",
    "write_bytes_atomically",
    "temporary_beside",
    "MAT_FORMATS",
    "choose_format",
    "v73_threshold",
    "SampleWriter",
    "SampleBlock",
    # results in memory, and the cells of several outputs/inputs
    "ArrayWriter",
    "sample_block",
    "result_cell",
    "output_cell",
    # saved network records
    "cell_list",
    "cell_item",
    "cell_item2",
    "cell_item_or_none",
    "row_indices",
    "stored_example",
    "stored_range",
    "example_count",
    "example_samples",
    # weights and biases
    "column_major",
    "flatten_column_major",
    "weight_cell_dicts",
    # shallow networks: samples, results, weights
    "SAMPLES",
    "check_samples",
    "samples_from_matlab",
    "samples_to_matlab",
    "per_sample_to_matlab",
    "results_to_matlab",
    "error_weights_from_matlab",
    "weight_cells",
    "column",
    "column_cell",
    "row_cell",
    # time series
    "sequences_from_matlab",
    "sequences_to_matlab",
    "states_from_matlab",
    "sequence_jacobian_to_matlab",
    "SeriesNetwork",
    "SeriesNames",
    "SeriesData",
    "series_from_variables",
    "series_gradient_to_matlab",
    # values through MATLAB's Python interface
    "value_from_python",
    "cell_from_python",
    "array_from_python",
    "matrix_from_python",
    "result_to_python",
    "outputs_to_python",
    # exported files
    "export_layout",
    # ONNX models
    "MATLAB_LAYOUTS",
    "matlab_to_batch",
    "batch_to_matlab",
    "batch_to_matlab_samples",
    "jacobian_to_matlab",
    "matlab_block",
    "matlab_element_order",
    "inputs_from_mat",
    "ResultLayout",
    "matlab_size_text",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name], __name__)
    value = module if name == "export_layout" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
