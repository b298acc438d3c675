function cli_error(fn, status, err, exe)
%CLI_ERROR   Raise the MATLAB error for a failed mat2grad command line (see RUN_CLI).
%   CLI_ERROR(FN, STATUS, ERR, EXE) raises mat2grad:FN:failed with the CLI's one-line
%   message, mat2grad:FN:usage for a usage error (exit status 2), or mat2grad:FN:python
%   when Python or mat2grad could not be started (no "mat2grad: " line on stderr).

  lines = strtrim(strsplit(strtrim(err), char(10)));
  lines = lines(~cellfun('isempty', lines));
  if isempty(lines)
    last = sprintf('exit status %d, nothing on standard error', status);
  else
    last = lines{end};
  end

  if status == 2
    error(['mat2grad:' fn ':usage'], ...
          ['%s (the mat2grad installed for Python ''%s'' does not accept this call: it may ' ...
           'be older than these MATLAB helpers; update it. %s)'], last, exe, install_hint(exe));
  end
  mine = lines(strncmp(lines, 'mat2grad: ', 10));
  if ~isempty(mine)
    message = regexprep(mine{end}, '--samples (rows|columns)', '''Samples'', ''$1''');
    error(['mat2grad:' fn ':failed'], '%s', message);
  end
  if status == 127 || (ispc && status == 9009)   % sh / cmd.exe: command not found
    error(['mat2grad:' fn ':python'], ['mat2grad: Python ''%s'' was not found (%s). Tell ' ...
          'mat2grad which Python to use: mat2grad_setup(''PythonExecutable'', PATH), or ' ...
          'the environment variable MAT2GRAD_PYTHON.'], exe, last);
  end
  if ~isempty(strfind(err, 'No module named mat2grad')) || ...
     ~isempty(strfind(err, 'No module named ''mat2grad'''))
    error(['mat2grad:' fn ':python'], ...
          'mat2grad: mat2grad is not installed for Python ''%s''. %s', exe, install_hint(exe));
  end
  error(['mat2grad:' fn ':python'], ...
        'mat2grad: cannot run mat2grad with Python ''%s'' (%s). %s', exe, last, install_hint(exe));
end
