"""Regression tests of the bugs the house issue listed, one each."""

import subprocess
import sys

import keras
import numpy as np
import pytest

import zoo
from conftest import build_tiny, fed, tiny_images, tiny_params
from zoo.configs.recipe import DataConfig, RecipeError, load_recipe, parse_recipe
from zoo.evaluation.evaluate import budget
from zoo.training.run_dir import same_recipe


@pytest.mark.parametrize("family", zoo.list_models())
def test_validation_runs_the_network_once_per_batch(family):
    model = build_tiny(family)
    model.compile(optimizer="adam", run_eagerly=True)
    calls = []
    original = model.decoder.call
    model.decoder.call = lambda *a, **k: (calls.append(1), original(*a, **k))[1]
    x = tiny_images(8)
    model.evaluate(fed(model, x), batch_size=8, verbose=0)
    assert len(calls) == 1, f"{family}: the decoder ran {len(calls)} times for one validation batch"


def test_vae_keeps_weight_decay_through_its_config():
    model = build_tiny("vae", weight_decay=0.01)
    config = model.get_config()
    assert config["weight_decay"] == 0.01
    clone = type(model).from_config(config)
    clone(np.zeros((1, 8, 8, 1), "float32"))
    assert clone.weight_decay == 0.01 and len(clone.losses) > 0  # the L2 terms of the kernels


@pytest.mark.parametrize("argument", ["hidden", "backbone", "activation"])
def test_basic_refuses_arguments_it_does_not_use(argument):
    value = {"hidden": [8], "backbone": "conv", "activation": "tanh"}[argument]
    with pytest.raises(ValueError, match=f"'{argument}'"):
        zoo.build("basic", input_shape=(8, 8, 1), **{argument: value})
    with pytest.raises(ValueError, match=f"'{argument}'"):
        zoo.registry.get("basic")(input_shape=(8, 8, 1), **{argument: value})


@pytest.mark.parametrize("likelihood", ["bernoulli", "continuous_bernoulli", "gaussian"])
def test_log_sigma_exists_only_for_the_gaussian_likelihood(likelihood):
    model = build_tiny("vae", likelihood=likelihood)
    names = [w.name for w in model.weights]
    assert ("log_sigma" in names) == (likelihood == "gaussian")


def test_learn_sigma_is_refused_without_a_sigma():
    with pytest.raises(ValueError, match="learn_sigma"):
        zoo.build("vae", **tiny_params("vae", learn_sigma=True))


@pytest.mark.parametrize("dataset, most", [("cifar10", 49_999), ("fashion_mnist", 59_999)])
def test_validation_size_is_bounded_by_the_dataset(dataset, most):
    assert DataConfig(dataset=dataset, validation_size=most).validation_size == most
    with pytest.raises(ValueError, match=f"at most {most}"):
        DataConfig(dataset=dataset, validation_size=most + 1)


def test_budget_uses_the_dataset_training_size():
    recipe = parse_recipe({"model": {"family": "stacked", "hidden": [8], "backbone": "conv"},
                           "data": {"dataset": "cifar10", "validation_size": 1000},
                           "train": {"batch_size": 100, "epochs": 2}}, "cifar.toml")
    assert budget(recipe, {"epochs": 2})["steps_per_epoch"] == 490  # (50,000 − 1,000) / 100


def test_bench_and_trainer_share_one_definition_of_the_same_recipe():
    recipe = load_recipe("basic")
    text = recipe.to_toml()
    assert same_recipe(text, recipe)
    assert same_recipe(text, recipe.replace("train", epochs=3), ignoring=("epochs",))
    assert not same_recipe(text, recipe.replace("train", epochs=3))
    assert not same_recipe(text, recipe.replace("model", code_size=7))


def test_nested_tables_are_written_at_their_level(tmp_path):
    recipe = load_recipe("denoising_masking")
    path = tmp_path / "r.toml"
    path.write_text(recipe.to_toml())
    assert "[model.noise]" in path.read_text()
    assert load_recipe(path).model.params["noise"] == {"kind": "masking", "rate": 0.3}


def test_zoo_export_keeps_its_identity():
    code = ("import zoo; a = zoo.export; import zoo.export; b = zoo.export; "
            "import zoo.export.api; assert a is b and callable(a) and a.__name__ == 'zoo.export'; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr


def test_a_model_too_large_for_memory_is_refused_without_building_it(tmp_path):
    path = tmp_path / "huge.toml"
    path.write_text('[model]\nfamily = "stacked"\ncode_size = 10000000\n')
    code = (f"import sys, zoo\ntry:\n    zoo.load_recipe({str(path)!r})\nexcept zoo.RecipeError as e:\n    print(e)\n"
            f"print('tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    message, imported = done.stdout.strip().splitlines()
    assert "parameters" in message and "model.code_size" in message and str(path) in message
    assert imported == "False"


def test_model_config_keys_are_its_hparams():
    for family in zoo.list_models():
        model = build_tiny(family)
        schema = zoo.registry.hparams_class(family)
        own = set(model.get_config()) - set(keras.Model().get_config()) - {"input_shape"}
        assert own == set(schema.keys()), family
