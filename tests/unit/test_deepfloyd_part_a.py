"""Part A experiments on the DeepFloyd backend: the tiny IF-like pipeline (tests/helpers/deepfloyd_fixture.py) behind
the backend file the DAG writes, run through the real `difflab parta run` code path on the CPU; and the photo inputs."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from difflab import DifflabError
from difflab.commands.deepfloyd import backend, config_prompts
from difflab.commands.part_a import run
from difflab.config import load_config
from difflab.edit.photos import process_pil_im, scaled_rectangle_mask, skimage_photo
from difflab.settings import from_json, settings_json
from helpers.deepfloyd_fixture import SIZE, random_embeds, save_tiny_pipeline

from difflab.experiments.part_a import EXPERIMENTS
from difflab.figures.part_a import draw

RUNNING = list(EXPERIMENTS)  # every Part A experiment runs on this backend
NOT_APPLICABLE = {"sampling": "agreement", "cfg": "agreement", "img2img": "target_rates", "illusions": "anagram_both",
                  "spacing": "better_guided", "hybrid_sweep": "best_success"}  # facts that need the MNIST classifier


@pytest.fixture(scope="module")
def setup(tmp_path_factory, root=None):
    from conftest import ROOT

    d = tmp_path_factory.mktemp("df")
    folder = save_tiny_pipeline(d / "if", text=False)
    cfg = load_config(ROOT / "config/config.yaml", ROOT / "config/deepfloyd.yaml", ROOT / "config/smoke.yaml")
    a = cfg["part_a"]
    a.update(backend="deepfloyd", sdedit_i_starts=[1, 5], num_samples=1, stride=100, i_start=3, blur_sigmas=[0.5, 1.0],
             anagrams=a["anagrams"][:1], hybrids=a["hybrids"][:1])
    cfg["device"] = "cpu"
    embeds = random_embeds(config_prompts(from_json("models.deepfloyd_embeds", settings_json(cfg, "models.deepfloyd_embeds"))))
    torch.save(embeds, d / "e.pt")
    a["deepfloyd"].update(model_dir=str(folder), prompt_embeds=str(d / "e.pt"), stage_2=False)
    backend(settings_json(cfg, "models.deepfloyd_backend"), str(d / "e.pt"), str(d / "backend.json"))
    return cfg, d


@pytest.mark.parametrize("name", RUNNING)
def test_experiment_runs_on_the_tiny_pipeline(setup, name, one_thread):
    cfg, d = setup
    sweep = None
    if name in ("hybrids", "illusions"):  # their sigma is the sweep's choice (the rule's input), as in the DAG
        sweep = str(d / "hybrid_sweep" / "result.npz")
        if not (d / "hybrid_sweep" / "result.npz").is_file():
            run("hybrid_sweep", settings_json(cfg, "part_a.hybrid_sweep"), str(d / "backend.json"), "unused-mnist.npz",
                "unused-classifier.pt", str(d / "hybrid_sweep"), str(d / "hybrid_sweep.csv"))
    run(name, settings_json(cfg, f"part_a.{name}"), str(d / "backend.json"), "unused-mnist.npz", "unused-classifier.pt",
        str(d / name), str(d / f"{name}.csv"), sweep)
    facts = json.loads((d / name / "facts.json").read_text())
    assert facts["backend"] == "deepfloyd" and facts["model_id"] == "DeepFloyd/IF-I-L-v1.0"
    arrays = np.load(d / name / "result.npz")
    images = [arrays[k] for k in arrays.files if arrays[k].ndim == 4]
    if name not in ("benchmark", "illusions", "spacing", "hybrid_sweep"):  # these hold numbers only
        assert images and all(x.shape[1:] == (3, SIZE, SIZE) and x.min() >= -1 and x.max() <= 1 for x in images)
    if name in NOT_APPLICABLE:
        assert "n/a" in facts[NOT_APPLICABLE[name]]
    assert facts["model"] == "DeepFloyd IF stage I (DeepFloyd/IF-I-L-v1.0)" and "astronaut" in facts["inputs"]
    draw(name, d / name, d / "fig" / name)  # the figure job on these files
    pngs = list((d / "fig" / name).glob("*.png"))
    assert pngs and all(Image.open(p).size[0] > 50 for p in pngs)


def test_process_pil_im_resizes_the_short_side_and_centre_crops():
    im = np.zeros((40, 80, 3), np.uint8)
    im[:, 20:60] = 255  # the centre 40 x 40 is white, the sides black
    x = process_pil_im(Image.fromarray(im), 16)
    assert x.shape == (1, 3, 16, 16) and x.dtype == torch.float32
    assert x[..., 1:-1].min() > 0.99 and x.mean() > 0.7  # the crop keeps the white centre (+1); edges blend a little
    photo = skimage_photo("astronaut", 64)
    assert photo.shape == (1, 3, 64, 64) and photo.min() >= -1 and photo.max() <= 1 and photo.std() > 0.1
    with pytest.raises(DifflabError, match="part_a.deepfloyd.photos"):
        skimage_photo("no_such_image", 64)


def test_the_campanile_mask_scales_with_the_image():
    m64 = scaled_rectangle_mask([2, 20, 24, 42], (3, 64, 64))
    assert m64[0, 0].nonzero().min(0).values.tolist() == [2, 24] and m64[0, 0].nonzero().max(0).values.tolist() == [19, 41]
    m16 = scaled_rectangle_mask([2, 20, 24, 42], (3, 16, 16))
    assert m16.sum() == 3 * 5 * 4  # rows round(0.5)..round(5) = 0..4, columns 6..round(10.5) = 6..9
    with pytest.raises(DifflabError, match="covers nothing"):
        scaled_rectangle_mask([0, 1, 0, 1], (3, 16, 16))


def test_sampling_upsamples_its_final_images_with_stage_2(setup, tmp_path, one_thread):
    from helpers.deepfloyd_fixture import save_tiny_stage_2

    cfg, d = setup
    cfg = json.loads(json.dumps(cfg))
    cfg["part_a"]["deepfloyd"].update(stage_2=True, stage_2_dir=str(save_tiny_stage_2(tmp_path / "II")), stage_2_steps=2)
    cfg["part_a"].update(sample_prompts=cfg["part_a"]["sample_prompts"][:1], sample_step_counts=[5])
    backend(settings_json(cfg, "models.deepfloyd_backend"), str(d / "e.pt"), str(tmp_path / "backend.json"))
    run("sampling", settings_json(cfg, "part_a.sampling"), str(tmp_path / "backend.json"), "unused", "unused",
        str(tmp_path / "sampling"), str(tmp_path / "sampling.csv"))
    arrays = np.load(tmp_path / "sampling" / "result.npz")
    images, up = arrays["images"], arrays["upsampled"]
    assert up.shape == (len(images), 3, 4 * SIZE, 4 * SIZE) and up.min() >= -1 and up.max() <= 1 and up.std() > 0
    assert json.loads((tmp_path / "sampling" / "facts.json").read_text())["stage_2"] == f"yes, to {4 * SIZE} px"
    draw("sampling", tmp_path / "sampling", tmp_path / "fig")
    assert Image.open(tmp_path / "fig" / "sampling.png").size[1] > 100  # two rows: stage I, then stage II
