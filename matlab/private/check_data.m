function check_data(fn, value, name, anyDims)
%CHECK_DATA   Inputs and targets: a real numeric matrix, or a cell of them (several inputs).
%   CHECK_DATA(FN, VALUE, NAME) raises mat2grad:FN:data when VALUE is neither. Sizes are
%   checked by mat2grad itself, against the network (its message names the expected rows).
%   CHECK_DATA(FN, VALUE, NAME, true) accepts real numeric arrays of any number of
%   dimensions (ONNX models: images H-by-W-by-C-by-N, sequences C-by-N-by-T).

  if nargin < 4
    anyDims = false;
  end
  if iscell(value)
    for k = 1:numel(value)
      check_data(fn, value{k}, sprintf('%s{%d}', name, k), anyDims);
    end
    return
  end
  if ~(isnumeric(value) || islogical(value)) || ~isreal(value) || (~anyDims && ndims(value) ~= 2)
    if anyDims
      what = ['array (in the layout of the model''s input: C-by-N features, ' ...
              'H-by-W-by-C-by-N images, C-by-N-by-T sequences)'];
    else
      what = 'matrix (one column per sample)';
    end
    error(['mat2grad:' fn ':data'], ['mat2grad: %s must be a real numeric %s, or a cell ' ...
          'with one such array per network input; found a %s %s'], name, what, ...
          regexprep(sprintf('%dx', size(value)), 'x$', ''), class(value));
  end
end

%!test
%! check_data ('predict', rand (3, 4), 'X');
%! check_data ('predict', {rand(3, 4); true(2, 4)}, 'X');
%!error <mat2grad: X must be a real numeric matrix> check_data ('predict', 'abc', 'X')
%!error <X\{2\} must be> check_data ('predict', {rand(3, 4), rand(2, 2, 2)}, 'X')
%!error <found a 1x2 double> check_data ('predict', [1i 2], 'X')
%!test
%! check_data ('predict', {rand(4, 3, 1, 2), int32([1 2; 3 4])}, 'X', true);
%!error <X must be a real numeric array \(in the layout> check_data ('predict', 'abc', 'X', true)
