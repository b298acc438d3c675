function J = m2g_test_fd(f, x, h)
%M2G_TEST_FD   Central differences of F at the columns of X, all in one call of F.
%   J = M2G_TEST_FD(F, X, H) for F mapping R-by-Q inputs to outputs with one sample per
%   column (S-by-Q features; C-by-Q-by-T sequences, MATLAB's CBT order) returns the
%   S-by-R-by-Q array J(:,r,q) = (F(X + H e_r) - F(X - H e_r))(:,q) / (2H), S counting the
%   elements of one output sample in column-major order (C-by-T for a sequence). When F
%   returns a cell (several outputs), J is a cell with one such array per output.
%
%   The 2*R*Q perturbed samples go to F at once, as one R-by-(Q*R*2) matrix whose column
%   q + Q*(r-1) (+ Q*R for the minus side) is sample q perturbed along row r: each mat2grad
%   helper call costs a Python start (about 2 s). F must treat samples independently.

  [R, Q] = size(x);
  plus = repmat(x, [1 1 R]);                 % R x Q x R: copy r is perturbed along row r
  minus = plus;
  for r = 1:R
    plus(r, :, r) = plus(r, :, r) + h;
    minus(r, :, r) = minus(r, :, r) - h;
  end
  Y = f([reshape(plus, R, []), reshape(minus, R, [])]);
  if iscell(Y)
    J = cellfun(@(y) differences(y, Q, R, h), Y, 'UniformOutput', false);
  else
    J = differences(Y, Q, R, h);
  end
end

function J = differences(Y, Q, R, h)
  Y = permute(Y, [1, 3:ndims(Y), 2]);        % the sample index last
  Y = reshape(Y, [], Q, R, 2);
  J = permute((Y(:, :, :, 1) - Y(:, :, :, 2)) / (2 * h), [1 3 2]);
end
