function [Y, Xf, Af] = mat2grad_predict(net, X, varargin)
%MAT2GRAD_PREDICT   Outputs of a trained network, computed by mat2grad (like sim).
%   Y = MAT2GRAD_PREDICT(NET, X) evaluates the network NET on the inputs X exactly as
%   MATLAB's sim(NET, X) would, through mat2grad's PyTorch rebuild of the network. Use it
%   to check that mat2grad reads your network right before trusting its gradients.
%
%   Y = MAT2GRAD_PREDICT(NET, X, Name, Value) sets options:
%     'Network'   path of the network inside a MAT-file holding several, as MATLAB
%                 would write it: 'net1', 'S.net', 'STATE.network.values{1}'
%     'Samples'   'columns' (default): X is R-by-Q, one sample per column, and Y is
%                 S-by-Q; 'rows': X is Q-by-R and Y is Q-by-S
%     'DataType'  'double' (default) or 'single': the precision of the computation
%     'Device'    'cpu' (default), 'cuda', 'cuda:N' or 'mps', as for MAT2GRAD_JACOBIAN
%                 (results are returned as double)
%
%   ONNX models (NET the path of an .onnx file) take X as MATLAB holds data for their
%   input (mat2grad_info shows each input's size): features C-by-N (also for the old
%   exporters' 1x1x1xC inputs), images H-by-W-by-C-by-N, sequences C-by-N-by-T; for a
%   model with several inputs, a cell with one array per input, in the model's input
%   order. Y comes back the same way (a numOutputs-by-1 cell for several outputs).
%     'Layout'    'matlab' (default, as above) or 'onnx': batch-first arrays as the file
%                 declares them, N-by-(one sample's shape), e.g. N-by-C-by-H-by-W, and Y
%                 N-by-S
%
%   [Y, XF, AF] = MAT2GRAD_PREDICT(NET, X, ...) for networks with tapped delays or
%   feedback (timedelaynet, narxnet, layrecnet) works like [Y, XF, AF] = NET(X, XI, AI):
%   X is a numInputs-by-TS cell of R-by-Q matrices (Q series side by side), or one R-by-TS
%   matrix for one series; Y comes back in the same form, with the final delay states.
%   Options for them:
%     'Xi', 'Ai'      initial input and layer delay states (numInputs-by-ID and
%                     numLayers-by-LD cells), as for NET(X, XI, AI)
%     'Targets'       the target series T (a NARX network's feedback targets): the series
%                     are shifted to fill the delay states, like preparets(NET, X, {}, T)
%     'Prepare'       true: shift X itself to fill the delay states, like preparets
%     'ClosedLoop'    true: close the feedback loop first, like closeloop(NET)
%     'KnownInputs', 'KnownTargets'   a known sequence X1, T1: simulated in open loop,
%                     the loop is closed on its final states, then X is predicted
%                     (MATLAB's multistep prediction)
%     'Steps'         time steps to simulate when the network has no inputs (narnet)
%
%   Inputs:
%     NET  a network object (MATLAB), a struct with the fields of one (GNU Octave, or
%          struct(net)), the path of a .mat file holding a saved network, or the path
%          of an .onnx file
%     X    R-by-Q real matrix of raw (unprocessed) inputs, one column per sample; for a
%          network with several inputs, a cell with one such matrix per input (ONNX
%          models: see above)
%
%   Outputs:
%     Y    S-by-Q double matrix of raw outputs (after reverse output processing); a
%          numOutputs-by-1 cell for a network with several outputs; for a time series,
%          like X (a numOutputs-by-TS cell)
%     XF   final input delay states (numInputs-by-ID cell); [] for static networks
%     AF   final layer delay states (numLayers-by-LD cell); [] for static networks
%
%   Example:
%     [x, t] = simplefit_dataset;
%     net = train(fitnet(10), x, t);
%     Y = mat2grad_predict(net, x);
%     max(abs(Y - net(x)))          % round-off: mat2grad computes what MATLAB does
%
%     exportONNXNetwork(dlnet, 'cnn.onnx');        % images 28-by-28-by-1
%     Y = mat2grad_predict('cnn.onnx', XTest);     % XTest 28-by-28-by-1-by-N, Y 10-by-N
%
%   Errors (identifiers mat2grad:predict:*) carry mat2grad's message: 'failed' for a
%   problem with the network or the data (wrong number of input rows, missing file,
%   unknown network path), 'python' when Python or mat2grad cannot be started.
%
%   See also MAT2GRAD_JACOBIAN, MAT2GRAD_INFO, MAT2GRAD_SETUP, SIM.

  if nargin < 2
    error('mat2grad:predict:nargin', 'mat2grad: usage: Y = mat2grad_predict(NET, X, ...)');
  end
  options = parse_options('predict', {'Network', 'Samples', 'DataType', 'Device', 'Layout', ...
    'Xi', 'Ai', 'Targets', 'Prepare', 'ClosedLoop', 'KnownInputs', 'KnownTargets', ...
    'Steps'}, varargin);
  check_data('predict', X, 'X', is_onnx_path(net));
  data = struct();
  data.X = X;
  result = call_cli('predict', net, data, options, true);
  Y = result.Y;
  Xf = [];
  Af = [];
  if isfield(result, 'Xf')
    Xf = result.Xf;
    Af = result.Af;
  end
end

%!shared net, X, Yref
%! [net, X] = m2g_test_net ();
%! Yref = m2g_test_forward (net, X);

%!test
%! % a network struct built in Octave: removeconstantrows + mapminmax, two hidden layers
%! Y = mat2grad_predict (net, X);
%! assert (size (Y), [2 7]);
%! m2g_test_close (Y, Yref, 1e-12);

%!test
%! % two inputs and two outputs: cells in, a numOutputs-by-1 cell out
%! [net2, X2] = m2g_test_net ('multi');
%! Y = mat2grad_predict (net2, X2);
%! Y2 = m2g_test_forward (net2, X2);
%! assert (size (Y), [2 1]);
%! m2g_test_close (Y{1}, Y2{1}, 1e-12);
%! m2g_test_close (Y{2}, Y2{2}, 1e-12);

%!test
%! % a network in a MAT-file under a path with spaces and quotes; samples in rows
%! folder = tempname ();
%! weird = fullfile (folder, 'it''s a "dir" $HOME');
%! mkdir (weird);
%! c = onCleanup (@() m2g_test_rmdir (folder));
%! other = net;
%! file = fullfile (weird, 'my net.mat');
%! save ('-v7', file, 'net', 'other');
%! Y = mat2grad_predict (file, X', 'Network', 'other', 'Samples', 'rows');
%! m2g_test_close (Y, Yref', 1e-12);

%!testif ; ~isempty (m2g_test_corpus ())
%! % MATLAB-saved networks from the corpus: a file path with 'Network', and a network
%! % object that Octave's load turned into a struct
%! file = fullfile (m2g_test_corpus (), 'shallow', 'abj247_ann.mat');
%! S = m2g_test_load (file, 'i', 'fg_outputs');
%! Y = mat2grad_predict (file, S.i, 'Network', 'fg');
%! m2g_test_close (Y, S.fg_outputs, 1e-12);
%! file = fullfile (m2g_test_corpus (), 'shallow', 'marakaido_network.mat');
%! S = m2g_test_load (file);
%! Y = mat2grad_predict (S.net, S.x);
%! m2g_test_close (Y, S.y, 1e-12);

%!test
%! % a network with tapped delays (timedelaynet, 3 series of 14 steps side by side): the
%! % delay states as options, cells in and out, MATLAB's own outputs (saved with it)
%! file = m2g_test_fixture ('timedelaynet.mat');
%! S = m2g_test_load (file, 'X', 'Xi', 'Ai', 'Y');
%! [Y, Xf, Af] = mat2grad_predict (file, S.X, 'Xi', S.Xi, 'Ai', S.Ai);
%! assert (size (Y), [1 14]);
%! m2g_test_close (cell2mat (Y), cell2mat (S.Y), 1e-12);
%! assert (size (Xf), [1 2]);
%! assert (size (Af), [2 0]);

%!test
%! % NARX in open loop from the raw series: 'Targets' shifts them like preparets
%! file = m2g_test_fixture ('narx_open.mat');
%! S = m2g_test_load (file, 'Xseries', 'Tseries', 'Y');
%! Y = mat2grad_predict (file, S.Xseries, 'Targets', S.Tseries);
%! m2g_test_close (cell2mat (Y), cell2mat (S.Y), 1e-12);

%!testif ; ~isempty (m2g_test_corpus ())
%! % ONNX files from the corpus, features C-by-N: a PyTorch export (4 -> 3) and a MATLAB
%! % export (R2020a, 1x1x1x3 input -> 9): the outputs onnxruntime computes (float32)
%! file = fullfile (m2g_test_corpus (), 'onnx', 'pytorch_iris.onnx');
%! x = [5.1 6.2 4.9; 3.5 2.9 3.0; 1.4 4.3 5.8; 0.2 1.3 2.2];
%! Y = mat2grad_predict (file, x);
%! m2g_test_close (Y, m2g_test_onnx_reference (file, x), 1e-5);
%! file = fullfile (m2g_test_corpus (), 'onnx', 'matlab_archcomp_vertcas.onnx');
%! x = [0.2 -0.5 0.9 0.1; 0.7 0.3 -0.8 -0.2; -0.4 0.6 0.05 0.5];
%! Y = mat2grad_predict (file, x);
%! assert (size (Y), [9 4]);
%! m2g_test_close (Y, m2g_test_onnx_reference (file, x), 1e-5);

%!test
%! % an ONNX file exported by MATLAB R2020a (image 4x3x1 -> conv -> fc -> softmax): images
%! % H-by-W-by-C-by-N in, S-by-N out, against onnxruntime ('Layout', 'onnx': see
%! % mat2grad_jacobian's tests)
%! file = m2g_test_fixture (fullfile ('onnx', 'matlab2020a_conv_fc_dropout.onnx'));
%! images = reshape (sin (1:60), 4, 3, 1, 5);          % (X is shared with other blocks)
%! Y = mat2grad_predict (file, images);
%! assert (size (Y), [3 5]);
%! m2g_test_close (Y, m2g_test_onnx_reference (file, images, 'image'), 1e-5);

%!test
%! % wrong number of input rows: mat2grad's message, as a MATLAB error; and no
%! % temporary file is left behind when a call fails
%! before = dir (tempdir ());
%! try
%!   mat2grad_predict (net, X(1:4, :));
%!   error ('no error raised');
%! catch err
%!   assert (err.identifier, 'mat2grad:predict:failed');
%!   assert (err.message, ['mat2grad: ''X'' has 4 rows but the network takes 5 ' ...
%!                         '(inputs{1}.size)']);
%! end
%! after = dir (tempdir ());
%! assert (sort ({after.name}), sort ({before.name}));

%!test
%! % a missing file, and an unknown network path in an existing file
%! try
%!   mat2grad_predict ('no such folder/net.mat', X);
%!   error ('no error raised');
%! catch err
%!   assert (err.identifier, 'mat2grad:predict:failed');
%!   assert (err.message, 'mat2grad: no such folder/net.mat: no such file');
%! end
%! file = [tempname() '.mat'];
%! c = onCleanup (@() delete (file));
%! save ('-v7', file, 'net');
%! try
%!   mat2grad_predict (file, X, 'Network', 'nets{2}');
%!   error ('no error raised');
%! catch err
%!   assert (err.identifier, 'mat2grad:predict:failed');
%!   assert (err.message, sprintf ('mat2grad: %s: no variable ''nets'' (variables: net)', file));
%! end

%!test
%! % wrong Python, and a Python without mat2grad: a helpful error naming the pip command
%! env = m2g_test_env ('MAT2GRAD_PYTHON', '/no/such/python');
%! try
%!   mat2grad_predict (net, X);
%!   error ('no error raised');
%! catch err
%!   assert (err.identifier, 'mat2grad:predict:python');
%!   start = 'mat2grad: Python ''/no/such/python'' was not found (';
%!   assert (strncmp (err.message, start, numel (start)), err.message);
%!   assert (~isempty (strfind (err.message, 'mat2grad_setup(''PythonExecutable'', PATH)')));
%! end
%! clear env
%! [bare, gone] = m2g_test_bare_python ();
%! env = m2g_test_env ('MAT2GRAD_PYTHON', bare);
%! try
%!   mat2grad_predict (net, X);
%!   error ('no error raised');
%! catch err
%!   assert (err.identifier, 'mat2grad:predict:python');
%!   start = 'mat2grad: mat2grad is not installed for Python ''';
%!   assert (strncmp (err.message, start, numel (start)), err.message);
%!   assert (~isempty (strfind (err.message, '-m pip install')));
%! end

%!error <usage> mat2grad_predict (1)
%!error id=mat2grad:predict:network mat2grad_predict (42, 1)
%!error id=mat2grad:predict:network mat2grad_predict (struct ('a', 1), 1, 'Network', 'net')
%!error id=mat2grad:predict:data mat2grad_predict ('net.mat', 'abc')
%!error id=mat2grad:predict:data mat2grad_predict ('net.mat', rand (2, 2, 2))
%!error id=mat2grad:predict:data mat2grad_predict ('net.onnx', {rand(2, 2, 2), 'abc'})
%!error <Layout> mat2grad_predict ('net.onnx', 1, 'Layout', 'nchw')
