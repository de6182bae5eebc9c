"""The all-reduce cost model of benchmarks/distributed.py (docs/distributed.md), against hand computations."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "distributed.py"


@pytest.fixture(scope="module")
def model():
    spec = importlib.util.spec_from_file_location("distributed_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ring_allreduce_time_by_hand(model):
    # S = 4 · 1,091,920 = 4,367,680 bytes = 34,941,440 bits.
    # N = 2, 10 Gb/s, no latency: 2·1/2 · 34,941,440 / 10¹⁰ s = 3.494144 ms.
    assert model.ring_allreduce_seconds(2, 1_091_920, 10, 0.0) == pytest.approx(3.494144e-3, rel=1e-12)
    # N = 4, 25 Gb/s, 1 ms a hop: 2·3/4 · 34,941,440 / 2.5·10¹⁰ s + 2·3 · 1 ms = 2.0964864 + 6 ms.
    assert model.ring_allreduce_seconds(4, 1_091_920, 25, 1e-3) == pytest.approx(8.0964864e-3, rel=1e-12)
    # N = 16, 100 Gb/s: 2·15/16 = 1.875 of the gradient, 30 hops.
    assert model.ring_allreduce_seconds(16, 1_091_920, 100, 1e-4) == pytest.approx(
        1.875 * 34_941_440 / 1e11 + 30 * 1e-4, rel=1e-12)
    assert model.ring_allreduce_seconds(1, 1_091_920, 10, 1e-3) == 0.0
    with pytest.raises(ValueError, match=r"workers must be >= 1\. Received: workers=0"):
        model.ring_allreduce_seconds(0, 10, 10, 0.0)


def test_the_gradient_is_the_reference_models_parameter_count(model):
    import numpy as np

    import zoo

    recipe = zoo.load_recipe("vae_reference")
    vae = recipe.model.build(recipe.input_shape)
    vae(np.zeros((1, *recipe.input_shape), "float32"))
    # 784·512 + 512 + 512·256 + 256 + 256·64 + 64, then 32·256 + 256 + 256·512 + 512 + 512·784 + 784.
    by_hand = 401_920 + 131_328 + 16_448 + 8_448 + 131_584 + 402_192
    assert model.PARAMETERS == by_hand == sum(int(np.prod(w.shape)) for w in vae.trainable_weights)


def test_adding_workers_pays_when_compute_over_n_plus_comm_beats_compute(model):
    # Two workers on 10 Gb/s without latency take 3.494 ms to all-reduce: an 8 ms step becomes
    # 4 + 3.494 = 7.494 ms (pays, 1.0675×); a 6 ms one 3 + 3.494 = 6.494 ms (does not).
    (row,) = model.cost_table(8e-3, 0.0, workers=(2,), networks=(10,))
    assert row["pays"] and row["step_ms"] == pytest.approx(7.494144) and row["speedup"] == pytest.approx(8 / 7.494144)
    assert row["weak_scaling_efficiency"] == pytest.approx(8 / 11.494144)
    (row,) = model.cost_table(6e-3, 0.0, workers=(2,), networks=(10,))
    assert not row["pays"] and row["speedup"] < 1
    table = model.cost_table(8e-3, 1e-4)
    assert [(r["workers"], r["gbps"]) for r in table] == [(n, g) for n in (2, 4, 8, 16) for g in (10, 25, 100)]
