"""Detection metrics of scores against known anomalies (scikit-learn)."""

from __future__ import annotations

import numpy as np


def detection_metrics(scores, anomalous, threshold=None) -> dict:
    """AUROC and AUPRC (average precision) of `scores` for the 0/1 truth `anomalous`, and, with a
    threshold, precision, recall and F1 of "score > threshold". Anomalies are the positive class.

    Raises:
        ValueError: the truth holds one class only (AUROC is undefined), or lengths differ.
    """
    from sklearn.metrics import average_precision_score, precision_recall_fscore_support, roc_auc_score

    s, y = np.asarray(scores, np.float64).ravel(), np.asarray(anomalous).astype(bool).ravel()
    if len(s) != len(y):
        raise ValueError(f"{len(s)} scores but {len(y)} labels")
    if y.all() or not y.any():
        raise ValueError(f"AUROC needs both normal and anomalous examples; these {len(y)} are all "
                         f"{'anomalous' if y.all() else 'normal'}")
    out = {"auroc": float(roc_auc_score(y, s)), "auprc": float(average_precision_score(y, s)),
           "anomalies": int(y.sum()), "examples": int(len(y))}
    if threshold is not None:
        p, r, f, _ = precision_recall_fscore_support(y, s > threshold, average="binary", zero_division=0)
        out.update({"precision": float(p), "recall": float(r), "f1": float(f)})
    return out
