"""What the two Keras peers share: keras-io's `examples/generative/vae.py` pieces, and the measuring around them.

The example (Keras 3, by fchollet) is written as a `Sampling` layer, an encoder and a decoder
built as functional `keras.Model`s, and a `VAE(keras.Model)` whose custom `train_step` takes the
gradient with `tf.GradientTape` and keeps three `keras.metrics.Mean` trackers, trained with
`compile(optimizer=Adam())` and `fit(images, epochs, batch_size=128)`. The encoder and decoder
differ between the peers and stay in their files (`keras_example_vae.py`, the MLP of
`recipes/vae_reference.toml`; `keras_conv_vae.py`, the network of `recipes/conv_vae.toml`);
the layer and the model, written the example's way, are here, with what both peers change in them:

* dynamic binarization: `train_step` draws a fresh 0/1 image from the intensities each time;
* a Bernoulli likelihood on logits (`binary_crossentropy(..., from_logits=True)` summed over
  the pixels, as the example sums its cross-entropy);
* an optional KL warm-up (`kl_warmup_steps`): the KL term weighted by min(1, step / steps),
  the step counted by the optimizer's iterations; 0 (the example's) weights it 1 throughout;
* seeded random draws, so a run is repeatable.

Around them, what the benchmark needs and the example does not do: an epoch timer (instead of the
progress bar), the importance-sampled test likelihood and the one JSON line (`fit_and_report`).
"""

import json
import math
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from keras import layers, ops  # noqa: E402

import fmnist  # noqa: E402
import settings  # noqa: E402

IMAGE_SHAPE = (28, 28, 1)  # Fashion-MNIST as the example feeds MNIST: (28, 28) images with a channel axis
LOG_2PI = float(np.log(2.0 * np.pi))


def setup():
    """The run's settings (`settings.common()`: EPOCHS, BATCH, K, NTEST, NTRAIN, SEED), Keras's seeds set from SEED."""
    run = settings.common()
    keras.utils.set_random_seed(run.seed)
    return run


class Sampling(layers.Layer):
    """Draws z = z_mean + exp(z_log_var / 2) · ε with ε ~ N(0, I): the reparameterization trick."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        epsilon = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon


def gaussian_encoder(images, features, latent_dim: int, seed: int) -> keras.Model:
    """The example's encoder ending: linear heads z_mean and z_log_var of size `latent_dim` on `features`,
    and a `Sampling` layer drawing z; the functional `keras.Model` images → (z_mean, z_log_var, z)."""
    z_mean = layers.Dense(latent_dim, name="z_mean")(features)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(features)
    z = Sampling(seed=seed)([z_mean, z_log_var])
    return keras.Model(images, [z_mean, z_log_var, z], name="encoder")


class VAE(keras.Model):
    def __init__(self, encoder, decoder, binarization_seed=None, kl_warmup_steps=0, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.kl_warmup_steps = kl_warmup_steps
        self.binarization_seed = keras.random.SeedGenerator(binarization_seed)
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
        return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

    def kl_weight(self):
        """β of the KL term at this step: min(1, step / kl_warmup_steps), or None (weight 1) without warm-up."""
        if not self.kl_warmup_steps:
            return None
        return ops.minimum(1.0, ops.cast(self.optimizer.iterations, "float32") / self.kl_warmup_steps)

    def train_step(self, data):
        # Dynamic binarization: each pixel is 1 with probability equal to its intensity, drawn anew per step.
        noise = keras.random.uniform(ops.shape(data), seed=self.binarization_seed)
        x = ops.cast(noise < data, "float32")
        beta = self.kl_weight()
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
            total_loss = reconstruction_loss + (kl_loss if beta is None else beta * kl_loss)
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


def log_likelihood(vae: VAE, x: np.ndarray, k: int, seed: int = 0, rows: int = 20000) -> np.ndarray:
    """Importance-sampled log p(x) of each image, with q(z|x) as the proposal.

    log p(x) ≈ log (1/k) Σ_i p(x|z_i) p(z_i) / q(z_i|x), z_i ~ q(z|x), i = 1..k: a lower bound in
    expectation that tightens as k grows (k = 1 is the ELBO's single-sample estimate). About `rows`
    decoder inputs (k per image) go through the decoder at a time.
    """
    draws = keras.random.SeedGenerator(seed)
    batch = max(1, min(100, rows // k))
    pixels = math.prod(x.shape[1:])
    out = []
    for start in range(0, len(x), batch):
        xb = ops.convert_to_tensor(x[start:start + batch])
        z_mean, z_log_var, _ = vae.encoder(xb, training=False)
        epsilon = keras.random.normal((k, *z_mean.shape), seed=draws)
        z = z_mean[None] + ops.exp(0.5 * z_log_var)[None] * epsilon  # (k, b, latent)
        logits = ops.reshape(vae.decoder(ops.reshape(z, (-1, z_mean.shape[-1])), training=False), (k, -1, pixels))
        target = ops.broadcast_to(ops.reshape(xb, (1, -1, pixels)), ops.shape(logits))
        log_p_x_given_z = -ops.sum(ops.binary_crossentropy(target, logits, from_logits=True), axis=-1)
        log_p_z = -0.5 * ops.sum(ops.square(z) + LOG_2PI, axis=-1)
        log_q_z = -0.5 * ops.sum(ops.square(epsilon) + LOG_2PI + z_log_var[None], axis=-1)
        log_w = log_p_x_given_z + log_p_z - log_q_z
        out.append(ops.convert_to_numpy(ops.logsumexp(log_w, axis=0)) - np.log(k))
    return np.concatenate(out).astype(np.float64)


def fit_and_report(vae: VAE, run, peer: str, rows: int = 20000) -> dict:
    """Fits the compiled `vae` on the Fashion-MNIST training images (the first run.ntrain, 0: all 60,000)
    for run.epochs epochs of run.batch, then estimates the test NLL (run.k samples, 0 skips it) on the
    first run.ntest test images binarized once with numpy `default_rng(0)`; prints and returns the one
    JSON line. `run` is `settings.common()`."""
    x_train, _, x_test, _ = fmnist.load()
    images = x_train[:run.ntrain or None, ..., None]  # (N, 28, 28, 1), as the example feeds MNIST
    timer = EpochTimer()
    start = time.perf_counter()
    history = vae.fit(images, epochs=run.epochs, batch_size=run.batch, verbose=0, callbacks=[timer])
    train_s = time.perf_counter() - start
    steady = timer.seconds[1:] or timer.seconds  # one epoch only: that epoch, tracing included
    beta = vae.kl_weight()
    result = {
        "peer": peer, "epochs": run.epochs, "batch": run.batch, "n_train": len(images), "train_s": round(train_s, 2),
        "epoch_s": [round(s, 3) for s in timer.seconds],
        "samples_per_s": round(len(images) * len(steady) / sum(steady)),
        "steady_epochs": len(timer.seconds) - 1 if len(timer.seconds) > 1 else 0,
        "parameters": int(sum(np.prod(w.shape) for w in vae.trainable_weights)),
        "final_train_loss": round(float(history.history["loss"][-1]), 2),
        "final_reconstruction_loss": round(float(history.history["reconstruction_loss"][-1]), 2),
        "final_kl_loss": round(float(history.history["kl_loss"][-1]), 2),
        "kl_weight_at_end": 1.0 if beta is None else round(float(beta), 4),
        "test_nll": None, "test_nll_standard_error": None, "nll_samples": run.k, "n_test": 0,
        "keras": keras.__version__, "tensorflow": tf.__version__,
    }
    if run.k:
        x_bin = fmnist.binarize_once(x_test, seed=0)[:run.ntest, ..., None]
        start = time.perf_counter()
        log_px = log_likelihood(vae, x_bin, run.k, seed=run.seed, rows=rows)
        result.update(
            test_nll=round(float(-log_px.mean()), 2),
            test_nll_standard_error=(round(float(log_px.std(ddof=1) / np.sqrt(len(log_px))), 2)
                                     if len(log_px) > 1 else None),
            n_test=len(log_px), eval_s=round(time.perf_counter() - start, 2),
        )
    print(json.dumps(result), flush=True)
    return result

