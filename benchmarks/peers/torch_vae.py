"""Peer of the speed benchmark: the reference VAE as a plain PyTorch training loop.

What a PyTorch user writes by hand, with nothing tuned: `nn.Sequential` MLPs, a shuffled index
permutation cut into batches each epoch, `torch.bernoulli` for the dynamic binarization, the
loss, `backward()`, `Adam.step()`. Eager mode (no `torch.compile`), torch's default threads.

The model is the zoo's reference VAE (`recipes/vae_reference.toml`) and the Keras peer's
(`keras_example_vae.py`): MLP 784-512-256 → z 32, mirrored decoder 32-256-512-784, ReLU,
Bernoulli likelihood on logits (binary cross-entropy summed over the pixels), Adam 1e-3,
batch 128, dynamically binarized Fashion-MNIST (`fmnist.py`).

Needs PyTorch, which the zoo's own environment does not install: on the project's machines
`pip install torch==2.13.0` takes the CPU build on disk (about 1 GB once installed), best in a
venv of its own, e.g.

    python3 -m venv /tmp/torch-venv && /tmp/torch-venv/bin/pip install torch==2.13.0 numpy
    EPOCHS=3 /tmp/torch-venv/bin/python benchmarks/peers/torch_vae.py
    python benchmarks/speed.py --peer torch --peer-python /tmp/torch-venv/bin/python

Prints one JSON line, like the Keras peer: steady-state training samples/s (the epochs after
the first) and the importance-sampled test NLL (K samples, the first NTEST test images binarized
once with numpy `default_rng(0)`). Environment: EPOCHS (3), BATCH (128), K (100; 0 skips the
NLL), NTEST (2000), NTRAIN (0 = all 60000), SEED (0), THREADS (0 = torch's default, one per core).

On a loaded machine (more runnable threads than cores) torch's default of one OpenMP thread per
core can slow this loop down several times over (seen here: 2,700 samples/s with THREADS=1,
450 with the default 2, on 2 cores at a load average of 6), so compare it on a quiet machine.
"""

import json
import math
import os
import sys
import time

import numpy as np

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - depends on the interpreter
    raise SystemExit(f"torch_vae.py: PyTorch is not importable by {sys.executable}; "
                     "pip install torch==2.13.0 (in a venv of its own), or run the Keras peer")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fmnist  # noqa: E402
import settings  # noqa: E402


_RUN = settings.common()
EPOCHS, BATCH, K, NTEST, NTRAIN, SEED = _RUN.epochs, _RUN.batch, _RUN.k, _RUN.ntest, _RUN.ntrain, _RUN.seed
THREADS = settings.env_int("THREADS", 0)  # 0: torch's default (one per core)

PIXELS = 28 * 28
HIDDEN = (512, 256)
LATENT_DIM = 32
LOG_2PI = math.log(2 * math.pi)


def mlp(sizes):
    """Linear layers of the given widths with ReLU between them (none after the last)."""
    parts = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        if i:
            parts.append(nn.ReLU())
        parts.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*parts)


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        # The encoder's last layer gives the mean and log-variance side by side.
        self.encoder = mlp([PIXELS, *HIDDEN, 2 * LATENT_DIM])
        self.decoder = mlp([LATENT_DIM, *reversed(HIDDEN), PIXELS])  # Bernoulli logits

    def posterior(self, x):
        h = self.encoder(x)
        return h[:, :LATENT_DIM], h[:, LATENT_DIM:]

    def negative_elbo(self, x):
        """Batch mean of -log p(x|z) + KL(q(z|x) || N(0, I)), one z per image."""
        mean, log_var = self.posterior(x)
        z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
        nll = F.binary_cross_entropy_with_logits(self.decoder(z), x, reduction="none").sum(dim=1)
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).sum(dim=1)
        return (nll + kl).mean(), nll.mean(), kl.mean()

    @torch.no_grad()
    def log_likelihood(self, x, k, batch=100):
        """Importance-sampled log p(x) of each image: log (1/k) Σ p(x|z_i) p(z_i) / q(z_i|x)."""
        batch = max(1, min(batch, 20000 // k))
        out = []
        for xb in x.split(batch):
            mean, log_var = self.posterior(xb)
            eps = torch.randn(k, *mean.shape)
            z = mean + torch.exp(0.5 * log_var) * eps  # (k, b, 32)
            logits = self.decoder(z.reshape(-1, LATENT_DIM)).reshape(k, len(xb), PIXELS)
            log_p_x_given_z = -F.binary_cross_entropy_with_logits(
                logits, xb.expand_as(logits), reduction="none").sum(-1)
            log_p_z = -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
            log_q_z = -0.5 * (eps.pow(2) + LOG_2PI + log_var).sum(-1)
            out.append(torch.logsumexp(log_p_x_given_z + log_p_z - log_q_z, dim=0) - math.log(k))
        return torch.cat(out).double().numpy()


def main() -> dict:
    torch.manual_seed(SEED)
    if THREADS:
        torch.set_num_threads(THREADS)
    x_train, _, x_test, _ = fmnist.load()
    if NTRAIN:
        x_train = x_train[:NTRAIN]
    x_train = torch.from_numpy(x_train.reshape(-1, PIXELS))
    model = VAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    seconds, losses = [], []
    start = time.perf_counter()
    for _ in range(EPOCHS):
        epoch_start = time.perf_counter()
        total = torch.zeros(3)
        model.train()
        for idx in torch.randperm(len(x_train)).split(BATCH):
            x = torch.bernoulli(x_train[idx])  # dynamic binarization
            loss, rec, kl = model.negative_elbo(x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += torch.stack([loss.detach(), rec.detach(), kl.detach()]) * len(idx)
        seconds.append(time.perf_counter() - epoch_start)
        losses.append((total / len(x_train)).tolist())
    train_s = time.perf_counter() - start
    steady = seconds[1:] or seconds

    result = {
        "peer": "plain PyTorch loop (benchmarks/peers/torch_vae.py)",
        "epochs": EPOCHS, "batch": BATCH, "n_train": len(x_train), "train_s": round(train_s, 2),
        "epoch_s": [round(s, 3) for s in seconds],
        "samples_per_s": round(len(x_train) * len(steady) / sum(steady)),
        "steady_epochs": len(seconds) - 1 if len(seconds) > 1 else 0,
        "final_train_loss": round(losses[-1][0], 2),
        "final_reconstruction_loss": round(losses[-1][1], 2),
        "final_kl_loss": round(losses[-1][2], 2),
        "test_nll": None, "test_nll_standard_error": None, "nll_samples": K, "n_test": 0,
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
    }
    if K:
        model.eval()
        x_bin = torch.from_numpy(fmnist.binarize_once(x_test, seed=0)[:NTEST].reshape(-1, PIXELS))
        eval_start = time.perf_counter()
        log_px = model.log_likelihood(x_bin, K)
        result.update(
            test_nll=round(float(-log_px.mean()), 2),
            test_nll_standard_error=(round(float(log_px.std(ddof=1) / np.sqrt(len(log_px))), 2)
                                     if len(log_px) > 1 else None),
            n_test=len(log_px), eval_s=round(time.perf_counter() - eval_start, 2),
        )
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
