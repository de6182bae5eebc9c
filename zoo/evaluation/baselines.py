"""Reference models that every autoencoder is measured against.

Two yardsticks, computed by the same evaluation code as the trained models
(`zoo.evaluation.evaluate.score_representation`):

- raw pixels: the linear probe and k-NN on the flattened image itself, and, for robustness,
  the PSNR of the corrupted input (what doing nothing achieves);
- probabilistic PCA with the latent size of a trained model: the linear-Gaussian latent
  variable model, fitted in closed form, with an exact test log-likelihood.

A third, the mixture of PPCA fitted by EM, lives in `zoo.evaluation.mppca` (`MixturePPCA`,
`mppca_reference`).

Example:
    >>> ppca = PPCA.fit(x_train, code_size=32)
    >>> ppca.log_likelihood(x_test).mean()      # nats per image, exact
    >>> ppca.reconstruct(x_test)                # W·E[z|x] + μ
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from zoo.checks import check_range


@dataclasses.dataclass(frozen=True)
class PPCA:
    """Probabilistic PCA (Tipping & Bishop, 1999): z ~ N(0, I_q), x | z ~ N(W z + μ, σ² I_D).

    The marginal is x ~ N(μ, C) with C = W Wᵀ + σ² I_D. With S the sample covariance and
    λ_1 ≥ … ≥ λ_D its eigenvalues (eigenvectors U), the maximum-likelihood fit is

        μ = the sample mean,  σ² = (1/(D−q))·Σ_{i>q} λ_i,  W = U_q (Λ_q − σ² I)^{1/2}

    (up to a rotation of the latent space, fixed here to the identity). The posterior is
    z | x ~ N(M⁻¹ Wᵀ (x − μ), σ² M⁻¹) with M = Wᵀ W + σ² I_q, and the code and the
    reconstruction are its mean and W·E[z|x] + μ.

    Attributes:
        mean: μ, shape (D,).
        weights: W, shape (D, q).
        sigma2: σ².
        eigenvalues: λ, all D of them, in decreasing order (those of S for a fitted model).
        shape: the shape of one example (images are flattened internally).
    """

    mean: np.ndarray
    weights: np.ndarray
    sigma2: float
    eigenvalues: np.ndarray
    shape: tuple

    @property
    def code_size(self) -> int:
        return self.weights.shape[1]

    @classmethod
    def fit(cls, x, code_size: int) -> "PPCA":
        """The maximum-likelihood PPCA of the examples `x` (shape (N, ...)) with q = `code_size`.

        Raises:
            ValueError: q outside [1, D−1], fewer than two examples, or data whose discarded
                eigenvalues are all zero (σ² = 0: the Gaussian model is degenerate).
        """
        return cls.from_moments(sample_moments(x), code_size)

    @classmethod
    def from_moments(cls, moments: dict, code_size: int) -> "PPCA":
        """The ML fit from `sample_moments(x)`, so several latent sizes share one eigendecomposition."""
        eigenvalues, eigenvectors = moments["eigenvalues"], moments["eigenvectors"]
        dim = len(eigenvalues)
        if not isinstance(code_size, int) or isinstance(code_size, bool):
            raise ValueError(f"code_size must be an integer. Received: code_size={code_size!r}")
        check_range("code_size", code_size, 1, dim - 1)
        sigma2 = float(eigenvalues[code_size:].mean())
        if not sigma2 > 1e-10 * max(float(eigenvalues[0]), np.finfo(float).tiny):  # zero up to round-off
            raise ValueError(f"PPCA: the {dim - code_size} discarded eigenvalues are all zero, so σ² = 0; "
                             f"choose a code_size below the rank of the data")
        weights = eigenvectors[:, :code_size] * np.sqrt(np.maximum(eigenvalues[:code_size] - sigma2, 0.0))
        return cls(mean=moments["mean"], weights=weights, sigma2=sigma2, eigenvalues=eigenvalues,
                   shape=moments["shape"])

    def _flat(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if tuple(x.shape[1:]) != self.shape and x.shape[1:] != (int(np.prod(self.shape)),):
            raise ValueError(f"PPCA was fitted to examples of shape {self.shape}. Received: {x.shape[1:]}")
        return x.reshape(len(x), -1)

    def _m(self) -> np.ndarray:
        return self.weights.T @ self.weights + self.sigma2 * np.eye(self.code_size)

    def covariance(self) -> np.ndarray:
        """C = W Wᵀ + σ² I, shape (D, D)."""
        return self.weights @ self.weights.T + self.sigma2 * np.eye(len(self.mean))

    def log_likelihood(self, x) -> np.ndarray:
        """Exact log N(x; μ, W Wᵀ + σ² I) per example, in nats (float64, shape (N,)).

        Uses C⁻¹ = (I − W M⁻¹ Wᵀ)/σ² and log|C| = (D − q)·log σ² + log|M|, so the cost is
        O(N·D·q) rather than a D×D factorization per call.
        """
        e = self._flat(x) - self.mean
        dim, q = e.shape[1], self.code_size
        m_chol = np.linalg.cholesky(self._m())
        projected = np.linalg.solve(m_chol, self.weights.T @ e.T)  # L⁻¹ Wᵀ e, so ‖·‖² = eᵀ W M⁻¹ Wᵀ e
        quad = ((e * e).sum(axis=1) - (projected * projected).sum(axis=0)) / self.sigma2
        log_det = (dim - q) * math.log(self.sigma2) + 2.0 * np.log(np.diag(m_chol)).sum()
        return -0.5 * (dim * math.log(2 * math.pi) + log_det + quad)

    def posterior(self, x):
        """The mean (N, q) and the covariance (q, q) of p(z | x), shared by all examples."""
        m_inv = np.linalg.inv(self._m())
        return (self._flat(x) - self.mean) @ self.weights @ m_inv.T, self.sigma2 * m_inv

    def encode(self, x) -> np.ndarray:
        """E[z | x], float32 (N, q)."""
        return self.posterior(x)[0].astype(np.float32)

    def decode(self, z) -> np.ndarray:
        """W z + μ in the examples' shape, float32."""
        z = np.asarray(z, dtype=np.float64)
        return (z @ self.weights.T + self.mean).reshape((len(z), *self.shape)).astype(np.float32)

    def reconstruct(self, x) -> np.ndarray:
        """W·E[z | x] + μ, from the posterior mean."""
        return self.decode(self.posterior(x)[0])

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """n draws of x ~ N(μ, C), deterministic given the seed."""
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((n, self.code_size))
        noise = math.sqrt(self.sigma2) * rng.standard_normal((n, len(self.mean)))
        return (z @ self.weights.T + self.mean + noise).reshape((n, *self.shape))


def sample_moments(x, chunk: int = 10_000) -> dict:
    """Mean, and eigenvalues (decreasing) and eigenvectors of the sample covariance S = (1/N)·Σ (x−μ)(x−μ)ᵀ."""
    from zoo.evaluation.evaluate import single_thread

    x = np.asarray(x)
    if x.ndim < 2 or len(x) < 2:
        raise ValueError(f"PPCA needs at least two examples of shape (N, ...). Received: shape={x.shape}")
    flat = x.reshape(len(x), -1)
    dim = flat.shape[1]
    mean = flat.mean(axis=0, dtype=np.float64)
    scatter = np.zeros((dim, dim))
    with single_thread():
        for start in range(0, len(flat), chunk):  # float64 in chunks: 60k×784 at once would be 376 MB
            centred = flat[start: start + chunk].astype(np.float64) - mean
            scatter += centred.T @ centred
        eigenvalues, eigenvectors = np.linalg.eigh(scatter / len(flat))
    order = np.argsort(eigenvalues)[::-1]
    return {"mean": mean, "eigenvalues": np.clip(eigenvalues[order], 0.0, None),
            "eigenvectors": eigenvectors[:, order], "shape": tuple(x.shape[1:])}


def pixel_codes(x) -> np.ndarray:
    """The raw-pixel "code": the flattened image, the input of the raw-pixel probes."""
    x = np.asarray(x, dtype=np.float32)
    return x.reshape(len(x), -1)


def raw_pixel_reference(data, settings) -> dict:
    """The raw-pixel row: linear probe and k-NN on pixels, PSNR of the corrupted inputs themselves.

    Args:
        data: a `zoo.evaluation.evaluate.EvalData`.
        settings: a `zoo.evaluation.evaluate.EvalSettings`.
    """
    from zoo.evaluation.evaluate import score_representation

    row = {"name": "raw-pixels", "kind": "reference", "family": "pixels",
           "code_size": int(np.prod(data.x_test.shape[1:]))}
    # The identity map: clean reconstruction is perfect (not reported), corrupted inputs are scored as they are.
    row.update(score_representation(pixel_codes, lambda x: np.asarray(x, np.float32), data, settings,
                                    reconstruction=False))
    return row


def ppca_reference(code_size: int, data, settings, moments: dict) -> dict:
    """The PPCA row for latent size `code_size`, fitted from `sample_moments(x_train)`, scored like a model.

    The log-likelihood is a density on grayscale pixels (nats per image), not comparable in
    value with a Bernoulli VAE's NLL on binarized pixels.
    """
    from zoo.evaluation.evaluate import score_representation

    ppca = PPCA.from_moments(moments, code_size)
    row = {"name": f"ppca-{code_size}", "kind": "reference", "family": "ppca", "code_size": code_size,
           "parameters": int(ppca.weights.size + ppca.mean.size + 1)}
    row.update(score_representation(ppca.encode, ppca.reconstruct, data, settings))
    row["nll"] = float(-ppca.log_likelihood(data.x_test).mean())
    row["nll_data"] = "grayscale, Gaussian density"
    row["sigma2"] = ppca.sigma2
    return row
