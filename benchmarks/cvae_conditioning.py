"""Does the conditional VAE draw the class it is asked for? Samples of each class scored by a
classifier that never saw the model.

    python benchmarks/cvae_conditioning.py                     # 10 epochs, 200 samples per class
    python benchmarks/cvae_conditioning.py --epochs 3 --per-class 50 --json /tmp/cvae.json

1. `zoo fit recipes/cvae.toml` for --epochs epochs (Fashion-MNIST, labels from the dataset).
2. `sample(n, labels=y)` for every class y: means of p(x|z, y), z ~ p(z|y).
3. A logistic regression on raw pixels, trained on 20,000 training images (test accuracy
   printed beside), labels every sample; the figure is the fraction labelled as the class the
   model was asked for (chance: 10%), per class and overall. The same classifier on the model's
   reconstructions of test images under their own labels and under a wrong label (y + 1 mod K)
   says how much of each image the label decides.

Prints a markdown table and one JSON line (also written to --json); saves a samples PNG with --png.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--out", default="runs/cvae_conditioning")
    parser.add_argument("--json", default="")
    parser.add_argument("--png", default="")
    args = parser.parse_args(argv)

    import numpy as np
    from sklearn.linear_model import LogisticRegression

    import zoo
    from zoo.data.sources import load_arrays

    start = time.perf_counter()
    recipe = zoo.load_recipe("recipes/cvae.toml", overrides=[f"train.epochs={args.epochs}"])
    run = zoo.fit(recipe, out=args.out, overwrite=True, verbose=0)
    fit_s = time.perf_counter() - start
    model, k = run.model, run.model.num_classes
    data = load_arrays("fashion_mnist")
    flat = data.x_train[:20000].reshape(20000, -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = LogisticRegression(max_iter=300, C=0.1).fit(flat, data.y_train[:20000])
    x_test, y_test = data.x_test[:2000], data.y_test[:2000]
    classifier_test = float((clf.predict(x_test.reshape(len(x_test), -1)) == y_test).mean())
    per_class = {}
    samples = []
    for y in range(k):
        drawn = np.asarray(model.sample(args.per_class, labels=y, seed=y))
        samples.append(drawn[:10])
        per_class[y] = float((clf.predict(drawn.reshape(len(drawn), -1)) == y).mean())
    own = np.asarray(model.reconstruct(model.inputs_of(x_test, y_test)))
    wrong_y = (y_test + 1) % k
    wrong = np.asarray(model.reconstruct(model.inputs_of(x_test, wrong_y)))
    result = {
        "epochs": args.epochs, "samples_per_class": args.per_class, "fit_seconds": round(fit_s, 1),
        "classifier_test_accuracy": classifier_test,
        "samples_of_the_asked_class": float(np.mean(list(per_class.values()))),
        "per_class": per_class,
        "reconstructions_own_label_classified_as_true_class": float(
            (clf.predict(own.reshape(len(own), -1)) == y_test).mean()),
        "reconstructions_wrong_label_classified_as_that_label": float(
            (clf.predict(wrong.reshape(len(wrong), -1)) == wrong_y).mean()),
        "test_loss": run.metrics.get("test_loss"),
    }
    print("| class | samples classified as the asked class |\n|---:|---:|")
    for y, value in per_class.items():
        print(f"| {y} | {value:.1%} |")
    print(f"| all | {result['samples_of_the_asked_class']:.1%} |")
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    if args.png:
        from zoo.bench.report import _pyplot

        plt = _pyplot()
        fig, axes = plt.subplots(k, 10, figsize=(10, k))
        for y in range(k):
            for j in range(10):
                axes[y, j].imshow(samples[y][j].squeeze(), cmap="gray", vmin=0, vmax=1)
                axes[y, j].axis("off")
        fig.savefig(args.png, dpi=60, bbox_inches="tight")
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
