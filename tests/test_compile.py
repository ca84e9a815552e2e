"""SAN under torch.compile: one full graph (no break), a bounded number of graphs over many input sizes, and
inductor's output equal to eager on CPU."""

import pytest
import torch
from helpers.inductor_san import NETWORK_ARGS

from san_plugin.archs.region_nonlocal_arch import embedded_gaussian_attention, pool_keys
from san_plugin.archs.san_arch import SAN
from san_plugin.utils.compile import compile_network, compile_options


class GraphRecorder:
    """A torch.compile backend that records each graph Dynamo hands over and runs it as it is."""

    def __init__(self):
        self.graphs = 0

    def __call__(self, graph_module, example_inputs):
        self.graphs += 1
        return graph_module.forward


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def tiny_san(num_group=2):
    net = SAN(num_feat=16, num_group=num_group, num_block=1, squeeze_factor=4, upscale=2)
    for param in net.parameters():
        torch.nn.init.normal_(param, std=0.05)  # non-zero non-local projection and gamma, unlike the initialisation
    return net


@pytest.mark.slow
@pytest.mark.parametrize('size', [(16, 16), (13, 17)])
def test_full_graph_for_a_fixed_shape_in_training_and_inference(size):
    net = tiny_san()
    recorder = GraphRecorder()
    compiled = torch.compile(net, backend=recorder, fullgraph=True)
    lq = torch.rand(2, 3, *size)
    out = compiled(lq)
    out.mean().backward()
    assert recorder.graphs == 1
    assert torch.allclose(out, net(lq), atol=1e-6)  # per-region attention when traced; batched in eager
    assert all(param.grad is not None for param in net.parameters())
    with torch.no_grad():
        compiled.eval()(lq)
    assert recorder.graphs == 2  # eval mode is another graph (no graph break: fullgraph would raise)


@pytest.mark.slow
def test_changing_sizes_reuse_a_bounded_number_of_graphs():
    """Graphs are dynamic in height and width. Only PyTorch's guards on the element count of convolutions (classes
    below 20480 elements) add graphs for small inputs; above them one graph serves every size. One group has every
    size-dependent step and traces in half the time of two."""
    net = tiny_san(num_group=1).eval()
    recorder = GraphRecorder()
    compiled = torch.compile(net, backend=recorder, fullgraph=True)
    warm_up = [(16, 16), (20, 24), (13, 17), (15, 15), (40, 36), (48, 48)]
    larger = [(50, 61), (37, 71), (64, 64), (45, 45), (99, 20), (33, 80)]  # over 1707 pixels: 12 * h * w > 20480
    with torch.no_grad():
        for size in warm_up:
            compiled(torch.rand(1, 3, *size))
        graphs_after_warm_up = recorder.graphs
        for size in larger:
            lq = torch.rand(1, 3, *size)
            assert torch.allclose(compiled(lq), net(lq), atol=1e-6)
    assert graphs_after_warm_up <= len(warm_up) - 1
    assert recorder.graphs == graphs_after_warm_up


@pytest.mark.slow
@pytest.mark.xdist_group('inductor')
def test_inductor_matches_eager_on_cpu_as_sizes_change():
    """Compiled as the model's switch compiles (dynamic shapes), in training and then in inference at changing sizes.
    The network, batch, order and first two sizes are those of ``test_model_switches``' compile test, so whichever of
    the two runs second (same xdist group, one Inductor cache) reuses the other's compiled graphs."""
    net = SAN(**NETWORK_ARGS)
    for param in net.parameters():
        torch.nn.init.normal_(param, std=0.05)  # non-zero non-local projection and gamma, unlike the initialisation
    compiled = compile_network(SAN(**NETWORK_ARGS), dynamic=True)
    compiled.load_state_dict(net.state_dict())
    lq = torch.rand(2, 3, 8, 8)
    out_compiled, out_eager = compiled(lq), net(lq)
    assert (out_compiled - out_eager).abs().max().item() < 1e-4
    (grad_compiled,) = torch.autograd.grad(out_compiled.square().mean(), compiled.conv_first.weight)
    (grad_eager,) = torch.autograd.grad(out_eager.square().mean(), net.conv_first.weight)
    assert torch.allclose(grad_compiled, grad_eager, rtol=1e-3, atol=1e-6)
    for size in [(8, 8), (12, 12), (5, 7)]:  # odd sides: unequal non-local regions, and a new graph
        lq = torch.rand(2, 3, *size)
        with torch.no_grad():
            assert (compiled.eval()(lq) - net.eval()(lq)).abs().max().item() < 1e-4
    assert compiled.state_dict().keys() == net.state_dict().keys()


@pytest.mark.slow
def test_inductor_attention_with_one_channel_and_one_key_is_right():
    """Regions of 2 or 3 pixels a side pool to a single key; with a one-channel embedding (``num_feat < 2 *
    reduction``) Inductor's dynamic-shape attention read garbage there before the zero-channel workaround."""
    compiled = torch.compile(embedded_gaussian_attention, dynamic=True, options=compile_options('default', True))
    for size in [(4, 4), (3, 3), (2, 3), (5, 4)]:
        query, key, value = (torch.rand(2, 1, *size) * 10 for _ in range(3))
        q = query.flatten(2).transpose(1, 2)
        k, v = (pool_keys(t).flatten(2) for t in (key, value))
        expected = (torch.softmax(q @ k, dim=-1) @ v.transpose(1, 2)).transpose(1, 2).reshape(query.shape)
        assert torch.allclose(compiled(query, key, value), expected, atol=1e-5)


def test_compile_options_turn_off_layout_optimisation_and_check_the_mode():
    assert compile_options('default', True) == {'layout_optimization': False}
    assert compile_options('max-autotune', None)['max_autotune'] is True
    with pytest.raises(ValueError, match="compile mode 'fast' is not one of default, reduce-overhead"):
        compile_options('fast')
