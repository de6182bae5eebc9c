"""The latent tools (zoo.evaluation.latent) on every registered family, and `zoo latent`."""

import math

import numpy as np
import pytest
from conftest import TINY_CODE, TINY_SHAPE, build_tiny, fed, fed_codes, tiny_labels
from PIL import Image
from scipy.stats import norm

import zoo
from zoo.cli import main
from zoo.evaluation import latent

FAMILIES = zoo.list_models()


def code(model, x, y=0):
    """encode of one example (labelled y for a model that takes labels), as a user computes it."""
    return np.asarray(model.encode(fed(model, x[None], np.array([y]))), np.float32)[0]


def decoded(model, z, y=0):
    return np.asarray(model.decode(fed_codes(model, np.asarray(z, np.float32)[None], np.array([y]))), np.float32)[0]


# The labels given to every call below: a model that takes labels needs them, the others ignore them.
Y_A, Y_B = 0, 1


# Interpolation.
@pytest.mark.parametrize("family", FAMILIES)
def test_interpolation_endpoints_are_the_endpoints_codes(family, images):
    model = build_tiny(family)
    path = zoo.interpolate(model, images[0], images[1], steps=6, y_a=Y_A, y_b=Y_B)
    assert path.images.shape == (6, *TINY_SHAPE) and path.codes.shape == (6, TINY_CODE)
    za, zb = code(model, images[0], Y_A), code(model, images[1], Y_B)
    np.testing.assert_array_equal(path.codes[0], za)
    np.testing.assert_array_equal(path.codes[-1], zb)
    np.testing.assert_allclose(path.images[0], decoded(model, za, Y_A), atol=1e-6)
    np.testing.assert_allclose(path.images[-1], decoded(model, zb, Y_B), atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_interpolation_of_batches_pairs_them_in_order(family, images):
    model = build_tiny(family)
    path = zoo.interpolate(model, images[:3], images[3:6], steps=4, y_a=[0, 1, 0], y_b=[1, 1, 0])
    assert path.images.shape == (3, 4, *TINY_SHAPE) and path.codes.shape == (3, 4, TINY_CODE)
    for i, (y_a, y_b) in enumerate(zip([0, 1, 0], [1, 1, 0])):
        np.testing.assert_allclose(path.codes[i, 0], code(model, images[i], y_a), atol=1e-6)
        np.testing.assert_allclose(path.codes[i, -1], code(model, images[3 + i], y_b), atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_linear_midpoint_is_the_mean_of_the_endpoints(family, images):
    model = build_tiny(family)
    path = zoo.interpolate(model, images[0], images[1], steps=3, method="linear", y_a=Y_A, y_b=Y_B)
    za, zb = code(model, images[0], Y_A), code(model, images[1], Y_B)
    np.testing.assert_allclose(path.codes[1], (za + zb) / 2, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(path.images[1], decoded(model, (za + zb) / 2, Y_A), atol=1e-6)  # t = 1/2: x_a's label


@pytest.mark.parametrize("family", FAMILIES)
def test_the_default_path_follows_the_prior_the_model_declares(family, images):
    model = build_tiny(family)
    path = zoo.interpolate(model, images[2], images[7], steps=9, y_a=Y_A, y_b=Y_B)
    za, zb = code(model, images[2], Y_A), code(model, images[7], Y_B)
    if model.latent_prior == "gaussian":
        assert path.method == "spherical"
        norms = np.linalg.norm(path.codes, axis=-1)
        low, high = sorted((np.linalg.norm(za), np.linalg.norm(zb)))
        assert np.all(norms >= low - 1e-5) and np.all(norms <= high + 1e-5)
    else:
        assert path.method == "linear"
        t = np.linspace(0, 1, 9)[:, None]
        np.testing.assert_allclose(path.codes, (1 - t) * za + t * zb, rtol=1e-5, atol=1e-6)


def test_only_the_standard_normal_prior_is_declared_gaussian():
    assert build_tiny("vae").latent_prior == "gaussian"
    for prior in ("mixture", "vamp"):
        assert build_tiny("vae", prior=prior, prior_components=3).latent_prior is None
    assert build_tiny("basic").latent_prior is None


def test_slerp_midpoint_by_hand(images):
    model = build_tiny("vae")
    path = zoo.interpolate(model, images[0], images[5], steps=3)
    za, zb = code(model, images[0]).astype(np.float64), code(model, images[5]).astype(np.float64)
    ra, rb = np.linalg.norm(za), np.linalg.norm(zb)
    bisector = za / ra + zb / rb  # the direction halfway along the great circle
    expected = (ra + rb) / 2 * bisector / np.linalg.norm(bisector)
    np.testing.assert_allclose(path.codes[1], expected, rtol=1e-5)


def test_slerp_on_a_quarter_circle():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    points = latent.slerp(a, b, np.array([0.0, 1 / 3, 1.0]))
    r = 1 + 1 / 3  # the radius goes linearly from 1 to 2; the angle is 30° after a third
    np.testing.assert_allclose(points[1], [r * math.cos(math.pi / 6), r * math.sin(math.pi / 6)], atol=1e-12)
    np.testing.assert_allclose(points[[0, 2]], [a, b], atol=1e-12)


@pytest.mark.parametrize("b", [[2.0, 0.0], [-3.0, 0.0], [0.0, 0.0]])
def test_slerp_of_parallel_antipodal_or_zero_codes_is_the_straight_line(b):
    a, b, t = np.array([1.0, 0.0]), np.array(b), np.linspace(0, 1, 5)
    np.testing.assert_allclose(latent.slerp(a, b, t), latent.lerp(a, b, t))


def test_bad_interpolation_arguments_are_one_line(images):
    model = build_tiny("basic")
    for kwargs, match in (({"method": "cubic"}, "method must be one of linear, spherical"),
                          ({"steps": 1}, "steps must be an integer ≥ 2")):
        with pytest.raises(ValueError, match=match) as info:
            zoo.interpolate(model, images[0], images[1], **kwargs)
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=r"x_a must be one example of shape \(8, 8, 1\)"):
        zoo.interpolate(model, images[0, :4], images[1])


# Traversal.
@pytest.mark.parametrize("family", FAMILIES)
def test_traverse_changes_only_the_chosen_dimension(family, images, monkeypatch):
    model = build_tiny(family)
    seen = []
    real_decode = model.decode

    def spy(z):
        seen.append(np.asarray(z["code"] if isinstance(z, dict) else z, np.float32))
        return real_decode(z)

    monkeypatch.setattr(model, "decode", spy)
    reference_y = tiny_labels(len(images))
    walk = zoo.traverse(model, images[0], dims=[1, 3], span=2.0, steps=5, reference=images, y=Y_A,
                        reference_y=reference_y)
    assert walk.images.shape == (2, 5, *TINY_SHAPE)
    decoded_codes = np.concatenate(seen).reshape(2, 5, TINY_CODE)
    np.testing.assert_array_equal(decoded_codes, walk.codes)
    z = code(model, images[0])
    offsets = np.linspace(-2.0, 2.0, 5)
    if model.latent_prior == "gaussian":  # prior standard deviations around 0
        expected = np.stack([offsets, offsets])
    else:  # around the example's code, in units of each dimension's spread over the reference
        spread = np.asarray(model.encode(fed(model, images, reference_y)), np.float64).std(axis=0)
        expected = np.stack([z[j] + offsets * spread[j] for j in (1, 3)])
    for i, j in enumerate((1, 3)):
        others = [k for k in range(TINY_CODE) if k != j]
        np.testing.assert_allclose(decoded_codes[i][:, others], np.tile(z[others], (5, 1)), atol=1e-6)
        np.testing.assert_allclose(decoded_codes[i][:, j], expected[i], rtol=1e-5, atol=1e-6)


def test_traverse_without_a_reference_takes_absolute_offsets(images):
    model = build_tiny("basic")
    walk = zoo.traverse(model, images[0], dims=[0], span=1.0, steps=3)
    z0 = code(model, images[0])[0]
    np.testing.assert_allclose(walk.values[0], [z0 - 1, z0, z0 + 1], rtol=1e-6)


def test_traverse_defaults_to_the_first_dimensions_and_refuses_others_in_one_line(images):
    model = build_tiny("vae")
    assert zoo.traverse(model, images[0]).dims == (0, 1, 2, 3)
    for dims in ([4], [-1], []):
        with pytest.raises(ValueError, match=r"dims must be latent dimensions in \[0, 3\]") as info:
            zoo.traverse(model, images[0], dims=dims)
        assert "\n" not in str(info.value)


# The 2-D grid.
def test_grid_of_a_2d_vae_goes_through_the_normal_inverse_cdf():
    model = build_tiny("vae", code_size=2)
    grid = zoo.latent_grid(model, n=5)
    values = norm.ppf(np.linspace(0.05, 0.95, 5))
    np.testing.assert_allclose(grid.codes[..., 0], np.tile(values, (5, 1)), atol=1e-6)
    np.testing.assert_allclose(grid.codes[..., 1], np.tile(values[::-1, None], (1, 5)), atol=1e-6)
    assert grid.images.shape == (5, 5, *TINY_SHAPE)
    np.testing.assert_allclose(grid.images[1, 3], decoded(model, [values[3], values[3]]), atol=1e-6)


def test_grid_without_a_gaussian_prior_spans_the_given_codes(images):
    model = build_tiny("basic", code_size=2)
    grid = zoo.latent_grid(model, n=4, codes=images)
    z = np.asarray(model.encode(images))
    np.testing.assert_allclose(grid.z0[[0, -1]], [z[:, 0].min(), z[:, 0].max()], rtol=1e-6)
    np.testing.assert_allclose(grid.z1[[-1, 0]], [z[:, 1].min(), z[:, 1].max()], rtol=1e-6)
    with pytest.raises(ValueError, match="needs span= or codes="):
        zoo.latent_grid(model)
    boxed = zoo.latent_grid(model, n=3, span=2.0)
    np.testing.assert_allclose(boxed.z0, [-2, 0, 2])


def test_grid_refuses_a_code_size_other_than_2_in_one_line():
    with pytest.raises(ValueError, match="needs a 2-D code; this model has code_size=4") as info:
        zoo.latent_grid(build_tiny("vae"))
    assert "\n" not in str(info.value)


# Figures.
def is_white(pixels) -> bool:
    return bool(np.all(np.asarray(pixels)[..., :3] == 255))


def check_mosaic(path, rows: int, cols: int):
    """The PNG is rows × cols tiles: its size and the white gaps where `latent` puts them."""
    picture = np.asarray(Image.open(path).convert("RGB"))
    width, height = latent.mosaic_size(rows, cols, TINY_SHAPE)
    assert picture.shape[:2] == (height, width)
    body = picture[latent.TITLE_PX:]
    tile = (body.shape[0] - latent.PAD) // rows - latent.PAD
    assert (body.shape[1] - latent.PAD) // cols - latent.PAD == tile
    for i in range(rows + 1):
        assert is_white(body[i * (tile + latent.PAD): i * (tile + latent.PAD) + latent.PAD])
    for j in range(cols + 1):
        assert is_white(body[:, j * (tile + latent.PAD): j * (tile + latent.PAD) + latent.PAD])
    centre = latent.PAD + tile // 2
    assert not is_white(body[centre, centre])  # a tiny model decodes mid-grey, never pure white


def test_writers_draw_image_mosaics_of_the_expected_grid(images, tmp_path):
    model = build_tiny("vae", code_size=2)
    latent.save_interpolation(model, zoo.interpolate(model, images[:3], images[3:6], steps=5), tmp_path / "i.png")
    check_mosaic(tmp_path / "i.png", 3, 5)
    latent.save_interpolation(model, zoo.interpolate(model, images[0], images[1], steps=4), tmp_path / "one.png")
    check_mosaic(tmp_path / "one.png", 1, 4)
    latent.save_traversal(model, zoo.traverse(model, images[0], steps=6), tmp_path / "t.png")
    check_mosaic(tmp_path / "t.png", 2, 6)
    latent.save_grid(model, zoo.latent_grid(model, n=4), tmp_path / "g.png")
    check_mosaic(tmp_path / "g.png", 4, 4)


def test_tsne_is_seeded_and_drawn_by_label(images, tmp_path):
    codes = np.asarray(build_tiny("basic").encode(images))
    labels = np.arange(len(codes)) % 3
    first, kept = latent.tsne(codes, labels, max_points=12, seed=3)
    again, _ = latent.tsne(codes, labels, max_points=12, seed=3)
    assert first.shape == (12, 2) and kept.shape == (12,)
    np.testing.assert_array_equal(first, again)
    path = latent.save_tsne(first, kept, tmp_path / "s.png", class_names=("a", "b", "c"))
    assert path.stat().st_size > 1000 and Image.open(path).size == (400, 352)


def test_tables_are_drawn_as_lines_and_the_grid_refuses_them(tmp_path):
    model = build_tiny("vae", input_shape=(6,), code_size=2)
    rows = np.random.default_rng(0).random((4, 6)).astype("float32")
    path = latent.save_interpolation(model, zoo.interpolate(model, rows[:2], rows[2:]), tmp_path / "i.png")
    assert Image.open(path).size[0] > 100
    latent.save_traversal(model, zoo.traverse(model, rows[0]), tmp_path / "t.png")
    assert (tmp_path / "t.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="the grid figure draws images; this model's data are a table"):
        latent.save_grid(model, zoo.latent_grid(model, n=3), tmp_path / "g.png")
    assert not (tmp_path / "g.png").exists()


# `zoo latent`.
RECIPE = """
[model]
family = "{family}"
code_size = {code_size}
hidden = [32]

[data]
dataset = "digits"

[train]
epochs = 1
steps_per_epoch = 2
batch_size = 64
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 2-D VAE and a 4-D basic autoencoder, each fitted for two steps on digits."""
    root = tmp_path_factory.mktemp("latent_runs")
    out = {}
    for family, code_size, hidden in (("vae", 2, True), ("basic", 4, False)):
        text = RECIPE.format(family=family, code_size=code_size)
        if not hidden:
            text = text.replace("hidden = [32]\n", "")
        (root / f"{family}.toml").write_text(text)
        out[family] = zoo.fit(root / f"{family}.toml", out=root / family, verbose=0).dir
    return out


def cli(capsys, *args):
    code = main(["latent", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out.strip().splitlines(), [line for line in captured.err.splitlines() if line.strip()]


@pytest.mark.parametrize("figure", latent.FIGURES)
def test_the_command_draws_each_figure_of_a_run(runs, figure, capsys):
    code, out, err = cli(capsys, runs["vae"], "--figure", figure, "--steps", 4, "--examples", 40)
    assert code == 0, err
    path = runs["vae"] / f"latent_{figure}.png"
    assert out[-1] == str(path)
    assert path.stat().st_size > 1000
    width, height = Image.open(path).size
    if figure == "grid":
        assert (width, height) == latent.mosaic_size(4, 4, (8, 8))
    if figure == "interpolate":  # 40 pairs of 4 steps
        assert (width, height) == latent.mosaic_size(40, 4, (8, 8))


def test_the_command_takes_dims_span_and_out(runs, capsys, tmp_path):
    target = tmp_path / "walk.png"
    code, out, err = cli(capsys, runs["basic"], "--figure", "traverse", "--dims", "0,2,3", "--span", 1.5,
                         "--out", target)
    assert code == 0, err
    assert out[-1] == str(target)
    assert Image.open(target).size == latent.mosaic_size(3, 7, (8, 8))


@pytest.mark.parametrize("args, fragment", [
    (["--figure", "umap"], "--figure must be one of interpolate, traverse, grid, tsne"),
    (["--figure", "grid"], "--figure grid needs a 2-D code; this run's model has code_size=4"),
    (["--figure", "traverse", "--dims", "0,4"], "--dims takes latent dimensions in 0..3"),
    (["--figure", "traverse", "--dims", "a"], "--dims takes comma-separated latent dimensions"),
    (["--figure", "tsne", "--dims", "0"], "--dims applies to --figure traverse only"),
    (["--figure", "traverse", "--steps", "1"], "--steps must be an integer ≥ 2"),
    (["--figure", "traverse", "--span", "-1"], "--span must be a positive number"),
    (["--figure", "tsne", "--out", "x.jpg"], "--out must name a .png file"),
])
def test_bad_input_is_one_line_with_exit_2_and_nothing_written(runs, args, fragment, capsys):
    before = sorted(p.name for p in runs["basic"].iterdir())
    code, out, err = cli(capsys, runs["basic"], *args)
    assert code == 2
    assert len(err) == 1 and fragment in err[0], err
    assert err[0].startswith("zoo latent: error: ")
    assert sorted(p.name for p in runs["basic"].iterdir()) == before


def test_a_run_without_its_model_is_one_line(runs, capsys, tmp_path):
    (tmp_path / "recipe.toml").write_text((runs["basic"] / "recipe.toml").read_text())
    code, _, err = cli(capsys, tmp_path, "--figure", "tsne")
    assert code == 2 and len(err) == 1 and "has no model.keras" in err[0], err
    assert not list(tmp_path.glob("*.png"))
