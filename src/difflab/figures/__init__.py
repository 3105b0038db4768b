"""Figures: drawn from result files (npz, CSV, JSON) by their own jobs; never recompute, never import torch."""
