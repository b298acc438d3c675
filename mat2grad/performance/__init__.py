"""MATLAB's performance functions, and their derivatives with respect to the weights and
biases (backpropagation), laid out the way MATLAB lays them out.

``performance(model, x, t)`` is the number ``perform(net, t, sim(net, x))`` gives (and the
one ``train`` records as ``tr.perf`` / ``tr.best_perf`` for the samples it trains on);
``weight_gradient`` is its gradient with respect to every weight and bias, as pieces shaped
like ``net.b``, ``net.IW``, ``net.LW`` and as one vector in ``getwb(net)`` order;
``error_jacobian`` is the per-sample Jacobian of the errors (what Levenberg-Marquardt uses).

The library is batch-first: inputs ``(Q, R)``, targets ``(Q, S)``, one sample per row.

The formulas follow MATLAB's documentation (mse, sse, mae, sae, crossentropy, perform,
getwb, formwb, staticderiv, defaultderiv, num5deriv) and the behaviour of the toolbox
functions each NOTE names. The modules, in the order they build on each other:

* :mod:`.functions`: the table of performance functions; normalization, error weights,
  ignored (NaN) errors, regularization (NOTE: [MATLAB performance]);
* :mod:`.wb`: the ``getwb`` vector and the ``b``/``IW``/``LW`` cells (NOTE: [getwb order]);
* :mod:`.problem`: network, data and settings checked once (NOTE: [NaN inputs]);
* :mod:`.gradients`: the public functions and their results (NOTE: [Sign and scaling of
  MATLAB's dperf_dwb]).

``mat2grad.performance`` is also the name of the function :func:`performance` on the
``mat2grad`` package, so reach this package and its modules with ``from`` imports
(``from mat2grad.performance import weight_gradient``, ``from mat2grad.performance.wb
import wb_layout``: Python finds them in ``sys.modules``); ``import
mat2grad.performance.wb as wb`` fails, because it walks the attributes and finds the
function.
"""

from .functions import EPS, NORMALIZATIONS, PERFORMANCE, PerformFcn
from .gradients import (
    CONVENTIONS,
    ErrorJacobian,
    WeightGradient,
    error_jacobian,
    getwb,
    performance,
    weight_gradient,
)
from .wb import WB_ORDERS, WbEntry, wb_layout

__all__ = [
    "EPS",
    "PERFORMANCE",
    "NORMALIZATIONS",
    "CONVENTIONS",
    "WB_ORDERS",
    "PerformFcn",
    "WbEntry",
    "WeightGradient",
    "ErrorJacobian",
    "performance",
    "weight_gradient",
    "error_jacobian",
    "getwb",
    "wb_layout",
]
