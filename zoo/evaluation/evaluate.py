"""Metrics of one trained run on the test set: size and cost, reconstruction, robustness,
representation and, for the VAE, likelihood.

Example:
    >>> row = zoo.evaluation.evaluate("runs/vae", nll_samples=1000)   # also writes runs/vae/evaluation.json
    >>> row["nll"], row["psnr"], row["probe_accuracy"]

Definitions (x the clean test image in [0, 1], x̂ the reconstruction, D pixels):

- mse = mean over images and pixels of (x − x̂)²;
- bce = mean over images and pixels of −[x·log x̂ + (1 − x)·log(1 − x̂)] (x̂ clipped to [1e-7, 1 − 1e-7]);
- psnr = mean over images of 10·log10(1 / mse_image) dB (peak value 1);
- psnr_<noise>_<level> = the same PSNR between the clean x and the reconstruction of a corrupted
  x̃; the corruptions are the layers of `zoo.layers.noise` applied with `training=True` and a
  fixed seed, so every model sees the same corrupted images;
- probe_accuracy: multinomial logistic regression (scikit-learn, standardized codes, C =
  `probe_c`) trained on the codes of `probe_train_size` training images, accuracy on the test
  codes; knn_accuracy: k-NN (Euclidean, raw codes) on the same sets;
- mean_activation (sparse): the mean over units j of ρ̂_j, the mean test-set activation of unit j,
  to compare with the target ρ;
- active_units (VAE): units j with Var_x(E_q[z_j | x]) > 0.01 over the test set (Burda et al., 2016);
- nll (VAE): −log p(x) in nats per image, estimated by importance sampling with q(z|x) as the
  proposal, log p(x) ≈ log (1/k)·Σ_i p(x, z_i)/q(z_i|x); neg_elbo: −(1/k)·Σ_i log p(x, z_i)/q(z_i|x)
  from the same k samples. Both on the test set as the model was trained on it (binarized once
  with the recipe's seed + 1 when the recipe binarizes).

Reconstruction, robustness and probes use the grayscale test images for every model, the common
yardstick; only the likelihood and the active units use the binarized copy.

Own data and the bundled datasets (`data.path`, digits, breast_cancer, sunspots, co2) are scored
the same way in the model's units (`zoo.data.splits.to_model_units`: pixels scaled to [0, 1],
table and series columns standardized with the training split's statistics), so mse is per
standardized feature there. PSNR and the corruptions apply to images only, the probes to
labelled data only; a metric that does not apply is left out of the row.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np

from zoo.checks import check_int, check_range
from zoo.data.catalog import TRAIN_SIZES
from zoo.evaluation.intervals import add_intervals
from zoo.io import write_json

# (kind, level): σ for "gaussian" (clipped to [0, 1]), the rate p for "salt_pepper" and "masking".
# The first level of each is the one the shipped denoising recipes train with.
CORRUPTIONS = (("gaussian", 0.3), ("gaussian", 0.5), ("salt_pepper", 0.2), ("salt_pepper", 0.4),
               ("masking", 0.3), ("masking", 0.5))


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """How a run is evaluated; recorded in evaluation.json and in the report.

    Attributes:
        nll_samples: k, importance samples per test image for the VAE's NLL.
        nll_examples: test images for the NLL and ELBO (0 = the whole test set).
        eval_examples: test images for every other metric (0 = the whole test set).
        probe_train_size: training images whose codes train the probes.
        probe_c: inverse L2 strength C of the logistic-regression probe.
        probe_max_iter: iterations of its L-BFGS solver.
        knn_k: neighbours of the k-NN probe.
        batch_size: images per forward pass.
        latency_batch_size: images per batch of the latency measurement.
        seed: seed of the probe subsample, the corruptions and the importance samples.
        bootstrap_resamples: B of the 95% bootstrap interval over test images of every metric
            that is a mean over them (PSNR, MSE, probe and k-NN accuracy): "<metric>_low" and
            "<metric>_high" (`zoo.evaluation.intervals`); 0 for none.
    """

    nll_samples: int = 1000
    nll_examples: int = 0
    eval_examples: int = 0
    probe_train_size: int = 10_000
    probe_c: float = 0.01
    probe_max_iter: int = 1000
    knn_k: int = 5
    batch_size: int = 500
    latency_batch_size: int = 256
    seed: int = 0
    bootstrap_resamples: int = 1000

    def __post_init__(self):
        for name in ("nll_samples", "probe_train_size", "probe_max_iter", "knn_k", "batch_size", "latency_batch_size"):
            check_int(name, getattr(self, name), 1)
        for name in ("nll_examples", "eval_examples", "seed", "bootstrap_resamples"):
            check_int(name, getattr(self, name), 0)
        check_range("probe_c", self.probe_c, 0.0, low_open=True)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "corruptions": [f"{k} {v:g}" for k, v in CORRUPTIONS]}


def corruption_column(kind: str, level: float) -> str:
    """The result column of one corruption, e.g. "psnr_gaussian_0.3"."""
    return f"psnr_{kind}_{level:g}"


def corruption_layer(kind: str, level: float, seed: int):
    """The `zoo.layers.noise` layer of one corruption; Gaussian noise is clipped to [0, 1]."""
    from zoo.layers.noise import make_noise

    params = {"gaussian": {"stddev": level, "clip": True}}.get(kind, {"rate": level})
    return make_noise({"kind": kind, **params, "seed": seed})


@dataclasses.dataclass
class EvalData:
    """The images every model is scored on (shared by all variants of a benchmark).

    Attributes:
        x_test, y_test: the grayscale test images and labels (the first `eval_examples`), in the
            model's units.
        x_probe, y_probe: the training images (and labels) whose codes train the probes (empty
            without labels).
        corrupted: column name → the corrupted x_test (empty for tables and series).
        preprocessing: the data's preprocessing spec: raw = `from_model_units(x_test, preprocessing)`.
        kind: images, table or series.
    """

    x_test: np.ndarray
    y_test: np.ndarray | None
    x_probe: np.ndarray
    y_probe: np.ndarray | None
    corrupted: dict
    preprocessing: dict = dataclasses.field(default_factory=lambda: {"kind": "none"})
    kind: str = "images"

    @property
    def labelled(self) -> bool:
        return self.y_test is not None and self.y_probe is not None and len(self.y_probe) > 0

    @property
    def bounded(self) -> bool:
        return self.preprocessing["kind"] != "standardize"

    def raw(self, x) -> np.ndarray:
        """Model-unit examples in the data's raw units (what a model is fed)."""
        from zoo.data.splits import from_model_units

        return from_model_units(x, self.preprocessing)


def prepare_data(arrays, settings: EvalSettings) -> EvalData:
    """Subsamples the probe set and corrupts the test set once, with `settings.seed`.

    `arrays` is a catalog dataset's `zoo.data.sources.Arrays` (grayscale images in [0, 1]) or the
    `zoo.data.splits.Splits` of any data (scored in the model's units, the probes trained on
    the fit split).
    """
    import tensorflow as tf

    if hasattr(arrays, "preprocessing"):
        return _prepare_splits(arrays, settings)
    n_test = settings.eval_examples or len(arrays.x_test)
    x_test, y_test = arrays.x_test[:n_test], arrays.y_test[:n_test]
    rng = np.random.default_rng(settings.seed)
    n_probe = min(settings.probe_train_size, len(arrays.x_train))
    idx = np.sort(rng.choice(len(arrays.x_train), n_probe, replace=False))
    return EvalData(x_test=x_test, y_test=y_test, x_probe=arrays.x_train[idx], y_probe=arrays.y_train[idx],
                    corrupted=corrupt_all(x_test, settings.seed, tf))


def _prepare_splits(splits, settings: EvalSettings) -> EvalData:
    import tensorflow as tf

    from zoo.data.splits import to_model_units

    spec = splits.preprocessing
    x_test, y_test = splits.test_arrays(settings.eval_examples)
    x_test = to_model_units(x_test, spec)
    if splits.labelled:
        rng = np.random.default_rng(settings.seed)
        n_probe = min(settings.probe_train_size, len(splits.x_fit))
        x_probe, y_probe = splits.fit_arrays(np.sort(rng.choice(len(splits.x_fit), n_probe, replace=False)))
        x_probe = to_model_units(x_probe, spec)
    else:
        x_probe, y_probe, y_test = x_test[:0], None, None
    corrupted = corrupt_all(x_test, settings.seed, tf) if splits.kind == "images" else {}
    return EvalData(x_test=x_test, y_test=y_test, x_probe=x_probe, y_probe=y_probe, corrupted=corrupted,
                    preprocessing=spec, kind=splits.kind)


def corrupt_all(x_test, seed: int, tf) -> dict:
    """Column name → `x_test` (images in [0, 1]) through each corruption of CORRUPTIONS."""
    n_test = len(x_test)
    corrupted = {}
    for i, (kind, level) in enumerate(CORRUPTIONS):
        layer = corruption_layer(kind, level, seed=seed * 1000 + i)
        corrupted[corruption_column(kind, level)] = np.concatenate(
            [np.asarray(layer(tf.constant(x_test[s: s + 1000]), training=True)) for s in range(0, n_test, 1000)])
    return corrupted


# Metrics on arrays.

def batched(fn, x, batch_size: int = 500, y=None) -> np.ndarray:
    """`fn` applied to `x` in batches, concatenated as a numpy array; with labels `y`, fn(x_batch, y_batch)."""
    if y is None:
        return np.concatenate([np.asarray(fn(x[s: s + batch_size])) for s in range(0, len(x), batch_size)])
    return np.concatenate([np.asarray(fn(x[s: s + batch_size], y[s: s + batch_size]))
                           for s in range(0, len(x), batch_size)])


def per_image_mse(x, x_hat) -> np.ndarray:
    diff = np.asarray(x, np.float64).reshape(len(x), -1) - np.asarray(x_hat, np.float64).reshape(len(x), -1)
    return (diff * diff).mean(axis=1)


def per_image_psnr(x, x_hat) -> np.ndarray:
    """10·log10(1 / mse_image) of every image, in dB; a perfect image counts as 100 dB."""
    return 10.0 * np.log10(1.0 / np.maximum(per_image_mse(x, x_hat), 1e-10))


def psnr(x, x_hat) -> float:
    """Mean over images of 10·log10(1 / mse_image), in dB; a perfect image counts as 100 dB."""
    return float(np.mean(per_image_psnr(x, x_hat)))


def reconstruction_metrics(x, x_hat, bounded: bool = True) -> dict:
    """mse, per-pixel binary cross-entropy and PSNR of reconstructions x̂ of x (both in [0, 1]);
    mse alone when not `bounded` (standardized values)."""
    if not bounded:
        return {"mse": float(per_image_mse(x, x_hat).mean())}
    x = np.asarray(x, np.float64)
    p = np.clip(np.asarray(x_hat, np.float64), 1e-7, 1 - 1e-7)
    bce = -(x * np.log(p) + (1 - x) * np.log1p(-p)).mean()
    return {"mse": float(per_image_mse(x, x_hat).mean()), "bce": float(bce), "psnr": psnr(x, x_hat)}


def linear_probe(train_codes, y_train, test_codes, y_test, c: float = 0.01, max_iter: int = 1000,
                 correct: list | None = None):
    """Test accuracy of a logistic regression on standardized codes, and whether L-BFGS converged.

    Returns (nan, False) when the codes are not finite (a diverged model). `correct`, a list,
    receives the 0/1 correctness of each test prediction (for a bootstrap interval).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    train_codes, test_codes = _flat(train_codes), _flat(test_codes)
    if not (np.all(np.isfinite(train_codes)) and np.all(np.isfinite(test_codes))):
        return math.nan, False
    scaler = StandardScaler().fit(train_codes)
    with warnings.catch_warnings(), single_thread():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression(C=c, max_iter=max_iter).fit(scaler.transform(train_codes), y_train)
        hits = clf.predict(scaler.transform(test_codes)) == np.asarray(y_test)
    if correct is not None:
        correct.append(hits)
    return float(hits.mean()), bool(np.max(clf.n_iter_) < max_iter)


def knn_accuracy(train_codes, y_train, test_codes, y_test, k: int = 5, correct: list | None = None) -> float:
    """Test accuracy of k-NN (Euclidean) on the codes; nan for non-finite codes. `correct`, a
    list, receives the 0/1 correctness of each test prediction."""
    from sklearn.neighbors import KNeighborsClassifier

    train_codes, test_codes = _flat(train_codes), _flat(test_codes)
    if not (np.all(np.isfinite(train_codes)) and np.all(np.isfinite(test_codes))):
        return math.nan
    with single_thread():
        clf = KNeighborsClassifier(n_neighbors=min(k, len(train_codes))).fit(train_codes, y_train)
        hits = clf.predict(test_codes) == np.asarray(y_test)
    if correct is not None:
        correct.append(hits)
    return float(hits.mean())


def single_thread():
    """Limits BLAS and OpenMP to one thread in a block.

    With TensorFlow's own threads alive in the process, two-thread BLAS in scikit-learn's
    solvers was measured 40× slower than one thread on a busy 2-core machine (62 s vs 1.4 s for
    one probe), the threads spinning against each other.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def _flat(codes) -> np.ndarray:
    codes = np.asarray(codes, np.float32)
    return codes.reshape(len(codes), -1)


def score_representation(encode, reconstruct, data: EvalData, settings: EvalSettings, *,
                         reconstruction: bool = True, test_codes=None, with_labels: bool = False) -> dict:
    """Reconstruction, robustness and probe metrics of any encoder/reconstructor pair.

    The trained models and the reference rows (`zoo.evaluation.baselines`) all go through this function.

    Args:
        encode: images → codes (numpy or tensors), applied in batches.
        reconstruct: images → reconstructions in [0, 1].
        data: the shared `EvalData`.
        settings: the `EvalSettings`.
        reconstruction: score the clean reconstruction (False for the identity "model").
        test_codes: codes of `data.x_test` if already computed.
        with_labels: encode and reconstruct take the examples' labels too, (x, y) (a model that
            takes labels, `Autoencoder.takes_labels`): the test images', also for their
            corrupted copies, and the probe images'. The probes then measure what the codes
            carry beyond the labels the model was given.
    """
    out, per_image = {}, {}  # per_image: column → its value on each test image (the intervals')
    b = settings.batch_size
    y_test, y_probe = (data.y_test, data.y_probe) if with_labels else (None, None)
    if reconstruction:
        x_hat = batched(reconstruct, data.x_test, b, y_test)
        out.update(reconstruction_metrics(data.x_test, x_hat, data.bounded))
        per_image["mse"] = per_image_mse(data.x_test, x_hat)
        if "psnr" in out:
            per_image["psnr"] = per_image_psnr(data.x_test, x_hat)
    for column, x_noisy in data.corrupted.items():
        per_image[column] = per_image_psnr(data.x_test, batched(reconstruct, x_noisy, b, y_test))
        out[column] = float(np.mean(per_image[column]))
    if data.corrupted:
        out["robust_psnr_mean"] = float(np.mean([out[c] for c in data.corrupted]))
    if data.labelled:
        train_codes = batched(encode, data.x_probe, b, y_probe)
        test_codes = batched(encode, data.x_test, b, y_test) if test_codes is None else test_codes
        probe_hits, knn_hits = [], []
        out["probe_accuracy"], out["probe_converged"] = linear_probe(
            train_codes, data.y_probe, test_codes, data.y_test, c=settings.probe_c, max_iter=settings.probe_max_iter,
            correct=probe_hits)
        out["knn_accuracy"] = knn_accuracy(train_codes, data.y_probe, test_codes, data.y_test, k=settings.knn_k,
                                           correct=knn_hits)
        per_image.update({"probe_accuracy": np.concatenate(probe_hits) if probe_hits else [],
                          "knn_accuracy": np.concatenate(knn_hits) if knn_hits else []})
    return add_intervals(out, per_image, resamples=settings.bootstrap_resamples, seed=settings.seed)


# One run.

def load_run(run):
    """(model, recipe, run_dir, metrics) of a run (anything with model, recipe, dir, metrics, as
    `zoo.fit` returns) or of a finished run directory."""
    if not isinstance(run, (str, Path)):
        return run.model, run.recipe, Path(run.dir), dict(run.metrics)
    import zoo.models  # noqa: F401  (registers the classes safe loading needs)
    from zoo.configs.recipe import load_recipe
    from zoo.training.run_dir import load_finished_model

    run_dir = Path(run)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"No run directory {run_dir}")
    for name in ("model.keras", "recipe.toml"):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"{run_dir} has no {name}: not a finished run (train it with `zoo fit`)")
    recipe = load_recipe(run_dir / "recipe.toml")
    model = load_finished_model(run_dir / "model.keras")
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    return model, recipe, run_dir, metrics


def budget(recipe, metrics: dict) -> dict:
    """What the run was given and what it cost: epochs, steps, samples seen, time, throughput."""
    train = recipe.train
    if "fit_examples" in metrics:
        n_fit = metrics["fit_examples"]
    else:  # runs written before metrics.json recorded it: the catalog's sizes
        from zoo.data.splits import validation_count

        n = TRAIN_SIZES[recipe.data.dataset]
        n_fit = n - validation_count(recipe.data.validation_size, n, True)
    steps = train.steps_per_epoch or -(-n_fit // train.batch_size)
    epochs = int(metrics.get("epochs", train.epochs))
    return {"epochs": epochs, "steps_per_epoch": steps, "batch_size": train.batch_size,
            "samples_seen": epochs * steps * train.batch_size, "seed": train.seed,
            "train_seconds": metrics.get("train_seconds_this_session"),
            "train_samples_per_second": metrics.get("train_samples_per_second"),
            "timed_epochs": metrics.get("timed_epochs")}


def inference_latency_ms(model, x, repeats: int = 20, warmup: int = 3, y=None) -> float:
    """Median milliseconds of one compiled inference call on the batch `x` (with labels `y`, for a
    model that takes them)."""
    import tensorflow as tf

    fn = tf.function(lambda t: model(t, training=False))
    x = tf.nest.map_structure(tf.constant, model.inputs_of(x, y))
    for _ in range(warmup):
        fn(x).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x).numpy()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000.0)


def evaluate_model(model, recipe, metrics: dict, data: EvalData, settings: EvalSettings):
    """The metric row of a trained model and its test codes (for figures); see `evaluate`."""
    import tensorflow as tf

    start = time.perf_counter()
    labels = model.takes_labels  # then every call carries the examples' labels (`Autoencoder.inputs_of`)
    if data.preprocessing["kind"] == "none":
        encode_graph = tf.function(model.encode, reduce_retracing=True)
        reconstruct_graph = tf.function(model.reconstruct, reduce_retracing=True)

        def to_raw(x):
            return x
    else:  # the data is held in the model's units: the model takes and returns raw units
        encode_graph = tf.function(model.encode, reduce_retracing=True)
        reconstruct_graph = tf.function(lambda inputs: model.normalize(model.reconstruct(inputs)),
                                        reduce_retracing=True)

        def to_raw(x):
            return model.denormalize(tf.constant(x))

    def encode(x, y=None):
        return encode_graph(model.inputs_of(to_raw(x), y))

    def reconstruct(x, y=None):
        return reconstruct_graph(model.inputs_of(to_raw(x), y))

    n_latency = settings.latency_batch_size
    row = {"name": recipe.name, "kind": "model", "family": recipe.model.family,
           "code_size": int(model.code_size), **budget(recipe, metrics),
           "parameters": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
           "latency_ms": inference_latency_ms(model, data.raw(data.x_test[:n_latency]),
                                              y=None if data.y_test is None else data.y_test[:n_latency]),
           "latency_batch_size": int(min(n_latency, len(data.x_test)))}
    test_codes = batched(encode, data.x_test, settings.batch_size, data.y_test if labels else None)
    row.update(score_representation(encode, reconstruct, data, settings, test_codes=test_codes, with_labels=labels))
    row.update(family_metrics(model, recipe, data, settings))
    row["eval_seconds"] = round(time.perf_counter() - start, 2)
    return row, test_codes


def family_metrics(model, recipe, data: EvalData, settings: EvalSettings) -> dict:
    """The family's own metrics (`Autoencoder.evaluation_metrics`) on the test set as the model
    was trained on it: binarized once with the recipe's seed + 1 when the recipe binarizes. The
    hook gets the model's inputs of those examples, `inputs_of(x, y)`: x itself unless the model
    takes labels. Per-example values the hook gives under `PER_EXAMPLE` become bootstrap
    intervals of their columns (e.g. nll_low, nll_high)."""
    from zoo.models.base import PER_EXAMPLE

    x = data.raw(data.x_test)
    binarize = recipe.data.binarize
    if binarize != "none":
        from zoo.data.sources import binarize_static

        x = binarize_static(x, recipe.train.seed + 1)
    out = dict(model.evaluation_metrics(model.inputs_of(x, data.y_test), settings))
    add_intervals(out, out.pop(PER_EXAMPLE, {}), resamples=settings.bootstrap_resamples, seed=settings.seed)
    if "nll" in out:
        out["nll_data"] = (f"binarized ({binarize}; test set sampled once, seed {recipe.train.seed + 1})"
                           if binarize != "none" else f"grayscale, {out.get('likelihood', '')} likelihood")
        if out.get("nll_of"):  # e.g. −log p(x|y) of a conditional model: not comparable with −log p(x)
            out["nll_data"] += f"; the NLL of {out['nll_of']}"
    return out


def evaluation_source(data, seed: int):
    """What `prepare_data` scores a recipe's runs on: a catalog dataset's grayscale `Arrays` (the
    common yardstick, unbinarized), or the `Splits` of any other data."""
    from zoo.data.catalog import DATASETS

    if not data.path and data.dataset in DATASETS:
        import zoo.data.sources as zdata

        return zdata.load_arrays(data.dataset, data_dir=data.data_dir or None, source=data.source)
    from zoo.data.splits import load_splits

    return load_splits(data, seed)


def evaluate(run, nll_samples: int = 1000, *, settings: EvalSettings | None = None, data: EvalData | None = None,
             write: bool = True, **setting_overrides) -> dict:
    """Evaluates a run on its dataset's test set and writes <run>/evaluation.json.

    Args:
        run: a run directory (holding model.keras and recipe.toml) or a `zoo.training.trainer.Run`.
        nll_samples: k of the VAE's importance-sampled NLL.
        settings: all evaluation settings (overrides `nll_samples` and `setting_overrides`).
        data: prepared test data to share between runs (`prepare_data`); built if None.
        write: write evaluation.json into the run directory.
        **setting_overrides: fields of `EvalSettings`, e.g. probe_train_size=5000.

    Returns:
        The metrics as a flat dict (see the module docstring), plus "settings".

    Raises:
        FileNotFoundError: not a finished run directory.
        ValueError: a bad setting.
    """
    if settings is None:
        unknown = set(setting_overrides) - {f.name for f in dataclasses.fields(EvalSettings)}
        if unknown:
            raise ValueError(f"Unknown evaluation setting {sorted(unknown)[0]!r}. "
                             f"Known: {', '.join(f.name for f in dataclasses.fields(EvalSettings))}")
        settings = EvalSettings(nll_samples=nll_samples, **setting_overrides)
    model, recipe, run_dir, metrics = load_run(run)
    if data is None:
        data = prepare_data(evaluation_source(recipe.data, recipe.train.seed), settings)
    row, _ = evaluate_model(model, recipe, metrics, data, settings)
    result = {**row, "run": str(run_dir), "settings": settings.to_dict()}
    if write:
        write_json(run_dir / "evaluation.json", result)
    return result
