function file = m2g_test_fixture(name)
%M2G_TEST_FIXTURE   Full path of a committed fixture, fixtures/NAME in the repository.

  repo = fileparts(fileparts(fileparts(mfilename('fullpath'))));
  file = fullfile(repo, 'fixtures', name);
  assert(exist(file, 'file') == 2, 'no fixture %s', file);
end
