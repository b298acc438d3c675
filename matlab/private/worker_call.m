function [out, err, status, served, info] = worker_call(fn, args, action)
%WORKER_CALL   Run "mat2grad ARGS..." in the warm worker instead of a new Python process.
%   [OUT, ERR, STATUS, SERVED] = WORKER_CALL(FN, ARGS) sends the command line ARGS (a cell
%   of char, as RUN_CLI would run it) to this session's worker ("PYTHON -m mat2grad
%   worker"), starting it first if needed, and returns what the command printed on
%   standard output (OUT) and standard error (ERR), and its exit status. SERVED is false
%   when no worker could be started (Python missing, mat2grad too old, ...): the caller
%   then runs the command through system(), which reports the cause.
%
%   The worker is restarted transparently when it has ended (a crash, the idle timeout,
%   killed) or when the helpers' Python has changed; a request it did not answer is sent
%   once more to the new worker. One worker per MATLAB/Octave process: it reads its
%   requests from a pipe, so it ends when this process ends, however it ends.
%
%   [~, ~, ~, ~, INFO] = WORKER_CALL('', {}, 'status') returns a struct with the fields
%   Running (true/false), Pid and Python; WORKER_CALL('', {}, 'stop') ends the worker.
%
%   Transport: GNU Octave through popen2 (core Octave; its pipes do not block, so answers
%   are polled); MATLAB through Java's ProcessBuilder (without LD_LIBRARY_PATH on Linux,
%   like RUN_CLI). Everything else is shared. See NOTE: [Worker protocol] in
%   mat2grad/worker.py for the messages.

  persistent w
  mlock();   % a "clear all" must not lose the pipes (the worker would wait until exit)
  if isempty(w)
    w = no_worker();
  end
  out = '';  err = '';  status = 0;  served = false;  info = [];
  if nargin >= 3
    switch action
      case 'status'
        w = check_alive(w);
        info = struct('Running', w.running, 'Pid', w.pid, 'Python', w.exe);
      case 'stop'
        w = stop_worker(w);
    end
    return
  end

  exe = python_executable();
  for attempt = 1:2
    w = check_alive(w);
    if w.running && ~strcmp(w.exe, exe)
      w = stop_worker(w);   % the helpers' Python has changed
    end
    if ~w.running
      w = start_worker(exe);
      if ~w.running
        return   % not served: the caller uses system()
      end
    end
    w.next = w.next + 1;
    request = struct('id', w.next, 'cwd', pwd(), 'argv', {args(:)'});
    [w, reply] = exchange(w, [jsonencode(request) char(10)], w.next);
    if isstruct(reply)
      out = reply.out;  err = reply.err;  status = reply.status;  served = true;
      return
    end
    w = stop_worker(w);   % it ended without answering: start a new one, ask again
  end
  error(['mat2grad:' fn ':worker'], ['mat2grad: the worker (%s -m mat2grad worker) ended ' ...
        'twice without answering; its messages are on standard error. Turn it off with ' ...
        'mat2grad_setup(''Worker'', false)'], exe);
end

% --------------------------------------------------------------------------------------
% Shared by MATLAB and Octave
% --------------------------------------------------------------------------------------

function w = no_worker()
  w = struct('running', false, 'exe', '', 'pid', 0, 'next', 0, 'in', [], 'out', [], ...
             'proc', [], 'buffer', '');
end

function w = start_worker(exe)
  w = no_worker();
  w.exe = exe;
  idle = stored_setting('WorkerIdleTimeout', 1800);
  command = {'-m', 'mat2grad', 'worker', '--idle-timeout', sprintf('%.17g', idle)};
  try
    w = start_process(w, exe, command);
  catch
    w = no_worker();   % Python could not be started
    return
  end
  w.running = true;
  [w, line] = read_line(w);   % {"ready": ..., "pid": ...}, after importing PyTorch
  if ~ischar(line)
    w = stop_worker(w);
    return
  end
  hello = jsondecode(line);
  w.pid = double(hello.pid);
end

function [w, reply] = exchange(w, request, id)
  % Send one request; read lines until the answer with this id (an older request's late
  % answer, after an interrupted call, is skipped). REPLY is [] when the worker ended.
  reply = [];
  w = write_line(w, request);
  while w.running
    [w, line] = read_line(w);
    if ~ischar(line)
      return
    end
    message = jsondecode(line);
    if isfield(message, 'id') && isequal(message.id, id)
      reply = message;
      return
    end
  end
end

% --------------------------------------------------------------------------------------
% The transport: popen2 in Octave, java.lang.ProcessBuilder in MATLAB
% --------------------------------------------------------------------------------------

function w = start_process(w, exe, command)
  if is_octave()
    [w.in, w.out, w.pid] = popen2(exe, command);
    if w.pid < 0
      error('mat2grad:worker:start', 'popen2 failed');
    end
  else
    builder = java.lang.ProcessBuilder([{exe}, command]);
    if isunix() && ~ismac()
      environment = builder.environment();
      environment.remove('LD_LIBRARY_PATH');   % see RUN_CLI
    end
    builder.directory(java.io.File(pwd()));
    % Standard error goes where MATLAB's goes; the pipes stay pipes. (Redirect.PIPE, a
    % nested class's field, is taken from the builder's defaults.)
    pipe = builder.redirectInput();
    builder.inheritIO();
    builder.redirectInput(pipe);
    builder.redirectOutput(pipe);
    w.proc = builder.start();
    w.in = w.proc.getOutputStream();
    w.out = java.io.BufferedReader(java.io.InputStreamReader(w.proc.getInputStream(), ...
                                                             'UTF-8'));
  end
end

function w = write_line(w, text)
  try
    if is_octave()
      fprintf(w.in, '%s', text);
      fflush(w.in);
    else
      w.in.write(typecast(unicode2native(text, 'UTF-8'), 'int8'));
      w.in.flush();
    end
  catch
    w.running = false;   % the pipe is closed: the worker has ended
  end
end

function [w, line] = read_line(w)
  % The next whole line from the worker, without its newline; -1 once it has ended.
  line = -1;
  if ~is_octave()
    text = w.out.readLine();   % blocks; [] at the end of the stream
    if isempty(text)
      w.running = false;
    else
      line = char(text);
    end
    return
  end
  % Octave's popen2 pipes do not block: a read without data fails with EAGAIN (then
  % wait a little and try again); a read at the end of the stream fails with errno 0.
  % A line may arrive in pieces: they are kept in w.buffer until its newline.
  again = errno('EAGAIN');
  while true
    fclear(w.out);
    errno(0);
    piece = fgets(w.out);
    if ischar(piece)
      w.buffer = [w.buffer piece];
      if w.buffer(end) == char(10)
        line = w.buffer(1:end-1);
        w.buffer = '';
        return
      end
    elseif errno() == again
      pause(0.0005);
    else
      w.running = false;
      return
    end
  end
end

function w = check_alive(w)
  % A worker that has ended by itself (idle timeout, crash) is noticed here.
  if ~w.running
    return
  end
  if is_octave()
    [pid, ~] = waitpid(w.pid, WNOHANG());
    if pid == w.pid
      w.pid = 0;   % reaped: it has ended
      w = stop_worker(w);
    end
  elseif ~w.proc.isAlive()
    w = stop_worker(w);
  end
end

function w = stop_worker(w)
  if is_octave()
    if ~isempty(w.in)
      fclose(w.in);
      fclose(w.out);
    end
    if w.pid > 0
      kill(w.pid, 9);
      waitpid(w.pid);   % popen2 does not reap its child
    end
  elseif ~isempty(w.proc)
    w.proc.destroy();
  end
  w = no_worker();
end

%!shared exe
%! exe = getenv ('MAT2GRAD_PYTHON');

%!test
%! % a command line through the worker: what system() would give
%! [out, err, status, served] = worker_call ('x', {'--version'});
%! assert (served);
%! assert (status, 0);
%! assert (strncmp (out, 'mat2grad ', 9), out);
%! [~, ~, ~, ~, info] = worker_call ('', {}, 'status');
%! assert (info.Running);
%! assert (info.Python, exe);
%! [out, err, status] = worker_call ('x', {'info', '/no/such/file.mat'});
%! assert (status, 1);
%! assert (~isempty (strfind (err, 'mat2grad: ')), err);
%! [out, err, status] = worker_call ('x', {'nonsense'});
%! assert (status, 2);
%! [~, ~, ~, ~, again] = worker_call ('', {}, 'status');
%! assert (again.Pid, info.Pid);   % the same process all along

%!test
%! % killed: the next call starts a new worker and is answered
%! [~, ~, ~, ~, before] = worker_call ('', {}, 'status');
%! if (! before.Running)
%!   worker_call ('x', {'--version'});
%!   [~, ~, ~, ~, before] = worker_call ('', {}, 'status');
%! end
%! kill (before.Pid, 9);
%! pause (0.2);
%! [out, ~, status, served] = worker_call ('x', {'--version'});
%! assert ({served, status}, {true, 0});
%! [~, ~, ~, ~, after] = worker_call ('', {}, 'status');
%! assert (after.Running);
%! assert (after.Pid != before.Pid);

%!testif ; isunix ()
%! % another Python (a wrapper script that execs this one): a new worker runs with it
%! worker_call ('x', {'--version'});
%! [~, ~, ~, ~, before] = worker_call ('', {}, 'status');
%! folder = tempname ();
%! mkdir (folder);
%! wrapper = fullfile (folder, 'python');
%! fid = fopen (wrapper, 'w');
%! fprintf (fid, '#!/bin/sh\nexec ''%s'' "$@"\n', exe);
%! fclose (fid);
%! system (['chmod +x ' quote_arg(wrapper)]);
%! env = m2g_test_env ('MAT2GRAD_PYTHON', wrapper);
%! [~, ~, status, served] = worker_call ('x', {'--version'});
%! assert ({served, status}, {true, 0});
%! [~, ~, ~, ~, after] = worker_call ('', {}, 'status');
%! assert (after.Python, wrapper);
%! assert (after.Pid != before.Pid);
%! worker_call ('', {}, 'stop');
%! m2g_test_rmdir (folder);

%!test
%! % a Python that cannot start a worker: not served (the caller falls back to system())
%! worker_call ('', {}, 'stop');
%! env = m2g_test_env ('MAT2GRAD_PYTHON', '/no/such/python');
%! [~, ~, ~, served] = worker_call ('x', {'--version'});
%! assert (served, false);
%! [~, ~, ~, ~, info] = worker_call ('', {}, 'status');
%! assert (info.Running, false);

%!test
%! worker_call ('', {}, 'stop');   % the last block: no worker left running
