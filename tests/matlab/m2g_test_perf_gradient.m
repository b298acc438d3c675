function [perf, grad] = m2g_test_perf_gradient(net, X, T)
%M2G_TEST_PERF_GRADIENT   MATLAB's mse of M2G_TEST_NET's network and its weight gradient.
%   [PERF, GRAD] = M2G_TEST_PERF_GRADIENT(NET, X, T) returns mse as MATLAB defines it
%   with normalization 'none' and no regularization, sum((T - Y).^2) / numel(T), and in
%   GRAD.db, GRAD.dIW, GRAD.dLW its derivatives with respect to every entry of NET.b,
%   NET.IW, NET.LW (cells of the same shapes), by complex-step differentiation of the
%   forward pass M2G_TEST_FORWARD: a finite difference without cancellation, accurate to
%   round-off, independent of PyTorch.

  perf = mse(net, X, T, net);
  grad.db = derivatives(net, X, T, 'b');
  grad.dIW = derivatives(net, X, T, 'IW');
  grad.dLW = derivatives(net, X, T, 'LW');
end

function D = derivatives(net, X, T, field)
  h = 1e-30;
  cells = net.(field);
  D = cell(size(cells));
  for c = 1:numel(cells)
    D{c} = zeros(size(cells{c}));
    for e = 1:numel(cells{c})
      W = net;
      W.(field){c} = complex(cells{c});
      W.(field){c}(e) = cells{c}(e) + 1i * h;
      D{c}(e) = imag(mse(net, X, T, W)) / h;
    end
  end
end

function value = mse(net, X, T, W)
  value = sum(sum((T - m2g_test_forward(net, X, W.IW, W.LW, W.b)) .^ 2)) / numel(T);
end
