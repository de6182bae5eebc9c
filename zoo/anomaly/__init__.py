"""Anomaly detection with a trained model: scores, calibrated thresholds, detection metrics, `zoo score`."""
