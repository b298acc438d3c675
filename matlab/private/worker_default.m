function tf = worker_default()
%WORKER_DEFAULT   Whether the helpers use the warm worker when no choice was stored.
%   On in GNU Octave, where the worker route is tested end to end (popen2: first call,
%   repeat calls, a crash and restart, the parent killed, two sessions at once); off in
%   MATLAB until its ProcessBuilder route has been proven there the same way
%   (MAT2GRAD_SETUP('Worker', true) turns it on).

  tf = is_octave();
end

%!assert (worker_default (), true)   % these blocks run in Octave
