"""difflab: a reproducible lab for diffusion models (CS180 project 5, as one Snakemake DAG)."""

__version__ = "0.1.0"


class DifflabError(Exception):
    """An error the user can act on. The CLI prints it as one line, without a traceback."""
