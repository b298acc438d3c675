"""Test-session settings."""

import torch

# The tests run many small tensor operations. With more than one OpenMP thread on a
# machine whose cores are busy with other jobs, each operation can wait a whole scheduler
# time slice at its barrier (measured 10-20x slower); one thread is fastest.
torch.set_num_threads(1)
