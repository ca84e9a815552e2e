"""Run a super-resolution network from any supported weight file on image files: grey, RGB, RGBA, 8 or 16 bit.

Grey images go through the network as three equal channels and come back grey; the alpha channel of RGBA images is
upscaled separately with bicubic interpolation; 16-bit images stay 16-bit. Outputs are PNG files named
``<stem>_x<scale>.png`` (or ``<stem>_<suffix>.png``), written under a temporary name and then moved into place.
"""

import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from basicsr.archs import build_network
from tqdm import tqdm

from san_plugin.convert.loading import read_network_file
from san_plugin.data.images import IMAGE_SUFFIXES, ImageError, display_path, read_image, write_image

MAX_VALUES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def load_model(weights, scale=None, device='cpu', half=False, network_opt=None):
    """Build the network of a weight file, with the architecture and configuration its record or tensors give.

    Settings that neither gives are warned about (see ``read_network_file``); ``network_opt`` gives them.

    Args:
        weights (str | Path): Any supported weight file (see ``read_network_file``).
        scale (int | None): Expected scale; an error if the weights are of another. Default: None.
        device (str | torch.device): Where the network runs. Default: 'cpu'.
        half (bool): Run in float16. Default: False.
        network_opt (dict | None): Constructor arguments the file neither records nor shows (``--network-opt``).
            Default: None.

    Returns:
        tuple[nn.Module, int]: The network in eval mode, and its scale.
    """
    arch, state, config, _, _, _ = read_network_file(weights, network_opt=network_opt)
    if arch is None:
        raise ValueError(f'weights file {weights}: the architecture is not recognised (SAN, DRLN and RCAN are)')
    if scale is not None and scale != config['upscale']:
        raise ValueError(f'--scale is {scale}, but weights file {weights} is a x{config["upscale"]} {arch}')
    net = build_network({'type': arch, **config})
    net.load_state_dict(state, strict=True)
    net = net.eval().to(device)
    return (net.half() if half else net), config['upscale']


def read_input_image(path):
    """Read an image file as stored and check that the network can take it: 8 or 16 bit, grey, RGB or RGBA.

    Args:
        path (Path): Image file.

    Returns:
        np.ndarray: HxW, HxWx3 (BGR) or HxWx4 (BGRA), uint8 or uint16.
    """
    img = read_image(path, 'unchanged')
    if img.dtype not in MAX_VALUES:
        raise ImageError(f'{display_path(path)}: {img.dtype} pixels are not supported (8-bit and 16-bit images are)')
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] not in (3, 4):
        raise ImageError(f'{display_path(path)}: {img.shape[2]} channels are not supported (grey, RGB and RGBA are)')
    return img


def _forward(net, img, scale, tile, tile_pad):
    """Upscale a float32 HxWx3 RGB array in [0, 1] with the network (tiled when ``tile`` is set)."""
    param = next(net.parameters())
    lq = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].to(param.device, param.dtype)
    with torch.inference_mode():
        if tile:
            from san_plugin.utils.test_time import forward_tiled

            out = forward_tiled(net, lq, scale, tile, tile_pad)
        else:
            out = net(lq)
    return out[0].float().clamp(0, 1).cpu().numpy().transpose(1, 2, 0)


def upscale_keeping_format(net, img, scale, tile=None, tile_pad=10):
    """Upscale an image array as ``read_input_image`` returns it; the result has the same channels and dtype.

    Args:
        net (nn.Module): The network (eval mode).
        img (np.ndarray): HxW, HxWx3 (BGR) or HxWx4 (BGRA), uint8 or uint16.
        scale (int): The network's scale.
        tile (int | None): Tile size for large images; None runs the whole image at once. Default: None.
        tile_pad (int): Overlap of the tiles. Default: 10.

    Returns:
        np.ndarray: The upscaled image.
    """
    max_value = MAX_VALUES[img.dtype]
    pixels = img.astype(np.float32) / max_value
    alpha = None
    if pixels.ndim == 2:
        rgb = np.repeat(pixels[:, :, None], 3, axis=2)
    else:
        rgb = cv2.cvtColor(pixels[:, :, :3], cv2.COLOR_BGR2RGB)
        if pixels.shape[2] == 4:
            alpha = pixels[:, :, 3]
    out = _forward(net, rgb, scale, tile, tile_pad)
    if pixels.ndim == 2:
        out = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)
    else:
        out = cv2.cvtColor(out, cv2.COLOR_RGB2BGR)
    if alpha is not None:
        size = (out.shape[1], out.shape[0])
        out = np.dstack([out, np.clip(cv2.resize(alpha, size, interpolation=cv2.INTER_CUBIC), 0, 1)])
    return np.round(out * max_value).astype(img.dtype)


def list_inputs(input_path):
    """The files to process: ``input_path`` itself, or the entries of that folder, sorted.

    Of a folder: every file whose name does not start with a dot (any suffix: one that is not an image is reported),
    and subfolders named like an image (``x.png``, reported too); other subfolders are not entered.

    Args:
        input_path (str | Path): A file or a folder.

    Returns:
        list[Path]: The inputs.
    """
    input_path = Path(input_path)
    if input_path.is_dir():
        return sorted(
            path
            for path in input_path.iterdir()
            if not path.name.startswith('.') and (path.is_file() or path.suffix.lower() in IMAGE_SUFFIXES)
        )
    if input_path.exists():
        return [input_path]
    raise FileNotFoundError(f'input {display_path(input_path)} does not exist')


def output_paths(inputs, output_dir, scale, suffix=None):
    """Output file of each input, ``<stem>_x<scale>.png`` (or ``<stem>_<suffix>.png``); refuses to overwrite inputs.

    Args:
        inputs (list[Path]): Input files.
        output_dir (str | Path): Output folder.
        scale (int): The network's scale.
        suffix (str | None): Name suffix instead of ``x<scale>``. Default: None.

    Returns:
        list[Path]: One output path per input.
    """
    output_dir = Path(output_dir)
    outputs = [output_dir / f'{path.stem}_{suffix or f"x{scale}"}.png' for path in inputs]
    input_set = {path.resolve() for path in inputs}
    clashes = [str(path) for path in outputs if path.resolve() in input_set]
    if clashes:
        raise ValueError(f'refusing to overwrite input files {clashes}: choose another output folder or --suffix')
    if len(set(outputs)) != len(outputs):
        raise ValueError(f'inputs with the same name stem would write the same output file in {output_dir}')
    return outputs


def run_inference(
    input_path,
    output_dir,
    weights,
    scale=None,
    tile=None,
    tile_pad=10,
    device='cpu',
    half=False,
    suffix=None,
    progress=True,
    network_opt=None,
):
    """Upscale an image file, or every image file of a folder, into PNG files.

    A file that cannot be read or processed is reported on stderr in one line naming it, and skipped; the others
    still run. Each output is written atomically as soon as it is done.

    Args:
        input_path (str | Path): An image file or a folder of them.
        output_dir (str | Path): Output folder (created if missing).
        weights (str | Path): Any supported weight file.
        scale (int | None): Expected scale of the weights. Default: None.
        tile (int | None): Tile size for large images. Default: None.
        tile_pad (int): Overlap of the tiles. Default: 10.
        device (str): Where the network runs. Default: 'cpu'.
        half (bool): Run in float16. Default: False.
        suffix (str | None): Output name suffix instead of ``x<scale>``. Default: None.
        progress (bool): Show a progress bar. Default: True.
        network_opt (dict | None): Constructor arguments the weights neither record nor show. Default: None.

    Returns:
        tuple[list[Path], dict[Path, str]]: The files written, and the failed inputs with the reason.
    """
    inputs = list_inputs(input_path)
    net, net_scale = load_model(weights, scale, device, half, network_opt)
    outputs = output_paths(inputs, output_dir, net_scale, suffix)
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    written, failed = [], {}
    for src, dst in zip(tqdm(inputs, desc='Upscaling', unit='image', disable=not progress), outputs):
        try:
            write_image(dst, upscale_keeping_format(net, read_input_image(src), net_scale, tile, tile_pad))
        except ImageError as error:
            failed[src] = str(error)
        except (ValueError, OSError, RuntimeError) as error:
            failed[src] = f'{display_path(src)}: {error}'
        else:
            written.append(dst)
            continue
        tqdm.write(f'skipped: {failed[src]}', file=sys.stderr)
    return written, failed
