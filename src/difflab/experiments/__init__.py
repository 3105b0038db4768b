"""Experiments: each job computes a typed Result from trained models or metric files and writes it as
result.npz (arrays), facts.json (numbers for the report text) and a tidy metrics CSV; no plotting, no prose."""
