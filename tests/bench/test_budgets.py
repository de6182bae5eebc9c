"""`zoo bench --budget`: the three rules, their recipe overrides, and one-line refusals."""

import pytest

import zoo
from zoo.bench.budgets import CONVERGED_CAP, CONVERGED_PATIENCE, TIME_CAP, Budget, parse_budget


@pytest.mark.parametrize("text, expected", [
    ("epochs=3", Budget("epochs", 3)),
    ("converged", Budget("converged", CONVERGED_CAP, patience=CONVERGED_PATIENCE)),
    ("converged=40", Budget("converged", 40, patience=CONVERGED_PATIENCE)),
    (" time=2.5 ", Budget("time", TIME_CAP, minutes=2.5)),
])
def test_parse_budget(text, expected):
    budget = parse_budget(text)
    assert budget == expected
    assert parse_budget(budget.spec()) == budget  # the report's spec gives the same budget back


@pytest.mark.parametrize("text, fragment", [
    ("", "must be one of"), ("weeks=2", "must be one of"), ("epochs", "needs a value"),
    ("epochs=0", "whole number"), ("epochs=1.5", "whole number"), ("epochs=-2", "whole number"),
    ("time=0", "positive number"), ("time=nan", "positive number"), ("time=abc", "positive number"),
    ("converged=5", "above the patience"), ("epochs=99999999999", "whole number"),
])
def test_bad_budget_is_one_line(text, fragment):
    with pytest.raises(ValueError) as e:
        parse_budget(text)
    assert fragment in str(e.value) and "\n" not in str(e.value)
    assert "epochs=N, converged, converged=CAP or time=MINUTES" in str(e.value) or "Received" in str(e.value)


def test_overrides_set_the_recipe_train_table():
    """The overrides are valid [train] settings that give each recipe the budget's stopping rule."""
    for text, epochs, patience, minutes in (("epochs=2", 2, 0, 0.0), ("converged=30", 30, 5, 0.0),
                                            ("time=1.5", TIME_CAP, 0, 1.5)):
        recipe = zoo.load_recipe("basic", overrides=parse_budget(text).overrides())
        assert (recipe.train.epochs, recipe.train.early_stopping_patience, recipe.train.max_minutes) == \
            (epochs, patience, minutes)


@pytest.mark.parametrize("text, trained, reason", [
    ("epochs=3", 3, "epoch budget"), ("converged=30", 12, "early stopping"), ("converged=30", 30, "epoch cap"),
    ("time=2", 17, "time budget"),
])
def test_stop_reason(text, trained, reason):
    assert parse_budget(text).stop_reason(trained) == reason
