"""The reference recipe of the speed benchmark has the peer's architecture and training setup.

The peer (`benchmarks/peers/keras_example_vae.py`) is an MLP VAE 784-512-256-z32 with a mirrored
decoder; counted by hand its weights and biases are

    encoder  784·512 + 512 + 512·256 + 256 + 256·64 + 64   =   549,696
    decoder   32·256 + 256 + 256·512 + 512 + 512·784 + 784 =   542,224
                                                             1,091,920

(the peer's two 256→32 heads, mean and log-variance, equal the zoo's one 256→64 layer).
"""

import keras
import numpy as np
import pytest

from zoo.configs.recipe import load_recipe

REFERENCE = "vae_reference"


@pytest.fixture(scope="module")
def recipe():
    return load_recipe(REFERENCE)


@pytest.fixture(scope="module")
def model(recipe):
    model = recipe.model.build(recipe.input_shape)
    model(np.zeros((1, *recipe.input_shape), "float32"))
    return model


def dense_shapes(network):
    return [tuple(layer.kernel.shape) for layer in network.layers if isinstance(layer, keras.layers.Dense)]


def test_reference_recipe_has_the_peer_parameter_count(model):
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 1_091_920


def test_reference_recipe_layer_sizes(model):
    assert dense_shapes(model.encoder) == [(784, 512), (512, 256), (256, 64)]  # 64 = mean and scale of z32
    assert dense_shapes(model.decoder) == [(32, 256), (256, 512), (512, 784)]
    relu = keras.activations.get("relu")
    hidden = [layer for net in (model.encoder, model.decoder) for layer in net.layers
              if isinstance(layer, keras.layers.Dense)]
    assert [layer.activation is relu for layer in hidden] == [True, True, False, True, True, False]


def test_reference_recipe_training_setup(recipe):
    assert recipe.model.family == "vae"
    hp = recipe.model.hparams  # every key, the recipe's or the family's default
    assert (hp.likelihood, hp.prior, hp.iw_samples, hp.beta, hp.kl_warmup_steps) == ("bernoulli", "normal", 1, 1.0, 0)
    assert (recipe.data.dataset, recipe.data.binarize, recipe.data.validation_size) == ("fashion_mnist", "dynamic", 0)
    train = recipe.train
    assert (train.optimizer, train.learning_rate, train.batch_size, train.lr_schedule) == ("adam", 1e-3, 128, "constant")
    assert train.mixed_precision == "float32"
