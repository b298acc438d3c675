function folder = m2g_test_corpus()
%M2G_TEST_CORPUS   The real-file corpus folder, or '' when it is not here.
%   Set by tests/test_matlab_helpers.py (environment variable M2G_CORPUS) to
%   ../shared/corpus beside the repository when that folder exists. Tests that need it
%   use  %!testif ; ~isempty (m2g_test_corpus ())  and are skipped otherwise.

  folder = getenv('M2G_CORPUS');
  if ~isempty(folder) && exist(fullfile(folder, 'MANIFEST.toml'), 'file') ~= 2
    folder = '';
  end
end
