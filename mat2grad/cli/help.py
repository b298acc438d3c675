"""The CLI's help texts: the epilogs with the data layout and examples, and each
command's one-line help and description."""

from __future__ import annotations

__all__ = ["CHECK_ONNX", "COMMANDS", "CONVERT_EPILOG", "CONVERT_DTYPE", "DASK_GROUP", "EPILOG"]

DASK_GROUP = (
    "predict, jacobian and sens take --scheduler or --workers: a static MATLAB network then "
    "runs on Dask, block by block. predict and jacobian write their results block by block "
    "(with Dask's progress bar on a terminal): -o OUT.mat in MATLAB's layout (--format v7.3 "
    "for results over 2 GiB), or -o OUT.zarr with batch-first arrays (J Q x S x R). sens "
    "merges per-block statistics in a tree and writes the same struct S as without Dask to "
    "-o S.mat (--weights, --dgsm and --plot too; --committee and --interactions run without "
    "Dask only). A v7.3 --inputs file is read lazily (name the variable with --inputs-var); "
    ".npy and .zarr inputs are batch-first (Q x R)."
)

EPILOG = """\
Data layout: MAT-files hold MATLAB's layout (inputs R x Q, one column per sample; outputs
S x Q; Jacobians S x R x Q, so that J(:,:,q) = dY(:,q)/dX(:,q)); pass --samples rows for
data stored one sample per row. Results are written atomically as MAT v7 files, or v7.3
(HDF5) when a variable is over 2 GiB.

examples:
  mat2grad info net.mat
  mat2grad predict net.mat --inputs data.mat -o Y.mat
  mat2grad predict workspace.mat --inputs workspace.mat --inputs-var Input_Training \\
      --samples rows --network net -o Y.mat
  mat2grad jacobian net.mat --inputs data.mat -o J.mat
  mat2grad hessian net.mat --inputs data.mat --output-index 1 -o H.mat
  mat2grad check net.mat
  mat2grad grad net.mat --inputs data.mat --targets data.mat -o G.mat
  mat2grad sens net.mat --inputs data.mat --scale std --bootstrap 200 -o S.mat --plot S.png
  mat2grad convert net.mat -o net.onnx
  mat2grad jacobian net.mat --inputs big.mat --inputs-var X --workers 2 -o J.zarr
  mat2grad jacobian net.mat --inputs big.mat --inputs-var X --scheduler tcp://head:8786 \\
      --format v7.3 -o J.mat
  mat2grad sens net.mat --inputs big.mat --inputs-var X --workers 4 --bootstrap 200 -o S.mat

ONNX models (.onnx): data in MATLAB's layout by default (features C x N, images
H x W x C x N, sequences C x N x T; a cell with one array per input, in the model's input
order), or batch-first as the file declares it with --layout onnx. Image Jacobians are
S x (H*W*C) x N, so that reshape(J(s,:,n), H, W, C) is the gradient image of output s:
  mat2grad info model.onnx
  mat2grad predict model.onnx --inputs images.mat -o Y.mat
  mat2grad jacobian model.onnx --inputs images.mat -o J.mat
  mat2grad jacobian lstm.onnx --inputs data.mat --wrt h0,c0 --layout onnx -o J.mat
  mat2grad check model.onnx --max-samples 5

dynamic networks (narxnet, timedelaynet, layrecnet, ...): time series are MATLAB's
numInputs x TS cells of R x Q matrices (a plain R x TS matrix is one series):
  mat2grad predict narx.mat --inputs data.mat --inputs-var X --targets-var T -o Y.mat
  mat2grad predict narx.mat --inputs data.mat --inputs-var X --targets-var T --closed-loop -o Y.mat
  mat2grad predict narx.mat --inputs data.mat --known-inputs-var X1 --known-targets-var T1 \\
      --inputs-var X2 -o Y2.mat
"""

CONVERT_EPILOG = """\
The file maps raw inputs to raw outputs exactly like MATLAB's sim(net, X): the processing
functions (mapminmax, removeconstantrows, ...) are part of its graph, and it runs without
mat2grad. Layout: batch-first, features last: one (Q, R) tensor per input, one (Q, S) tensor
per output (a tuple or list for several), Q any batch size; the transpose of MATLAB's R x Q.
With --matlab-layout an .onnx file takes MATLAB's R x Q and returns S x Q instead.
Gradients through a .pt2 or .pt file are mat2grad's; through hardlim, hardlims and compet
they are zero almost everywhere. Dynamic networks (delays, feedback) are not converted.

An .onnx FILE converts too: the network mat2grad loads (MATLAB 2018's Gemm on a 4-D tensor
fixed, old opsets upgraded, Dropout removed) is written with a dynamic batch Q, also where
FILE baked batch 1 into its Reshape constants; .onnx to .onnx gives a valid file at the
chosen opset. Its tensors are batch-first as mat2grad's ONNX networks take them: (Q, C, H, W)
for images, (Q, T, C) for sequences even where FILE holds them time-major (T, Q, C).

load it with:
  .pt2   torch.export.load("net.pt2").module()(x)
  .pt    torch.jit.load("net.pt")(x)
  .onnx  onnxruntime.InferenceSession("net.onnx").run(None, {"Input": x})
  MATLAB importNetworkFromONNX("net.onnx", InputDataFormats="BC", OutputDataFormats="BC")
         ("CB" for a --matlab-layout file); importNetworkFromPyTorch("net.pt2") (R2026a+),
         importNetworkFromPyTorch("net.pt", PyTorchInputSizes=[1 R]) (R2022b+)

examples:
  mat2grad convert net.mat -o net.pt2
  mat2grad convert workspace.mat --network net1.net -o net.onnx --opset 13 --dtype float32
  mat2grad convert matlab2018_export.onnx -o fixed.onnx
"""


#: Each command's (help in the command list, description in its own --help), in the order
#: the command list shows them.
COMMANDS: dict[str, tuple[str, str]] = {
    "info": (
        "describe every network in a file",
        "Describe every network in a MAT-file (its path, format version, inputs, "
        "layers, outputs, processing functions, delays) or an ONNX model.",
    ),
    "predict": (
        "evaluate a network on inputs (like MATLAB's sim) and write Y",
        "Evaluate the network on the inputs and write Y (S x Q; Q x S with "
        "--samples rows; a cell with one matrix per output for several outputs).",
    ),
    "jacobian": (
        "per-sample Jacobians dY/dX of the outputs with respect to the inputs",
        "Compute the Jacobian of the raw outputs with respect to the raw inputs "
        "(through all input and output processing) for every sample, and write J and Y. "
        "J is S x R x Q with J(:,:,q) = dY(:,q)/dX(:,q) (Q x S x R with --samples rows); "
        "for several inputs or outputs J is a numOutputs x numInputs cell of such blocks. "
        "Dynamic networks: gradients through time (--form).",
    ),
    "hessian": (
        "per-sample Hessians d2Y(k)/dX2 of one output row",
        "Compute the Hessian of output row K (--output-index, default 1) with "
        "respect to the inputs for every sample, and write H (R x R x Q with H(:,:,q) the "
        "Hessian at sample q; Q x R x R with --samples rows) and Y. Networks with one input "
        "and one output.",
    ),
    "check": (
        "compare autograd Jacobians with finite differences",
        "Compare the Jacobian mat2grad computes with central finite differences "
        "and print the maximum relative error per output; exit status 1 when it is above "
        "--tol. Without --inputs the network's stored exampleInput is used, else random "
        "points inside the input ranges it recorded.",
    ),
    "grad": (
        "gradient of the performance (mse, crossentropy, ...) w.r.t. weights and biases",
        "Backpropagation: the network's performance on the inputs and targets "
        "(as MATLAB's perform computes it) and its gradient with respect to every weight and "
        "bias. Writes perf; db, dIW, dLW (cells shaped like net.b, net.IW, net.LW, [] where "
        "nothing is connected); dwb (a column in getwb(net) order).",
    ),
    "sens": (
        "sensitivity analysis: which inputs matter, by how much, with what confidence",
        "Statistics of the exact derivatives D(k,i,q) = dY(k,q)/dX(i,q) over the samples, "
        "in raw units through all processing (NeuralSens' definitions), written as a "
        "struct S: S.mean, S.std, S.rms (sqrt of the mean of D.^2) and S.mean_abs, each "
        "S x R (output k, input i), S.inputs and S.outputs (names), S.num_samples, "
        "S.settings; T = array2table(S.rms, 'RowNames', S.outputs, 'VariableNames', "
        "S.inputs) makes a MATLAB table. Dynamic networks: per delay, S x R x (L+1). "
        "Memory does not grow with the number of samples; with --scheduler or --workers "
        "the statistics of a static network are reduced on Dask (same S).",
    ),
    "convert": (
        "write a network as a portable .pt2, .pt or .onnx file",
        "Write the network as a file that plain PyTorch or any ONNX runtime runs "
        "without mat2grad; the suffix of OUT picks the format: .pt2 (torch.export "
        "ExportedProgram), .pt (traced TorchScript), .onnx.",
    ),
    "matlab": (
        "where the MATLAB/Octave helpers are, and the line that sets them up",
        "Print the folder of the MATLAB/Octave helpers (.m files) and the line to paste into "
        "MATLAB or Octave: addpath(...) and mat2grad_setup with this Python. With --install, "
        "write the setup into Octave's ~/.octaverc or MATLAB's startup.m instead (again: "
        "the block written before is replaced).",
    ),
    "worker": (
        "serve the MATLAB/Octave helpers from one warm process (started by them)",
        "Run commands sent as JSON lines on standard input and answer on standard output, "
        "keeping networks loaded between calls; mat2grad_setup('Worker', true) starts it. "
        "Ends when standard input closes, the parent process ends, or after --idle-timeout "
        "seconds without a request.",
    ),
}

#: check's note on ONNX models (its "ONNX models" argument group).
CHECK_ONNX = (
    "Without --inputs an ONNX model is checked at --max-samples random points, "
    "every element of every floating input uniform in [-1, 1] (seed --seed; symbolic "
    "dimensions get size 3). The finite differences cost 4 evaluations per input "
    "element: for large images pass a few points with --inputs."
)

#: convert's --dtype help.
CONVERT_DTYPE = (
    "precision of the file's weights and arithmetic (default float64, "
    "MATLAB's double; for .onnx written from an .onnx FILE, that file's own precision, "
    "float32 for nearly every exporter)"
)
