function [result, out, err, status] = call_cli(fn, net, data, options, writesResult)
%CALL_CLI   One helper call: save the data, run "mat2grad FN ...", load the results.
%   RESULT = CALL_CLI(FN, NET, DATA, OPTIONS, WRITESRESULT) runs the mat2grad command FN
%   ('predict', 'jacobian', ...) on the network NET with the variables of the struct DATA
%   (X: inputs) and the N-by-2 cell OPTIONS of {cli-option-name, value} pairs from
%   PARSE_OPTIONS (value '' for a bare flag); its capitalised entries are more data
%   (T: targets, EW: error weights, Xi, Ai: initial delay states, X1, T1: a known
%   sequence, W: output weights), saved beside X and named with --targets-var, --ew-var, ... When
%   WRITESRESULT is true the command writes a MAT-file, and RESULT is that file loaded as
%   a struct (J, Y, H, ...); otherwise RESULT is struct().
%
%   NET is a path to a .mat or .onnx file (option 'network' picks a network inside a
%   MAT-file), a struct with the fields of a network object, or (MATLAB) a network object:
%   a struct or object is saved as the variable 'net' of the temporary data file.
%
%   Everything temporary lives in one new folder under tempdir, removed by an onCleanup
%   object whatever happens. The data file is MAT v7 (Octave's default is its own text
%   format, so the version is always explicit); in MATLAB, v7.3 when the data exceed
%   2 GB, the v7 limit per variable.
%
%   [RESULT, OUT] = CALL_CLI(...) also returns what the command printed.
%   [RESULT, OUT, ERR, STATUS] = CALL_CLI(...) does not raise when the command fails:
%   see RUN_CLI.
%
%   When the in-process route is enabled (MATLAB only, mat2grad_setup('InProcess', true))
%   and mat2grad.matlab_api offers FN, the arrays go to Python directly (CALL_INPROCESS).

  folder = tempname();
  [ok, message] = mkdir(folder);
  if ~ok
    error(['mat2grad:' fn ':tempdir'], 'mat2grad: cannot create a temporary folder %s (%s)', ...
          folder, message);
  end
  cleaner = onCleanup(@() remove_folder(folder)); %#ok<NASGU>
  datafile = fullfile(folder, 'inputs.mat');
  resultfile = fullfile(folder, 'results.mat');

  % Data given as options ('Targets', 'Xi', ...: capitalised names) go in the data file.
  for k = size(options, 1):-1:1
    if any(strcmp(options{k, 1}, data_variables()))
      data.(options{k, 1}) = options{k, 2};
      options(k, :) = [];
    end
  end

  % Where the network comes from.
  isPath = ischar(net) || (isstring(net) && isscalar(net));
  k = find(strcmp(options(:, 1), 'network'));
  networkPath = '';
  if ~isempty(k)
    networkPath = options{k, 2};
    options(k, :) = [];
  end
  if isPath
    file = char(net);
    if isempty(file)
      error(['mat2grad:' fn ':network'], 'mat2grad: NET is an empty file name');
    end
  elseif isstruct(net) && isscalar(net) || isa(net, 'network')
    if ~isempty(networkPath)
      error(['mat2grad:' fn ':network'], ['mat2grad: the option ''Network'' chooses a ' ...
            'network inside a MAT-file; NET is already a network (%s)'], class(net));
    end
    data.net = net;
    file = datafile;
    networkPath = 'net';
  else
    error(['mat2grad:' fn ':network'], ['mat2grad: NET must be a network object, a struct ' ...
          'with the fields of one, or the path of a .mat or .onnx file; found a %s %s'], ...
          size_text(net), class(net));
  end

  args = {fn, file};
  if ~isempty(networkPath) && ~strcmp(fn, 'info')
    args = [args, {'--network', networkPath}];
  end
  if isfield(data, 'X')
    args = [args, {'--inputs', datafile}];
  end
  [names, flags] = data_variables();
  for k = 1:numel(names)
    if isfield(data, names{k})
      args = [args, {flags{k}, names{k}}]; %#ok<AGROW>
    end
  end
  for k = 1:size(options, 1)
    args = [args, {['--' options{k, 1}]}]; %#ok<AGROW>
    if ~isempty(options{k, 2})
      args = [args, options(k, 2)]; %#ok<AGROW>
    end
  end
  if writesResult
    args = [args, {'-o', resultfile}];
  end

  if use_inprocess(fn)
    if isfield(data, 'net')
      save_data(fn, datafile, struct('net', data.net));
    end
    result = call_inprocess(fn, file, networkPath, data, options);
    out = '';  err = '';  status = 0;
    return
  end

  if ~isempty(fieldnames(data))
    save_data(fn, datafile, data);
  end
  scrub = {[datafile ': '], ''; datafile, 'the data passed from MATLAB'; ...
           folder, '<temporary folder>'};
  if nargout >= 4
    [out, err, status] = run_cli(fn, args, scrub);
    if status ~= 0
      result = struct();
      return
    end
  else
    out = run_cli(fn, args, scrub);
    err = '';  status = 0;
  end
  result = struct();
  if writesResult
    if exist(resultfile, 'file') ~= 2
      error(['mat2grad:' fn ':noResult'], ...
            'mat2grad: the command finished but wrote no result file (%s)', resultfile);
    end
    result = load(resultfile);
  end
end

function [names, flags] = data_variables()
  % The data variables the commands read from the data file, and the option naming each
  % (targets and the others default to the --inputs file, which is the data file).
  names = {'X', 'T', 'EW', 'Xi', 'Ai', 'X1', 'T1', 'W'};
  flags = {'--inputs-var', '--targets-var', '--ew-var', '--xi-var', '--ai-var', ...
           '--known-inputs-var', '--known-targets-var', '--weights-var'};
end

function save_data(fn, file, data)
  % Always an explicit format: Octave's default is its text format, not a MAT-file.
  format = '-v7';
  if ~is_octave()
    info = whos('data');
    if info.bytes >= 2^31
      format = '-v7.3';  % MATLAB only: v7 stores at most 2 GB per variable
    end
  end
  try
    save(file, '-struct', 'data', format);
  catch err
    if isfield(data, 'net')
      error(['mat2grad:' fn ':save'], ['mat2grad: the network cannot be written to a ' ...
            'MAT-file (%s); pass the path of the MAT-file that holds it instead, e.g. ' ...
            'mat2grad_%s(''net.mat'', X)'], err.message, fn);
    end
    error(['mat2grad:' fn ':save'], 'mat2grad: the data cannot be written to a MAT-file (%s)', ...
          err.message);
  end
end

function text = size_text(value)
  text = sprintf('%dx', size(value));
  text = text(1:end-1);
end
