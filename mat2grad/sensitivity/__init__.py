"""Sensitivity analysis: which inputs matter, by how much, where, and with what confidence.

Derivative-based, from the exact Jacobians and Hessians of :mod:`mat2grad.autodiff`,
accumulated chunk by chunk (memory O(S*R) for any number of samples):

* :func:`sensitivity`  NeuralSens' local statistics (mean, std, rms, mean_abs), per output
  and input, optionally standardised, with bootstrap intervals; dynamic networks get
  :func:`lag_importance` (per input and per delay);
* :func:`dgsm`  derivative-based global sensitivity measures (SALib's definition) over
  the input domain; :func:`salib_model` runs SALib's other methods on a network;
* :func:`interactions`  Hessian summaries; :func:`committee`  several networks pooled;
* :func:`garson`, :func:`olden`  the weight-based classics, for comparison;
* :mod:`.plots` (``pip install mat2grad[plot]``) and :func:`sensitivity_file`
  (file in, MAT-file with a struct ``S`` out).

Results are :class:`SensitivityResult`: statistics in the outputs x inputs layout.
"""

from .api import sensitivity
from .committee import committee, committee_file
from .dgsm import dgsm
from .files import sensitivity_file
from .interactions import interactions
from .result import SensitivityResult
from .salib import salib_model, salib_problem
from .timeseries import lag_importance
from .weights import garson, olden

__all__ = [
    "SensitivityResult",
    "committee",
    "committee_file",
    "dgsm",
    "garson",
    "interactions",
    "lag_importance",
    "olden",
    "salib_model",
    "salib_problem",
    "sensitivity",
    "sensitivity_file",
]
