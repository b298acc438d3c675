function [exe, source] = python_executable()
%PYTHON_EXECUTABLE   The Python interpreter the helpers run mat2grad with, and why.
%   [EXE, SOURCE] = PYTHON_EXECUTABLE returns, in order of precedence:
%     - the environment variable MAT2GRAD_PYTHON          (SOURCE 'MAT2GRAD_PYTHON')
%     - the preference stored by mat2grad_setup            (SOURCE 'preference')
%     - 'python3' ('python' on Windows), found on the PATH (SOURCE 'default')
%
%   See also MAT2GRAD_SETUP.

  exe = getenv('MAT2GRAD_PYTHON');
  source = 'MAT2GRAD_PYTHON';
  if isempty(exe)
    exe = stored_setting('PythonExecutable', '');
    source = 'preference';
  end
  if isempty(exe)
    source = 'default';
    if ispc
      exe = 'python';
    else
      exe = 'python3';
    end
  end
end

%!test
%! old = getenv ('MAT2GRAD_PYTHON');
%! restore = onCleanup (@() setenv ('MAT2GRAD_PYTHON', old));
%! setenv ('MAT2GRAD_PYTHON', '/opt/some python/bin/python3');
%! [exe, source] = python_executable ();
%! assert (exe, '/opt/some python/bin/python3');
%! assert (source, 'MAT2GRAD_PYTHON');
