"""A short multi-seed benchmark under a converged budget: runs per seed, rows averaged over them,
the stopping rule recorded, and the report's questions answered from those rows."""

import json
import math

import pytest

import zoo
from zoo.cli import main

SHORT = dict(steps_per_epoch=2, nll_samples=5, nll_examples=40, eval_examples=300, probe_train_size=300,
             progress=False, export=False)


@pytest.mark.slow
def test_two_seeds_converged_budget(tmp_path, monkeypatch):
    monkeypatch.setattr("zoo.evaluation.mppca.MPPCA_TRAIN", 1000)
    out = tmp_path / "bench"
    results = zoo.benchmark(["basic", "denoising_gaussian"], out=out, budget="converged=7", seeds=2, seed=3, **SHORT)

    rows = {r["name"]: r for r in results["rows"]}
    for name in ("basic", "denoising_gaussian"):
        seeds = [json.loads((out / "runs" / name / f"seed-{s}" / "evaluation.json").read_text()) for s in (3, 4)]
        assert [e["seed"] for e in seeds] == [3, 4]  # each run trained from its own seed
        row = rows[name]
        assert row["seeds"] == 2
        for column in ("psnr", "mse", "probe_accuracy", "psnr_gaussian_0.3"):
            values = [e[column] for e in seeds]
            assert row[column] == pytest.approx(sum(values) / 2)
            assert row[f"{column}_sd"] == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2))
        assert row["budget"] == "converged=7" and row["stop"] in ("early stopping", "epoch cap")
        assert (row["stop"] == "epoch cap") == (row["epochs"] == 7)
    assert rows["denoising_gaussian"]["train_noise"]["kind"] == "gaussian"
    assert "train_noise" not in rows["basic"]

    text = (out / "report.md").read_text()
    assert text.index("## Which autoencoder for what") < text.index("## Results")
    assert "denoising_gaussian on its own noise (gaussian 0.3)" in text
    assert "Values are mean ± standard deviation over the seeds." in text
    assert f"{rows['basic']['psnr']:.2f} ± {rows['basic']['psnr_sd']:.2f}" in text
    assert "budget converged (early stopping on validation objective, patience 5, cap 7 epochs), 2 seeds" in text
    assert (out / "figures" / "pareto.png").is_file() and "figures/pareto.png" in text
    assert results["settings"]["train_seeds"] == [3, 4]


@pytest.mark.parametrize("argv, fragment", [
    (["--budget", "weeks=2"], "--budget must be one of"),
    (["--budget", "epochs=2", "--epochs", "3"], "give --epochs or --budget, not both"),
    (["--seeds", "0"], "seeds must be"),
    (["--task", "anomaly", "--seeds", "2"], "--budget and --seeds apply to --task reconstruction"),
])
def test_bad_budget_options_are_one_line(argv, fragment, tmp_path, capsys):
    assert main(["bench", "basic", "--out", str(tmp_path / "b"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and "\n" not in err
    assert not (tmp_path / "b").exists()


def test_budget_and_seeds_are_recorded_in_the_command_line():
    from zoo.cli import _bench_argv, build_parser

    args = build_parser().parse_args(["bench", "basic", "--budget", "time=2", "--seeds", "3", "--no-export"])
    argv = _bench_argv(args)
    assert argv[:7] == ["zoo", "bench", "basic", "--budget", "time=2", "--seeds", "3"]
    assert "--epochs" not in argv
