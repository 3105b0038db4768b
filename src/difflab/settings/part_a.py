"""Settings of the Part A jobs (experiments over a Denoiser backend), one frozen dataclass per job."""

from __future__ import annotations

from difflab.settings import job, other  # noqa: F401
