function J = m2g_test_jacobian(net, X)
%M2G_TEST_JACOBIAN   Jacobian of M2G_TEST_FORWARD by complex-step differentiation.
%   J = M2G_TEST_JACOBIAN(NET, X) returns S-by-R-by-Q: J(:,:,q) = dY(:,q)/dX(:,q), from
%   J(:,r,q) = imag(f(X + 1i*h*e_r)) / h with h = 1e-30. The complex step is a finite
%   difference without subtraction, so it is accurate to round-off (about 1e-16),
%   independently of PyTorch's automatic differentiation. For several inputs or outputs
%   (X a cell) J is a numOutputs-by-numInputs cell of S_i-by-R_j-by-Q blocks.

  h = 1e-30;
  multi = iscell(X);
  if ~multi
    X = {X};
  end
  Y = m2g_test_forward(net, X);
  if ~iscell(Y)
    Y = {Y};
  end
  J = cell(numel(Y), numel(X));
  for j = 1:numel(X)
    [R, Q] = size(X{j});
    for i = 1:numel(Y)
      J{i, j} = zeros(size(Y{i}, 1), R, Q);
    end
    for r = 1:R
      Xc = X;
      Xc{j} = complex(X{j});
      Xc{j}(r, :) = X{j}(r, :) + 1i * h;
      Yc = m2g_test_forward(net, Xc);
      if ~iscell(Yc)
        Yc = {Yc};
      end
      for i = 1:numel(Y)
        J{i, j}(:, r, :) = reshape(imag(Yc{i}) / h, [], 1, Q);
      end
    end
  end
  if ~multi && numel(Y) == 1
    J = J{1};
  end
end
