"""Training throughput of the zoo's reference VAE against a peer implementation, side by side.

    python benchmarks/speed.py                      # 2 rounds, 4 epochs per run, the Keras peer
    python benchmarks/speed.py --rounds 3 --epochs 5 --json /tmp/speed.json
    python benchmarks/speed.py --peer torch --peer-python /tmp/torch-venv/bin/python
    python benchmarks/speed.py --peer path/to/my_peer.py
    python benchmarks/speed.py --model conv_vae         # recipes/conv_vae.toml against keras_conv_vae.py

The peers live in the repository, in `benchmarks/peers/` (`--peer` picks one):

* `keras` (the default), `keras_example_vae.py`: a VAE written the way keras-io's
  `examples/generative/vae.py` teaches it (a `Sampling` layer, encoder and decoder models, a
  `VAE(keras.Model)` with a custom `train_step` and `tf.GradientTape`, `model.fit`), on the
  reference architecture;
* `torch`, `torch_vae.py`: the same model as a plain PyTorch training loop. PyTorch is not part of
  the zoo's environment: `--peer-python` names an interpreter that has it; where that one cannot
  import torch, the run is skipped with a message (exit status 0, nothing measured);
* `keras_conv`, `keras_conv_vae.py`: keras-io's convolutional VAE on the architecture of
  `recipes/conv_vae.toml`, the peer of `--model conv_vae`;
* a path: any script that honours EPOCHS, BATCH, K and NTEST and prints one JSON line with
  `samples_per_s` (and `test_nll`, `train_s` if it has them).

`--model` picks the zoo recipe and its default peer: `vae_reference` (the default: the MLP
against `keras`) or `conv_vae` (`recipes/conv_vae.toml` with `data.validation_size=0`, so that it
trains on the peer's 60,000 images, against `keras_conv`).

All of them read Fashion-MNIST from the IDX files of Debian's `dataset-fashion-mnist` package
(`benchmarks/peers/fmnist.py`; FMNIST_DIR names another directory for the peers), the files
`zoo fit` reads by default.

What it does, in one process on one machine:

1. Measures the machine's float32 matmul rate (a 2048×2048 by 2048×2048 `tf.matmul`, best of
   several timings), before and after the training runs.
2. Runs the peer and `zoo fit recipes/vae_reference.toml` alternately, as subprocesses, for
   the same number of epochs; the order flips every round so drifting load on a shared machine
   hits both alike. Each reports steady-state training samples per second (epochs after the
   first): the peer's `samples_per_s`, the zoo's `train_samples_per_second` from metrics.json.
3. Checks that the speed does not cost likelihood: the peer prints the importance-sampled test
   NLL (K samples, first NTEST test images binarized once with numpy `default_rng(0)`); the zoo
   run is evaluated on exactly those images with the same K (`benchmarks/nll.py
   --test-binarization-seed 0`).
4. Counts the FLOPs of one training step per example (≈ 3 × the forward multiply-add FLOPs of
   the dense and convolution layers: forward, and two products per layer backward) and the
   fraction of the matmul rate the zoo's steady-state throughput reaches.

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
from _common import ROOT, emit, quiet_env, zoo_cli  # noqa: E402

PEERS_DIR = ROOT / "benchmarks" / "peers"
PEERS = {"keras": PEERS_DIR / "keras_example_vae.py", "torch": PEERS_DIR / "torch_vae.py",
         "keras_conv": PEERS_DIR / "keras_conv_vae.py"}
PEER = PEERS["keras"]
#: --model: the zoo recipe, its default peer and the overrides that give it the peer's data.
MODELS = {"vae_reference": ("recipes/vae_reference.toml", "keras", []),
          "conv_vae": ("recipes/conv_vae.toml", "keras_conv", ["data.validation_size=0"])}


def resolve_peer(name: str) -> Path:
    """The peer script of `--peer`: a name of PEERS, or a path."""
    return PEERS[name] if name in PEERS else Path(name).resolve()


def can_import(python: str, module: str) -> bool:
    """Whether `python` imports `module` (checked in a subprocess, as the peer will run)."""
    done = subprocess.run([python, "-c", f"import {module}"], capture_output=True, text=True, env=quiet_env())
    return done.returncode == 0


def matmul_gflops(n: int = 2048, repeats: int = 5, inner: int = 4) -> float:
    """The float32 matmul rate in GFLOP/s: the best of `repeats` timings of `inner` n×n products."""
    import tensorflow as tf

    a, b = tf.random.normal((n, n)), tf.random.normal((n, n))
    product = tf.function(lambda a, b: tf.matmul(a, b))
    product(a, b).numpy()
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            c = product(a, b)
        c.numpy()
        best = max(best, 2 * n ** 3 * inner / (time.perf_counter() - start) / 1e9)
    return best


def forward_macs(model) -> int:
    """Multiply-adds of one example's forward pass through the encoder's and decoder's Dense,
    Conv and ConvTranspose layers (a convolution: output positions × kernel size; a transposed
    one: input positions × kernel size)."""
    import math

    import keras

    total = 0
    for net in (model.encoder, model.decoder):
        for layer in net.layers:
            if isinstance(layer, keras.layers.Dense):
                total += math.prod(layer.kernel.shape)
            elif isinstance(layer, (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose)):
                total += math.prod(layer.kernel.shape) * math.prod(layer.input.shape[1:-1])
            elif isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D)):
                total += math.prod(layer.kernel.shape) * math.prod(layer.output.shape[1:-1])
    return int(total)


def train_flops_per_example(recipe) -> int:
    """≈ 3 × forward multiply-add FLOPs (2 per multiply-add): forward, and grad wrt weights and inputs."""
    import numpy as np

    model = recipe.model.build(recipe.input_shape)
    model(np.zeros((1, *recipe.input_shape), "float32"))
    return 3 * 2 * forward_macs(model)


def _last_json(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no JSON line in output:\n{text[-2000:]}")


def run_peer(peer: Path, epochs: int, k: int, ntest: int, python: str = sys.executable) -> dict:
    env = quiet_env(EPOCHS=str(epochs), K=str(k), NTEST=str(ntest))
    load = os.getloadavg()[0]
    done = subprocess.run([python, str(peer)], env=env, capture_output=True, text=True, cwd=peer.parent)
    if done.returncode:
        raise RuntimeError(f"peer failed ({done.returncode}): {done.stderr[-2000:]}")
    out = _last_json(done.stdout)
    return {"samples_per_s": float(out["samples_per_s"]), "test_nll": out.get("test_nll"), "load_before": load,
            "train_s": out.get("train_s")}


def run_zoo(recipe_path: str, sets: list[str], epochs: int, k: int, ntest: int, out: Path) -> dict:
    cmd = [zoo_cli(), "fit", recipe_path, "--set", f"train.epochs={epochs}", "--out", str(out), "--quiet",
           "--overwrite"]
    for s in sets:
        cmd += ["--set", s]
    env = quiet_env()
    load = os.getloadavg()[0]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"zoo fit failed ({done.returncode}): {done.stderr[-2000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    result = {"samples_per_s": float(metrics["train_samples_per_second"]), "load_before": load,
              "train_s": metrics.get("train_seconds_this_session")}
    if k:
        nll = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "nll.py"), str(out), "--k", str(k),
                              "--n", str(ntest), "--test-binarization-seed", "0"],
                             env=env, capture_output=True, text=True, cwd=ROOT)
        if nll.returncode:
            raise RuntimeError(f"nll.py failed: {nll.stderr[-2000:]}")
        result["test_nll"] = _last_json(nll.stdout)["test_nll"]
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="peer/zoo pairs, order alternating (default 2)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run; the first is not timed (default 4)")
    parser.add_argument("--model", default="vae_reference", choices=sorted(MODELS),
                        help="the zoo recipe and its default peer (default vae_reference; conv_vae)")
    parser.add_argument("--recipe", default="", help="another zoo recipe (default: --model's)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override the zoo recipe (repeatable), e.g. --set train.jit_compile=false")
    parser.add_argument("--peer", default="",
                        help="the peer: 'keras' (benchmarks/peers/keras_example_vae.py, --model vae_reference's), "
                             "'keras_conv' (keras_conv_vae.py, --model conv_vae's), 'torch' "
                             "(benchmarks/peers/torch_vae.py) or the path of a script that prints one JSON line")
    parser.add_argument("--peer-python", default=sys.executable,
                        help="the Python that runs the peer (default: this one), e.g. a venv with torch")
    parser.add_argument("--k", type=int, default=100, help="importance samples of the NLL check (0 = skip)")
    parser.add_argument("--ntest", type=int, default=2000, help="test images of the NLL check")
    parser.add_argument("--json", default="", help="also write the result to this file")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.epochs < 2:
        parser.error("--rounds must be >= 1 and --epochs >= 2 (the first epoch is not timed)")
    model_recipe, model_peer, model_sets = MODELS[args.model]
    args.recipe = args.recipe or model_recipe
    args.peer = args.peer or model_peer
    args.set = model_sets + args.set
    peer = resolve_peer(args.peer)
    if not peer.is_file():
        parser.error(f"no peer script at {peer}")
    if peer == PEERS["torch"] and not can_import(args.peer_python, "torch"):
        print(f"speed.py: skipping the PyTorch peer: {args.peer_python} cannot import torch. Install it in a "
              "venv of its own (pip install torch==2.13.0 numpy) and pass that venv's python with --peer-python.",
              file=sys.stderr)
        return {}

    sys.path.insert(0, str(ROOT))
    import zoo

    recipe = zoo.load_recipe(ROOT / args.recipe if not Path(args.recipe).is_file() else args.recipe,
                             overrides=args.set)
    flops = train_flops_per_example(recipe)
    rate_before = matmul_gflops()
    peer_runs, zoo_runs = [], []
    with tempfile.TemporaryDirectory(prefix="zoo-speed-") as tmp:
        for r in range(args.rounds):
            order = ("peer", "zoo") if r % 2 == 0 else ("zoo", "peer")
            for who in order:
                if who == "peer":
                    peer_runs.append(run_peer(peer, args.epochs, args.k or 1, args.ntest, args.peer_python))
                else:
                    zoo_runs.append(run_zoo(args.recipe, args.set, args.epochs, args.k, args.ntest,
                                            Path(tmp) / f"zoo-{r}"))
                last = (peer_runs if who == "peer" else zoo_runs)[-1]
                print(f"round {r + 1} {who:>4}: {last['samples_per_s']:8.0f} samples/s  "
                      f"nll {last.get('test_nll')}  load {last['load_before']:.1f}", file=sys.stderr, flush=True)
    rate_after = matmul_gflops()
    rate = max(rate_before, rate_after)
    peer_sps = statistics.median(r["samples_per_s"] for r in peer_runs)
    zoo_sps = statistics.median(r["samples_per_s"] for r in zoo_runs)
    paired = [z["samples_per_s"] / p["samples_per_s"] for z, p in zip(zoo_runs, peer_runs)]
    result = {
        "model": args.model, "recipe": args.recipe, "overrides": args.set, "epochs": args.epochs, "rounds": args.rounds,
        "peer_script": str(peer.relative_to(ROOT)) if peer.is_relative_to(ROOT) else str(peer),
        "cpus": os.cpu_count(),
        "matmul_gflops": {"before": round(rate_before, 1), "after": round(rate_after, 1)},
        "train_flops_per_example": flops,
        "peer": {"samples_per_s_median": round(peer_sps), "runs": peer_runs},
        "zoo": {"samples_per_s_median": round(zoo_sps), "runs": zoo_runs},
        "ratio_of_medians": round(zoo_sps / peer_sps, 2),
        "ratio_per_round": [round(x, 2) for x in paired],
        "zoo_gflops": round(zoo_sps * flops / 1e9, 1),
        "peer_gflops": round(peer_sps * flops / 1e9, 1),
        "zoo_fraction_of_matmul": round(zoo_sps * flops / 1e9 / rate, 3),
        "peer_fraction_of_matmul": round(peer_sps * flops / 1e9 / rate, 3),
        "nll_check": {"k": args.k, "n_test": args.ntest,
                      "peer": [r.get("test_nll") for r in peer_runs], "zoo": [r.get("test_nll") for r in zoo_runs]},
    }
    print(f"peer: {result['peer_script']} (run by {args.peer_python})\n")
    print("| | samples/s (median) | runs | GFLOP/s | fraction of matmul rate | test NLL (k={}, n={}) |".format(
        args.k, args.ntest))
    print("|---|---|---|---|---|---|")
    for name, runs, sps in (("peer", peer_runs, peer_sps), ("zoo", zoo_runs, zoo_sps)):
        each = ", ".join(f"{r['samples_per_s']:.0f}" for r in runs)
        nlls = ", ".join(str(r.get("test_nll")) for r in runs)
        print(f"| {name} | {sps:.0f} | {each} | {sps * flops / 1e9:.1f} | {sps * flops / 1e9 / rate:.0%} | {nlls} |")
    print(f"\nzoo / peer: {zoo_sps / peer_sps:.2f}× (per round: {', '.join(f'{x:.2f}' for x in paired)}); "
          f"matmul rate {rate:.1f} GFLOP/s (before {rate_before:.1f}, after {rate_after:.1f}); "
          f"{flops / 1e6:.2f} MFLOP per training example; load average now {os.getloadavg()[0]:.1f}")
    return emit(result, args.json)


if __name__ == "__main__":
    main()
