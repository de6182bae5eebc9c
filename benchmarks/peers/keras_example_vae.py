"""Peer of the speed benchmark: a VAE written the way keras-io's `examples/generative/vae.py` teaches it.

That example (Keras 3, by fchollet) builds a `Sampling` layer, an encoder and a decoder as
functional `keras.Model`s, a `VAE(keras.Model)` whose custom `train_step` takes the gradient with
`tf.GradientTape` and keeps three `keras.metrics.Mean` trackers, and trains it with
`compile(optimizer=keras.optimizers.Adam())` and `fit(images, epochs, batch_size=128)`. This file
keeps all of that and changes only what the zoo's reference VAE (`recipes/vae_reference.toml`)
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

import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from keras import layers, ops  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fmnist  # noqa: E402
import settings  # noqa: E402


_RUN = settings.common()
EPOCHS, BATCH, K, NTEST, NTRAIN, SEED = _RUN.epochs, _RUN.batch, _RUN.k, _RUN.ntest, _RUN.ntrain, _RUN.seed

IMAGE_SHAPE = (28, 28, 1)
PIXELS = 28 * 28
HIDDEN = (512, 256)
LATENT_DIM = 32
LOG_2PI = float(np.log(2.0 * np.pi))

keras.utils.set_random_seed(SEED)


class Sampling(layers.Layer):
    """Draws z = z_mean + exp(z_log_var / 2) · ε with ε ~ N(0, I): the reparameterization trick."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(SEED + 1)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        epsilon = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon


def build_encoder() -> keras.Model:
    """Image → (z_mean, z_log_var, z): 784-512-256, then two linear heads of size 32."""
    images = keras.Input(shape=IMAGE_SHAPE)
    h = layers.Flatten()(images)
    for units in HIDDEN:
        h = layers.Dense(units, activation="relu")(h)
    z_mean = layers.Dense(LATENT_DIM, name="z_mean")(h)
    z_log_var = layers.Dense(LATENT_DIM, name="z_log_var")(h)
    z = Sampling()([z_mean, z_log_var])
    return keras.Model(images, [z_mean, z_log_var, z], name="encoder")


def build_decoder() -> keras.Model:
    """z → Bernoulli logits of every pixel, shaped like the images: 32-256-512-784."""
    codes = keras.Input(shape=(LATENT_DIM,))
    h = codes
    for units in reversed(HIDDEN):
        h = layers.Dense(units, activation="relu")(h)
    logits = layers.Reshape(IMAGE_SHAPE)(layers.Dense(PIXELS)(h))
    return keras.Model(codes, logits, name="decoder")


class VAE(keras.Model):
    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.binarization_seed = keras.random.SeedGenerator(SEED + 2)
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
        return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

    def train_step(self, data):
        # Dynamic binarization: each pixel is 1 with probability equal to its intensity, drawn anew per step.
        noise = keras.random.uniform(ops.shape(data), seed=self.binarization_seed)
        x = ops.cast(noise < data, "float32")
        with tf.GradientTape() as tape:
            z_mean, z_log_var, z = self.encoder(x)
            logits = self.decoder(z)
            # -log p(x|z) of the Bernoulli decoder: cross-entropy summed over the 28×28 pixels
            # (the mean over the last axis, of size 1, changes nothing), averaged over the batch.
            reconstruction_loss = ops.mean(
                ops.sum(keras.losses.binary_crossentropy(x, logits, from_logits=True), axis=(1, 2))
            )
            kl_loss = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
            kl_loss = ops.mean(ops.sum(kl_loss, axis=1))
            total_loss = reconstruction_loss + kl_loss
        grads = tape.gradient(total_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self.total_loss_tracker.update_state(total_loss)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.kl_loss_tracker.update_state(kl_loss)
        return {
            "loss": self.total_loss_tracker.result(),
            "reconstruction_loss": self.reconstruction_loss_tracker.result(),
            "kl_loss": self.kl_loss_tracker.result(),
        }


class EpochTimer(keras.callbacks.Callback):
    """Wall-clock seconds of every epoch of `fit`."""

    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def log_likelihood(vae: VAE, x: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Importance-sampled log p(x) of each image, with q(z|x) as the proposal.

    log p(x) ≈ log (1/k) Σ_i p(x|z_i) p(z_i) / q(z_i|x), z_i ~ q(z|x), i = 1..k: a lower bound in
    expectation that tightens as k grows (k = 1 is the ELBO's single-sample estimate).
    """
    draws = keras.random.SeedGenerator(seed)
    batch = max(1, min(100, 20000 // k))  # k·batch decoder rows at a time
    out = []
    for start in range(0, len(x), batch):
        xb = ops.convert_to_tensor(x[start:start + batch])
        z_mean, z_log_var, _ = vae.encoder(xb, training=False)
        epsilon = keras.random.normal((k, *z_mean.shape), seed=draws)
        z = z_mean[None] + ops.exp(0.5 * z_log_var)[None] * epsilon  # (k, b, 32)
        logits = ops.reshape(vae.decoder(ops.reshape(z, (-1, LATENT_DIM)), training=False), (k, -1, PIXELS))
        target = ops.broadcast_to(ops.reshape(xb, (1, -1, PIXELS)), ops.shape(logits))
        log_p_x_given_z = -ops.sum(ops.binary_crossentropy(target, logits, from_logits=True), axis=-1)
        log_p_z = -0.5 * ops.sum(ops.square(z) + LOG_2PI, axis=-1)
        log_q_z = -0.5 * ops.sum(ops.square(epsilon) + LOG_2PI + z_log_var[None], axis=-1)
        log_w = log_p_x_given_z + log_p_z - log_q_z
        out.append(ops.convert_to_numpy(ops.logsumexp(log_w, axis=0)) - np.log(k))
    return np.concatenate(out).astype(np.float64)


def main() -> dict:
    x_train, _, x_test, _ = fmnist.load()
    if NTRAIN:
        x_train = x_train[:NTRAIN]
    images = x_train[..., None]  # (N, 28, 28, 1), as the example feeds MNIST

    vae = VAE(build_encoder(), build_decoder())
    vae.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3))
    timer = EpochTimer()
    start = time.perf_counter()
    history = vae.fit(images, epochs=EPOCHS, batch_size=BATCH, verbose=0, callbacks=[timer])
    train_s = time.perf_counter() - start
    steady = timer.seconds[1:] or timer.seconds  # one epoch only: that epoch, tracing included

    result = {
        "peer": "keras-io vae.py style (benchmarks/peers/keras_example_vae.py)",
        "epochs": EPOCHS, "batch": BATCH, "n_train": len(images), "train_s": round(train_s, 2),
        "epoch_s": [round(s, 3) for s in timer.seconds],
        "samples_per_s": round(len(images) * len(steady) / sum(steady)),
        "steady_epochs": len(timer.seconds) - 1 if len(timer.seconds) > 1 else 0,
        "final_train_loss": round(float(history.history["loss"][-1]), 2),
        "final_reconstruction_loss": round(float(history.history["reconstruction_loss"][-1]), 2),
        "final_kl_loss": round(float(history.history["kl_loss"][-1]), 2),
        "test_nll": None, "test_nll_standard_error": None, "nll_samples": K, "n_test": 0,
        "keras": keras.__version__, "tensorflow": tf.__version__,
    }
    if K:
        x_bin = fmnist.binarize_once(x_test, seed=0)[:NTEST, ..., None]
        start = time.perf_counter()
        log_px = log_likelihood(vae, x_bin, K, seed=SEED)
        result.update(
            test_nll=round(float(-log_px.mean()), 2),
            test_nll_standard_error=(round(float(log_px.std(ddof=1) / np.sqrt(len(log_px))), 2)
                                     if len(log_px) > 1 else None),
            n_test=len(log_px), eval_s=round(time.perf_counter() - start, 2),
        )
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
