function m2g_test_rmdir(folder)
%M2G_TEST_RMDIR   Remove a folder made by a test, with everything in it.

  if exist(folder, 'dir') == 7
    confirm_recursive_rmdir(false, 'local');
    rmdir(folder, 's');
  end
end
