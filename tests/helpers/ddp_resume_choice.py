"""Test-only: ``load_resume_state`` under ``torchrun`` (Gloo), where rank 1 sees the run's folders differently.

Run as ``python -m torch.distributed.run --nproc_per_node=2 ddp_resume_choice.py RUN_DIR OUT_DIR``. ``RUN_DIR`` holds
``models/`` and ``training_states/``. Rank 1 is made to see only the oldest training state (as a rank can on a
network filesystem that shows a new file late), so ranks that chose on their own would disagree. Each rank writes the
iteration it resumes from, or the error it stopped with, to ``OUT_DIR/rank<r>.txt``.
"""

import os
import sys

import san_plugin  # noqa: F401  (first: makes BasicSR importable)

# isort: split
import torch.distributed as dist

from san_plugin.compat import resume


def main():
    run_dir, out_dir = sys.argv[1:3]
    dist.init_process_group('gloo')
    rank = dist.get_rank()
    if rank == 1:
        all_iterations = resume._state_iterations
        resume._state_iterations = lambda folder: all_iterations(folder)[-1:]
    opt = {
        'name': 'ddp_resume',
        'network_g': {'type': 'SAN'},
        'num_gpu': 0,
        'auto_resume': True,
        'path': {
            'models': os.path.join(run_dir, 'models'),
            'training_states': os.path.join(run_dir, 'training_states'),
            'log': run_dir,
            'resume_state': None,
        },
    }
    try:
        outcome = f'iter {resume.load_resume_state(opt)["iter"]}'
    except resume.ResumeError as error:
        outcome = f'ResumeError {error}'
    with open(os.path.join(out_dir, f'rank{rank}.txt'), 'w') as f:
        f.write(outcome)
    dist.destroy_process_group()


if __name__ == '__main__':
    main()
