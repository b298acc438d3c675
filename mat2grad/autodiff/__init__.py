"""Derivatives of a network's outputs with respect to its inputs.

``jacobian`` (reverse mode, forward mode, or a closed form where the model has one),
``vjp`` / ``jvp`` (products without forming J), ``hessian``, ``check`` (autograd against
central finite differences), and gradients through time of dynamic networks
(``sequence_jacobian``, ``step_sensitivity``, ``sequence_gradient``). The engine works on
any ``nn.Module`` that follows the model contract (:mod:`mat2grad.contract`;
``mat2grad.load`` returns one): it never looks inside the model except through the
contract's optional closed-form hook, and it takes every per-sample shape from the actual
inputs, so a model whose input is ``(Q, T, R)`` gets its full ``(Q, *out, T, R)`` Jacobian
for free.

Shape contract
--------------
Inputs ``x_j`` are batch-first ``(Q, *in_j)`` (numpy arrays or tensors); outputs ``y_k`` are
``(Q, *out_k)``. The Jacobian block of output ``k`` with respect to input ``j`` is::

    J_kj  (Q, *out_k, *in_j),    J_kj[q, s..., r...] = d y_k[q, s...] / d x_j[q, r...]

One output and one (selected) input give a plain tensor; otherwise the result is a tuple over
outputs of tuples over the selected inputs (``J[k][j]``), like MATLAB's numOutputs x
numInputs cell. Results are per sample: the derivative of sample q's outputs with respect
to sample q's inputs (see NOTE: [Samples are independent] in ``chunks.py``). Where a
function has no derivative the engine follows torch's conventions (see NOTE: [Kinks] below).

Speed and memory
----------------
Samples are processed in chunks sized from a working-set budget (about 32 MB, where the
measured speed is best; ``chunk_size`` overrides it) and written into one preallocated
result, so memory is the result plus one chunk. :func:`jacobian_chunks` yields the chunks
instead, for writers that stream results larger than memory to disk. Reverse mode with many
outputs per sample batches its cotangents where that measures faster (see NOTE: [Batched
cotangents] in ``methods.py``). A progress bar
(tqdm, on stderr) appears only on terminals and only for jobs longer than two seconds.

Modules: ``setup`` (argument checks, the per-call setup), ``chunks`` (chunk sizes, the
chunk loop, the independence guard), ``methods`` (reverse/forward mode, the choice),
``jacobian``, ``products`` (vjp, jvp), ``hessian``, ``check``, ``sequence`` (through time).
The functions re-exported here shadow the modules of the same name as attributes of the
package (``mat2grad.autodiff.jacobian`` is the function); import from the module path
(``from mat2grad.autodiff.jacobian import JacobianChunks``) to reach a module's contents.
"""

# NOTE: [Kinks]
#   At points where a function has no derivative the engine returns torch's convention,
#   which the closed forms reproduce: ``poslin`` (relu) has derivative 0 at n == 0;
#   ``satlin``/``satlins`` (clamp) have derivative 1 at their corners; ``tribas`` has
#   derivative -sign(n) at |n| == 1 and 0 at n == 0; ``dist`` is given derivative 0 where
#   the input equals a weight row. ``hardlim``, ``hardlims`` and ``compet`` have derivative
#   0 almost everywhere: the Jacobian through them is exactly 0, with a
#   ZeroDerivativeWarning. Inputs removed by ``removeconstantrows`` get zero columns,
#   constant outputs zero rows. NaN inputs give NaN Jacobian entries wherever the NaN
#   reaches (as MATLAB's outputs are NaN there).

from .check import CheckResult, check, check_points
from .chunks import CHUNK_BUDGET_BYTES, MAX_CHUNK
from .hessian import hessian
from .jacobian import JacobianChunk, JacobianChunks, jacobian, jacobian_chunks
from .methods import MODES
from .products import jvp, vjp
from .sequence import FORMS, sequence_gradient, sequence_jacobian, step_sensitivity
from .setup import Nested, ZeroDerivativeWarning

__all__ = [
    "jacobian",
    "jacobian_chunks",
    "JacobianChunk",
    "JacobianChunks",
    "vjp",
    "jvp",
    "hessian",
    "check",
    "CheckResult",
    "check_points",
    "ZeroDerivativeWarning",
    "MODES",
    "CHUNK_BUDGET_BYTES",
    "MAX_CHUNK",
    "Nested",
    "FORMS",
    "sequence_jacobian",
    "step_sensitivity",
    "sequence_gradient",
]
