"""MATLAB shallow networks as PyTorch modules.

The data flows through the modules in this order:

* :mod:`.record` reads a saved ``network`` record into a :class:`.spec.NetworkSpec`, with
  :mod:`.fields` (single fields), :mod:`mat2grad.matfile.records` (where things sit in MATLAB's
  layout) and :mod:`.settings` (processing settings, per format version), checking the
  functions' names against :mod:`.names`; none of these imports torch;
* :mod:`.functions` holds MATLAB's transfer, processing, weight and net-input functions as
  tables; :mod:`.processing` applies an input's or output's processing;
* :mod:`.module` builds :class:`.module.ShallowNetwork`; dynamic networks run through time
  in :mod:`.simulate`; :mod:`.preparets` and :mod:`.loops` (``closeloop``, ``openloop``,
  multistep prediction) prepare and transform them;
* :mod:`.jacobian` is the closed-form Jacobian of static networks; :mod:`.describe` the
  readable description.
"""
