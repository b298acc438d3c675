function config = mat2grad_setup(varargin)
%MAT2GRAD_SETUP   Tell the mat2grad helpers which Python to use, and check it works.
%   MAT2GRAD_SETUP('PythonExecutable', PYTHON) checks that mat2grad can be run with the
%   Python interpreter PYTHON (a full path, e.g. '/home/me/venv/bin/python' or
%   'C:\venvs\m2g\Scripts\python.exe') and stores it for this and later sessions
%   (MATLAB/Octave preferences, group 'mat2grad'). If mat2grad is not installed there,
%   the error gives the pip command that installs it.
%
%   MAT2GRAD_SETUP('PythonExecutable', '') forgets the stored interpreter.
%
%   MAT2GRAD_SETUP with no arguments prints which Python the helpers use, where that
%   choice comes from, and the mat2grad version found there (an error if none).
%
%   CONFIG = MAT2GRAD_SETUP(...) returns that as a struct instead of printing it (and
%   does not raise an error when mat2grad cannot run):
%     PythonExecutable  the interpreter
%     Source            'MAT2GRAD_PYTHON' (environment variable, overrides everything),
%                       'preference' (stored here) or 'default' ('python3'; 'python' on
%                       Windows, found on the system PATH)
%     Version           the output of "PYTHON -m mat2grad --version" ('' if it fails)
%     Problem           '' or, when mat2grad cannot run there, the error message
%     InProcess         true when MATLAB calls mat2grad through its py interface
%     Worker            true when the helpers use the warm worker (below)
%     WorkerPid         the worker's process id; 0 when none is running
%
%   MAT2GRAD_SETUP('Worker', TF) makes the helpers run their commands in one long-lived
%   Python process per MATLAB/Octave session ("PYTHON -m mat2grad worker", started at the
%   first call and kept): a call then costs milliseconds instead of starting Python and
%   importing PyTorch, and networks stay loaded (read again when their file changes). The
%   worker ends with this session, after 'WorkerIdleTimeout' seconds without a call
%   (default 1800; MAT2GRAD_SETUP('WorkerIdleTimeout', S) stores another), or when the
%   Python changes; the next call starts a new one. Results and errors are those of the
%   system() route. MAT2GRAD_SETUP('Worker', false) ends it and goes back to system().
%   The worker is the default in GNU Octave; in MATLAB it is off until turned on.
%
%   MAT2GRAD_SETUP('InProcess', TF) (MATLAB R2019b and later only) makes the helpers call
%   mat2grad inside MATLAB's own Python session instead of starting a new Python process
%   for each call (which costs the 1-3 s of importing PyTorch every time). PyTorch must
%   not be loaded into MATLAB's process (its libraries conflict with MATLAB's), so this
%   requires pyenv's out-of-process mode; if Python is not loaded yet, MAT2GRAD_SETUP
%   sets it up with pyenv('Version', PYTHON, 'ExecutionMode', 'OutOfProcess').
%   Commands that mat2grad.matlab_api does not offer still run through system().
%   GNU Octave always uses system().
%
%   Example:
%     mat2grad_setup('PythonExecutable', fullfile(getenv('HOME'), 'm2g', 'bin', 'python'))
%     mat2grad_setup                           % which Python, which mat2grad version
%
%   See also MAT2GRAD_JACOBIAN, MAT2GRAD_PREDICT, PYENV.

  p = inputParser();
  p.FunctionName = 'mat2grad_setup';
  p.addParameter('PythonExecutable', [], @(v) ischar(v) || (isstring(v) && isscalar(v)));
  p.addParameter('InProcess', [], @(v) islogical(v) || isnumeric(v));
  p.addParameter('Worker', [], @(v) islogical(v) || isnumeric(v));
  p.addParameter('WorkerIdleTimeout', [], @isnumeric);
  p.parse(varargin{:});
  given = setdiff(fieldnames(p.Results), p.UsingDefaults);

  if any(strcmp(given, 'PythonExecutable'))
    exe = char(p.Results.PythonExecutable);
    if isempty(exe)
      stored_setting('PythonExecutable', '', '');
    else
      [version, failure] = mat2grad_version(exe);
      if ~isempty(failure)
        rethrow(failure);   % not stored: mat2grad cannot run with this Python
      end
      stored_setting('PythonExecutable', '', exe);
      if ~isempty(getenv('MAT2GRAD_PYTHON'))
        warning('mat2grad:setup:overridden', ['mat2grad: stored ''%s'' (%s), but the ' ...
                'environment variable MAT2GRAD_PYTHON=''%s'' overrides it'], exe, version, ...
                getenv('MAT2GRAD_PYTHON'));
      end
    end
  end
  if any(strcmp(given, 'InProcess'))
    validateattributes(p.Results.InProcess, {'logical', 'numeric'}, {'scalar'}, ...
                       'mat2grad_setup', 'InProcess');
    enable = logical(p.Results.InProcess);
    if enable
      if is_octave()
        error('mat2grad:setup:inProcess', ['mat2grad: the in-process route needs ' ...
              'MATLAB''s py interface; GNU Octave runs mat2grad through the worker or system()']);
      end
      prepare_inprocess(python_executable());   % MATLAB only
    end
    stored_setting('InProcess', false, enable);
  end

  if any(strcmp(given, 'Worker'))
    validateattributes(p.Results.Worker, {'logical', 'numeric'}, {'scalar', 'binary'}, ...
                       'mat2grad_setup', 'Worker');
    stored_setting('Worker', worker_default(), logical(p.Results.Worker));
    if ~p.Results.Worker
      worker_call('', {}, 'stop');
    end
  end
  if any(strcmp(given, 'WorkerIdleTimeout'))
    validateattributes(p.Results.WorkerIdleTimeout, {'numeric'}, ...
                       {'scalar', 'real', 'nonnegative'}, 'mat2grad_setup', 'WorkerIdleTimeout');
    stored_setting('WorkerIdleTimeout', 1800, double(p.Results.WorkerIdleTimeout));
    worker_call('', {}, 'stop');   % the next call starts one with the new timeout
  end

  if ~isempty(given) && nargout == 0
    return   % a setting was changed (and checked); nothing to report
  end
  [exe, source] = python_executable();
  [version, failure] = mat2grad_version(exe);
  problem = '';
  if ~isempty(failure)
    problem = failure.message;
  end
  config = struct('PythonExecutable', exe, 'Source', source, 'Version', version, ...
                  'Problem', problem, ...
                  'InProcess', ~is_octave() && logical(stored_setting('InProcess', false)), ...
                  'Worker', logical(stored_setting('Worker', worker_default())), 'WorkerPid', 0);
  [~, ~, ~, ~, worker] = worker_call('', {}, 'status');
  if worker.Running
    config.WorkerPid = worker.Pid;
  end
  if nargout == 0
    route = 'through system()';
    if config.InProcess
      route = 'in-process through py';
    elseif config.Worker
      route = 'through the warm worker';
    end
    if isempty(failure)
      fprintf('mat2grad helpers: Python ''%s'' (%s), %s, %s\n', exe, source, version, route);
    else
      fprintf('mat2grad helpers: Python ''%s'' (%s)\n', exe, source);
      rethrow(failure);
    end
    clear config
  end
end

function [version, failure] = mat2grad_version(exe)
  % "PYTHON -m mat2grad --version" imports mat2grad and all it needs (PyTorch included).
  % FAILURE is the error (a struct for rethrow) when that fails, else [].
  version = '';
  failure = [];
  previous = getenv('MAT2GRAD_PYTHON');
  setenv('MAT2GRAD_PYTHON', exe);
  restore = onCleanup(@() setenv('MAT2GRAD_PYTHON', previous)); %#ok<NASGU>
  [out, err, status] = run_cli('setup', {'--version'});
  if status == 0
    version = strtrim(out);
    return
  end
  try
    cli_error('setup', status, err, exe);
  catch failure
  end
end

function prepare_inprocess(exe)
  % MATLAB only: PyTorch must run out of process (pyenv's ExecutionMode), see the help.
  pe = pyenv();
  if strcmp(char(pe.Status), 'NotLoaded')
    pyenv('Version', exe, 'ExecutionMode', 'OutOfProcess');
  elseif ~strcmp(char(pe.ExecutionMode), 'OutOfProcess')
    error('mat2grad:setup:inProcess', ['mat2grad: Python is loaded in MATLAB''s own ' ...
          'process (pyenv ExecutionMode ''%s''), where PyTorch conflicts with MATLAB''s ' ...
          'libraries. Restart MATLAB and run first: pyenv(''Version'', ''%s'', ' ...
          '''ExecutionMode'', ''OutOfProcess'')'], char(pe.ExecutionMode), exe);
  end
  try
    py.importlib.import_module('mat2grad.matlab_api');
  catch err
    exe = char(pe.Executable);
    error('mat2grad:setup:inProcess', ['mat2grad: MATLAB''s Python (%s) cannot import ' ...
          'mat2grad (%s). %s'], exe, err.message, install_hint(exe));
  end
end

%!test
%! % the Python under test (MAT2GRAD_PYTHON, set by the test runner)
%! text = evalc ('mat2grad_setup ()');
%! expected = sprintf ('mat2grad helpers: Python ''%s'' (MAT2GRAD_PYTHON), mat2grad ', ...
%!                     getenv ('MAT2GRAD_PYTHON'));
%! assert (strncmp (text, expected, numel (expected)), text);
%! assert (~isempty (strfind (text, ', through the warm worker')), text);   % Octave's default

%!test
%! % store a Python (this runner's HOME is a fresh folder, so the preference is the
%! % test's own); the environment variable still wins; '' forgets it
%! python = getenv ('MAT2GRAD_PYTHON');
%! env = m2g_test_env ('MAT2GRAD_PYTHON', '');
%! mat2grad_setup ('PythonExecutable', python);
%! assert (getpref ('mat2grad', 'PythonExecutable'), python);
%! config = mat2grad_setup ();
%! assert ({config.PythonExecutable, config.Source, config.Problem}, {python, 'preference', ''});
%! assert (strncmp (config.Version, 'mat2grad ', 9), config.Version);
%! assert (config.InProcess, false);
%! setenv ('MAT2GRAD_PYTHON', '/somewhere/else/python');
%! config = mat2grad_setup ();
%! assert ({config.PythonExecutable, config.Source, config.Version}, ...
%!         {'/somewhere/else/python', 'MAT2GRAD_PYTHON', ''});
%! assert (~isempty (strfind (config.Problem, 'was not found')), config.Problem);
%! setenv ('MAT2GRAD_PYTHON', '');
%! mat2grad_setup ('PythonExecutable', '');
%! assert (ispref ('mat2grad', 'PythonExecutable'), false);
%! config = mat2grad_setup ();
%! assert ({config.PythonExecutable, config.Source}, {'python3', 'default'});

%!test
%! % a Python without mat2grad is refused with the pip command, and not stored
%! [bare, gone] = m2g_test_bare_python ();
%! try
%!   mat2grad_setup ('PythonExecutable', bare);
%!   error ('no error raised');
%! catch err
%!   assert (err.identifier, 'mat2grad:setup:python');
%!   assert (~isempty (strfind (err.message, '-m pip install')), err.message);
%! end
%! assert (ispref ('mat2grad', 'PythonExecutable'), false);

%!error id=mat2grad:setup:python mat2grad_setup ('PythonExecutable', '/no/such/python')
%!test
%! % with no output, a Python that cannot run mat2grad is an error
%! env = m2g_test_env ('MAT2GRAD_PYTHON', '/no/such/python');
%! try
%!   evalc ('mat2grad_setup ()');
%!   error ('no error raised');
%! catch err
%!   assert (err.identifier, 'mat2grad:setup:python');
%! end
%!error id=mat2grad:setup:inProcess mat2grad_setup ('InProcess', true)
%!error <Worker> mat2grad_setup ('Worker', 2)
%!error <WorkerIdleTimeout> mat2grad_setup ('WorkerIdleTimeout', -1)
