"""Part A measurements over a `Denoiser` backend.

- spacing.py: class accuracy and FID of class-conditioned CFG samples with leading vs trailing timestep spacing.
"""
