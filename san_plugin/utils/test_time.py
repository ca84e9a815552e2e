"""Test-time forward strategies: the authors' recursive chop, overlapping tiles and the x8 self-ensemble.

All functions take a network (any callable mapping a (b, c, h, w) tensor to (b, c', h * scale, w * scale)) and a
low-quality batch, work on any device and floating dtype, and return the result on the input's device and in its
dtype. Each piece or tile is written into the output as soon as it is computed, so at most one piece's activations
(one batch of pieces for ``forward_chop``) live beside the output. Gradients are the caller's business: wrap calls in
``torch.no_grad()`` or ``torch.inference_mode()`` for inference.
"""

import functools

import torch


def _check_positive_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f'{name} must be an integer >= {minimum}, got {value!r}')


def _check_lq(lq):
    if lq.dim() != 4 or lq.size(-2) < 1 or lq.size(-1) < 1:
        raise ValueError(f'lq must be a (b, c, h, w) tensor with h, w >= 1, got shape {tuple(lq.shape)}')


def _run(net, lq, scale):
    """``net(lq)``, checked to be ``scale`` times larger than ``lq`` with the same batch size."""
    out = net(lq)
    h, w = lq.shape[-2:]
    if out.dim() != 4 or out.size(0) != lq.size(0) or tuple(out.shape[-2:]) != (scale * h, scale * w):
        raise ValueError(
            f'the network turned a {tuple(lq.shape)} input into {tuple(out.shape)}; '
            f'expected ({lq.size(0)}, c, {scale * h}, {scale * w}) for scale {scale}'
        )
    return out


class _Canvas:
    """Output buffer of an upscaled ``lq``, allocated on the first write (the network sets the channel count)."""

    def __init__(self, lq, scale):
        self.lq = lq
        self.scale = scale
        self.output = None

    def write(self, row, col, patch):
        """Copy ``patch`` into the output with its top-left corner at (``row``, ``col``) in output pixels."""
        if self.output is None:
            b, _, h, w = self.lq.shape
            self.output = self.lq.new_empty(b, patch.size(1), h * self.scale, w * self.scale)
        self.output[:, :, row : row + patch.size(2), col : col + patch.size(3)] = patch


def _shifted(write, row_offset, col_offset):
    """A writer for a piece whose output starts at (``row_offset``, ``col_offset``) in the frame of ``write``."""

    def write_piece(row, col, patch):
        write(row + row_offset, col + col_offset, patch)

    return write_piece


def _chop_pieces(h, w, scale, shave, window):
    """The four overlapping pieces of an ``h`` x ``w`` image, each with the part of ``window`` it provides.

    The image is split at ``h // 2`` and ``w // 2``; each piece is ``h // 2 + shave`` by ``w // 2 + shave`` and is
    anchored at its quarter's outer corner. Piece k provides quarter k of the output. Pieces are at most the image,
    and at least one pixel longer than the half on odd sides (so that they cover their quarter with ``shave=0``).

    Args:
        h (int): Image height.
        w (int): Image width.
        scale (int): Upscaling factor.
        shave (int): Overlap added to each half, in input pixels.
        window (tuple[int]): (top, bottom, left, right) region of the output wanted, in output pixels.

    Returns:
        tuple: (piece_h, piece_w, pieces), where ``pieces`` lists, in the order top-left, top-right, bottom-left,
        bottom-right and leaving out pieces that provide nothing of ``window``, tuples (top, left, piece_window):
        the piece's position in the input and the region it provides, in its own output pixels.
    """
    h_half, w_half = h // 2, w // 2
    piece_h = min(h_half + max(shave, h % 2), h)
    piece_w = min(w_half + max(shave, w % 2), w)
    top, bottom, left, right = window
    pieces = []
    for piece_top, rows in ((0, (0, h_half)), (h - piece_h, (h_half, h))):
        for piece_left, cols in ((0, (0, w_half)), (w - piece_w, (w_half, w))):
            row0, row1 = max(top, scale * rows[0]), min(bottom, scale * rows[1])
            col0, col1 = max(left, scale * cols[0]), min(right, scale * cols[1])
            if row0 < row1 and col0 < col1:
                row_shift, col_shift = scale * piece_top, scale * piece_left
                piece_window = (row0 - row_shift, row1 - row_shift, col0 - col_shift, col1 - col_shift)
                pieces.append((piece_top, piece_left, piece_window))
    return piece_h, piece_w, pieces


def _chop(net, lq, scale, shave, min_size, pieces_per_batch, window, write):
    """Compute ``window`` of the chopped forward of ``lq`` and hand it to ``write`` (output pixels of ``lq``)."""
    h, w = lq.shape[-2:]
    piece_h, piece_w, pieces = _chop_pieces(h, w, scale, shave, window)
    # A piece as large as its image cannot be split further: the recursion stops there.
    if piece_h * piece_w >= min_size and (piece_h < h or piece_w < w):
        for top, left, piece_window in pieces:
            piece = lq[:, :, top : top + piece_h, left : left + piece_w]
            piece_write = _shifted(write, scale * top, scale * left)
            _chop(net, piece, scale, shave, min_size, pieces_per_batch, piece_window, piece_write)
        return
    for start in range(0, len(pieces), pieces_per_batch):
        group = pieces[start : start + pieces_per_batch]
        batch = torch.cat([lq[:, :, top : top + piece_h, left : left + piece_w] for top, left, _ in group])
        outputs = _run(net, batch, scale).split(lq.size(0))
        for (top, left, (row0, row1, col0, col1)), out in zip(group, outputs):
            write(scale * top + row0, scale * left + col0, out[:, :, row0:row1, col0:col1])


def forward_chop(net, lq, scale, shave=10, min_size=160000, pieces_per_batch=1):
    """Upscale ``lq`` in overlapping pieces, as the authors' test code does with ``--chop``.

    The image is cut into four pieces of ``h // 2 + shave`` by ``w // 2 + shave`` pixels, one anchored at each
    corner; pieces of ``min_size`` pixels or more are cut again the same way, recursively. Each output quarter (split
    at ``h // 2``, ``w // 2``) is taken from the piece anchored at its corner, so the pieces' ``shave`` overlap is
    discarded. Networks with global statistics (SAN's non-local regions and SOCA) give outputs that depend on the
    pieces; this reproduces the published numbers. Where the authors' code fails (a side shorter than about
    ``2 * shave``, an odd side with ``shave=0``, or pieces that can never shrink below ``min_size``), pieces are
    limited to the image, cover their quarter, and the recursion stops at pieces that cannot shrink.

    Args:
        net (Callable): Network, (b, c, h, w) -> (b, c', h * scale, w * scale).
        lq (Tensor): Low-quality batch, (b, c, h, w).
        scale (int): Upscaling factor of ``net``.
        shave (int): Overlap added to each half, in input pixels. Default: 10.
        min_size (int): Pieces with fewer pixels than this go through the network; larger ones are cut again.
            Default: 160000.
        pieces_per_batch (int): Pieces sent to the network together, in order (the authors' code uses its GPU
            count, at most 4). Default: 1.

    Returns:
        Tensor: (b, c', h * scale, w * scale), on ``lq``'s device and in its dtype.
    """
    _check_lq(lq)
    _check_positive_int(scale, 'scale')
    _check_positive_int(shave, 'shave', minimum=0)
    _check_positive_int(min_size, 'min_size')
    _check_positive_int(pieces_per_batch, 'pieces_per_batch')
    h, w = lq.shape[-2:]
    canvas = _Canvas(lq, scale)
    _chop(net, lq, scale, shave, min_size, pieces_per_batch, (0, scale * h, 0, scale * w), canvas.write)
    return canvas.output


def _tile_spans(length, tile_size, tile_pad):
    """Tiles along one side: (core_start, core_end, input_start, input_end) for each, in input pixels.

    The cores partition ``[0, length)`` in steps of ``tile_size``; every tile's input is ``tile_size`` long (the last
    one is moved back to end at the border) plus ``tile_pad`` on each side, clipped to the image.
    """
    spans = []
    for core_start in range(0, length, tile_size):
        core_end = min(core_start + tile_size, length)
        tile_start = max(0, min(core_start, length - tile_size))
        tile_end = min(length, tile_start + tile_size)
        spans.append((core_start, core_end, max(0, tile_start - tile_pad), min(length, tile_end + tile_pad)))
    return spans


def forward_tiled(net, lq, scale, tile_size, tile_pad=10, progress=None):
    """Upscale ``lq`` tile by tile, to bound the memory that large images need.

    Tiles of ``tile_size`` x ``tile_size`` input pixels (the last row and column moved back to end at the border, so
    all tiles have the same size when the image is at least that large) are extended by ``tile_pad`` pixels of
    context on each side; the context's output is cropped away. For a network whose receptive field reaches at most
    ``tile_pad`` pixels, the result equals the whole-image forward. Networks with global statistics (non-local
    attention, SOCA) see one tile at a time and give slightly different results.

    Args:
        net (Callable): Network, (b, c, h, w) -> (b, c', h * scale, w * scale).
        lq (Tensor): Low-quality batch, (b, c, h, w).
        scale (int): Upscaling factor of ``net``.
        tile_size (int): Side of the tiles, in input pixels.
        tile_pad (int): Context added on each side of a tile, in input pixels; less than ``tile_size``. Default: 10.
        progress (Callable | None): Called as ``progress(done, total)`` after each tile. Default: None.

    Returns:
        Tensor: (b, c', h * scale, w * scale), on ``lq``'s device and in its dtype.
    """
    _check_lq(lq)
    _check_positive_int(scale, 'scale')
    _check_positive_int(tile_size, 'tile_size')
    _check_positive_int(tile_pad, 'tile_pad', minimum=0)
    if tile_pad >= tile_size:
        raise ValueError(f'tile_pad ({tile_pad}) must be smaller than tile_size ({tile_size})')
    h, w = lq.shape[-2:]
    row_spans, col_spans = _tile_spans(h, tile_size, tile_pad), _tile_spans(w, tile_size, tile_pad)
    total = len(row_spans) * len(col_spans)
    canvas = _Canvas(lq, scale)
    done = 0
    for row0, row1, in_top, in_bottom in row_spans:
        for col0, col1, in_left, in_right in col_spans:
            out = _run(net, lq[:, :, in_top:in_bottom, in_left:in_right], scale)
            top, left = scale * (row0 - in_top), scale * (col0 - in_left)
            core = out[:, :, top : top + scale * (row1 - row0), left : left + scale * (col1 - col0)]
            canvas.write(scale * row0, scale * col0, core)
            del out, core
            done += 1
            if progress is not None:
                progress(done, total)
    return canvas.output


def _augment(x, flip_w, flip_h, transpose):
    if flip_w:
        x = x.flip(-1)
    if flip_h:
        x = x.flip(-2)
    return x.transpose(-2, -1).contiguous() if transpose else x


def _deaugment(x, flip_w, flip_h, transpose):
    if transpose:
        x = x.transpose(-2, -1)
    if flip_h:
        x = x.flip(-2)
    return x.flip(-1) if flip_w else x


def forward_self_ensemble(forward_fn, lq):
    """The x8 geometric self-ensemble: average of the outputs for the 8 flips and transposes of ``lq``, each undone.

    The inputs come in the authors' order (identity, width flip, height flip, both, then the same four transposed),
    and each output is averaged per sample (the authors' code averages over the whole batch; they test one image at
    a time). The sum is kept in float32 for half-precision inputs.

    Args:
        forward_fn (Callable): (b, c, h, w) -> (b, c', H, W); called 8 times, with (b, c, w, h) inputs for the
            transposed ones (a plain network, or e.g. ``functools.partial(forward_chop, net, scale=4)``).
        lq (Tensor): Low-quality batch, (b, c, h, w).

    Returns:
        Tensor: The average output, on ``lq``'s device and in its dtype.
    """
    _check_lq(lq)
    total = None
    for transpose in (False, True):
        for flip_h in (False, True):
            for flip_w in (False, True):
                out = _deaugment(forward_fn(_augment(lq, flip_w, flip_h, transpose)), flip_w, flip_h, transpose)
                if total is None:
                    total = out.to(torch.promote_types(out.dtype, torch.float32), copy=True)
                else:
                    total.add_(out)
                del out
    return total.div_(8).to(lq.dtype)


def test_forward(net, lq, scale, chop=False, tile=None, tile_pad=10, self_ensemble=False, shave=10, min_size=160000):
    """Upscale ``lq`` with the test-time strategy asked for: plain, chopped or tiled, optionally self-ensembled.

    Gradients are left to the caller (wrap the call in ``torch.no_grad()`` for inference).

    Args:
        net (Callable): Network, (b, c, h, w) -> (b, c', h * scale, w * scale).
        lq (Tensor): Low-quality batch, (b, c, h, w).
        scale (int): Upscaling factor of ``net``.
        chop (bool): Use :func:`forward_chop` (the authors' ``--chop``). Default: False.
        tile (int | None): Tile size for :func:`forward_tiled`; None runs whole images. Default: None.
        tile_pad (int): Context around each tile, with ``tile``. Default: 10.
        self_ensemble (bool): Average over the 8 flips and transposes (:func:`forward_self_ensemble`), each run
            with the strategy above. Default: False.
        shave (int): Overlap of the pieces, with ``chop``. Default: 10.
        min_size (int): Largest piece (pixels, exclusive) sent to the network, with ``chop``. Default: 160000.

    Returns:
        Tensor: (b, c', h * scale, w * scale).
    """
    if chop and tile is not None:
        raise ValueError(f'chop and tile cannot be combined: got chop=True and tile={tile!r}; choose one')
    if chop:
        forward_fn = functools.partial(forward_chop, net, scale=scale, shave=shave, min_size=min_size)
    elif tile is not None:
        forward_fn = functools.partial(forward_tiled, net, scale=scale, tile_size=tile, tile_pad=tile_pad)
    else:
        forward_fn = net
    return forward_self_ensemble(forward_fn, lq) if self_ensemble else forward_fn(lq)


# Not a pytest test, although its name starts with ``test_`` (it mirrors BasicSR's ``test()`` methods).
test_forward.__test__ = False
