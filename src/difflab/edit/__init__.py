"""Part A: diffusion editing algorithms written once against the `Denoiser` protocol.

- denoiser.py: the protocol (schedule, noise predictor, null condition, prompt encoder);
- algorithms.py: forward process, one-step and iterative denoising, CFG, SDEdit, inpainting, visual anagrams,
  hybrid images;
- backends/: models behind the protocol (mnist: Part B's class-conditioned UNet);
- inputs.py: MNIST-like input images (test set, stroke-drawn and font-rendered digits, user files).
"""

from difflab.edit.denoiser import Denoiser

__all__ = ["Denoiser"]
