"""A private one-node SLURM cluster on this machine, started and stopped by the project (tests, trials of sbatch).

Everything lives under one folder ROOT, nothing in /etc: a munge key and socket, ``slurm.conf``, the controller's
state, the node's spool, logs, pid files and the job-completion log ``jobcomp.log`` (there is no slurmdbd). The one
node is this host under its real short hostname, with all its CPUs, in the default partition ``debug``; the daemons
listen on free ports of 127.0.0.1. Needs root and Debian's ``slurmctld slurmd slurm-client munge`` packages
(``make test`` installs them when it runs as root).

Usage::

    python tools/slurm_cluster.py start --root /tmp/slurm   # prints `export SLURM_CONF=...`
    SLURM_CONF=/tmp/slurm/slurm.conf srun hostname
    python tools/slurm_cluster.py stop --root /tmp/slurm

The daemons do not clash with a system-wide SLURM or munge: other ports, socket, key, pid and log files. Installing
Debian's packages starts no SLURM daemon (their init scripts need /etc/slurm/slurm.conf, which this never writes);
it may start the system's munged (not under a ``policy-rc.d`` that forbids it, as in Docker images), which keeps to
/etc/munge and /run/munge.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PARTITION = 'debug'
# What the packages must provide: the three daemons, munge's key tool, and the client commands used here.
REQUIRED_COMMANDS = ('munged', 'mungekey', 'slurmctld', 'slurmd', 'sinfo', 'srun', 'scontrol', 'squeue', 'scancel')
DAEMONS = ('munged', 'slurmctld', 'slurmd')  # start order; stopped in reverse
# Memory left to the operating system: slurmd drains a node that reports less memory than slurm.conf claims.
MEMORY_MARGIN_MIB = 512
# A Unix socket path longer than this does not fit in ``sockaddr_un``.
MAX_SOCKET_PATH = 107


class ClusterError(RuntimeError):
    """The cluster could not be started or stopped; the message says why (with the daemons' log tails)."""


def missing_requirements():
    """Return why this machine cannot run the cluster: not root, or commands missing (empty when it can).

    Returns:
        list[str]: One reason per problem.
    """
    reasons = []
    if os.geteuid() != 0:
        reasons.append('needs root (the daemons run as root with SlurmUser=root)')
    missing = [name for name in REQUIRED_COMMANDS if _which(name) is None]
    if missing:
        reasons.append(
            f'commands not found: {", ".join(missing)} (apt-get install slurmctld slurmd slurm-client munge)'
        )
    return reasons


def _which(name):
    # The daemons live in /usr/sbin, which a non-login root shell may lack on PATH.
    return shutil.which(name) or shutil.which(name, path='/usr/sbin:/sbin')


def paths(root):
    """Return the files and folders of the cluster under ``root``.

    Args:
        root (str | Path): The cluster's folder.

    Returns:
        dict[str, Path]: ``conf``, ``jobcomp``, ``key``, ``socket``, ``state``, ``spool``, ``log`` (folder) and the
        pid file of each daemon (``<daemon>_pid``).
    """
    root = Path(root).resolve()
    found = {
        'root': root,
        'conf': root / 'slurm.conf',
        'jobcomp': root / 'jobcomp.log',
        'key': root / 'munge' / 'munge.key',
        'socket': root / 'munge' / 'munge.socket',
        'seed': root / 'munge' / 'munged.seed',
        'state': root / 'state',
        'spool': root / 'spool',
        'log': root / 'log',
    }
    for daemon in DAEMONS:
        found[f'{daemon}_pid'] = root / 'run' / f'{daemon}.pid'
    return found


def cluster_env(root):
    """Return the environment variables that point SLURM's commands at the cluster in ``root``.

    Args:
        root (str | Path): The cluster's folder.

    Returns:
        dict[str, str]: ``SLURM_CONF``.
    """
    return {'SLURM_CONF': str(paths(root)['conf'])}


def _free_ports(count):
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(('127.0.0.1', 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _node_resources():
    cpus = len(os.sched_getaffinity(0))
    with open('/proc/meminfo') as meminfo:
        total_kib = next(int(line.split()[1]) for line in meminfo if line.startswith('MemTotal:'))
    return cpus, max(1, total_kib // 1024 - MEMORY_MARGIN_MIB)


def write_config(root):
    """Write ``root/slurm.conf`` for this host and return its path.

    Args:
        root (str | Path): The cluster's folder (created with its sub-folders).

    Returns:
        Path: The configuration file.
    """
    where = paths(root)
    for folder in ('state', 'spool', 'log'):
        where[folder].mkdir(parents=True, exist_ok=True)
    where['munged_pid'].parent.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname().split('.')[0]
    cpus, memory_mib = _node_resources()
    ctld_port, slurmd_port = _free_ports(2)
    settings = {
        'ClusterName': 'san-plugin',
        'SlurmctldHost': f'{host}(127.0.0.1)',
        'SlurmctldPort': ctld_port,
        'SlurmdPort': slurmd_port,
        'SlurmUser': 'root',
        'SlurmdUser': 'root',
        'AuthType': 'auth/munge',
        'CredType': 'cred/munge',
        'AuthInfo': f'socket={where["socket"]}',
        'StateSaveLocation': where['state'],
        'SlurmdSpoolDir': where['spool'],
        'SlurmctldPidFile': where['slurmctld_pid'],
        'SlurmdPidFile': where['slurmd_pid'],
        'SlurmctldLogFile': where['log'] / 'slurmctld.log',
        'SlurmdLogFile': where['log'] / 'slurmd.log',
        'SlurmctldDebug': 'info',
        'SlurmdDebug': 'info',
        # No cgroups: processes tracked through /proc, tasks not confined.
        'ProctrackType': 'proctrack/linuxproc',
        'TaskPlugin': 'task/none',
        'JobAcctGatherType': 'jobacct_gather/none',
        'AccountingStorageType': 'accounting_storage/none',
        'JobCompType': 'jobcomp/filetxt',
        'JobCompLoc': where['jobcomp'],
        'MpiDefault': 'none',
        'SwitchType': 'switch/none',
        'SchedulerType': 'sched/backfill',
        'SelectType': 'select/cons_tres',
        'SelectTypeParameters': 'CR_CPU',  # CPUs only: jobs do not reserve memory
        'SlurmdParameters': 'config_overrides',  # trust the node line below, never drain for hardware mismatch
        'ReturnToService': 2,
        'MinJobAge': 5,
        'KillWait': 5,
        'InactiveLimit': 0,
        'SlurmctldTimeout': 30,
        'SlurmdTimeout': 30,
    }
    lines = [f'{key}={value}' for key, value in settings.items()]
    lines.append(f'NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mib} State=UNKNOWN')
    lines.append(f'PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP')
    where['conf'].write_text('\n'.join(lines) + '\n')
    return where['conf']


def _read_pid(pid_file):
    try:
        return int(Path(pid_file).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _is_daemon(pid, daemon):
    """Whether ``pid`` is alive and runs ``daemon`` (a pid file may outlive its process and the pid be reused)."""
    try:
        cmdline = Path(f'/proc/{pid}/cmdline').read_bytes().split(b'\0')[0]
        stat = Path(f'/proc/{pid}/stat').read_text()
    except OSError:
        return False
    state = stat.rsplit(')', 1)[1].split()[0]
    return state != 'Z' and os.path.basename(cmdline.decode()).startswith(daemon)


def running_daemons(root):
    """Return ``{daemon: pid}`` for the daemons of the cluster in ``root`` that run now.

    Args:
        root (str | Path): The cluster's folder.

    Returns:
        dict[str, int]: Live daemons by name.
    """
    where = paths(root)
    found = {}
    for daemon in DAEMONS:
        pid = _read_pid(where[f'{daemon}_pid'])
        if pid is not None and _is_daemon(pid, daemon):
            found[daemon] = pid
    return found


def _log_tails(root, lines=15):
    where = paths(root)
    parts = []
    for log in (where['log'] / 'munged.log', where['log'] / 'slurmctld.log', where['log'] / 'slurmd.log'):
        text = log.read_text(errors='replace').splitlines()[-lines:] if log.exists() else ['(no log)']
        parts.append(f'--- {log} ---\n' + '\n'.join(text))
    return '\n'.join(parts)


def _run_daemon(command, env, root):
    """Run a daemon's command, which forks the daemon and returns; raise with the logs if it fails."""
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise ClusterError(
            f'{" ".join(map(str, command))} exited with {proc.returncode}: {proc.stderr.strip()}\n{_log_tails(root)}'
        )


def _wait_for(condition, timeout, interval=0.2):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def _node_state(env):
    proc = subprocess.run(
        [_which('sinfo'), '--noheader', '--format=%T'], env=env, capture_output=True, text=True, timeout=10
    )
    return proc.stdout.strip() if proc.returncode == 0 else f'sinfo failed: {proc.stderr.strip()}'


def start_cluster(root, timeout=30):
    """Start munged, slurmctld and slurmd for a one-node cluster in ``root``; wait until the node is idle.

    Args:
        root (str | Path): The cluster's folder, created if missing. Its previous state (jobs, logs) is replaced.
        timeout (float): Seconds to wait for the node to become idle. Default: 30.

    Returns:
        dict[str, str]: Environment variables for SLURM's commands (``SLURM_CONF``); add them to ``os.environ``.

    Raises:
        ClusterError: The machine lacks root or the packages, a cluster already runs in ``root``, the munge socket
            path is too long, or the daemons did not bring the node to idle in time (with their log tails). What was
            started is stopped again.
    """
    reasons = missing_requirements()
    if reasons:
        raise ClusterError('cannot start a SLURM cluster: ' + '; '.join(reasons))
    where = paths(root)
    if running_daemons(root):
        raise ClusterError(f'a cluster already runs in {where["root"]}: {running_daemons(root)}')
    if len(str(where['socket'])) > MAX_SOCKET_PATH:
        raise ClusterError(f'{where["socket"]} is too long for a Unix socket; choose a shorter --root')
    # Job ids start again at 1 with a fresh state, so the job log of an earlier start would mislead.
    for folder in ('state', 'spool', 'log'):
        shutil.rmtree(where[folder], ignore_errors=True)
    where['jobcomp'].unlink(missing_ok=True)
    write_config(root)
    where['key'].parent.mkdir(exist_ok=True)
    where['key'].parent.chmod(0o755)  # munged wants its socket's folder searchable by all (the key stays 0600)
    if not where['key'].exists():
        _run_daemon([_which('mungekey'), '--create', f'--keyfile={where["key"]}'], None, root)
    env = dict(os.environ, **cluster_env(root))
    try:
        _run_daemon(
            [
                _which('munged'),
                f'--socket={where["socket"]}',
                f'--key-file={where["key"]}',
                f'--pid-file={where["munged_pid"]}',
                f'--log-file={where["log"] / "munged.log"}',
                f'--seed-file={where["seed"]}',
                '--force',  # as root, and the socket folder may be one munged does not like
            ],
            env,
            root,
        )
        _run_daemon([_which('slurmctld'), '-f', where['conf']], env, root)
        _run_daemon([_which('slurmd'), '-f', where['conf']], env, root)
        if not _wait_for(lambda: _node_state(env) == 'idle', timeout):
            raise ClusterError(
                f'the node of the SLURM cluster in {where["root"]} is not idle after {timeout} s '
                f'(sinfo: {_node_state(env) or "no output"}); daemons running: {running_daemons(root)}\n'
                f'{_log_tails(root)}'
            )
    except BaseException:
        stop_cluster(root)
        raise
    return cluster_env(root)


def _cancel_jobs(env):
    squeue = subprocess.run(
        [_which('squeue'), '--noheader', '--format=%i'], env=env, capture_output=True, text=True, timeout=10
    )
    job_ids = squeue.stdout.split() if squeue.returncode == 0 else []
    if job_ids:
        subprocess.run([_which('scancel'), *job_ids], env=env, capture_output=True, timeout=10)
        squeue_now = [_which('squeue'), '--noheader']
        _wait_for(lambda: not subprocess.run(squeue_now, env=env, capture_output=True, timeout=10).stdout, 10)


def stop_cluster(root, timeout=15):
    """Cancel the cluster's jobs, then stop exactly the daemons it started (by their pid files) and wait for them.

    Args:
        root (str | Path): The cluster's folder.
        timeout (float): Seconds to wait for each daemon after SIGTERM before SIGKILL. Default: 15.
    """
    daemons = running_daemons(root)
    if 'slurmctld' in daemons:
        _cancel_jobs(dict(os.environ, **cluster_env(root)))
    for daemon in reversed(DAEMONS):
        pid = daemons.get(daemon)
        if pid is None:
            continue
        os.kill(pid, signal.SIGTERM)
        if not _wait_for(lambda pid=pid, daemon=daemon: not _is_daemon(pid, daemon), timeout):
            os.kill(pid, signal.SIGKILL)
            _wait_for(lambda pid=pid, daemon=daemon: not _is_daemon(pid, daemon), 5)


def main(argv=None):
    """Command line: ``start --root DIR`` or ``stop --root DIR``."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('action', choices=('start', 'stop'))
    parser.add_argument('--root', required=True, help='folder of the cluster (config, state, logs, munge socket)')
    parser.add_argument('--timeout', type=float, default=30, help='seconds to wait for the node to be idle')
    args = parser.parse_args(argv)
    try:
        if args.action == 'start':
            env = start_cluster(args.root, timeout=args.timeout)
            print('\n'.join(f'export {key}={value}' for key, value in env.items()))
        else:
            stop_cluster(args.root)
    except ClusterError as error:
        sys.exit(f'slurm_cluster: {error}')


if __name__ == '__main__':
    main()
