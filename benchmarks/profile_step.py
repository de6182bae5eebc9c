"""Where a training step's time goes: TensorFlow's profiler over steady-state steps of a recipe.

    python benchmarks/profile_step.py                       # recipes/vae_reference.toml, 200 steps
    python benchmarks/profile_step.py --recipe recipes/vae_best.toml --steps 100

Builds and compiles the recipe's model exactly as `zoo fit` does (`zoo.training.trainer.build_model`,
`zoo.data.pipeline.make_dataset` on the recipe's real training data), trains some warm-up steps, then
records `--steps` steps with `tf.profiler` and sums the duration of every TensorFlow op by type
over the executor's compute threads. Durations are thread time, not wall time: two ops running
side by side on the two cores both count. Ops are grouped into matmuls, the optimizer update,
random draws and the rest (element-wise math, reductions, metrics). The input pipeline, which
runs on tf.data's own threads, is measured apart: the process CPU time to produce a batch with
the dataset consumed alone, in steady state (without the iterator's start-up). Prints a markdown table and one JSON line.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent

# Op types by group; anything else is "other".
GROUPS = {
    "matmul": ("MatMul", "_MklMatMul", "_MklNativeFusedMatMul", "_FusedMatMul", "BatchMatMulV2", "_MklBatchMatMulV2"),
    "optimizer": ("ResourceApplyAdam", "ResourceApplyGradientDescent", "AssignAddVariableOp", "AssignSubVariableOp",
                  "AssignVariableOp"),
    "random": ("StatelessRandomNormalV2", "StatelessRandomUniformV2", "StatelessRandomGetKeyCounter",
               "RandomStandardNormal"),
}
WRAPPERS = {"Process", "ParallelFor", "ExecutorState::Process", "EagerExecute", "EagerKernelExecute", "Run"}


def group_of(op_type: str) -> str:
    return next((g for g, types in GROUPS.items() if op_type in types), "other")


def op_times(logdir: str) -> collections.Counter:
    """Picoseconds by op type on the executor's compute threads, over one trace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    path = next(Path(logdir).rglob("*.xplane.pb"))
    space = xplane_pb2.XSpace()
    space.ParseFromString(path.read_bytes())
    ops = collections.Counter()
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        names = plane.event_metadata
        for line in plane.lines:
            if line.name.startswith("tf_Compute"):
                for event in line.events:
                    name = names[event.metadata_id].name
                    if name not in WRAPPERS:
                        ops[name.split(":")[-1]] += event.duration_ps
    return ops


def pipeline_cpu_ms_per_batch(ds, batches: int, warmup: int = 20) -> float:
    """CPU time (all threads of the process) to produce one batch in steady state, the dataset
    consumed in C++ alone: the cost of `warmup + batches` batches minus that of `warmup`, which
    takes the iterator's start-up (permutation, buffers) out of the figure."""
    import resource

    import tensorflow as tf

    def cpu_seconds(n):
        usage = resource.getrusage(resource.RUSAGE_SELF)
        start = usage.ru_utime + usage.ru_stime
        float(ds.take(n).reduce(tf.constant(0.0), lambda total, batch: total + batch[0, 0, 0, 0]))
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime - start

    cpu_seconds(warmup)  # traces the reduce function once
    return max(0.0, cpu_seconds(warmup + batches) - cpu_seconds(warmup)) / batches * 1e3


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="recipes/vae_reference.toml")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--steps", type=int, default=200, help="profiled steps (default 200)")
    parser.add_argument("--warmup", type=int, default=100, help="steps before profiling (default 100)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be >= 1 and --warmup >= 0")

    sys.path.insert(0, str(ROOT))
    import tensorflow as tf

    import zoo.data.pipeline as zdata
    from zoo.training import trainer
    from zoo.configs.recipe import load_recipe

    trainer.early_strategy(args.recipe, args.set)  # the threads of train.batch_shards, before TensorFlow starts
    recipe = load_recipe(args.recipe, overrides=args.set)
    x_fit = trainer.load_data(recipe).x_fit
    model = trainer.build_model(recipe, tf.distribute.get_strategy(), args.warmup + args.steps)
    binarize = "dynamic" if recipe.data.binarize == "dynamic" else "none"
    ds = zdata.make_dataset(x_fit, batch_size=recipe.train.batch_size, seed=recipe.train.seed, binarize=binarize,
                            repeat=True)
    if args.warmup:
        model.fit(ds, epochs=1, steps_per_epoch=args.warmup, verbose=0)
    with tempfile.TemporaryDirectory(prefix="zoo-profile-") as logdir:
        tf.profiler.experimental.start(logdir)
        start = time.perf_counter()
        model.fit(ds, epochs=1, steps_per_epoch=args.steps, verbose=0)
        wall = time.perf_counter() - start
        tf.profiler.experimental.stop()
        ops = op_times(logdir)
    data_ms = pipeline_cpu_ms_per_batch(ds, args.steps)

    per_step = {op: ps / 1e9 / args.steps for op, ps in ops.items()}  # ms of thread time per step
    total = sum(per_step.values())
    groups = collections.Counter()
    for op, ms in per_step.items():
        groups[group_of(op)] += ms
    result = {
        "recipe": args.recipe, "overrides": args.set, "steps": args.steps,
        "wall_ms_per_step": round(wall / args.steps * 1e3, 3),
        "samples_per_s_while_profiling": round(args.steps * recipe.train.batch_size / wall),
        "compute_thread_ms_per_step": round(total, 3),
        "groups_ms_per_step": {g: round(v, 3) for g, v in groups.most_common()},
        "input_pipeline_cpu_ms_per_batch": round(data_ms, 3),
        "top_ops_ms_per_step": {op: round(ms, 3) for op, ms in sorted(per_step.items(), key=lambda kv: -kv[1])[:12]},
    }
    print(f"{args.recipe}: {result['wall_ms_per_step']} ms per step (wall, profiler on), "
          f"{total:.2f} ms of compute-thread time per step; load average {os.getloadavg()[0]:.1f}\n")
    print("| group | thread ms per step | share |")
    print("|---|---|---|")
    for g, v in groups.most_common():
        print(f"| {g} | {v:.3f} | {v / total:.0%} |")
    print(f"| (input pipeline alone: CPU ms per batch) | {data_ms:.3f} | |")
    print("\n| op | thread ms per step |\n|---|---|")
    for op, ms in result["top_ops_ms_per_step"].items():
        print(f"| {op} | {ms:.3f} |")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
