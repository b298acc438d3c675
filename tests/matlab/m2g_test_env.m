function restore = m2g_test_env(name, value)
%M2G_TEST_ENV   Set an environment variable until the returned object is cleared.
%   RESTORE = M2G_TEST_ENV(NAME, VALUE) sets NAME to VALUE and returns an onCleanup
%   object that puts the old value back (at the end of the test block, or on error).

  old = getenv(name);
  setenv(name, value);
  restore = onCleanup(@() put_back(name, old));
end

function put_back(name, old)
  if isempty(old)
    unsetenv(name);
  else
    setenv(name, old);
  end
end
