"""Test-only launcher: BasicSR's ``train_pipeline`` under ``torchrun`` or ``srun``, saving each rank's weights.

Run as ``python -m torch.distributed.run --nproc_per_node=2 ddp_train.py OUT_DIR -opt X --launcher pytorch``, or
``srun --ntasks=2 python ddp_train.py OUT_DIR -opt X --launcher slurm``. Each rank writes
``OUT_DIR/rank<r>_init.pth`` (its ``net_g`` weights) right after its model is built (after DDP's broadcast) and
``OUT_DIR/rank<r>_final.pth`` when training has finished; a model with a discriminator also writes its ``net_d``
weights to ``rank<r>_init_net_d.pth`` and ``rank<r>_final_net_d.pth``.
"""

import os
import sys

import san_plugin  # noqa: F401  (first: makes BasicSR importable, applies the plugin)

# isort: split
import basicsr.train
import torch


def save_weights(model, out_dir, rank, stage):
    """Write the bare ``net_g`` (and ``net_d``, if the model has one) of ``model`` for ``rank`` and ``stage``."""
    torch.save(model.get_bare_model(model.net_g).state_dict(), os.path.join(out_dir, f'rank{rank}_{stage}.pth'))
    if hasattr(model, 'net_d'):
        net_d = model.get_bare_model(model.net_d).state_dict()
        torch.save(net_d, os.path.join(out_dir, f'rank{rank}_{stage}_net_d.pth'))


def main():
    out_dir = sys.argv.pop(1)
    built = []
    build_model = basicsr.train.build_model

    def build_and_keep(opt):
        model = build_model(opt)
        built.append((opt['rank'], model))
        save_weights(model, out_dir, opt['rank'], 'init')
        return model

    basicsr.train.build_model = build_and_keep
    basicsr.train.train_pipeline(os.getcwd())
    rank, model = built[0]
    save_weights(model, out_dir, rank, 'final')
    torch.distributed.destroy_process_group()


if __name__ == '__main__':
    main()
