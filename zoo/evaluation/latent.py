"""Latent-space tools for every family: interpolation, traversal, the 2-D grid and a t-SNE map.

They use only the hooks every model has — `encode`, `decode`, `code_size`, `normalize` and
`latent_prior` — so a new family gets them by being registered. A model whose `latent_prior` is
"gaussian" (codes under p(z) = N(0, I)) gets the prior's geometry: spherical interpolation,
traversal in prior standard deviations, the grid through the normal inverse CDF Φ⁻¹. Any other
model gets the plain geometry of its codes: straight lines, offsets around the example's own
code, a box over given codes' range.

Inputs and decoded outputs are in the data's raw units, as `encode` takes them and `decode`
returns them; the figures show images in the model's units ([0, 1] pixels).

A model that takes labels (`takes_labels`, e.g. a conditional VAE) is given the examples' labels
(`y_a`, `y_b`, `y`, ...) through `inputs_of` and `codes_of`: each code is decoded under its
example's label, the points of an interpolation under the label of the nearer end (x_a's up to
t = 1/2), the traversal under the example's label, and the grid under one label `y`. Other
models ignore labels.

Example:
    >>> path = zoo.interpolate(model, x_test[0], x_test[1], steps=8)
    >>> path.images.shape, path.method              # (8, 28, 28, 1), "spherical" for a VAE
    >>> walk = zoo.traverse(model, x_test[0], dims=[0, 1], span=3.0, steps=7)
    >>> save_traversal(model, walk, "traverse.png")
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from statistics import NormalDist

import numpy as np

from zoo.evaluation.evaluate import batched
from zoo.io import atomic_path

METHODS = ("linear", "spherical")
FIGURES = ("interpolate", "traverse", "grid", "tsne")
#: Below this sin Ω (Ω the angle between two codes) slerp's direction is undefined or numerically
#: unstable — parallel or antipodal codes — and the path is the straight line.
MIN_SIN_OMEGA = 1e-6
#: Mosaic layout, in pixels of the PNG: the white gap around and between tiles, the title strip.
PAD = 2
TITLE_PX = 16
TILE_PX = 48  # tiles are upscaled by an integer factor to about this size
TSNE_POINTS = 2000


@dataclasses.dataclass(frozen=True)
class Interpolation:
    """Decoded points on the paths between pairs of codes.

    Attributes:
        images: decodes, (steps, *input_shape) for one pair or (n, steps, *input_shape) for n pairs.
        codes: the codes decoded, (steps, d) or (n, steps, d); the first and last are exactly the
            codes of x_a and x_b.
        t: the path parameter of each step, from 0 to 1.
        method: "linear" or "spherical".
        labels: the label each code was decoded under, shaped like codes[..., 0], or None.
    """

    images: np.ndarray
    codes: np.ndarray
    t: np.ndarray
    method: str
    labels: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class Traversal:
    """Decodes of one code with one dimension at a time set across a range.

    Attributes:
        images: (len(dims), steps, *input_shape).
        codes: (len(dims), steps, d): the example's code with dimension dims[i] set to values[i].
        dims: the dimensions traversed.
        values: (len(dims), steps), the values given to each dimension.
        code: the example's own code, (d,).
    """

    images: np.ndarray
    codes: np.ndarray
    dims: tuple
    values: np.ndarray
    code: np.ndarray


@dataclasses.dataclass(frozen=True)
class LatentGrid:
    """Decodes over a regular grid of a 2-D code space.

    Attributes:
        images: (n, n, *input_shape); row i, column j decodes codes[i, j].
        codes: (n, n, 2) with codes[i, j] = (z0[j], z1[i]); z1 decreases down the rows, so the
            figure reads like a plot with z1 upwards.
        z0, z1: the grid's values along each axis, (n,) each.
    """

    images: np.ndarray
    codes: np.ndarray
    z0: np.ndarray
    z1: np.ndarray


# Codes.

def encode(model, x, batch_size: int = 500, y=None) -> np.ndarray:
    """The codes of the examples `x` (raw units, labels `y`), float32 (N, d), in batches."""
    def fn(xb, yb=None):
        return model.encode(model.inputs_of(xb, yb))

    return batched(fn, np.asarray(x, np.float32), batch_size, _labels(y, len(x))).astype(np.float32, copy=False)


def decode(model, z, batch_size: int = 500, y=None) -> np.ndarray:
    """The decodes of codes `z` (..., d) (labels `y` of shape z.shape[:-1], or one label), in the
    data's raw units, shape (..., *input_shape)."""
    z = np.asarray(z, np.float32)

    def fn(zb, yb=None):
        return model.decode(model.codes_of(zb, yb))

    flat_y = None if y is None else np.broadcast_to(np.asarray(y), z.shape[:-1]).reshape(-1)
    flat = batched(fn, z.reshape(-1, z.shape[-1]), batch_size, flat_y).astype(np.float32, copy=False)
    return flat.reshape(z.shape[:-1] + flat.shape[1:])


def _labels(y, n: int):
    """Labels of n examples: None, one label for all, or one each."""
    if y is None:
        return None
    y = np.asarray(y)
    return np.full(n, y) if y.ndim == 0 else y.reshape(-1)


def _examples(model, x, name: str) -> tuple[np.ndarray, bool]:
    """(batch, single): one example of the model's input shape becomes a batch of one."""
    x = np.asarray(x, np.float32)
    shape = tuple(model.input_shape_)
    if x.shape == shape:
        return x[None], True
    if x.shape[1:] == shape:
        return x, False
    raise ValueError(f"{name} must be one example of shape {shape} or a batch (N, {', '.join(map(str, shape))}). "
                     f"Received: shape {x.shape}")


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer ≥ {low}. Received: {name}={value!r}")
    return int(value)


def _check_span(span) -> float:
    if isinstance(span, bool) or not isinstance(span, (int, float)) or not math.isfinite(span) or span <= 0:
        raise ValueError(f"span must be a positive number. Received: span={span!r}")
    return float(span)


# Interpolation.

def lerp(a, b, t) -> np.ndarray:
    """(1 − t)·a + t·b for codes a, b (..., d) and parameters t (steps,): shape (..., steps, d)."""
    a, b, t = np.asarray(a, np.float64), np.asarray(b, np.float64), np.asarray(t, np.float64)
    return (1 - t)[:, None] * a[..., None, :] + t[:, None] * b[..., None, :]


def slerp(a, b, t) -> np.ndarray:
    """Spherical interpolation of codes a, b (..., d) at t (steps,): shape (..., steps, d).

    The direction moves at constant angular speed along the great circle from â = a/‖a‖ to
    b̂ = b/‖b‖ (Shoemake's slerp), sin((1 − t)Ω)/sin Ω·â + sin(tΩ)/sin Ω·b̂ with cos Ω = â·b̂,
    and the norm goes linearly from ‖a‖ to ‖b‖, so every point's norm lies between the
    endpoints'. For ‖a‖ = ‖b‖ it is White's (2016) slerp of the codes themselves. Pairs with
    sin Ω < MIN_SIN_OMEGA (parallel, antipodal) or a zero code take the straight line.
    """
    a, b, t = np.asarray(a, np.float64), np.asarray(b, np.float64), np.asarray(t, np.float64)
    norm_a, norm_b = np.linalg.norm(a, axis=-1, keepdims=True), np.linalg.norm(b, axis=-1, keepdims=True)
    safe_a, safe_b = np.where(norm_a > 0, norm_a, 1), np.where(norm_b > 0, norm_b, 1)
    cos = np.clip(np.sum(a / safe_a * (b / safe_b), axis=-1, keepdims=True), -1.0, 1.0)
    omega = np.arccos(cos)[..., None, :]  # (..., 1, 1)
    sin = np.sin(omega)
    degenerate = (sin < MIN_SIN_OMEGA) | (norm_a[..., None, :] == 0) | (norm_b[..., None, :] == 0)
    sin = np.where(degenerate, 1.0, sin)
    tt = t[:, None]
    direction = (np.sin((1 - tt) * omega) / sin * (a / safe_a)[..., None, :]
                 + np.sin(tt * omega) / sin * (b / safe_b)[..., None, :])
    radius = (1 - tt) * norm_a[..., None, :] + tt * norm_b[..., None, :]
    return np.where(degenerate, lerp(a, b, t), radius * direction)


def default_method(model) -> str:
    """"spherical" for a model whose codes have the Gaussian prior N(0, I), else "linear"."""
    return "spherical" if getattr(model, "latent_prior", None) == "gaussian" else "linear"


def interpolate(model, x_a, x_b, steps: int = 8, method: str | None = None, y_a=None, y_b=None) -> Interpolation:
    """Decodes along the path between the codes of x_a and x_b.

    Args:
        model: a zoo model.
        x_a, x_b: one example each (input_shape), or batches of n pairs (n, *input_shape).
        steps: points on each path, endpoints included (≥ 2).
        method: "linear", "spherical" (slerp, see `slerp`), or None: spherical when the model
            declares a Gaussian prior (`latent_prior == "gaussian"`), else linear.
        y_a, y_b: their labels, for a model that takes labels: x_a's code is encoded with y_a
            and the points with t ≤ 1/2 are decoded under it, the others under y_b.

    Returns:
        An `Interpolation`; its first and last codes are exactly encode(x_a) and encode(x_b).
    """
    steps = _check_int("steps", steps, 2)
    method = default_method(model) if method is None else method
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}. Received: method={method!r}")
    a, single = _examples(model, x_a, "x_a")
    b, _ = _examples(model, x_b, "x_b")
    if a.shape != b.shape:
        raise ValueError(f"x_a and x_b must hold as many examples. Received: {len(a)} and {len(b)}")
    ya, yb = _labels(y_a, len(a)), _labels(y_b, len(b))
    za, zb = encode(model, a, y=ya), encode(model, b, y=yb)
    t = np.linspace(0.0, 1.0, steps)
    codes = (slerp if method == "spherical" else lerp)(za, zb, t).astype(np.float32)
    codes[:, 0], codes[:, -1] = za, zb  # exact endpoints, whatever the rounding of the formula
    labels = None if ya is None or yb is None else np.where(t[None, :] <= 0.5, ya[:, None], yb[:, None])
    images = decode(model, codes, y=labels)
    if single:
        codes, images = codes[0], images[0]
        labels = None if labels is None else labels[0]
    return Interpolation(images=images, codes=codes, t=t, method=method, labels=labels)


# Traversal.

def check_dims(model, dims) -> tuple:
    """The latent dimensions `dims` as a tuple of ints in [0, code_size); None: the first min(d, 8)."""
    d = int(model.code_size)
    if dims is None:
        return tuple(range(min(d, 8)))
    dims = tuple(dims)
    bad = [j for j in dims if isinstance(j, bool) or not isinstance(j, (int, np.integer)) or not 0 <= j < d]
    if not dims or bad:
        raise ValueError(f"dims must be latent dimensions in [0, {d - 1}] (code_size={d}). "
                         f"Received: dims={','.join(map(str, dims)) or '(none)'}")
    return tuple(int(j) for j in dims)


def traverse(model, x, dims=None, span: float = 3.0, steps: int = 7, reference=None, y=None,
             reference_y=None) -> Traversal:
    """Decodes of the code of x with one latent dimension at a time set across a range.

    Each chosen dimension j takes `steps` values, the other dimensions keeping x's code:

    - Gaussian prior (`latent_prior == "gaussian"`): z_j = v for v evenly spaced in
      [−span, +span], in prior standard deviations around the prior mean 0;
    - otherwise: z_j = z_j(x) + v·s_j around the example's own code, with s_j the standard
      deviation of dimension j over the codes of `reference` (a batch of examples) if given,
      else s_j = 1 (absolute offsets in code units).

    Args:
        model: a zoo model.
        x: one example (input_shape) or a batch of one.
        dims: latent dimensions to traverse (default: the first min(code_size, 8)).
        span: half-width of the range (> 0).
        steps: values per dimension (≥ 2).
        reference: examples (N, *input_shape) whose codes' spread scales the offsets of a model
            without a Gaussian prior; ignored with one.
        y, reference_y: the labels of x and of `reference`, for a model that takes labels; every
            point is decoded under x's label.

    Returns:
        A `Traversal`.
    """
    steps, span, dims = _check_int("steps", steps, 2), _check_span(span), check_dims(model, dims)
    batch, _ = _examples(model, x, "x")
    if len(batch) != 1:
        raise ValueError(f"traverse takes one example. Received: a batch of {len(batch)}")
    code = encode(model, batch, y=y)[0]
    offsets = np.linspace(-span, span, steps)
    if default_method(model) == "spherical":
        values = np.tile(offsets, (len(dims), 1))
    else:
        spread = np.ones(code.shape)
        if reference is not None:
            spread = encode(model, _examples(model, reference, "reference")[0], y=reference_y).std(axis=0)
        values = code[list(dims), None] + offsets[None, :] * spread[list(dims), None]
    codes = np.tile(code, (len(dims), steps, 1))
    for i, j in enumerate(dims):
        codes[i, :, j] = values[i]
    label = None if y is None else _labels(y, 1)[0]
    return Traversal(images=decode(model, codes, y=label), codes=codes, dims=dims, values=values.astype(np.float32),
                     code=code)


# The 2-D grid.

def latent_grid(model, n: int = 15, span: float | None = None, codes=None, margin: float = 0.05, y=None,
                codes_y=None) -> LatentGrid:
    """Decodes over an n × n grid of a 2-D code space.

    The grid's values along each axis:

    - `span` given: n values evenly spaced in [−span, +span], for any model;
    - Gaussian prior (`latent_prior == "gaussian"`): Φ⁻¹(p) for p evenly spaced in
      [margin, 1 − margin], Φ the standard normal CDF — equal prior mass between neighbours,
      as in Kingma & Welling's (2014) figures of 2-D latent spaces;
    - otherwise: n values evenly spaced over the range of `codes` (examples whose codes set
      the box, per axis).

    A model that takes labels decodes every point under the one label `y` (and encodes `codes`
    with their labels `codes_y`).

    Raises:
        ValueError: a code size other than 2, or neither a Gaussian prior, `span` nor `codes`.
    """
    d = int(model.code_size)
    if d != 2:
        raise ValueError(f"the latent grid needs a 2-D code; this model has code_size={d} "
                         f"(interpolate, traverse and tsne work for any size)")
    n = _check_int("n", n, 2)
    if span is not None:
        span = _check_span(span)
        axes = [np.linspace(-span, span, n)] * 2
    elif default_method(model) == "spherical":
        if not 0 < margin < 0.5:
            raise ValueError(f"margin must be in (0, 0.5). Received: margin={margin!r}")
        inverse = NormalDist().inv_cdf
        axes = [np.array([inverse(p) for p in np.linspace(margin, 1 - margin, n)])] * 2
    elif codes is not None:
        z = encode(model, _examples(model, codes, "codes")[0], y=codes_y)
        axes = [np.linspace(z[:, k].min(), z[:, k].max(), n) for k in range(2)]
    else:
        raise ValueError("latent_grid of a model without a Gaussian prior needs span= or codes= "
                         "(examples whose codes' range sets the box)")
    z0, z1 = axes[0], axes[1][::-1]
    grid = np.stack(np.meshgrid(z0, z1), axis=-1).astype(np.float32)  # grid[i, j] = (z0[j], z1[i])
    return LatentGrid(images=decode(model, grid, y=y), codes=grid, z0=z0, z1=z1)


# t-SNE.

def tsne(codes, labels=None, max_points: int = TSNE_POINTS, seed: int = 0):
    """A 2-D t-SNE embedding (scikit-learn) of at most `max_points` codes, drawn with `seed`.

    Returns:
        (embedding (m, 2), labels of those points or None).
    """
    from sklearn.manifold import TSNE

    from zoo.evaluation.evaluate import single_thread

    codes = np.asarray(codes, np.float32).reshape(len(codes), -1)
    if len(codes) < 3:
        raise ValueError(f"t-SNE needs at least 3 codes. Received: {len(codes)}")
    rng = np.random.default_rng(seed)
    index = np.sort(rng.choice(len(codes), min(max_points, len(codes)), replace=False))
    perplexity = min(30.0, (len(index) - 1) / 3)
    with single_thread():
        embedding = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
            codes[index])
    return embedding, None if labels is None else np.asarray(labels)[index]


# Figures.

def data_kind(model) -> str:
    """images, series or table, from the rank of the model's input shape."""
    return {3: "images", 2: "series"}.get(len(model.input_shape_), "table")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _tile_scale(h: int, w: int) -> int:
    return max(1, round(TILE_PX / max(h, w)))


def mosaic_size(rows: int, cols: int, image_shape, title: bool = True) -> tuple[int, int]:
    """(width, height) in pixels of the PNG `save_mosaic` writes for rows × cols images."""
    h, w = image_shape[:2]
    s = _tile_scale(h, w)
    return cols * (w * s + PAD) + PAD, rows * (h * s + PAD) + PAD + (TITLE_PX if title else 0)


def save_mosaic(images, path, title: str = "") -> Path:
    """Writes images (rows, cols, H, W, C) in [0, 1] as one PNG: tiles upscaled by an integer
    factor, PAD white pixels around and between them, the title in a strip on top."""
    plt = _pyplot()
    images = np.clip(np.nan_to_num(np.asarray(images, np.float32)), 0, 1)
    rows, cols, h, w, c = images.shape
    s = _tile_scale(h, w)
    rgb = images[..., :3] if c >= 3 else np.repeat(images[..., :1], 3, axis=-1)
    rgb = rgb.repeat(s, axis=2).repeat(s, axis=3)
    width, height = mosaic_size(rows, cols, (h, w), title=bool(title))
    canvas = np.ones((height - (TITLE_PX if title else 0), width, 3), np.float32)
    for i in range(rows):
        for j in range(cols):
            y, x = PAD + i * (h * s + PAD), PAD + j * (w * s + PAD)
            canvas[y: y + h * s, x: x + w * s] = rgb[i, j]
    dpi = 100
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    fig.figimage(canvas, xo=0, yo=0, origin="upper")
    if title:
        fig.text(PAD / width, 1 - 2 / height, title, ha="left", va="top", fontsize=7)
    return _save(fig, path, dpi)


def _save(fig, path, dpi=100) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    _pyplot().close(fig)
    return path


def _display(model, images) -> np.ndarray:
    """Images in the model's units ([0, 1] pixels), for drawing."""
    images = np.asarray(images, np.float32)
    flat = images.reshape(-1, *images.shape[-3:])
    return np.asarray(model.normalize(flat), np.float32).reshape(images.shape)


def _check_image_kind(kind: str, figure: str) -> None:
    if kind != "images":
        raise ValueError(f"the {figure} figure draws images; this model's data are a {kind} "
                         f"(use --figure interpolate, traverse or tsne)")


def _line_panels(panels, path, title: str, colour_label: str) -> Path:
    """Panels of curves, one panel per (name, curves (k, ...), values (k,)): each curve an example
    flattened to (length, channels), coloured by its value."""
    plt = _pyplot()
    n = len(panels)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for ax, (name, curves, values) in zip(axes.flat, panels):
        lo, hi = float(np.min(values)), float(np.max(values))
        for curve, v in zip(curves, values):
            curve = np.reshape(curve, (curve.shape[0], -1))
            ax.plot(curve, color=cmap((v - lo) / (hi - lo) if hi > lo else 0.5), lw=1)
        ax.set_title(f"{name} ({colour_label} {lo:.3g} → {hi:.3g}: dark → light)", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return _save(fig, path, dpi=80)


def save_interpolation(model, result: Interpolation, path, kind: str | None = None) -> Path:
    """One row per pair, x_a's decode on the left; line plots for tables and series."""
    kind = kind or data_kind(model)
    images = result.images[None] if result.codes.ndim == 2 else result.images
    title = f"{result.method} interpolation between codes, {images.shape[1]} steps"
    if kind != "images":
        return _line_panels([(f"pair {i}", images[i], result.t) for i in range(min(len(images), 8))], path,
                            title, "t")
    return save_mosaic(_display(model, images), path, title)


def save_traversal(model, result: Traversal, path, kind: str | None = None) -> Path:
    """One row per dimension, values increasing to the right; line plots for tables and series."""
    kind = kind or data_kind(model)
    title = (f"traversal of dims {','.join(map(str, result.dims))}: "
             f"{result.values.min():.3g} → {result.values.max():.3g}")
    if kind != "images":
        return _line_panels([(f"dim {j}", result.images[i], result.values[i]) for i, j in enumerate(result.dims)],
                            path, title, "z_j")
    return save_mosaic(_display(model, result.images), path, title)


def save_grid(model, result: LatentGrid, path, kind: str | None = None) -> Path:
    """The n × n decodes, z0 increasing to the right and z1 upwards; images only."""
    _check_image_kind(kind or data_kind(model), "grid")
    title = (f"z0 {result.z0[0]:.2f} → {result.z0[-1]:.2f} (right), "
             f"z1 {result.z1[-1]:.2f} → {result.z1[0]:.2f} (up)")
    return save_mosaic(_display(model, result.images), path, title)


def save_tsne(embedding, labels, path, class_names=(), title: str = "t-SNE of test codes") -> Path:
    """A scatter of the embedding, coloured by label when there are labels."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.4))
    if labels is None:
        ax.scatter(embedding[:, 0], embedding[:, 1], s=4, color="tab:blue")
    else:
        cmap = plt.get_cmap("tab10" if len(np.unique(labels)) <= 10 else "tab20")
        for k, label in enumerate(np.unique(labels)):
            at = labels == label
            name = class_names[label] if 0 <= int(label) < len(class_names) else str(label)
            ax.scatter(embedding[at, 0], embedding[at, 1], s=4, color=cmap(k % cmap.N), label=name)
        ax.legend(fontsize=6, markerscale=2, loc="best", frameon=False)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{title} ({len(embedding):,} points)", fontsize=8)
    fig.tight_layout()
    return _save(fig, path, dpi=80)


# A run's figure, for `zoo latent`.

def _pairs(y, n: int, size: int, same_class: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Indices of n pairs of test examples: the first examples of classes (0, 1), (2, 3), ... in
    turn when labelled (then their second examples, ...), else consecutive examples. With
    `same_class` (a model given the labels), the first and second examples of each class in turn."""
    if y is not None and same_class:
        classes = np.unique(y)
        a, b = [], []
        for i in range(n):
            members = np.flatnonzero(y == classes[i % len(classes)])
            rank = 2 * (i // len(classes))
            a.append(int(members[rank % len(members)]))
            b.append(int(members[(rank + 1) % len(members)]))
        return np.array(a), np.array(b)
    if y is not None and len(np.unique(y)) > 1:
        classes = np.unique(y)
        k = len(classes)
        a, b = [], []
        for i in range(n):
            rank = (2 * i) // k  # the rank-th example of each class on this round
            for side, c in ((a, classes[(2 * i) % k]), (b, classes[(2 * i + 1) % k])):
                members = np.flatnonzero(y == c)
                side.append(int(members[rank % len(members)]))
        return np.array(a), np.array(b)
    if size < 2:
        raise ValueError(f"interpolation needs at least 2 test examples. Received: {size}")
    idx = np.arange(2 * n) % size
    return idx[0::2], idx[1::2]


def write_latent_figure(run, figure: str, out=None, steps: int | None = None, dims=None, span: float | None = None,
                        examples: int | None = None, seed: int = 0) -> Path:
    """Draws one latent figure of a finished run from its test split; the path written.

    Args:
        run: a run directory (model.keras and recipe.toml) or a `zoo.fit` result.
        figure: "interpolate" (pairs of test examples of different classes), "traverse" (the
            first test example), "grid" (2-D codes) or "tsne" (test codes coloured by label).
        out: the PNG (default RUN/latent_<figure>.png).
        steps: points per path (interpolate, default 8), per dimension (traverse, 7), per axis
            (grid, 15).
        dims: latent dimensions to traverse (default the first min(code_size, 8)).
        span: the range of traverse (default 3) and of grid (default: the family's, see
            `latent_grid`).
        examples: pairs to interpolate (default 4), test codes of t-SNE (default 2,000) or the
            test examples whose codes set the spread of traverse and the box of grid (500).
        seed: the t-SNE subsample and embedding.

    Raises:
        ValueError: a bad figure, flag value or output path, or grid on codes that are not 2-D.
        FileNotFoundError: not a finished run.
    """
    if figure not in FIGURES:
        raise ValueError(f"--figure must be one of {', '.join(FIGURES)}. Received: {figure!r}")
    for name, value, low in (("--steps", steps, 2), ("--examples", examples, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ValueError(f"{name} must be an integer ≥ {low}. Received: {value!r}")
    if span is not None and not (isinstance(span, (int, float)) and math.isfinite(span) and span > 0):
        raise ValueError(f"--span must be a positive number. Received: {span!r}")
    from zoo.data.splits import load_splits
    from zoo.evaluation.evaluate import load_run

    model, recipe, run_dir, _ = load_run(run)
    out = Path(out) if out is not None else run_dir / f"latent_{figure}.png"
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out must name a .png file. Received: {out}")
    if out.is_dir():
        raise ValueError(f"--out {out} is a directory; name a .png file")
    d = int(model.code_size)
    if figure == "grid" and d != 2:
        raise ValueError(f"--figure grid needs a 2-D code; this run's model has code_size={d} "
                         f"(use --figure interpolate, traverse or tsne)")
    if dims is not None and figure != "traverse":
        raise ValueError(f"--dims applies to --figure traverse only. Received: --figure {figure} with --dims")
    if dims is not None:
        bad = [j for j in dims if not 0 <= j < d]
        if bad or not dims:
            raise ValueError(f"--dims takes latent dimensions in 0..{d - 1} (code_size={d}). "
                             f"Received: {','.join(map(str, dims)) or '(none)'}")
    splits = load_splits(recipe.data, recipe.train.seed)
    kind = splits.kind
    if figure == "grid":
        _check_image_kind(kind, "grid")
    limit = {"tsne": examples or TSNE_POINTS, "interpolate": 0}.get(figure, examples or 500)
    x, y = splits.test_arrays(limit)
    fed = y if model.takes_labels else None  # the labels a model that takes them is given
    if figure == "interpolate":
        a, b = _pairs(y, examples or 4, len(x), same_class=fed is not None)
        result = interpolate(model, x[a], x[b], steps=steps or 8, y_a=None if fed is None else fed[a],
                             y_b=None if fed is None else fed[b])
        return save_interpolation(model, result, out, kind)
    if figure == "traverse":
        result = traverse(model, x[0], dims=dims, span=span or 3.0, steps=steps or 7, reference=x,
                          y=None if fed is None else fed[:1], reference_y=fed)
        return save_traversal(model, result, out, kind)
    if figure == "grid":
        grid = latent_grid(model, n=steps or 15, span=span, codes=x, y=None if fed is None else fed[0], codes_y=fed)
        return save_grid(model, grid, out, kind)
    embedding, labels = tsne(encode(model, x, y=fed), y, max_points=limit, seed=seed)
    return save_tsne(embedding, labels, out, class_names=splits.class_names,
                     title=f"t-SNE of {recipe.name}'s test codes (d = {d})")
