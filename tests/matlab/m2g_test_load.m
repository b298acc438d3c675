function S = m2g_test_load(file, varargin)
%M2G_TEST_LOAD   load() without Octave's warnings about MATLAB network objects.
%   S = M2G_TEST_LOAD(FILE, VAR1, ...) loads like load(FILE, VAR1, ...). Octave has no
%   'network' class: it warns and converts such objects to structs.

  state = warning('off', 'all');
  restore = onCleanup(@() warning(state));
  S = load(file, varargin{:});
end
