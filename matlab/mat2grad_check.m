function [ok, report] = mat2grad_check(net, X, varargin)
%MAT2GRAD_CHECK   Check mat2grad's derivatives of a network against finite differences.
%   MAT2GRAD_CHECK(NET, X) compares the Jacobian that mat2grad computes by automatic
%   differentiation with central finite differences of the network's outputs at the
%   samples X, prints the largest relative difference per output, and raises the error
%   mat2grad:check:tolerance if one exceeds the tolerance (1e-6 by default).
%
%   MAT2GRAD_CHECK(NET) checks at the network's stored example inputs, or at random
%   points inside the input ranges recorded by its input processing. For an ONNX model
%   (NET the path of an .onnx file) it checks at 200 random points, every element of
%   every floating input uniform in [-1, 1]; the differences cost 4 evaluations per input
%   element, so for large images pass a few samples X instead.
%
%   OK = MAT2GRAD_CHECK(...) returns true or false instead of raising.
%   [OK, REPORT] = MAT2GRAD_CHECK(...) also returns the printed report as text.
%
%   MAT2GRAD_CHECK(NET, X, Name, Value) sets options:
%     'Tol'        relative tolerance (default 1e-6; finite differences are accurate to
%                  about 1e-8 for smooth networks in double precision)
%     'Network'    path of the network inside a MAT-file holding several ('net1')
%     'Samples'    'columns' (default, X is R-by-Q) or 'rows' (X is Q-by-R)
%     'DataType'   'double' (default) or 'single'
%     'Device'     'cpu' (default), 'cuda', 'cuda:N' or 'mps', as for MAT2GRAD_JACOBIAN
%     'Wrt'        ONNX files: the input(s) to check the derivatives with respect to
%                  (name or cellstr); default: every floating input
%     'Layout'     ONNX files: 'matlab' (default: X as MAT2GRAD_PREDICT takes it) or
%                  'onnx' (batch-first as the file declares it)
%
%   Inputs:
%     NET  a network object (MATLAB), a struct with the fields of one (GNU Octave), the
%          path of a .mat file holding a saved network, or the path of an .onnx file
%     X    R-by-Q real matrix of raw inputs, one column per sample, or [] (see above);
%          for an ONNX model, its data as MAT2GRAD_PREDICT takes it
%
%   Outputs:
%     OK      true when every output's relative difference is within the tolerance
%     REPORT  char row: the relative differences, as printed
%
%   Example:
%     [x, t] = simplefit_dataset;
%     net = train(fitnet(10), x, t);
%     mat2grad_check(net, x)                   % prints the differences; errors if too big
%     ok = mat2grad_check(net, x, 'Tol', 1e-8)
%
%   See also MAT2GRAD_JACOBIAN, MAT2GRAD_HESSIAN.

  if nargin < 1
    error('mat2grad:check:nargin', 'mat2grad: usage: ok = mat2grad_check(NET, X, ...)');
  end
  options = parse_options('check', {'Tol', 'Network', 'Samples', 'DataType', 'Device', ...
                          'Layout', 'Wrt'}, varargin);
  data = struct();
  if nargin >= 2 && ~isempty(X)
    check_data('check', X, 'X', is_onnx_path(net));
    data.X = X;
  end
  [~, report, err, status] = call_cli('check', net, data, options, false);
  ok = status == 0;
  if status ~= 0 && (status ~= 1 || isempty(strtrim(report)))
    cli_error('check', status, err, python_executable());  % not a tolerance failure
  end
  if nargout == 0
    fprintf('%s', report);
    if ~ok
      error('mat2grad:check:tolerance', ['mat2grad: the derivatives differ from finite ' ...
            'differences by more than the tolerance (see the report above)']);
    end
  end
end

%!shared net, X
%! [net, X] = m2g_test_net ();

%!test
%! % the network struct built in Octave passes the check; an impossible tolerance fails it
%! [ok, report] = mat2grad_check (net, X);
%! assert (ok, true);
%! assert (~isempty (strtrim (report)));
%! [ok, report] = mat2grad_check (net, X, 'Tol', 1e-300);
%! assert (ok, false);
%! assert (~isempty (strtrim (report)));

%!test
%! % a real error (wrong input rows) is still an error, not a failed check
%! try
%!   mat2grad_check (net, X(1:4, :));
%!   error ('no error raised');
%! catch err
%!   assert (err.identifier, 'mat2grad:check:failed');
%!   assert (~isempty (strfind (err.message, 'has 4 rows but the network takes 5')), err.message);
%! end

%!test
%! % an ONNX file exported by MATLAB (image 4x3x1 -> softmax 3): at random points, and
%! % at given images H-by-W-by-C-by-N
%! file = m2g_test_fixture (fullfile ('onnx', 'matlab2020a_conv_fc_dropout.onnx'));
%! [ok, report] = mat2grad_check (file);
%! assert (ok, true);
%! assert (~isempty (strfind (report, 'uniform in [-1, 1]')), report);
%! [ok, report] = mat2grad_check (file, reshape (cos (1:24), 4, 3, 1, 2), 'Tol', 1e-8);
%! assert (ok, true, report);
%! assert (~isempty (strfind (report, 'output softmax')), report);

%!error <usage> mat2grad_check ()
%!error <Tol> mat2grad_check ('net.mat', 1, 'Tol', -1)
