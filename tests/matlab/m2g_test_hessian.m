function H = m2g_test_hessian(net, X, k)
%M2G_TEST_HESSIAN   Hessian of output row K of M2G_TEST_FORWARD, by finite differences.
%   H = M2G_TEST_HESSIAN(NET, X, K) returns R-by-R-by-Q: H(:,:,q) is the matrix of second
%   derivatives of Y(K,q) with respect to X(:,q), from central differences of the
%   complex-step Jacobian M2G_TEST_JACOBIAN (step 1e-5 times the size of each input):
%   accurate to about 1e-9 relative.

  [R, Q] = size(X);
  H = zeros(R, R, Q);
  for r = 1:R
    h = 1e-5 * max(1, max(abs(X(r, :))));
    Xp = X;  Xp(r, :) = X(r, :) + h;
    Xm = X;  Xm(r, :) = X(r, :) - h;
    Jp = m2g_test_jacobian(net, Xp);
    Jm = m2g_test_jacobian(net, Xm);
    H(r, :, :) = (Jp(k, :, :) - Jm(k, :, :)) / (2 * h);
  end
end
