function Y = m2g_test_forward(net, X, IW, LW, b)
%M2G_TEST_FORWARD   The forward pass of M2G_TEST_NET's networks, written out in Octave.
%   Y = M2G_TEST_FORWARD(NET, X) evaluates the 3-layer network struct NET on the raw
%   inputs X (5xQ) with its own weights, exactly as MATLAB's sim would:
%   removeconstantrows, mapminmax, tansig, logsig, purelin, reverse mapminmax. For the
%   'multi' variant X is {X1; X2} and Y is {layer 2's output; layer 3's output}.
%
%   Y = M2G_TEST_FORWARD(NET, X, IW, LW, B) uses the weight cells IW, LW and B instead
%   of NET's (for derivatives with respect to the weights).
%
%   X and the weights may be complex (complex-step differentiation): only analytic
%   operations are used, and no transpose.
%
%   See also M2G_TEST_NET.

  if nargin < 3
    IW = net.IW;  LW = net.LW;  b = net.b;
  end
  if ~iscell(X)
    X = {X};
  end
  Q = size(X{1}, 2);
  rc = net.inputs{1}.processSettings{1};
  mm = net.inputs{1}.processSettings{2};
  p = X{1}(rc.keep, :);
  p = bsxfun(@plus, bsxfun(@times, bsxfun(@minus, p, mm.xoffset), mm.gain), mm.ymin);

  n1 = IW{1, 1} * p + repmat(b{1}, 1, Q);
  if net.numInputs > 1
    n1 = n1 + IW{1, 2} * X{2};                   % second input: no processing
  end
  a1 = 2 ./ (1 + exp(-2 * n1)) - 1;                % tansig
  n2 = LW{2, 1} * a1 + repmat(b{2}, 1, Q);
  a2 = 1 ./ (1 + exp(-n2));                        % logsig
  a3 = LW{3, 2} * a2 + repmat(b{3}, 1, Q);         % purelin

  mo = net.outputs{3}.processSettings{1};
  Y = bsxfun(@plus, bsxfun(@rdivide, bsxfun(@minus, a3, mo.ymin), mo.gain), mo.xoffset);
  if net.numOutputs > 1
    Y = {a2; Y};                                   % outputs in layer order
  end
end
