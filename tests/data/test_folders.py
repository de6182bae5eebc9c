"""Tests for zoo.data.folders: image folders checked with Pillow and streamed through tf.data."""

import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from zoo.data.examples import DataError
from zoo.data.folders import COLOR_MODES, IMAGE_SUFFIXES, ImageFiles, read_folder


def save(path, pixels, mode=None, **kwargs):
    """Writes uint8 `pixels` ((H, W) or (H, W, C), or a PIL image) as an image file at `path`; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(np.asarray(pixels, np.uint8), mode)
    image.save(path, **kwargs)
    return path


def noise(seed, shape=(4, 5, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def constant_folder(root, n, shape=(3, 4, 3)):
    """n PNGs f00.png.. whose every pixel is the file's index: a decoded image names its file."""
    for i in range(n):
        save(root / f"f{i:02d}.png", np.full(shape, i, np.uint8))
    return read_folder(root).x


def ids(batch):
    """The file index each image of a batch came from (see constant_folder)."""
    batch = np.asarray(batch)
    assert (batch == batch[:, :1, :1, :1]).all(), "an image is not one constant"
    return batch[:, 0, 0, 0].astype(int).tolist()


def one_line_error(call, *names):
    """Calls `call`, expects a one-line DataError containing every one of `names`; returns its message."""
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for name in names:
        assert str(name) in message, (name, message)
    return message


# ---------------------------------------------------------------------------------------- layouts

def test_class_folders_give_labels_by_sorted_name(tmp_path):
    root = tmp_path / "photos"
    save(root / "dog" / "a.png", noise(0))
    save(root / "dog" / "b.PNG", noise(1))  # suffixes are case-insensitive
    save(root / "cat" / "c.png", noise(2))
    save(root / "bird" / "nested" / "d.png", noise(3))  # below a class folder: still that class
    (root / "cat" / "notes.txt").write_text("not an image")  # other suffixes: ignored
    save(root / "cat" / ".hidden.png", noise(4))  # hidden: ignored
    save(root / ".thumbnails" / "e.png", noise(5))  # a hidden folder is no class
    loaded = read_folder(root)
    assert loaded.class_names == ("bird", "cat", "dog")
    names = [os.path.basename(p) for p in loaded.x.paths]
    assert names == ["d.png", "c.png", "a.png", "b.PNG"]
    np.testing.assert_array_equal(loaded.y, [0, 1, 2, 2])
    assert loaded.y.dtype == np.int64 and loaded.x.labels is loaded.y
    assert loaded.kind == "images" and loaded.scaled is False and loaded.x_test is None and loaded.y_test is None
    assert loaded.input_shape == (4, 5, 3) and loaded.x.shape == (4, 4, 5, 3)
    assert all(os.path.isabs(p) for p in loaded.x.paths)
    assert loaded.source == f"folder:{root} (4 files, 3 classes, 4×5×3)"
    np.testing.assert_array_equal(loaded.x.load()[2], noise(0))


def test_flat_folder_has_no_labels(tmp_path):
    for i in range(3):
        save(tmp_path / f"{i}.png", noise(i))
    loaded = read_folder(tmp_path)
    assert loaded.y is None and loaded.x.labels is None and loaded.class_names == ()
    assert len(loaded.x) == 3 and loaded.source.endswith("(3 files, 4×5×3)")


def test_train_and_test_subfolders_are_the_two_splits(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for i in range(n):
            save(tmp_path / split / "a" / f"{i}.png", noise(i))
            save(tmp_path / split / "b" / f"{i}.png", noise(10 + i))
    loaded = read_folder(tmp_path)
    assert loaded.class_names == ("a", "b")
    assert len(loaded.x) == 6 and len(loaded.x_test) == 4
    np.testing.assert_array_equal(loaded.y_test, [0, 0, 1, 1])
    assert all(os.sep + "test" + os.sep in p for p in loaded.x_test.paths)
    assert "(6 files + 4 test, 2 classes" in loaded.source


def test_test_path_overrides_the_test_split(tmp_path):
    for split in ("train", "test"):
        save(tmp_path / "photos" / split / "a" / "0.png", noise(0))
    save(tmp_path / "other" / "a" / "1.png", noise(1))
    save(tmp_path / "other" / "a" / "2.png", noise(2))
    loaded = read_folder(tmp_path / "photos", test_path=tmp_path / "other")
    assert len(loaded.x) == 1 and [os.path.basename(p) for p in loaded.x_test.paths] == ["1.png", "2.png"]
    np.testing.assert_array_equal(loaded.x_test.load()[1], noise(2))
    # A folder without train/ and test/ is all training; test_path adds the test split.
    flat = read_folder(tmp_path / "other" / "a", test_path=str(tmp_path / "photos" / "test" / "a"))
    assert len(flat.x) == 2 and len(flat.x_test) == 1 and flat.y_test is None


# ------------------------------------------------------------------------------- formats and values

def test_png_bmp_gif_decode_to_exactly_their_pixels(tmp_path):
    color, gray = noise(1), noise(2, (4, 5))
    files = {
        "rgb.png": save(tmp_path / "rgb" / "a.png", color),
        "rgb.bmp": save(tmp_path / "rgb" / "b.bmp", color),
        "rgba.bmp": save(tmp_path / "rgb" / "c.bmp", np.dstack([color, gray])),  # 32-bit; Pillow reads RGB
        "gray.png": save(tmp_path / "gray" / "a.png", gray),
        "gray.bmp": save(tmp_path / "gray" / "b.bmp", gray),  # 8-bit, identity gray palette
        "gray.gif": save(tmp_path / "gray" / "c.gif", gray),
    }
    rgb, gray_set = read_folder(tmp_path / "rgb").x, read_folder(tmp_path / "gray").x
    assert rgb.channels == 3 and gray_set.channels == 1
    for image in rgb.load():
        np.testing.assert_array_equal(image, color)
    for image in gray_set.load():
        np.testing.assert_array_equal(image[..., 0], gray)
    assert rgb.load().dtype == np.float32 and len(rgb) == 3 and len(files) == 6


def test_gif_matches_pillow_and_jpeg_is_close(tmp_path):
    gif = save(tmp_path / "gif" / "a.gif", noise(3))  # Pillow quantizes it to a palette
    np.testing.assert_array_equal(read_folder(tmp_path / "gif").x.load()[0],
                                  np.asarray(Image.open(gif).convert("RGB")))
    across, down = np.meshgrid(np.linspace(0, 255, 16), np.linspace(40, 200, 16))
    ramp = np.stack([across, down, np.full((16, 16), 128.0)], -1)
    jpg = save(tmp_path / "jpg" / "a.jpg", ramp.round(), quality=95)
    save(tmp_path / "jpg" / "b.jpeg", ramp.round(), quality=95)
    decoded = read_folder(tmp_path / "jpg").x.load()
    assert decoded.shape == (2, 16, 16, 3)
    pillow = np.asarray(Image.open(jpg), np.float32)  # another IDCT and upsampling
    assert np.abs(decoded[0] - pillow).max() <= 8 and np.abs(decoded[0] - pillow).mean() < 3
    assert np.abs(decoded[0] - ramp).mean() < 3


def test_auto_channels_follow_the_modes(tmp_path):
    rgba = noise(4, (4, 5, 4))
    save(tmp_path / "rgba" / "a.png", rgba)
    loaded = read_folder(tmp_path / "rgba").x
    assert loaded.channels == 4
    np.testing.assert_array_equal(loaded.load()[0], rgba)
    palette = save(tmp_path / "p" / "a.png", Image.fromarray(noise(5)).convert("P"))
    loaded = read_folder(tmp_path / "p").x
    assert Image.open(palette).mode == "P" and loaded.channels == 3
    np.testing.assert_array_equal(loaded.load()[0], np.asarray(Image.open(palette).convert("RGB")))
    clear = save(tmp_path / "p_trns" / "a.png", Image.fromarray(noise(5)).convert("P"), transparency=0)
    loaded = read_folder(tmp_path / "p_trns").x  # TensorFlow decodes it to RGBA: the alpha is dropped
    assert loaded.channels == 3
    np.testing.assert_array_equal(loaded.load()[0], np.asarray(Image.open(clear).convert("RGB")))
    sixteen = noise(6, (4, 5)).astype(np.uint16) * 257  # 16-bit gray (I;16): scaled to 0..255
    save(tmp_path / "i16" / "a.png", sixteen)
    loaded = read_folder(tmp_path / "i16").x
    assert loaded.channels == 1
    np.testing.assert_array_equal(loaded.load()[0, ..., 0], sixteen // 257)


def test_forced_color_mode(tmp_path):
    gray, color = noise(7, (4, 5)), noise(8)
    save(tmp_path / "a.png", gray)
    save(tmp_path / "b.gif", gray)
    save(tmp_path / "c.bmp", color)
    save(tmp_path / "d.png", np.dstack([color, gray]))  # RGBA
    save(tmp_path / "e.png", np.dstack([gray, gray]), "LA")
    as_rgb = read_folder(tmp_path, color_mode="rgb").x.load()
    assert as_rgb.shape == (5, 4, 5, 3)
    for i in (0, 1, 4):  # gray replicated into every channel
        np.testing.assert_array_equal(as_rgb[i], np.repeat(gray[..., None], 3, -1))
    np.testing.assert_array_equal(as_rgb[2], color)
    np.testing.assert_array_equal(as_rgb[3], color)  # alpha dropped
    as_gray = read_folder(tmp_path, color_mode="grayscale").x.load()
    assert as_gray.shape == (5, 4, 5, 1)
    for i in (0, 1, 4):
        np.testing.assert_array_equal(as_gray[i, ..., 0], gray)
    luma = np.asarray(Image.fromarray(color).convert("L"), np.float32)  # Pillow's ITU-R 601-2 luma
    assert np.abs(as_gray[2, ..., 0] - luma).max() <= 1 and np.abs(as_gray[3, ..., 0] - luma).max() <= 1
    orange = Image.fromarray(np.full((8, 8, 3), (200, 100, 50), np.uint8))
    cmyk = save(tmp_path / "cmyk" / "a.jpg", orange.convert("CMYK"))
    assert Image.open(cmyk).mode == "CMYK"
    gray_cmyk = read_folder(cmyk.parent, color_mode="grayscale").x.load()  # JPEG refuses channels=1 for CMYK
    assert gray_cmyk.shape == (1, 8, 8, 1) and np.abs(gray_cmyk - (0.299 * 200 + 0.587 * 100 + 0.114 * 50)).max() <= 6


def test_image_size_resizes_every_image(tmp_path):
    tmp_path, root = tmp_path / "mixed", tmp_path
    save(tmp_path / "a.png", np.full((6, 8, 3), 200, np.uint8))
    save(tmp_path / "b.png", noise(9, (10, 4, 3)))
    save(tmp_path / "c.jpg", np.full((5, 7, 3), 90, np.uint8))
    loaded = read_folder(tmp_path, image_size=[5, 7])
    assert loaded.x.resize and loaded.input_shape == (5, 7, 3) and "5×7×3, resized" in loaded.source
    images = loaded.x.load()
    assert images.shape == (3, 5, 7, 3) and images.dtype == np.float32
    np.testing.assert_array_equal(images[0], 200.0)  # bilinear keeps a constant image constant
    assert np.abs(images[2] - 90).max() <= 2
    assert images.min() >= 0 and images.max() <= 255 and (images == np.round(images)).all()
    # Already the right size: nothing is resized, the pixels are exact.
    save(root / "same" / "a.png", noise(10, (5, 7, 3)))
    exact = read_folder(root / "same", image_size=(5, 7)).x
    assert not exact.resize
    np.testing.assert_array_equal(exact.load()[0], noise(10, (5, 7, 3)))


@pytest.mark.parametrize("image_size", [(0, 3), (3,), (2.5, 3), "32", (True, 3), (3, 4, 5)])
def test_image_size_is_validated(tmp_path, image_size):
    save(tmp_path / "a.png", noise(0))
    with pytest.raises(ValueError, match=r"image_size must be empty or two positive integers"):
        read_folder(tmp_path, image_size=image_size)


def test_color_mode_is_validated(tmp_path):
    save(tmp_path / "a.png", noise(0))
    assert COLOR_MODES == ("auto", "grayscale", "rgb") and ".jpeg" in IMAGE_SUFFIXES
    expected = r"^color_mode must be one of auto, grayscale, rgb\. Received: color_mode='rgba'$"
    with pytest.raises(ValueError, match=expected):
        read_folder(tmp_path, color_mode="rgba")


# ------------------------------------------------------------------------------- the streamed set

def test_dataset_yields_every_file_once_per_pass_reshuffled_and_reproducible(tmp_path):
    files = constant_folder(tmp_path, 13)
    ds = files.dataset(4, seed=3)
    first, second = ([ids(b) for b in ds.as_numpy_iterator()] for _ in range(2))
    assert [len(b) for b in first] == [4, 4, 4, 1]
    assert sorted(sum(first, [])) == list(range(13)) == sorted(sum(second, []))
    assert first != second  # each pass (each iterator) draws a new order
    again = [ids(b) for b in files.dataset(4, seed=3).as_numpy_iterator()]
    assert again == first  # same seed, same orders
    assert [ids(b) for b in files.dataset(4, seed=4).as_numpy_iterator()] != first
    batch = next(iter(ds))
    assert batch.dtype.name == "float32" and tuple(batch.shape) == (4, 3, 4, 3)


def test_dataset_repeat_and_drop_remainder(tmp_path):
    files = constant_folder(tmp_path, 10)
    it = files.dataset(4, seed=1, repeat=True).as_numpy_iterator()
    passes = [[ids(next(it)) for _ in range(3)] for _ in range(3)]  # batches of 4, 4, 2 per pass
    for batches in passes:
        assert [len(b) for b in batches] == [4, 4, 2] and sorted(sum(batches, [])) == list(range(10))
    assert passes[0] != passes[1] != passes[2]
    dropped = [ids(b) for b in files.dataset(4, drop_remainder=True).as_numpy_iterator()]
    assert [len(b) for b in dropped] == [4, 4] and len(set(sum(dropped, []))) == 8
    it = files.dataset(4, shuffle=False, drop_remainder=True, repeat=True).as_numpy_iterator()
    assert [ids(next(it)) for _ in range(4)] == [[0, 1, 2, 3], [4, 5, 6, 7]] * 2
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        files.dataset(0)


def test_load_equals_the_unshuffled_dataset(tmp_path):
    for i in range(7):
        save(tmp_path / ("a" if i % 2 else "b") / f"{i}.png", noise(i, (3, 2, 3)))
    files = read_folder(tmp_path, image_size=(4, 4)).x
    streamed = np.concatenate(list(files.dataset(3, shuffle=False).as_numpy_iterator()))
    np.testing.assert_array_equal(files.load(), streamed)
    np.testing.assert_array_equal(files.load(batch_size=2), streamed)


def test_slicing_gives_a_set_over_those_files(tmp_path):
    for i in range(6):
        save(tmp_path / ("a" if i < 3 else "b") / f"{i}.png", np.full((2, 2, 3), i, np.uint8))
    files = read_folder(tmp_path).x
    part = files[1:4]
    assert isinstance(part, ImageFiles) and part.shape == (3, 2, 2, 3) and part.paths == files.paths[1:4]
    np.testing.assert_array_equal(part.labels, [0, 0, 1])
    picked = files[np.array([5, 0])]
    np.testing.assert_array_equal(picked.labels, [1, 0])
    assert ids(picked.load()) == [5, 0]
    assert ids(files[np.array([True, False] * 3)].load()) == [0, 2, 4]
    assert len(files[np.array([], np.int64)]) == 0 and files[4:4].load().shape == (0, 2, 2, 3)
    with pytest.raises(TypeError, match="slice, a 1-D integer array"):
        files[2]
    with pytest.raises(IndexError):
        files[np.array([6])]


# ---------------------------------------------------------------------------------------- errors

def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "photos").mkdir()
    empty = tmp_path / "photos"
    one_line_error(lambda: read_folder(empty), f"{empty}: no images (PNG, JPEG, BMP, GIF) found")
    (tmp_path / "photos" / "readme.txt").write_text("no images here")
    one_line_error(lambda: read_folder(tmp_path / "photos"), "no images (PNG, JPEG, BMP, GIF) found")
    one_line_error(lambda: read_folder(tmp_path / "nowhere"), f"{tmp_path / 'nowhere'}: no such folder")
    one_line_error(lambda: read_folder(tmp_path / "photos" / "readme.txt"), "readme.txt: not a folder")
    save(tmp_path / "ok" / "a.png", noise(0))
    one_line_error(lambda: read_folder(tmp_path / "ok", test_path=tmp_path / "none"), "none: no such folder")
    (tmp_path / "classes" / "cat").mkdir(parents=True)
    save(tmp_path / "classes" / "dog" / "a.png", noise(0))
    one_line_error(lambda: read_folder(tmp_path / "classes"), f"{tmp_path / 'classes' / 'cat'}: no images")


def test_corrupt_files_are_named(tmp_path):
    png, jpg = io.BytesIO(), io.BytesIO()
    Image.fromarray(noise(0, (16, 16, 3))).save(png, "PNG")
    Image.fromarray(noise(0, (16, 16, 3))).save(jpg, "JPEG")
    cases = {
        "random.png": np.random.default_rng(0).bytes(200),
        "half.png": png.getvalue()[: len(png.getvalue()) // 2],
        "last_byte_cut.png": png.getvalue()[:-1],  # Pillow's verify() passes it; TensorFlow does not
        "half.jpg": jpg.getvalue()[: len(jpg.getvalue()) // 2],
        "empty.gif": b"",
    }
    for name, data in cases.items():
        root = tmp_path / name
        save(root / "cat" / "1.png", noise(1, (16, 16, 3)))
        (root / "cat" / name).write_bytes(data)
        message = one_line_error(lambda: read_folder(root), f"{root / 'cat' / name}: not a readable image (PIL: ")
        assert message.endswith(")")
        with pytest.raises(tf.errors.InvalidArgumentError):  # what training would have met mid-epoch
            tf.io.decode_image(data, expand_animations=False)
    tiff = tmp_path / "tiff"
    save(tiff / "a.png", noise(2), format="TIFF")
    one_line_error(lambda: read_folder(tiff), f"{tiff / 'a.png'}: a TIFF image, which TensorFlow cannot decode")


def test_bmps_tensorflow_misreads_are_refused(tmp_path):
    for mode in ("P", "1"):  # TensorFlow reads a palette's indices as gray, and fails on 1-bit
        root = tmp_path / mode
        save(root / "a.bmp", Image.fromarray(noise(3)).convert(mode))
        one_line_error(lambda: read_folder(root), f"{root / 'a.bmp'}: a ", "BMP, which TensorFlow decodes wrongly")


def test_mixed_channels_need_a_color_mode(tmp_path):
    save(tmp_path / "a.png", noise(0, (4, 5)))
    save(tmp_path / "b.png", noise(1))
    message = one_line_error(lambda: read_folder(tmp_path))
    assert message == (f"{tmp_path}: mixed channel counts ({tmp_path / 'a.png'}: 1 (L), "
                       f"{tmp_path / 'b.png'}: 3 (RGB)): set data.color_mode to grayscale or rgb")
    assert read_folder(tmp_path, color_mode="rgb").input_shape == (4, 5, 3)
    la = tmp_path / "la"
    save(la / "a.png", noise(2, (4, 5, 2)), "LA")
    one_line_error(lambda: read_folder(la), f"{la / 'a.png'}: grayscale with alpha (LA)", "data.color_mode")


def test_mixed_sizes_need_an_image_size(tmp_path):
    save(tmp_path / "a" / "x.png", noise(0, (4, 5, 3)))
    save(tmp_path / "b" / "y.png", noise(1, (6, 5, 3)))
    one_line_error(lambda: read_folder(tmp_path), f"{tmp_path / 'a' / 'x.png'}: 4×5",
                   f"{tmp_path / 'b' / 'y.png'}: 6×5", "set data.image_size = [H, W]")
    # The test split must agree with the training split too.
    save(tmp_path / "t" / "a" / "z.png", noise(1, (7, 7, 3)))
    save(tmp_path / "t" / "b" / "z.png", noise(1, (7, 7, 3)))
    save(tmp_path / "u" / "a" / "z.png", noise(1, (4, 5, 3)))
    save(tmp_path / "u" / "b" / "z.png", noise(1, (4, 5, 3)))
    one_line_error(lambda: read_folder(tmp_path / "u", test_path=tmp_path / "t"), "mixed image sizes", "7×7")


def test_files_beside_class_folders(tmp_path):
    save(tmp_path / "cat" / "a.png", noise(0))
    save(tmp_path / "stray.jpg", noise(1))
    one_line_error(lambda: read_folder(tmp_path), f"{tmp_path / 'stray.jpg'}: an image beside the class folders")


def test_test_classes_must_match(tmp_path):
    for name in ("cat", "dog", "emu"):
        save(tmp_path / "train" / name / "a.png", noise(0))
    for name in ("cat", "dog", "fox"):
        save(tmp_path / "test" / name / "a.png", noise(0))
    one_line_error(lambda: read_folder(tmp_path), f"{tmp_path / 'test'}: the test classes differ",
                   "only in test: fox; only in training: emu")
    save(tmp_path / "flat" / "a.png", noise(0))
    one_line_error(lambda: read_folder(tmp_path / "train", test_path=tmp_path / "flat"),
                   "no class folders, but the training split", "cat, dog, emu")


# ------------------------------------------------------------------------------------- real data

@pytest.mark.slow
def test_fashion_mnist_pngs_read_back(tmp_path):
    from zoo.data.sources import load_arrays

    arrays = load_arrays("fashion_mnist")
    x, y = arrays.x_train[:300], arrays.y_train[:300]
    source = np.round(x[..., 0] * 255).astype(np.uint8)
    written = {}
    for i, (image, label) in enumerate(zip(source, y)):
        big = np.asarray(Image.fromarray(image).resize((32, 32), Image.Resampling.BILINEAR).convert("RGB"))
        written[f"{i:03d}.png"] = big
        save(tmp_path / "big" / f"class{label}" / f"{i:03d}.png", big)
        save(tmp_path / "small" / f"class{label}" / f"{i:03d}.png", image)
    big = read_folder(tmp_path / "big")
    assert big.input_shape == (32, 32, 3) and len(big.x) == 300
    assert big.class_names == tuple(f"class{k}" for k in sorted(set(y.tolist())))
    index = [int(os.path.basename(p)[:3]) for p in big.x.paths]
    np.testing.assert_array_equal([int(big.class_names[k][5:]) for k in big.y], y[index])
    images = big.x.load()
    np.testing.assert_array_equal(images, np.stack([written[os.path.basename(p)] for p in big.x.paths]))
    # The 28×28 gray originals, read as RGB: exactly the source's pixels in raw units, every channel.
    small = read_folder(tmp_path / "small", color_mode="rgb")
    assert small.input_shape == (28, 28, 3)
    np.testing.assert_array_equal(small.x.load(), np.repeat(source[index][..., None], 3, -1).astype(np.float32))
    streamed = np.concatenate(list(small.x.dataset(128, seed=0).as_numpy_iterator()))
    assert streamed.shape == (300, 28, 28, 3)
    sums = np.sort(small.x.load().reshape(300, -1).sum(1))  # the same images, in another order
    np.testing.assert_array_equal(np.sort(streamed.reshape(300, -1).sum(1)), sums)
