"""Peer of the speed benchmark for `recipes/conv_vae.toml`: keras-io's convolutional VAE (`examples/generative/vae.py`).

That example (by fchollet) is itself a convolutional VAE: an encoder of two stride-2 `Conv2D`
layers (32 and 64 filters, 3×3, ReLU, "same" padding), `Flatten`, two linear heads z_mean and
z_log_var and a `Sampling` layer; a decoder `Dense(7·7·64, relu)`, `Reshape`, stride-2
`Conv2DTranspose` layers; a `VAE(keras.Model)` whose custom `train_step` takes the gradient with
`tf.GradientTape` and keeps three `keras.metrics.Mean` trackers; `compile(optimizer=Adam())`
and `fit(images, epochs, batch_size=128)`. This file keeps all of that (the layer and the model,
shared with `keras_example_vae.py`, are in `keras_vae_parts.py`) and changes only what
`recipes/conv_vae.toml` (built by `zoo.layers.blocks.make_encoder`/`make_decoder` with
`backbone = "conv"`, hidden [32, 64], code_size 16) needs to be the same network:

* the heads read the flattened 7×7×64 features directly (the example's `Dense(16, relu)`
  bottleneck is not in the zoo's network) and z has 16 dimensions (the example's has 2);
* the decoder mirrors the encoder as the zoo's does: `Dense(7·7·64, relu)`, `Reshape`,
  `Conv2DTranspose(32, 3, strides=2, relu)`, `Conv2DTranspose(1, 3, strides=2)` giving
  logits (the example adds a 64-filter layer and a stride-1 sigmoid output);
* a Bernoulli likelihood on those logits (`binary_crossentropy(..., from_logits=True)` summed
  over the pixels, as the example sums its cross-entropy), on Fashion-MNIST (`fmnist.py`)
  binarized dynamically, a fresh 0/1 draw of every image each time `train_step` sees it;
* the recipe's KL warm-up: the KL term weighted by β = min(1, step / 2000), step counted by the
  optimizer's iterations (`VAE(..., kl_warmup_steps=2000)`);
* the 60,000 training images only (the example also trains on the 10,000 test images);
* Adam with learning rate 1e-3 (the example's default, spelled out), batch 128;
* `verbose=0` and an epoch timer instead of the progress bar and the plots.

The network has the zoo model's 191,265 weights (`tests/test_peers.py` counts both). Nothing is
tuned for speed (no XLA setting, no steps_per_execution, no tf.data pipeline: the numpy images
go to `fit` as in the example), nor slowed down.

Prints one JSON line, like `keras_example_vae.py`: steady-state training samples/s (the epochs
after the first), and the test negative log-likelihood, importance-sampled with K samples per
image on the first NTEST test images binarized once with numpy `default_rng(0)`.

    python benchmarks/peers/keras_conv_vae.py                     # EPOCHS=3 K=100 NTEST=2000
    EPOCHS=1 NTRAIN=4096 K=10 NTEST=200 python benchmarks/peers/keras_conv_vae.py   # a smoke run

Environment: the variables of `settings.py`, with the defaults of `keras_example_vae.py`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# keras_vae_parts sets KERAS_BACKEND before it imports Keras.
from keras_vae_parts import IMAGE_SHAPE, VAE, fit_and_report, gaussian_encoder, setup  # noqa: E402
import keras  # noqa: E402
from keras import layers  # noqa: E402

RUN = setup()  # EPOCHS, BATCH, K, NTEST, NTRAIN, SEED; Keras's seeds set
SEED = RUN.seed
FILTERS = (32, 64)
LATENT_DIM = 16
KL_WARMUP_STEPS = 2000


def build_encoder() -> keras.Model:
    """Image → (z_mean, z_log_var, z): Conv 32 and 64 (3×3, stride 2) to 7×7×64, then two linear heads of 16."""
    images = keras.Input(shape=IMAGE_SHAPE)
    h = images
    for filters in FILTERS:
        h = layers.Conv2D(filters, 3, activation="relu", strides=2, padding="same")(h)
    h = layers.Flatten()(h)
    return gaussian_encoder(images, h, LATENT_DIM, seed=SEED + 1)


def build_decoder() -> keras.Model:
    """z → Bernoulli logits of every pixel: Dense 7·7·64, ConvTranspose 32 (stride 2, ReLU), ConvTranspose 1."""
    codes = keras.Input(shape=(LATENT_DIM,))
    h = layers.Dense(7 * 7 * FILTERS[-1], activation="relu")(codes)
    h = layers.Reshape((7, 7, FILTERS[-1]))(h)
    for filters in FILTERS[-2::-1]:
        h = layers.Conv2DTranspose(filters, 3, activation="relu", strides=2, padding="same")(h)
    logits = layers.Conv2DTranspose(IMAGE_SHAPE[-1], 3, strides=2, padding="same")(h)
    return keras.Model(codes, logits, name="decoder")


def main() -> dict:
    vae = VAE(build_encoder(), build_decoder(), binarization_seed=SEED + 2, kl_warmup_steps=KL_WARMUP_STEPS)
    vae.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3))
    # About 2,000 decoder images at a time in the likelihood: its 14×14×32 maps stay small.
    return fit_and_report(vae, RUN, rows=2000,
                          peer="keras-io vae.py convolutional VAE (benchmarks/peers/keras_conv_vae.py)")


if __name__ == "__main__":
    main()
