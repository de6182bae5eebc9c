"""The VQ-VAE against hand computations: nearest codes, the three loss terms, the straight-through
gradient, the EMA codebook update and the restarts; two replicas like one device; the PixelCNN
prior's masks, its training after the main fit and its samples; the signatures' parity through
TF Serving's loader and LiteRT."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import TINY_SHAPE, build_tiny, run_signature, tf1_session, tiny_images

import zoo
from zoo.layers.masked_conv import MaskedConv1D, PixelCNNPrior
from zoo.layers.quantizer import VectorQuantizer

K, D, CODE = 5, 2, 6  # L = 3 code vectors of 2 dimensions, 5 entries
SMALL = {"code_size": CODE, "embedding_dim": D, "num_embeddings": K, "hidden": [16], "restart_after": 0}


def nearest(z, codebook):
    """argmin_k ‖z − e_k‖², by brute force in float64."""
    return ((z[..., None, :].astype("float64") - codebook.astype("float64")) ** 2).sum(-1).argmin(-1)


def spread_codebook(model, z_e):
    """A codebook of K encoder outputs of the batch, so that several entries are in use."""
    rows = np.asarray(z_e).reshape(-1, D)
    model.quantizer.codebook.assign(rows[np.linspace(0, len(rows) - 1, K).astype(int)] + 0.01)
    return np.asarray(model.quantizer.codebook)


def test_loss_and_straight_through_gradient_by_hand():
    beta = 0.25
    model = build_tiny("vqvae", **SMALL, codebook_update="loss", commitment=beta)
    x = tiny_images(6, seed=2)
    z_e = np.asarray(model.encoder(x)).reshape(len(x), -1, D)
    codebook = spread_codebook(model, z_e)
    k = nearest(z_e, codebook)
    assert len(np.unique(k)) > 1
    np.testing.assert_array_equal(np.asarray(model.encode_indices(x)), k)
    z_q = codebook[k]
    np.testing.assert_allclose(np.asarray(model.encode(x)), z_q.reshape(len(x), -1), rtol=1e-6)

    # L = mean_i [Σ_d (x_d − σ(G(z_q))_d)² + Σ_l ‖z_e,l − e_k‖² + β Σ_l ‖z_e,l − e_k‖²]
    # (the values; sg changes the gradients only)
    logits = np.asarray(model.decoder(z_q.reshape(len(x), -1).astype("float32"))).astype("float64")
    reconstruction = ((x - 1 / (1 + np.exp(-logits))) ** 2).reshape(len(x), -1).sum(-1)
    squared = ((z_e - z_q) ** 2).sum((1, 2))
    expected = np.mean(reconstruction + squared + beta * squared)

    code_bias = model.encoder.get_layer("code").bias
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x=x, y_pred=model.forward(x, training=False))
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    g_bias, g_codebook = tape.gradient(loss, [code_bias, model.quantizer.codebook])

    # ∂L/∂z_e = the decoder's gradient at z_q (passed straight through) + 2β(z_e − e_k)/B; the code
    # layer's bias collects it over the examples.
    z_q_tensor = tf.constant(z_q.reshape(len(x), -1), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(z_q_tensor)
        out = tf.sigmoid(model.decoder(z_q_tensor))
        recon = tf.reduce_mean(tf.reduce_sum(tf.reshape((x - out) ** 2, (len(x), -1)), -1))
    decoder_grad = np.asarray(tape.gradient(recon, z_q_tensor)).reshape(z_e.shape)
    d_z_e = decoder_grad + 2 * beta * (z_e - z_q) / len(x)
    np.testing.assert_allclose(np.asarray(g_bias), d_z_e.reshape(len(x), -1).sum(0), rtol=1e-4, atol=1e-6)
    # ∂L/∂e_j = −2 Σ_{(i, l): k_il = j} (z_e,il − e_j)/B: the codebook term only, no reconstruction term.
    hand = np.zeros_like(codebook, dtype="float64")
    for j in range(K):
        hand[j] = -2 * (z_e[k == j] - codebook[j]).sum(0) / len(x)
    np.testing.assert_allclose(np.asarray(tf.convert_to_tensor(g_codebook)), hand, rtol=1e-4, atol=1e-6)


def test_ema_update_by_hand():
    gamma, eps = 0.9, 1e-5
    layer = VectorQuantizer(K, D, codebook_update="ema", ema_decay=gamma, restart_after=0)
    layer.build((None, 3, D))
    rng = np.random.default_rng(0)
    codebook = rng.normal(size=(K, D)).astype("float32")
    count = rng.uniform(0.5, 2.0, K).astype("float32")
    sums = (codebook * count[:, None]).astype("float32")
    layer.codebook.assign(codebook)
    layer.ema_count.assign(count)
    layer.ema_sum.assign(sums)
    layer.calls.assign(1.0)  # past the data-dependent start
    z = rng.normal(size=(4, 3, D)).astype("float32")
    k = nearest(z, codebook)
    out, indices, _, _, counts = layer(z, training=True)
    np.testing.assert_array_equal(np.asarray(indices), k)
    np.testing.assert_allclose(np.asarray(out), codebook[k], rtol=1e-6)  # the entries before the update

    n = np.bincount(k.ravel(), minlength=K).astype("float64")
    s = np.zeros((K, D))
    np.add.at(s, k.ravel(), z.reshape(-1, D))
    new_count = gamma * count + (1 - gamma) * n
    new_sum = gamma * sums + (1 - gamma) * s
    total = new_count.sum()
    smoothed = (new_count + eps) / (total + K * eps) * total
    np.testing.assert_allclose(np.asarray(counts), n)
    np.testing.assert_allclose(np.asarray(layer.ema_count), new_count, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(layer.ema_sum), new_sum, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(layer.codebook), new_sum / smoothed[:, None], rtol=1e-5, atol=1e-6)


def test_first_call_starts_on_the_data_and_unused_entries_restart():
    layer = VectorQuantizer(K, D, codebook_update="loss", restart_after=2, seed=3)
    layer.build((None, 3, D))
    z = np.random.default_rng(1).normal(size=(4, 3, D)).astype("float32")
    rows = z.reshape(-1, D)
    layer(z, training=True)  # the data-dependent start: every entry on an encoder output
    codebook = np.asarray(layer.codebook)
    assert all(np.any(np.all(np.isclose(rows, e), axis=1)) for e in codebook)
    # One vector far from all but entry 0: the others go unused, and restart on their second unused call.
    far = np.repeat(codebook[:1] + 1e-3, 12, axis=0).reshape(4, 3, D)
    layer(far, training=True)
    np.testing.assert_array_equal(np.asarray(layer.unused_steps)[1:], 1.0)
    np.testing.assert_allclose(np.asarray(layer.codebook), codebook)
    layer(far, training=True)
    after = np.asarray(layer.codebook)
    np.testing.assert_allclose(after[0], codebook[0])
    np.testing.assert_allclose(after[1:], np.broadcast_to(far.reshape(-1, D)[0], (K - 1, D)), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(layer.unused_steps), 0.0)


def test_perplexity_and_usage_metrics():
    model = build_tiny("vqvae", **SMALL)
    x = tiny_images(8)
    indices = np.asarray(model.encode_indices(x))
    p = np.bincount(indices.ravel(), minlength=K) / indices.size
    settings = type("Settings", (), {"batch_size": 3})()
    metrics = model.evaluation_metrics(x, settings)
    used = p[p > 0]
    assert metrics["perplexity"] == pytest.approx(math.exp(-(used * np.log(used)).sum()))
    assert metrics["codebook_usage"] == pytest.approx((p > 0).mean())
    assert metrics["prior_nll"] > 0 and math.isfinite(metrics["prior_bits_per_index"])


def test_code_size_must_be_a_multiple_of_the_embedding_dim():
    with pytest.raises(ValueError, match=r"^code_size must be a multiple of embedding_dim .*Received: code_size=6, "
                                         r"embedding_dim=4$"):
        zoo.build("vqvae", input_shape=TINY_SHAPE, code_size=6, embedding_dim=4)
    with pytest.raises(ValueError, match=r"^codebook_update must be one of loss, ema\. "
                                         r"Received: codebook_update='kmeans'"):
        zoo.build("vqvae", input_shape=TINY_SHAPE, code_size=8, codebook_update="kmeans")


# The prior.
def test_masks_make_the_prior_autoregressive():
    """Changing index l changes the logits at positions > l only (type A: not at l itself)."""
    prior = PixelCNNPrior(K, 6, filters=8, num_layers=3)
    base = np.array([[1, 2, 3, 4, 0, 1]])
    logits = np.asarray(prior(base))
    for position in range(6):
        changed = base.copy()
        changed[0, position] = (changed[0, position] + 1) % K
        moved = np.abs(np.asarray(prior(changed)) - logits).max(-1)[0] > 1e-7
        assert not moved[: position + 1].any() and moved[position + 1:].all(), (position, moved)
    a = MaskedConv1D(1, 5, "A")
    b = MaskedConv1D(1, 5, "B")
    np.testing.assert_array_equal(a.mask.ravel(), [1, 1, 0, 0, 0])
    np.testing.assert_array_equal(b.mask.ravel(), [1, 1, 1, 0, 0])


def test_after_fit_trains_the_prior_below_the_uniform_rate_and_sample_shapes():
    model = build_tiny("vqvae", **{**SMALL, "prior_epochs": 30, "prior_filters": 16, "prior_learning_rate": 1e-2})
    x = tiny_images(64, seed=4)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(x, batch_size=16, epochs=2, verbose=0)
    indices = np.asarray(model.encode_indices(x))
    before = float(np.mean(model.prior_negative_log_likelihood(indices))) / indices.shape[1]
    weights = [np.asarray(w) for w in model.encoder.weights + [model.quantizer.codebook]]
    model.after_fit(x, batch_size=16, seed=0)
    after = float(np.mean(model.prior_negative_log_likelihood(indices))) / indices.shape[1]
    assert after < math.log(K) and after < before, (before, after)
    assert len(model.prior_history) == 30 and model.prior_history[-1] < math.log(K)
    for w, v in zip(weights, model.encoder.weights + [model.quantizer.codebook]):  # the encoder stayed frozen
        np.testing.assert_array_equal(np.asarray(v), w)
    assert not model.prior.trainable
    samples = np.asarray(model.sample(5, seed=1))
    assert samples.shape == (5, *TINY_SHAPE) and np.all((samples >= 0) & (samples <= 1))
    np.testing.assert_array_equal(np.asarray(model.sample(5, seed=1)), samples)  # the seed decides
    drawn = np.asarray(model.sample_indices(tf.constant(200), tf.constant([0, 0])))
    assert drawn.shape == (200, CODE // D) and drawn.min() >= 0 and drawn.max() < K
    # The draws follow the prior: the first index's frequencies are near p(k_1).
    p1 = tf.nn.softmax(model.prior(np.zeros((1, CODE // D), "int32"))[0, 0]).numpy()
    np.testing.assert_allclose(np.bincount(drawn[:, 0], minlength=K) / 200, p1, atol=0.12)


@pytest.mark.slow
def test_fit_runs_the_prior_stage(tmp_path):
    """`zoo.fit` trains the prior after the main fit (`after_fit`), `steps_per_epoch` batches per epoch
    like the main fit, and model.keras holds the trained prior."""
    recipe = zoo.load_recipe("vqvae", overrides=["data.dataset=\"digits\"", "model.backbone=\"dense\"",
                                                 "model.hidden=[32]", "model.code_size=16", "model.prior_epochs=4",
                                                 "model.prior_learning_rate=0.01", "train.epochs=2",
                                                 "train.steps_per_epoch=5", "train.batch_size=64"])
    run = zoo.fit(recipe, out=tmp_path / "run", verbose=0)
    assert run.model.optimizer.iterations.numpy() == 10
    assert len(run.model.prior_history) == 4 and run.model.prior_history[-1] < math.log(run.model.num_embeddings)
    loaded = zoo.load_model(run.dir / "model.keras")
    np.testing.assert_allclose(np.asarray(loaded.sample(3, seed=2)), np.asarray(run.model.sample(3, seed=2)),
                               rtol=1e-6, atol=1e-6)


# Two replicas.
@pytest.mark.skipif(len(tf.config.list_logical_devices("CPU")) < 2, reason="needs two logical CPU devices (conftest)")
@pytest.mark.parametrize("update", ["ema", "loss"])
def test_two_replicas_step_like_one_device_with_restarts(update):
    """The EMA sums and the counts are all-reduced and the restarts draw from the gathered global
    batch, so the codebook, its statistics and every weight agree with one device."""
    from zoo.training import trainer

    params = {**SMALL, "input_shape": TINY_SHAPE, "seed": 1, "codebook_update": update, "restart_after": 1}
    x = tiny_images(8, seed=3)
    x[4:] *= 0.3

    def step(strategy, initial):
        with strategy.scope():
            model = zoo.build("vqvae", **params)
            model(x[:1])
            model.set_weights(initial)
            model.compile(optimizer=keras.optimizers.SGD(0.5))
        model.fit(tf.data.Dataset.from_tensor_slices(x).batch(8).repeat(2), epochs=1, shuffle=False, verbose=0)
        return model

    reference = zoo.build("vqvae", **params)
    reference(x[:1])
    initial = reference.get_weights()
    single = step(tf.distribute.OneDeviceStrategy("/cpu:0"), initial)
    double = step(trainer.make_strategy("mirrored"), initial)
    assert float(np.asarray(double.quantizer.calls)) == 2
    for a, b, var in zip(single.get_weights(), double.get_weights(), single.weights):
        np.testing.assert_allclose(b, a, atol=1e-5, rtol=0, err_msg=var.path)


# Export.
@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(5)
    model = build_tiny("vqvae", **{**SMALL, "prior_epochs": 2, "prior_filters": 8})
    x = tiny_images(32)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(x, batch_size=16, epochs=2, verbose=0)
    model.after_fit(x, batch_size=16)
    return model, tiny_images(12, seed=5)


@pytest.mark.slow
def test_signatures_through_tf_servings_loader(trained, tmp_path):
    model, x = trained
    (version,) = zoo.export(model, base=tmp_path)
    session, signatures = tf1_session(version)
    assert {"encode_indices", "decode_indices", "sample"} <= set(signatures)
    indices = np.asarray(model.encode_indices(x))
    got = run_signature(session, signatures["encode_indices"], x=x)["indices"]
    np.testing.assert_array_equal(got, indices)
    np.testing.assert_allclose(run_signature(session, signatures["encode"], x=x)["code"], np.asarray(model.encode(x)),
                               rtol=1e-6)
    np.testing.assert_allclose(run_signature(session, signatures["decode_indices"], indices=indices)["reconstruction"],
                               np.asarray(model.decode_indices(indices)), rtol=1e-5, atol=1e-6)
    sampled = run_signature(session, signatures["sample"], num_samples=np.int32(4), seed=np.int32(3))
    assert sampled["samples"].shape == (4, *TINY_SHAPE) and sampled["indices"].shape == (4, CODE // D)
    np.testing.assert_allclose(sampled["samples"], np.asarray(model.sample(4, seed=3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sampled["samples"], np.asarray(model.decode_indices(sampled["indices"])), rtol=1e-5,
                               atol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_samples must be positive"):
        run_signature(session, signatures["sample"], num_samples=np.int32(0), seed=np.int32(0))
    session.close()


@pytest.mark.slow
def test_device_signatures_on_litert(trained, tmp_path):
    from zoo.export.runners import TFLiteRunner

    model, x = trained
    paths = zoo.export(model, base=tmp_path, format="tflite", quantize="none", test_data=x, latency_runs=1)
    runner = TFLiteRunner(next(p for p in paths if str(p).endswith(".tflite")))
    code = np.asarray(model.encode(x))
    np.testing.assert_allclose(runner("encode", x=x)["code"], code, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(runner("decode", code=code)["reconstruction"], np.asarray(model.decode(code)),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(runner(x=x)["reconstruction"], np.asarray(model(x)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(runner("score", x=x)["score"], np.asarray(model.anomaly_scores(x)), rtol=1e-4, atol=1e-4)
