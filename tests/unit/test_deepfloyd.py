"""The DeepFloyd IF backend on a tiny random IF-like pipeline saved to a temporary folder (tests/helpers/
deepfloyd_fixture.py), loaded by the real code: shapes, dtypes, the learned-range variance, equality of difflab's
CFG loop with diffusers' IFPipeline, prompt embeddings, stage II, and the one-line errors."""

import subprocess
import sys

import pytest
import torch

from difflab import DifflabError
from difflab.edit import algorithms as A
from difflab.edit.backends import load_backend
from difflab.edit.backends.deepfloyd import (
    DeepFloydDenoiser,
    check_device,
    encode_prompts,
    load_prompt_embeds,
    missing_prompts,
)
from difflab.edit.backends.deepfloyd_weights import missing_weights, resolve_model_folder
from difflab.sampler import step_variance
from difflab.schedule import NoiseSchedule
from helpers.deepfloyd_fixture import D_MODEL, SIZE, random_embeds, save_tiny_pipeline, save_tiny_stage_2

MODEL = "DeepFloyd/IF-I-L-v1.0"
PROMPTS = ["a rocket ship", "a high quality photo", ""]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny_pipeline(tmp_path_factory.mktemp("if") / "IF-I-tiny")


@pytest.fixture(scope="module")
def embeds():
    return random_embeds(PROMPTS)


@pytest.fixture(scope="module")
def den(folder, embeds):
    return DeepFloydDenoiser.load(MODEL, str(folder), embeds, "cpu", embeds_file="embeds.pt")


def reference_pipeline(folder, **scheduler_changes):
    """diffusers' own IFPipeline on the same folder, with the scheduler config changed as given."""
    from diffusers import DDPMScheduler, IFPipeline

    pipe = IFPipeline.from_pretrained(str(folder), text_encoder=None, tokenizer=None, safety_checker=None,
                                      watermarker=None, feature_extractor=None, requires_safety_checker=False,
                                      local_files_only=True)
    pipe.scheduler = DDPMScheduler.from_config(pipe.scheduler.config, **scheduler_changes)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_shapes_dtypes_and_range(den):
    assert den.image_shape == (3, SIZE, SIZE) and den.value_range == (-1.0, 1.0)
    assert den.alphas_cumprod.shape == (1000,) and den.alphas_cumprod.dtype == torch.float32
    assert den.encode("a rocket ship").shape == (1, 77, D_MODEL)
    assert den.null_condition(3).shape == (3, 77, D_MODEL)
    eps, v = den.predict_noise(torch.randn(3, *den.image_shape), 500, den.null_condition(3))
    assert eps.shape == v.shape == (3, 3, SIZE, SIZE) and eps.dtype == v.dtype == torch.float32
    # the split is the UNet's channels 0-2 and 3-5
    out = den.unet(torch.zeros(1, 3, SIZE, SIZE), 500, encoder_hidden_states=den.null_condition(1)).sample
    eps1, v1 = den.predict_noise(torch.zeros(1, 3, SIZE, SIZE), 500, den.null_condition(1))
    torch.testing.assert_close(torch.cat([eps1, v1], dim=1), out)


def test_chunked_forward_equals_one_batch(den):
    x, cond = torch.randn(5, *den.image_shape), den.null_condition(5)
    whole, _ = den.predict_noise(x, 300, cond)
    den.batch_size = 2
    try:
        parts, _ = den.predict_noise(x, 300, cond)
    finally:
        den.batch_size = 16
    torch.testing.assert_close(parts, whole, atol=1e-5, rtol=1e-5)


def test_learned_range_variance_equals_the_scheduler(den):
    """difflab's step variance for the model's v equals diffusers' DDPMScheduler._get_variance on a strided list."""
    from diffusers import DDPMScheduler

    timesteps = list(range(990, -1, -30))
    scheduler = DDPMScheduler.from_config(den.pipe.scheduler.config)
    scheduler.set_timesteps(timesteps=timesteps)
    schedule = NoiseSchedule(den.alphas_cumprod)
    x = torch.randn(2, *den.image_shape, generator=torch.Generator().manual_seed(0))
    for t, t_prev in [(990, 960), (510, 480), (30, 0)]:
        _, v = den.predict_noise(x, t, den.null_condition(2))
        ours = step_variance("learned_range", v, schedule.abar(t), schedule.abar(t_prev))
        theirs = scheduler._get_variance(t, predicted_variance=v).exp()
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-10)
        assert not torch.allclose(ours, step_variance("posterior", None, schedule.abar(t), schedule.abar(t_prev)))


@pytest.mark.parametrize("batch", [1, 2])
def test_cfg_loop_equals_ifpipeline(folder, den, embeds, batch):
    """Same initial noise (one generator, drawn first), embeddings, timesteps and guidance 7; thresholding and
    clipping off in the reference scheduler (difflab's loop, like the course's, does neither)."""
    timesteps = list(range(990, -1, -90))  # 990, 900, ..., 0: the pipeline then steps from 0 to the clean image
    pipe = reference_pipeline(folder, thresholding=False, clip_sample=False)
    ref = pipe(prompt_embeds=embeds["a rocket ship"].expand(batch, -1, -1),
               negative_prompt_embeds=embeds[""].expand(batch, -1, -1), timesteps=timesteps, guidance_scale=7.0,
               generator=torch.Generator().manual_seed(5), output_type="pt").images
    g = torch.Generator().manual_seed(5)
    ours = A.iterative_denoise(den, A.pure_noise(den, batch, g), 0, timesteps + [-1], den.encode("a rocket ship"), g,
                               cfg_scale=7.0)
    assert ours.shape == ref.shape == (batch, 3, SIZE, SIZE)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    # the comparison can fail: the real IF scheduler's dynamic thresholding gives other images
    thresholded = reference_pipeline(folder)(
        prompt_embeds=embeds["a rocket ship"].expand(batch, -1, -1),
        negative_prompt_embeds=embeds[""].expand(batch, -1, -1), timesteps=timesteps, guidance_scale=7.0,
        generator=torch.Generator().manual_seed(5), output_type="pt").images
    assert (thresholded - ours).abs().max() > 1e-2


def test_encode_prompts_matches_the_pipeline_and_round_trips(folder, tmp_path):
    from diffusers import IFPipeline

    embeds = encode_prompts(folder, ["a rocket ship", "", "a rocket ship"], torch.device("cpu"))
    assert list(embeds) == ["a rocket ship", ""] and embeds[""].shape == (1, 77, D_MODEL)
    pipe = IFPipeline.from_pretrained(str(folder), unet=None, local_files_only=True, safety_checker=None,
                                      watermarker=None, feature_extractor=None, requires_safety_checker=False)
    direct, _ = pipe.encode_prompt("a rocket ship", do_classifier_free_guidance=False, clean_caption=False)
    torch.testing.assert_close(embeds["a rocket ship"], direct)
    assert not torch.allclose(embeds["a rocket ship"], embeds[""])
    torch.save(embeds, tmp_path / "e.pt")
    loaded = load_prompt_embeds(tmp_path / "e.pt")
    assert missing_prompts(["a rocket ship", "a dog", "a dog"], loaded) == ["a dog"]


def test_prompt_missing_from_the_dict_is_one_line(den):
    with pytest.raises(DifflabError, match=r"prompt 'a dog' has no embedding in embeds.pt") as info:
        den.encode("a dog")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("content", [b"", b"not a pickle", None])
def test_bad_embedding_files_are_one_line_errors(tmp_path, content):
    path = tmp_path / "e.pt"
    if content is None:
        torch.save({"a dog": torch.zeros(77, 4)}, path)  # no batch dimension
    else:
        path.write_bytes(content)
    with pytest.raises(DifflabError, match=str(path)):
        load_prompt_embeds(path)
    with pytest.raises(DifflabError, match="not found"):
        load_prompt_embeds(tmp_path / "absent.pt")


def test_missing_weights_say_what_how_and_which_key(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    assert missing_weights(MODEL, str(folder), "part_a.deepfloyd.model_dir") == []
    assert missing_weights(MODEL, str(folder), "part_a.deepfloyd.model_dir", needs_text_encoder=True) == []
    [line] = missing_weights(MODEL, "", "part_a.deepfloyd.model_dir")
    assert "not in the Hugging Face cache" in line and "hf download DeepFloyd/IF-I-L-v1.0" in line
    assert "licence" in line and "'part_a.deepfloyd.model_dir'" in line and "\n" not in line
    [line] = missing_weights(MODEL, str(tmp_path / "nowhere"), "part_a.deepfloyd.model_dir")
    assert "folder not found" in line
    empty = tmp_path / "empty"
    (empty / "unet").mkdir(parents=True)
    [line] = missing_weights(MODEL, str(empty), "part_a.deepfloyd.model_dir")
    assert "lacks model_index.json, scheduler/scheduler_config.json, unet/config.json, unet/diffusion_pytorch_model" in line
    # the cache layout: refs/main names the snapshot
    repo = tmp_path / "cache" / "models--DeepFloyd--IF-I-L-v1.0"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots").mkdir()
    (repo / "snapshots" / "abc123").symlink_to(folder)
    assert resolve_model_folder(MODEL, "", "part_a.deepfloyd.model_dir") == repo / "snapshots" / "abc123"
    assert missing_weights(MODEL, "", "part_a.deepfloyd.model_dir") == []


def test_full_size_weights_need_cuda(tmp_path):
    (tmp_path / "unet").mkdir()
    with open(tmp_path / "unet" / "diffusion_pytorch_model.fp16.safetensors", "wb") as fh:
        fh.truncate(300 * 2**20)  # sparse: no disk used
    with pytest.raises(DifflabError, match="needs a CUDA GPU"):
        check_device(tmp_path, torch.device("cpu"), MODEL)


def test_backend_file_and_registry(folder, embeds, tmp_path):
    from difflab.io import write_json

    torch.save(embeds, tmp_path / "embeds.pt")
    spec = {"model_id": MODEL, "model_dir": str(folder), "prompt_embeds": str(tmp_path / "embeds.pt"),
            "cpu_offload": True, "null_prompt": "", "stage_2": {"enabled": False}}
    write_json(tmp_path / "backend.json", spec)
    den = load_backend("deepfloyd", tmp_path / "backend.json", "cpu")  # cpu_offload is ignored on the CPU
    assert isinstance(den, DeepFloydDenoiser) and den.model_id == MODEL
    assert den.upsample(torch.zeros(1, 3, SIZE, SIZE), den.encode(""), torch.Generator()) is None


def test_stage_2_upsamples_four_times(den, tmp_path):
    stage_2 = save_tiny_stage_2(tmp_path / "IF-II-tiny")
    den.stage_2 = {"enabled": True, "model_id": "DeepFloyd/IF-II-L-v1.0", "model_dir": str(stage_2), "num_steps": 2}
    try:
        x = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
        up = den.upsample(x, den.encode("a rocket ship").expand(2, -1, -1), torch.Generator().manual_seed(0))
    finally:
        den.stage_2 = None
    assert up.shape == (2, 3, 4 * SIZE, 4 * SIZE) and up.dtype == torch.float32
    assert up.min() >= -1 and up.max() <= 1


def test_importing_difflab_does_not_import_diffusers():
    code = ("import sys, difflab, difflab.edit.backends, difflab.edit.backends.deepfloyd, difflab.workflow; "
            "assert 'diffusers' not in sys.modules and 'transformers' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cpu_offload_is_ignored_on_the_cpu_and_needs_accelerate_on_cuda(folder, embeds, den, capsys, monkeypatch):
    import importlib.util

    from difflab.edit.backends.deepfloyd import place

    offloaded = DeepFloydDenoiser.load(MODEL, str(folder), embeds, "cpu", cpu_offload=True)
    assert "cpu_offload' is ignored on cpu" in capsys.readouterr().err
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    cond = den.encode("a rocket ship").expand(2, -1, -1)
    with torch.no_grad():
        assert torch.equal(offloaded.predict_noise(x, 500, cond)[0], den.predict_noise(x, 500, cond)[0])
    assert importlib.util.find_spec("accelerate") is not None  # requirements.txt pins it
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "accelerate" else real(name, *a))
    with pytest.raises(DifflabError, match="'accelerate' package is not installed"):
        place(offloaded.pipe, torch.device("cuda"), True)
