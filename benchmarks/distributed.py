"""Two workers on loopback against one process: step time, the all-reduce's share, and the cost model's inputs.

    python benchmarks/distributed.py                        # 2 rounds, 3 epochs of 200 steps per configuration
    python benchmarks/distributed.py --epochs 4 --steps 300 --json /tmp/distributed.json

On one machine (`zoo fit recipes/vae_reference.toml` each time, global batch 128, epochs of
`--steps` steps, steady state = the epochs after the first):

* `one process`: the reference, as `zoo fit` runs it on all the machine's cores (Model.fit, the
  recipe's batch shards);
* `one worker, 1 core, batch 64`: `--strategy multi_worker` with a one-worker TF_CONFIG, pinned
  to core 0, half the global batch: what each of two workers computes, with the multi-worker
  loop (`zoo.training.loops.fit_custom_loop`) but nothing to exchange;
* `two workers, 1 core each`: two `zoo fit --strategy multi_worker` processes on 127.0.0.1,
  pinned to cores 0 and 1, each taking 64 of every global batch of 128 and all-reducing the
  gradient (TensorFlow's collective ops over gRPC);
* `all-reduce`: the same two-worker cluster all-reducing, in a loop, tensors of the model's own
  trainable-weight shapes (its gradient: 1.09 M float32 parameters, counted from the model) and
  a single float (the fixed cost of one collective on loopback).

The all-reduce share of the two-worker step is read two ways: the measured all-reduce time
over the step time, and (step of two workers − step of the one-worker half) over the step.
The cost model of docs/distributed.md takes the parameter count, the one-process step time
and the fixed cost from here.

Prints a markdown table and one JSON line (also written to --json).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, emit, free_ports, quiet_env, zoo_cli  # noqa: E402
from speed import matmul_gflops  # noqa: E402

RECIPE = "recipes/vae_reference.toml"
#: The reference VAE's trainable parameters (`tests/test_reference.py`; the all-reduce child counts them again).
PARAMETERS = 1_091_920
NETWORKS_GBPS = (10, 25, 100)
WORKERS = (2, 4, 8, 16)


def ring_allreduce_seconds(workers: int, parameters: int, gbps: float, hop_s: float, bytes_per_parameter: int = 4):
    """Time of one ring all-reduce of a float gradient over `workers` workers.

    Each worker sends (and receives) 2(N−1)/N · S bytes, S = bytes_per_parameter · parameters, in
    2(N−1) steps (N−1 of reduce-scatter, N−1 of all-gather), each step paying the per-hop latency:

        t(N) = 2(N−1)/N · S · 8 / (gbps · 10⁹) + 2(N−1) · hop_s

    One worker exchanges nothing: t(1) = 0.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1. Received: workers={workers}")
    size = bytes_per_parameter * parameters
    return 2 * (workers - 1) / workers * size * 8 / (gbps * 1e9) + 2 * (workers - 1) * hop_s


def cost_table(compute_s: float, hop_s: float, parameters: int = PARAMETERS, workers=WORKERS,
               networks=NETWORKS_GBPS) -> list[dict]:
    """For each N and network: the all-reduce time, the step at the same global batch (compute/N +
    all-reduce, no overlap), its speed-up over one worker, and whether adding workers pays
    (compute/N + comm < compute); and, keeping each worker's batch (the global batch N times
    larger), the fraction of the step spent computing, compute / (compute + comm)."""
    rows = []
    for n in workers:
        for gbps in networks:
            comm = ring_allreduce_seconds(n, parameters, gbps, hop_s)
            step = compute_s / n + comm
            rows.append({"workers": n, "gbps": gbps, "allreduce_ms": comm * 1e3, "step_ms": step * 1e3,
                         "speedup": compute_s / step, "pays": step < compute_s,
                         "weak_scaling_efficiency": compute_s / (compute_s + comm)})
    return rows


def print_cost_table(compute_s: float, hop_s: float, parameters: int = PARAMETERS) -> list[dict]:
    rows = cost_table(compute_s, hop_s, parameters)
    print(f"\nRing all-reduce of {parameters:,} float32 parameters ({4 * parameters / 1e6:.2f} MB), "
          f"{hop_s * 1e3:.3f} ms per hop, against {compute_s * 1e3:.2f} ms of compute per step of one worker:\n")
    print("| workers | network | all-reduce ms | step ms at the same global batch | speed-up | pays | "
          "compute share, per-worker batch kept |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workers']} | {r['gbps']} Gb/s | {r['allreduce_ms']:.2f} | {r['step_ms']:.2f} | "
              f"{r['speedup']:.2f}× | {'yes' if r['pays'] else 'no'} | {r['weak_scaling_efficiency']:.0%} |")
    return rows


def launch(commands: list[list[str]], cores: list[set[int] | None], tmp: Path, timeout: float = 900) -> list[str]:
    """Runs one worker per command (TF_CONFIG for a cluster of len(commands) on 127.0.0.1), each pinned
    to its cores; returns their stdouts, or raises with the log of the first that failed."""
    workers = [f"127.0.0.1:{p}" for p in free_ports(len(commands))]
    procs, logs = [], []
    for index, (cmd, pin) in enumerate(zip(commands, cores)):
        scratch = tmp / f"worker{index}-tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = quiet_env(TMPDIR=str(scratch), CUDA_VISIBLE_DEVICES="", TF_CONFIG=json.dumps(tf_config))
        log = open(tmp / f"worker{index}.log", "w+")
        logs.append(log)
        preexec = (lambda pin=pin: os.sched_setaffinity(0, pin)) if pin else None
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT,
                                      preexec_fn=preexec))
    try:
        outs = [p.communicate(timeout=timeout)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for index, (p, log) in enumerate(zip(procs, logs)):
        log.seek(0)
        text = log.read()
        log.close()
        if p.returncode:
            raise RuntimeError(f"worker {index} exited with {p.returncode}:\n{text[-3000:]}")
    return outs


def fit_command(out: Path, epochs: int, steps: int, *extra: str) -> list[str]:
    return [zoo_cli(), "fit", RECIPE, "--epochs", str(epochs), "--steps-per-epoch", str(steps), "--out", str(out),
            "--quiet", "--overwrite", *extra]


def step_ms(run_dir: Path, batch: int) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    sps = metrics["train_samples_per_second"]
    return {"samples_per_s": sps, "ms_per_step": round(batch / sps * 1e3, 3), "epochs": metrics["epochs"]}


ALLREDUCE_CHILD = """
import json, sys, time
import numpy as np, tensorflow as tf
from zoo.training import trainer
strategy = trainer.make_strategy("multi_worker")
import zoo
recipe = zoo.load_recipe(sys.argv[1])
model = recipe.model.build(recipe.input_shape)
model(np.zeros((1, *recipe.input_shape), "float32"))
shapes = [tuple(w.shape) for w in model.trainable_weights]
repeats = int(sys.argv[2])


def timed(tensors):
    @tf.function
    def step():
        def replica():
            ctx = tf.distribute.get_replica_context()
            return ctx.all_reduce(tf.distribute.ReduceOp.SUM, tensors)
        return strategy.run(replica)
    step()
    step()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            out = step()
        tf.nest.map_structure(lambda t: strategy.experimental_local_results(t)[0].numpy(), out)
        best = min(best, (time.perf_counter() - start) / repeats)
    return best


grad = [tf.ones(s) for s in shapes]
one = [tf.ones(())]
print(json.dumps({"parameters": int(sum(np.prod(s) for s in shapes)), "tensors": len(shapes),
                  "gradient_ms": timed(grad) * 1e3, "scalar_ms": timed(one) * 1e3}))
"""


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per configuration; the first is not timed")
    parser.add_argument("--steps", type=int, default=200, help="steps per epoch (a multiple of 20, default 200)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the three configurations, order alternating")
    parser.add_argument("--repeats", type=int, default=50, help="all-reduces per timing (default 50)")
    parser.add_argument("--json", default="", help="also write the result to this file")
    parser.add_argument("--cost-model", nargs=2, type=float, metavar=("COMPUTE_MS", "HOP_MS"),
                        help="print only the cost model's table for this compute time per step and per-hop latency")
    args = parser.parse_args(argv)
    if args.cost_model:
        compute_ms, hop_ms = args.cost_model
        return {"cost_model": print_cost_table(compute_ms / 1e3, hop_ms / 1e3)}
    if args.rounds < 1 or args.epochs < 2 or args.steps < 1 or args.steps % 20:
        parser.error("--rounds must be >= 1, --epochs >= 2 and --steps a positive multiple of 20 "
                     "(the recipe's steps_per_execution)")
    if len(os.sched_getaffinity(0)) < 2:
        parser.error("needs two cores (one per worker)")
    core0, core1 = sorted(os.sched_getaffinity(0))[:2]
    configs = {
        "one process": dict(batch=128, cores=len(os.sched_getaffinity(0))),
        "one worker, 1 core, batch 64": dict(extra=["--strategy", "multi_worker", "--set", "train.batch_size=64"],
                                             pins=[{core0}], batch=64, cores=1),
        "two workers, 1 core each": dict(extra=["--strategy", "multi_worker"], pins=[{core0}, {core1}], batch=128,
                                         cores=2),
    }
    runs = {name: [] for name in configs}
    rate_before = matmul_gflops()
    with tempfile.TemporaryDirectory(prefix="zoo-distributed-") as tmp:
        tmp = Path(tmp)
        for r in range(args.rounds):
            # The order flips every round, so a drifting load on a shared machine hits every configuration alike.
            for name in (list(configs) if r % 2 == 0 else list(configs)[::-1]):
                c = configs[name]
                out = tmp / f"{name.split(',')[0].replace(' ', '-')}-{r}"
                load = os.getloadavg()[0]
                if c.get("pins") is None:
                    done = subprocess.run(fit_command(out, args.epochs, args.steps), capture_output=True, text=True,
                                          cwd=ROOT, env=quiet_env(CUDA_VISIBLE_DEVICES=""))
                    if done.returncode:
                        raise RuntimeError(done.stderr[-3000:])
                else:
                    launch([fit_command(out, args.epochs, args.steps, *c["extra"])] * len(c["pins"]), c["pins"],
                           out.with_name(out.name + "-logs"))
                runs[name].append({**step_ms(out, c["batch"]), "load_before": round(load, 2)})
                print(f"distributed.py: round {r + 1} {name}: {runs[name][-1]}", file=sys.stderr, flush=True)
        script = tmp / "allreduce.py"
        script.write_text(ALLREDUCE_CHILD)
        load = os.getloadavg()[0]
        outs = launch([[sys.executable, str(script), RECIPE, str(args.repeats)]] * 2, [{core0}, {core1}],
                      tmp / "allreduce-logs")
        allreduce = json.loads(outs[0].strip().splitlines()[-1])
        allreduce["load_before"] = round(load, 2)
        print(f"distributed.py: all-reduce {allreduce}", file=sys.stderr, flush=True)
    rate_after = matmul_gflops()
    rows = {name: {"cores": configs[name]["cores"], "global_batch": configs[name]["batch"],
                   "ms_per_step": statistics.median(x["ms_per_step"] for x in runs[name]),
                   "samples_per_s": statistics.median(x["samples_per_s"] for x in runs[name]),
                   "runs": runs[name]} for name in configs}
    two = rows["two workers, 1 core each"]["ms_per_step"]
    half = rows["one worker, 1 core, batch 64"]["ms_per_step"]
    one = rows["one process"]["ms_per_step"]
    result = {
        "recipe": RECIPE, "epochs": args.epochs, "steps_per_epoch": args.steps, "rounds": args.rounds,
        "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "matmul_gflops": {"before": round(rate_before, 1), "after": round(rate_after, 1)}, "rows": rows,
        "allreduce": allreduce, "two_over_one": round(two / one, 2),
        "allreduce_share_measured": round(allreduce["gradient_ms"] / two, 3),
        "allreduce_share_by_difference": round((two - half) / two, 3),
    }
    print(f"matmul rate {rate_before:.0f} GFLOP/s before the runs, {rate_after:.0f} after\n")
    print("| configuration | cores | global batch | samples/s (median) | ms per step (median; runs) | load before |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        each = ", ".join(f"{x['ms_per_step']:.2f}" for x in r["runs"])
        loads = ", ".join(f"{x['load_before']:.1f}" for x in r["runs"])
        print(f"| {name} | {r['cores']} | {r['global_batch']} | {r['samples_per_s']:,.0f} | {r['ms_per_step']:.2f} "
              f"({each}) | {loads} |")
    print(f"\nall-reduce on loopback, 2 workers: the gradient ({allreduce['parameters']:,} float32 in "
          f"{allreduce['tensors']} tensors) {allreduce['gradient_ms']:.2f} ms, "
          f"one float {allreduce['scalar_ms']:.2f} ms "
          f"(best of 3 × {args.repeats}). Two workers' step / one process's: {result['two_over_one']:.2f}×; "
          f"all-reduce share of the two-worker step: {result['allreduce_share_measured']:.0%} measured, "
          f"{result['allreduce_share_by_difference']:.0%} by difference with the one-worker half.")
    # The model's inputs from this run: one process's step, and a hop's latency from the one-float
    # all-reduce of two workers (2(N−1) = 2 hops).
    result["cost_model"] = print_cost_table(one / 1e3, allreduce["scalar_ms"] / 2 / 1e3, allreduce["parameters"])
    return emit(result, args.json)


if __name__ == "__main__":
    main()
