"""Training: the trainer, strategies, the run directory, loops, sharding, callbacks and optimizers."""
