"""difflab.train_step: the draws written into buffers equal fresh draws, the sync-free EMA update equals
torch's AveragedModel bit for bit, and a TrainStep equals the plain loop it replaces. (The CUDA-graph replay itself
needs a GPU: `make bench` compares it with eager training there.)"""

import pytest
import torch

from difflab.models import build_model
from difflab.performance import AUTO_CPU_SAMPLE_BATCH, sample_batch, sample_precision, train_precision, uses_cuda_graphs
from difflab.schedule import NoiseSchedule
from difflab.train import make_ema
from difflab.train_step import TrainStep, draw_step_noise, ema_update, step_loss

CPU = torch.device("cpu")


@pytest.mark.parametrize("kind", ["denoiser", "time", "class"])
def test_draws_into_buffers_equal_fresh_draws(kind):
    fresh = draw_step_noise(kind, 6, 300, torch.Generator().manual_seed(3), CPU)
    buffers = {k: torch.full_like(v, -1) for k, v in fresh.items()}
    written = draw_step_noise(kind, 6, 300, torch.Generator().manual_seed(3), CPU, out=buffers)
    assert set(fresh) == {"denoiser": {"eps"}, "time": {"t", "eps"}, "class": {"t", "eps", "u"}}[kind]
    for key in fresh:
        assert written[key] is buffers[key]
        assert torch.equal(buffers[key], fresh[key])


def test_ema_update_equals_averaged_model_bit_for_bit():
    torch.manual_seed(0)
    model = build_model("class", 8)
    library, ours = make_ema(model, 0.9), make_ema(model, 0.9)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, c, t = torch.rand(4, 1, 28, 28), torch.eye(10)[:4], torch.rand(4)
    for step in range(4):  # the first update copies, the later ones average (BatchNorm buffers included)
        optimizer.zero_grad()
        model(x, c, t).square().mean().backward()
        optimizer.step()
        library.update_parameters(model)
        ema_update(ours, model, 0.9, first=step == 0)
    theirs, mine = library.state_dict(), ours.state_dict()
    assert int(mine["n_averaged"]) == 4
    for name in theirs:
        assert torch.equal(theirs[name], mine[name]), name


@pytest.mark.parametrize("kind", ["denoiser", "time", "class"])
def test_train_step_equals_the_plain_loop(kind):
    """Loss, backward, Adam, EMA in the documented draw order: the step object changes nothing on a CPU."""
    schedule = NoiseSchedule.linear(1e-4, 0.02, 300)
    arch = {"denoiser": "unconditional", "time": "time", "class": "class"}[kind]
    x0, labels = torch.rand(8, 1, 28, 28), torch.arange(8) % 10
    results = []
    for use_step in (True, False):
        torch.manual_seed(0)
        model = build_model(arch, 8)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        ema = make_ema(model, 0.9)
        generator = torch.Generator().manual_seed(5)
        step = TrainStep(kind, model, model, optimizer, generator, schedule, 0.5, 0.1, ema, 0.9, batch_size=8)
        losses = []
        for _ in range(3):
            if use_step:
                losses.append(step(x0, labels if kind == "class" else None))
                continue
            draws = draw_step_noise(kind, 8, 300, generator, CPU)
            optimizer.zero_grad(set_to_none=True)
            loss = step_loss(kind, model, x0, draws, schedule, 0.5, labels if kind == "class" else None, 0.1)
            loss.backward()
            optimizer.step()
            ema.update_parameters(model)
            losses.append(loss.detach())
        results.append((torch.stack(losses), ema.state_dict()))
    assert torch.equal(results[0][0], results[1][0])
    assert all(torch.equal(results[0][1][k], results[1][1][k]) for k in results[0][1])


@pytest.mark.parametrize("gpu_bf16, cpu_bf16", [(True, True), (False, False)])
def test_auto_switches_resolve_per_device(monkeypatch, gpu_bf16, cpu_bf16):
    """The hardware queries are PyTorch's; here they answer for an H200 with a bf16 CPU, then a T4 with an older CPU."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: gpu_bf16)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: cpu_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    cuda, on = torch.device("cuda"), {True: "bf16", False: "fp32"}
    assert sample_precision("auto", cuda) == on[gpu_bf16] and sample_precision("auto", CPU) == on[cpu_bf16]
    assert train_precision("auto", cuda) == "fp32" and train_precision("auto", CPU) == on[cpu_bf16]
    assert sample_precision("fp32", cuda) == "fp32" and train_precision("bf16", CPU) == "bf16"
    assert sample_batch("auto", 10000, cuda) == 10000 and sample_batch("auto", 10000, CPU) == AUTO_CPU_SAMPLE_BATCH
    assert sample_batch("auto", 40, CPU) == 40 and sample_batch(256, 10000, cuda) == 256
    assert uses_cuda_graphs(True, False, cuda) and not uses_cuda_graphs(True, True, cuda)
    assert not uses_cuda_graphs(True, False, CPU)


def test_resumed_optimizer_keeps_the_flags_it_was_made_with():
    """PyTorch's load_state_dict restores fused/capturable/foreach from the saved groups; a chain begun on a CPU
    must still get the device's Adam when it resumes on a GPU (the H200 run trained with neither, before)."""
    from difflab.train import load_optimizer_state

    model = build_model("time", 8)
    saved = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=False)
    model(torch.rand(2, 1, 28, 28), torch.rand(2)).mean().backward()
    saved.step()
    resumed = torch.optim.Adam(model.parameters(), lr=5e-4, foreach=True)
    load_optimizer_state(resumed, saved.state_dict())
    assert resumed.param_groups[0]["foreach"] is True  # the flag this optimizer was made with
    assert resumed.param_groups[0]["lr"] == 1e-3  # everything else from the checkpoint
    state = resumed.state[next(iter(model.parameters()))]
    assert torch.equal(state["exp_avg"], saved.state[next(iter(model.parameters()))]["exp_avg"])
