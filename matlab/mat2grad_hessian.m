function H = mat2grad_hessian(net, X, varargin)
%MAT2GRAD_HESSIAN   Second derivatives of one network output with respect to the inputs.
%   H = MAT2GRAD_HESSIAN(NET, X) returns, for every sample (column) of X, the Hessian of
%   the network's output with respect to its inputs: H(:,:,q) is the R-by-R matrix of
%   d2Y(1,q)/dX(i,q)dX(j,q), by automatic differentiation through the whole network
%   (input processing and reverse output processing included, in the units of X and Y).
%
%   H = MAT2GRAD_HESSIAN(NET, X, Name, Value) sets options:
%     'Output'     which output element (row of Y) to differentiate; default 1
%     'Network'    path of the network inside a MAT-file holding several ('net1', 'S.net')
%     'Samples'    'columns' (default): X is R-by-Q and H is R-by-R-by-Q; 'rows': X is
%                  Q-by-R and H is Q-by-R-by-R
%     'ChunkSize'  samples processed at a time (bounds the memory; default: automatic)
%     'DataType'   'double' (default) or 'single': the precision of the computation
%     'Device'     'cpu' (default), 'cuda', 'cuda:N' or 'mps', as for MAT2GRAD_JACOBIAN
%
%   ONNX models (NET the path of an .onnx file, one output) take X as MAT2GRAD_PREDICT
%   does (features C-by-N, images H-by-W-by-C-by-N, sequences C-by-N-by-T). H(:,:,n) is
%   R-by-R, R the elements of one input sample in MATLAB's column-major order (as for
%   MAT2GRAD_JACOBIAN), and 'Output' counts the elements of one output sample in the same
%   order (C-by-T column-major for a sequence output).
%     'Wrt'        the input to differentiate with respect to (its name); needed when the
%                  model has several floating inputs
%     'Layout'     'matlab' (default, as above) or 'onnx': X batch-first as the file
%                  declares it, H N-by-(input shape)-by-(input shape), 'Output' in the
%                  file's (row-major) element order
%
%   Inputs:
%     NET  a network object (MATLAB), a struct with the fields of one (GNU Octave), the
%          path of a .mat file holding a saved network, or the path of an .onnx file
%     X    R-by-Q real matrix of raw inputs, one column per sample
%
%   Outputs:
%     H    R-by-R-by-Q double array, symmetric in its first two dimensions
%
%   Example:
%     [x, t] = simplefit_dataset;              % 1 input, 1 output
%     net = train(fitnet(10), x, t);
%     H = mat2grad_hessian(net, x);            % 1-by-1-by-94: the curvature of net(x)
%     plot(x, squeeze(H))
%
%   Errors (identifiers mat2grad:hessian:*) carry mat2grad's message.
%
%   See also MAT2GRAD_JACOBIAN, MAT2GRAD_CHECK, MAT2GRAD_PREDICT.

  if nargin < 2
    error('mat2grad:hessian:nargin', 'mat2grad: usage: H = mat2grad_hessian(NET, X, ...)');
  end
  options = parse_options('hessian', ...
    {'Output', 'Network', 'Samples', 'ChunkSize', 'DataType', 'Device', 'Layout', 'Wrt'}, ...
    varargin);
  check_data('hessian', X, 'X', is_onnx_path(net));
  data = struct();
  data.X = X;
  result = call_cli('hessian', net, data, options, true);
  H = result.H;
end

%!shared net, X
%! [net, X] = m2g_test_net ();

%!test
%! % the network struct built in Octave: the Hessian of output row 2 against central
%! % differences of the complex-step Jacobian of the forward pass written in Octave
%! H = mat2grad_hessian (net, X, 'Output', 2);
%! assert (size (H), [5 5 7]);
%! m2g_test_close (H, m2g_test_hessian (net, X, 2), 1e-7);
%! m2g_test_close (H, permute (H, [2 1 3]), 1e-12);
%! assert (all (all (H(3, :, :) == 0)) && all (all (H(:, 3, :) == 0)));  % removed row

%!test
%! % a single-output network needs no 'Output'
%! [net1, X1] = m2g_test_net ('single');
%! H = mat2grad_hessian (net1, X1(:, 1:3));
%! m2g_test_close (H, m2g_test_hessian (net1, X1(:, 1:3), 1), 1e-7);

%!test
%! % an ONNX file exported by MATLAB (R2020a, image 4x3x1 -> softmax 3): H(:,:,n) is
%! % 12-by-12 over the pixels in column-major order; against central differences of the
%! % gradient images mat2grad_jacobian computes (all perturbed images in one call)
%! file = m2g_test_fixture (fullfile ('onnx', 'matlab2020a_conv_fc_dropout.onnx'));
%! images = reshape (cos (1:24), 4, 3, 1, 2);
%! H = mat2grad_hessian (file, images, 'Output', 2);
%! assert (size (H), [12 12 2]);
%! m2g_test_close (H, permute (H, [2 1 3]), 1e-12);
%! row2 = @(J) reshape (J(2, :, :), 12, []);              % the gradient of output 2, 12 x N
%! Hfd = m2g_test_fd (@(p) row2 (mat2grad_jacobian (file, reshape (p, 4, 3, 1, []))), ...
%!                    reshape (images, 12, 2), 1e-5);
%! m2g_test_close (H, Hfd, 1e-6);

%!error <usage> mat2grad_hessian (1)
%!error <Output> mat2grad_hessian ('net.mat', 1, 'Output', 0)
