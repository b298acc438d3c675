function [v, g] = m2g_test_penalised(f, x, c, s)
%M2G_TEST_PENALISED   F(X) + 0.5*sum(((X-C)./S).^2) and its gradient: a network output with
%   a quadratic pull towards C, an objective with an interior minimum for optimiser tests.

  x = x(:);
  if nargout < 2
    v = f(x) + 0.5 * sum(((x - c) ./ s).^2);
    return
  end
  [y, gy] = f(x);
  v = y + 0.5 * sum(((x - c) ./ s).^2);
  g = gy + (x - c) ./ s.^2;
end
