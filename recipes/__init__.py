"""The shipped recipes: installed as the package `zoo.recipes` (see pyproject.toml and zoo/configs/shipped.py)."""
