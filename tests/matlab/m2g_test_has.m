function tf = m2g_test_has(feature)
%M2G_TEST_HAS   True when the mat2grad under test offers FEATURE.
%   FEATURE is a CLI command ('jacobian', 'hessian', 'grad', 'check', ...) or 'onnx'.
%   tests/test_matlab_helpers.py lists them in the environment variable M2G_FEATURES
%   (the subcommands of mat2grad's parser, plus 'onnx' when mat2grad.onnx exists).
%   Test blocks for commands that are not on main yet are guarded with
%     %!testif ; m2g_test_has ('jacobian')
%   so they run as soon as the command lands.

  features = strsplit(getenv('M2G_FEATURES'), ',');
  tf = any(strcmp(features, feature));
end
