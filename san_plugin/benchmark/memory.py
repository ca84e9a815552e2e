"""Peak memory of a stretch of work: CUDA allocator peak, or the process peak resident set on the CPU.

On CUDA, ``torch.cuda.max_memory_allocated`` after a reset of the peak counter. On the CPU, the peak resident set
size (``VmHWM`` of ``/proc/self/status``) is reset to the current size by writing ``5`` to ``/proc/self/clear_refs``
(Linux), and the peak is its increase over the size at the reset. Where that reset is refused, the increase of the
peak itself is measured: exact in a fresh process (whose peak so far is its current size), a lower bound later. Without
``/proc`` (not Linux) the CPU peak is unknown (None).
"""

from pathlib import Path

import torch

STATUS = Path('/proc/self/status')
CLEAR_REFS = Path('/proc/self/clear_refs')
MIB = 1024 * 1024


def _status_kib(field):
    for line in STATUS.read_text().splitlines():
        if line.startswith(f'{field}:'):
            return int(line.split()[1])
    raise RuntimeError(f'{field} missing from {STATUS}')


def rss_peak_mib():
    """Peak resident set size of this process (``VmHWM``) in MiB."""
    return _status_kib('VmHWM') / 1024


class PeakMemory:
    """Measure the peak memory of the work done between :meth:`start` and :meth:`peak_mb`.

    Args:
        device (torch.device): The device the work runs on.
    """

    def __init__(self, device):
        self.device = torch.device(device)
        self.baseline_kib = None

    def start(self):
        """Reset the peak counter; returns self."""
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        try:
            CLEAR_REFS.write_text('5')
            self.baseline_kib = _status_kib('VmRSS')
        except PermissionError:
            self.baseline_kib = _status_kib('VmHWM')
        except OSError:
            self.baseline_kib = None
        return self

    def peak_mb(self):
        """Peak since :meth:`start` in MiB: allocated CUDA memory, or the resident-set increase on the CPU (or None)."""
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) / MIB
        if self.baseline_kib is None:
            return None
        return (_status_kib('VmHWM') - self.baseline_kib) / 1024


def describe_method(device):
    """One sentence saying how :class:`PeakMemory` measures on ``device``."""
    if torch.device(device).type == 'cuda':
        return 'torch.cuda.max_memory_allocated after torch.cuda.reset_peak_memory_stats (weights, inputs, activations)'
    return 'increase of the process peak RSS (VmHWM) after resetting it through /proc/self/clear_refs'
