"""The two measurements behind the third session's speed levers, reproducible.

    python benchmarks/step_levers.py chains                 # matmul chains: threads against shards
    python benchmarks/step_levers.py shards                 # vae_reference epochs, shards 2 against 1
    python benchmarks/step_levers.py epoch-starts           # first call of each epoch, autotuning on/off

`chains`: the reference MLP's six matmuls (784-512-256-64 | 256-512-784, ReLU) at batch 128 as
one dependent chain, timed in a fresh process per thread setting: one chain on two intra-op
threads against two independent chains (two shards of 64, or two batches of 128) on one
intra-op thread each. GFLOP/s, best of 5.

`shards`: one process with 1 intra-op and 2 inter-op threads (what `zoo fit` sets for
`batch_shards = 2`) trains two `vae_reference` models from the same recipe, one with
`batch_shards = 2`, one with 1, alternating whole epochs (the order flips every cycle), and
prints each one's epoch throughput. A second process does the same on TensorFlow's default
threads.

`epoch-starts`: `Model.fit` over several epochs of `vae_reference` on the zoo's pipeline with
tf.data's autotuning on and then off (one process each); a callback times the first compiled
call of every epoch (which waits for the new epoch's iterator) and the epoch's throughput.

Prints markdown tables and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
LAYERS = [784, 512, 256, 64, 256, 512, 784]


def _set_threads(intra: int, inter: int) -> None:
    import tensorflow as tf

    if intra:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
    if inter:
        tf.config.threading.set_inter_op_parallelism_threads(inter)


def chain_gflops(intra: int, inter: int, batch: int, chains: int, calls: int = 20) -> float:
    """GFLOP/s of `chains` independent ReLU matmul chains of `batch` rows (best of 5 timings)."""
    _set_threads(intra, inter)
    import tensorflow as tf

    weights = [tf.Variable(tf.random.normal((i, o)) * 0.05) for i, o in zip(LAYERS, LAYERS[1:])]
    inputs = [tf.random.uniform((batch, LAYERS[0])) for _ in range(chains)]

    @tf.function
    def run():
        outs = []
        for x in inputs:
            for w in weights:
                x = tf.nn.relu(tf.matmul(x, w))
            outs.append(tf.reduce_sum(x))
        return tf.add_n(outs)

    run().numpy()
    flops = 2 * batch * chains * sum(i * o for i, o in zip(LAYERS, LAYERS[1:])) * calls
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            result = run()
        result.numpy()
        best = max(best, flops / (time.perf_counter() - start) / 1e9)
    return best


def _child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def chains_table() -> dict:
    settings = [("one chain of 128, 2 intra-op threads", (2, 2, 128, 1)),
                ("two chains of 64, 1 intra-op thread each", (1, 2, 64, 2)),
                ("two chains of 128, 1 intra-op thread each", (1, 2, 128, 2)),
                ("two chains of 128, 2 intra-op threads", (2, 2, 128, 2))]
    rows = {}
    print("| setting | GFLOP/s |\n|---|---|")
    for name, (intra, inter, batch, chains) in settings:
        rows[name] = _child(["_chain", str(intra), str(inter), str(batch), str(chains)])["gflops"]
        print(f"| {name} | {rows[name]:.1f} |", flush=True)
    return rows


def _recipe_models(recipe_name: str, variants: dict):
    """{name: compiled model} for each {name: batch_shards} variant of a recipe (same weights seed)."""
    sys.path.insert(0, str(ROOT))
    import keras
    import tensorflow as tf

    from zoo.training import trainer
    from zoo.configs.recipe import load_recipe

    recipe = load_recipe(recipe_name)
    models = {}
    for name, shards in variants.items():
        keras.utils.set_random_seed(0)
        models[name] = trainer.build_model(recipe.replace("train", batch_shards=shards),
                                           tf.distribute.get_strategy(), 10_000)
    return recipe, trainer.load_data(recipe).x_fit, models


def shards_child(intra: int, inter: int, cycles: int) -> dict:
    _set_threads(intra, inter)
    import numpy as np

    import zoo.data.pipeline as zdata

    recipe, x, models = _recipe_models("vae_reference", {"shards 2": 2, "shards 1": 1})
    ds = zdata.make_dataset(x, batch_size=recipe.train.batch_size, seed=0, binarize="dynamic")
    for model in models.values():
        model.fit(ds, epochs=1, verbose=0)  # tracing
    rates = {name: [] for name in models}
    for cycle in range(cycles):
        for name in (list(models) if cycle % 2 == 0 else list(models)[::-1]):
            start = time.perf_counter()
            models[name].fit(ds, epochs=1, verbose=0)
            rates[name].append(round(len(x) / (time.perf_counter() - start)))
    return {name: {"median": int(np.median(r)), "epochs": r} for name, r in rates.items()}


def shards_table(cycles: int) -> dict:
    rows = {}
    print("| threads | variant | samples/s (median) | epochs |\n|---|---|---|---|")
    for label, (intra, inter) in (("1 intra-op, 2 inter-op", (1, 2)), ("TensorFlow's defaults", (0, 0))):
        result = _child(["_shards", str(intra), str(inter), str(cycles)])
        rows[label] = result
        for name, r in result.items():
            print(f"| {label} | {name} | {r['median']:,} | {', '.join(f'{v:,}' for v in r['epochs'])} |", flush=True)
    return rows


def epoch_starts_child(autotune: bool, epochs: int) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    import zoo.data.pipeline as zdata

    recipe, x, models = _recipe_models("vae_reference", {"model": 1})
    model = models["model"]
    ds = zdata.make_dataset(x, batch_size=recipe.train.batch_size, seed=0, binarize="dynamic")
    options = tf.data.Options()
    options.autotune.enabled = autotune
    ds = ds.with_options(options)

    class Timer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.first_calls, self.rates = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = self.mark = time.perf_counter()
            self.first = None

        def on_train_batch_end(self, batch, logs=None):
            float(logs["loss"])  # waits for the call
            if self.first is None:
                self.first = time.perf_counter() - self.mark

        def on_epoch_end(self, epoch, logs=None):
            if epoch:  # the first epoch traces the step
                self.first_calls.append(round(self.first * 1e3))
                self.rates.append(round(len(x) / (time.perf_counter() - self.start)))

    timer = Timer()
    model.fit(ds, epochs=epochs + 1, verbose=0, callbacks=[timer])
    return {"first_call_ms": timer.first_calls, "samples_per_s": timer.rates,
            "median_samples_per_s": int(np.median(timer.rates))}


def epoch_starts_table(epochs: int) -> dict:
    rows = {}
    print("| tf.data autotuning | first call of each epoch (ms) | samples/s per epoch | median |\n|---|---|---|---|")
    for label, autotune in (("on", True), ("off (the zoo's pipeline)", False)):
        r = rows[label] = _child(["_epoch_starts", str(int(autotune)), str(epochs)])
        print(f"| {label} | {', '.join(map(str, r['first_call_ms']))} | "
              f"{', '.join(f'{v:,}' for v in r['samples_per_s'])} | {r['median_samples_per_s']:,} |", flush=True)
    return rows


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0].startswith("_"):  # a child process
        kind, *values = argv
        numbers = [int(v) for v in values]
        result = {"_chain": lambda: {"gflops": chain_gflops(*numbers)},
                  "_shards": lambda: shards_child(*numbers),
                  "_epoch_starts": lambda: epoch_starts_child(bool(numbers[0]), numbers[1])}[kind]()
        print(json.dumps(result))
        return result
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["chains", "shards", "epoch-starts"])
    parser.add_argument("--cycles", type=int, default=4, help="shards: epochs per variant (default 4)")
    parser.add_argument("--epochs", type=int, default=6, help="epoch-starts: timed epochs per setting (default 6)")
    args = parser.parse_args(argv)
    if args.cycles < 1 or args.epochs < 1:
        parser.error("--cycles and --epochs must be >= 1")
    table = {"chains": chains_table, "shards": lambda: shards_table(args.cycles),
             "epoch-starts": lambda: epoch_starts_table(args.epochs)}[args.what]()
    result = {"what": args.what, "load_average": round(os.getloadavg()[0], 2), "results": table}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
