function [f, lb, ub] = mat2grad_objective(net, varargin)
%MAT2GRAD_OBJECTIVE   A trained network as an objective function with its exact gradient.
%   F = MAT2GRAD_OBJECTIVE(NET, 'Output', K) returns a function handle: [Y, G] = F(X) is
%   output K of the network at the input X (a vector of R raw inputs) and its gradient
%   G = dY/dX (R-by-1, in raw units: through the input and output processing), computed
%   by mat2grad. That is what fminunc and fmincon take with 'SpecifyObjectiveGradient'
%   (GNU Octave: optimset('GradObj', 'on')). Y = F(X) alone costs one prediction.
%
%   F = MAT2GRAD_OBJECTIVE(NET) (no 'Output') uses every output: [Y, J] = F(X) returns
%   Y (S-by-1) and the Jacobian J (S-by-R, J(i,j) = dY(i)/dX(j)), lsqnonlin's layout.
%
%   [F, LB, UB] = MAT2GRAD_OBJECTIVE(...) also returns the input ranges the network
%   recorded in training (inputs{1}.range: the training data's minimum and maximum, R-by-1
%   each), bounds for fmincon that keep the search where the network was trained.
%
%   Options:
%     'Output'    K       which output (1-based); default: all of them
%     'Maximize'  TF      true: F returns -Y and -G, so that a minimiser maximises output K
%     'Network'   PATH    the network inside a MAT-file that holds several
%     'DataType'  TYPE    'double' (default) or 'single'
%
%   NET is a network object, a struct with its fields (GNU Octave), or the path of a
%   MAT-file holding one. Networks with one input and one output. Each call of F runs
%   mat2grad: with mat2grad_setup('Worker', true) a call costs milliseconds.
%
%   Example (the input, within the training ranges, that maximises output 1):
%     mat2grad_setup('Worker', true);
%     [f, lb, ub] = mat2grad_objective('net.mat', 'Output', 1, 'Maximize', true);
%     x0 = (lb + ub) / 2;
%     opts = optimoptions('fmincon', 'SpecifyObjectiveGradient', true);   % MATLAB
%     xbest = fmincon(f, x0, [], [], [], [], lb, ub, [], opts);
%     % GNU Octave: xbest = fminunc(f, x0, optimset('GradObj', 'on'));  (no bounds)
%
%   See also MAT2GRAD_JACOBIAN, MAT2GRAD_PREDICT, MAT2GRAD_SETUP, FMINUNC, FMINCON.

  p = inputParser();
  p.FunctionName = 'mat2grad_objective';
  p.addParameter('Output', [], @(v) isempty(v) || (isnumeric(v) && isscalar(v) && ...
                 v >= 1 && v == round(v)));
  p.addParameter('Maximize', false, @(v) (islogical(v) || isnumeric(v)) && isscalar(v));
  p.addParameter('Network', '', @ischar);
  p.addParameter('DataType', '', @ischar);
  p.parse(varargin{:});
  options = {};
  if ~isempty(p.Results.Network)
    options = [options, {'Network', p.Results.Network}];
  end
  if ~isempty(p.Results.DataType)
    options = [options, {'DataType', p.Results.DataType}];
  end
  sign = 1;
  if p.Results.Maximize
    sign = -1;
  end
  f = @(x) evaluate(net, x, p.Results.Output, sign, options);
  if nargout > 1
    [lb, ub] = recorded_bounds(net, p.Results.Network);
  end
end

function [y, d] = evaluate(net, x, k, sign, options)
  x = double(x(:));
  if nargout < 2
    Y = mat2grad_predict(net, x, options{:});
    d = [];
  else
    [J, Y] = mat2grad_jacobian(net, x, options{:});
    if iscell(J)
      error('mat2grad:objective:network', ['mat2grad: the network has several inputs ' ...
            'or outputs; mat2grad_objective takes networks with one of each']);
    end
  end
  if iscell(Y)
    error('mat2grad:objective:network', ['mat2grad: the network has several outputs; ' ...
          'mat2grad_objective takes networks with one input and one output']);
  end
  if ~isempty(k) && k > size(Y, 1)
    error('mat2grad:objective:output', 'mat2grad: ''Output'' is %d but the network has %d', ...
          k, size(Y, 1));
  end
  if isempty(k)
    y = sign * Y;
    if nargout > 1
      d = sign * J(:, :, 1);                 % S x R
    end
  else
    y = sign * Y(k);
    if nargout > 1
      d = sign * reshape(J(k, :, 1), [], 1);   % R x 1
    end
  end
end

function [lb, ub] = recorded_bounds(net, path)
  info = mat2grad_info(net);
  networks = info.networks;
  if iscell(networks)
    networks = [networks{:}];
  end
  if ~isempty(path)
    networks = networks(strcmp({networks.path}, path));
  end
  if numel(networks) ~= 1
    error('mat2grad:objective:network', ['mat2grad: the file holds %d networks; choose one ' ...
          'with ''Network'''], numel(networks));
  end
  inputs = networks.inputs;
  if iscell(inputs)
    inputs = [inputs{:}];
  end
  if numel(inputs) ~= 1 || ~isfield(inputs, 'range') || isempty(inputs.range)
    error('mat2grad:objective:bounds', ['mat2grad: the network recorded no input ranges ' ...
          '(inputs{1}.range); give the bounds yourself']);
  end
  range = reshape(inputs.range, [], 2);
  lb = range(:, 1);
  ub = range(:, 2);
end

%!shared file, S, x
%! mat2grad_setup ('Worker', true);   % one Python for the ~30 calls below
%! file = m2g_test_fixture ('example_fitnet.mat');
%! S = load (file);
%! x = S.X(:, 7);

%!test
%! % value and gradient of output 2; the gradient against central differences
%! f = mat2grad_objective (file, 'Output', 2);
%! [y, g] = f (x);
%! assert (size (g), [10 1]);
%! assert (y, S.Y(2, 7), 1e-12 * max (abs (S.Y(:))));
%! assert (f (x'), y, 0);                  % a row vector is an input too
%! h = 1e-4 * std (S.X, 0, 2);
%! h(h == 0) = 1;
%! fd = zeros (10, 1);
%! for j = 1:10
%!   e = zeros (10, 1);
%!   e(j) = h(j);
%!   fd(j) = (f (x + e) - f (x - e)) / (2 * h(j));
%! end
%! % central differences: error O(h^2 f''') plus round-off eps*|y|/h
%! assert (g, fd, 1e-5 * max (abs (g)));

%!test
%! % all outputs: lsqnonlin's S x R Jacobian; 'Maximize' flips the sign
%! [y, J] = feval (mat2grad_objective (file), x);
%! [J3, Y3] = mat2grad_jacobian (file, x);
%! assert ({size(y), size(J)}, {[3 1], [3 10]});
%! assert (J, J3(:, :, 1), 0);
%! assert (y, Y3, 0);
%! [ym, gm] = feval (mat2grad_objective (file, 'Output', 3, 'Maximize', true), x);
%! assert ({ym, gm}, {-Y3(3), -J3(3, :, 1)'}, 0);

%!test
%! % bounds: the training ranges the network recorded (the data's own min and max)
%! [~, lb, ub] = mat2grad_objective (file, 'Output', 1);
%! assert ({size(lb), size(ub)}, {[10 1], [10 1]});
%! assert (all (lb <= min (S.X, [], 2) + eps) && all (ub >= max (S.X, [], 2) - eps));

%!error <[Oo][Uu][Tt][Pp][Uu][Tt]> mat2grad_objective ('net.mat', 'Output', 0)
%!error id=mat2grad:objective:output feval (mat2grad_objective (m2g_test_fixture ('example_fitnet.mat'), 'Output', 4), zeros (10, 1))
