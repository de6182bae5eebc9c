"""train.max_minutes: the TimeBudget callback stops before an epoch would end past the budget."""

import types

import pytest

from zoo.training import callbacks as zcallbacks
from zoo.training.callbacks import TimeBudget
from zoo.configs.recipe import RecipeError, load_recipe


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def run_epochs(budget_minutes, epoch_seconds, monkeypatch):
    """Drives the callback through epochs of the given lengths; returns the epochs trained."""
    clock = FakeClock()
    monkeypatch.setattr(zcallbacks.time, "perf_counter", clock)
    model = types.SimpleNamespace(stop_training=False)
    callback = TimeBudget(budget_minutes)
    callback.set_model(model)
    callback.on_train_begin()
    trained = 0
    for epoch, seconds in enumerate(epoch_seconds):
        callback.on_epoch_begin(epoch)
        clock.now += seconds
        callback.on_epoch_end(epoch)
        trained += 1
        if model.stop_training:
            break
    return trained, callback.stopped_epoch, clock.now


def test_stops_when_the_next_epoch_would_end_past_the_budget(monkeypatch):
    # 60 s budget, 20 s epochs: after epoch 2 (40 s) another 20 s would end at 60 s, still within;
    # after epoch 3 (60 s) the next would end at 80 s, so training stops at 3 epochs.
    trained, stopped, elapsed = run_epochs(1.0, [20.0] * 10, monkeypatch)
    assert (trained, stopped, elapsed) == (3, 3, 60.0)


def test_uses_the_longest_epoch_so_far(monkeypatch):
    # A slow 30 s epoch after a 10 s one: at 40 s, 40 + 30 > 60 stops it.
    trained, stopped, _ = run_epochs(1.0, [10.0, 30.0, 10.0, 10.0], monkeypatch)
    assert (trained, stopped) == (2, 2)


def test_no_stop_within_the_budget(monkeypatch):
    trained, stopped, _ = run_epochs(10.0, [20.0] * 5, monkeypatch)
    assert (trained, stopped) == (5, None)


def test_max_minutes_must_not_be_negative():
    with pytest.raises(RecipeError, match="max_minutes"):
        load_recipe("vae_best", overrides=["train.max_minutes=-1"])
    assert load_recipe("vae_best").train.max_minutes == 59.0
