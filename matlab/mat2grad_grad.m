function [G, perf] = mat2grad_grad(net, X, T, varargin)
%MAT2GRAD_GRAD   Gradient of a network's performance (loss) with respect to its weights.
%   [G, PERF] = MAT2GRAD_GRAD(NET, X, T) returns the performance PERF of the network on
%   inputs X and targets T, as MATLAB's perform(NET, T, sim(NET, X)) defines it (the
%   network's performFcn and performParam: mse, sse, mae, sae, crossentropy,
%   normalization, regularization; NaN targets ignored), and its gradient with respect to
%   every weight and bias, by backpropagation (automatic differentiation):
%     G.db    numLayers-by-1 cell shaped like NET.b:  dPERF/db{i}
%     G.dIW   numLayers-by-numInputs cell shaped like NET.IW
%     G.dLW   numLayers-by-numLayers cell shaped like NET.LW
%     G.dwb   column vector, in the order of getwb(NET): for each layer i, b{i}, then
%             IW{i,j} and LW{i,j} for each connected j, each matrix column by column
%     G.perf  PERF again
%   This is the mathematical gradient (not its negative), with the 1/N of mse inside.
%
%   [G, PERF] = MAT2GRAD_GRAD(NET, X, T, Name, Value) sets options:
%     'Performance'     'mse', 'sse', 'mae', 'sae' or 'crossentropy' instead of the
%                       network's own performFcn
%     'Normalization'   'none', 'standard' or 'percent' instead of the network's
%                       performParam.normalization
%     'Regularization'  in [0, 1], instead of performParam.regularization
%     'ErrorWeights'    error weights EW, as for perform(NET, T, Y, EW): 1-by-Q (per
%                       sample), S-by-1 (per output row) or S-by-Q
%     'Convention'      'math' (default): the gradient +dPERF/dw; 'matlab': what
%                       defaultderiv('dperf_dwb', NET, X, T) returns, its negative
%     'WbOrder'         'bias-first' (default): getwb's order since R2012b;
%                       'bias-last': the order of R2010b-R2012a
%     'Network'         path of the network inside a MAT-file holding several ('net1')
%     'Samples'         'columns' (default): X is R-by-Q and T is S-by-Q; 'rows': Q-by-R
%                       and Q-by-S
%     'DataType'        'double' (default) or 'single': the precision of the computation
%
%   Inputs:
%     NET  a network object (MATLAB), a struct with the fields of one (GNU Octave), the
%          path of a .mat file holding a saved network, or the path of an .onnx file
%     X    R-by-Q real matrix of raw inputs, one column per sample (a cell for several
%          inputs)
%     T    S-by-Q real matrix of targets, in the units of the outputs (a cell for
%          several outputs)
%
%   Outputs:
%     G     struct with fields db, dIW, dLW, dwb, perf (above)
%     PERF  scalar double
%
%   Example:
%     [x, t] = simplefit_dataset;
%     net = train(fitnet(10), x, t);
%     [G, perf] = mat2grad_grad(net, x, t);
%     norm(G.dwb)                       % near zero at a minimum of the training loss
%     G.dIW{1,1}                        % same size as net.IW{1,1}
%
%   Errors (identifiers mat2grad:grad:*) carry mat2grad's message.
%
%   See also MAT2GRAD_JACOBIAN, MAT2GRAD_PREDICT, GETWB, PERFORM.

  if nargin < 3
    error('mat2grad:grad:nargin', 'mat2grad: usage: [G, perf] = mat2grad_grad(NET, X, T, ...)');
  end
  options = parse_options('grad', {'Performance', 'Normalization', 'Regularization', ...
    'ErrorWeights', 'Convention', 'WbOrder', 'Network', 'Samples', 'DataType'}, varargin);
  check_data('grad', X, 'X');
  check_data('grad', T, 'T');
  data = struct();
  data.X = X;
  data.T = T;
  G = call_cli('grad', net, data, options, true);
  perf = G.perf;
end

%!shared net, X, T
%! [net, X, T] = m2g_test_net ();

%!test
%! % the network struct built in Octave (performFcn mse, also named): against complex-step
%! % derivatives of MATLAB's mse written in Octave over the Octave forward pass
%! [G, perf] = mat2grad_grad (net, X, T, 'Performance', 'mse');
%! [perfRef, ref] = m2g_test_perf_gradient (net, X, T);
%! m2g_test_close (perf, perfRef, 1e-12);
%! assert (G.perf, perf);
%! for name = {'db', 'dIW', 'dLW'}
%!   got = G.(name{1});  want = ref.(name{1});
%!   assert (size (got), size (want));
%!   for k = 1:numel (want)
%!     m2g_test_close (got{k}, want{k}, 1e-12);   % empty where the network has no weight
%!   end
%! end
%! % getwb order: for each layer, b{i}, then IW{i,:} and LW{i,:}, column by column
%! wb = [ref.db{1}; ref.dIW{1,1}(:); ref.db{2}; ref.dLW{2,1}(:); ref.db{3}; ref.dLW{3,2}(:)];
%! m2g_test_close (G.dwb, wb, 1e-12);

%!test
%! % error weights, MATLAB's sign convention, sse: EW = 2 doubles the gradient of sse,
%! % and 'matlab' returns its negative
%! EW = 2 * ones (1, size (X, 2));
%! G = mat2grad_grad (net, X, T, 'Performance', 'sse', 'ErrorWeights', EW, ...
%!                    'Convention', 'matlab');
%! [perfRef, ref] = m2g_test_perf_gradient (net, X, T);
%! m2g_test_close (G.perf, 2 * perfRef * numel (T), 1e-12);
%! m2g_test_close (G.db{1}, -2 * numel (T) * ref.db{1}, 1e-12);

%!error <usage> mat2grad_grad (1, 2)
%!error <Performance> mat2grad_grad ('net.mat', 1, 1, 'Performance', 'rmse')
%!error <ErrorWeights> mat2grad_grad ('net.mat', 1, 1, 'ErrorWeights', -1)
%!error id=mat2grad:grad:data mat2grad_grad ('net.mat', 1, {1, 'a'})
