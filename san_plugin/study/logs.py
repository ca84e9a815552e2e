"""Read BasicSR training logs: training iterations, losses and validation PSNR against iteration and training time.

BasicSR writes ``experiments/<run>/train_<run>_<time>.log`` at each start (so a resumed run has several), with a
timestamp on every record: ``Start training from epoch: E, iter: I``, one line per ``print_freq`` iterations
(``[<name>..][epoch: E, iter: I, lr:(...)] [eta: ..., time (data): ...] l_pix: ...``) and ``Validation <set>``
records followed by ``# psnr: <value>``. Training time counts the time between these records except the validations
themselves (from the iteration line to the validation record of the same iteration), summed over the starts of a
resumed run.
"""

import re
from datetime import datetime
from pathlib import Path

STAMP = r'^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3}) \w+: '
START = re.compile(STAMP + r'Start training from epoch: \d+, iter: (\d+)')
ITERATION = re.compile(
    STAMP + r'(?:\[[^\]]*\])?\[epoch:\s*\d+, iter:\s*([\d,]+), .*?\] \[eta: (.*?), time \(data\): [^\]]*\](.*)$'
)
VALIDATION = re.compile(STAMP + r'Validation (\S+)')
PSNR = re.compile(r'# psnr: ([-\d.]+|nan|inf)')
LOSS = re.compile(r'(\w+): ([-\d.e+]+)')


def _time(text):
    return datetime.strptime(text, '%Y-%m-%d %H:%M:%S,%f').timestamp()


def parse_iteration_line(line):
    """Parse one iteration line of a BasicSR log.

    Args:
        line (str): A log line.

    Returns:
        dict | None: ``iter``, ``eta`` (str or None) and ``losses`` (name: value); None for other lines.
    """
    match = ITERATION.match(line)
    if match is None:
        return None
    losses = {name: float(value) for name, value in LOSS.findall(match.group(4))}
    return {'iter': int(match.group(2).replace(',', '')), 'eta': match.group(3), 'losses': losses}


def parse_log_text(text, offset=0.0):
    """Events of one log file.

    Args:
        text (str): Content of a ``train_*.log`` file.
        offset (float): Training seconds before this file's start (earlier starts of a resumed run).

    Returns:
        tuple[list[dict], list[dict], float]: Iteration records (``iter``, ``seconds``, ``losses``), validation
        records (``iter``, ``seconds``, ``dataset``, ``psnr``) and the training seconds at the end of the file.
    """
    iterations, validations = [], []
    clock, last_time, last_iter = offset, None, None
    lines = text.splitlines()
    for index, line in enumerate(lines):
        start = START.match(line)
        if start:
            last_time, last_iter = _time(start.group(1)), int(start.group(2))
            continue
        if last_time is None:
            continue
        record = parse_iteration_line(line)
        if record is not None:
            now = _time(ITERATION.match(line).group(1))
            clock += now - last_time
            last_time, last_iter = now, record['iter']
            iterations.append({'iter': record['iter'], 'seconds': clock, 'losses': record['losses']})
            continue
        validation = VALIDATION.match(line)
        if validation:
            following = lines[index + 1] if index + 1 < len(lines) else ''
            psnr = PSNR.search(following)
            if psnr:
                validations.append(
                    {'iter': last_iter, 'seconds': clock, 'dataset': validation.group(2), 'psnr': float(psnr.group(1))}
                )
            last_time = _time(validation.group(1))
    return iterations, validations, clock


def read_training_logs(experiment_dir):
    """Iterations and validations of a run over all its log files (a resumed run has one per start).

    Records of iterations that a later start trained again (after resuming from an earlier checkpoint) are replaced
    by the later ones.

    Args:
        experiment_dir (str | Path): ``experiments/<run>``.

    Returns:
        dict: ``iterations`` and ``validations`` (see :func:`parse_log_text`), sorted by iteration, and
        ``seconds_per_iter``: training seconds per iteration between the first and the last iteration line (None
        with fewer than two lines).
    """
    iterations, validations, clock = {}, {}, 0.0
    for log in sorted(Path(experiment_dir).glob('train_*.log')):
        its, vals, clock = parse_log_text(log.read_text(encoding='utf-8', errors='replace'), clock)
        iterations.update({r['iter']: r for r in its})
        validations.update({(r['dataset'], r['iter']): r for r in vals})
    iterations = [iterations[k] for k in sorted(iterations)]
    seconds_per_iter = None
    if len(iterations) >= 2:
        first, last = iterations[0], iterations[-1]
        seconds_per_iter = (last['seconds'] - first['seconds']) / (last['iter'] - first['iter'])
    validations = [validations[k] for k in sorted(validations, key=lambda k: (k[0], k[1]))]
    return {'iterations': iterations, 'validations': validations, 'seconds_per_iter': seconds_per_iter}
