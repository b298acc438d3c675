function hint = install_hint(exe)
%INSTALL_HINT   How to make mat2grad importable for the Python EXE (one sentence).
%   From a clone of the repository (this folder's grandparent holds pyproject.toml) the
%   hint is an editable install with the pinned constraints; otherwise the PyPI package.

  repo = fileparts(fileparts(fileparts(mfilename('fullpath'))));
  if exist(fullfile(repo, 'pyproject.toml'), 'file') == 2
    install = sprintf('%s -m pip install -c %s -e %s', quote_arg(exe), ...
                      quote_arg(fullfile(repo, 'constraints.txt')), quote_arg(repo));
  else
    install = sprintf('%s -m pip install mat2grad', quote_arg(exe));
  end
  hint = sprintf(['To install it there, run: %s   Or use another Python: ' ...
                  'mat2grad_setup(''PythonExecutable'', PATH), or the environment ' ...
                  'variable MAT2GRAD_PYTHON.'], install);
end

%!test
%! hint = install_hint ('/usr/bin/python3');
%! assert (~isempty (strfind (hint, '''/usr/bin/python3'' -m pip install')));
%! assert (~isempty (strfind (hint, 'constraints.txt')));
%! assert (~isempty (strfind (hint, 'mat2grad_setup(''PythonExecutable'', PATH)')));
%! assert (~isempty (strfind (hint, '-e ''')));   % this folder sits in a repository clone
