function info = mat2grad_info(net)
%MAT2GRAD_INFO   Describe the networks in a file as mat2grad reads them.
%   MAT2GRAD_INFO(FILE) prints every network found in the MAT-file FILE (any variable,
%   struct fields, cells, nntool state), with the path that names it for the 'Network'
%   option, its inputs, layers, outputs, processing functions and delays; or describes
%   an ONNX model when FILE ends in .onnx.
%
%   MAT2GRAD_INFO(NET) describes a network object (MATLAB) or a struct with the fields of
%   one (GNU Octave).
%
%   INFO = MAT2GRAD_INFO(...) returns the description as a struct (decoded from
%   mat2grad info --json) instead of printing it: INFO.networks holds, per network, its
%   path, version, inputs (size, processedSize, processFcns), layers (size, transferFcn),
%   weights, outputs, and zeroDerivative (layers whose derivative is zero almost
%   everywhere: hardlim, compet, ...).
%
%   Example:
%     mat2grad_info('workspace.mat')          % which networks, at which paths?
%     info = mat2grad_info('workspace.mat');
%     {info.networks.path}
%
%   See also MAT2GRAD_PREDICT, MAT2GRAD_JACOBIAN, MAT2GRAD_SETUP.

  if nargin < 1
    error('mat2grad:info:nargin', 'mat2grad: usage: mat2grad_info(FILE) or mat2grad_info(NET)');
  end
  options = cell(0, 2);
  if nargout > 0
    options = {'json', ''};
  end
  [~, out] = call_cli('info', net, struct(), options, false);
  if nargout == 0
    fprintf('%s', out);
  else
    info = jsondecode(out);
  end
end

%!shared net
%! net = m2g_test_net ();

%!test
%! % a network struct from Octave, as text and as a struct
%! text = evalc ('mat2grad_info (net)');
%! assert (~isempty (strfind (text, '5 -> [6 tansig] -> [4 logsig] -> [2 purelin] -> 2')), text);
%! assert (isempty (strfind (text, tempdir ())), text);   % no temporary file names
%! info = mat2grad_info (net);
%! assert (numel (info.networks), 1);
%! assert (info.networks(1).path, 'net');
%! assert (info.networks(1).inputs(1).size, 5);
%! assert (info.networks(1).inputs(1).processedSize, 4);
%! assert (info.networks(1).inputs(1).processFcns, {'removeconstantrows'; 'mapminmax'});
%! assert ([info.networks(1).layers.size], [6 4 2]);

%!testif ; ~isempty (m2g_test_corpus ())
%! % a file with two networks: their paths, for the 'Network' option
%! info = mat2grad_info (fullfile (m2g_test_corpus (), 'shallow', 'juanpovedapl_net1.mat'));
%! paths = cellfun (@(n) n.path, num2cell (info.networks), 'UniformOutput', false);
%! assert (paths(:)', {'net1', 'net3'});

%!error <usage> mat2grad_info ()
