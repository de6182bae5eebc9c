"""Peer of the speed benchmark: a VAE written the way keras-io's `examples/generative/vae.py` teaches it.

That example (Keras 3, by fchollet) builds a `Sampling` layer, an encoder and a decoder as
functional `keras.Model`s, a `VAE(keras.Model)` whose custom `train_step` takes the gradient with
`tf.GradientTape` and keeps three `keras.metrics.Mean` trackers, and trains it with
`compile(optimizer=keras.optimizers.Adam())` and `fit(images, epochs, batch_size=128)`. This file
keeps all of that (the layer and the model, shared with `keras_conv_vae.py`, are in
`keras_vae_parts.py`) and changes only what the zoo's reference VAE (`recipes/vae_reference.toml`)
needs to be the same model, so the two can be timed side by side:

* an MLP instead of the convolutions: 784-512-256 → z 32, mirrored decoder 32-256-512-784, ReLU;
* a Bernoulli likelihood on logits: the decoder has no sigmoid and the reconstruction term is
  `binary_crossentropy(..., from_logits=True)` summed over the pixels, as in the example;
* Fashion-MNIST (`fmnist.py`, the IDX files of Debian's `dataset-fashion-mnist`), 60k training
  images, binarized dynamically: a fresh 0/1 draw of every image each time `train_step` sees it;
* Adam with learning rate 1e-3 (the example's default, spelled out), batch 128;
* `verbose=0` and an epoch timer instead of the progress bar and the plots.

Nothing is tuned for speed (no XLA setting, no steps_per_execution, no tf.data pipeline: the
numpy images go to `fit` as in the example), nor slowed down.

Prints one JSON line: steady-state training samples/s (the epochs after the first, which also
traces and compiles), and the test negative log-likelihood, importance-sampled with K samples per
image on the first NTEST test images binarized once with numpy `default_rng(0)`.

    python benchmarks/peers/keras_example_vae.py                  # EPOCHS=3 K=100 NTEST=2000
    EPOCHS=4 BATCH=128 K=100 NTEST=2000 python benchmarks/peers/keras_example_vae.py
    EPOCHS=1 NTRAIN=4096 K=10 NTEST=200 python benchmarks/peers/keras_example_vae.py   # a smoke run

Environment: EPOCHS (3), BATCH (128), K (100; 0 skips the NLL), NTEST (2000), NTRAIN (0 = all
60000 training images), SEED (0, Keras's seeds; the test binarization always uses 0).
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
PIXELS = 28 * 28
HIDDEN = (512, 256)
LATENT_DIM = 32


def build_encoder() -> keras.Model:
    """Image → (z_mean, z_log_var, z): 784-512-256, then two linear heads of size 32."""
    images = keras.Input(shape=IMAGE_SHAPE)
    h = layers.Flatten()(images)
    for units in HIDDEN:
        h = layers.Dense(units, activation="relu")(h)
    return gaussian_encoder(images, h, LATENT_DIM, seed=SEED + 1)


def build_decoder() -> keras.Model:
    """z → Bernoulli logits of every pixel, shaped like the images: 32-256-512-784."""
    codes = keras.Input(shape=(LATENT_DIM,))
    h = codes
    for units in reversed(HIDDEN):
        h = layers.Dense(units, activation="relu")(h)
    logits = layers.Reshape(IMAGE_SHAPE)(layers.Dense(PIXELS)(h))
    return keras.Model(codes, logits, name="decoder")


def main() -> dict:
    vae = VAE(build_encoder(), build_decoder(), binarization_seed=SEED + 2)
    vae.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3))
    return fit_and_report(vae, RUN,
                          peer="keras-io vae.py style (benchmarks/peers/keras_example_vae.py)")


if __name__ == "__main__":
    main()
