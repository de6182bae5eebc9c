"""Recipes as typed data: the schema, TOML load / override / dump (no TensorFlow)."""

from zoo.configs.recipe import Recipe, RecipeError, list_recipes, load_recipe

__all__ = ["Recipe", "RecipeError", "list_recipes", "load_recipe"]
