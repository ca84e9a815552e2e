"""Install san_plugin, its dependencies, and the start-up hook that lets BasicSR's own entry points find it."""

import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

HERE = os.path.dirname(os.path.abspath(__file__))
# Start-up hook: a one-line .pth in site-packages that imports `_san_plugin_autoload`, so that BasicSR's own entry
# points (`python -m basicsr.train`, a checkout's `basicsr/train.py`) find the plugin. Wheels carry it at their root;
# setuptools has no public option for a root file, hence the two small command subclasses below.
AUTOLOAD_PTH = 'san_plugin-autoload.pth'
# ONNX export (tools/export_onnx.py): torch.onnx's exporter needs onnxscript; onnxruntime checks the file.
ONNX_EXTRA = ['onnx>=1.15', 'onnxscript>=0.5', 'onnxruntime>=1.17']
# SAN and DRLN in spandrel (chaiNNer, ComfyUI): san_plugin.spandrel.install(). Pinned: the architectures use its
# ArchRegistry API, and the tests check detection against its own architectures.
SPANDREL_EXTRA = ['spandrel==0.4.2']


def read_version():
    scope = {}
    with open(os.path.join(HERE, 'san_plugin', 'version.py'), encoding='utf-8') as f:
        exec(f.read(), scope)
    return scope['__version__']


class BuildPyWithAutoload(build_py):
    """Regular wheels (`pip install .`): put the start-up hook at the root of the build tree."""

    def run(self):
        super().run()
        shutil.copy(os.path.join(HERE, AUTOLOAD_PTH), os.path.join(self.build_lib, AUTOLOAD_PTH))


class EditableWheelWithAutoload(editable_wheel):
    """Editable wheels (`pip install -e .`): put the start-up hook at the root of the wheel."""

    def _run_build_commands(self, dist_name, unpacked_wheel, build_lib, tmp_dir):
        outputs = super()._run_build_commands(dist_name, unpacked_wheel, build_lib, tmp_dir)
        shutil.copy(os.path.join(HERE, AUTOLOAD_PTH), os.path.join(unpacked_wheel, AUTOLOAD_PTH))
        return outputs


setup(
    name='san_plugin',
    version=read_version(),
    description='SAN (Second-order Attention Network) super-resolution as a BasicSR plugin',
    long_description=open(os.path.join(HERE, 'README.md'), encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['san_plugin', 'san_plugin.*']),
    py_modules=['_san_plugin_autoload'],
    cmdclass={'build_py': BuildPyWithAutoload, 'editable_wheel': EditableWheelWithAutoload},
    python_requires='>=3.10',
    install_requires=[
        'torch>=2.5',
        'torchvision>=0.20',
        'basicsr==1.4.2',
        'mmengine>=0.10',
        'opencv-python',
        'lmdb',
        'pyyaml',
        'scipy',
        'scikit-image',
        'tqdm',
        'safetensors',
        'submitit>=1.5',  # studies with executor: slurm (san_plugin/study/execution.py)
        # LPIPS and DISTS metrics (san_plugin/metrics): its wheel ships the LPIPS heads and the DISTS weights (DISTS
        # since 1.7; 1.9 is the version tested). Imported only when a metric network is built.
        'torchmetrics>=1.9',
        'filelock',  # prepare_data's lock on its output folder, on every OS (san_plugin/data/prepare.py)
        'matplotlib>=3.8',  # the benchmarks' and studies' figures (san_plugin/benchmark/figures.py)
    ],
    extras_require={
        'onnx': ONNX_EXTRA,
        'spandrel': SPANDREL_EXTRA,
        'test': ['pytest>=7', 'pytest-xdist>=3.5', 'ruff>=0.5', *ONNX_EXTRA, *SPANDREL_EXTRA],
    },
)
