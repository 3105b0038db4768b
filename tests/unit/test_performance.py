"""Speed switches (difflab.performance): the plain path is untouched, bf16 changes only the network's rounding, and a
diverging loss is still caught at its own step when losses are checked in blocks."""

import pytest
import torch

from difflab import DifflabError
from difflab.models import build_model
from difflab.performance import Autocast, accelerate, autocast, make_adam
from difflab.train import raise_if_diverged

CPU = torch.device("cpu")


def test_fp32_eager_is_the_model_itself():
    model = build_model("class", 8)
    assert accelerate(model, "fp32", False, CPU) is model


def test_bf16_forward_is_float32_close_to_fp32_and_shares_the_parameters():
    torch.manual_seed(0)
    model = build_model("class", 8).eval()
    fast = accelerate(model, "bf16", False, CPU)
    assert isinstance(fast, Autocast) and fast.num_classes == model.num_classes
    assert list(fast.parameters()) == list(model.parameters())
    x, c, t = torch.randn(4, 1, 28, 28), torch.arange(4), torch.full((4,), 0.5)
    with torch.no_grad():
        exact, rounded = model(x, c, t), fast(x, c, t)
    assert rounded.dtype == torch.float32 and not torch.equal(exact, rounded)  # bf16 did run
    assert (rounded - exact).abs().max() < 0.05 * exact.abs().max()


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="fp16"):
        autocast(CPU, "fp16")


def test_adam_on_cpu_is_the_default_implementation():
    optimizer = make_adam(build_model("time", 8).parameters(), 1e-3, CPU)
    assert not optimizer.param_groups[0]["fused"]


def test_losses_checked_in_blocks_name_the_first_bad_step():
    losses = torch.tensor([0.5, 0.4, float("inf"), float("nan")])
    assert raise_if_diverged(losses[:2], 0, "time training", 3, 10, "part_b.ddpm.lr") == pytest.approx([0.5, 0.4])
    with pytest.raises(DifflabError, match=r"loss is inf at epoch 3, step 13/40; lower part_b.ddpm.lr"):
        raise_if_diverged(losses, 10, "time training", 3, 40, "part_b.ddpm.lr")
