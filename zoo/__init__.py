"""zoo: a Keras 3 model zoo of autoencoders on TensorFlow.

`import zoo` is light: recipes, the registry and the CLI work without TensorFlow, and the
families (Keras classes) are imported on first use — by `zoo.build`, `zoo.fit`,
`zoo.load_model`, `zoo.evaluate`, `zoo.export`, `zoo.benchmark` and the latent tools
(`zoo.interpolate`, `zoo.traverse`, `zoo.latent_grid`) — or at once when
Keras is already imported, so `keras.saving.load_model` finds them after `import keras, zoo`.

Example:
    >>> import zoo
    >>> zoo.list_models()
    ['basic', 'denoising', 'sparse', 'stacked', 'vae']
    >>> run = zoo.fit("vae", epochs=5)
    >>> model = zoo.load_model(run.dir / "model.keras")
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from zoo.configs import Recipe, RecipeError, list_recipes, load_recipe  # noqa: E402
from zoo.registry import list_models, register  # noqa: E402

__version__ = "0.1.0"

__all__ = ["Recipe", "RecipeError", "benchmark", "build", "evaluate", "export", "fit", "interpolate", "latent_grid",
           "list_models", "list_recipes", "load_model", "load_recipe", "register", "score", "traverse"]


def build(family: str, /, **hparams):
    """Builds a registered family from its hyperparameters; see `zoo.registry.build`."""
    from zoo.registry import build as _build

    return _build(family, **hparams)


def load_model(path, compile: bool = False):
    """Loads a `.keras` file of a zoo model with Keras's safe mode (no code from the file runs);
    a one-line ValueError naming the file if it is not one (`zoo.training.run_dir.load_finished_model`)."""
    from zoo.training.run_dir import load_finished_model

    return load_finished_model(path, compile=compile)


def fit(recipe, **kwargs):
    """Trains `recipe` (a `Recipe`, a path or a shipped recipe's name); see `zoo.training.trainer.fit_recipe`."""
    from zoo.training.trainer import fit_recipe

    return fit_recipe(recipe if isinstance(recipe, Recipe) else load_recipe(recipe), **kwargs)


def evaluate(run, **kwargs):
    """Evaluates a finished run on its test set; see `zoo.evaluation.evaluate.evaluate`."""
    from zoo.evaluation.evaluate import evaluate as _evaluate

    return _evaluate(run, **kwargs)


def score(run, data=None, **kwargs):
    """Scores examples with a finished run against its calibrated threshold; see `zoo.anomaly.score.score`."""
    from zoo.anomaly.score import score as _score

    return _score(run, data, **kwargs)


def interpolate(model, x_a, x_b, steps: int = 8, method=None, **kwargs):
    """Decodes along the path between two codes (spherical for a Gaussian prior; `y_a`, `y_b`:
    the labels of a model that takes them); see `zoo.evaluation.latent.interpolate`."""
    from zoo.evaluation.latent import interpolate as _interpolate

    return _interpolate(model, x_a, x_b, steps=steps, method=method, **kwargs)


def traverse(model, x, dims=None, span: float = 3.0, steps: int = 7, **kwargs):
    """Decodes of x's code with one dimension at a time varied; see `zoo.evaluation.latent.traverse`."""
    from zoo.evaluation.latent import traverse as _traverse

    return _traverse(model, x, dims=dims, span=span, steps=steps, **kwargs)


def latent_grid(model, n: int = 15, **kwargs):
    """Decodes over a grid of a 2-D code space; see `zoo.evaluation.latent.latent_grid`."""
    from zoo.evaluation.latent import latent_grid as _latent_grid

    return _latent_grid(model, n=n, **kwargs)


def benchmark(recipes=None, **kwargs):
    """Fits, evaluates and exports recipes under one budget; see `zoo.bench.runner.benchmark`."""
    from zoo.bench.runner import benchmark as _benchmark

    return _benchmark(recipes, **kwargs)


def __getattr__(name):
    # `zoo.export` is the export package, itself callable (`zoo.export(run)`): one object whether
    # or not `import zoo.export` ran first, imported on first use so `import zoo` stays light.
    if name == "export":
        import importlib

        return importlib.import_module("zoo.export")
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


if "keras" in sys.modules:  # Keras is loaded anyway: register the families for keras.saving.load_model
    import zoo.models  # noqa: E402,F401
    import zoo.training.optimizers  # noqa: E402,F401
