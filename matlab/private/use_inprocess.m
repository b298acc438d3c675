function tf = use_inprocess(fn)
%USE_INPROCESS   True when FN should run in-process through MATLAB's py interface.
%   Only in MATLAB, only after mat2grad_setup('InProcess', true), and only for the
%   commands that mat2grad.matlab_api offers (matlab_api.COMMANDS); everything else, and
%   everything in Octave, goes through system() and the command line.

  tf = false;
  if is_octave() || ~stored_setting('InProcess', false)
    return
  end
  % MATLAB only from here on.
  api = py.importlib.import_module('mat2grad.matlab_api');
  tf = logical(py.operator.contains(api.COMMANDS, fn));
end

%!assert (use_inprocess ('predict'), false)   % Octave has no py interface
