function Y = m2g_test_onnx_reference(model, X, layout)
%M2G_TEST_ONNX_REFERENCE   onnxruntime's outputs of an ONNX model (S x Q) for X.
%   Y = M2G_TEST_ONNX_REFERENCE(MODEL, X) for features X (R x Q); with LAYOUT 'image', X
%   is H x W x C x N. Runs m2g_onnx_reference.py beside this file with the Python under
%   test (onnxruntime, float32; the layout conversion written there by hand).

  if nargin < 3
    layout = 'features';
  end
  folder = tempname();
  mkdir(folder);
  c = onCleanup(@() m2g_test_rmdir(folder));
  data = fullfile(folder, 'x.mat');
  out = fullfile(folder, 'y.mat');
  save('-v7', data, 'X');
  script = fullfile(fileparts(mfilename('fullpath')), 'm2g_onnx_reference.py');
  [status, text] = system(sprintf('"%s" "%s" "%s" "%s" "%s" %s 2>&1', ...
                                  getenv('MAT2GRAD_PYTHON'), script, model, data, out, layout));
  assert(status == 0, text);
  Y = load(out).Y;
end
