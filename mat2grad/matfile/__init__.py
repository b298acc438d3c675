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
=================  =====================================================================

Import the names below from ``mat2grad.matfile`` itself; the modules are its parts.
"""

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
from .onnx_layout import ResultLayout, inputs_from_mat, matlab_size_text
from .paths import parse_path, resolve, select_variable, walk
from .read import read_mat
from .sequences import (
    sequence_jacobian_to_matlab,
    sequences_from_matlab,
    sequences_to_matlab,
    states_from_matlab,
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
    # time series
    "sequences_from_matlab",
    "sequences_to_matlab",
    "states_from_matlab",
    "sequence_jacobian_to_matlab",
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
