"""zoo: a Keras 3 model zoo of autoencoders on TensorFlow.

Example:
    >>> import zoo
    >>> zoo.list_models()
    ['basic', 'denoising', 'sparse', 'stacked', 'vae']
    >>> run = zoo.load_recipe("recipes/vae.toml").fit(epochs=5)
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from zoo.config import Recipe, RecipeError, list_recipes, load_recipe  # noqa: E402
from zoo.registry import build, list_models, register  # noqa: E402
import zoo.models  # noqa: E402,F401  (registers the families, so .keras files load after `import zoo`)
import zoo.optimizers  # noqa: E402,F401  (registers FusedAdam, the optimizer saved with compiled models)

__version__ = "0.1.0"

__all__ = ["Recipe", "RecipeError", "build", "list_models", "list_recipes", "load_recipe", "register", "fit", "export"]


def fit(recipe, **kwargs):
    """Loads `recipe` (a path or a shipped recipe's name) if needed and trains it; see `Recipe.fit`."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    return recipe.fit(**kwargs)


def export(run_or_model, **kwargs):
    """Exports a run, a .keras file or a zoo model for TF Serving, LiteRT and ONNX; see `zoo.export.export`.

    The exporter is imported on first use, so `import zoo` does not load the converters.
    """
    from zoo.export import export as _export

    return _export(run_or_model, **kwargs)


__all__ += ["evaluate", "benchmark"]


def __getattr__(name):
    # zoo.evaluate(run) and zoo.benchmark(...) load on first use; both modules are callable, so
    # the attribute stays usable after `import zoo.evaluate` binds the module itself here.
    if name in ("evaluate", "benchmark"):
        import importlib

        return importlib.import_module(f"zoo.{name}")
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
