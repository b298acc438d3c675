function result = call_inprocess(fn, file, networkPath, data, options)
%CALL_INPROCESS   MATLAB only: run FN through py.mat2grad.matlab_api, without files.
%   RESULT = CALL_INPROCESS(FN, FILE, NETWORKPATH, DATA, OPTIONS) calls
%   mat2grad.matlab_api.run(FN, FILE, X=..., T=..., network=..., <options>) in the Python
%   that pyenv loaded (the command line's own code, run in that process), passing the
%   fields of DATA (X, T, EW, Xi, ...) as plain arrays (a cell as a tuple),
%   and converts the returned dict (numpy arrays; cells as lists of rows) into a struct
%   with the same fields as the command line's result file.
%
%   Needs pyenv(Version=PYTHON, ExecutionMode="OutOfProcess"): PyTorch loaded into
%   MATLAB's own process conflicts with MATLAB's libraries (mat2grad_setup checks this).
%   Octave has no py interface and never reaches this function.

  kw = {};
  if ~isempty(networkPath)
    kw = {'network', networkPath};
  end
  for k = 1:size(options, 1)
    kw = [kw, {strrep(options{k, 1}, '-', '_'), options{k, 2}}]; %#ok<AGROW>
  end
  names = fieldnames(data);
  for k = 1:numel(names)
    if ~strcmp(names{k}, 'net')   % the network is in FILE already
      kw = [kw, {names{k}, to_python(data.(names{k}))}]; %#ok<AGROW>
    end
  end
  api = py.importlib.import_module('mat2grad.matlab_api');
  try
    r = api.run(fn, file, pyargs(kw{:}));
  catch err
    % Python's exception arrives as "Python Error: Mat2GradError: <message>"; the message
    % is the command line's own (temporary file names already replaced).
    message = regexprep(err.message, '^Python Error:\s*(\w+:\s*)?', '');
    error(['mat2grad:' fn ':failed'], 'mat2grad: %s', message);
  end
  result = from_python(r);
end

function p = to_python(value)
  if iscell(value)
    % A cell goes as a tuple of row tuples (MATLAB converts a 1-by-N cell to a tuple),
    % which matlab_api rebuilds as a cell of the same shape: numInputs-by-1 for several
    % inputs, numInputs-by-TS for time series.
    p = cell(1, size(value, 1));
    for k = 1:size(value, 1)
      p{k} = value(k, :);
    end
  else
    p = value;      % a numeric matrix arrives as a memoryview (R x Q, column-major)
  end
end

function v = from_python(p)
  if isa(p, 'py.dict')
    s = struct(p);
    names = fieldnames(s);
    v = struct();
    for k = 1:numel(names)
      v.(names{k}) = from_python(s.(names{k}));
    end
  elseif isa(p, 'py.list') || isa(p, 'py.tuple')
    items = cell(p);
    rows = cell(numel(items), 1);
    for k = 1:numel(items)
      rows{k} = from_python(items{k});
    end
    if ~isempty(rows) && all(cellfun(@iscell, rows))
      for k = 1:numel(rows)
        rows{k} = rows{k}(:)';
      end
      v = vertcat(rows{:});   % a list of rows: a 2-D cell (numOutputs x numInputs)
    else
      v = rows;               % a column cell, like the MAT-files' numOutputs x 1 cells
    end
  elseif isa(p, 'py.str')
    v = char(p);
  else
    v = double(p);            % numpy arrays keep their MATLAB-layout shape
  end
end
