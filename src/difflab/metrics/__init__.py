"""Metrics: the MNIST classifier, FID (torchmetrics on classifier features), PSNR/SSIM and tidy CSV tables.

Submodules are imported where they are used, so `import difflab.metrics` stays light.
"""
