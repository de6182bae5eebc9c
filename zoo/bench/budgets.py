"""How long every variant of a benchmark trains: the budget is one rule applied to all of them.

Three rules (`zoo bench --budget ...`):

    epochs=N        N passes over the training split for every variant (the quickstart's
                    smoke budget is epochs=1);
    converged[=C]   early stopping on the validation objective (the loss, or the loss at its
                    final weights when a KL warm-up anneals it: `Autoencoder.selection_metric`):
                    training stops after P = 5 epochs without a new best, or at the cap of C
                    epochs (default 100);
                    the model evaluated is the one at the stop (at most P epochs past the best);
    time=M          M minutes of training per variant (wall clock, this machine), stopping after
                    the last epoch expected to end within them (`zoo.training.callbacks.TimeBudget`),
                    with a cap of 100,000 epochs that no run reaches.

A budget is applied as `[train]` overrides of each recipe, so a run directory records exactly
what its variant was given; `stop_reason` tells from the epochs a run trained why it stopped.

Example:
    >>> budget = parse_budget("converged=60")
    >>> budget.overrides()
    ['train.epochs=60', 'train.early_stopping_patience=5']
"""

from __future__ import annotations

import dataclasses
import math

#: Epochs without a new best validation objective before a "converged" run stops.
CONVERGED_PATIENCE = 5
#: The epoch cap of "converged" when none is given.
CONVERGED_CAP = 100
#: The epoch cap of a time budget: large enough that the clock always stops the run first.
TIME_CAP = 100_000
KINDS = ("epochs", "converged", "time")
FORMS = "epochs=N, converged, converged=CAP or time=MINUTES"


@dataclasses.dataclass(frozen=True)
class Budget:
    """One training rule for every variant.

    Attributes:
        kind: "epochs", "converged" or "time".
        epochs: the epochs of "epochs", the cap of "converged" and "time".
        patience: epochs without improvement before a "converged" run stops (0 otherwise).
        minutes: the wall-clock minutes of "time" (0 otherwise).
    """

    kind: str
    epochs: int
    patience: int = 0
    minutes: float = 0.0

    def overrides(self) -> list[str]:
        """The `[train]` overrides that give a recipe this budget."""
        out = [f"train.epochs={self.epochs}",
               f"train.early_stopping_patience={self.patience}"]
        if self.kind == "time":
            out.append(f"train.max_minutes={self.minutes:g}")
        return out

    def describe(self) -> str:
        """One phrase for the report, e.g. "converged (patience 5, cap 100 epochs)"."""
        if self.kind == "epochs":
            return f"{self.epochs} epoch{'s' if self.epochs != 1 else ''}"
        if self.kind == "converged":
            return (f"converged (early stopping on validation objective, patience {self.patience}, "
                    f"cap {self.epochs} epochs)")
        return f"{self.minutes:g} min of training per variant"

    def spec(self) -> str:
        """The `--budget` text that gives this budget back."""
        if self.kind == "epochs":
            return f"epochs={self.epochs}"
        if self.kind == "converged":
            return "converged" if self.epochs == CONVERGED_CAP else f"converged={self.epochs}"
        return f"time={self.minutes:g}"

    def stop_reason(self, epochs_trained: int) -> str:
        """Why a run under this budget ended after `epochs_trained` epochs."""
        if self.kind == "epochs" or epochs_trained >= self.epochs:
            return "epoch budget" if self.kind == "epochs" else "epoch cap"
        return "early stopping" if self.kind == "converged" else "time budget"


def parse_budget(text: str) -> Budget:
    """The budget of a `--budget` value; ValueError (one line, with the allowed forms) otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"--budget must be one of {FORMS}. Received: {text!r}")
    kind, sep, value = text.strip().partition("=")
    kind = kind.strip()
    if kind not in KINDS:
        raise ValueError(f"--budget must be one of {FORMS}. Received: {text!r}")
    if kind == "converged" and not sep:
        return Budget("converged", CONVERGED_CAP, patience=CONVERGED_PATIENCE)
    if not sep or not value.strip():
        raise ValueError(f"--budget {kind}= needs a value ({FORMS}). Received: {text!r}")
    value = value.strip()
    if kind == "time":
        try:
            minutes = float(value)
        except ValueError:
            minutes = math.nan
        if not math.isfinite(minutes) or minutes <= 0:
            raise ValueError(f"--budget time=MINUTES takes a positive number of minutes. Received: {text!r}")
        return Budget("time", TIME_CAP, minutes=minutes)
    if not value.isdigit() or int(value) < 1 or int(value) > 2 ** 31 - 1:
        raise ValueError(f"--budget {kind}=N takes a whole number of epochs in [1, 2147483647]. Received: {text!r}")
    if kind == "converged":
        if int(value) <= CONVERGED_PATIENCE:
            raise ValueError(f"--budget converged=CAP needs a cap above the patience of {CONVERGED_PATIENCE} "
                             f"epochs. Received: {text!r}")
        return Budget("converged", int(value), patience=CONVERGED_PATIENCE)
    return Budget("epochs", int(value))
