"""Settings of the Part B experiment jobs (denoiser figures, OOD, DDPM grids, CFG sweep, tables)."""

from __future__ import annotations

from difflab.settings import job, other  # noqa: F401
