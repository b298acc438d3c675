function [out, err, status] = run_cli(fn, args, scrub)
%RUN_CLI   Run "PYTHON -m mat2grad ARGS..." through system(), with errors as MATLAB errors.
%   OUT = RUN_CLI(FN, ARGS) runs mat2grad's command line with the cell array of char
%   arguments ARGS and returns what it printed on standard output. FN ('jacobian', ...)
%   names the calling helper in error identifiers. A non-zero exit status raises
%     mat2grad:FN:failed  the CLI's own one-line message (mat2grad: ...): bad data, missing
%                         file, unknown network path, unsupported network, ...
%     mat2grad:FN:usage   the CLI rejected the arguments: the installed mat2grad is older
%                         or newer than these helpers
%     mat2grad:FN:python  Python could not be started, or mat2grad is not installed there
%   Anything printed on standard error by a successful run becomes a warning
%   (mat2grad:FN:message).
%
%   OUT = RUN_CLI(FN, ARGS, SCRUB) replaces, in messages, each SCRUB{k,1} by SCRUB{k,2}
%   (temporary file names mean nothing to the user).
%
%   With mat2grad_setup('Worker', true), the command line runs in this session's warm
%   worker instead (WORKER_CALL: no new Python process, networks kept loaded), with the
%   same output, messages and errors; system() is used when no worker can be started.
%
%   [OUT, ERR, STATUS] = RUN_CLI(...) never raises: the caller interprets STATUS and the
%   standard error text ERR (use CLI_ERROR to raise the usual error).
%
%   How the command line is built: every argument is quoted for the shell (QUOTE_ARG);
%   standard error goes to a temporary file, because system() returns standard output
%   only; the file is deleted by an onCleanup object, also on error. On Windows the
%   whole line is wrapped in one more pair of double quotes (cmd.exe /c strips the
%   outermost pair). On Linux MATLAB (not Octave) the child runs under
%   env -u LD_LIBRARY_PATH: MATLAB points LD_LIBRARY_PATH at its own libraries, which
%   PyTorch must not load.

  if nargin < 3
    scrub = cell(0, 2);
  end
  exe = python_executable();
  served = false;
  if use_worker(fn)
    [out, err, status, served] = worker_call(fn, args);
  end
  if ~served
    [out, err, status] = run_system(exe, args);
  end
  for k = 1:size(scrub, 1)
    out = strrep(out, scrub{k, 1}, scrub{k, 2});
    err = strrep(err, scrub{k, 1}, scrub{k, 2});
  end
  if nargout >= 3
    return
  end
  if status ~= 0
    cli_error(fn, status, err, exe);
  end
  message = strtrim(err);
  if ~isempty(message)
    warning(['mat2grad:' fn ':message'], '%s', message);
  end
end

function [out, err, status] = run_system(exe, args)
  % One new Python process through system(); standard error through a temporary file.
  errfile = [tempname() '_mat2grad_stderr.txt'];
  cleaner = onCleanup(@() delete_if_present(errfile)); %#ok<NASGU>

  parts = [{exe, '-m', 'mat2grad'}, args(:)'];
  quoted = cell(size(parts));
  for k = 1:numel(parts)
    quoted{k} = quote_arg(parts{k});
  end
  cmd = [sprintf('%s ', quoted{:}) '2>' quote_arg(errfile)];
  if ispc
    cmd = ['"' cmd '"'];
  elseif ~is_octave() && ~ismac
    cmd = ['env -u LD_LIBRARY_PATH ' cmd];
  end

  [status, out] = system(cmd);
  err = read_text(errfile);
end

function text = read_text(file)
  text = '';
  fid = fopen(file, 'r');
  if fid < 0
    return
  end
  text = fread(fid, [1 Inf], '*char');
  fclose(fid);
  text = strrep(text, char([13 10]), char(10));
end

function delete_if_present(file)
  if exist(file, 'file') == 2
    delete(file);
  end
end

%!shared fake, folder, env
%! % A stand-in for Python: a shell script that prints its arguments, one per line, and
%! % behaves as the first argument after "-m mat2grad" says.
%! folder = tempname ();
%! mkdir (fullfile (folder, 'fake py'));
%! fake = fullfile (folder, 'fake py', 'python');
%! fid = fopen (fake, 'w');
%! fprintf (fid, '#!/bin/sh\n');
%! fprintf (fid, 'shift 2\n');
%! fprintf (fid, 'case "$1" in\n');
%! fprintf (fid, '  ok) printf "[%%s]\\n" "$@";;\n');
%! fprintf (fid, '  warn) echo "careful: /tmp/xyz/in.mat" 1>&2;;\n');
%! fprintf (fid, '  fail) echo "some detail" 1>&2;\n');
%! fprintf (fid, '        echo "mat2grad: /tmp/xyz/in.mat: boom" 1>&2; exit 1;;\n');
%! fprintf (fid, '  usage) echo "usage: mat2grad ..." 1>&2;\n');
%! fprintf (fid, '    echo "mat2grad: error: argument COMMAND: invalid choice: ''usage''" 1>&2;\n');
%! fprintf (fid, '         exit 2;;\n');
%! fprintf (fid, '  crash) echo "Traceback (most recent call last):" 1>&2;\n');
%! fprintf (fid, '         echo "ImportError: libfoo.so" 1>&2; exit 1;;\n');
%! fprintf (fid, 'esac\n');
%! fclose (fid);
%! system (['chmod +x ' quote_arg(fake)]);
%! env = m2g_test_env ('MAT2GRAD_PYTHON', fake);

%!testif ; isunix ()
%! args = {'ok', 'a b', 'it''s', '"q"', '$HOME', '', 'x;y'};
%! out = run_cli ('x', args);
%! assert (out, sprintf ('[%s]\n', args{:}));

%!warning id=mat2grad:x:message run_cli ('x', {'warn'}, {'/tmp/xyz/in.mat', 'DATA'});
%!warning <^careful: DATA$> run_cli ('x', {'warn'}, {'/tmp/xyz/in.mat', 'DATA'});

%!testif ; isunix ()
%! [out, err, status] = run_cli ('x', {'fail'});
%! assert (status, 1);
%! assert (~isempty (strfind (err, 'boom')));

%!error <^mat2grad: boom$> run_cli ('x', {'fail'}, {'/tmp/xyz/in.mat: ', ''})
%!error id=mat2grad:x:failed run_cli ('x', {'fail'})
%!error id=mat2grad:x:usage run_cli ('x', {'usage'})
%!error <invalid choice: 'usage' \(the mat2grad installed for Python> run_cli ('x', {'usage'})
%!error id=mat2grad:x:python run_cli ('x', {'crash'})
%!error <with Python '.*fake py/python' \(ImportError: libfoo.so\)> run_cli ('x', {'crash'})

%!test
%! m2g_test_rmdir (folder);   % the last block: TMPDIR must be empty after the tests
