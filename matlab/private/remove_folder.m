function remove_folder(folder)
%REMOVE_FOLDER   Delete a temporary folder made by the helpers and every file in it.
%   Deletes the files one by one (hidden ones too: an interrupted atomic write leaves
%   .results.mat.XXXX.tmp behind) and then the empty folder, so it never needs Octave's
%   confirm_recursive_rmdir or MATLAB's rmdir(..., 's'). Never raises: it runs from
%   onCleanup, possibly while another error is being reported.

  try
    if exist(folder, 'dir') ~= 7
      return
    end
    entries = dir(folder);
    for k = 1:numel(entries)
      if ~entries(k).isdir
        delete(fullfile(folder, entries(k).name));
      end
    end
    rmdir(folder);
  catch err
    warning('mat2grad:cleanup', 'mat2grad: could not remove the temporary folder %s (%s)', ...
            folder, err.message);
  end
end

%!test
%! folder = tempname ();
%! mkdir (folder);
%! fclose (fopen (fullfile (folder, 'a.mat'), 'w'));
%! fclose (fopen (fullfile (folder, '.hidden.tmp'), 'w'));
%! remove_folder (folder);
%! assert (exist (folder, 'dir'), 0);
%! remove_folder (folder);   % a folder already gone is not an error
