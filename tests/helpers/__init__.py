"""Shared test helpers: factories for synthetic MNIST, checkpoints and settings; report fixtures; the browser check."""
