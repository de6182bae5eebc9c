"""Throughput and memory of training from an image folder against the same images in memory.

    python benchmarks/data_pipeline.py                          # N = 10,000, 5 epochs, batch 128, 3 rounds
    python benchmarks/data_pipeline.py --n 2000 --epochs 3 --rounds 1 --json /tmp/dp.json

The images: the first N Fashion-MNIST training images (`zoo.data.sources.load_arrays`), resized
to 32×32 with Pillow (bilinear) and made RGB, as uint8. They are written once under --workdir
as PNG files in class subfolders named by label (`fashion32_N/0/00000.png`, ...) and as an
.npz of the same uint8 array (N, 32, 32, 3) with its labels (`fashion32_N.npz`), in the order
in which the folder lists its files, so that both sources give the model the same examples and
the same splits. Reruns with the same N reuse them.

What it measures, every figure in one run on one machine (figures of different runs or machines
are not comparable):

(a) the folder pipeline alone: images per second that `ImageFiles.dataset(batch_size,
    shuffle=True, repeat=True)` yields, iterated for --batches batches, --pipeline-rounds times
    after --warmup batches (the median and the best round); for context the same for the
    in-memory pipeline `zoo.data.pipeline.make_dataset` on the .npz's images. Each runs in a
    child process with TensorFlow's threads set as `zoo fit` sets them here (batch shards:
    `zoo.training.sharding.setup_batch_shards("auto", ...)`); the child's CPU time per image
    over the timed rounds and its peak RSS are kept.
(b) the training step: `zoo fit RECIPE --data SOURCE --epochs E` (default recipe conv_vae,
    `--set train.batch_size=B`) once with the folder and once with the .npz, each in its own
    child process, alternating which goes first over --rounds rounds; the figure is the
    steady-state `train_samples_per_second` that `zoo.fit` writes to metrics.json (epochs
    after the first). The ratio pipeline / training says how far ahead of the step the folder
    pipeline runs (above 1: it is not the bottleneck), and folder / npz training what streaming
    the files costs the step. On a machine of few cores the decoding takes CPU time from the
    step even when it keeps ahead: the script also prints the folder rate expected if the two
    costs simply added, 1 / (1/npz training + 1/pipeline alone). metrics.json counts every
    step as a full batch (steps·batch_size samples an epoch), which is 1.3% more than the 7,200
    fit examples at N = 10,000; both sources have the same split, so their ratio is exact, and
    the JSON also holds the rate per fit example ("examples_per_second").
(c) the peak resident memory of each `zoo fit` child: `ru_maxrss` from `os.wait4` on that child
    (the largest of it and its own children: the zoo process and its small stderr filter), with
    the VmHWM last read from /proc while it ran as a cross-check; next to the bytes of the
    images themselves (N·32·32·3 as uint8 and as float32).

The machine may be shared: for every child the script records the share of the machine's CPU
time that other processes took meanwhile (the busy time of /proc/stat less the child's own
CPU time), prints it next to each figure, names the "quiet" rounds (both fits under 5%), and
warns when other processes took more than 10% of the whole run. Only quiet figures are those
of the machine alone.

Prints a markdown table and writes the results as JSON (--json, default WORKDIR/results.json).
The default run takes about 3 to 3.5 minutes on the project's two cores (plus about 5 s to write
the images the first time). Figures and their reading: docs/data.md, "Throughput and memory".
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from cli_startup import zoo_executable  # benchmarks/ is on the path when a script there runs

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
SIZE = 32  # the images' height and width
QUIET = 0.05  # a measurement is "quiet" when other processes took less than this share of the CPU


# ---------------------------------------------------------------------------------------------
# The images, written once


def make_images(n: int):
    """(uint8 images (n, 32, 32, 3), int64 labels (n,)): the first n Fashion-MNIST training images."""
    import numpy as np
    from PIL import Image

    from zoo.data.sources import load_arrays

    arrays = load_arrays("fashion_mnist")
    if n > len(arrays.x_train):
        sys.exit(f"--n {n}: Fashion-MNIST has {len(arrays.x_train)} training images")
    gray = np.round(arrays.x_train[:n, ..., 0] * 255).astype(np.uint8)
    images = np.stack([np.asarray(Image.fromarray(g, "L").resize((SIZE, SIZE), Image.BILINEAR).convert("RGB"))
                       for g in gray])
    return images, arrays.y_train[:n].astype(np.int64)


def prepare(workdir: Path, n: int) -> tuple[Path, Path, float]:
    """(folder, npz, seconds spent writing them; 0 when both were already there)."""
    import numpy as np
    from PIL import Image

    folder, npz = workdir / f"fashion32_{n}", workdir / f"fashion32_{n}.npz"
    done = folder / ".complete"
    if done.is_file() and npz.is_file():
        return folder, npz, 0.0
    start = time.perf_counter()
    images, labels = make_images(n)
    width = len(str(n - 1))
    partial = workdir / f".fashion32_{n}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    for label in np.unique(labels):
        (partial / str(label)).mkdir(parents=True)
    for i, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(image, "RGB").save(partial / str(label) / f"{i:0{width}d}.png")
    (partial / ".complete").write_text(f"{n}\n")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    # The folder's order: class folders by name ("0".."9" sort as the labels), then files by name.
    order = np.argsort(labels, kind="stable")
    tmp = workdir / f".fashion32_{n}.tmp.npz"
    np.savez(tmp, x=images[order], y=labels[order])
    tmp.rename(npz)
    return folder, npz, time.perf_counter() - start


# ---------------------------------------------------------------------------------------------
# Child processes, each measured on its own


def cpu_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds of this process and its reaped children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Watched:
    """A child process whose peak RSS is read by `os.wait4` (and VmHWM polled from /proc)."""

    def __init__(self, command, **kwargs):
        self.start, self.busy = time.perf_counter(), cpu_busy_seconds()
        self.proc = subprocess.Popen(command, **kwargs)
        self.hwm_kib = 0
        self._poller = threading.Thread(target=self._poll, daemon=True)
        self._poller.start()

    def _poll(self):
        status = f"/proc/{self.proc.pid}/status"
        while self.proc.returncode is None:
            try:
                with open(status) as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            self.hwm_kib = max(self.hwm_kib, int(line.split()[1]))
            except (OSError, ValueError):
                return
            time.sleep(0.2)

    def wait(self) -> dict:
        _, status, usage = os.wait4(self.proc.pid, 0)
        wall = time.perf_counter() - self.start
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        # The machine's busy time meanwhile less the child's own: what other processes took.
        others = max(0.0, cpu_busy_seconds() - self.busy - usage.ru_utime - usage.ru_stime)
        return {"rc": self.proc.returncode, "wall_s": round(wall, 2),
                "maxrss_mib": round(usage.ru_maxrss / 1024, 1),  # Linux: KiB
                "vmhwm_mib": round(self.hwm_kib / 1024, 1) if self.hwm_kib else None,
                "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
                "others_cpu_share": round(others / (wall * len(os.sched_getaffinity(0))), 3)}


def run_child(command, log: Path) -> dict:
    """Runs `command` with stdout and stderr to `log` (.out, .err); exits on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    out, err = log.with_suffix(".out"), log.with_suffix(".err")
    with open(out, "w") as stdout, open(err, "w") as stderr:
        result = Watched(command, cwd=ROOT, stdout=stdout, stderr=stderr, text=True).wait()
    result["stdout"] = out.read_text()
    if result["rc"] != 0:
        sys.exit(f"{' '.join(map(str, command))}: exit {result['rc']}\n{err.read_text()[-3000:]}")
    return result


def pipeline_child(args) -> None:
    """(the --child-pipeline mode) images/s of one pipeline, as one JSON line on stdout."""
    from zoo.training.sharding import setup_batch_shards

    shards = setup_batch_shards("auto", True)  # the threads `zoo fit` sets for conv_vae here
    import numpy as np

    if args.child_pipeline == "folder":
        from zoo.data.folders import read_folder

        start = time.perf_counter()
        files = read_folder(str(args.source)).x
        scan = time.perf_counter() - start
        ds = files.dataset(args.batch_size, shuffle=True, repeat=True)
    else:
        from zoo.data.pipeline import make_dataset

        scan = 0.0
        ds = make_dataset(np.load(args.source)["x"].astype(np.float32), batch_size=args.batch_size, shuffle=True,
                          repeat=True)
    it = iter(ds)
    for _ in range(args.warmup):
        next(it)
    rates, cpu, images = [], time.process_time(), 0
    for _ in range(args.pipeline_rounds):
        count, start = 0, time.perf_counter()
        for _ in range(args.batches):
            count += int(next(it).shape[0])
        rates.append(count / (time.perf_counter() - start))
        images += count
    cpu = time.process_time() - cpu  # every thread of this process (the prefetch runs a little ahead)
    print(json.dumps({"images_per_second": [round(r, 1) for r in rates], "scan_seconds": round(scan, 3),
                      "cpu_us_per_image": round(1e6 * cpu / images, 1), "batch_shards_threads": shards}))


def measure_pipeline(args, which: str, source: Path) -> dict:
    command = [sys.executable, __file__, "--child-pipeline", which, "--source", str(source),
               "--batch-size", str(args.batch_size), "--batches", str(args.batches), "--warmup", str(args.warmup),
               "--pipeline-rounds", str(args.pipeline_rounds)]
    result = run_child(command, Path(args.workdir) / "logs" / f"pipeline_{which}")
    out = json.loads(result["stdout"].strip().splitlines()[-1])
    rates = out["images_per_second"]
    return {"images_per_second_median": round(statistics.median(rates), 1), "images_per_second_best": max(rates),
            "rounds": rates, "scan_seconds": out["scan_seconds"], "cpu_us_per_image": out["cpu_us_per_image"],
            "others_cpu_share": result["others_cpu_share"], "maxrss_mib": result["maxrss_mib"],
            "wall_s": result["wall_s"]}


def measure_fit(args, zoo: str, which: str, source: Path, round_: int) -> dict:
    out = Path(args.workdir) / "runs" / f"{which}_{round_}"
    command = [zoo, "fit", args.recipe, "--data", str(source), "--epochs", str(args.epochs),
               "--set", f"train.batch_size={args.batch_size}", "--out", str(out), "--overwrite", "--quiet"]
    result = run_child(command, Path(args.workdir) / "logs" / f"fit_{which}_{round_}")
    metrics = json.loads((out / "metrics.json").read_text())
    steps = -(-metrics["fit_examples"] // args.batch_size)
    per_example = metrics["train_samples_per_second"] * metrics["fit_examples"] / (steps * args.batch_size)
    return {"source": which, "round": round_, "train_samples_per_second": metrics["train_samples_per_second"],
            "examples_per_second": round(per_example, 1),
            "timed_epochs": metrics["timed_epochs"], "train_seconds": metrics["train_seconds_this_session"],
            "fit_examples": metrics.get("fit_examples"), "data_source": metrics.get("data_source"),
            "maxrss_mib": result["maxrss_mib"], "vmhwm_mib": result["vmhwm_mib"], "wall_s": result["wall_s"],
            "cpu_s": result["cpu_s"], "others_cpu_share": result["others_cpu_share"], "command": " ".join(command)}


# ---------------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="images (default 10,000)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of each zoo fit, >= 3 (default 5)")
    parser.add_argument("--batch-size", type=int, default=128, help="batch size of pipeline and training (128)")
    parser.add_argument("--recipe", default="conv_vae", help="the recipe trained (default conv_vae)")
    parser.add_argument("--rounds", type=int, default=3, help="folder/npz training pairs, order alternating (3)")
    parser.add_argument("--batches", type=int, default=60, help="batches per timed pipeline round (60)")
    parser.add_argument("--pipeline-rounds", type=int, default=5, help="timed pipeline rounds (5)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed pipeline batches first (10)")
    parser.add_argument("--workdir", default="/tmp/zoo-data-pipeline", help="images, runs and results go here")
    parser.add_argument("--json", help="results file (default WORKDIR/results.json)")
    parser.add_argument("--child-pipeline", choices=("folder", "npz"), help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_pipeline is None:
        for name, low in (("n", 10), ("epochs", 3), ("batch_size", 1), ("rounds", 1), ("batches", 1),
                          ("pipeline_rounds", 1), ("warmup", 0)):
            if getattr(args, name) < low:
                parser.error(f"--{name.replace('_', '-')} must be >= {low}"
                             + (" (the steady state excludes the first epoch)" if name == "epochs" else ""))
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child_pipeline:
        return pipeline_child(args)
    zoo = zoo_executable()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    began = datetime.datetime.now(datetime.timezone.utc)
    t0, load0, busy0, own0 = time.perf_counter(), os.getloadavg(), cpu_busy_seconds(), own_cpu_seconds()
    folder, npz, written = prepare(workdir, args.n)
    print(f"images: {folder} and {npz}" + (f" (written in {written:.1f} s)" if written else " (reused)"), flush=True)

    pipe = {}
    for which, source in (("folder", folder), ("npz", npz)):
        pipe[which] = measure_pipeline(args, which, source)
        print(f"pipeline {which}: {pipe[which]['images_per_second_median']:,.0f} images/s (median; rounds "
              f"{', '.join(f'{r:,.0f}' for r in pipe[which]['rounds'])}; other processes "
              f"{100 * pipe[which]['others_cpu_share']:.0f}% of the CPU)", flush=True)

    fits = []
    for r in range(args.rounds):
        for which in (("folder", "npz") if r % 2 == 0 else ("npz", "folder")):
            fits.append(measure_fit(args, zoo, which, folder if which == "folder" else npz, r))
            f = fits[-1]
            print(f"fit {which} (round {r + 1}): {f['train_samples_per_second']:,.0f} samples/s, "
                  f"peak RSS {f['maxrss_mib']:,.0f} MiB, {f['wall_s']:.0f} s; other processes "
                  f"{100 * f['others_cpu_share']:.0f}% of the CPU", flush=True)

    def median_of(which, key):
        return statistics.median(f[key] for f in fits if f["source"] == which)

    train = {w: median_of(w, "train_samples_per_second") for w in ("folder", "npz")}
    rss = {w: median_of(w, "maxrss_mib") for w in ("folder", "npz")}
    pipeline_rate = pipe["folder"]["images_per_second_median"]
    ratio = pipeline_rate / train["folder"]
    # If the step and the decoding only shared the two cores, each image costing both its times:
    additive = 1 / (1 / train["npz"] + 1 / pipeline_rate)
    pixels = args.n * SIZE * SIZE * 3
    seconds = time.perf_counter() - t0
    # CPU time of other processes meanwhile: the machine's busy time less this script's and its children's.
    others = max(0.0, (cpu_busy_seconds() - busy0) - (own_cpu_seconds() - own0))
    rounds = [(f, g) for f in fits if f["source"] == "folder" for g in fits if g["source"] == "npz"
              and g["round"] == f["round"]]
    pairs = [(f["train_samples_per_second"], g["train_samples_per_second"]) for f, g in rounds]
    quiet = [r for r, (f, g) in enumerate(rounds) if max(f["others_cpu_share"], g["others_cpu_share"]) < QUIET]
    results = {
        "date": began.strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join([Path(sys.executable).name, "benchmarks/data_pipeline.py", *(argv or sys.argv[1:])]),
        "machine": {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version(),
                    "load_average_at_start": [round(x, 2) for x in load0]},
        "n": args.n, "epochs": args.epochs, "batch_size": args.batch_size, "recipe": args.recipe,
        "image_bytes": {"uint8": pixels, "float32": 4 * pixels},
        "pipeline": pipe,
        "fits": fits,
        "train_samples_per_second_median": train,
        "pipeline_over_training": round(ratio, 2),
        "folder_over_npz_training": round(train["folder"] / train["npz"], 3),
        "folder_over_npz_per_round": [round(a / b, 3) for a, b in pairs],
        "quiet_rounds": quiet,  # rounds whose two fits ran with other processes under QUIET of the CPU
        "pipeline_is_bottleneck": ratio < 1,
        "folder_training_if_costs_add": round(additive, 1),
        "peak_rss_mib_median": rss,
        "seconds_total": round(seconds, 1),
        "other_processes_cpu_seconds": round(others, 1),
        "other_processes_cpu_share": round(others / (seconds * len(os.sched_getaffinity(0))), 3),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    path = Path(args.json) if args.json else workdir / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")

    mib = 2 ** 20
    print()
    print(f"{results['date']}, N = {args.n:,} images of 32×32×3, {args.recipe}, batch {args.batch_size}, "
          f"{args.epochs} epochs, {args.rounds} round(s)")
    print()
    print("| source | pipeline alone, images/s (median; best) | training, samples/s (median; runs) "
          "| peak RSS of zoo fit, MiB (median; runs) |")
    print("|---|---|---|---|")
    for which in ("folder", "npz"):
        runs = [f for f in fits if f["source"] == which]
        speeds = ", ".join(f"{f['train_samples_per_second']:,.0f}" for f in runs)
        peaks = ", ".join(f"{f['maxrss_mib']:,.0f}" for f in runs)
        p = pipe[which]
        print(f"| {which} | {p['images_per_second_median']:,.0f} ({p['images_per_second_best']:,.0f}) "
              f"| {train[which]:,.0f} ({speeds}) | {rss[which]:,.0f} ({peaks}) |")
    print()
    verdict = "the bottleneck" if ratio < 1 else "not the bottleneck"
    print(f"pipeline / training (folder): {ratio:.1f}× — the pipeline is {verdict}; "
          f"training folder / npz: {results['folder_over_npz_training']:.3f} (if the decoding's time only added to "
          f"the step's: {additive:,.0f} samples/s, {additive / train['npz']:.3f}); per round "
          f"{', '.join(f'{r:.3f}' for r in results['folder_over_npz_per_round'])}; quiet rounds (other processes "
          f"< {100 * QUIET:.0f}% of the CPU in both fits): {', '.join(str(r + 1) for r in quiet) or 'none'}")
    print(f"folder pipeline CPU time: {pipe['folder']['cpu_us_per_image']:.0f} µs per image; load average at start "
          f"{results['machine']['load_average_at_start']}, at end {results['load_average_at_end']}; other processes "
          f"used {others:.0f} CPU-s ({100 * results['other_processes_cpu_share']:.0f}% of the machine) meanwhile")
    if results["other_processes_cpu_share"] > 0.1:
        print(f"warning: other processes used {100 * results['other_processes_cpu_share']:.0f}% of the machine's CPU "
              f"time during the run; its figures are not those of this machine alone: rerun when it is idle")
    print(f"the images: {pixels / mib:.1f} MiB as uint8, {4 * pixels / mib:.1f} MiB as float32; "
          f"peak RSS npz − folder: {rss['npz'] - rss['folder']:+,.0f} MiB")
    print(f"total {results['seconds_total']:.0f} s; results: {path}")


if __name__ == "__main__":
    main()
