"""``mat2grad.export``: write a loaded network as a portable file that plain PyTorch or any ONNX
runtime can run without mat2grad.

The suffix of the output picks the format (``FORMATS``):

* ``.pt2`` -- a ``torch.export`` ExportedProgram with a dynamic batch dimension, loaded with
  ``torch.export.load(f).module()``;
* ``.pt`` -- a traced TorchScript module (``torch.jit.trace``), loaded with ``torch.jit.load``;
* ``.onnx`` -- an ONNX model at a chosen opset, float64 or float32, dynamic batch, named inputs
  and outputs, and a docstring saying where the network came from.

The package follows one export through: ``prepare`` (a private copy of the network, example
inputs), ``convertible`` (what no format can hold, and which part an exporter failed on),
``portable`` with ``record`` and ``generalise`` (the modules the exporters are given; an ONNX
network's batch-generic graph), ``describe`` (what the file records about itself),
``writers`` (network -> bytes), ``verify`` (the bytes, loaded back, against the network) and
``matlab_layout`` (the ``R x Q`` layout of ``matlab_layout=True``); ``api`` holds
:func:`convert`, which runs them in turn. ``opsets`` needs no torch: the command line builds
its ``--opset`` option from it, and importing this package imports no more than that until
``convert`` or ``FORMATS`` is first used.

Nothing here pickles a Python object: ``.pt2`` is written by ``torch.export.save``, ``.pt`` by
``torch.jit.save`` and ``.onnx`` by protobuf, and each file carries its description as JSON
(``mat2grad.json``; ONNX ``metadata_props``). Before a file is written, its bytes are loaded
back the way a user would load them (``torch.export.load``, ``torch.jit.load``, onnxruntime
when installed, or onnx's reference evaluator for a float64 graph with operators onnxruntime
runs in float32 only) and run on batches of 1 and 4 samples against the network (the export
traced 3): a file that fails or disagrees is never written. Files are written atomically.

ONNX networks are not exported as they run in mat2grad (each sample at batch 1 under
``torch.func.vmap``, which no exporter can write with a dynamic batch), but as the
batch-generic graph of plain ATen operations that ``mat2grad.export.portable`` records from
them (See NOTE: [Batch-generic graph] there); the file written is still compared with the network
itself. So an ``.onnx`` file can be exported to ``.onnx``: re-exported at a chosen opset and
precision, valid (MATLAB 2018's ``Gemm`` on a 4-D tensor, which onnxruntime and
``onnx.checker`` reject, comes out as a valid graph), with a dynamic batch even where the
source baked batch 1 into its Reshape constants.

What the formats' consumers expect:

* MATLAB ``importNetworkFromPyTorch`` (mathworks.com/help/deeplearning/ref/
  importnetworkfrompytorch.html, R2026b page): "The PyTorch model must be a exported program or
  a traced model. Exported program models are recommended"; its recipe is ``model.eval()``,
  ``model.to("cpu")``, ``torch.export.export(model, (X,))``, ``torch.export.save(.., '.pt2')``,
  and for traced models ``torch.jit.trace(model.forward, X)``, ``traced.save('.pt')``; it asks
  for PyTorch 2.8 for ``.pt2``. Exported programs are supported from R2026a; traced models
  need ``PyTorchInputSizes`` at import.
* MATLAB ``importNetworkFromONNX`` (mathworks.com/help/deeplearning/ref/
  importnetworkfromonnx.html, since R2023b, returns an initialized ``dlnetwork``). The input
  layout it assumes: ONNX dimensions are batch-first; a 2-D ONNX input ``[N, C]`` is data format
  ``"BC"`` (MathWorks' guide to importing external models, "InputDataFormats"), which is the
  default layout written here; a ``matlab_layout`` file is ``[C, N]``, format ``"CB"``.
  ``DEFAULT_OPSET`` is 14, the highest opset MATLAB's own exporter writes
  (``SupportedOpsetsForExport = 6:14`` in MathWorks' 2024 exporter), which the importer is
  therefore expected to read (inferred: MATLAB is not available to verify it).
* torch.onnx (docs.pytorch.org/docs/stable/onnx.html, onnx_dynamo.html): torch 2.13 has two
  exporters; the torch.export-based one (``dynamo=True``, the default since 2.9) needs the extra
  package ``onnxscript``, which mat2grad does not depend on. The TorchScript-based exporter
  (``dynamo=False``, opsets 7-20 in torch 2.13, deprecated but shipped) needs nothing more and
  supports ``dynamic_axes``; it is used here.
* torch.export (docs.pytorch.org/docs/stable/export.html): ``export(mod, args,
  dynamic_shapes=...)`` with ``torch.export.Dim`` for the batch dimension; ``torch.export.save``
  / ``load`` with ``extra_files``.
"""

# NOTE: [Converted-file layout]
# A converted file maps raw inputs to raw outputs exactly like MATLAB's ``sim``: the
# processing functions (mapminmax, removeconstantrows, ...) and the reverse output processing
# are operations of the graph. Tensors are batch-first with features last: one ``(Q, R_j)``
# tensor per input, one ``(Q, S_k)`` tensor per output (a tuple for several), ``Q`` any batch
# size >= 1. ``.onnx`` with ``matlab_layout=True`` instead takes MATLAB's own layout, ``R_j x
# Q`` in and ``S_k x Q`` out (one sample per column, as ``sim(net, X)``); the transposes are
# the functions of ``mat2grad.export.matlab_layout``, applied by ``portable.Portable``.

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .opsets import DEFAULT_OPSET, ONNX_OPSETS

if TYPE_CHECKING:
    from .api import convert
    from .writers import FORMATS

__all__ = ["convert", "FORMATS", "DEFAULT_OPSET", "ONNX_OPSETS"]

#: the names whose modules import torch -> those modules, imported on first use
_LAZY = {"convert": ".api", "FORMATS": ".writers"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
