"""Test-time strategies of ``san_plugin.utils.test_time``: the authors' recursive chop, tiles, x8 self-ensemble."""

import functools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from san_plugin.utils import test_time
from san_plugin.utils.test_time import forward_chop, forward_self_ensemble, forward_tiled

pytest_plugins = ['pytester']


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    """Hundreds of tiny convolutions: one thread avoids slow thread hand-offs on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


DEVICES = ['cpu', pytest.param('cuda', marks=pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA'))]


class PieceNet(nn.Module):
    """Conv, minus each sample's mean, then PixelShuffle: the output depends on where the pieces are cut."""

    def __init__(self, scale, in_ch=3, out_ch=3):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch * scale * scale, 3, 1, 1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x):
        feat = self.conv(x)
        return self.shuffle(feat - feat.mean(dim=(2, 3), keepdim=True))


class LocalNet(nn.Module):
    """Two 3x3 convs (receptive field reaches 2 pixels) and PixelShuffle: the same result on any tiling."""

    def __init__(self, scale):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, 1, 1), nn.ReLU(), nn.Conv2d(8, 3 * scale * scale, 3, 1, 1), nn.PixelShuffle(scale)
        )

    def forward(self, x):
        return self.body(x)


class Recorder:
    """Wrap a network and remember the shape of every input it gets."""

    def __init__(self, net):
        self.net = net
        self.shapes = []

    def __call__(self, x):
        self.shapes.append(tuple(x.shape))
        return self.net(x)


def upscale_nearest(x, scale=2):
    return F.interpolate(x, scale_factor=scale, mode='nearest')


def reference_chop(net, x, scale, shave, min_size, group):
    """The authors' recursion, restated: compute the four whole pieces, then paste each output quarter."""
    b, _, h, w = x.shape
    h_half, w_half = h // 2, w // 2
    h_size, w_size = h_half + shave, w_half + shave
    assert h_size <= h and w_size <= w, "the authors' code cannot run on this size"
    corners = [(0, 0), (0, w - w_size), (h - h_size, 0), (h - h_size, w - w_size)]
    pieces = [x[:, :, top : top + h_size, left : left + w_size] for top, left in corners]
    if h_size * w_size < min_size:
        outs = []
        for i in range(0, 4, group):
            outs.extend(net(torch.cat(pieces[i : i + group])).split(b))
    else:
        outs = [reference_chop(net, piece, scale, shave, min_size, group) for piece in pieces]
    big_h, big_w = scale * h, scale * w
    cut_h, cut_w = scale * h_half, scale * w_half
    piece_h, piece_w = scale * h_size, scale * w_size
    result = x.new_zeros(b, outs[0].size(1), big_h, big_w)
    result[:, :, :cut_h, :cut_w] = outs[0][:, :, :cut_h, :cut_w]
    result[:, :, :cut_h, cut_w:] = outs[1][:, :, :cut_h, piece_w - (big_w - cut_w) :]
    result[:, :, cut_h:, :cut_w] = outs[2][:, :, piece_h - (big_h - cut_h) :, :cut_w]
    result[:, :, cut_h:, cut_w:] = outs[3][:, :, piece_h - (big_h - cut_h) :, piece_w - (big_w - cut_w) :]
    return result


# ---------------------------------------------------------------------------------------------------------- chop


@pytest.mark.parametrize(
    'size, scale, shave, min_size, group, batch',
    [
        ((25, 30), 2, 10, 500, 1, 1),  # two levels
        ((47, 39), 3, 4, 200, 1, 2),  # three levels, batch of 2
        ((33, 52), 2, 6, 100000, 2, 1),  # one level, pieces two at a time
        ((47, 39), 2, 4, 200, 3, 2),  # three at a time: groups of 3 and 1
        ((40, 40), 2, 10, 160000, 4, 1),  # the authors' defaults
    ],
)
def test_chop_matches_authors_recursion(size, scale, shave, min_size, group, batch):
    net = PieceNet(scale).eval()
    lq = torch.rand(batch, 3, *size)
    with torch.no_grad():
        expected = reference_chop(net, lq, scale, shave, min_size, group)
        out = forward_chop(net, lq, scale, shave=shave, min_size=min_size, pieces_per_batch=group)
        whole = net(lq)
    torch.testing.assert_close(out, expected)
    assert not torch.allclose(out, whole, atol=1e-3)  # the pieces do matter for this network


def test_chop_pieces_worked_out_by_hand():
    # Channel 0 holds the row, channel 1 the column; the network subtracts the position of its piece's top-left pixel,
    # so the output tells which piece every pixel came from.
    # 25 x 30, shave 10, min_size 500: the first cut gives 22 x 25 pieces (550 px, cut again) at rows 0 / 3 and
    # columns 0 / 5; these give 21 x 22 pieces (462 px) at rows +0 / +1 and columns +0 / +3 within them.
    h, w = 25, 30
    rows = torch.arange(h, dtype=torch.float64)[:, None].expand(h, w)
    cols = torch.arange(w, dtype=torch.float64)[None, :].expand(h, w)
    lq = torch.stack([rows, cols])[None]
    net = Recorder(lambda x: upscale_nearest(x - x[:, :, :1, :1]))
    out = forward_chop(net, lq, 2, shave=10, min_size=500)

    row_origin = [0] * 11 + [1] + [3] * 2 + [4] * 11  # input rows 0-10, 11, 12-13, 14-24
    col_origin = [0] * 12 + [3] * 3 + [5] * 2 + [8] * 13  # input cols 0-11, 12-14, 15-16, 17-29
    expected_rows = torch.tensor([r - row_origin[r] for r in range(h)], dtype=torch.float64)
    expected_cols = torch.tensor([c - col_origin[c] for c in range(w)], dtype=torch.float64)
    assert torch.equal(out[0, 0, ::2, 0], expected_rows)
    assert torch.equal(out[0, 1, 0, ::2], expected_cols)
    assert torch.equal(out, upscale_nearest(out[:, :, ::2, ::2]))
    assert net.shapes == [(1, 2, 21, 22)] * 16


@pytest.mark.parametrize('group, batch, expected_calls', [(1, 1, 4), (2, 1, 2), (4, 2, 1), (3, 2, 2)])
def test_chop_sends_pieces_in_groups(group, batch, expected_calls):
    net = Recorder(PieceNet(2).eval())
    with torch.no_grad():
        forward_chop(net, torch.rand(batch, 3, 30, 26), 2, pieces_per_batch=group)
    assert len(net.shapes) == expected_calls
    assert net.shapes[0] == (batch * min(group, 4), 3, 25, 23)


@pytest.mark.parametrize(
    'size, min_size',
    [((6, 7), 160000), ((1, 1), 160000), ((1, 45), 160000), ((20, 20), 1), ((41, 12), 300), ((64, 50), 1000)],
)
def test_chop_of_a_local_network_is_the_whole_forward(size, min_size):
    # Small sides (where the authors' code fails) get pieces limited to the image; min_size=1 cannot be reached,
    # and the recursion stops at pieces that no longer shrink.
    net = LocalNet(2).eval()
    lq = torch.rand(1, 3, *size)
    with torch.no_grad():
        torch.testing.assert_close(forward_chop(net, lq, 2, min_size=min_size), net(lq))


@pytest.mark.parametrize('size, shave', [((7, 9), 0), ((31, 20), 0), ((8, 11), 1)])
def test_chop_pieces_cover_odd_sides_without_shave(size, shave):
    lq = torch.rand(2, 3, *size)
    assert torch.equal(forward_chop(upscale_nearest, lq, 2, shave=shave, min_size=30), upscale_nearest(lq))


def test_chop_small_image_uses_whole_image_pieces():
    net = Recorder(PieceNet(2).eval())
    lq = torch.rand(1, 3, 6, 7)
    with torch.no_grad():
        torch.testing.assert_close(forward_chop(net, lq, 2), net.net(lq))
    assert net.shapes == [(1, 3, 6, 7)] * 4


@pytest.mark.parametrize(
    'kwargs, message',
    [
        ({'shave': -1}, 'shave must be an integer >= 0, got -1'),
        ({'min_size': 0}, 'min_size must be an integer >= 1, got 0'),
        ({'pieces_per_batch': 0}, 'pieces_per_batch must be an integer >= 1, got 0'),
        ({'scale': 2.0}, 'scale must be an integer >= 1, got 2.0'),
    ],
)
def test_chop_rejects_bad_arguments(kwargs, message):
    args = {'scale': 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        forward_chop(LocalNet(2), torch.rand(1, 3, 8, 8), **args)


@pytest.mark.parametrize('strategy', ['chop', 'tile'])
def test_wrong_scale_is_reported(strategy):
    kwargs = {'chop': True} if strategy == 'chop' else {'tile': 32}
    with pytest.raises(ValueError, match=r'expected \(1, c, 60, 60\) for scale 3'), torch.no_grad():
        test_time.test_forward(LocalNet(2), torch.rand(1, 3, 20, 20), 3, **kwargs)


def test_bad_input_shape_is_reported():
    with pytest.raises(ValueError, match=r'lq must be a \(b, c, h, w\) tensor .* got shape \(3, 8, 8\)'):
        forward_tiled(LocalNet(2), torch.rand(3, 8, 8), 2, 4, 1)


# --------------------------------------------------------------------------------------------------------- tiles


@pytest.mark.parametrize(
    'size, tile_size, tile_pad, batch',
    [
        ((37, 23), 8, 3, 2),  # sizes not divisible by the tile
        ((16, 24), 8, 2, 1),  # divisible; pad exactly the receptive field
        ((13, 9), 64, 10, 1),  # tile larger than the image
        ((5, 40), 7, 6, 1),  # one side shorter than the tile
    ],
)
def test_tiles_of_a_local_network_are_the_whole_forward(size, tile_size, tile_pad, batch):
    net = LocalNet(3).eval()
    lq = torch.rand(batch, 3, *size)
    with torch.no_grad():
        out = forward_tiled(net, lq, 3, tile_size, tile_pad)
        expected = net(lq)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


def test_tiles_too_little_context_differ():
    net = LocalNet(2).eval()  # reaches 2 pixels; 1 pixel of context is not enough
    lq = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        assert not torch.allclose(forward_tiled(net, lq, 2, 8, 1), net(lq), atol=1e-4)


def test_tiles_have_one_size_and_report_progress():
    net = Recorder(LocalNet(2).eval())
    calls = []
    with torch.no_grad():
        forward_tiled(net, torch.rand(1, 3, 37, 23), 2, 8, 3, progress=lambda done, total: calls.append((done, total)))
    total = math.ceil(37 / 8) * math.ceil(23 / 8)
    assert calls == [(done, total) for done in range(1, total + 1)]
    # Rows: tiles at 0, 8, 16, 24 and (moved back) 29, with 3 px of context clipped to the image.
    heights = [11, 14, 14, 14, 11]
    widths = [11, 14, 11]  # columns: tiles at 0, 8 and 15
    assert net.shapes == [(1, 3, th, tw) for th in heights for tw in widths]


@pytest.mark.parametrize(
    'tile_size, tile_pad, message',
    [
        (0, 0, 'tile_size must be an integer >= 1, got 0'),
        (8, 8, r'tile_pad \(8\) must be smaller than tile_size \(8\)'),
        (8, -1, 'tile_pad must be an integer >= 0, got -1'),
    ],
)
def test_tiles_reject_bad_arguments(tile_size, tile_pad, message):
    with pytest.raises(ValueError, match=message):
        forward_tiled(LocalNet(2), torch.rand(1, 3, 8, 8), 2, tile_size, tile_pad)


# ------------------------------------------------------------------------------------------------- self-ensemble


def dihedral_mean(forward_fn, x):
    """The mean over the 8 rotations / reflections, each undone: written with rot90, independently of the module."""
    outs = []
    for mirror in (False, True):
        for k in range(4):
            aug = torch.rot90(x.flip(-1) if mirror else x, k, dims=(-2, -1))
            out = torch.rot90(forward_fn(aug), -k, dims=(-2, -1))
            outs.append(out.flip(-1) if mirror else out)
    return torch.stack(outs).mean(0)


def test_self_ensemble_of_an_equivariant_network_is_the_plain_forward():
    lq = torch.rand(2, 3, 7, 10)
    torch.testing.assert_close(forward_self_ensemble(upscale_nearest, lq), upscale_nearest(lq))


def test_self_ensemble_worked_out_by_hand():
    # Output = upscaled input + its row index. Undone, the row ramp becomes R, H-1-R (flips) or C, W-1-C (transposes),
    # which average to (H + W - 2) / 4 everywhere.
    def ramp(x):
        up = upscale_nearest(x)
        return up + torch.arange(up.size(2), dtype=x.dtype)[:, None]

    lq = torch.rand(1, 3, 5, 8, dtype=torch.float64)
    out = forward_self_ensemble(ramp, lq)
    torch.testing.assert_close(out, upscale_nearest(lq) + (10 + 16 - 2) / 4)


def test_self_ensemble_averages_each_sample():
    net = PieceNet(2).eval()
    lq = torch.rand(2, 3, 9, 6)
    with torch.no_grad():
        out = forward_self_ensemble(net, lq)
        torch.testing.assert_close(out, dihedral_mean(net, lq))
        torch.testing.assert_close(out[1:], forward_self_ensemble(net, lq[1:]))
        assert not torch.allclose(out, net(lq), atol=1e-3)


# ------------------------------------------------------------------------------------------------- entry point


@pytest.mark.parametrize('self_ensemble', [False, True])
@pytest.mark.parametrize('strategy', ['plain', 'chop', 'tile'])
def test_test_forward_combines_strategies(strategy, self_ensemble):
    net = PieceNet(2).eval()
    lq = torch.rand(1, 3, 30, 22)
    kwargs = {'plain': {}, 'chop': {'chop': True, 'min_size': 500}, 'tile': {'tile': 12, 'tile_pad': 4}}[strategy]
    single = {
        'plain': net,
        'chop': functools.partial(forward_chop, net, scale=2, min_size=500),
        'tile': functools.partial(forward_tiled, net, scale=2, tile_size=12, tile_pad=4),
    }[strategy]
    with torch.no_grad():
        out = test_time.test_forward(net, lq, 2, self_ensemble=self_ensemble, **kwargs)
        expected = forward_self_ensemble(single, lq) if self_ensemble else single(lq)
        different = forward_self_ensemble(single, lq) if not self_ensemble else single(lq)
    assert torch.equal(out, expected)
    assert not torch.allclose(out, different, atol=1e-3)


def test_test_forward_rejects_chop_with_tiles():
    with pytest.raises(ValueError, match='chop and tile cannot be combined: got chop=True and tile=16'):
        test_time.test_forward(LocalNet(2), torch.rand(1, 3, 8, 8), 2, chop=True, tile=16)


def test_test_forward_imported_into_a_test_module_is_not_collected(pytester):
    """``test_forward`` is named like a test: a test module importing it must not make pytest run it as one (which
    fails for want of fixtures named ``net``, ``lq`` and ``scale``)."""
    pytester.makepyfile('from san_plugin.utils.test_time import test_forward\n\n\ndef test_one():\n    pass\n')
    pytester.runpytest_inprocess('-p', 'no:cacheprovider').assert_outcomes(passed=1)


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('dtype', [torch.float64, torch.bfloat16])
@pytest.mark.parametrize('kwargs', [{'chop': True}, {'tile': 8, 'tile_pad': 2}, {'self_ensemble': True}])
def test_device_and_dtype_are_kept(device, dtype, kwargs):
    net = LocalNet(2).to(device, dtype).eval()
    lq = torch.rand(1, 3, 24, 20, device=device, dtype=dtype)
    with torch.no_grad():
        out = test_time.test_forward(net, lq, 2, **kwargs)
        expected = dihedral_mean(net, lq) if kwargs.get('self_ensemble') else net(lq)
    assert out.dtype == dtype and out.device == lq.device
    tolerance = 1e-10 if dtype == torch.float64 else 0.05
    torch.testing.assert_close(out, expected, rtol=0, atol=tolerance)
