function S = mat2grad_sensitivity(net, X, varargin)
%MAT2GRAD_SENSITIVITY   Which inputs of a trained network matter, by how much, with what confidence.
%   S = MAT2GRAD_SENSITIVITY(NET, X) returns statistics of the exact derivatives
%   D(k,i,q) = dY(k,q)/dX(i,q) over the samples (columns) of X, in raw units through all
%   processing (NeuralSens' definitions):
%     S.mean      S-by-R  mean of D over the samples
%     S.std       S-by-R  standard deviation of D (population: divides by Q; 'Std', 'sample'
%                         divides by Q-1, as std(D, 0, 3))
%     S.rms       S-by-R  sqrt(mean(D.^2)), NeuralSens' meanSensSQ
%     S.mean_abs  S-by-R  mean of abs(D)
%     S.inputs, S.outputs  names (cellstr) of the inputs and outputs, S.num_samples, S.settings
%   Row k and column i are output k and input i, so one line makes a table:
%     T = array2table(S.rms, 'RowNames', S.outputs, 'VariableNames', S.inputs)
%   Statistics are accumulated chunk by chunk: memory does not grow with the samples.
%
%   S = MAT2GRAD_SENSITIVITY(NET, X, Name, Value) sets options:
%     'Scale'        'none' (default), 'std' (D .* std(x_i) ./ std(y_k)) or 'range'
%                    (D .* range of x_i ./ range of y_k, the ranges the network recorded in
%                    training): inputs in different units become comparable
%     'Std'          'population' (default) or 'sample'
%     'Bootstrap'    number of bootstrap replicates: adds S.<stat>_low, S.<stat>_high
%                    (95% percentile intervals)
%     'Seed'         seed of the bootstrap (default 0)
%     'Interactions' true: S.interactions, summaries of the second derivatives
%                    (mean, mean_abs, std, rms, each S-by-R-by-R)
%     'DGSM'         N: S.dgsm, derivative-based global sensitivity measures (SALib's
%                    definition) over N samples drawn uniformly in the recorded input ranges
%     'Weights'      true: S.weights, Garson's and Olden's weight-based importance
%                    (one-hidden-layer networks; for comparison)
%     'Committee'    true: every network in the file NET, pooled, with S.<stat>_spread
%                    (across networks) and S.<stat>_networks (S-by-R-by-M)
%     'Plot'         true: draw the charts with MATLAB's graphics (mean against std, rms
%                    bars with intervals, lag or interaction heat maps)
%     'Network', 'Samples', 'DataType', 'ChunkSize', 'MaxLag', 'Device'  as for
%                MAT2GRAD_JACOBIAN
%   To save the charts to a file instead, run the command line's mat2grad sens ... --plot
%   S.png (matplotlib).
%
%   For networks with tapped delays or feedback, X is a numInputs-by-TS cell of R-by-Q
%   matrices; the statistics are per delay, S-by-R-by-(L+1) (S.rms(:,:,d+1) for lag d),
%   and S.rms_total (S-by-R) sums over the delays.
%
%   Example:
%     [x, t] = bodyfat_dataset;
%     net = train(fitnet(10), x, t);
%     S = mat2grad_sensitivity(net, x, 'Scale', 'std', 'Bootstrap', 200);
%     array2table(S.rms', 'RowNames', S.inputs, 'VariableNames', S.outputs)
%
%   Errors (identifiers mat2grad:sensitivity:*) carry mat2grad's message.
%
%   See also MAT2GRAD_JACOBIAN, MAT2GRAD_HESSIAN.

  if nargin < 2
    error('mat2grad:sensitivity:nargin', ...
          'mat2grad: usage: S = mat2grad_sensitivity(NET, X, ...)');
  end
  [own, rest] = split_options(varargin);
  options = parse_options('sensitivity', {'Network', 'Samples', 'DataType', 'ChunkSize', ...
                                          'MaxLag', 'Device'}, rest);
  if is_octave()
    options(end+1, :) = {'format', 'v7'};  % Octave cannot read MAT v7.3 (HDF5) files
  end
  options = [options; own.cli];
  check_data('sensitivity', X, 'X', is_onnx_path(net));
  data = struct();
  data.X = X;
  result = call_cli('sens', net, data, options, true);
  S = result.S;
  if own.plot
    draw(S);
  end
end

function [own, rest] = split_options(args)
% The options of this helper alone, as CLI options; the others go to PARSE_OPTIONS.
  own.cli = cell(0, 2);
  own.plot = false;
  rest = {};
  if mod(numel(args), 2) ~= 0
    error('mat2grad:sensitivity:options', 'mat2grad: options come in Name, Value pairs');
  end
  for k = 1:2:numel(args)
    name = args{k};
    value = args{k + 1};
    if ~ischar(name)
      error('mat2grad:sensitivity:options', 'mat2grad: option names must be char');
    end
    switch lower(name)
      case 'scale'
        value = validatestring(value, {'none', 'std', 'range'}, 'mat2grad_sensitivity', 'Scale');
        if ~strcmp(value, 'none')
          own.cli(end+1, :) = {'scale', value};
        end
      case 'std'
        value = validatestring(value, {'population', 'sample'}, 'mat2grad_sensitivity', 'Std');
        if strcmp(value, 'sample')
          own.cli(end+1, :) = {'ddof', '1'};
        end
      case {'bootstrap', 'seed', 'dgsm'}
        validateattributes(value, {'numeric'}, {'scalar', 'integer', 'nonnegative'}, ...
                           'mat2grad_sensitivity', name);
        own.cli(end+1, :) = {lower(name), sprintf('%d', value)};
      case {'interactions', 'weights', 'committee'}
        validateattributes(value, {'logical', 'numeric'}, {'scalar'}, ...
                           'mat2grad_sensitivity', name);
        if value
          own.cli(end+1, :) = {lower(name), ''};
        end
      case 'plot'
        validateattributes(value, {'logical', 'numeric'}, {'scalar'}, ...
                           'mat2grad_sensitivity', name);
        own.plot = logical(value);
      otherwise
        rest(end+1:end+2) = {name, value};
    end
  end
end

function draw(S)
% NeuralSens' charts with MATLAB's (or Octave's) own graphics, one figure per chart.
  names = cellstr(S.inputs);
  outs = cellstr(S.outputs);
  if strcmp(char(S.kind), 'lags')
    for k = 1:numel(outs)
      figure('Name', ['lags: ' outs{k}]);
      imagesc(0:size(S.rms, 3) - 1, 1:numel(names), squeeze(S.rms(k, :, :)));
      colorbar; xlabel('delay d'); title([outs{k} ': rms by delay']);
      set(gca, 'YTick', 1:numel(names), 'YTickLabel', names);
    end
    return
  end
  figure('Name', 'mean against std');
  for k = 1:numel(outs)
    subplot(1, numel(outs), k);
    plot(S.mean(k, :), S.std(k, :), 'o');
    text(S.mean(k, :), S.std(k, :), names);
    xlabel('mean'); ylabel('std'); title(outs{k});
  end
  figure('Name', 'rms');
  for k = 1:numel(outs)
    subplot(1, numel(outs), k);
    bar(S.rms(k, :));
    hold on
    if isfield(S, 'rms_low')
      errorbar(1:numel(names), S.rms(k, :), S.rms(k, :) - S.rms_low(k, :), ...
               S.rms_high(k, :) - S.rms(k, :), 'k.');
    end
    hold off
    set(gca, 'XTick', 1:numel(names), 'XTickLabel', names);
    ylabel('rms'); title(outs{k});
  end
  if isfield(S, 'interactions')
    figure('Name', 'interactions');
    for k = 1:numel(outs)
      subplot(1, numel(outs), k);
      imagesc(squeeze(S.interactions.mean_abs(k, :, :)));
      colorbar; title([outs{k} ': mean |d2y/dxidxj|']);
    end
  end
end

%!shared net, X
%! [net, X] = m2g_test_net ();

%!testif ; m2g_test_has ('sens')
%! % the mean, rms and std equal those of mat2grad_jacobian's Jacobians over the samples
%! S = mat2grad_sensitivity (net, X);
%! J = mat2grad_jacobian (net, X);
%! m2g_test_close (S.mean, mean (J, 3), 1e-12);
%! m2g_test_close (S.rms, sqrt (mean (J .^ 2, 3)), 1e-12);
%! m2g_test_close (S.mean_abs, mean (abs (J), 3), 1e-12);
%! m2g_test_close (S.std, std (J, 1, 3), 1e-12);
%! assert (numel (S.inputs), size (X, 1));
%! assert (numel (S.outputs), size (J, 1));
%! assert (S.num_samples, size (X, 2));
%! assert (S.settings.std, 'population');

%!testif ; m2g_test_has ('sens')
%! % the numbers are the command line's: mat2grad sens on the same network and data
%! folder = tempname ();
%! mkdir (folder);
%! cleaner = onCleanup (@() m2g_test_rmdir (folder));
%! data = fullfile (folder, 'data.mat');
%! save ('-v7', data, 'net', 'X');
%! out = fullfile (folder, 'S.mat');
%! [status, text] = system (sprintf (['"%s" -m mat2grad sens "%s" --network net --inputs "%s"' ...
%!                                    ' --inputs-var X --scale std --ddof 1 -o "%s"'], ...
%!                                   getenv ('MAT2GRAD_PYTHON'), data, data, out));
%! assert (status, 0, text);
%! C = load (out);
%! S = mat2grad_sensitivity (net, X, 'Scale', 'std', 'Std', 'sample');
%! for name = {'mean', 'std', 'rms', 'mean_abs'}
%!   m2g_test_close (S.(name{1}), C.S.(name{1}), 1e-12);
%! end
%! assert (S.inputs, C.S.inputs);
%! assert (S.settings.scale, 'std');

%!testif ; m2g_test_has ('sens')
%! % the sample std, bootstrap intervals, samples in rows
%! S = mat2grad_sensitivity (net, X', 'Samples', 'rows', 'Std', 'sample', 'Bootstrap', 20);
%! J = mat2grad_jacobian (net, X);
%! m2g_test_close (S.std, std (J, 0, 3), 1e-12);
%! assert (all (S.rms_low(:) <= S.rms_high(:)));
%! assert (S.settings.bootstrap, 20);

%!testif ; m2g_test_has ('sens') && ! isempty (available_graphics_toolkits ())
%! % the charts draw headless with Octave's own graphics: one figure per chart, one axes
%! % per output, the heat maps showing S.interactions.mean_abs
%! set (0, 'DefaultFigureVisible', 'off');
%! closer = onCleanup (@() close ('all'));
%! close ('all');
%! S = mat2grad_sensitivity (net, X, 'Plot', true, 'Interactions', true, 'Bootstrap', 10);
%! assert (size (S.interactions.mean_abs), [2 5 5]);
%! names = get (findall (0, 'type', 'figure'), 'name');
%! assert (sort (names), sort ({'mean against std'; 'rms'; 'interactions'}));
%! assert (numel (findall (findall (0, 'name', 'rms'), 'type', 'axes')), 2);
%! images = findall (findall (0, 'name', 'interactions'), 'type', 'image');
%! images = images(cellfun (@(c) isequal (size (c), [5 5]), get (images, 'cdata')));  % not colorbars
%! assert (numel (images), 2);
%! for k = 1:2
%!   shown = get (images(k), 'cdata');
%!   assert (any (arrayfun (@(o) isequal (shown, squeeze (S.interactions.mean_abs(o, :, :))), 1:2)));
%! end

%!error <usage> mat2grad_sensitivity (1)
%!error <Scale> mat2grad_sensitivity ('net.mat', 1, 'Scale', 'sideways')
%!error <Bootstrap> mat2grad_sensitivity ('net.mat', 1, 'Bootstrap', -1)
%!error <Name, Value> mat2grad_sensitivity ('net.mat', 1, 'Bootstrap')
