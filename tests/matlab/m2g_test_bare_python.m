function [python, cleanup] = m2g_test_bare_python()
%M2G_TEST_BARE_PYTHON   A Python that cannot import mat2grad, for the "not installed" tests.
%   [PYTHON, CLEANUP] = M2G_TEST_BARE_PYTHON() writes a small sh script that runs the test
%   runner's own Python (MAT2GRAD_PYTHON) isolated (-I: no PYTHONPATH, no user site) and
%   without site-packages (-S), where an installed mat2grad lives. Clearing PYTHONPATH is not
%   enough: in CI mat2grad is installed into the venv. CLEANUP removes the script's folder.

  folder = tempname();
  mkdir(folder);
  cleanup = onCleanup(@() m2g_test_rmdir(folder));
  python = fullfile(folder, 'python');
  fid = fopen(python, 'w');
  fprintf(fid, '#!/bin/sh\nexec ''%s'' -I -S "$@"\n', getenv('MAT2GRAD_PYTHON'));
  fclose(fid);
  [status, out] = system(['chmod +x ''' python '''']);
  assert(status == 0, out);
end
