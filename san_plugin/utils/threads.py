"""PyTorch's CPU thread count for one piece of work, put back afterwards."""

import contextlib

import torch


@contextlib.contextmanager
def torch_threads(threads):
    """Run the block with ``torch.set_num_threads(threads)`` and restore the previous count after it.

    A benchmark that runs inside a longer program (the study runner evaluates each trained network in its own process)
    must not change the thread count, and with it the numerics, of what runs after it.

    Args:
        threads (int | None): CPU threads for the block; None or 0 leaves the count as it is.
    """
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
