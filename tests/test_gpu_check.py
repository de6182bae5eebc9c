"""benchmarks/gpu_check.py: its plan, its refusal without a GPU, and a smoke run of its quick plan on the CPU.

The smoke run is the real script in a subprocess (`--cpu --quick --steps 2`): every family
trained by `zoo fit` on one device and one mirrored over two logical CPU devices, three
throughput rows (each precision, XLA on and off, both batches), and the vae run exported and
checked by a child process through the TF1 loader and the LiteRT interpreter.
"""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import zoo

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_family_is_checked_with_its_own_recipe_or_the_first_of_its_family():
    gc = _module()
    recipes = {"basic": "basic", "denoising_masking": "denoising", "denoising_gaussian": "denoising",
               "conv_vae": "vae", "vae": "vae", "tabular_vae": "vae"}
    assert gc.family_recipes(["basic", "denoising", "vae", "sparse"], recipes) == {
        "basic": "basic", "denoising": "denoising_gaussian", "vae": "vae"}  # sparse: no recipe, no row


def test_the_full_plan_covers_every_family_strategy_and_grid_cell():
    gc = _module()
    families = {f: f for f in ("a", "b", "c")}
    rows = gc.plan(families, "b")
    fam = [(r["family"], r["strategy"]) for r in rows if r["kind"] == "family"]
    assert sorted(fam) == sorted((f, s) for f in families for s in ("one_device", "mirrored"))
    assert [r["family"] for r in rows if r["kind"] == "export"] == ["b"]
    # The export follows the one-device rows, whose run it exports.
    kinds = [r["kind"] for r in rows]
    assert kinds.index("export") == 3
    grid = {(r["recipe"], r["precision"], r["xla"], r["batch"]) for r in rows if r["kind"] == "throughput"}
    assert len(grid) == 2 * 3 * 2 * 2
    assert {b for *_, b in grid} == {128, gc.RECOMMENDED_BATCH}


def test_the_quick_plan_keeps_every_family_and_each_setting_once():
    gc = _module()
    families = {f: f for f in ("a", "b", "c")}
    rows = gc.plan(families, "c", quick=True)
    assert {r["family"] for r in rows if r["kind"] == "family" and r["strategy"] == "one_device"} == set(families)
    assert [r["family"] for r in rows if r["kind"] == "family" and r["strategy"] == "mirrored"] == ["a"]
    thr = [r for r in rows if r["kind"] == "throughput"]
    for key, values in (("recipe", gc.THROUGHPUT_RECIPES), ("precision", gc.PRECISIONS), ("xla", (False, True)),
                        ("batch", gc.BATCHES)):
        assert {r[key] for r in thr} == set(values), key


@pytest.mark.parametrize("steps, spe, cpu, expected", [
    (200, 20, False, (100, 20)),   # the GPU default: 100 steps per timed epoch, 5 calls of 20
    (30, 20, False, (20, 20)),     # 15 rounded up to a whole call
    (2, 20, False, (20, 20)),
    (2, 20, True, (1, 1)),         # --cpu caps steps_per_execution at the steps
    (9, 4, True, (8, 4)),          # 5 → two calls of 4
    (7, 1, True, (4, 1)),
])
def test_throughput_steps(steps, spe, cpu, expected):
    assert _module().throughput_steps(steps, spe, cpu) == expected


def test_without_a_gpu_it_exits_2_with_one_line(capsys, tmp_path):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible here")
    assert _module().main(["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no GPU visible" in err and "--cpu" in err
    assert not (tmp_path / "out").exists()


def _positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.mark.slow  # real data, a subprocess that trains 6 models, exports one and starts a child (about 50 s)
def test_quick_cpu_run_writes_every_family_and_a_passed_export(tmp_path):
    out = tmp_path / "check"
    done = subprocess.run([sys.executable, str(SCRIPT), "--cpu", "--quick", "--steps", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "gpu_check.json").read_text())
    assert result["mode"] == "cpu, quick" and result["passed"] is True
    rows = result["rows"]
    assert not [r for r in rows if r.get("skipped") or r.get("error")]
    one_device = {r["family"] for r in rows if r["kind"] == "family" and r["strategy"] == "one_device"}
    assert one_device == set(zoo.list_models())
    mirrored = [r for r in rows if r["kind"] == "family" and r["strategy"] == "mirrored"]
    assert len(mirrored) == 1 and mirrored[0]["replicas"] == 2  # two logical CPU devices
    for r in rows:
        if r["kind"] == "family":
            assert r["steps"] == 2 and len(r["loss"]) == 2
            assert all(_positive(v) for v in (r["samples_per_s"], r["seconds"], *r["loss"], r["test_loss"])), r
        if r["kind"] == "throughput":
            assert all(_positive(v) for v in (r["samples_per_s"], r["ms_per_step"], r["first_epoch_s"], *r["loss"])), r
    thr = [r for r in rows if r["kind"] == "throughput"]
    assert {r["precision"] for r in thr} == {"float32", "mixed_float16", "mixed_bfloat16"}
    (export,) = [r for r in rows if r["kind"] == "export"]
    assert export["passed"] and export["checked_on"] == ["CPU"]
    assert set(export["formats"]) == {"saved_model", "tflite"}
    saved = export["formats"]["saved_model"]
    assert {"serving_default", "encode", "decode"} <= set(saved["signatures"])
    for f in export["formats"].values():
        assert f["passed"] and max(f["max_rel_diff_vs_cpu_keras"].values()) <= f["tolerance"]
    assert Path(export["saved_model"], "saved_model.pb").is_file() and Path(export["tflite"]).is_file()
    text = (out / "gpu_check.md").read_text()
    assert text.strip() == done.stdout.strip()
    for family in zoo.list_models():
        assert f"| {family} |" in text
    assert "TF1 session loader" in text and "LiteRT interpreter" in text and "| NO |" not in text
