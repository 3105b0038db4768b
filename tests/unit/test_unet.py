"""The spec's UNets: shapes, parameter counts from the block definitions, and conditioning."""

import pytest
import torch

from difflab.models import build_model, count_parameters


def conv_params(d_in, d_out, k):
    return k * k * d_in * d_out + d_out  # weights + bias


def bn(d):
    return 2 * d


def expected_parameters(arch, d):
    """Parameter count written out from the spec's table of blocks (not from the module tree)."""
    conv = lambda a, b: conv_params(a, b, 3) + bn(b)  # noqa: E731
    conv_block = lambda a, b: conv(a, b) + conv(b, b)  # noqa: E731
    down_block = lambda a, b: conv_params(a, b, 3) + bn(b) + conv_block(b, b)  # noqa: E731
    up_block = lambda a, b: conv_params(a, b, 4) + bn(b) + conv_block(b, b)  # noqa: E731
    fc_block = lambda a, b: (a * b + b) + (b * b + b)  # noqa: E731
    total = (conv_block(1, d) + down_block(d, d) + down_block(d, 2 * d)
             + conv_params(2 * d, 2 * d, 7) + bn(2 * d)          # Unflatten
             + up_block(4 * d, d) + up_block(2 * d, d) + conv_block(2 * d, d) + conv_params(d, 1, 3))
    if arch in ("time", "class"):
        total += fc_block(1, 2 * d) + fc_block(1, d)
    if arch == "class":
        total += fc_block(10, 2 * d) + fc_block(10, d)
    return total


@pytest.mark.parametrize("arch", ["unconditional", "time", "class"])
@pytest.mark.parametrize("d", [8, 64, 128])
def test_parameter_counts_follow_the_spec(arch, d):
    assert count_parameters(build_model(arch, d)) == expected_parameters(arch, d)


def test_spec_sizes():
    # D=128 single-step denoiser and D=64 DDPMs, as trained in the writeup.
    assert count_parameters(build_model("unconditional", 128)) == 7_891_073
    assert count_parameters(build_model("class", 64)) == 2_019_201


def test_shapes_and_conditioning():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 28, 28)
    t = torch.tensor([0.1, 0.5, 0.9, 0.3])
    unc, tm, cm = build_model("unconditional", 8).eval(), build_model("time", 8).eval(), build_model("class", 8).eval()
    assert unc(x).shape == x.shape
    assert tm(x, t).shape == x.shape
    assert not torch.allclose(tm(x, t), tm(x, 1 - t)), "time must change the prediction"
    labels = torch.tensor([1, 2, 3, 4])
    out = cm(x, labels, t)
    assert out.shape == x.shape
    assert not torch.allclose(out, cm(x, (labels + 1) % 10, t)), "class must change the prediction"
    # mask = 0 drops the class: the same as passing the zero vector.
    dropped = cm(x, labels, t, mask=torch.zeros(4))
    assert torch.allclose(dropped, cm(x, torch.zeros(4, 10), t))
    with pytest.raises(ValueError, match="28x28"):
        unc(torch.rand(1, 1, 32, 32))
