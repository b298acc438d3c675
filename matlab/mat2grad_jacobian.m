function [J, Y] = mat2grad_jacobian(net, X, varargin)
%MAT2GRAD_JACOBIAN   Jacobian of a trained network's outputs with respect to its inputs.
%   [J, Y] = MAT2GRAD_JACOBIAN(NET, X) returns, for every sample (column) of X, the
%   derivative of the network's outputs with respect to its inputs: J(:,:,q) is
%   dY(:,q)/dX(:,q), computed exactly by automatic differentiation (PyTorch) through the
%   whole network, including the input processing (mapminmax, removeconstantrows, ...)
%   and the reverse output processing: the units are those of X and Y. Rows of X that
%   removeconstantrows dropped get zero columns. Y is the network's output, as sim gives.
%
%   [J, Y] = MAT2GRAD_JACOBIAN(NET, X, Name, Value) sets options:
%     'Network'    path of the network inside a MAT-file holding several, as MATLAB
%                  would write it: 'net1', 'S.net', 'STATE.network.values{1}'
%     'Samples'    'columns' (default): X is R-by-Q, J is S-by-R-by-Q and Y is S-by-Q;
%                  'rows': X is Q-by-R, J is Q-by-S-by-R and Y is Q-by-S
%     'Mode'       'auto' (default), 'rev' (reverse mode, best when S < R) or 'fwd'
%                  (forward mode, best when R < S): the same numbers, different speed
%     'ChunkSize'  samples processed at a time (bounds the memory; default: automatic)
%     'DataType'   'double' (default) or 'single': the precision of the computation
%     'Layout'     ONNX files only: 'matlab' or 'onnx' data layout
%
%   For networks with tapped delays or feedback (timedelaynet, narxnet, layrecnet), X is a
%   numInputs-by-TS cell of R-by-Q matrices (Q series), or one R-by-TS matrix, and the
%   derivatives run through time:
%     'Form'       'full' (default): J(:,:,t,u,q) = dY{t}(:,q)/dX{u}(:,q), an
%                  S-by-R-by-TS-by-TS-by-Q array (zero for u > t); 'step': J(:,:,t,d+1,q) =
%                  dY{t}/dX{t-d} for the lags d = 0..'MaxLag'; 'sum': the gradient of the
%                  sum of all outputs over the sequence (or of sum(W .* Y) with
%                  'OutputWeights', W), in the layout of X
%     'MaxLag'     largest lag of 'step' (default: numInputDelays)
%     'OutputWeights'  W, like Y: the weights of the outputs summed by 'sum'
%     'Xi', 'Ai', 'Targets', 'Prepare', 'ClosedLoop', 'KnownInputs', 'KnownTargets',
%     'Steps'      the run to differentiate, as for MAT2GRAD_PREDICT
%
%   Inputs:
%     NET  a network object (MATLAB), a struct with the fields of one (GNU Octave, or
%          struct(net)), the path of a .mat file holding a saved network, or the path
%          of an .onnx file
%     X    R-by-Q real matrix of raw inputs, one column per sample; for a network with
%          several inputs, a cell with one such matrix per input
%
%   Outputs:
%     J    S-by-R-by-Q double array; for a network with several inputs or outputs, a
%          numOutputs-by-numInputs cell of S_i-by-R_j-by-Q arrays
%     Y    S-by-Q double matrix of outputs (a numOutputs-by-1 cell for several outputs)
%
%   Example:
%     [x, t] = bodyfat_dataset;                % 13 inputs, 1 output, 252 samples
%     net = train(fitnet(10), x, t);
%     [J, Y] = mat2grad_jacobian(net, x);      % J is 1-by-13-by-252
%     sensitivity = squeeze(mean(abs(J), 3));  % mean |dy/dx_r| per input
%
%   Errors (identifiers mat2grad:jacobian:*) carry mat2grad's message: 'failed' for a
%   problem with the network or the data, 'python' when Python or mat2grad cannot be
%   started. Networks with hardlim, hardlims or compet layers get a warning: their
%   derivative is zero almost everywhere.
%
%   See also MAT2GRAD_HESSIAN, MAT2GRAD_CHECK, MAT2GRAD_PREDICT, MAT2GRAD_GRAD.

  if nargin < 2
    error('mat2grad:jacobian:nargin', 'mat2grad: usage: [J, Y] = mat2grad_jacobian(NET, X, ...)');
  end
  options = parse_options('jacobian', {'Network', 'Samples', 'Mode', 'ChunkSize', ...
    'DataType', 'Layout', 'Form', 'MaxLag', 'OutputWeights', 'Xi', 'Ai', 'Targets', ...
    'Prepare', 'ClosedLoop', 'KnownInputs', 'KnownTargets', 'Steps'}, varargin);
  if is_octave()
    options(end+1, :) = {'format', 'v7'};  % Octave cannot read MAT v7.3 (HDF5) files
  end
  check_data('jacobian', X, 'X');
  data = struct();
  data.X = X;
  result = call_cli('jacobian', net, data, options, true);
  if isfield(result, 'dX')
    J = result.dX;   % 'Form', 'sum': a gradient in the layout of X
  else
    J = result.J;
  end
  Y = result.Y;
end

%!shared net, X, Yref
%! [net, X] = m2g_test_net ();
%! Yref = m2g_test_forward (net, X);

%!test
%! % the network struct built in Octave, against complex-step differentiation of the
%! % forward pass written in Octave (a finite difference without cancellation error)
%! [J, Y] = mat2grad_jacobian (net, X);
%! assert (size (J), [2 5 7]);
%! m2g_test_close (Y, Yref, 1e-12);
%! m2g_test_close (J, m2g_test_jacobian (net, X), 1e-12);
%! assert (all (all (J(:, 3, :) == 0)));   % the constant row removed by removeconstantrows

%!test
%! % options reach the command line: reverse mode, chunks of 3, samples in rows
%! [J, Y] = mat2grad_jacobian (net, X', 'Mode', 'rev', 'ChunkSize', 3, 'Samples', 'rows');
%! assert (size (J), [7 2 5]);
%! m2g_test_close (Y, Yref', 1e-12);
%! m2g_test_close (J, permute (m2g_test_jacobian (net, X), [3 1 2]), 1e-12);

%!test
%! % two inputs and two outputs: J is a numOutputs-by-numInputs cell of blocks
%! [net2, X2] = m2g_test_net ('multi');
%! [J, Y] = mat2grad_jacobian (net2, X2);
%! Jref = m2g_test_jacobian (net2, X2);
%! assert (size (J), [2 2]);
%! assert (size (Y), [2 1]);
%! for k = 1:4
%!   m2g_test_close (J{k}, Jref{k}, 1e-12);
%! end

%!testif ; ~isempty (m2g_test_corpus ())
%! % a MATLAB-saved network from the corpus, by file path: central finite differences
%! % of MATLAB's own outputs computed by mat2grad_predict in one batch
%! file = fullfile (m2g_test_corpus (), 'shallow', 'abj247_ann.mat');
%! S = m2g_test_load (file, 'i', 'fg_outputs');
%! [J, Y] = mat2grad_jacobian (file, S.i, 'Network', 'fg', 'Mode', 'fwd');
%! m2g_test_close (Y, S.fg_outputs, 1e-12);
%! [R, Q] = size (S.i);
%! h = 1e-6 * max (abs (S.i), [], 2);
%! plus = zeros (R, Q, R);  minus = plus;
%! for r = 1:R
%!   plus(:, :, r) = S.i;  plus(r, :, r) = S.i(r, :) + h(r);
%!   minus(:, :, r) = S.i;  minus(r, :, r) = S.i(r, :) - h(r);
%! end
%! Yfd = mat2grad_predict (file, [reshape(plus, R, []), reshape(minus, R, [])], 'Network', 'fg');
%! Yfd = reshape (Yfd, [], Q, R, 2);
%! Jfd = permute ((Yfd(:, :, :, 1) - Yfd(:, :, :, 2)) ./ reshape (2 * h, 1, 1, R), [1 3 2]);
%! m2g_test_close (J, Jfd, 1e-7);

%!test
%! % a network with tapped delays (timedelaynet, 3 series of 14 steps), 'Form', 'sum':
%! % dX{t}(r,q) = d sum(all outputs of series q) / dX{t}(r,q), against central finite
%! % differences of mat2grad_predict, every perturbed series side by side in one call
%! file = m2g_test_fixture ('timedelaynet.mat');
%! S = m2g_test_load (file, 'X', 'Xi', 'Ai');
%! [dX, Y] = mat2grad_jacobian (file, S.X, 'Xi', S.Xi, 'Ai', S.Ai, 'Form', 'sum');
%! assert (size (dX), size (S.X));
%! [R, Q] = size (S.X{1});  TS = numel (S.X);  h = 1e-6;
%! n = R * TS;                                   % perturbations, each on all Q series
%! Xp = cellfun (@(x) repmat (x, 1, 2 * n), S.X, 'UniformOutput', false);
%! for k = 1:n
%!   [r, t] = ind2sub ([R TS], k);
%!   plus = (k - 1) * Q + (1:Q);  minus = (n + k - 1) * Q + (1:Q);   % columns of block k
%!   Xp{t}(r, plus) = Xp{t}(r, plus) + h;
%!   Xp{t}(r, minus) = Xp{t}(r, minus) - h;
%! end
%! Xip = cellfun (@(x) repmat (x, 1, 2 * n), S.Xi, 'UniformOutput', false);
%! Yp = mat2grad_predict (file, Xp, 'Xi', Xip, 'Ai', cell (2, 0));
%! total = sum (sum (reshape (cell2mat (Yp), [], Q, 2 * n, TS), 1), 4);   % per series
%! fd = (total(:, :, 1:n) - total(:, :, n + 1:end)) / (2 * h);      % 1 x Q x n
%! fd = permute (reshape (fd, Q, R, TS), [2 1 3]);                  % R x Q x TS
%! m2g_test_close (cat (3, dX{:}), fd, 1e-7);

%!error <usage> mat2grad_jacobian (1)
%!error <Mode> mat2grad_jacobian ('net.mat', 1, 'Mode', 'sideways')
%!error <ChunkSize> mat2grad_jacobian ('net.mat', 1, 'ChunkSize', -1)
