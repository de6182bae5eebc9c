"""Evaluation: test-set metrics of a trained model and the reference baselines (raw pixels, PPCA)."""
