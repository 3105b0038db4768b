"""Part A's experiments (CS180 project 5, Part A) over a Denoiser backend: compute only, no plotting, no prose.

EXPERIMENTS maps each experiment name to its function `run(ctx, settings) -> Result`; job `part_a.<name>` has the
settings class difflab.settings.part_a registers under that name. Figures: difflab.figures.part_a; prose and
equations: report/sections/part_a.qmd.

With the MNIST backend, "a high quality photo" (the writeup's content-free prompt) is played by the null
condition where no guidance is used (1.3-1.5); 1.6 guides each sample towards a uniformly drawn digit, and SDEdit
(1.7, 1.7.1) and inpainting (1.7.2) guide towards the digit the input shows.
"""

from __future__ import annotations

from difflab.experiments.part_a import denoising, editing, illusions, sampling, spacing

EXPERIMENTS = {
    "sampling": sampling.sampling,  # 0
    "forward": denoising.forward,  # 1.1
    "blur": denoising.blur,  # 1.2
    "one_step": denoising.one_step,  # 1.3
    "iterative": denoising.iterative,  # 1.4
    "benchmark": denoising.benchmark,  # MSE / PSNR / SSIM of the three denoisers
    "samples": sampling.samples,  # 1.5
    "cfg": sampling.cfg,  # 1.6
    "spacing": spacing.spacing,  # leading vs trailing timesteps for chains from pure noise
    "sdedit": editing.sdedit,  # 1.7
    "sdedit_inputs": editing.sdedit_inputs,  # 1.7.1
    "inpaint": editing.inpaint,  # 1.7.2
    "img2img": editing.img2img,  # 1.7.3
    "anagrams": illusions.anagrams,  # 1.8
    "hybrids": illusions.hybrids,  # 1.9
    "hybrid_sweep": illusions.hybrid_sweep,  # 1.9's low-pass sigma against hybrid success (the sigma 1.9 uses)
    "illusions": illusions.illusions,  # success rates read by the classifier
}
