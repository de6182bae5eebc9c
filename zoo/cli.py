"""The `zoo` command: thin argument parsing over the library.

Every failure a user can cause or fix is one line on stderr, `zoo COMMAND: error: ...`, naming
the file, key or path and what is allowed or what to do, with an exit code (`zoo.errors`):
2 for bad input (a recipe, a flag, a missing or corrupt file, a run directory in use), 1 for
the environment (a full or read-only disk, a permission, memory), 3 for a diverged training.
No traceback and no usage block; only a genuine bug shows its traceback. `--debug` (anywhere
on the line) or `ZOO_DEBUG=1` re-raises every failure with its traceback.

Quiet and instant:

- `zoo --help`, `zoo <command> --help`, `zoo list` and argument errors never import TensorFlow
  or Keras: this module imports only the standard library and `zoo.registry`; the commands import what they
  need when they run (`LIGHT_COMMANDS` run without TensorFlow at all).
- TensorFlow's start-up lines never reach the terminal: a command that imports TensorFlow
  runs inside `zoo.quiet.quiet_tensorflow` (why and how: that module).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from zoo.errors import debugging, failure, first_line
from zoo.quiet import quiet_tensorflow
from zoo.registry import Registry

#: The subcommands: name → (help, a function that fills its subparser and returns the runner).
COMMANDS: Registry = Registry("command")


def command(name: str, help: str):
    """Registers a subcommand: the decorated function receives the subparser to fill and returns the runner."""

    def decorate(fn):
        COMMANDS.add(name, (help, fn))
        return fn

    return decorate


@command("list", "list the model families and the shipped recipes")
def _list(parser):
    def run(args):
        import zoo

        print("models:  " + ", ".join(zoo.list_models()))
        print("recipes: " + ", ".join(zoo.list_recipes()))

    return run


@command("fit", "train a recipe; prints the run directory as its last line")
def _fit(parser):
    parser.add_argument("recipe", help="a recipe file or the name of a shipped recipe")
    parser.add_argument("--epochs", type=int, help="override train.epochs")
    parser.add_argument("--steps-per-epoch", type=int, help="override train.steps_per_epoch (short runs)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one recipe value (repeatable), e.g. --set model.noise.rate=0.3")
    parser.add_argument("--data", metavar="SOURCE", help="train on this instead: a folder of images, a .npy/.npz, "
                                                         "a .csv/.parquet table (a series if the recipe sets "
                                                         "data.window), or a dataset name")
    parser.add_argument("--strategy", help="auto, one_device, mirrored, multi_worker or tpu")
    parser.add_argument("--out", help="run directory (default runs/<recipe name>)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="train a finished run further")
    group.add_argument("--overwrite", action="store_true", help="replace a finished run")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")

    def run(args):
        import zoo

        overrides = list(args.set)
        for flag, key in ((args.epochs, "epochs"), (args.steps_per_epoch, "steps_per_epoch"),
                          (args.strategy, "strategy")):
            if flag is not None:
                overrides.append(f"train.{key}={flag!r}" if isinstance(flag, str) else f"train.{key}={flag}")
        from zoo.training.trainer import early_strategy

        early_strategy(args.recipe, overrides)  # a multi-worker strategy must precede any TensorFlow work
        recipe = zoo.load_recipe(args.recipe, overrides=overrides, data=args.data)
        result = zoo.fit(recipe, out=args.out, resume=args.resume, overwrite=args.overwrite,
                            verbose=0 if args.quiet else "auto")
        shown = {k: v for k, v in result.metrics.items() if isinstance(v, float)}
        print("  ".join(f"{k}={v:.4g}" for k, v in sorted(shown.items())))
        print(result.dir)

    return run


@command("export", "export a run (or a .keras file) for TF Serving, LiteRT and ONNX; prints a report table")
def _export(parser):
    parser.add_argument("path", help="a run directory of `zoo fit` or a .keras file of a zoo model")
    parser.add_argument("--base", default="saved_models", help="export base directory (default saved_models)")
    parser.add_argument("--format", default="saved_model", help="saved_model (default), tflite, onnx or all")
    parser.add_argument("--quantize", help="TFLite: none, float16, dynamic_int8, int8 or all "
                                           "(default: all with --format all, else none)")
    parser.add_argument("--name", help="model name under the base directory (default: the recipe's name)")
    parser.add_argument("--calibration-data", metavar="FILE.npy", help="examples to calibrate int8 with "
                                                                       "(default: the run's training data)")
    parser.add_argument("--test-data", metavar="FILE.npy", help="examples for the report (default: the run's test set)")
    parser.add_argument("--latency-runs", type=int, default=100, help="runs of the single-example latency median")

    def run(args):
        import numpy as np

        from zoo.export import describe, export

        arrays = {}
        for key, file in (("representative_data", args.calibration_data), ("test_data", args.test_data)):
            if file is not None:
                try:
                    arrays[key] = np.load(file, allow_pickle=False)
                except (OSError, ValueError) as e:
                    raise ValueError(f"{file}: not a readable .npy array ({first_line(e)})") from None
        paths = export(args.path, base=args.base, format=args.format, quantize=args.quantize, name=args.name,
                       latency_runs=args.latency_runs, **arrays)
        print(describe(paths))

    return run


@command("evaluate", "evaluate a finished run on the test set; writes RUN/evaluation.json and prints a table")
def _evaluate(parser):
    parser.add_argument("run", help="a run directory of `zoo fit` (holding model.keras and recipe.toml)")
    parser.add_argument("--nll-samples", type=int, default=1000, metavar="K", help="importance samples of the VAE's NLL")
    parser.add_argument("--nll-examples", type=int, default=0, help="test images for the NLL (default 0: all)")
    parser.add_argument("--probe-train-size", type=int, default=10_000, help="training images that train the probes")

    def run(args):
        from rich.console import Console

        from zoo.evaluation.evaluate import evaluate
        from zoo.bench.report import evaluation_table

        result = evaluate(args.run, nll_samples=args.nll_samples, nll_examples=args.nll_examples,
                          probe_train_size=args.probe_train_size)
        Console().print(evaluation_table(result))
        print(os.path.join(args.run, "evaluation.json"))

    return run


@command("score", "score examples for anomalies with a finished run; writes a per-example table, prints a summary")
def _score(parser):
    parser.add_argument("run", help="a run directory of `zoo fit`")
    parser.add_argument("--data", metavar="SOURCE", help="what to score: a file, a folder or a dataset name, read with "
                                                         "the run's [data] settings (default: the run's test split)")
    parser.add_argument("--score", default="objective", help="objective (default), mse, mae, bce; elbo, nll for a VAE")
    parser.add_argument("--rule", default="quantile", help="threshold rule on held-out normal data: quantile "
                                                           "(default), sigma, contamination or max")
    parser.add_argument("--level", type=float, help="the rule's level: quantile q (0.95), sigma k (1), "
                                                    "contamination c (0.1)")
    parser.add_argument("--anomaly-labels", metavar="L1,L2", help="labels of the anomalous examples (for AUROC, ...)")
    parser.add_argument("--normal-labels", metavar="L1,L2", help="labels of the normal examples (the others are anomalies)")
    parser.add_argument("--out", metavar="FILE", help="the per-example table, .csv or .parquet (default RUN/scores.csv)")
    parser.add_argument("--nll-samples", type=int, default=100, metavar="K", help="importance samples of the nll score")
    parser.add_argument("--recalibrate", action="store_true", help="calibrate the threshold again")

    def run(args):
        import zoo

        def labels(text):
            return tuple(v.strip() for v in text.split(",") if v.strip()) if text else ()

        result = zoo.score(args.run, args.data, score=args.score, rule=args.rule, level=args.level,
                           anomaly_labels=labels(args.anomaly_labels), normal_labels=labels(args.normal_labels),
                           out=args.out, nll_samples=args.nll_samples, recalibrate=args.recalibrate)
        s = result.summary
        level = "" if s["level"] is None else f" {s['level']:g}"
        print(f"scored {s['examples']:,} examples of {s['data']}")
        print(f"threshold {s['threshold']:.6g} ({s['score']} score, {s['rule']}{level} on the {s['calibration_data']})")
        print(f"flagged {s['flagged']:,} ({100 * s['flagged_fraction']:.1f}%)")
        if "auroc" in s:
            print(f"AUROC {s['auroc']:.4f}  AUPRC {s['auprc']:.4f}  precision {s['precision']:.4f}  "
                  f"recall {s['recall']:.4f}  F1 {s['f1']:.4f}  ({s['anomalies']:,} anomalies)")
        print(result.path)

    return run


@command("bench", "fit, evaluate and export every recipe with one budget and seed; writes OUT/report.md")
def _bench(parser):
    parser.add_argument("recipes", nargs="*", metavar="RECIPE",
                        help="recipe names or files (default: the shipped Fashion-MNIST recipes; with --data, "
                             "every shipped recipe whose model can take the data)")
    parser.add_argument("--task", choices=("reconstruction", "anomaly"), default="reconstruction",
                        help="reconstruction (default): reconstruction, robustness, probes, likelihood; anomaly: "
                             "the one-class benchmark (each Fashion-MNIST class normal in turn, a table, a series)")
    parser.add_argument("--data", metavar="SOURCE", help="compare the variants on this instead: a folder of images, "
                                                         "a .npy/.npz, a .csv/.parquet table, or a dataset name")
    parser.add_argument("--data-set", action="append", default=[], metavar="KEY=VALUE",
                        help="a [data] setting for --data (repeatable), e.g. --data-set window=52")
    parser.add_argument("--epochs", type=int, help="epochs of every variant (default 10; 5 with --task anomaly)")
    parser.add_argument("--budget", metavar="RULE",
                        help="the training rule of every variant instead of --epochs: epochs=N, converged (early "
                             "stopping on validation loss, patience 5, cap 100 epochs), converged=CAP, or time=MIN "
                             "(minutes of training per variant)")
    parser.add_argument("--seeds", type=int, default=1, metavar="N",
                        help="training seeds per variant (seed, seed+1, ...); the report gives mean ± sd")
    parser.add_argument("--baseline", default=BENCH_BASELINE, metavar="RECIPE",
                        help="the variant noise-trained variants are compared with on their own noise (default basic)")
    parser.add_argument("--steps-per-epoch", type=int, help="steps per epoch of every variant (short runs)")
    parser.add_argument("--out", help="output directory (default bench; bench-anomaly with --task anomaly)")
    parser.add_argument("--nll-samples", type=int, metavar="K",
                        help="importance samples of the VAEs' NLL (default 1000; 10 for the nll score of "
                             "--task anomaly)")
    parser.add_argument("--nll-examples", type=int, default=0, help="test images for the NLL (default 0: all)")
    parser.add_argument("--probe-train-size", type=int, default=10_000, help="training images that train the probes")
    parser.add_argument("--seed", type=int, default=0, help="train.seed of every variant and the evaluation seed")
    parser.add_argument("--fresh", action="store_true", help="retrain runs that are already finished")
    parser.add_argument("--no-export", action="store_true", help="skip the export step")
    parser.add_argument("--classes", metavar="C1,C2", help="--task anomaly: the Fashion-MNIST classes that take turns "
                                                           "as the normal class (default 0,...,9)")
    parser.add_argument("--datasets", metavar="D1,D2", help="--task anomaly: fashion_mnist, breast_cancer, co2 "
                                                            "(default all three)")

    def run(args):
        import shlex

        _bench_defaults(args)
        if args.task == "anomaly":
            from zoo.bench.anomaly import anomaly_benchmark

            try:
                classes = tuple(int(v) for v in args.classes.split(",") if v.strip())
            except ValueError:
                raise ValueError(f"--classes takes comma-separated integers, e.g. 0,1,2. "
                                 f"Received: {args.classes!r}") from None
            if args.data is not None or args.data_set:
                raise ValueError("--data and --data-set apply to --task reconstruction; --task anomaly uses "
                                 "Fashion-MNIST, the breast-cancer table and the CO2 series")
            if args.budget is not None or args.seeds != 1:
                raise ValueError("--budget and --seeds apply to --task reconstruction; --task anomaly takes --epochs")
            anomaly_benchmark(args.recipes or None, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                              out=args.out, seed=args.seed, classes=classes,
                              nll_samples=args.nll_samples, tasks=args.datasets, fresh=args.fresh,
                              command=shlex.join(_bench_argv(args)))
        else:
            if args.classes is not None or args.datasets is not None:
                raise ValueError("--classes and --datasets apply to --task anomaly")
            from zoo.bench.budgets import parse_budget
            from zoo.bench.runner import benchmark

            if args.budget is not None and args.epochs_given:
                raise ValueError("give --epochs or --budget, not both (--budget epochs=N is --epochs N)")
            budget = parse_budget(args.budget if args.budget is not None else f"epochs={args.epochs}")
            benchmark(args.recipes or None, budget=budget, seeds=args.seeds, baseline=args.baseline,
                      steps_per_epoch=args.steps_per_epoch, out=args.out,
                      nll_samples=args.nll_samples, nll_examples=args.nll_examples,
                      probe_train_size=args.probe_train_size, seed=args.seed, fresh=args.fresh,
                      export=not args.no_export, command=shlex.join(_bench_argv(args)), data=args.data,
                      data_settings=args.data_set)
        print(os.path.join(args.out, "report.md"))

    return run


#: The recipe `zoo bench` compares noise-trained variants with on their own noise.
BENCH_BASELINE = "basic"


def _bench_defaults(args) -> None:
    """Fills the `zoo bench` options whose defaults depend on --task."""
    anomaly = getattr(args, "task", "reconstruction") == "anomaly"
    if not hasattr(args, "epochs_given"):
        args.epochs_given = getattr(args, "epochs", None) is not None
    for key, plain, one_class in (("epochs", 10, 5), ("out", "bench", "bench-anomaly"), ("nll_samples", 1000, 10)):
        if getattr(args, key, None) is None:
            setattr(args, key, one_class if anomaly else plain)
    if anomaly:
        args.classes = args.classes if args.classes is not None else ",".join(map(str, range(10)))
        if not isinstance(args.datasets, tuple):
            args.datasets = tuple(d.strip() for d in (args.datasets or "fashion_mnist,breast_cancer,co2").split(",")
                                  if d.strip())


def _bench_argv(args) -> list[str]:
    """The `zoo bench` command with every setting spelled out, as the report records it."""
    _bench_defaults(args)
    if getattr(args, "task", "reconstruction") == "anomaly":
        argv = ["zoo", "bench", "--task", "anomaly", *args.recipes, "--epochs", str(args.epochs)]
        if args.steps_per_epoch is not None:
            argv += ["--steps-per-epoch", str(args.steps_per_epoch)]
        argv += ["--out", args.out, "--nll-samples", str(args.nll_samples), "--seed", str(args.seed),
                 "--classes", args.classes, "--datasets", ",".join(args.datasets)]
        return argv + ["--fresh"] * args.fresh
    budget = ["--budget", args.budget] if getattr(args, "budget", None) is not None else ["--epochs", str(args.epochs)]
    argv = ["zoo", "bench", *args.recipes, *budget]
    if getattr(args, "seeds", 1) != 1:
        argv += ["--seeds", str(args.seeds)]
    if getattr(args, "baseline", BENCH_BASELINE) != BENCH_BASELINE:
        argv += ["--baseline", args.baseline]
    if args.data is not None:
        argv += ["--data", args.data] + [a for s in args.data_set for a in ("--data-set", s)]
    if args.steps_per_epoch is not None:
        argv += ["--steps-per-epoch", str(args.steps_per_epoch)]
    argv += ["--out", args.out, "--nll-samples", str(args.nll_samples), "--nll-examples", str(args.nll_examples),
             "--probe-train-size", str(args.probe_train_size), "--seed", str(args.seed)]
    return argv + ["--fresh"] * args.fresh + ["--no-export"] * args.no_export


@command("latent", "draw a latent-space figure of a finished run from its test split; prints the PNG written")
def _latent(parser):
    parser.add_argument("run", help="a run directory of `zoo fit` (holding model.keras and recipe.toml)")
    parser.add_argument("--figure", required=True, metavar="FIGURE",
                        help="interpolate (pairs of test examples; spherical for a Gaussian prior), traverse "
                             "(one dimension at a time), grid (2-D codes only) or tsne (codes coloured by label)")
    parser.add_argument("--out", metavar="FILE.png", help="the figure (default RUN/latent_<figure>.png)")
    parser.add_argument("--steps", type=int,
                        help="points per path (default 8), per dimension (7) or per grid axis (15)")
    parser.add_argument("--dims", metavar="0,1,2", help="traverse: latent dimensions (default the first 8)")
    parser.add_argument("--span", type=float,
                        help="traverse: values in [-S, S] (default 3; prior standard deviations for a Gaussian "
                             "prior); grid: the box [-S, S]²")
    parser.add_argument("--examples", type=int, help="interpolate: pairs (default 4); tsne: test codes (2000); "
                                                     "traverse, grid: test codes that set the spread or box (500)")

    def run(args):
        dims = None
        if args.dims is not None:
            try:
                dims = [int(v) for v in args.dims.split(",") if v.strip()]
            except ValueError:
                raise ValueError(f"--dims takes comma-separated latent dimensions, e.g. 0,1,2. "
                                 f"Received: {args.dims!r}") from None
        from zoo.evaluation.latent import write_latent_figure

        print(write_latent_figure(args.run, args.figure, out=args.out, steps=args.steps, dims=dims, span=args.span,
                                  examples=args.examples))

    return run


# Commands that never import TensorFlow: they run without the start-up filter.
LIGHT_COMMANDS = {"list"}


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: `zoo fit: error: <message> (see zoo fit --help)`, exit 2."""

    def error(self, message):
        message = " ".join(str(message).split())
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="zoo", description="A Keras model zoo of autoencoders.")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of any failure (also ZOO_DEBUG=1); allowed after the command too")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    runners, parsers = {}, {}
    for name, (help_text, fn) in COMMANDS.items():
        parsers[name] = sub.add_parser(name, help=help_text, description=help_text)
        runners[name] = fn(parsers[name])
    parser.set_defaults(_runners=runners, _parsers=parsers)
    return parser


def main(argv=None) -> int:
    """Runs `zoo ARGV...` and returns its exit code: 0, 2 for bad input, 1 for an environment
    failure, 3 for a diverged training, 130 when interrupted."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    debug = debugging() or "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] not in COMMANDS and not argv[0].startswith("-"):
        given = f"unknown command {argv[0]!r}" if argv else "no command given"
        print(f"zoo: error: {given}: choose one of {', '.join(COMMANDS.names())} (see zoo --help)", file=sys.stderr)
        return 2
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # named by the command they were given to, not by the top parser
            args._parsers[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as e:  # --help (0) or an argument error (2), already printed
        return e.code if isinstance(e.code, int) else 2
    quiet = contextlib.nullcontext() if args.command in LIGHT_COMMANDS else quiet_tensorflow()
    try:
        with quiet:
            args._runners[args.command](args)
    except KeyboardInterrupt:
        print(f"zoo {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as e:
        known = failure(e)
        if debug or known is None:
            raise  # --debug, or a bug: the traceback is what to report
        code, message = known
        print(f"zoo {args.command}: error: {message}", file=sys.stderr)
        return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
