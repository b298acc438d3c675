"""A fuzz harness for mat2grad's readers: structure-aware mutations of the committed fixtures,
each case loaded, predicted and differentiated in a long-lived worker process with time and
memory limits, outcomes classified.

``python -m tests.fuzz --mat N --onnx M --seed S`` runs a campaign; ``test_fuzz_slice.py``
runs a fixed-seed slice in CI. Parts: :mod:`.mutate_mat`, :mod:`.mutate_onnx` (the
mutations), :mod:`.worker` (one case, in the worker), :mod:`.pool` (the workers, limits and
outcome table).
"""
