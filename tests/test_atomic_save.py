"""The one way the plugin writes files: complete or absent, never a part; temporaries cleaned; folder fsync optional."""

import errno
import os

import pytest
import torch

from san_plugin.utils import atomic_save
from san_plugin.utils.atomic_save import atomic_path, atomic_torch_save, atomic_write_bytes, is_temporary


def fsync_failing_on_folders(code):
    """An ``os.fsync`` that raises ``OSError(code)`` for folders, as some filesystems do, and works for files."""
    real_fsync = os.fsync

    def fsync(fd):
        if os.path.isdir(f'/proc/self/fd/{fd}'):
            raise OSError(code, os.strerror(code))
        real_fsync(fd)

    return fsync


@pytest.mark.parametrize('code', [errno.EINVAL, errno.ENOTSUP])
def test_folder_fsync_that_the_filesystem_refuses_is_skipped(tmp_path, monkeypatch, code):
    monkeypatch.setattr(atomic_save.os, 'fsync', fsync_failing_on_folders(code))
    atomic_write_bytes(tmp_path / 'report.md', 'done')
    assert (tmp_path / 'report.md').read_text() == 'done'


def test_other_folder_fsync_errors_raise(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic_save.os, 'fsync', fsync_failing_on_folders(errno.EIO))
    with pytest.raises(OSError) as error:
        atomic_write_bytes(tmp_path / 'report.md', 'done')
    assert error.value.errno == errno.EIO


def test_failed_write_leaves_the_old_content_and_no_temporary(tmp_path):
    atomic_write_bytes(tmp_path / 'a.txt', 'old')
    with pytest.raises(RuntimeError, match='encoder broke'), atomic_path(tmp_path / 'a.txt') as tmp:
        tmp.write_text('new, half')
        raise RuntimeError('encoder broke')
    assert [p.name for p in tmp_path.iterdir()] == ['a.txt']
    assert (tmp_path / 'a.txt').read_text() == 'old'


def test_temporary_names_are_hidden_unique_not_globbed_as_the_destination_and_recognised(tmp_path):
    names = set()
    for _ in range(3):
        with atomic_path(tmp_path / 'img.png') as tmp:
            names.add(tmp.name)
            assert tmp.parent == tmp_path and tmp.name.startswith('.img.png.') and tmp.suffix == '.tmp'
            assert is_temporary(tmp.name) and f'.{os.getpid()}-' in tmp.name
            tmp.write_bytes(b'png')
    assert len(names) == 3
    assert not is_temporary('img.png') and not is_temporary('.hidden') and not is_temporary('net_g_2.pth')


def test_a_folder_is_written_whole_and_replaces_an_old_one_only_when_asked(tmp_path):
    (tmp_path / 'db.lmdb').mkdir()
    (tmp_path / 'db.lmdb' / 'stale').write_text('x')
    with pytest.raises(OSError), atomic_path(tmp_path / 'db.lmdb') as tmp:
        tmp.mkdir()
        (tmp / 'data.mdb').write_bytes(b'new')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['db.lmdb']
    with atomic_path(tmp_path / 'db.lmdb', replace_folder=True) as tmp:
        tmp.mkdir()
        (tmp / 'data.mdb').write_bytes(b'new')
    assert sorted(p.name for p in (tmp_path / 'db.lmdb').iterdir()) == ['data.mdb']


def test_nothing_written_is_an_error_naming_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=f'Cannot write {tmp_path / "x.pth"}: nothing was written'):
        with atomic_path(tmp_path / 'x.pth'):
            pass


def test_remove_temporaries_removes_only_temporaries(tmp_path):
    atomic_torch_save({'w': torch.ones(1)}, tmp_path / 'net_g_2.pth')
    (tmp_path / '.net_g_4.pth.123-0123456789ab.tmp').write_bytes(b'half')
    (tmp_path / '.4.state.123-abcdefabcdef.tmp').mkdir()
    (tmp_path / '.keep').write_text('a hidden file of the user')
    removed = atomic_save.remove_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == [
        '.4.state.123-abcdefabcdef.tmp',
        '.net_g_4.pth.123-0123456789ab.tmp',
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ['.keep', 'net_g_2.pth']


def test_sanmodel_saves_remove_temporaries_of_a_killed_save(tmp_path):
    from san_plugin.models.san_model import SANModel

    models, states = tmp_path / 'models', tmp_path / 'training_states'
    models.mkdir()
    states.mkdir()
    model = SANModel.__new__(SANModel)
    model.opt = {
        'path': {'models': str(models), 'training_states': str(states)},
        'network_g': {'type': 'SRVGGNetCompact', 'num_feat': 4, 'num_conv': 1, 'upscale': 2},
    }
    model.optimizers, model.schedulers, model.grad_scaler = [], [], None
    (models / '.net_g_2.pth.77-0123456789ab.tmp').write_bytes(b'killed mid-save')
    (states / '.2.state.77-0123456789ab.tmp').write_bytes(b'killed mid-save')
    net = torch.nn.Conv2d(3, 3, 1)
    model.save_network(net, 'net_g', 4)
    model.save_training_state(0, 4)
    assert sorted(p.name for p in models.iterdir()) == ['net_g_4.pth']
    assert sorted(p.name for p in states.iterdir()) == ['4.state']
    assert torch.equal(torch.load(models / 'net_g_4.pth', weights_only=True)['params']['weight'], net.weight)
