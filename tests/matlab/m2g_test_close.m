function m2g_test_close(actual, expected, rtol)
%M2G_TEST_CLOSE   Assert max|ACTUAL - EXPECTED| <= RTOL * max|EXPECTED| (the project's measure).
%   The same relative error as tests/helpers.py max_rel_err: one scale for the whole array,
%   so entries near zero are not held to a relative tolerance of their own. Sizes must
%   match exactly.

  assert(isequal(size(actual), size(expected)), 'size %s, expected %s', ...
         mat2str(size(actual)), mat2str(size(expected)));
  scale = max(abs(expected(:)));
  err = max(abs(actual(:) - expected(:)));
  if isempty(err)
    return
  end
  if scale > 0
    err = err / scale;
  end
  assert(err <= rtol, 'relative error %.3e > %.1e', err, rtol);
end
