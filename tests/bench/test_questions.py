"""The report's answers, computed from hand-made rows whose right answers are known."""

from zoo.bench.questions import answers, answers_markdown, goals, noise_column, pareto_front


def rows():
    base = {"kind": "model", "code_size": 32}
    return [
        {**base, "name": "basic", "psnr": 17.0, "psnr_low": 16.9, "psnr_high": 17.1, "psnr_gaussian_0.3": 14.0,
         "psnr_masking_0.3": 13.0, "probe_accuracy": 0.80, "knn_accuracy": 0.82, "parameters": 50_000,
         "latency_ms": 2.0, "tflite_bytes": 200_000},
        {**base, "name": "denoising_gaussian", "psnr": 16.5, "psnr_low": 16.4, "psnr_high": 16.6,
         "psnr_gaussian_0.3": 16.5, "psnr_masking_0.3": 12.0, "train_noise": {"kind": "gaussian", "stddev": 0.3},
         "probe_accuracy": 0.84, "knn_accuracy": 0.81, "parameters": 50_000, "latency_ms": 1.5,
         "tflite_bytes": 210_000},
        {**base, "name": "denoising_masking", "psnr": 16.0, "psnr_masking_0.3": 14.5,
         "train_noise": {"kind": "masking", "rate": 0.3}, "parameters": 40_000, "latency_ms": 2.5},
        {**base, "name": "sparse", "code_size": 196, "psnr": 16.5, "mean_activation": 0.055, "rho": 0.05},
        {**base, "name": "vae", "psnr": 15.0, "nll": 250.0, "nll_data": "binarized"},
        {**base, "name": "vae2", "psnr": 14.0, "nll": 240.0, "nll_sd": 1.0, "nll_low": 239.0, "nll_high": 241.0,
         "nll_data": "binarized"},
        {"name": "raw-pixels", "kind": "reference", "family": "pixels", "code_size": 784, "probe_accuracy": 0.833,
         "knn_accuracy": 0.85},
        {"name": "ppca-32", "kind": "reference", "family": "ppca", "code_size": 32, "probe_accuracy": 0.81,
         "nll": -700.0, "nll_data": "grayscale"},
    ]


def test_answers_from_the_numbers():
    sections = dict(answers(rows()))
    recon = sections["Best reconstruction at a given code size"]
    assert recon[0].startswith("code size 32: **basic**, 17.00 [16.90, 17.10] dB; 0.50 dB over denoising_gaussian")
    assert "larger than the spread" in recon[0]  # [16.9, 17.1] and [16.4, 16.6] are disjoint
    assert recon[1].startswith("code size 196: **sparse**")
    codes = sections["Best codes for a linear probe and k-NN"]
    assert codes[0] == ("linear probe: **denoising_gaussian** (code size 32), 0.840; raw pixels 0.833 (+0.007); "
                        "PPCA-32 0.810 (+0.030)")
    assert codes[1].startswith("k-NN: **basic**") and "raw pixels 0.850 (-0.030)" in codes[1]
    robust = sections["Most robust to each noise"]
    assert "under gaussian 0.3: **denoising_gaussian**, 16.50 dB" in robust
    assert "under masking 0.3: **denoising_masking**, 14.50 dB" in robust
    gains = [line for line in robust if "on its own noise" in line]
    assert gains[0].startswith("denoising_gaussian on its own noise (gaussian 0.3): +2.50 dB over basic")
    assert gains[1].startswith("denoising_masking on its own noise (masking 0.3): +1.50 dB over basic")
    likelihood = sections["Best likelihood"]
    assert likelihood[0].startswith("**vae2**, 240.00 ± 1.00 nats per example (binarized); next vae 250.00")
    assert likelihood[1].startswith("**ppca-32**")  # scored on other data: its own group
    cheap = sections["Cheapest to serve"]
    assert cheap == ["fewest parameters: **denoising_masking**, 40,000", "lowest latency: **denoising_gaussian**, "
                     "1.50 ms per batch", "smallest TFLite file: **basic**, 200,000 bytes"]
    assert "**Goals**" in answers_markdown(rows())


def test_goals_met_and_not_met_with_margins():
    lines = goals(rows(), "basic")
    assert "denoising_gaussian ≥ 2 dB over basic on its own noise: met (+2.50 dB)" in lines
    assert "denoising_masking ≥ 2 dB over basic on its own noise: not met (+1.50 dB)" in lines
    probe = next(line for line in lines if "linear probe" in line)
    assert probe.endswith("met (best denoising_gaussian 0.840 vs 0.833, +0.007)")
    sparse = next(line for line in lines if line.startswith("sparse"))
    # ρ̂ 10% off ρ (within 20%), PSNR 0.50 dB below basic (within 1 dB): met
    assert ": met (ρ̂ = 0.0550 vs ρ = 0.05, 10% off; PSNR 0.50 dB below basic)" in sparse


def test_noise_column():
    assert noise_column({"kind": "salt_pepper", "rate": 0.2}) == "psnr_salt_pepper_0.2"
    assert noise_column(None) is None and noise_column({"kind": "gaussian"}) is None


def test_pareto_front_by_hand():
    # (cost, quality): (1, 1) and (2, 3) and (5, 4) are on the front; (3, 2) is dominated by (2, 3);
    # (5, 3.5) by (5, 4).
    points = [(5, 4), (3, 2), (1, 1), (2, 3), (5, 3.5)]
    assert pareto_front(points) == [2, 3, 0]
    assert pareto_front([(1, 1), (1, 1)]) == [0, 1]  # equal points do not dominate each other
