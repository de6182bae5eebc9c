"""A new family defined here, outside zoo/, run through the whole public API: the proof that a family
owns its behaviour through the hooks of `zoo.models.base.Autoencoder` (docs/adding_a_family.md).

The family is the contractive autoencoder (Rifai et al., 2011):

    L = (1/N)·Σ_i ‖x_i − x̂_i‖² + λ·(1/N)·Σ_i ‖J_F(x_i)‖²_F,   J_F(x) = ∂z/∂x, z = F(x | Θ),

the squared Frobenius norm of the encoder's Jacobian, per example, averaged over the batch. It needs
three overrides: `HParams` (λ), `forward` (the Jacobian, computed where the code is, so each step
runs the encoder once) and `penalty`; `evaluation_metrics` adds its test-set value to the reports.
Nothing else — training, evaluation, SavedModel / TFLite / ONNX export, the benchmark, `.keras`
reloading — knows the family exists.

The family is registered only while this module's tests run (fixture `registered`), so the rest
of the session sees the registry it expects: tests/test_cli.py compares `zoo.list_models()` in
this process with a fresh `zoo list`.
"""

import dataclasses
import json
import math
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_images
from keras import ops

import zoo
from zoo.configs.families import ACTIVATIONS, AutoencoderHParams
from zoo.configs.schema import param
from zoo.evaluation.evaluate import EvalSettings
from zoo.models.base import Autoencoder, num_replicas, per_example_sum, replica_mean
from zoo.training import trainer

FAMILY = "contractive"


# The family: what docs/adding_a_family.md calls zoo/models/<family>.py.

@dataclasses.dataclass(frozen=True)
class ContractiveHParams(AutoencoderHParams):
    """A code z = F(x) kept insensitive to its input by λ·‖∂z/∂x‖²_F."""

    lam: float = param(0.1, low=0.0, doc="weight λ of the contractive penalty λ·‖∂z/∂x‖²_F")
    code_activation: str = param("sigmoid", choices=ACTIVATIONS)


@keras.saving.register_keras_serializable(package="zoo_test")
class ContractiveAutoencoder(Autoencoder):
    """An autoencoder trained on L = mean ‖x − x̂‖² (or the cross-entropy) + λ·mean ‖∂z/∂x‖²_F.

    The Jacobian of the encoder is taken per example with `tf.GradientTape.batch_jacobian`, for any
    backbone; `forward` returns ‖J_F(x)‖²_F of every example as "contraction". Metric:
    `contraction`, its batch mean.
    """

    HParams = ContractiveHParams

    def __init__(self, input_shape=(28, 28, 1), **kwargs):
        super().__init__(input_shape=input_shape, **kwargs)
        self.lam = self.hparams.lam
        self.contraction_tracker = keras.metrics.Mean(name="contraction")

    def code_and_contraction(self, x, training=False):
        """(z = F(x), ‖∂z/∂x‖²_F per example)."""
        x = tf.cast(x, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(x)
            code = self.encoder(x, training=training)
            code32 = tf.cast(code, tf.float32)
        jacobian = tape.batch_jacobian(code32, x)  # (B, d, *input_shape)
        return code, per_example_sum(ops.square(jacobian))

    def forward(self, x, training=False) -> dict:
        code, contraction = self.code_and_contraction(self.corrupt(x, training), training=training)
        logits = ops.cast(self.decoder(code, training=training), "float32")
        return {"code": code, "logits": logits, "reconstruction": ops.sigmoid(logits), "contraction": contraction}

    def penalty(self, outputs):
        # base.compute_loss divides the penalty by the replica count (a global-batch term, equal on
        # every replica, sums back to itself). A per-example mean is a sum over this replica's slice
        # divided by the global batch (`replica_mean`); times the replica count, base's division
        # turns it back into that, and the replicas' terms sum to the mean over the global batch.
        self.contraction_tracker.update_state(outputs["contraction"])  # per example: shards and replicas weigh by size
        return self.lam * replica_mean(outputs["contraction"]) * num_replicas()

    def evaluation_metrics(self, x, settings) -> dict:
        """contraction: the mean over the test examples of ‖∂z/∂x‖²_F, beside λ."""
        b = settings.batch_size
        values = [np.asarray(self.code_and_contraction(x[i:i + b])[1]) for i in range(0, len(x), b)]
        return {"contraction": float(np.mean(np.concatenate(values))), "lam": float(self.lam)}


@pytest.fixture(scope="module", autouse=True)
def registered():
    """`zoo.register(FAMILY)` (what `@zoo.register` does in a model file) for this module's tests only."""
    zoo.register(FAMILY)(ContractiveAutoencoder)
    yield ContractiveAutoencoder
    for registry in (zoo.registry.FAMILIES, zoo.registry.HPARAMS):  # no public way to unregister
        registry._entries.pop(FAMILY, None)


# The hyperparameters and the penalty, by hand.

def test_the_family_is_registered_and_checked_like_a_builtin(tmp_path):
    assert FAMILY in zoo.list_models()
    assert zoo.registry.hparams_class(FAMILY) is ContractiveHParams
    with pytest.raises(ValueError, match=r"lam must be in \[0.0, inf\). Received: lam=-1"):
        ContractiveHParams(lam=-1)
    path = tmp_path / "bad.toml"
    path.write_text(f'[model]\nfamily = "{FAMILY}"\nlam = -1\n')
    with pytest.raises(zoo.RecipeError, match=r"bad.toml: model.lam must be in"):
        zoo.load_recipe(path)
    path.write_text(f'[model]\nfamily = "{FAMILY}"\nrho = 0.1\n')
    with pytest.raises(zoo.RecipeError, match=r"unknown key model.rho. Allowed: .*lam"):
        zoo.load_recipe(path)
    with pytest.raises(ValueError, match="Unknown argument 'rho' for model 'contractive'"):
        zoo.build(FAMILY, rho=0.1)


def _sigmoid(t):
    return 1.0 / (1.0 + np.exp(-t))


def test_penalty_and_loss_equal_a_hand_computation():
    """z = σ(Wx + b), x̂ = σ(Vz + c): ‖J‖²_F = Σ_j (z_j(1 − z_j))²·Σ_i W_ij², and the loss is
    mean_b ‖x − x̂‖² + λ·mean_b ‖J_b‖²_F."""
    lam = 0.5
    model = zoo.build(FAMILY, input_shape=(2, 2, 1), code_size=2, hidden=[], code_activation="sigmoid", loss="mse",
                      lam=lam)
    model(np.zeros((1, 2, 2, 1), "float32"))
    w = np.array([[0.5, -1.0], [2.0, 0.25], [-1.5, 0.75], [0.3, -0.6]])  # kernel (inputs, code)
    b = np.array([0.1, -0.2])
    v = np.array([[1.0, -0.5, 0.25, 2.0], [-1.0, 0.5, 1.5, -0.3]])  # decoder kernel (code, outputs)
    c = np.array([0.0, 0.1, -0.1, 0.2])
    model.encoder.get_layer("code").set_weights([w.astype("float32"), b.astype("float32")])
    model.decoder.layers[0].set_weights([v.astype("float32"), c.astype("float32")])
    x = np.array([[0.0, 0.2, 0.9, 1.0], [0.5, 0.5, 0.5, 0.5], [1.0, 0.0, 0.3, 0.7]])

    z = _sigmoid(x @ w + b)
    contraction = (z * (1 - z)) ** 2 @ (w ** 2).sum(axis=0)
    x_hat = _sigmoid(z @ v + c)
    loss = ((x - x_hat) ** 2).sum(axis=1).mean() + lam * contraction.mean()

    images = x.reshape(3, 2, 2, 1).astype("float32")
    outputs = model.forward(images)
    np.testing.assert_allclose(np.asarray(outputs["code"]), z, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(outputs["contraction"]), contraction, rtol=1e-5)
    np.testing.assert_allclose(float(model.penalty(outputs)), lam * contraction.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(model.compute_loss(x=images, y_pred=outputs)), loss, rtol=1e-5)
    np.testing.assert_allclose(float(model.compute_loss(x=images)), loss, rtol=1e-5)  # y_pred computed itself
    settings = EvalSettings(batch_size=2)  # two batches: 2 + 1 examples
    metrics = model.evaluation_metrics(images, settings)
    assert metrics["lam"] == lam
    np.testing.assert_allclose(metrics["contraction"], contraction.mean(), rtol=1e-5)


def test_two_replicas_step_like_one_device():
    """The penalty follows base.compute_loss's replica convention: one SGD step on two replicas
    equals one on one device (its gradient flows through the Jacobian, second order)."""
    cpus = tf.config.list_logical_devices("CPU")
    if len(cpus) < 2:
        pytest.skip("needs two logical CPU devices (set up in conftest)")
    params = {"input_shape": (8, 8, 1), "code_size": 4, "hidden": [8], "lam": 1.0}
    x = tiny_images(8, seed=3)
    x[4:] *= 0.3  # the replicas' halves differ
    reference = zoo.build(FAMILY, **params)
    reference(x[:1])
    initial = reference.get_weights()

    def step(strategy, **overrides):
        with strategy.scope():
            model = zoo.build(FAMILY, **{**params, **overrides})
            model(x[:1])
            model.set_weights(initial)
            model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5))
        model.fit(tf.data.Dataset.from_tensor_slices(x).batch(8), epochs=1, shuffle=False, verbose=0)
        return model.get_weights()

    one, mirrored = tf.distribute.OneDeviceStrategy(cpus[0].name), trainer.make_strategy("mirrored")
    assert mirrored.num_replicas_in_sync == 2
    single, double = step(one), step(mirrored)
    for a, b in zip(single, double):
        np.testing.assert_allclose(b, a, atol=1e-5, rtol=0)
    without = step(one, lam=0.0)
    assert np.max(np.abs(without[0] - single[0])) > 1e-4  # λ moves the encoder's first kernel


def test_batch_shards_step_like_the_whole_batch():
    """A per-example penalty keeps `HParams.per_example_objective` (True, inherited): a batch cut
    into shards (`train.batch_shards`) steps like the whole batch, and reports the same metrics."""
    assert ContractiveHParams.per_example_objective is True and ContractiveAutoencoder.per_example_objective is True
    params = {"input_shape": (8, 8, 1), "code_size": 4, "hidden": [8], "lam": 1.0}
    x = tiny_images(10, seed=5)
    x[5:] *= 0.3
    reference = zoo.build(FAMILY, **params)
    reference(x[:1])
    initial = reference.get_weights()

    def step(shards):
        model = zoo.build(FAMILY, **params)
        model(x[:1])
        model.set_weights(initial)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5))
        model.batch_shards = shards
        return model.get_weights, model.train_on_batch(x, return_dict=True)

    (whole, whole_logs), (sharded, sharded_logs) = step(1), step(3)
    for a, b in zip(whole(), sharded()):
        np.testing.assert_allclose(b, a, atol=2e-5, rtol=1e-6)
    assert set(sharded_logs) == set(whole_logs) >= {"loss", "contraction"}
    for key, value in whole_logs.items():
        np.testing.assert_allclose(sharded_logs[key], value, rtol=1e-5, atol=1e-5, err_msg=key)


# The whole public API on real Fashion-MNIST, tiny.

RECIPE = f"""
name = "{FAMILY}"
description = "Contractive MLP autoencoder 784-32-8 (sigmoid code), lambda = 0.1; defined in tests/models/test_new_family.py."

[model]
family = "{FAMILY}"
hidden = [32]
code_size = 8
loss = "bce"
lam = 0.1

[data]
dataset = "fashion_mnist"
validation_size = 64

[train]
epochs = 1
steps_per_epoch = 3
batch_size = 32
"""


@pytest.fixture(scope="module")
def recipe_path(registered, tmp_path_factory):
    path = tmp_path_factory.mktemp("recipes") / f"{FAMILY}.toml"
    path.write_text(RECIPE)
    return path


@pytest.fixture(scope="module")
def run(recipe_path, tmp_path_factory):
    with warnings.catch_warnings():  # train.batch_shards = "auto" gives 2 shards on 2 cores, in a running TensorFlow
        warnings.filterwarnings("ignore", message=r"batch_shards = \d+: TensorFlow was already running")
        return zoo.fit(zoo.load_recipe(recipe_path), out=tmp_path_factory.mktemp("runs") / FAMILY, verbose=0)


@pytest.fixture(scope="module")
def x_test():
    from zoo.data.sources import load_arrays

    return load_arrays("fashion_mnist").x_test[:64]


@pytest.mark.slow
def test_fit_writes_a_finished_run(run):
    assert isinstance(run.model, ContractiveAutoencoder) and run.model.lam == 0.1
    assert run.model.optimizer.iterations.numpy() == 3
    assert run.metrics["finished"] and math.isfinite(run.metrics["test_loss"])
    assert math.isfinite(run.history["contraction"][-1]) and run.history["contraction"][-1] > 0
    assert 'family = "contractive"' in (run.dir / "recipe.toml").read_text()


@pytest.mark.slow
def test_keras_file_reloads_with_identical_outputs(run, x_test):
    loaded = zoo.load_model(run.dir / "model.keras")
    assert type(loaded) is ContractiveAutoencoder and loaded.hparams == run.model.hparams
    for name in ("reconstruct", "encode"):
        np.testing.assert_array_equal(np.asarray(getattr(loaded, name)(x_test)),
                                      np.asarray(getattr(run.model, name)(x_test)), err_msg=name)
    np.testing.assert_array_equal(np.asarray(loaded.forward(x_test)["contraction"]),
                                  np.asarray(run.model.forward(x_test)["contraction"]))


@pytest.mark.slow
def test_evaluate_reports_the_family_metric(run):
    row = zoo.evaluate(run.dir, nll_samples=2, probe_train_size=200, eval_examples=200)
    assert row["family"] == FAMILY and row["code_size"] == 8
    assert 0 < row["contraction"] and row["lam"] == 0.1
    assert "nll" not in row  # the VAE's metrics are the VAE's
    for key in ("mse", "psnr", "robust_psnr_mean", "probe_accuracy", "knn_accuracy"):
        assert math.isfinite(row[key]), key
    assert json.loads((run.dir / "evaluation.json").read_text())["contraction"] == row["contraction"]


@pytest.mark.slow
def test_export_runs_in_tf_serving_and_litert_like_keras(run, x_test, tmp_path):
    from zoo.export.runners import load_runner

    paths = zoo.export(run.dir, base=tmp_path, format="all", latency_runs=3)
    model = zoo.load_model(run.dir / "model.keras")
    code = np.asarray(model.encode(x_test))
    expected = {"serving_default": ({"x": x_test}, {"reconstruction": np.asarray(model.reconstruct(x_test))}),
                "encode": ({"x": x_test}, {"code": code}),
                "decode": ({"code": code}, {"reconstruction": np.asarray(model.decode(code))}),
                # A new family serves anomaly scores through the base class's hooks, with no code of its own.
                "score": ({"x": x_test}, {"score": np.asarray(model.anomaly_scores(x_test)),
                                          "feature_scores": np.asarray(model.feature_scores(x_test))})}

    # The SavedModel as TF Serving's C++ loader takes it: a TF1 session on a fresh graph, tag "serve".
    version = tmp_path / FAMILY / "1"
    assert version in paths
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        with graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(version))
        signatures = {k: v for k, v in meta_graph.signature_def.items() if not k.startswith("__")}
        assert set(signatures) == set(expected)
        for name, (inputs, outputs) in expected.items():
            sig = signatures[name]
            keys = sorted(sig.outputs)
            got = session.run([sig.outputs[k].name for k in keys], {sig.inputs[k].name: v for k, v in inputs.items()})
            assert keys == sorted(outputs), name
            for key, value in zip(keys, got):
                np.testing.assert_allclose(value, outputs[key], atol=1e-5, rtol=1e-5, err_msg=f"{name}/{key}")

    # The float32 TFLite file on LiteRT's signature runners.
    tflite = tmp_path / FAMILY / "tflite" / f"{FAMILY}_float32.tflite"
    assert tflite in paths
    runner = load_runner(tflite)
    assert set(runner.signatures) == set(expected)
    for name, (inputs, outputs) in expected.items():
        got = runner(name, **inputs)
        for key, value in outputs.items():
            np.testing.assert_allclose(got[key], value, atol=1e-4, rtol=1e-4, err_msg=f"tflite {name}/{key}")
    report = json.loads((tmp_path / FAMILY / "tflite" / "report.json").read_text())
    assert {r["quantization"] for r in report["files"]} == {"float32", "float16", "dynamic_int8", "int8"}


@pytest.mark.slow
def test_benchmark_has_a_row_for_the_family(recipe_path, tmp_path):
    out = tmp_path / "bench"
    results = zoo.benchmark([recipe_path], epochs=1, steps_per_epoch=2, out=out, nll_samples=2, probe_train_size=200,
                            eval_examples=200, export=False, progress=False)
    rows = [r for r in results["rows"] if r["kind"] == "model"]
    assert [(r["name"], r["family"]) for r in rows] == [(FAMILY, FAMILY)]
    assert rows[0]["steps_per_epoch"] == 2 and rows[0]["contraction"] > 0
    saved = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in saved["rows"] if r["kind"] == "model"] == [FAMILY]
    assert f"| {FAMILY} |" in (out / "report.md").read_text()
    assert (out / "runs" / FAMILY / "evaluation.json").is_file()
