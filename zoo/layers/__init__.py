"""Layers shared by the model families."""

from zoo.layers.noise import NOISES, AdditiveGaussianNoise, MaskingNoise, SaltAndPepperNoise, make_noise
from zoo.layers.sparsity import KLSparsity, global_batch_mean

__all__ = [
    "NOISES",
    "AdditiveGaussianNoise",
    "KLSparsity",
    "MaskingNoise",
    "SaltAndPepperNoise",
    "global_batch_mean",
    "make_noise",
]
