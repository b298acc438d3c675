function tf = is_octave()
%IS_OCTAVE   True when running in GNU Octave, false in MATLAB (cached).
%   The Octave manual's idiom: a builtin named OCTAVE_VERSION exists only in Octave (a
%   variable of that name cannot fool the 'builtin' test).

  persistent cached
  if isempty(cached)
    cached = exist('OCTAVE_VERSION', 'builtin') > 0;
  end
  tf = cached;
end

%!assert (is_octave (), true)
