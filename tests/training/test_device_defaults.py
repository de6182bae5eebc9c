"""`train.batch_shards = "auto"`: shards and CPU threads chosen by device, never CPU threads on a GPU.

The rule is `zoo.training.sharding.resolve_batch_shards` (docs/performance.md, "What
`batch_shards = "auto"` picks"); the device list is stubbed here, so these tests say what a GPU
machine or a 16-core CPU would get on any machine.
"""

import subprocess
import sys

import pytest
import tensorflow as tf

import zoo
from zoo.configs.recipe import RecipeError, TrainConfig
from zoo.training import sharding, trainer
from zoo.training.sharding import resolve_batch_shards


@pytest.mark.parametrize("gpus, cores, per_example, expected", [
    (1, 2, True, 1),     # a GPU: the whole batch, TensorFlow's threads
    (8, 64, True, 1),
    (0, 2, True, 2),     # the measured case: 2 cores, 2 shards (+20-24%)
    (0, 2, False, 1),    # whole-batch statistics (sparse): no shards
    (0, 1, True, 1),     # one core: nothing to run side by side
    (0, 4, True, 1),     # more cores: not measured, so the whole batch on TensorFlow's default threads
    (0, 16, True, 1),
])
def test_auto_resolves_by_device(gpus, cores, per_example, expected):
    assert resolve_batch_shards("auto", gpus=gpus, cpu_cores=cores, per_example_objective=per_example) == expected


@pytest.mark.parametrize("shards", [1, 2, 3])
def test_an_explicit_integer_passes_through(shards):
    for gpus, cores in ((0, 2), (1, 2), (0, 16)):
        assert resolve_batch_shards(shards, gpus=gpus, cpu_cores=cores, per_example_objective=True) == shards


def test_auto_is_the_default_and_the_reference_recipe_uses_it():
    assert TrainConfig().batch_shards == "auto"
    assert zoo.load_recipe("vae").train.batch_shards == "auto"
    assert zoo.load_recipe("vae_reference").train.batch_shards == "auto"
    assert zoo.load_recipe("vae", overrides=["train.batch_shards=auto"]).train.batch_shards == "auto"


def test_a_bad_string_is_a_one_line_error_naming_the_key():
    with pytest.raises(RecipeError, match=r"train\.batch_shards must be an integer >= 1 or \"auto\"\. "
                                          r"Received: batch_shards='fast'$") as info:
        zoo.load_recipe("vae", overrides=["train.batch_shards=fast"])
    assert "\n" not in str(info.value)


def test_sparse_accepts_auto_and_it_means_no_shards():
    recipe = zoo.load_recipe("sparse", overrides=["train.batch_shards=auto"])
    assert recipe.model.hparams.per_example_objective is False
    assert sharding.batch_shards_here(recipe.train.batch_shards, False) == 1
    with pytest.raises(RecipeError, match=r"train\.batch_shards must be 1 for model 'sparse'"):
        zoo.load_recipe("sparse", overrides=["train.batch_shards=2"])


@pytest.fixture
def threads_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(sharding, "configure_threads", calls.append)
    return calls


@pytest.mark.parametrize("setting", ["auto", 2])
def test_no_cpu_threads_when_a_gpu_is_visible(monkeypatch, threads_calls, setting):
    monkeypatch.setattr(sharding, "visible_gpus", lambda: 1)
    monkeypatch.setattr(sharding, "cpu_cores", lambda: 2)
    assert sharding.setup_batch_shards(setting, True) == (1 if setting == "auto" else 2)
    trainer.early_strategy("vae_reference", [f"train.batch_shards={setting}"])
    assert threads_calls == []


def test_cpu_threads_on_a_two_core_cpu_only(monkeypatch, threads_calls):
    monkeypatch.setattr(sharding, "visible_gpus", lambda: 0)
    monkeypatch.setattr(sharding, "cpu_cores", lambda: 2)
    trainer.early_strategy("vae_reference", [])  # "auto" from the recipe
    assert threads_calls == [2]
    monkeypatch.setattr(sharding, "cpu_cores", lambda: 16)
    trainer.early_strategy("vae_reference", [])
    trainer.early_strategy("sparse", [])
    assert threads_calls == [2, 1, 1]  # 1: configure_threads leaves TensorFlow's threads as they are


def test_build_model_runs_the_resolved_shards(monkeypatch):
    monkeypatch.setattr(sharding, "visible_gpus", lambda: 0)
    monkeypatch.setattr(sharding, "cpu_cores", lambda: 2)
    recipe = zoo.load_recipe("vae_reference")
    assert trainer.build_model(recipe, tf.distribute.get_strategy(), 1).batch_shards == 2
    monkeypatch.setattr(sharding, "visible_gpus", lambda: 1)
    assert trainer.build_model(recipe, tf.distribute.get_strategy(), 1).batch_shards == 1


def test_gpus_are_listed_before_the_runtime_starts():
    # Listing the physical devices does not start TensorFlow's runtime: the threads can be set after it.
    code = ("import tensorflow as tf; from zoo.training import sharding, trainer; sharding.visible_gpus(); "
            "tf.config.threading.set_intra_op_parallelism_threads(1); "
            "tf.config.threading.set_inter_op_parallelism_threads(2); "
            "print(tf.config.threading.get_intra_op_parallelism_threads(), "
            "tf.config.threading.get_inter_op_parallelism_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "2"]
    # `zoo fit`'s early step on this machine: 1 and 2 threads on a 2-core CPU only, else TensorFlow's (0 = its own).
    code = ("import tensorflow as tf; from zoo.training import sharding, trainer; "
            "trainer.early_strategy('vae_reference', []); "
            "print(sharding.visible_gpus(), sharding.cpu_cores(), "
            "tf.config.threading.get_intra_op_parallelism_threads(), "
            "tf.config.threading.get_inter_op_parallelism_threads())")
    gpus, cores, intra, inter = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                               check=True).stdout.split()
    expected = ["1", "2"] if (gpus, cores) == ("0", "2") else ["0", "0"]
    assert [intra, inter] == expected


# The strategies' devices: the first GPU for one_device, every GPU for mirrored, when TensorFlow lists GPUs.
def _stub_gpus(monkeypatch, n):
    real = tf.config.list_logical_devices

    def listed(device_type=None):
        if device_type == "GPU":
            return [tf.config.LogicalDevice(f"/job:localhost/replica:0/task:0/device:GPU:{i}", "GPU") for i in range(n)]
        return real(device_type)

    monkeypatch.setattr(tf.config, "list_logical_devices", listed)
    monkeypatch.setattr(trainer, "_MIRRORED", {})  # strategies over stubbed devices stay out of the process's cache


@pytest.mark.parametrize("gpus", [1, 2])
def test_one_device_takes_the_first_gpu_when_one_is_listed(monkeypatch, gpus):
    _stub_gpus(monkeypatch, gpus)
    (device,) = trainer.make_strategy("one_device").extended.worker_devices
    assert device == "/job:localhost/replica:0/task:0/device:GPU:0"


def test_one_device_takes_the_cpu_without_gpus(monkeypatch):
    _stub_gpus(monkeypatch, 0)
    (device,) = trainer.make_strategy("one_device").extended.worker_devices
    assert device.endswith("CPU:0")


def test_mirrored_takes_every_gpu_and_no_cpu_when_gpus_are_listed(monkeypatch):
    _stub_gpus(monkeypatch, 2)
    strategy = trainer.make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    assert [d.rsplit("/", 1)[-1] for d in strategy.extended.worker_devices] == ["device:GPU:0", "device:GPU:1"]


def test_auto_is_the_default_strategy_on_one_gpu(monkeypatch):
    _stub_gpus(monkeypatch, 1)
    assert trainer.make_strategy("auto") is tf.distribute.get_strategy()
