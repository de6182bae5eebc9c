"""Corruption layers of the denoising autoencoder.

Each acts only when `training=True` and returns its input unchanged at inference, so a
denoising model reconstructs clean inputs at test time. Randomness comes from a
`keras.random.SeedGenerator`, which makes runs reproducible and lets the generator state be
saved with the model.
"""

from __future__ import annotations

import keras
from keras import ops

from zoo.checks import check_choice, check_range

NOISES: dict[str, type] = {}


def _register(name: str):
    def decorate(cls):
        NOISES[name] = cls
        cls.kind = name
        return cls

    return decorate


def make_noise(spec: dict) -> keras.layers.Layer:
    """Builds a noise layer from `{"kind": name, **params}`."""
    if not isinstance(spec, dict):
        raise ValueError(f'noise must be a table such as {{kind = "masking", rate = 0.3}}. Received: noise={spec!r}')
    spec = dict(spec)
    kind = spec.pop("kind", None)
    check_choice("kind", kind, sorted(NOISES))
    allowed = ("kind", *NOISES[kind]._params, "seed")
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise ValueError(f"{unknown[0]} must be a parameter of {kind} noise ({', '.join(allowed)}). "
                         f"Received: {unknown[0]}={spec[unknown[0]]!r}")
    return NOISES[kind](**spec)


class _Noise(keras.layers.Layer):
    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True
        # No weights to create from an input shape (the generator's state exists already): built
        # now, so a model whose inference path skips the noise does not hold an unbuilt layer.
        self.built = True

    def call(self, inputs, training=False):
        return self.corrupt(inputs) if training else inputs

    def corrupt(self, x):
        """The corrupted x̃ ~ q(x̃ | x)."""
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}

    def spec(self) -> dict:
        """The `{"kind": ..., **params}` dictionary that `make_noise` rebuilds this layer from."""
        config = self.get_config()
        spec = {"kind": self.kind, **{k: config[k] for k in self._params}}
        if self.seed is not None:  # keep a seeded noise seeded through get_config / from_config
            spec["seed"] = self.seed
        return spec


@keras.saving.register_keras_serializable(package="zoo")
@_register("gaussian")
class AdditiveGaussianNoise(_Noise):
    """x̃ = x + ε with ε ~ N(0, σ²), optionally clipped to the data range [0, 1].

    Args:
        stddev: σ ≥ 0.
        clip: clip x̃ to [0, 1].
        seed: seed of the generator.
    """

    _params = ("stddev", "clip")

    def __init__(self, stddev: float = 0.3, clip: bool = False, seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        check_range("stddev", stddev, 0.0)
        self.stddev = float(stddev)
        self.clip = bool(clip)

    def corrupt(self, x):
        noisy = x + self.stddev * keras.random.normal(ops.shape(x), dtype=x.dtype, seed=self.seed_generator)
        return ops.clip(noisy, 0.0, 1.0) if self.clip else noisy

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "clip": self.clip}


@keras.saving.register_keras_serializable(package="zoo")
@_register("salt_pepper")
class SaltAndPepperNoise(_Noise):
    """Each value kept with probability 1−p, set to v_min with p/2 and to v_max with p/2.

    Args:
        rate: p in [0, 1).
        v_min: the "pepper" value.
        v_max: the "salt" value.
        seed: seed of the generator.
    """

    _params = ("rate", "v_min", "v_max")

    def __init__(self, rate: float = 0.2, v_min: float = 0.0, v_max: float = 1.0, seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        check_range("rate", rate, 0.0, 1.0, high_open=True)
        if not v_min < v_max:
            raise ValueError(f"v_min must be below v_max. Received: v_min={v_min}, v_max={v_max}")
        self.rate, self.v_min, self.v_max = float(rate), float(v_min), float(v_max)

    def corrupt(self, x):
        u = keras.random.uniform(ops.shape(x), dtype=x.dtype, seed=self.seed_generator)
        pepper = ops.cast(u < self.rate / 2, x.dtype)
        salt = ops.cast((u >= self.rate / 2) & (u < self.rate), x.dtype)
        keep = 1.0 - pepper - salt
        return keep * x + pepper * self.v_min + salt * self.v_max

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "v_min": self.v_min, "v_max": self.v_max}


@keras.saving.register_keras_serializable(package="zoo")
@_register("masking")
class MaskingNoise(_Noise):
    """x̃ = x ⊙ m with m ~ Bernoulli(1−p) per value (dropped values become 0, no rescaling).

    Args:
        rate: p in [0, 1).
        seed: seed of the generator.
    """

    _params = ("rate",)

    def __init__(self, rate: float = 0.3, seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        check_range("rate", rate, 0.0, 1.0, high_open=True)
        self.rate = float(rate)

    def corrupt(self, x):
        u = keras.random.uniform(ops.shape(x), dtype=x.dtype, seed=self.seed_generator)
        return x * ops.cast(u >= self.rate, x.dtype)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}
