function [net, X, T] = m2g_test_net(numOutputs)
%M2G_TEST_NET   A small trained-looking network struct, built in code, for the helpers' tests.
%   [NET, X, T] = M2G_TEST_NET returns a struct with the fields of a MATLAB network object
%   (what Octave passes instead of a network object), deterministic inputs X (5x7) and
%   targets T (2x7):
%
%     5 raw inputs -> removeconstantrows (row 3 is constant, removed) -> mapminmax (4 rows)
%       -> layer 1: 6 tansig -> layer 2: 4 logsig -> layer 3: 2 purelin
%       -> reverse mapminmax -> 2 outputs
%
%   [NET, X, T] = M2G_TEST_NET(1) gives the same network with one output row.
%
%   The weights are fixed numbers, not random, so every run sees the same network.
%   M2G_TEST_FORWARD is the forward pass written out in Octave.
%
%   Test support only (tests/matlab is put on the path by tests/test_matlab_helpers.py).
%
%   See also M2G_TEST_FORWARD.

  if nargin < 1
    numOutputs = 2;
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
