"""The tiny SAN that both Inductor tests compile: the ``compile`` switch of ``test_model_switches`` and the comparison
with eager of ``test_compile``. The two tests also feed it the same batch and first input sizes, so that whichever of
them runs second (one xdist group, one Inductor cache) reuses the other's compiled graphs."""

from helpers.workflow import TINY_SAN

# BasicSR ``network_g`` options.
NETWORK_OPT = {**TINY_SAN, 'num_feat': 8, 'num_group': 1}
# The same network's ``SAN(**NETWORK_ARGS)`` constructor arguments.
NETWORK_ARGS = {key: value for key, value in NETWORK_OPT.items() if key != 'type'}
