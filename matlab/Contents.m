% mat2grad: derivatives of trained MATLAB networks, computed by PyTorch.
% Version 0.1.0
%
% Networks: a network object, a struct with the same fields (GNU Octave), the path of a
% .mat file holding a saved network, or the path of an .onnx file. Data in MATLAB's
% layout: inputs R-by-Q, one column per sample; for ONNX models as MATLAB holds data for
% the model's input (features C-by-N, images H-by-W-by-C-by-N, sequences C-by-N-by-T), or
% batch-first with 'Layout', 'onnx'; 'Wrt' names the ONNX inputs to differentiate.
%
% Derivatives
%   mat2grad_jacobian - Jacobian of a trained network's outputs with respect to its inputs.
%   mat2grad_hessian  - Second derivatives of one network output with respect to the inputs.
%   mat2grad_grad     - Gradient of a network's performance (loss) with respect to its weights.
%   mat2grad_check    - Check mat2grad's derivatives of a network against finite differences.
%   mat2grad_sensitivity - Which inputs of a trained network matter, by how much, with what confidence.
%
% Analyses
%   mat2grad_sensitivity - Which inputs of a trained network matter, by how much, with what confidence.
%
% Analyses and optimisation
%   mat2grad_sensitivity - Which inputs of a trained network matter, by how much, with what confidence.
%   mat2grad_objective - A trained network as an objective function with its exact gradient.
%
% Networks
%   mat2grad_predict  - Outputs of a trained network, computed by mat2grad (like sim).
%   mat2grad_info     - Describe the networks in a file as mat2grad reads them.
%
% Setup
%   mat2grad_setup    - Tell the mat2grad helpers which Python to use, and check it works.
%
% The helpers run "PYTHON -m mat2grad ..." in one warm Python process per session
% (milliseconds per call; the default in GNU Octave, mat2grad_setup('Worker', true) in
% MATLAB) or through system() (mat2grad_setup('Worker', false)); in MATLAB,
% mat2grad_setup('InProcess', true) calls mat2grad through py. instead. Install the
% Python package first (pip install mat2grad, or from a clone of the repository:
% pip install -c constraints.txt -e .), then run mat2grad_setup.
