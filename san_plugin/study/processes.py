"""Supervision of a study's child processes: start a training process, stream its output, and stop every one of them
when the study stops (Ctrl-C, SIGTERM, an error), so that a stopped study leaves no training running behind it (each
run resumes from its last checkpoint next time).

One process-wide set holds the children that :func:`stream_process` started; :func:`stop_children` terminates them
and refuses new ones until :func:`accept_children` (the start of a study). :func:`stop_on_sigterm` turns SIGTERM
into ``SystemExit`` in a tool, :func:`raise_on_signal` turns a signal into an exception inside a SLURM job.
"""

import collections
import os
import signal
import subprocess
import sys
import threading

OUTPUT_TAIL = 40
_CHILDREN = set()
_LOCK = threading.Lock()
_STOPPING = threading.Event()


def thread_env(threads):
    """Environment of a subprocess limited to ``threads`` CPU threads (this process's, unchanged, for None).

    Args:
        threads (int | None): CPU threads.

    Returns:
        dict: The environment.
    """
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def stream_process(command, env, on_line):
    """Run ``command``, calling ``on_line`` with each line of its output; return its exit code and last lines.

    If anything stops the caller meanwhile (an error in ``on_line``, Ctrl-C, SIGTERM after :func:`stop_on_sigterm`,
    a signal after :func:`raise_on_signal`), the child is terminated before the exception goes on.

    Args:
        command (list[str]): The command.
        env (dict): Its environment.
        on_line (callable): Called with each output line (stdout and stderr), without its line break.

    Returns:
        tuple[int, list[str]]: Exit code and the last ``OUTPUT_TAIL`` lines.

    Raises:
        RuntimeError: :func:`stop_children` was called, in a thread other than the main one (a worker of a stopped
            study starts nothing new).
    """
    tail = collections.deque(maxlen=OUTPUT_TAIL)
    with _LOCK:
        if _STOPPING.is_set() and threading.current_thread() is not threading.main_thread():
            raise RuntimeError('the study is stopping')
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        _CHILDREN.add(process)
    with process:
        try:
            for line in process.stdout:
                tail.append(line.rstrip())
                on_line(line.rstrip())
        except BaseException:
            process.terminate()
            raise
        finally:
            with _LOCK:
                _CHILDREN.discard(process)
    return process.returncode, list(tail)


def stop_children():
    """Terminate every process :func:`stream_process` started and refuse new ones in worker threads."""
    with _LOCK:
        _STOPPING.set()
        for process in _CHILDREN:
            process.terminate()


def accept_children():
    """Let worker threads start processes again (a study starts after an earlier one in this process stopped)."""
    _STOPPING.clear()


def stop_on_sigterm():
    """Turn SIGTERM into ``SystemExit`` in this process, so that :func:`stream_process` stops its child too."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def raise_on_signal(signum, error):
    """Raise ``error(signum)`` in the main thread when this process gets signal ``signum``; a child that
    :func:`stream_process` streams is terminated on the way.

    Args:
        signum (int): The signal.
        error (callable): Makes the exception from the signal number.
    """

    def handler(received, frame):
        raise error(received)

    signal.signal(signum, handler)
