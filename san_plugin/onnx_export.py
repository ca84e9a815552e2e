"""Export SAN, DRLN and RCAN to ONNX with dynamic batch, height and width, and check the file with onnxruntime.

The graph comes from ``torch.export`` (``torch.onnx.export(..., dynamo=True)``, which needs ``onnxscript``). Every
size-dependent step of the networks follows the symbolic input size in the exported graph: SAN's region non-local
module attends region by region with bounds computed from the size, and SOCA's statistics crop uses ``Min`` of the
size and the crop length. Inputs are NCHW RGB float32 in [0, 1], as for the PyTorch networks; ``sr`` is the output.
"""

import contextlib
import io
from pathlib import Path

import torch

from san_plugin.utils.atomic_save import atomic_path
from san_plugin.utils.output_paths import check_output_file

# The exporter writes opset 18; asking it for 17 makes ONNX's version converter fail on the reductions whose axes are
# inputs since opset 18, and the exporter then keeps 18 anyway.
MIN_OPSET = 18
# Smallest height and width of the exported graph: SAN's 2 x 2 regions must keep at least 2 x 2 pixels for the
# 2 x 2 max-pooling of keys and values.
MIN_SIDE = 4
INPUT_NAME, OUTPUT_NAME = 'lq', 'sr'


def optional_onnx_modules():
    """Import ``onnx``, ``onnxruntime`` and ``onnxscript``, naming the missing one and the extra that installs it.

    Returns:
        tuple[module, module]: ``onnx`` and ``onnxruntime``.
    """
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401  (torch.onnx's exporter needs it)
    except ImportError as error:
        raise ImportError(
            f'ONNX export needs the optional packages onnx, onnxscript and onnxruntime ({error}); install them with '
            "pip install -e '.[onnx]'"
        ) from error
    return onnx, onnxruntime


def export_onnx(net, out_path, opset=MIN_OPSET, sample_size=(32, 32), check_sizes=(), tolerance=1e-4):
    """Export ``net`` to an ONNX file with dynamic batch, height and width, optionally checked with onnxruntime.

    The file is written under a temporary name beside ``out_path`` (missing folders are created) and moved into place
    only once complete, valid (``onnx.checker``) and, with ``check_sizes``, within ``tolerance`` of PyTorch: a failed
    export or check leaves no file behind.

    Args:
        net (nn.Module): Network taking (b, 3, h, w) input in [0, 1].
        out_path (str | Path): The ``.onnx`` file to write.
        opset (int): ONNX opset version, at least :data:`MIN_OPSET`. Default: :data:`MIN_OPSET`.
        sample_size (tuple[int, int]): Height and width of the example input traced. Default: (32, 32).
        check_sizes (Sequence[tuple[int, int]]): Input sizes at which onnxruntime must reproduce ``net``. Default: ().
        tolerance (float): Largest absolute difference allowed by the check. Default: 1e-4.

    Returns:
        dict[tuple[int, int], float]: Largest absolute difference to PyTorch per checked size.
    """
    onnx, _ = optional_onnx_modules()
    if opset < MIN_OPSET:
        raise ValueError(f'opset {opset} is not supported: the exporter writes opset {MIN_OPSET} or newer')
    out_path = Path(out_path)
    check_output_file(out_path, 'output file')
    sample = torch.rand(2, 3, *sample_size)
    height, width = torch.export.Dim('height', min=MIN_SIDE), torch.export.Dim('width', min=MIN_SIDE)
    dynamic_shapes = ({0: torch.export.Dim('batch'), 2: height, 3: width},)
    net = net.eval().float().cpu()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_path) as tmp_path:
        # The exporter prints its progress; a command-line tool reports the outcome itself.
        with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            program = torch.onnx.export(
                net,
                (sample,),
                dynamo=True,
                opset_version=opset,
                dynamic_shapes=dynamic_shapes,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                verbose=False,
            )
        program.save(str(tmp_path))
        onnx.checker.check_model(str(tmp_path))
        differences = compare_with_onnxruntime(tmp_path, net, check_sizes)
        failed = {size: diff for size, diff in differences.items() if not diff <= tolerance}
        if failed:
            listed = ', '.join(f'{h}x{w}: {diff:.3g}' for (h, w), diff in failed.items())
            raise ValueError(
                f'onnxruntime differs from PyTorch by more than {tolerance:g} ({listed}); {out_path} not written'
            )
    return differences


def compare_with_onnxruntime(onnx_path, net, sizes, batch=1, seed=0):
    """Run the ONNX file with onnxruntime (CPU) and ``net`` on the same random inputs.

    Args:
        onnx_path (str | Path): Exported file.
        net (nn.Module): The PyTorch network it was exported from.
        sizes (list[tuple[int, int]]): Input heights and widths to compare at.
        batch (int): Batch size of the inputs. Default: 1.
        seed (int): Seed of the random inputs. Default: 0.

    Returns:
        dict[tuple[int, int], float]: Largest absolute difference of the outputs per size.
    """
    _, onnxruntime = optional_onnx_modules()
    session = onnxruntime.InferenceSession(str(onnx_path), providers=['CPUExecutionProvider'])
    generator = torch.Generator().manual_seed(seed)
    net = net.eval().float().cpu()
    differences = {}
    for height, width in sizes:
        lq = torch.rand(batch, 3, height, width, generator=generator)
        with torch.no_grad():
            expected = net(lq)
        (output,) = session.run([OUTPUT_NAME], {INPUT_NAME: lq.numpy()})
        if output.shape != tuple(expected.shape):
            raise ValueError(
                f'{onnx_path}: output shape {output.shape} at {height}x{width}, PyTorch gives {tuple(expected.shape)}'
            )
        differences[(height, width)] = float((torch.from_numpy(output) - expected).abs().max())
    return differences
