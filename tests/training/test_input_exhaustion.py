"""Epochs of one pass over the data end where the data ends: Keras never reads past it.

A shuffled pass of `zoo.data.pipeline.make_dataset` has an unknown cardinality (its batches come
from a `flat_map`), so Keras's `Model.fit` learned the number of batches only by running out of
data in the first epoch, and warned "Your input ran out of data; interrupting training" in every
run without `train.steps_per_epoch` (the quickstart's `zoo bench --epochs 1`, `zoo fit vae`).
"""

import dataclasses
import logging
import warnings

import pytest

import zoo
from zoo.training import trainer

N_FIT, BATCH = 100, 32  # 4 batches per pass, the last one partial


def _tiny(monkeypatch, steps_per_execution):
    recipe = zoo.load_recipe("vae")  # dynamic binarization: the pipeline's zip and flat_map
    recipe = recipe.replace("model", hidden=[16], code_size=2)
    recipe = recipe.replace("train", epochs=2, steps_per_epoch=0, batch_size=BATCH,
                            steps_per_execution=steps_per_execution)
    real = trainer.load_data

    def small(r):
        splits = real(r)
        return dataclasses.replace(splits, x_fit=splits.x_fit[:N_FIT], x_val=splits.x_val[:40],
                                   x_test=splits.x_test[:30])

    monkeypatch.setattr(trainer, "load_data", small)
    return recipe


@pytest.mark.slow
@pytest.mark.parametrize("steps_per_execution", [1, 3])
def test_one_pass_epochs_do_not_run_out_of_data(tmp_path, monkeypatch, caplog, steps_per_execution):
    recipe = _tiny(monkeypatch, steps_per_execution)
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        run = zoo.fit(recipe, out=tmp_path / "run", verbose=0)
    said = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    assert not [s for s in said if "ran out of data" in s], said
    assert run.metrics["epochs"] == 2 and len(run.history["loss"]) == 2
