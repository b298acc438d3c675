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
%     'Device'     'cpu' (default), 'cuda', 'cuda:N' or 'mps': where PyTorch computes,
%                  if it sees that device (static networks); results come back as usual
%
%   ONNX models (NET the path of an .onnx file) take X as MAT2GRAD_PREDICT does (features
%   C-by-N, images H-by-W-by-C-by-N, sequences C-by-N-by-T; a cell for several inputs).
%   J(:,:,n) is S-by-R, S and R the numbers of elements of one output and one input
%   sample, each in MATLAB's column-major order of the sample as MATLAB holds it, so
%   reshape(J(s,:,n), H, W, C) is the gradient image of output s for image n. Y is as
%   MAT2GRAD_PREDICT returns it. For several outputs or differentiated inputs J is a
%   numOutputs-by-numel(Wrt) cell.
%     'Wrt'        name (char) or names (cellstr) of the inputs to differentiate with
%                  respect to (mat2grad_info lists them); default: every floating input
%     'Layout'     'matlab' (default, as above) or 'onnx': X batch-first as the file
%                  declares it (N-by-C-by-H-by-W, ...), J N-by-(output shape)-by-(input
%                  shape) and Y N-by-(output shape)
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
%     [J, Y] = mat2grad_jacobian('cnn.onnx', XTest);  % XTest 28-by-28-by-1-by-N
%     G = reshape(J(3, :, 1), 28, 28, 1);      % d(output 3)/d(pixels) of image 1
%     imagesc(G); axis image; colorbar
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
    'DataType', 'Device', 'Layout', 'Wrt', 'Form', 'MaxLag', 'OutputWeights', 'Xi', 'Ai', ...
    'Targets', 'Prepare', 'ClosedLoop', 'KnownInputs', 'KnownTargets', 'Steps'}, varargin);
  if is_octave()
    options(end+1, :) = {'format', 'v7'};  % Octave cannot read MAT v7.3 (HDF5) files
  end
  check_data('jacobian', X, 'X', is_onnx_path(net));
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
%! % the compute device reaches the command line: the CPU named computes as the default;
%! % a device torch cannot use is one error saying so
%! [J, Y] = mat2grad_jacobian (net, X, 'Device', 'cpu');
%! m2g_test_close (Y, Yref, 1e-12);
%! m2g_test_close (J, m2g_test_jacobian (net, X), 1e-12);
%! try
%!   mat2grad_jacobian (net, X, 'Device', 'gpu');
%!   error ('no error for Device gpu');
%! catch err
%!   assert (! isempty (strfind (err.message, '--device must be cpu, cuda')), err.message);
%! end

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

%!testif ; ~isempty (m2g_test_corpus ())
%! % an ONNX file exported by MATLAB (R2020a, features 1x1x1x3 -> 9), by path: against
%! % central differences of mat2grad_predict, every perturbed column in one call
%! file = fullfile (m2g_test_corpus (), 'onnx', 'matlab_archcomp_vertcas.onnx');
%! x = [0.2 -0.5 0.9 0.1; 0.7 0.3 -0.8 -0.2; -0.4 0.6 0.05 0.5];
%! J = mat2grad_jacobian (file, x);
%! assert (size (J), [9 3 4]);
%! Jfd = m2g_test_fd (@(xx) mat2grad_predict (file, xx), x, 1e-6);
%! m2g_test_close (J, Jfd, 1e-7);

%!test
%! % an ONNX file exported by MATLAB (R2020a, image 4x3x1 -> softmax 3): J(:,:,n) is
%! % 3-by-12, its columns the pixels of the 4-by-3-by-1 image in column-major order, so
%! % central differences of the images perturbed pixel by pixel give it directly
%! file = m2g_test_fixture (fullfile ('onnx', 'matlab2020a_conv_fc_dropout.onnx'));
%! images = reshape (cos (1:24), 4, 3, 1, 2);
%! [J, Y] = mat2grad_jacobian (file, images);
%! assert (size (J), [3 12 2]);
%! assert (size (Y), [3 2]);
%! flat = @(xx) reshape (xx, 12, []);                      % images -> pixels x N
%! Jfd = m2g_test_fd (@(p) mat2grad_predict (file, reshape (p, 4, 3, 1, [])), flat (images), 1e-6);
%! m2g_test_close (J, Jfd, 1e-6);
%! G = reshape (J(2, :, 1), 4, 3, 1);                      % the gradient image of output 2
%! m2g_test_close (G(3, 2), Jfd(2, 3 + 4 * (2 - 1), 1), 1e-6);
%! % batch-first ('Layout', 'onnx'): X N x C x H x W, J N x S x C x H x W
%! [Jb, Yb] = mat2grad_jacobian (file, permute (images, [4 3 1 2]), 'Layout', 'onnx');
%! assert (size (Jb), [2 3 1 4 3]);
%! m2g_test_close (Yb, Y', 1e-12);
%! m2g_test_close (reshape (permute (Jb, [2 4 5 3 1]), 3, 12, 2), J, 1e-12);

%!testif ; ~isempty (m2g_test_corpus ())
%! % an LSTM with h0/c0 inputs (PyTorch 0.3): a cell of inputs X (C x N x T), h0, c0
%! % (C x N); 'Wrt' picks the inputs: J is numOutputs-by-numel(Wrt)
%! file = fullfile (m2g_test_corpus (), 'onnx', 'pytorch03_colisaar_lstm.onnx');
%! seq = reshape (sin (1:30), 3, 2, 5);
%! states = {seq, [0.1 -0.2; 0.3 0.0; -0.1 0.2], [0.5 0.1; -0.3 0.2; 0.0 0.4]};
%! [J, Y] = mat2grad_jacobian (file, states, 'Wrt', {'1', '2'});
%! assert (size (J), [3 2]);
%! assert (size (Y), [3 1]);
%! assert (size (Y{1}), [3 2 5]);
%! assert (size (J{1, 1}), [15 3 2]);     % output 1: C x T = 3 x 5 per sample; h0: 3
%! % central differences along h0 (input '1'), the other inputs repeated alongside
%! copies = @(h) size (h, 2) / 2;          % perturbed columns per sample (N = 2)
%! Jfd = m2g_test_fd (@(h) mat2grad_predict (file, {repmat(seq, 1, copies (h)), h, ...
%!                    repmat(states{3}, 1, copies (h))}), states{2}, 1e-6);
%! for k = 1:3
%!   m2g_test_close (J{k, 1}, Jfd{k}, 1e-7);
%! end

%!error <usage> mat2grad_jacobian (1)
%!error <Mode> mat2grad_jacobian ('net.mat', 1, 'Mode', 'sideways')
%!error <ChunkSize> mat2grad_jacobian ('net.mat', 1, 'ChunkSize', -1)
%!error <Wrt> mat2grad_jacobian ('net.onnx', 1, 'Wrt', 2)
