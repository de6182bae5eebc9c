"""A mixture of probabilistic principal component analysers, fitted by EM (Tipping & Bishop, 1999).

The reference model beside `zoo.evaluation.baselines.PPCA`: where PPCA fits one linear-Gaussian
latent variable model, the mixture fits K of them and a discrete latent t choosing among them, so
it follows a curved data manifold with K local linear pieces.

Example:
    >>> mix = MixturePPCA(n_components=10, code_size=32).fit(x_train, seed=0)
    >>> mix.log_density(x_test).mean()          # nats per example, exact
    >>> mix.reconstruct(x_test)                 # by the responsible component
    >>> mix.log_likelihood_history              # non-decreasing, one entry per EM iteration
"""

from __future__ import annotations

import functools
import math

import numpy as np

from zoo.checks import check_int, check_range

LOG_2PI = math.log(2.0 * math.pi)


class MixturePPCA:
    """K PPCA components: p(x) = Σ_k π_k N(x | μ_k, C_k), C_k = V_k V_kᵀ + σ_k² I_D.

    The generative model, in the symbols of the source notes (V_k is `loadings[k]`, D × d):

        t ~ Categorical(π),  z ~ N(0, I_d),  x | z, t = k ~ N(V_k z + μ_k, σ_k² I_D),

    so p(X, Z, T | θ) = Π_i N(x_i | V_{t_i} z_i + μ_{t_i}, σ_{t_i}² I) N(z_i | 0, I) π_{t_i}, with
    θ = {π_k, μ_k, V_k, σ_k²}. Integrating z out, x | t = k ~ N(μ_k, C_k).

    E-step: q(z_i, t_i) = p(z_i, t_i | x_i, θ) = p(t_i | x_i) p(z_i | x_i, t_i). The first factor
    is the responsibility

        R_ik = π_k N(x_i | μ_k, C_k) / Σ_j π_j N(x_i | μ_j, C_j),

    the second is Gaussian, z_i | x_i, t_i = k ~ N(M_k⁻¹ V_kᵀ (x_i − μ_k), σ_k² M_k⁻¹) with
    M_k = V_kᵀ V_k + σ_k² I_d.

    M-step: E_{Z,T} log p(X, Z, T | θ) → max over θ, in the two stages of Tipping & Bishop
    (1999, appendix C). First π and μ, from the responsibilities:

        N_k = Σ_i R_ik,  π_k = N_k / n,  μ_k = Σ_i R_ik x_i / N_k;

    then V_k and σ_k², with the responsibility-weighted covariance
    S_k = (1/N_k) Σ_i R_ik (x_i − μ_k)(x_i − μ_k)ᵀ. Maximizing the seed's objective over them
    for the posterior of z fixed gives one EM step of PPCA on S_k:

        Ṽ_k = S_k V_k (σ_k² I + M_k⁻¹ V_kᵀ S_k V_k)⁻¹,
        σ̃_k² = (1/D) tr(S_k − S_k V_k M_k⁻¹ Ṽ_kᵀ).

    Near the optimum that step shrinks the relative error in the length of a column (whose square
    tends to λ − σ², λ an eigenvalue of S_k) by the factor 1 − 2σ²(λ − σ²)/λ² per iteration:
    close to 1 when σ² ≪ λ, so low-noise data need thousands of iterations (docs/ppca.md). This
    class takes a larger step on the same ascent. Both stages increase the expected complete-data log-likelihood with t
    alone missing, Σ_ik R_ik [log π_k + log N(x_i | μ_k, C_k)]; its component-k part is

        ℓ_k(V_k, σ_k²) = −(N_k/2)·(log|C_k| + tr(C_k⁻¹ S_k)) + const,

    and V_k, σ_k² maximize ℓ_k over V_k with columns in span{V_k, S_k V_k}, which contains both
    the current V_k and the step Ṽ_k (a block Krylov, Rayleigh–Ritz step): with U an orthonormal
    basis of that span and θ_1 ≥ … ≥ θ_d, Y the leading eigenpairs of Uᵀ S_k U,

        σ_k² = (tr S_k − Σ_{j≤d} θ_j)/(D − d),  V_k = U Y (Θ − σ_k² I)^{1/2},

    PPCA's closed form restricted to the span. ℓ_k is then at least what the plain step gives,
    so log p(X | θ) never decreases, in a few iterations where the plain step took thousands.
    S_k is never formed: S_k v = (1/N_k) Σ_i R_ik (x_i − μ_k)[(x_i − μ_k)ᵀ v] costs O(n D) per
    vector, O(n D d) per component and iteration; rows with R_ik = 0 are skipped.

    The exact log-likelihood uses the Woodbury identity and the matrix determinant lemma,
    C_k⁻¹ = (I − V_k M_k⁻¹ V_kᵀ)/σ_k² and log|C_k| = (D − d) log σ_k² + log|M_k|, so nothing of
    size D × D is inverted: O(n D K d) per E-step.

    Collapse guards, both constrained maxima of the M-step's objective (so the monotone ascent
    holds for the constrained problem): σ_k² ≥ `min_variance` · tr(S)/D, S the covariance of all
    the data (a component on fewer than d + 1 points would otherwise reach σ_k² → 0 and an
    unbounded likelihood), and π_k ≥ `min_weight` (the others rescaled to sum to 1 − Σ of the
    floored ones). A component with no responsibility left (N_k < 1e-10·n) keeps its μ_k, V_k, σ_k².

    Initialisation (seeded): k-means++ seeds, ten Lloyd iterations, then the closed-form
    maximum-likelihood PPCA of each cluster (the formulas of `zoo.evaluation.baselines.PPCA`);
    a cluster with fewer than d + 2 points takes the PPCA of all the data around its own mean.

    Args:
        n_components: K ≥ 1.
        code_size: d, the latent size of every component, 1 ≤ d < D.
        min_variance: the floor of σ_k² relative to the data's mean variance per dimension.
        min_weight: the floor of π_k, in [0, 1/K).

    Attributes (after `fit`):
        weights: π, shape (K,).
        means: μ_k, shape (K, D).
        loadings: V_k, shape (K, D, d).
        sigma2: σ_k², shape (K,).
        log_likelihood_history: mean log p(x_i | θ) per example (nats) at the initial parameters
            and after each EM iteration.
        n_iter: EM iterations run; converged: whether the last gain was below `tol`.
        shape: the shape of one example (examples are flattened internally).
    """

    def __init__(self, n_components: int, code_size: int, *, min_variance: float = 1e-6, min_weight: float = 1e-4):
        check_int("n_components", n_components, 1)
        check_int("code_size", code_size, 1)
        check_range("min_variance", min_variance, 0.0, low_open=True)
        check_range("min_weight", min_weight, 0.0, 1.0 / n_components, high_open=True)
        self.n_components, self.code_size = int(n_components), int(code_size)
        self.min_variance, self.min_weight = float(min_variance), float(min_weight)
        self.weights = self.means = self.loadings = self.sigma2 = None
        self.log_likelihood_history: list[float] = []
        self.n_iter, self.converged, self.shape = 0, False, None

    # Fitting.
    def fit(self, x, *, tol: float = 1e-6, max_iter: int = 200, seed: int = 0, init: MixturePPCA | None = None):
        """Fits θ by EM to the examples `x` (shape (n, ...)); returns self.

        Args:
            x: the training examples, finite.
            tol: stop when the gain in mean log-likelihood per example falls below
                tol · max(1, |log-likelihood|).
            max_iter: at most this many EM iterations.
            seed: seed of the k-means++ initialisation.
            init: start from this fitted mixture's parameters instead (same K, d and D).

        Raises:
            ValueError: d ≥ D, fewer examples than K, non-finite data, or bad tol / max_iter / init.
        """
        check_range("tol", tol, 0.0)
        check_int("max_iter", max_iter, 0)
        check_int("seed", seed, 0)
        flat = self._check_data(x)
        n, dim = flat.shape
        if not self.code_size < dim:
            raise ValueError(f"code_size must be in [1, {dim - 1}] for data of dimension D = {dim}. "
                             f"Received: code_size={self.code_size}")
        if n < self.n_components:
            raise ValueError(f"x must have at least n_components = {self.n_components} examples. Received: {n}")
        self.shape = tuple(np.shape(x)[1:])
        centre = flat.mean(axis=0)
        xc = flat - centre  # centred once: the expanded quadratic forms below then lose no precision
        self._floor = self.min_variance * max(float((xc * xc).sum()) / (n * dim), np.finfo(float).tiny)
        if init is not None:
            self._take(init, dim)
            means = init.means - centre
        else:
            means = self._initialise(xc, np.random.default_rng(seed))
        self.log_likelihood_history, self.converged = [], False
        log_r, log_px = self._e_step(xc, means)
        self.log_likelihood_history.append(float(log_px.mean()))
        for self.n_iter in range(1, max_iter + 1):
            means = self._m_step(xc, means, np.exp(log_r))
            log_r, log_px = self._e_step(xc, means)
            previous, current = self.log_likelihood_history[-1], float(log_px.mean())
            self.log_likelihood_history.append(current)
            if current - previous < tol * max(1.0, abs(current)):
                self.converged = True
                break
        self.means = means + centre
        return self

    def _check_data(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim < 2 or len(x) == 0:
            raise ValueError(f"x must have shape (n, ...) with n ≥ 1. Received: shape={x.shape}")
        flat = x.reshape(len(x), -1)
        bad = int((~np.isfinite(flat)).sum())
        if bad:
            raise ValueError(f"x must be finite. Received: {bad} NaN or infinite values among {flat.size}")
        return flat

    def _take(self, other: MixturePPCA, dim: int) -> None:
        if other.means is None or other.loadings.shape != (self.n_components, dim, self.code_size):
            got = None if other.means is None else other.loadings.shape
            raise ValueError(f"init must be a fitted MixturePPCA with loadings of shape "
                             f"{(self.n_components, dim, self.code_size)}. Received: {got}")
        self.weights, self.loadings = other.weights.copy(), other.loadings.copy()
        self.sigma2 = np.maximum(other.sigma2, self._floor)

    def _initialise(self, xc: np.ndarray, rng) -> np.ndarray:
        """k-means++ seeds and Lloyd iterations, then each cluster's closed-form PPCA; returns the means."""
        n, dim = xc.shape
        k, q = self.n_components, self.code_size
        sq = (xc * xc).sum(axis=1)
        centres = [xc[rng.integers(n)]]
        nearest = sq - 2 * xc @ centres[0] + centres[0] @ centres[0]
        for _ in range(1, k):
            p = np.maximum(nearest, 0.0)
            index = rng.choice(n, p=p / p.sum()) if p.sum() > 0 else rng.integers(n)
            centres.append(xc[index])
            nearest = np.minimum(nearest, sq - 2 * xc @ centres[-1] + centres[-1] @ centres[-1])
        centres = np.array(centres)
        for _ in range(10):
            label = np.argmin((centres * centres).sum(axis=1) - 2 * xc @ centres.T, axis=1)
            for j in range(k):
                if np.any(label == j):
                    centres[j] = xc[label == j].mean(axis=0)
        everything = None
        self.weights, self.loadings, self.sigma2 = np.empty(k), np.empty((k, dim, q)), np.empty(k)
        means = np.empty((k, dim))
        for j in range(k):
            members = xc[label == j]
            self.weights[j] = len(members) / n
            if len(members) >= q + 2:
                fit = self._ppca(members)
            else:
                everything = self._ppca(xc) if everything is None else everything
                fit = everything
            means[j] = members.mean(axis=0) if len(members) else centres[j]
            self.loadings[j], self.sigma2[j] = fit
        self.weights = self._floored_weights(self.weights)
        return means

    def _ppca(self, members: np.ndarray) -> tuple:
        """(V, σ²) of the closed-form maximum-likelihood PPCA of `members` (σ² floored)."""
        centred = members - members.mean(axis=0)
        eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred / len(members))
        order = np.argsort(eigenvalues)[::-1]
        eigenvalues, eigenvectors = np.maximum(eigenvalues[order], 0.0), eigenvectors[:, order]
        q = self.code_size
        sigma2 = max(float(eigenvalues[q:].mean()), self._floor)
        # V = U_d (Λ_d − σ² I)^{1/2}; a column kept slightly above zero, as EM cannot grow a zero column.
        return eigenvectors[:, :q] * np.sqrt(np.maximum(eigenvalues[:q] - sigma2, 1e-6 * sigma2)), sigma2

    def _floored_weights(self, counts: np.ndarray) -> np.ndarray:
        """argmax Σ_k N_k log π_k subject to Σ π_k = 1 and π_k ≥ min_weight (water-filling)."""
        counts = np.asarray(counts, dtype=np.float64)
        floored = np.zeros(len(counts), bool)
        while True:
            free = counts[~floored].sum()
            scale = (1.0 - floored.sum() * self.min_weight) / free if free > 0 else 0.0
            pi = np.where(floored, self.min_weight, counts * scale)
            newly = ~floored & (pi < self.min_weight)
            if not newly.any():
                return pi / pi.sum()
            floored |= newly

    # The two steps.
    def _log_components(self, xc: np.ndarray, means: np.ndarray):
        """(log N(x_i | μ_k, C_k) of shape (n, K), the projections x_iᵀ V_k of shape (K, n, d))."""
        n, dim = xc.shape
        k, q = self.n_components, self.code_size
        projections = (xc @ self.loadings.transpose(1, 0, 2).reshape(dim, k * q)).reshape(n, k, q).transpose(1, 0, 2)
        sq = (xc * xc).sum(axis=1)
        cross = xc @ means.T
        out = np.empty((n, k))
        for j in range(k):
            w, mu, s2 = self.loadings[j], means[j], self.sigma2[j]
            chol = np.linalg.cholesky(w.T @ w + s2 * np.eye(q))
            # Vᵀ(x − μ) = Vᵀx − Vᵀμ, then L⁻¹ Vᵀ(x − μ), so ‖·‖² = (x − μ)ᵀ V M⁻¹ Vᵀ (x − μ).
            white = np.linalg.solve(chol, (projections[j] - mu @ w).T)
            residual = sq - 2 * cross[:, j] + mu @ mu
            quad = (residual - (white * white).sum(axis=0)) / s2
            log_det = (dim - q) * math.log(s2) + 2.0 * np.log(np.diag(chol)).sum()
            out[:, j] = -0.5 * (dim * LOG_2PI + log_det + quad)
        return out, projections

    def _e_step(self, xc: np.ndarray, means: np.ndarray):
        """(log R_ik of shape (n, K), log p(x_i | θ) of shape (n,)); keeps x_iᵀ V_k for the M-step."""
        log_joint, self._projections = self._log_components(xc, means)
        log_joint += np.log(self.weights)
        log_px = _logsumexp(log_joint)
        return log_joint - log_px[:, None], log_px

    def _m_step(self, xc: np.ndarray, means: np.ndarray, r: np.ndarray) -> np.ndarray:
        n = len(xc)
        counts = r.sum(axis=0)
        self.weights = self._floored_weights(counts)
        means = means.copy()
        sq = (xc * xc).sum(axis=1)
        for j in range(self.n_components):
            if counts[j] < 1e-10 * n:
                continue
            # Rows with R_ik = 0 (underflowed: common in high dimension) add exactly nothing: skip them.
            rows = np.flatnonzero(r[:, j] > 0)
            rj, xj = r[rows, j] / counts[j], xc[rows]
            mu = rj @ xj
            times_s = functools.partial(_times_covariance, xj, rj, mu)
            trace_s = float(rj @ sq[rows] - mu @ mu)
            means[j] = mu
            self.loadings[j], self.sigma2[j] = self._loadings_step(
                self.loadings[j], self.sigma2[j], times_s(self.loadings[j], self._projections[j][rows]), trace_s,
                times_s)
        return means

    def _loadings_step(self, w, s2, sw, trace_s, times_s):
        """(V_k, σ_k²) maximizing the component's ℓ_k over V_k ∈ span{V_k, S_k V_k}; see the class docstring."""
        dim, q = w.shape
        floor = self._floor
        objective = self._component_objective
        # The plain step (Tipping & Bishop), a fallback should the span lose rank.
        m_inv = np.linalg.inv(w.T @ w + s2 * np.eye(q))
        w_em = np.linalg.solve((s2 * np.eye(q) + m_inv @ w.T @ sw).T, sw.T).T
        s2_em = max((trace_s - np.trace(m_inv @ w_em.T @ sw)) / dim, floor)
        basis = np.concatenate([w, sw], axis=1)
        _, singular, right_t = np.linalg.svd(basis, full_matrices=False)
        keep = singular > 1e-10 * singular[0]
        best = (w, s2, objective(w.T @ w, w.T @ sw, s2, trace_s, dim))
        if keep.sum() >= q:
            # U = B Q s⁻¹ is orthonormal and S U = [S V, S (S V)] Q s⁻¹: one more pass over the data.
            mix = right_t[keep].T / singular[keep]
            u = basis @ mix
            su = np.concatenate([sw, times_s(sw)], axis=1) @ mix
            theta, y = np.linalg.eigh(0.5 * (u.T @ su + su.T @ u))
            theta, y = theta[::-1][:q], y[:, ::-1][:, :q]
            s2_new = max((trace_s - theta.sum()) / (dim - q), floor)
            g = y * np.sqrt(np.maximum(theta - s2_new, 1e-6 * s2_new))
            candidate = (u @ g, s2_new, objective(g.T @ g, g.T @ (u.T @ su) @ g, s2_new, trace_s, dim))
        else:
            wtsw = w_em.T @ times_s(w_em)
            candidate = (w_em, s2_em, objective(w_em.T @ w_em, wtsw, s2_em, trace_s, dim))
        # Both steps increase ℓ_k in exact arithmetic; the comparison keeps round-off from undoing that.
        return candidate[:2] if candidate[2] >= best[2] else best[:2]

    @staticmethod
    def _component_objective(wtw, wtsw, s2, trace_s, dim) -> float:
        """−(log|C| + tr(C⁻¹ S)) for C = V Vᵀ + σ² I, from VᵀV, VᵀSV and tr S (∝ ℓ_k / N_k, up to a constant)."""
        q = len(wtw)
        m = wtw + s2 * np.eye(q)
        chol = np.linalg.cholesky(m)
        log_det = (dim - q) * math.log(s2) + 2.0 * np.log(np.diag(chol)).sum()
        return -(log_det + (trace_s - np.trace(np.linalg.solve(m, wtsw))) / s2)

    # Using a fitted mixture.
    def _flat(self, x) -> np.ndarray:
        if self.means is None:
            raise ValueError("MixturePPCA is not fitted: call fit(x) first")
        x = np.asarray(x, dtype=np.float64)
        if tuple(x.shape[1:]) != self.shape and x.shape[1:] != (self.means.shape[1],):
            raise ValueError(f"MixturePPCA was fitted to examples of shape {self.shape}. Received: {x.shape[1:]}")
        return x.reshape(len(x), -1)

    def _chunks(self, x, fn, chunk: int = 2000):
        flat = self._flat(x)
        return [fn(flat[s: s + chunk]) for s in range(0, len(flat), chunk)]

    def _log_joint(self, flat: np.ndarray) -> np.ndarray:
        return self._log_components(flat, self.means)[0] + np.log(self.weights)

    def log_density(self, x) -> np.ndarray:
        """Exact log p(x) = log Σ_k π_k N(x | μ_k, C_k) per example, in nats (float64, shape (n,))."""
        return np.concatenate(self._chunks(x, lambda f: _logsumexp(self._log_joint(f))))

    def responsibilities(self, x) -> np.ndarray:
        """R_ik = p(t = k | x_i), shape (n, K)."""
        def posterior(f):
            log_joint = self._log_joint(f)
            return np.exp(log_joint - _logsumexp(log_joint)[:, None])
        return np.concatenate(self._chunks(x, posterior))

    def posterior_means(self, x) -> np.ndarray:
        """E[z | x_i, t = k] = M_k⁻¹ V_kᵀ (x_i − μ_k) for every component, shape (n, K, d)."""
        def means(f):
            return np.stack([(f - self.means[j]) @ self.loadings[j] @ np.linalg.inv(self._m(j)).T
                             for j in range(self.n_components)], axis=1)
        return np.concatenate(self._chunks(x, means))

    def _m(self, j: int) -> np.ndarray:
        return self.loadings[j].T @ self.loadings[j] + self.sigma2[j] * np.eye(self.code_size)

    def encode(self, x) -> np.ndarray:
        """The code (R_i1 E[z|x_i, 1], …, R_iK E[z|x_i, K]), float32 (n, K·d): each component's
        posterior mean in its own block, weighted by its responsibility."""
        codes = self.responsibilities(x)[:, :, None] * self.posterior_means(x)
        return codes.reshape(len(codes), -1).astype(np.float32)

    def reconstruct(self, x) -> np.ndarray:
        """x̂_i = V_k E[z | x_i, t = k] + μ_k for the responsible component k = argmax_k R_ik.

        The posterior-mean variant (as `PPCA.reconstruct`), not the orthogonal projection onto
        the component's subspace: E[z|x, k] shrinks towards 0 by M_k⁻¹, so x̂ lies slightly inside.
        Float32, in the examples' shape.
        """
        def rebuild(f):
            k = np.argmax(self._log_joint(f), axis=1)
            out = np.empty_like(f)
            for j in np.unique(k):
                rows = f[k == j] - self.means[j]
                z = rows @ self.loadings[j] @ np.linalg.inv(self._m(j)).T
                out[k == j] = z @ self.loadings[j].T + self.means[j]
            return out
        flat = np.concatenate(self._chunks(x, rebuild))
        return flat.reshape((len(flat), *self.shape)).astype(np.float32)

    def parameter_count(self) -> int:
        """π, μ_k, V_k and σ_k² of every component."""
        k, dim, q = self.loadings.shape
        return int(k * (1 + dim + dim * q + 1))


def _times_covariance(x, r, mu, v, xv=None) -> np.ndarray:
    """S v = Σ_i r_i x_i (x_iᵀ v) − μ (μᵀ v) for weights r summing to 1 and μ = Σ_i r_i x_i, as
    Σ_i r_i (x_i − μ) = 0 then; `xv` is x v if already computed."""
    xv = x @ v if xv is None else xv
    return x.T @ (r[:, None] * xv) - np.outer(mu, mu @ v)


def _logsumexp(a: np.ndarray) -> np.ndarray:
    peak = a.max(axis=1)
    return peak + np.log(np.exp(a - peak[:, None]).sum(axis=1))


#: Components K of the bench's `mppca-K` rows.
MPPCA_COMPONENTS = (10,)
#: Training examples the bench's mixtures are fitted on (a seeded subsample of the references' set)
#: and the most EM iterations they get: the fit's cost is O(n D K d) per iteration (docs/ppca.md).
MPPCA_TRAIN = 10_000
MPPCA_MAX_ITER = 100


def mppca_reference(n_components: int, code_size: int, data, settings, x_train) -> dict:
    """The `mppca-K` row: a K-component mixture with latent size d = `code_size`, fitted by EM on
    at most `MPPCA_TRAIN` of `x_train` (seed `settings.seed`) in at most `MPPCA_MAX_ITER` EM
    iterations, scored like a model.

    The code is `MixturePPCA.encode`, the reconstruction is by the responsible component and the
    log-likelihood the exact test log-density (nats per example, like the PPCA rows).
    """
    import time

    from zoo.evaluation.evaluate import score_representation

    x_train = np.asarray(x_train)
    rng = np.random.default_rng(settings.seed)
    if len(x_train) > MPPCA_TRAIN:
        x_train = x_train[np.sort(rng.choice(len(x_train), MPPCA_TRAIN, replace=False))]
    start = time.perf_counter()
    mix = MixturePPCA(n_components, code_size).fit(x_train, seed=settings.seed, max_iter=MPPCA_MAX_ITER)
    seconds = time.perf_counter() - start
    row = {"name": f"mppca-{n_components}", "kind": "reference", "family": "mppca", "code_size": code_size,
           "parameters": mix.parameter_count()}
    row.update(score_representation(mix.encode, mix.reconstruct, data, settings))
    row["nll"] = float(-mix.log_density(data.x_test).mean())
    row["nll_data"] = "grayscale, Gaussian mixture density"
    row.update({"components": n_components, "train_examples": len(x_train), "em_iterations": mix.n_iter,
                "em_converged": mix.converged, "fit_seconds": round(seconds, 1)})
    return row
