function check_data(fn, value, name)
%CHECK_DATA   Inputs and targets: a real numeric matrix, or a cell of them (several inputs).
%   CHECK_DATA(FN, VALUE, NAME) raises mat2grad:FN:data when VALUE is neither. Sizes are
%   checked by mat2grad itself, against the network (its message names the expected rows).

  if iscell(value)
    for k = 1:numel(value)
      check_data(fn, value{k}, sprintf('%s{%d}', name, k));
    end
    return
  end
  if ~(isnumeric(value) || islogical(value)) || ~isreal(value) || ndims(value) ~= 2
    error(['mat2grad:' fn ':data'], ['mat2grad: %s must be a real numeric matrix (one ' ...
          'column per sample), or a cell with one such matrix per network input; found a ' ...
          '%s %s'], name, regexprep(sprintf('%dx', size(value)), 'x$', ''), class(value));
  end
end

%!test
%! check_data ('predict', rand (3, 4), 'X');
%! check_data ('predict', {rand(3, 4); true(2, 4)}, 'X');
%!error <mat2grad: X must be a real numeric matrix> check_data ('predict', 'abc', 'X')
%!error <X\{2\} must be> check_data ('predict', {rand(3, 4), rand(2, 2, 2)}, 'X')
%!error <found a 1x2 double> check_data ('predict', [1i 2], 'X')
