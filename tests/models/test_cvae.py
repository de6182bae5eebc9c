"""The conditional VAE (Sohn et al., 2015): its ELBO against a hand computation, sampling given
labels, labels checked in one line, and its label-taking signatures through TF Serving's loader
and LiteRT.

With x ∈ {0, 1}^D, y ∈ {0, …, K − 1}, q_φ(z|x, y) = N(μ, diag σ²), z = μ + σ ⊙ ε and the prior
p(z|y) = N(m_y, diag s_y²) (m = 0, s = 1 for the normal prior),

    −ELBO(x|y) = −Σ_d [x_d log σ(l_d) + (1 − x_d) log(1 − σ(l_d))]
                 + Σ_j [log(s_j/σ_j) + (σ_j² + (μ_j − m_j)²)/(2 s_j²) − ½],   l = G([z, onehot(y)]).

The hand computation below runs the dense encoder and decoder in numpy from their kernels, so the
one-hot concatenation on both sides is checked too, not only the two closed forms.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import TINY_SHAPE, build_tiny, run_signature, tf1_session, tiny_images

import zoo
from zoo.configs.recipe import RecipeError, check_model_for_data
from zoo.export.runners import TFLiteRunner

K = 3


def numpy_dense_stack(network, h):
    """A Sequential of Flatten/Dense/Reshape layers applied in numpy."""
    for layer in network.layers:
        if isinstance(layer, keras.layers.Dense):
            kernel, bias = (np.asarray(w, "float64") for w in layer.get_weights())
            h = h @ kernel + bias
            if layer.activation is keras.activations.relu:
                h = np.maximum(h, 0.0)
            else:
                assert layer.activation is keras.activations.linear, layer.activation
        elif isinstance(layer, keras.layers.Flatten):
            h = h.reshape(len(h), -1)
        elif isinstance(layer, keras.layers.Reshape):
            h = h.reshape((len(h), *layer.target_shape))
    return h


def softplus(v):
    return np.logaddexp(0.0, v)


@pytest.fixture(params=["normal", "conditional"])
def cvae(request):
    keras.utils.set_random_seed(0)
    model = build_tiny("cvae", num_classes=K, prior=request.param, likelihood="bernoulli")
    if request.param == "conditional":  # a prior away from N(0, I), different for every class
        rng = np.random.default_rng(1)
        model.prior_loc.assign(rng.normal(size=(K, model.code_size)).astype("float32"))
        model.prior_raw_scale.assign(rng.normal(size=(K, model.code_size)).astype("float32"))
    return model


def hand_negative_elbo(model, x, y, eps):
    d = model.code_size
    onehot = np.eye(K)[y]
    h = numpy_dense_stack(model.encoder, np.concatenate([x.reshape(len(x), -1), onehot], axis=1))
    mu, sigma = h[:, :d], softplus(h[:, d:]) + 1e-5
    if model.prior_name == "conditional":
        m = np.asarray(model.prior_loc, "float64")[y]
        s = softplus(np.asarray(model.prior_raw_scale, "float64"))[y]
    else:
        m, s = np.zeros_like(mu), np.ones_like(mu)
    z = mu + sigma * eps
    logits = numpy_dense_stack(model.decoder, np.concatenate([z, onehot], axis=1)).reshape(len(x), -1)
    p = 1.0 / (1.0 + np.exp(-logits))
    flat = x.reshape(len(x), -1)
    reconstruction = -np.sum(flat * np.log(p) + (1 - flat) * np.log(1 - p), axis=1)
    kl = np.sum(np.log(s / sigma) + (sigma ** 2 + (mu - m) ** 2) / (2 * s ** 2) - 0.5, axis=1)
    return reconstruction, kl


def test_negative_elbo_matches_a_hand_computation(cvae):
    x = (tiny_images(6) > 0.5).astype("float32")
    y = np.array([0, 1, 2, 2, 1, 0])
    outputs = cvae.forward(cvae.inputs_of(x, y))
    per_example, reconstruction, kl = (np.asarray(t, "float64") for t in cvae.negative_elbo(x, outputs))
    want_rec, want_kl = hand_negative_elbo(cvae, x, y, np.asarray(outputs["eps"], "float64")[0])
    np.testing.assert_allclose(reconstruction, want_rec, rtol=1e-4)
    np.testing.assert_allclose(kl, want_kl, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(per_example, want_rec + want_kl, rtol=1e-4)  # β = 1, no warm-up
    # The label matters: the same images under other labels have another posterior and ELBO.
    other = cvae.forward(cvae.inputs_of(x, (y + 1) % K))
    assert not np.allclose(np.asarray(other["loc"]), np.asarray(outputs["loc"]))


def test_samples_follow_the_labels_and_the_seed(cvae):
    labels = np.array([0, 1, 2, 0, 1])
    samples = np.asarray(cvae.sample(5, labels, seed=4))
    assert samples.shape == (5, *TINY_SHAPE) and np.all((samples >= 0) & (samples <= 1))
    np.testing.assert_array_equal(samples, np.asarray(cvae.sample(5, labels, seed=4)))
    assert not np.allclose(samples, np.asarray(cvae.sample(5, labels, seed=5)))
    # One int stands for every draw, and a draw is the mean of p(x|z, y) at z = m_y + s_y ⊙ ε.
    eps = np.asarray(tf.random.stateless_normal((3, cvae.code_size), seed=[0, 0]))
    loc, scale = (np.asarray(t) for t in cvae.prior_params(np.array([2, 2, 2])))
    want = np.asarray(cvae.decode(cvae.codes_of(loc + scale * eps, [2, 2, 2])))
    np.testing.assert_allclose(np.asarray(cvae.sample(3, 2, seed=0)), want, rtol=1e-5, atol=1e-6)
    if cvae.prior_name == "conditional":  # the prior of class 2 is its own
        np.testing.assert_allclose(loc[0], np.asarray(cvae.prior_loc)[2], rtol=1e-6)
        assert not np.allclose(scale, 1.0)
    else:
        np.testing.assert_array_equal(loc, 0.0)
        np.testing.assert_array_equal(scale, 1.0)


@pytest.mark.parametrize("labels, message", [
    ([0, 1, 3, 0], r"labels must be integers in \[0, 3\). Received: label=3"),
    ([0, -1, 1, 0], r"labels must be integers in \[0, 3\). Received: label=-1"),
    ([0.5, 1, 1, 0], r"labels must be integers in \[0, 3\). Received: label=0.5"),
    ([0, 1], r"labels must hold one label per example: 4 examples. Received: 2 labels"),
    (None, r"this model is conditioned on class labels: the data must have labels"),
])
def test_bad_labels_get_one_line(labels, message):
    model = build_tiny("cvae", num_classes=K)
    with pytest.raises(ValueError, match=message) as info:
        model.inputs_of(tiny_images(4), labels)
    assert "\n" not in str(info.value)


def test_recipes_are_checked_against_the_data_labels():
    hparams = zoo.configs.families.CVAEHParams(num_classes=K)
    model = type("Model", (), {"hparams": hparams})()
    with pytest.raises(RecipeError, match=r"^r\.toml: model\.num_classes must exceed every label of the data: "
                                          r"its labels are in \[0, 9\]\. Received: num_classes=3$"):
        check_model_for_data(model, TINY_SHAPE, True, "r.toml", labels=np.arange(10))
    with pytest.raises(RecipeError, match=r"^r\.toml: this model is conditioned on class labels"):
        check_model_for_data(model, TINY_SHAPE, True, "r.toml", labels=None)
    check_model_for_data(model, TINY_SHAPE, True, "r.toml", labels=np.array([0, 2, 1]))  # fits


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(3)
    model = build_tiny("cvae", num_classes=K, prior="conditional")
    x = tiny_images(48)
    y = np.arange(len(x)) % K
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(model.inputs_of(x, y), batch_size=16, epochs=2, verbose=0)
    return model, tiny_images(9, seed=5), np.array([0, 1, 2, 2, 1, 0, 0, 1, 2])


@pytest.mark.slow
def test_signatures_through_the_tf1_loader_match_keras(trained, tmp_path):
    model, x, y = trained
    inputs = model.inputs_of(x, y)
    (version,) = zoo.export(model, base=tmp_path)
    session, signatures = tf1_session(version)
    assert {"serving_default", "encode", "decode", "sample", "score", "log_likelihood"} <= set(signatures)
    assert set(signatures["serving_default"].inputs) == {"x", "label"}
    got = run_signature(session, signatures["serving_default"], x=x, label=y.astype("int32"))
    np.testing.assert_allclose(got["reconstruction"], np.asarray(model.reconstruct(inputs)), rtol=1e-5, atol=1e-5)
    mean = run_signature(session, signatures["encode"], x=x, label=y.astype("int32"))["mean"]
    np.testing.assert_allclose(mean, np.asarray(model.encode(inputs)), rtol=1e-5, atol=1e-5)
    decoded = run_signature(session, signatures["decode"], code=mean, label=y.astype("int32"))["reconstruction"]
    np.testing.assert_allclose(decoded, np.asarray(model.decode(model.codes_of(mean, y))), rtol=1e-5, atol=1e-5)
    samples = run_signature(session, signatures["sample"], labels=y.astype("int32"), seed=np.int32(3))["samples"]
    np.testing.assert_allclose(samples, np.asarray(model.sample(len(y), y, seed=3)), rtol=1e-5, atol=1e-5)
    score = run_signature(session, signatures["score"], x=x, label=y.astype("int32"))["score"]
    np.testing.assert_allclose(score, np.asarray(model.anomaly_scores(inputs)), rtol=1e-5, atol=1e-4)
    with pytest.raises(Exception, match="labels must be in"):
        run_signature(session, signatures["sample"], labels=np.array([0, K], "int32"), seed=np.int32(0))
    session.close()


@pytest.mark.slow
def test_litert_signatures_match_keras(trained, tmp_path):
    model, x, y = trained
    inputs = model.inputs_of(x, y)
    paths = zoo.export(model, base=tmp_path, format="tflite", quantize="none", test_data=x, latency_runs=1)
    runner = TFLiteRunner(next(p for p in paths if str(p).endswith(".tflite")))
    label = y.astype("int32")
    got = runner("serving_default", x=x, label=label)["reconstruction"]
    np.testing.assert_allclose(got, np.asarray(model.reconstruct(inputs)), rtol=1e-4, atol=1e-4)
    for name in model.device_signatures:
        if name == "encode":
            np.testing.assert_allclose(runner("encode", x=x, label=label)["mean"], np.asarray(model.encode(inputs)),
                                       rtol=1e-4, atol=1e-4)
        elif name == "score":
            np.testing.assert_allclose(runner("score", x=x, label=label)["score"],
                                       np.asarray(model.anomaly_scores(inputs)), rtol=1e-4, atol=1e-3)


def test_its_nll_is_marked_as_conditional_so_the_report_never_ranks_it_with_unconditional_ones():
    """−log p(x|y) is another quantity than −log p(x) (with K equally likely classes only
    −log p(x) ≤ −log p(x|y) + log K holds): the row says which it is."""
    from types import SimpleNamespace

    from zoo.evaluation.evaluate import EvalData, EvalSettings, family_metrics

    model = build_tiny("cvae", num_classes=K)
    x, y = tiny_images(8), np.arange(8) % K
    recipe = SimpleNamespace(data=SimpleNamespace(binarize="none"), train=SimpleNamespace(seed=0))
    data = EvalData(x_test=x, y_test=y, x_probe=x, y_probe=y, corrupted={})
    out = family_metrics(model, recipe, data, EvalSettings(nll_samples=4, bootstrap_resamples=0))
    assert out["nll_data"].endswith("; the NLL of x given its label y") and np.isfinite(out["nll"])
    plain = family_metrics(build_tiny("vae"), recipe, data, EvalSettings(nll_samples=4, bootstrap_resamples=0))
    assert plain["nll_data"] != out["nll_data"]
