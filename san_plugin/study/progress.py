"""Console progress of a study, read from the BasicSR logs of its runs, whatever executor trains them.

Every run writes ``experiments/<run>/train_<run>_<time>.log`` (on a cluster too: the folder is shared). A background
thread reads the new lines of the runs not finished yet and logs one line per iteration record: the runs done, the
runs running, network, scale, seed (and GAN for a GAN run), iteration, losses, the run's ETA and the study's, which
counts concurrency: the work left (the running runs' ETAs plus one mean run duration per queued run) spread over the
runs at once, and never less than the longest running run's ETA.
"""

import logging
import threading
import time
from pathlib import Path

from san_plugin.study.logs import parse_iteration_line

logger = logging.getLogger(__name__)


def seconds(eta):
    """Seconds of a BasicSR ETA text ('0:01:02', '1 day, 2:03:04'; '-1 day, ...' is 0), None for none."""
    if not eta:
        return None
    parts = eta.strip().split(', ')
    days = int(parts[0].split()[0]) if len(parts) == 2 else 0
    h, m, s = (int(float(v)) for v in parts[-1].split(':'))
    return max(days * 86400 + h * 3600 + m * 60 + s, 0)


def clock(value):
    """``h:mm:ss`` of a number of seconds."""
    value = int(value)
    return f'{value // 3600}:{value // 60 % 60:02d}:{value % 60:02d}'


class Progress:
    """Progress of the runs of a study that are trained now.

    Args:
        tasks (list): The runs to train (objects with ``run``, a :class:`san_plugin.study.plan.Run`, and
            ``total_iter``, its iterations).
        total_runs (int): Runs of the study, finished before included.
        done (int): Runs finished before.
        parallel (int): Runs at once.
        experiments (Path): BasicSR's experiments folder. Default: 'experiments'.
    """

    def __init__(self, tasks, total_runs, done, parallel, experiments=Path('experiments')):
        self.tasks = {task.run.name: task for task in tasks}
        self.total_runs, self.done = total_runs, done
        self.parallel = parallel
        self.experiments = Path(experiments)
        self.durations = []
        self.state = {}  # run name: (time of the line, its ETA seconds, time the run was first seen)
        self.lock = threading.RLock()
        # Log lines written before this start (an earlier, stopped study) are not shown again.
        self.offsets = {path: path.stat().st_size for name in self.tasks for path in self._logs(name)}
        self._stop = threading.Event()
        self._thread = None

    def _logs(self, name):
        return sorted((self.experiments / name).glob('train_*.log'))

    def study_eta(self, now):
        """Seconds left in the study, from the running runs' ETAs and the runs still queued."""
        etas = [max(eta - (now - seen_at), 0) for seen_at, eta, _ in self.state.values() if eta is not None]
        if not etas:
            return None
        queued = len(self.tasks) - len(self.state)
        if self.durations:
            mean = sum(self.durations) / len(self.durations)
        else:
            mean = max(e + (at - first) for at, e, first in self.state.values() if e is not None)
        return max(max(etas), (sum(etas) + queued * mean) / self.parallel)

    def poll(self, names=None):
        """Log the iteration lines written since the last poll by the given runs (default: every unfinished one)."""
        with self.lock:
            for name in list(self.tasks) if names is None else names:
                for path in self._logs(name):
                    self._read(name, path)

    def _read(self, name, path):
        start = self.offsets.get(path, 0)
        with open(path, 'rb') as handle:
            handle.seek(start)
            data = handle.read()
        end = data.rfind(b'\n') + 1
        self.offsets[path] = start + end
        for line in data[:end].decode('utf-8', errors='replace').splitlines():
            record = parse_iteration_line(line)
            if record is not None:
                self._show(self.tasks[name], record)

    def _show(self, task, record):
        run = task.run
        now = time.time()
        eta = seconds(record['eta'])
        first = self.state.get(run.name, (None, None, now))[2]
        self.state[run.name] = (now, eta, first)
        study = self.study_eta(now)
        loss = ', '.join(f'{k} {v:.4f}' for k, v in record['losses'].items()) or '-'
        study_text = f', study ETA {clock(study)}' if study is not None else ''
        logger.info(
            f'[{self.done}/{self.total_runs} done, {len(self.state)} running] {run.label}: '
            f'iter {record["iter"]}/{task.total_iter}, {loss}, '
            f'ETA {clock(eta) if eta is not None else "-"}{study_text}'
        )

    def finished(self, task, wall_s=None):
        """A run ended: show its last lines, count it done and its duration in the mean (when it trained)."""
        with self.lock:
            self.poll([task.run.name])
            self.tasks.pop(task.run.name, None)
            self.state.pop(task.run.name, None)
            self.done += 1
            if wall_s:
                self.durations.append(wall_s)

    def __enter__(self):
        def watch():
            while not self._stop.wait(1.0):
                self.poll()

        self._thread = threading.Thread(target=watch, name='study-progress', daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
