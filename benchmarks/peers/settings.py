"""The environment variables every peer reads (EPOCHS, BATCH, K, NTEST, NTRAIN, SEED), checked once."""

from __future__ import annotations

import os
from types import SimpleNamespace


def env_int(name: str, default: int, minimum: int = 0) -> int:
    value = int(os.environ.get(name, default))
    if value < minimum:
        raise SystemExit(f"{name} must be >= {minimum}, got {value}")
    return value


def common() -> SimpleNamespace:
    """epochs, batch, k (importance samples), ntest, ntrain (0: all) and seed of a peer run."""
    return SimpleNamespace(epochs=env_int("EPOCHS", 3, 1), batch=env_int("BATCH", 128, 1), k=env_int("K", 100),
                           ntest=env_int("NTEST", 2000, 1), ntrain=env_int("NTRAIN", 0), seed=env_int("SEED", 0))
