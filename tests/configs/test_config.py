"""Recipes: every shipped one loads; every bad one is a one-line error naming the file and the key."""

import dataclasses

import pytest

import zoo
from zoo.configs.recipe import DataConfig, TrainConfig, load_recipe
from zoo.configs.shipped import recipes_dir

RECIPES_DIR = recipes_dir()


def write(tmp_path, text, name="recipe.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = """
[model]
family = "denoising"
hidden = [16]
code_size = 4

[model.noise]
kind = "masking"
rate = 0.2

[train]
epochs = 2
"""


def recipe_error(path, overrides=()):
    with pytest.raises(zoo.RecipeError) as info:
        load_recipe(path, overrides=overrides)
    message = str(info.value)
    assert "\n" not in message, message
    assert isinstance(info.value, ValueError)  # the Python API raises ValueError
    return message


@pytest.mark.parametrize("name", zoo.list_recipes())
def test_every_shipped_recipe_loads(name):
    recipe = load_recipe(name)
    assert recipe.name == name
    assert recipe.model.family in zoo.list_models()
    assert recipe.path == str(RECIPES_DIR / f"{name}.toml")
    assert recipe.description  # a user picking a recipe sees what it is
    # The recipe builds a model of the dataset's shape.
    model = recipe.model.build(recipe.input_shape)
    assert model.input_shape_ == recipe.input_shape


def test_the_required_recipes_are_shipped():
    required = {"basic", "stacked", "sparse", "denoising_gaussian", "denoising_salt_pepper", "denoising_masking", "vae"}
    assert required <= set(zoo.list_recipes())
    sparse = load_recipe("sparse")
    assert 0.05 <= sparse.model.params["rho"] <= 0.1 and sparse.model.params["beta"] == 3.0
    for kind in ("gaussian", "salt_pepper", "masking"):
        assert load_recipe(f"denoising_{kind}").model.params["noise"]["kind"] == kind


@pytest.mark.parametrize("name", zoo.list_recipes())
def test_to_toml_round_trip(name, tmp_path):
    recipe = load_recipe(name)
    path = write(tmp_path, recipe.to_toml(), f"{name}.toml")
    again = load_recipe(path)
    assert dataclasses.replace(again, path=recipe.path) == recipe
    assert again.to_toml() == recipe.to_toml()


def test_a_file_and_a_shipped_name_give_the_same_recipe():
    assert load_recipe(RECIPES_DIR / "vae.toml") == load_recipe("vae")


def test_defaults_fill_what_a_recipe_leaves_out(tmp_path):
    recipe = load_recipe(write(tmp_path, '[model]\nfamily = "basic"\n'))
    assert recipe.name == "recipe"
    assert recipe.data == DataConfig() and recipe.train == TrainConfig()
    assert recipe.model.params == {}


@pytest.mark.parametrize("text,key", [
    ('[model]\nfamily = "basic"\ncode_sise = 3\n', "model.code_sise"),
    ('[model]\nfamily = "basic"\n[train]\nepoch = 3\n', "train.epoch"),
    ('[model]\nfamily = "basic"\n[data]\nbinarise = "static"\n', "data.binarise"),
    ('[model]\nfamily = "basic"\n[optimizer]\nlr = 1\n', "optimizer"),
])
def test_unknown_key(tmp_path, text, key):
    path = write(tmp_path, text)
    message = recipe_error(path)
    assert str(path) in message and key in message and "unknown key" in message
    assert "Allowed:" in message


@pytest.mark.parametrize("text,key,expected", [
    ('[model]\nfamily = "basic"\n[train]\nepochs = "3"\n', "train.epochs", "an integer"),
    ('[model]\nfamily = "basic"\n[train]\nepochs = 3.5\n', "train.epochs", "an integer"),
    ('[model]\nfamily = "basic"\n[train]\nlearning_rate = "fast"\n', "train.learning_rate", "a number"),
    ('[model]\nfamily = "basic"\n[train]\njit_compile = 1\n', "train.jit_compile", "a boolean"),
    ('[model]\nfamily = "basic"\ncode_size = 3.0\n', "model.code_size", "an integer"),
    ('[model]\nfamily = "stacked"\nhidden = 16\n', "model.hidden", "a list"),
    ('[model]\nfamily = "vae"\nlikelihood = 1\n', "model.likelihood", "a string"),
    ('[model]\nfamily = "denoising"\nnoise = "masking"\n', "model.noise", "a table"),
])
def test_wrong_type(tmp_path, text, key, expected):
    path = write(tmp_path, text)
    message = recipe_error(path)
    assert str(path) in message and key in message and expected in message


@pytest.mark.parametrize("text,key", [
    ('[model]\nfamily = "sparse"\nrho = 1.5\n', "model.rho"),
    ('[model]\nfamily = "sparse"\nrho = 0.0\n', "model.rho"),
    ('[model]\nfamily = "sparse"\nbeta = -1\n', "model.beta"),
    ('[model]\nfamily = "denoising"\n[model.noise]\nkind = "masking"\nrate = 1.0\n', "model.noise.rate"),
    ('[model]\nfamily = "denoising"\n[model.noise]\nkind = "salt_pepper"\nrate = -0.1\n', "model.noise.rate"),
    ('[model]\nfamily = "denoising"\n[model.noise]\nkind = "gaussian"\nstddev = -1\n', "model.noise.stddev"),
    ('[model]\nfamily = "basic"\ncode_size = 0\n', "model.code_size"),
    ('[model]\nfamily = "vae"\ncode_size = -2\n', "model.code_size"),
    ('[model]\nfamily = "vae"\nsigma = 0.0\n', "model.sigma"),
    ('[model]\nfamily = "basic"\n[train]\nepochs = 0\n', "train.epochs"),
    ('[model]\nfamily = "basic"\n[train]\nlearning_rate = -0.1\n', "train.learning_rate"),
    ('[model]\nfamily = "basic"\n[data]\nvalidation_size = -1\n', "data.validation_size"),
])
def test_out_of_range(tmp_path, text, key):
    path = write(tmp_path, text)
    message = recipe_error(path)
    assert str(path) in message and key in message and "Received:" in message
    assert "must be in" in message  # says what is allowed


@pytest.mark.parametrize("text,key,allowed", [
    ('[model]\nfamily = "vae"\nlikelihood = "poisson"\n', "model.likelihood", "bernoulli"),
    ('[model]\nfamily = "basic"\n[train]\noptimizer = "adagrad"\n', "train.optimizer", "adam"),
    ('[model]\nfamily = "basic"\n[data]\ndataset = "imagenet"\n', "data.dataset", "fashion_mnist"),
    ('[model]\nfamily = "denoising"\n[model.noise]\nkind = "blur"\n', "model.noise.kind", "masking"),
    ('[model]\nfamily = "denoising"\n[model.noise]\nkind = "masking"\nstdev = 0.1\n', "model.noise.stdev", "rate"),
])
def test_bad_choice_lists_the_allowed_values(tmp_path, text, key, allowed):
    path = write(tmp_path, text)
    message = recipe_error(path)
    assert str(path) in message and key in message and allowed in message


def test_malformed_toml(tmp_path):
    path = write(tmp_path, '[model]\nfamily = "basic\ncode_size = 3\n')
    message = recipe_error(path)
    assert str(path) in message and "malformed TOML" in message and "line 2" in message


def test_unknown_family_lists_the_known_ones(tmp_path):
    path = write(tmp_path, '[model]\nfamily = "vea"\n')
    message = recipe_error(path)
    assert str(path) in message and "model.family" in message and "'vea'" in message
    assert ", ".join(zoo.list_models()) in message


def test_missing_family(tmp_path):
    message = recipe_error(write(tmp_path, "[train]\nepochs = 1\n"))
    assert "model.family" in message and "required" in message


def test_input_shape_must_match_the_dataset(tmp_path):
    message = recipe_error(write(tmp_path, '[model]\nfamily = "basic"\ninput_shape = [32, 32, 3]\n'))
    assert "model.input_shape" in message and "[28, 28, 1]" in message


def test_unknown_recipe_name_lists_the_shipped_ones():
    with pytest.raises(FileNotFoundError) as info:
        load_recipe("vea")
    message = str(info.value)
    assert "'vea'" in message and ", ".join(zoo.list_recipes()) in message and "\n" not in message


def test_set_overrides_are_applied(tmp_path):
    path = write(tmp_path, GOOD)
    recipe = load_recipe(path, overrides=["model.noise.rate=0.3", "train.epochs=5", "model.hidden=[8, 4]",
                                          "train.optimizer=sgd", 'data.binarize="static"'])
    assert recipe.model.params["noise"] == {"kind": "masking", "rate": 0.3}
    assert recipe.train.epochs == 5 and recipe.train.optimizer == "sgd"
    assert recipe.model.params["hidden"] == [8, 4]
    assert recipe.data.binarize == "static"
    assert load_recipe(path).model.params["noise"]["rate"] == 0.2  # the file is untouched
    # On a shipped recipe, as the README shows.
    shipped = load_recipe("denoising_masking", overrides=["model.noise.rate=0.3"])
    assert shipped.model.params["noise"]["rate"] == 0.3


def test_set_overrides_are_validated_like_the_file(tmp_path):
    path = write(tmp_path, GOOD)
    assert "model.noise.rate" in recipe_error(path, ["model.noise.rate=1.0"])
    assert "model.rho" in recipe_error(write(tmp_path, '[model]\nfamily = "sparse"\n', "s.toml"), ["model.rho=2"])
    assert "train.epochs" in recipe_error(path, ["train.epochs=many"])
    assert "train.strategy" in recipe_error(path, ["train.strategy=nope"])
    assert "section.key=value" in recipe_error(path, ["epochs=3"])
    assert "section.key=value" in recipe_error(path, ["train.epochs"])


def test_replace_returns_a_validated_copy(tmp_path):
    recipe = load_recipe(write(tmp_path, GOOD))
    small = recipe.replace("train", epochs=1, batch_size=8)
    assert small.train.epochs == 1 and small.train.batch_size == 8
    assert recipe.train.epochs == 2  # frozen: the original is unchanged
    with pytest.raises(zoo.RecipeError, match="train.batch_size"):
        recipe.replace("train", batch_size=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.train.epochs = 3


def test_name_must_be_a_safe_directory_name(tmp_path):
    message = recipe_error(write(tmp_path, 'name = "../escape"\n[model]\nfamily = "basic"\n'))
    assert "name" in message and "Received: name='../escape'" in message
