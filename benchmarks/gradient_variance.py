"""The variance of the ELBO's gradient estimators on a VAE, and what it costs in training.

    python benchmarks/gradient_variance.py                    # ~8 minutes on two shared cores
    python benchmarks/gradient_variance.py --repeats 10 --steps 300 --out /tmp/g   # a quick look

1. Trains a small VAE (784-256-z16, Bernoulli likelihood, reparameterization) briefly on
   dynamically binarized Fashion-MNIST, loaded offline by the zoo's own loader.
2. On a fixed batch of test examples, estimates ∇(−ELBO) `--repeats` times for every estimator
   (reparameterization; score function without a baseline; score function with the
   leave-one-out baseline) and every number of samples S per example, and reports per parameter
   group (encoder φ, decoder θ) the total variance Σ_p Var[g_p] (the trace of the estimator's
   covariance) and the signal-to-noise ratio ‖E g‖² / Σ_p Var[g_p] (‖E g‖² estimated without
   the bias Σ Var / R of the squared mean of R estimates).
3. Trains a fresh VAE with each estimator for the same number of steps (the score function with
   the leave-one-out baseline over the batch, and over 4 draws per example) and records the
   test −ELBO (one sample, analytic KL) along the way.

Writes <out>/variance.png, <out>/convergence.png and <out>/gradient_variance.json (default
out: docs/gradients), and prints markdown tables.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ESTIMATORS = {  # name → (gradient, score_baseline)
    "reparameterization": ("reparameterization", "none"),
    "score function": ("score_function", "none"),
    "score function + baseline": ("score_function", "leave_one_out"),
}
TRAINING = {  # name → (gradient, score_baseline, draws per example)
    "reparameterization": ("reparameterization", "none", 1),
    "score function": ("score_function", "none", 1),
    "score function + baseline": ("score_function", "leave_one_out", 1),
    "score function + baseline, 4 draws": ("score_function", "leave_one_out", 4),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train-examples", type=int, default=20000, help="training examples used (of 60,000)")
    p.add_argument("--pretrain-epochs", type=int, default=3, help="epochs of the VAE whose gradients are measured")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--code-size", type=int, default=16)
    p.add_argument("--batch", type=int, default=64, help="examples of the batch the gradient is taken on")
    p.add_argument("--samples", type=int, nargs="+", default=[1, 4, 16, 64], help="samples S per example")
    p.add_argument("--repeats", type=int, default=100, help="independent estimates per estimator and S")
    p.add_argument("--steps", type=int, default=3000, help="training steps per estimator (batch 128)")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "gradients")
    p.add_argument("--replot", action="store_true", help="only redraw the figures from <out>/gradient_variance.json")
    return p.parse_args(argv)


def binarize(x, rng):
    return (rng.random(x.shape) < x).astype("float32")


def build(args, gradient="reparameterization", baseline="none", draws=1):
    import zoo

    model = zoo.build("vae", input_shape=(28, 28, 1), hidden=[args.hidden], code_size=args.code_size,
                      likelihood="bernoulli", gradient=gradient, score_baseline=baseline, score_samples=draws,
                      seed=args.seed)
    model(np.zeros((1, 28, 28, 1), "float32"))
    return model


def train(model, x_train, steps, rng, *, eval_fn=None, eval_every=0, batch=128, lr=1e-3):
    """`steps` Adam steps on fresh dynamic binarizations; returns [(step, seconds, eval)]."""
    import keras

    model.compile(optimizer=keras.optimizers.Adam(lr))
    curve, done, start = [], 0, time.perf_counter()
    chunk = eval_every or steps
    if eval_fn:
        curve.append((0, 0.0, eval_fn(model)))
    while done < steps:
        n = min(chunk, steps - done)
        idx = rng.choice(len(x_train), n * batch, replace=n * batch > len(x_train))
        model.fit(binarize(x_train[idx], rng), batch_size=batch, epochs=1, shuffle=False, verbose=0)
        done += n
        if eval_fn:
            curve.append((done, time.perf_counter() - start, eval_fn(model)))
    return curve


def gradient_statistics(model, x, samples, repeats, seed):
    """{estimator: {S: {group: {"variance", "snr", "mean_norm2"}}}} and seconds per estimate."""
    import tensorflow as tf

    groups = {"encoder": model.encoder.trainable_variables, "decoder": model.decoder.trainable_variables}
    variables = [v for vs in groups.values() for v in vs]
    cut = len(groups["encoder"])
    out, seconds = {}, {}
    for name, (gradient, baseline) in ESTIMATORS.items():
        out[name], seconds[name] = {}, {}
        for s in samples:
            @tf.function(reduce_retracing=True)
            def estimate(seed_pair, s=s, gradient=gradient, baseline=baseline):
                with tf.GradientTape() as tape:
                    loss = model.elbo_gradient_loss(x, s, seed_pair, gradient=gradient, score_baseline=baseline)
                grads = tape.gradient(loss, variables)
                return [tf.concat([tf.reshape(g, [-1]) for g in part], 0) for part in (grads[:cut], grads[cut:])]

            estimate(tf.constant([seed, 0]))  # trace
            draws = {"encoder": [], "decoder": []}
            start = time.perf_counter()
            for r in range(repeats):
                enc, dec = estimate(tf.constant([seed, 1 + r]))
                draws["encoder"].append(enc.numpy().astype("float64"))
                draws["decoder"].append(dec.numpy().astype("float64"))
            seconds[name][s] = (time.perf_counter() - start) / repeats
            out[name][s] = {}
            for group, values in draws.items():
                values = np.stack(values)
                variance = float(values.var(axis=0, ddof=1).sum())
                # ‖ḡ‖² overestimates ‖E g‖² by Σ Var / R: subtract it (unbiased, floored at 0).
                mean_norm2 = max(float(np.sum(values.mean(axis=0) ** 2)) - variance / len(values), 0.0)
                out[name][s][group] = {"variance": variance, "mean_norm2": mean_norm2, "snr": mean_norm2 / variance}
    return out, seconds


def plot_variance(stats, samples, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, group in zip(axes, ("encoder", "decoder")):
        for name, marker in zip(ESTIMATORS, "osD"):
            ax.loglog(samples, [stats[name][s][group]["variance"] for s in samples], marker=marker, label=name)
        ax.set_title("encoder (φ)" if group == "encoder" else "decoder (θ): the three coincide (same draws of z)")
        ax.set_xlabel("samples S per example")
        ax.set_ylabel("Σ_p Var[∂(−ELBO)/∂p]")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend()
    fig.suptitle("Gradient variance of the batch −ELBO per parameter group")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_convergence(curves, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, curve in curves.items():
        ax.plot([c[0] for c in curve], [c[2] for c in curve], marker=".", label=name)
    ax.set_xlabel("training steps (batch 128)")
    ax.set_ylabel("test −ELBO (nats, log scale)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title("Same number of steps, four ways to estimate ∇_φ")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def replot(out: Path) -> None:
    record = json.loads((out / "gradient_variance.json").read_text())
    samples = record["arguments"]["samples"]
    stats = {n: {s: per[str(s)] for s in samples} for n, per in record["variance"].items()}
    plot_variance(stats, samples, out / "variance.png")
    curves = {n: [(c["step"], c["seconds"], c["test_neg_elbo"]) for c in curve] for n, curve in record["training"].items()}
    plot_convergence(curves, out / "convergence.png")
    print(f"redrew {out / 'variance.png'}, {out / 'convergence.png'}")


def main(argv=None):
    args = parse_args(argv)
    if args.replot:
        return replot(args.out)
    import keras

    from zoo.data.sources import load_arrays

    t0 = time.perf_counter()
    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    arrays = load_arrays("fashion_mnist")
    x_train = np.asarray(arrays.x_train[: args.train_examples])
    x_test = binarize(np.asarray(arrays.x_test[:2000]), np.random.default_rng(args.seed + 1))

    def test_neg_elbo(model):
        return float(-np.mean([np.asarray(model.elbo(x_test[i:i + 500])).mean() for i in range(0, len(x_test), 500)]))

    model = build(args)
    steps = args.pretrain_epochs * len(x_train) // 128
    train(model, x_train, steps, rng)
    trained_elbo = test_neg_elbo(model)
    print(f"pretrained: {steps} steps, test −ELBO {trained_elbo:.2f} nats ({time.perf_counter() - t0:.0f} s)")

    stats, seconds = gradient_statistics(model, x_test[: args.batch], args.samples, args.repeats, args.seed)
    print(f"\nGradient of the batch −ELBO ({args.batch} test examples), {args.repeats} estimates each: "
          "Σ_p Var (SNR = ‖E g‖²/Σ Var)\n")
    print("| estimator | S | encoder Σ Var | encoder SNR | decoder Σ Var | decoder SNR | ms / estimate |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in ESTIMATORS:
        for s in args.samples:
            e, d = stats[name][s]["encoder"], stats[name][s]["decoder"]
            print(f"| {name} | {s} | {e['variance']:.3g} | {e['snr']:.3g} | {d['variance']:.3g} | {d['snr']:.3g} "
                  f"| {1000 * seconds[name][s]:.1f} |")

    curves, wall = {}, {}
    for name, (gradient, baseline, draws) in TRAINING.items():
        keras.utils.set_random_seed(args.seed)
        fresh = build(args, gradient, baseline, draws)
        start = time.perf_counter()
        curves[name] = train(fresh, x_train, args.steps, np.random.default_rng(args.seed + 2), eval_fn=test_neg_elbo,
                             eval_every=args.eval_every)
        wall[name] = time.perf_counter() - start
    print(f"\nTraining from scratch, {args.steps} steps of batch 128, test −ELBO on {len(x_test)} examples\n")
    marks = sorted({c[0] for c in curves[next(iter(curves))]})
    shown = [m for m in marks if m in (0, marks[len(marks) // 3], marks[2 * len(marks) // 3], marks[-1])]
    print("| estimator | " + " | ".join(f"step {m}" for m in shown) + " | seconds |")
    print("|---|" + "---:|" * (len(shown) + 1))
    for name, curve in curves.items():
        by_step = {c[0]: c[2] for c in curve}
        print(f"| {name} | " + " | ".join(f"{by_step[m]:.1f}" for m in shown) + f" | {wall[name]:.0f} |")

    args.out.mkdir(parents=True, exist_ok=True)
    plot_variance(stats, args.samples, args.out / "variance.png")
    plot_convergence(curves, args.out / "convergence.png")
    record = {"date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "arguments": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "pretrained_test_neg_elbo": trained_elbo,
              "variance": {n: {str(s): v for s, v in per.items()} for n, per in stats.items()},
              "seconds_per_estimate": {n: {str(s): v for s, v in per.items()} for n, per in seconds.items()},
              "training": {n: [{"step": c[0], "seconds": c[1], "test_neg_elbo": c[2]} for c in curve]
                           for n, curve in curves.items()},
              "training_seconds": wall, "total_seconds": time.perf_counter() - t0}
    (args.out / "gradient_variance.json").write_text(json.dumps(record, indent=1))
    print(f"\nwrote {args.out / 'variance.png'}, {args.out / 'convergence.png'}, {args.out / 'gradient_variance.json'} "
          f"({record['total_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
