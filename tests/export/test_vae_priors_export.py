"""Export of VAEs with learned priors: the mixture's and the VampPrior's `score` on ONNX and LiteRT,
and the VampPrior's `sample` signature through TF Serving's loader.

The score of a learned prior used TFP's MixtureSameFamily.log_prob, which brings BroadcastArgs,
an op tf2onnx cannot convert; the model now computes log p(z) in built-in ops.
"""

import keras
import numpy as np
import pytest
from conftest import TINY_SHAPE, build_tiny, run_signature, tf1_session, tiny_images

import zoo
from zoo.export.runners import TFLiteRunner, load_runner

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["mixture", "vamp"])
def trained(request):
    keras.utils.set_random_seed(3)
    model = build_tiny("vae", prior=request.param, prior_components=3)
    x = tiny_images(32)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(x, batch_size=16, epochs=2, verbose=0)
    return model, tiny_images(12, seed=5)


def keras_scores(model, x):
    return {"score": np.asarray(model.anomaly_scores(x)), "feature_scores": np.asarray(model.feature_scores(x))}


def test_score_converts_to_onnx_and_matches_keras(trained, tmp_path):
    model, x = trained
    paths = zoo.export(model, base=tmp_path, format="onnx", test_data=x, latency_runs=1)
    expected = keras_scores(model, x)
    got = load_runner(next(p for p in paths if str(p).endswith("_score.onnx")))(x=x)
    assert set(got) == set(expected)
    for key, want in expected.items():
        np.testing.assert_allclose(got[key], want, rtol=1e-4, atol=1e-4, err_msg=key)
    encode = load_runner(next(p for p in paths if str(p).endswith("_encode.onnx")))(x=x)
    np.testing.assert_allclose(encode["mean"], np.asarray(model.encode(x)), rtol=1e-5, atol=1e-5)


def test_score_on_litert_matches_keras(trained, tmp_path):
    model, x = trained
    paths = zoo.export(model, base=tmp_path, format="tflite", quantize="none", test_data=x, latency_runs=1)
    runner = TFLiteRunner(next(p for p in paths if str(p).endswith(".tflite")))
    got = runner("score", x=x)
    for key, want in keras_scores(model, x).items():
        np.testing.assert_allclose(got[key], want, rtol=1e-4, atol=1e-4, err_msg=key)


def test_sample_signature_draws_from_the_learned_prior(trained, tmp_path):
    model, x = trained
    (version,) = zoo.export(model, base=tmp_path)
    session, signatures = tf1_session(version)
    got = run_signature(session, signatures["sample"], num_samples=np.int32(5), seed=np.int32(3))["samples"]
    assert got.shape == (5, *TINY_SHAPE)
    np.testing.assert_allclose(got, np.asarray(model.sample(5, seed=3)), rtol=1e-5, atol=1e-5)
    score = run_signature(session, signatures["score"], x=x)["score"]
    np.testing.assert_allclose(score, keras_scores(model, x)["score"], rtol=1e-5, atol=1e-4)
    ll = run_signature(session, signatures["log_likelihood"], x=x, num_samples=np.int32(4), seed=np.int32(1))
    assert ll["log_likelihood"].shape == (len(x),) and np.all(np.isfinite(ll["log_likelihood"]))
    session.close()
