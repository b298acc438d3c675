function tf = is_onnx_path(net)
%IS_ONNX_PATH   True when NET is the path of an .onnx file (char row or MATLAB string).
%   ONNX models take data in MATLAB's layout for their input kind (features C-by-N,
%   images H-by-W-by-C-by-N, sequences C-by-N-by-T), so their data may have more than two
%   dimensions; MATLAB networks take R-by-Q matrices.

  tf = false;
  if isstring(net) && isscalar(net)
    net = char(net);
  end
  if ischar(net) && size(net, 1) == 1 && numel(net) >= 5
    tf = strcmpi(net(end-4:end), '.onnx');
  end
end

%!assert (is_onnx_path ('model.onnx'))
%!assert (is_onnx_path ('/a b/Model.ONNX'))
%!assert (~is_onnx_path ('net.mat'))
%!assert (~is_onnx_path ('onnx'))
%!assert (~is_onnx_path (struct ('a', 1)))
