"""The corruption kinds q(x̃ | x) of the denoising family and their parameters (no TensorFlow).

The layers that apply them are `zoo.layers.noise`; a recipe's `noise` table is checked here.
"""

from __future__ import annotations

import dataclasses

from zoo.configs.schema import HParams, coerce, param
from zoo.registry import Registry

NOISES: Registry = Registry("noise kind")


@NOISES.register("gaussian")
@dataclasses.dataclass(frozen=True)
class GaussianNoise(HParams):
    """x̃ = x + ε, ε ~ N(0, σ²), optionally clipped to [0, 1]."""

    stddev: float = param(0.3, low=0.0)
    clip: bool = param(False)
    seed: int | None = param(None, low=0, high=2 ** 31 - 1)


@NOISES.register("salt_pepper")
@dataclasses.dataclass(frozen=True)
class SaltPepperNoise(HParams):
    """Each value kept with 1−p, set to v_min or v_max with p/2 each."""

    rate: float = param(0.2, low=0.0, high=1.0, high_open=True)
    v_min: float = param(0.0)
    v_max: float = param(1.0)
    seed: int | None = param(None, low=0, high=2 ** 31 - 1)

    def check(self) -> None:
        if not self.v_min < self.v_max:
            raise ValueError(f"v_min must be below v_max. Received: v_min={self.v_min}, v_max={self.v_max}")


@NOISES.register("masking")
@dataclasses.dataclass(frozen=True)
class MaskingNoise(HParams):
    """x̃ = x ⊙ m, m ~ Bernoulli(1−p)."""

    rate: float = param(0.3, low=0.0, high=1.0, high_open=True)
    seed: int | None = param(None, low=0, high=2 ** 31 - 1)


def check_noise(spec, key: str = "noise") -> None:
    """Raises ValueError naming `key.<param>` for a noise table that is not `{kind = ..., params}`."""
    if not isinstance(spec, dict):
        raise ValueError(f'{key} must be a table such as {{kind = "masking", rate = 0.3}}. Received: {key}={spec!r}')
    params = dict(spec)
    kind = params.pop("kind", None)
    if kind not in NOISES:
        raise ValueError(f"{key}.kind must be one of {', '.join(NOISES.names())}. Received: {key}.kind={kind!r}")
    schema = NOISES.get(kind)
    for name in params:
        if name not in schema.keys():
            raise ValueError(f"{key}.{name} is not a parameter of {kind} noise (allowed: kind, "
                             f"{', '.join(schema.keys())}). Received: {key}.{name}={params[name]!r}")
    try:
        schema(**params)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{key}.{e}") from None


__all__ = ["NOISES", "check_noise", "coerce"]
