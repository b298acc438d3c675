function options = parse_options(fn, names, args)
%PARSE_OPTIONS   Validate a helper's name-value options; return them as CLI options.
%   OPTIONS = PARSE_OPTIONS(FN, NAMES, ARGS) parses the name-value pairs ARGS (a cell, the
%   helper's varargin) accepting the option NAMES, with inputParser (names are
%   case-insensitive), and validates each value with validateattributes/validatestring.
%   OPTIONS is an N-by-2 cell of {cli-option-name, char value} for the options given;
%   options left out are not passed, so the command line's own defaults apply.
%
%   The options, and the command-line options they become:
%     'Network'     char     --network      network path inside a MAT-file (net1.net)
%     'Samples'     char     --samples      'columns' (R x Q, default) or 'rows' (Q x R)
%     'DataType'    char     --dtype        'double' (default) or 'single' (computation)
%     'Mode'        char     --mode         'auto', 'rev' or 'fwd'
%     'ChunkSize'   integer  --chunk-size   samples per chunk
%     'Device'      char     --device       'cpu' (default), 'cuda', 'cuda:N' or 'mps'
%     'Layout'      char     --layout       ONNX files: 'matlab' or 'onnx' data layout
%     'Output'      integer  --output-index which output element (Hessian)
%     'Performance' char     --performance  'mse', 'sse', 'mae', 'sae', 'crossentropy'
%     'Normalization' char   --normalization 'none', 'standard' or 'percent'
%     'Regularization' real  --regularization in [0, 1]
%     'Convention'  char     --convention   'math' (+dperf/dwb) or 'matlab' (its negative)
%     'WbOrder'     char     --wb-order     'bias-first' or 'bias-last' (getwb's order)
%     'Prepare'     logical  --prepare      shift series to fill delay states (preparets)
%     'ClosedLoop'  logical  --closed-loop  close the feedback loop first (closeloop)
%     'Steps'       integer  --steps        time steps for a network without inputs
%     'Form'        char     --form         dynamic Jacobians: 'full', 'step' or 'sum'
%     'MaxLag'      integer  --max-lag      largest lag of 'step'
%   Data, not options: returned as {VARIABLE, value}, a capitalised name that CALL_CLI
%   saves beside X and passes with --<name>-var:
%     'ErrorWeights' EW  error weights         'Targets'      T   targets / feedback series
%     'Xi'           Xi  initial input states  'Ai'           Ai  initial layer states
%     'KnownInputs'  X1  known input sequence  'KnownTargets' T1  its feedback targets
%     'OutputWeights' W  weights of the outputs summed by 'Form', 'sum'
%     'Tol'         real     --tol          tolerance of the gradient check
%     'Wrt'         char or cellstr  --wrt  ONNX files: the input(s) to differentiate with
%                                          respect to (one --wrt per name)

  p = inputParser();
  p.FunctionName = ['mat2grad_' fn];
  for k = 1:numel(names)
    p.addParameter(names{k}, [], make_validator(names{k}, p.FunctionName));
  end
  for k = 1:numel(args)
    if isstring(args{k}) && isscalar(args{k})  % MATLAB strings: names and values as char
      args{k} = char(args{k});
    elseif isstring(args{k})                   % a string array ('Wrt', ["h0" "c0"])
      args{k} = cellstr(args{k});
    end
  end
  p.parse(args{:});

  options = cell(0, 2);
  for k = 1:numel(names)
    value = p.Results.(names{k});
    if isempty(value)
      continue
    end
    switch names{k}
      case 'Network'
        options(end+1, :) = {'network', value};
      case 'Samples'
        options(end+1, :) = {'samples', validatestring(value, {'columns', 'rows'})};
      case 'DataType'
        dtype = validatestring(value, {'double', 'single'});
        options(end+1, :) = {'dtype', ifelse_text(strcmp(dtype, 'double'), 'float64', 'float32')};
      case 'Mode'
        options(end+1, :) = {'mode', validatestring(value, {'auto', 'rev', 'fwd'})};
      case 'ChunkSize'
        options(end+1, :) = {'chunk-size', sprintf('%d', value)};
      case 'Device'
        options(end+1, :) = {'device', lower(value)};
      case 'Layout'
        options(end+1, :) = {'layout', validatestring(value, {'matlab', 'onnx'})};
      case 'Output'
        options(end+1, :) = {'output-index', sprintf('%d', value)};
      case 'Performance'
        options(end+1, :) = {'performance', validatestring(value, performance_names())};
      case 'Normalization'
        options(end+1, :) = {'normalization', ...
                             validatestring(value, {'none', 'standard', 'percent'})};
      case 'Regularization'
        options(end+1, :) = {'regularization', sprintf('%.17g', value)};
      case 'Convention'
        options(end+1, :) = {'convention', validatestring(value, {'math', 'matlab'})};
      case 'WbOrder'
        options(end+1, :) = {'wb-order', validatestring(value, {'bias-first', 'bias-last'})};
      case 'Prepare'
        if value
          options(end+1, :) = {'prepare', ''};
        end
      case 'ClosedLoop'
        if value
          options(end+1, :) = {'closed-loop', ''};
        end
      case 'Steps'
        options(end+1, :) = {'steps', sprintf('%d', value)};
      case 'Form'
        options(end+1, :) = {'form', validatestring(value, {'full', 'step', 'sum'})};
      case 'MaxLag'
        options(end+1, :) = {'max-lag', sprintf('%d', value)};
      case {'ErrorWeights', 'Targets', 'Xi', 'Ai', 'KnownInputs', 'KnownTargets', ...
            'OutputWeights'}
        variable = struct('ErrorWeights', 'EW', 'Targets', 'T', 'Xi', 'Xi', 'Ai', 'Ai', ...
                          'KnownInputs', 'X1', 'KnownTargets', 'T1', 'OutputWeights', 'W');
        options(end+1, :) = {variable.(names{k}), value};
      case 'Tol'
        options(end+1, :) = {'tol', sprintf('%.17g', value)};
      case 'Wrt'
        if ischar(value)
          value = {value};
        end
        for j = 1:numel(value)
          options(end+1, :) = {'wrt', value{j}}; %#ok<AGROW>
        end
    end
  end
end

function validator = make_validator(name, where)
  validator = @(value) check_value(name, value, where);
end

function ok = check_value(name, value, where)
  switch name
    case {'Network', 'Device'}
      validateattributes(value, {'char'}, {'row', 'nonempty'}, where, name);
    case 'Wrt'
      if iscell(value)
        for j = 1:numel(value)
          validateattributes(value{j}, {'char'}, {'row', 'nonempty'}, where, name);
        end
      else
        validateattributes(value, {'char'}, {'row', 'nonempty'}, where, name);
      end
    case 'Samples'
      validatestring(value, {'columns', 'rows'}, where, name);
    case 'DataType'
      validatestring(value, {'double', 'single'}, where, name);
    case 'Mode'
      validatestring(value, {'auto', 'rev', 'fwd'}, where, name);
    case 'Layout'
      validatestring(value, {'matlab', 'onnx'}, where, name);
    case 'Performance'
      validatestring(value, performance_names(), where, name);
    case 'Normalization'
      validatestring(value, {'none', 'standard', 'percent'}, where, name);
    case 'Convention'
      validatestring(value, {'math', 'matlab'}, where, name);
    case 'WbOrder'
      validatestring(value, {'bias-first', 'bias-last'}, where, name);
    case 'Regularization'
      validateattributes(value, {'numeric'}, {'scalar', 'real', '>=', 0, '<=', 1}, where, name);
    case 'ErrorWeights'
      validateattributes(value, {'numeric', 'logical'}, {'2d', 'real', 'nonnegative'}, ...
                         where, name);
    case {'ChunkSize', 'Output', 'Steps'}
      validateattributes(value, {'numeric'}, {'scalar', 'integer', 'positive'}, where, name);
    case {'Prepare', 'ClosedLoop'}
      validateattributes(value, {'logical', 'numeric'}, {'scalar', 'binary'}, where, name);
    case 'Form'
      validatestring(value, {'full', 'step', 'sum'}, where, name);
    case 'MaxLag'
      validateattributes(value, {'numeric'}, {'scalar', 'integer', 'nonnegative'}, where, name);
    case {'Targets', 'Xi', 'Ai', 'KnownInputs', 'KnownTargets', 'OutputWeights'}
      if ~(isnumeric(value) || islogical(value) || iscell(value))
        error('%s: %s must be a numeric matrix or a cell of them; found a %s', where, ...
              name, class(value));
      end
    case 'Tol'
      validateattributes(value, {'numeric'}, {'scalar', 'real', 'positive', 'finite'}, ...
                         where, name);
  end
  ok = true;
end

function names = performance_names()
  names = {'mse', 'sse', 'mae', 'sae', 'crossentropy'};
end

function text = ifelse_text(condition, a, b)
  if condition
    text = a;
  else
    text = b;
  end
end

%!test
%! o = parse_options ('jacobian', {'Network', 'Mode', 'ChunkSize', 'DataType', 'Samples'}, ...
%!                    {'mode', 'REV', 'ChunkSize', 64, 'DataType', 'single', 'Samples', 'ro'});
%! assert (o, {'mode', 'rev'; 'chunk-size', '64'; 'dtype', 'float32'; 'samples', 'rows'});
%!test
%! o = parse_options ('jacobian', {'Wrt', 'Layout'}, {'Wrt', {'h0', 'c0'}, 'Layout', 'ON'});
%! assert (o, {'wrt', 'h0'; 'wrt', 'c0'; 'layout', 'onnx'});
%! o = parse_options ('jacobian', {'Wrt'}, {'wrt', 'x'});
%! assert (o, {'wrt', 'x'});
%!error <Wrt> parse_options ('jacobian', {'Wrt'}, {'Wrt', {'a', 3}})
%!test
%! o = parse_options ('check', {'Tol'}, {'Tol', 1e-9});
%! assert (str2double (o{1, 2}), 1e-9);
%!test
%! assert (size (parse_options ('predict', {'Network', 'Samples'}, {})), [0 2]);
%!error <ChunkSize> parse_options ('jacobian', {'ChunkSize'}, {'ChunkSize', 0})
%!test
%! o = parse_options ('jacobian', {'Device'}, {'device', 'CUDA:1'});
%! assert (o, {'device', 'cuda:1'});
%!error <Device> parse_options ('jacobian', {'Device'}, {'Device', 1})
%!error <ChunkSize> parse_options ('jacobian', {'ChunkSize'}, {'ChunkSize', 2.5})
%!error <Mode> parse_options ('jacobian', {'Mode'}, {'Mode', 'sideways'})
%!test
%! o = parse_options ('grad', {'Regularization', 'WbOrder', 'ErrorWeights'}, ...
%!                    {'WbOrder', 'bias-l', 'Regularization', 0.25, 'ErrorWeights', [1 2]});
%! assert (o, {'regularization', '0.25'; 'wb-order', 'bias-last'; 'EW', [1 2]});
%!test
%! o = parse_options ('predict', {'Xi', 'Prepare', 'ClosedLoop', 'Steps', 'Targets'}, ...
%!                    {'Xi', {1, 2}, 'Prepare', true, 'ClosedLoop', false, 'Targets', [1 2]});
%! assert (o, {'Xi', {1, 2}; 'prepare', ''; 'T', [1 2]});
%!test
%! o = parse_options ('jacobian', {'Form', 'MaxLag', 'OutputWeights'}, ...
%!                    {'Form', 'st', 'MaxLag', 0, 'OutputWeights', {1}});
%! assert (o, {'form', 'step'; 'max-lag', '0'; 'W', {1}});
%!error <Targets must be> parse_options ('predict', {'Targets'}, {'Targets', 'abc'})
%!error <Regularization> parse_options ('grad', {'Regularization'}, {'Regularization', 2})
%!error parse_options ('predict', {'Network'}, {'Mode', 'rev'})
%!error parse_options ('predict', {'Network'}, {'Network'})
