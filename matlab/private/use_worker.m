function tf = use_worker(fn)
%USE_WORKER   True when the command line of FN should run in the warm worker.
%   After mat2grad_setup('Worker', true), every command runs in the worker (WORKER_CALL),
%   except the check of the Python itself (FN 'setup'), which needs a new process.

  tf = ~strcmp(fn, 'setup') && logical(stored_setting('Worker', worker_default()));
end
