function [net, X, T] = m2g_test_net(variant)
%M2G_TEST_NET   A small trained-looking network struct, built in code, for the helpers' tests.
%   [NET, X, T] = M2G_TEST_NET returns a struct with the fields of a MATLAB network object
%   (what Octave passes instead of a network object), deterministic inputs X (5x7) and
%   targets T (2x7):
%
%     5 raw inputs -> removeconstantrows (row 3 is constant, removed) -> mapminmax (4 rows)
%       -> layer 1: 6 tansig -> layer 2: 4 logsig -> layer 3: 2 purelin
%       -> reverse mapminmax -> 2 outputs
%
%   [NET, X, T] = M2G_TEST_NET('single') gives the same network with one output row.
%
%   [NET, X, T] = M2G_TEST_NET('multi') adds a second input (2 rows, no processing,
%   into layer 1) and a second output (layer 2's activation, 4 rows, no processing):
%   X is {X1; X2} and T is {T1; T2}, as MATLAB's cell convention for several inputs
%   and outputs; MATLAB numbers the outputs in layer order (output 1 is layer 2).
%
%   The weights are fixed numbers, not random, so every run sees the same network.
%   M2G_TEST_FORWARD is the forward pass written out in Octave.
%
%   Test support only (tests/matlab is put on the path by tests/test_matlab_helpers.py).
%
%   See also M2G_TEST_FORWARD.

  if nargin < 1
    variant = 'default';
  end
  numOutputs = 2;
  if strcmp(variant, 'single')
    numOutputs = 1;
  end
  R = 5;  kept = [1 2 4 5];  constant = 0.7;
  sizes = [6 4 numOutputs];

  % Processing settings, with the fields MATLAB's mapminmax/removeconstantrows store.
  rc = struct();
  rc.name = 'removeconstantrows';
  rc.xrows = R;
  rc.max_range = 0;
  rc.keep = kept;
  rc.remove = 3;
  rc.value = constant;
  rc.yrows = numel(kept);
  rc.no_change = false;

  mmIn = minmax_settings([-1; 0; 2; -3], [1; 5; 4; 3]);
  outMin = [-2; 10];  outMax = [3; 20];
  mmOut = minmax_settings(outMin(1:numOutputs), outMax(1:numOutputs));

  net = struct();
  net.version = '8';
  net.name = 'm2g test network';
  net.numInputs = 1;
  net.numLayers = 3;
  net.numOutputs = 1;
  net.numInputDelays = 0;
  net.numLayerDelays = 0;
  net.biasConnect = [1; 1; 1];
  net.inputConnect = [1; 0; 0];
  net.layerConnect = [0 0 0; 1 0 0; 0 1 0];
  net.outputConnect = [0 0 1];

  in = struct();
  in.name = 'Input';
  in.size = R;
  in.processFcns = {'removeconstantrows', 'mapminmax'};
  in.processSettings = {rc, mmIn};
  in.processedSize = numel(kept);
  net.inputs = {in};

  transfer = {'tansig', 'logsig', 'purelin'};
  net.layers = cell(3, 1);
  for i = 1:3
    layer = struct();
    layer.name = sprintf('Layer %d', i);
    layer.size = sizes(i);
    layer.transferFcn = transfer{i};
    layer.netInputFcn = 'netsum';
    net.layers{i} = layer;
  end

  out = struct();
  out.name = 'Output';
  out.size = numOutputs;
  out.processFcns = {'mapminmax'};
  out.processSettings = {mmOut};
  out.processedSize = numOutputs;
  out.feedbackMode = 'none';
  net.outputs = {[], [], out};

  dotprod = struct('weightFcn', 'dotprod', 'delays', 0);
  net.inputWeights = {dotprod; []; []};
  net.layerWeights = {[], [], []; dotprod, [], []; [], dotprod, []};

  net.IW = {fixed(6, 4, 1); []; []};
  net.LW = {[], [], []; fixed(4, 6, 2), [], []; [], fixed(numOutputs, 4, 3), []};
  net.b = {fixed(6, 1, 4); fixed(4, 1, 5); fixed(numOutputs, 1, 6)};

  net.performFcn = 'mse';
  net.performParam = struct('regularization', 0, 'normalization', 'none');

  % Inputs inside (and a little outside) the recorded ranges; row 3 is the constant.
  q = 0:6;
  X = [cos(q); 2.5 + 2 * sin(1.3 * q); constant * ones(1, 7); 3 + 0.9 * cos(2 * q); ...
       2.5 * sin(0.7 * q + 1)];
  T = [0.5 + 2 * sin(q); 15 + 4 * cos(0.5 * q)];
  T = T(1:numOutputs, :);

  if strcmp(variant, 'multi')
    net.numInputs = 2;
    net.numOutputs = 2;
    net.inputConnect = [1 1; 0 0; 0 0];
    net.outputConnect = [0 1 1];
    in2 = struct('name', 'Input 2', 'size', 2, 'processedSize', 2);
    in2.processFcns = {};
    in2.processSettings = {};
    net.inputs = {in; in2};
    out2 = struct('name', 'Output 2', 'size', 4, 'processedSize', 4, 'feedbackMode', 'none');
    out2.processFcns = {};
    out2.processSettings = {};
    net.outputs = {[], out2, out};
    net.inputWeights = {dotprod, dotprod; [], []; [], []};
    net.IW = {fixed(6, 4, 1), fixed(6, 2, 7); [], []; [], []};
    X = {X; [sin(2 * q); cos(3 * q) - 0.5]};
    T = {0.3 * ones(4, 7); T};
  end
end

function s = minmax_settings(xmin, xmax)
  s = struct();
  s.name = 'mapminmax';
  s.xrows = numel(xmin);
  s.xmax = xmax;
  s.xmin = xmin;
  s.xrange = xmax - xmin;
  s.yrows = numel(xmin);
  s.ymax = 1;
  s.ymin = -1;
  s.yrange = 2;
  s.gain = 2 ./ (xmax - xmin);
  s.xoffset = xmin;
  s.no_change = false;
end

function W = fixed(m, n, seed)
  % Deterministic weights of moderate size (no random numbers: same in every run).
  W = 0.8 * sin(seed * 1.7 + (1:m)' * 0.9 + (1:n) * 0.37 * seed);
end
