"""Export: SavedModel for TF Serving, TFLite on LiteRT, ONNX on onnxruntime, and the CLI.

The heavy tests train a small model of every registered family on a slice of Fashion-MNIST,
export it in every format once (a module fixture) and check each runtime against Keras: the
SavedModel through TF1's session loader (what TF Serving's C++ loader does), the .tflite files
through the LiteRT interpreter, the .onnx files through onnxruntime.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import accepts, build_tiny, run_signature, tf1_session

import zoo
from zoo.cli import main
from zoo.data.sources import load_arrays
from zoo.export import describe
from zoo.export.runners import SavedModelRunner, TFLiteRunner, load_runner
from zoo.models.vae import VariationalAutoencoder

FAMILIES = zoo.list_models()
SHAPE = (28, 28, 1)
CODE = 8
FLAVOURS = ("float32", "float16", "dynamic_int8", "int8")


# Fixtures.
@pytest.fixture(scope="module")
def fashion():
    arrays = load_arrays("fashion_mnist")
    return arrays.x_train[:2000], arrays.y_train[:2000], arrays.x_test[:500]


def small_model(family):
    params = {"input_shape": SHAPE, "code_size": CODE}
    if accepts(family, "hidden"):
        params["hidden"] = [32]
    if accepts(family, "seed"):
        params["seed"] = 1
    model = zoo.build(family, **params)
    model(model.inputs_of(np.zeros((1, *SHAPE), "float32"), np.zeros(1, "int64")))
    return model


@pytest.fixture(scope="module", params=FAMILIES)
def exported(request, fashion, tmp_path_factory):
    """A briefly trained small model of one family, exported in every format."""
    family = request.param
    x_train, y_train, x_test = fashion
    keras.utils.set_random_seed(7)
    model = small_model(family)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    model.fit(model.inputs_of(x_train, y_train), epochs=2, batch_size=64, verbose=0)
    base = tmp_path_factory.mktemp(f"export-{family}")
    paths = zoo.export(model, base=base, format="all", representative_data=x_train[:200], test_data=x_test,
                       latency_runs=3)
    return {"family": family, "model": model, "base": base, "paths": paths, "x": x_test,
            "dir": base / family, "version": base / family / "1"}


def is_vae(model) -> bool:
    """The tests know the families; the exporter does not ask (it calls the model's hooks)."""
    return isinstance(model, VariationalAutoencoder)


def labels_of(model, x):
    """The labels the model's own `signature_inputs` gives the examples x (the exporter's
    reference feeds them too), or None for a model that takes no labels."""
    return model.signature_inputs(x)["serving_default"].get("label")


def model_inputs(model, x):
    """What the Keras model takes for x: x itself, or x with `labels_of` it."""
    return model.inputs_of(x, labels_of(model, x))


def posterior(model, x):
    """μ and σ of q(z|x), from the VAE's own distribution object."""
    q = model.posterior(x)
    return np.asarray(q.mean()), np.asarray(q.stddev())


def keras_outputs(model, x):
    """What each inference signature must return, computed with the Keras model."""
    labels, x = labels_of(model, x), model_inputs(model, x)
    code = posterior(model, x)[0] if is_vae(model) else np.asarray(model.encode(x))
    out = {"serving_default": {"reconstruction": np.asarray(model.predict(x, verbose=0))},
           "decode": {"reconstruction": np.asarray(model.decode(model.codes_of(code, labels)))}}
    out["score"] = {"score": np.asarray(model.anomaly_scores(x)), "feature_scores": np.asarray(model.feature_scores(x))}
    if is_vae(model):
        mean, stddev = posterior(model, x)
        out["encode"] = {"mean": mean, "stddev": stddev}
    else:
        out["encode"] = {"code": code}
    return out, code


def assert_close(got, want, tol, what=""):
    """|got − want| ≤ tol·max(1, |want|): absolute for outputs in [0, 1], relative for large codes
    (an unbounded ReLU code near 20 differs by 1e-5 between runtimes through float32 rounding)."""
    np.testing.assert_allclose(got, want, atol=tol, rtol=tol, err_msg=what)


def signature_inputs(name, x, code, labels=None):
    """The feed of signature `name`: x, or the codes for decode, with the labels of a model that takes them."""
    feed = {"x": x} if name != "decode" else {"code": code}
    return feed if labels is None else {**feed, "label": labels[: len(feed.get("x", code))]}


# SavedModel, loaded the TF Serving way.
@pytest.mark.slow
def test_saved_model_signatures_match_keras_in_a_tf1_session(exported):
    model, x = exported["model"], exported["x"][:64]
    expected, code = keras_outputs(model, x)
    session, signatures = tf1_session(exported["version"])
    names = set(model.serving_signatures())  # the model's own: the base four, plus the family's extra ones
    assert names >= {"serving_default", "encode", "decode", "score"}
    assert set(signatures) - {"__saved_model_init_op"} == names
    for name, outputs in expected.items():
        sig = signatures[name]
        assert sig.method_name == "tensorflow/serving/predict"
        for info in sig.inputs.values():
            assert info.tensor_shape.dim[0].size == -1  # a free batch dimension
        for batch in (x, x[:1]):
            inputs = signature_inputs(name, batch, code[: len(batch)], labels_of(model, batch))
            got = run_signature(session, sig, **inputs)
            assert set(got) == set(outputs)
            for key, want in outputs.items():
                assert_close(got[key], want[: len(batch)], 1e-5, f"{name}/{key}")
    session.close()


@pytest.mark.slow
@pytest.mark.parametrize("exported", ["vae"], indirect=True)  # sample and log_likelihood are VAE signatures
def test_vae_sample_and_log_likelihood_signatures(exported):
    model = exported["model"]
    assert is_vae(model)
    x = (exported["x"][:6] > 0.5).astype("float32")
    expected_samples = np.asarray(model.sample(5, seed=3))
    mean, stddev = posterior(model, x)
    k, seed, d = 3, 11, CODE
    # log p(x) ≈ logsumexp_i [log p(x|z_i) + log N(z_i; 0, I) − log q(z_i|x)] − log k, by hand.
    eps = tf.random.stateless_normal((k, len(x), d), seed=[seed, 0]).numpy().astype("float64")
    z = mean + stddev * eps
    logits = np.asarray(model.decoder(z.reshape(-1, d).astype("float32"))).astype("float64").reshape(k, *x.shape)
    log_sigmoid = lambda t: -np.logaddexp(0, -t)  # noqa: E731
    log_px_z = (x * log_sigmoid(logits) + (1 - x) * log_sigmoid(-logits)).reshape(k, len(x), -1).sum(-1)
    log_pz = -0.5 * (z ** 2).sum(-1) - 0.5 * d * np.log(2 * np.pi)
    log_qz = -0.5 * (eps ** 2).sum(-1) - np.log(stddev).sum(-1) - 0.5 * d * np.log(2 * np.pi)
    log_w = log_px_z + log_pz - log_qz
    peak = log_w.max(0)
    expected_ll = peak + np.log(np.exp(log_w - peak).mean(0))

    session, signatures = tf1_session(exported["version"])
    samples = run_signature(session, signatures["sample"], num_samples=np.int32(5), seed=np.int32(3))["samples"]
    assert_close(samples, expected_samples, 1e-5)
    again = run_signature(session, signatures["sample"], num_samples=np.int32(5), seed=np.int32(3))["samples"]
    np.testing.assert_array_equal(again, samples)  # stateless: the seed decides
    other = run_signature(session, signatures["sample"], num_samples=np.int32(2), seed=np.int32(4))["samples"]
    assert other.shape == (2, *SHAPE) and not np.allclose(other, samples[:2])
    ll = run_signature(session, signatures["log_likelihood"], x=x, num_samples=np.int32(k), seed=np.int32(seed))
    np.testing.assert_allclose(ll["log_likelihood"], expected_ll, rtol=1e-5, atol=1e-3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_samples must be positive"):
        run_signature(session, signatures["sample"], num_samples=np.int32(0), seed=np.int32(0))
    session.close()


def _function_ops(function_defs, name, seen=None):
    """Op types of a library function and of every function it calls."""
    seen = set() if seen is None else seen
    if name in seen:
        return set()
    seen.add(name)
    ops = set()
    for node in function_defs[name].node_def:
        ops.add(node.op)
        for attr in node.attr.values():
            callees = [attr.func.name] if attr.HasField("func") else [f.name for f in attr.list.func]
            for callee in callees:
                if callee in function_defs:
                    ops |= _function_ops(function_defs, callee, seen)
    return ops


def signature_ops(saved_model_dir) -> dict:
    """Op types reachable from each signature of a SavedModel, read from saved_model.pb."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(saved_model_dir) / "saved_model.pb").read_bytes())
    graph = proto.meta_graphs[0].graph_def
    functions = {f.signature.name: f for f in graph.library.function}
    nodes = {n.name: n for n in graph.node}
    out = {}
    for key, sig in proto.meta_graphs[0].signature_def.items():
        if key.startswith("__"):
            continue
        ops = set()
        for info in sig.outputs.values():
            node = nodes[info.name.split(":")[0]]
            ops |= _function_ops(functions, node.attr["f"].func.name)
        out[key] = ops
    return out


@pytest.mark.slow
def test_inference_signatures_hold_no_random_op(exported):
    ops = signature_ops(exported["version"])
    for name in ("serving_default", "encode", "decode", "score"):
        assert ops[name] and not [op for op in ops[name] if "Random" in op], name
    if "sample" in ops:
        random_ops = {op for name in ("sample", "log_likelihood") for op in ops.get(name, ()) if "Random" in op}
        assert random_ops and all(op.startswith("Stateless") for op in random_ops), random_ops


@pytest.mark.slow
def test_warmup_requests_parse_and_run(exported):
    from tensorflow_serving.apis import prediction_log_pb2

    warmup = exported["version"] / "assets.extra" / "tf_serving_warmup_requests"
    logs = []
    for record in tf.data.TFRecordDataset(str(warmup)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        logs.append(log)
    session, signatures = tf1_session(exported["version"])
    assert {log.predict_log.request.model_spec.signature_name for log in logs} == set(signatures) - {
        "__saved_model_init_op"}
    for log in logs:
        request = log.predict_log.request
        assert request.model_spec.name == exported["family"]
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        outputs = run_signature(session, signatures[request.model_spec.signature_name], **inputs)
        assert all(np.all(np.isfinite(v)) for v in outputs.values())
    session.close()


# TFLite on LiteRT.
@pytest.mark.slow
def test_tflite_files_match_keras(exported):
    from zoo.export.tflite import op_names

    model, x, name = exported["model"], exported["x"], exported["family"]
    expected, code = keras_outputs(model, x)
    keras_mse = float(np.mean((expected["serving_default"]["reconstruction"] - x) ** 2))
    for flavour in FLAVOURS:
        path = exported["dir"] / "tflite" / f"{name}_{flavour}.tflite"
        assert path in exported["paths"]
        ops = op_names(path.read_bytes())
        assert not [op for op in ops if op.startswith("Flex") or op == "CUSTOM" or "RANDOM" in op], ops
        runner = TFLiteRunner(path)
        assert set(runner.signatures) == {"serving_default", "encode", "decode", "score"}
        for signature, outputs in expected.items():
            got = runner(signature, **signature_inputs(signature, x, code, labels_of(model, x)))
            for key, want in outputs.items():
                if flavour in ("float32", "float16"):
                    assert_close(got[key], want, 1e-5 if flavour == "float32" else 1e-2, f"{flavour} {signature}/{key}")
        if flavour in ("dynamic_int8", "int8"):
            mse = float(np.mean((runner(**signature_inputs("serving_default", x, code, labels_of(model, x)))
                                 ["reconstruction"] - x) ** 2))
            assert abs(mse - keras_mse) <= 0.05 * keras_mse, (flavour, mse, keras_mse)


@pytest.mark.slow
def test_full_integer_file_is_integer(exported):
    from ai_edge_litert import schema_py_generated as schema

    path = exported["dir"] / "tflite" / f"{exported['family']}_int8.tflite"
    report = {r["file"]: r for r in json.loads((exported["dir"] / "tflite" / "report.json").read_text())["files"]}
    assert report[path.name]["op_sets"] == ["TFLITE_BUILTINS_INT8"]
    flat = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    fc = schema.BuiltinOperator.FULLY_CONNECTED
    for subgraph in flat.subgraphs:
        for op in subgraph.operators:
            code = flat.operatorCodes[op.opcodeIndex]
            if max(code.builtinCode, code.deprecatedBuiltinCode) == fc:
                # A fully connected layer computes on int8 activations and int8 weights.
                assert subgraph.tensors[op.inputs[0]].type == schema.TensorType.INT8
                assert subgraph.tensors[op.inputs[1]].type == schema.TensorType.INT8


@pytest.mark.slow
def test_report_describes_each_file(exported):
    report = json.loads((exported["dir"] / "tflite" / "report.json").read_text())["files"]
    assert sorted(r["quantization"] for r in report) == sorted(FLAVOURS)
    x = exported["x"]
    keras_mse = float(np.mean((np.asarray(exported["model"].predict(model_inputs(exported["model"], x), verbose=0))
                               - x) ** 2))
    for row in report:
        path = exported["dir"] / "tflite" / row["file"]
        assert row["size_bytes"] == path.stat().st_size
        assert row["eval_examples"] == len(x) and row["eval_data"] == "given test data"
        assert row["keras_mse"] == pytest.approx(keras_mse, rel=1e-5)
        assert row["mse_ratio"] == pytest.approx(row["mse"] / row["keras_mse"])
        assert row["latency_ms_median"] > 0 and row["latency_runs"] == 3
        assert 0 <= row["max_abs_diff"] < 0.5
    sizes = {r["quantization"]: r["size_bytes"] for r in report}
    assert sizes["float16"] < sizes["float32"]
    table = describe(exported["paths"])
    assert all(row["file"] in table for row in report)


# ONNX on onnxruntime.
@pytest.mark.slow
def test_onnx_files_match_keras(exported):
    model, x, name = exported["model"], exported["x"][:64], exported["family"]
    expected, code = keras_outputs(model, x)
    for signature, suffix in (("serving_default", ""), ("encode", "_encode"), ("decode", "_decode"),
                              ("score", "_score")):
        runner = load_runner(exported["dir"] / "onnx" / f"{name}{suffix}.onnx")
        got = runner(**signature_inputs(signature, x, code, labels_of(model, x)))
        assert set(got) == set(expected[signature])
        for key, want in expected[signature].items():
            assert_close(got[key], want, 1e-5, f"{signature}/{key}")


@pytest.mark.slow
def test_runners_refuse_a_wrong_shape_in_one_line(exported):
    name = exported["family"]
    runners = [SavedModelRunner(exported["version"]), TFLiteRunner(exported["dir"] / "tflite" / f"{name}_int8.tflite"),
               load_runner(exported["dir"] / "onnx" / f"{name}.onnx")]
    model = exported["model"]
    three = {} if labels_of(model, exported["x"][:3]) is None else {"label": np.zeros(3, "int32")}
    two = {} if not three else {"label": np.zeros(2, "int32")}
    for runner in runners:
        with pytest.raises(ValueError) as info:
            runner(x=np.zeros((3, 28, 28), "float32"), **three)
        message = str(info.value)
        assert "\n" not in message
        assert "expects shape (None, 28, 28, 1)" in message and "Received: shape (3, 28, 28)" in message
    with pytest.raises(ValueError, match=r"expects shape \(None, 8\). Received: shape \(2, 9\)"):
        runners[0]("decode", code=np.zeros((2, 9), "float32"), **two)
    with pytest.raises(ValueError, match="Unknown signature 'nope'"):
        runners[1]("nope", x=np.zeros((1, *SHAPE), "float32"))


@pytest.mark.slow
@pytest.mark.parametrize("exported", ["vae"], indirect=True)  # one family (the one with all five) is enough
def test_saved_model_cli_lists_the_signatures(exported):
    cli = Path(sys.executable).parent / "saved_model_cli"
    result = subprocess.run([str(cli), "show", "--all", "--dir", str(exported["version"])], capture_output=True,
                            text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("serving_default", "encode", "decode", "score", "sample", "log_likelihood"):
        assert f"signature_def['{name}']" in result.stdout
    assert "inputs['x'] tensor_info" in result.stdout and "outputs['stddev'] tensor_info" in result.stdout
    assert "shape: (-1, 28, 28, 1)" in result.stdout


# Versions and atomicity (tiny models, fast).
def tiny_model(family="basic"):
    return build_tiny(family)


def versions(model_dir: Path):
    return sorted(p.name for p in model_dir.iterdir())


def test_versions_increment_and_are_never_overwritten(tmp_path):
    model = tiny_model()
    first = zoo.export(model, base=tmp_path)
    assert first == [tmp_path / "basic" / "1"]
    pb = (first[0] / "saved_model.pb").read_bytes()
    (first[0] / "marker").write_text("mine")
    second = zoo.export(model, base=tmp_path)
    assert second == [tmp_path / "basic" / "2"]
    (tmp_path / "basic" / "7").mkdir()
    (tmp_path / "basic" / "notes").mkdir()
    third = zoo.export(model, base=tmp_path)
    assert third == [tmp_path / "basic" / "8"]
    assert (first[0] / "marker").read_text() == "mine" and (first[0] / "saved_model.pb").read_bytes() == pb
    assert versions(tmp_path / "basic") == ["1", "2", "7", "8", "notes"]


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_an_export_interrupted_before_the_rename_leaves_nothing(tmp_path, monkeypatch, error):
    model = tiny_model()
    zoo.export(model, base=tmp_path)

    calls = []

    def fail(rename):
        def patched(src, dst, *args, **kwargs):
            if ".tmp-export" not in str(src):
                return rename(src, dst, *args, **kwargs)
            calls.append((Path(src).parent, Path(dst).name))
            raise error
        return patched

    monkeypatch.setattr(os, "rename", fail(os.rename))
    monkeypatch.setattr(os, "replace", fail(os.replace))
    with pytest.raises(type(error)):
        zoo.export(model, base=tmp_path)
    assert calls == [(tmp_path / "basic", "2")]  # the export got as far as the rename
    assert versions(tmp_path / "basic") == ["1"]  # no version 2, no temporary directory


def test_the_temporary_directory_of_a_killed_exporter_is_removed_by_the_next_export(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    model_dir = tmp_path / "basic"
    stale = model_dir / f".tmp-export-{dead.pid}-0123abcd"  # what a kill -9 mid-export leaves
    live = model_dir / f".tmp-export-{os.getpid()}-feedbeef"  # an export in progress in a live process
    for directory in (stale, live):
        (directory / "variables").mkdir(parents=True)
        (directory / "saved_model.pb").write_bytes(b"partial")
    assert zoo.export(tiny_model(), base=tmp_path) == [model_dir / "1"]
    assert not stale.exists() and live.is_dir()


def test_runner_reads_a_saved_model(tmp_path, images):
    model = tiny_model("denoising")
    (path,) = zoo.export(model, base=tmp_path, name="dae")
    runner = load_runner(path)
    assert runner.signatures["encode"]["inputs"]["x"][0] == (None, 8, 8, 1)
    np.testing.assert_allclose(runner(x=images)["reconstruction"], np.asarray(model(images)), atol=1e-5)
    runner.close()


@pytest.mark.slow
def test_import_zoo_stays_light_and_zoo_export_stays_callable():
    code = ("import sys, zoo; heavy = [m for m in ('zoo.export', 'tensorflow', 'ai_edge_litert', 'tf2onnx', "
            "'onnxruntime', 'tensorflow_serving') if m in sys.modules]; assert not heavy, heavy; "
            "f = zoo.export; import zoo.export; from zoo.export.api import FORMATS; "
            "assert f is zoo.export and callable(f) and 'all' in FORMATS")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]


# Bad input: one line, exit code 2, nothing written.
@pytest.fixture
def keras_file(tmp_path):
    path = tmp_path / "tiny.keras"
    tiny_model().save(path)
    return path


def run_cli(capsys, *argv):
    code = main(["export", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoo export: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_cli_exports_a_keras_file(tmp_path, keras_file, capsys):
    code, out, err = run_cli(capsys, keras_file, "--base", tmp_path / "sm")
    assert code == 0, err
    assert f"saved_model  {tmp_path / 'sm' / 'basic' / '1'}  signatures: serving_default, encode, decode" in out


@pytest.mark.parametrize("argv, fragments", [
    (["{tmp}/missing"], ["No run directory or .keras file"]),
    (["{tmp}/empty"], ["is not a finished zoo run"]),
    (["{tmp}/notes.txt"], ["neither a zoo run directory nor a .keras file"]),
    (["{tmp}/broken.keras"], ["broken.keras is not a .keras model archive (truncated or corrupt"]),
    (["{tmp}/plain.keras"], ["is not a zoo model", "Sequential"]),
    (["{keras}", "--format", "pb"], ["format must be one of saved_model, tflite, onnx, all", "'pb'"]),
    (["{keras}", "--format", "tflite", "--quantize", "int4"], ["quantize must be one of", "'int4'"]),
    (["{keras}", "--quantize", "int8"], ["quantize applies to TFLite files"]),
    (["{keras}", "--base", "{tmp}/notes.txt"], ["is a file, not a directory"]),
    (["{keras}", "--format", "tflite", "--quantize", "int8"], ["calibrates on training data"]),
    (["{keras}", "--format", "tflite", "--quantize", "int8", "--calibration-data", "{tmp}/wrong.npy"],
     ["representative_data must have shape (N, 8, 8, 1)", "(5, 3)"]),
    (["{keras}", "--name", "../escape"], ["name must be letters"]),
])
def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path, keras_file, capsys, argv, fragments):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not a model")
    (tmp_path / "broken.keras").write_bytes(b"PK\x03\x04 truncated")
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(tmp_path / "plain.keras")
    np.save(tmp_path / "wrong.npy", np.zeros((5, 3), "float32"))
    before = sorted(p for p in tmp_path.rglob("*"))
    argv = [a.format(tmp=tmp_path, keras=keras_file) for a in argv]
    if "--base" not in argv:
        argv += ["--base", str(tmp_path / "sm")]
    code, out, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, *fragments)
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing written


@pytest.mark.slow
def test_cli_exports_a_run_with_its_recipe_data(tmp_path, capsys):
    """A run directory: the name comes from its recipe, int8 calibrates on its training data and
    the report is computed on its test set."""
    recipe = zoo.load_recipe("basic").replace("model", code_size=CODE)
    run = tmp_path / "runs" / "my-basic"
    run.mkdir(parents=True)
    model = recipe.model.build(recipe.input_shape)
    model(np.zeros((1, *SHAPE), "float32"))
    model.save(run / "model.keras")
    (run / "recipe.toml").write_text(recipe.replace("train", seed=3).to_toml().replace('name = "basic"',
                                                                                     'name = "shirts"'))
    code, out, err = run_cli(capsys, run, "--base", tmp_path / "sm", "--format", "tflite", "--quantize", "int8",
                             "--latency-runs", "2")
    assert code == 0, err
    path = tmp_path / "sm" / "shirts" / "tflite" / "shirts_int8.tflite"
    assert path.is_file() and str(path) in out and "shirts_int8.tflite  int8" in out
    (row,) = json.loads((path.parent / "report.json").read_text())["files"]
    assert row["eval_data"] == "test set" and row["eval_examples"] == 10000
    assert row["source"] == str(run)
    assert not (tmp_path / "sm" / "shirts" / "1").exists()  # only what was asked for


@pytest.mark.slow
def test_a_cross_entropy_model_exports_its_score_to_onnx(tmp_path, images):
    """The shipped recipes train with loss='bce': their `score` signature must convert to ONNX
    (TensorFlow's logistic loss brings Log1p, which tf2onnx cannot convert) and match Keras."""
    model = build_tiny("basic", loss="bce")
    paths = zoo.export(model, base=tmp_path, format="onnx", test_data=images, latency_runs=1)
    runner = load_runner(next(p for p in paths if str(p).endswith("_score.onnx")))
    got = runner(x=images)
    assert_close(got["score"], np.asarray(model.anomaly_scores(images)), 1e-4, "score")
    assert_close(got["feature_scores"], np.asarray(model.feature_scores(images)), 1e-4, "feature_scores")
