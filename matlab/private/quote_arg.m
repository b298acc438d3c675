function q = quote_arg(s, platform)
%QUOTE_ARG   Quote one command-line argument for the shell that system() uses.
%   Q = QUOTE_ARG(S) quotes the char row S for /bin/sh on Linux and macOS, and for
%   cmd.exe plus the Microsoft C runtime's argument parser on Windows.
%   Q = QUOTE_ARG(S, PLATFORM) uses the rules of PLATFORM ('unix' or 'windows').
%
%   sh: everything inside single quotes is literal; a single quote becomes '\''.
%   Windows: the argument goes in double quotes; a double quote becomes \" and the
%   backslashes before it (and at the end) are doubled, as CommandLineToArgvW and
%   Python's argv parsing expect. (Windows paths cannot contain double quotes; cmd.exe
%   still expands %NAME% inside quotes, so avoid percent signs in paths.) The whole
%   command line is wrapped in one more pair of quotes by RUN_CLI, because cmd.exe /c
%   strips the outermost pair when a line holds more than two quotes.

  if nargin < 2
    if ispc
      platform = 'windows';
    else
      platform = 'unix';
    end
  end
  if strcmp(platform, 'windows')
    s = regexprep(s, '(\\*)"', '$1$1\\"');
    s = regexprep(s, '(\\+)$', '$1$1');
    q = ['"' s '"'];
  else
    q = ['''' strrep(s, '''', '''\''''') ''''];
  end
end

%!assert (quote_arg ('plain', 'unix'), '''plain''')
%!assert (quote_arg ('a b', 'unix'), '''a b''')
%!assert (quote_arg ('it''s', 'unix'), '''it''\''''s''')
%!assert (quote_arg ('$HOME `x` "q" \n', 'unix'), '''$HOME `x` "q" \n''')
%!assert (quote_arg ('C:\Program Files\py.exe', 'windows'), '"C:\Program Files\py.exe"')
%!assert (quote_arg ('C:\dir\', 'windows'), '"C:\dir\\"')
%!assert (quote_arg ('say "hi"', 'windows'), '"say \"hi\""')
%!assert (quote_arg ('a\"b', 'windows'), '"a\\\"b"')
%!assert (quote_arg ('', 'unix'), '''''')
%!assert (quote_arg ('', 'windows'), '""')

%!test
%! % the sh rule survives a real shell: echo the argument back through system()
%! if ~ispc
%!   weird = 'it''s a "test" with $HOME, `ls`, \ and ;';
%!   [status, out] = system(['printf ''%s'' ' quote_arg(weird)]);
%!   assert (status, 0);
%!   assert (out, weird);
%! end
