"""The preprocessing a model carries travels into its exports: the SavedModel (through TF1's
session loader, as TF Serving loads it), the TFLite file on LiteRT and the ONNX file take raw
inputs and return outputs in the input's units, like the Keras model."""

import keras
import numpy as np
import pytest
from conftest import run_signature, tf1_session
from test_export import assert_close, keras_outputs, signature_inputs

import zoo
from zoo.data.splits import load_splits
from zoo.export.runners import TFLiteRunner, load_runner

CASES = {
    # A standardized table: a VAE with a Gaussian likelihood and a stacked autoencoder.
    "table-vae": ("breast_cancer", "vae", {"hidden": [16], "code_size": 4, "likelihood": "gaussian", "seed": 1}),
    "table-stacked": ("breast_cancer", "stacked", {"hidden": [16], "code_size": 4, "loss": "mse"}),
    # Images scaled by 1/16 in the model (scikit-learn's digits, values 0..16).
    "digits-conv": ("digits", "stacked", {"hidden": [8, 16], "code_size": 4, "backbone": "conv"}),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def exported(request, tmp_path_factory):
    dataset, family, params = CASES[request.param]
    recipe = zoo.load_recipe("tabular_ae").replace("data", dataset=dataset)
    splits = load_splits(recipe.data, 0)
    keras.utils.set_random_seed(3)
    model = zoo.build(family, input_shape=splits.input_shape, preprocessing=splits.preprocessing, **params)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    model.fit(np.asarray(splits.x_fit), epochs=2, batch_size=32, verbose=0)
    base = tmp_path_factory.mktemp(f"export-{request.param}")
    x = np.asarray(splits.x_test[:64])
    paths = zoo.export(model, base=base, format="all", quantize="none", representative_data=np.asarray(splits.x_fit[:64]),
                       test_data=x, latency_runs=2)
    return {"model": model, "x": x, "dir": base / family, "name": family, "paths": paths, "units": splits.preprocessing}


@pytest.mark.slow
def test_saved_model_takes_raw_inputs_in_a_tf1_session(exported):
    model, x = exported["model"], exported["x"]
    expected, code = keras_outputs(model, x)
    # The reconstruction is in the data's units, not the model's: far from [0, 1] for these data.
    assert np.abs(expected["serving_default"]["reconstruction"]).max() > 5
    session, signatures = tf1_session(exported["dir"] / "1")
    for name, outputs in expected.items():
        got = run_signature(session, signatures[name], **signature_inputs(name, x, code))
        for key, want in outputs.items():
            assert_close(got[key], want, 1e-4, f"{name}/{key}")


@pytest.mark.slow
def test_tflite_and_onnx_take_raw_inputs(exported):
    model, x, name = exported["model"], exported["x"], exported["name"]
    expected, code = keras_outputs(model, x)
    runner = TFLiteRunner(exported["dir"] / "tflite" / f"{name}_float32.tflite")
    onnx = {s: load_runner(exported["dir"] / "onnx" / f"{name}{suffix}.onnx")
            for s, suffix in (("serving_default", ""), ("encode", "_encode"), ("decode", "_decode"), ("score", "_score"))}
    for signature, outputs in expected.items():
        for got in (runner(signature, **signature_inputs(signature, x, code)),
                    onnx[signature](**signature_inputs(signature, x, code))):
            for key, want in outputs.items():
                assert_close(got[key], want, 1e-4, f"{signature}/{key}")
