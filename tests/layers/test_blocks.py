"""Backbones of any shape: conv2d on images of any height and width, conv1d on windows, dense on rows."""

import numpy as np
import pytest

import zoo
from tests.conftest import accepts, fed, tiny_params

FAMILIES = zoo.list_models()
# (input_shape, hidden): sizes that 2^len(hidden) does not divide are padded, then cropped back.
CONV_SHAPES = [((32, 32, 3), [4, 8]), ((64, 48, 1), [4, 8, 8]), ((30, 22, 3), [4, 8]), ((9, 9, 1), [4, 8, 8]),
               ((50, 3), [4, 8]), ((37, 1), [4])]


@pytest.mark.parametrize("family", [f for f in FAMILIES if accepts(f, "backbone")])
@pytest.mark.parametrize("shape,hidden", CONV_SHAPES)
def test_conv_reconstruction_has_the_input_shape(family, shape, hidden):
    model = zoo.build(family, **tiny_params(family, input_shape=shape, hidden=hidden, backbone="conv"))
    x = np.random.default_rng(0).random((3, *shape), dtype="float32")
    assert tuple(model(fed(model, x)).shape) == (3, *shape)
    assert tuple(model.encode(fed(model, x)).shape)[0] == 3
    # The estimate that checks a recipe before building agrees with what Keras built.
    assert model.hparams.parameter_count(shape) == model.count_params()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("shape", [(30,), (12, 2), (7, 5, 3)])
def test_dense_backbones_take_any_shape(family, shape):
    model = zoo.build(family, **tiny_params(family, input_shape=shape))
    x = np.random.default_rng(1).random((2, *shape), dtype="float32")
    assert tuple(model(fed(model, x)).shape) == (2, *shape)


def test_padding_is_cropped_exactly():
    """A 30×22 image through two stride-2 layers: padded to 32×24 and cropped back, the padded
    border never reaches the output (the output's shape is the input's, whatever the weights)."""
    model = zoo.build("stacked", input_shape=(30, 22, 3), code_size=4, hidden=[4, 8], backbone="conv")
    names = [layer.__class__.__name__ for layer in model.encoder.layers + model.decoder.layers]
    assert "ZeroPadding2D" in names and "Cropping2D" in names
    pad = next(l for l in model.encoder.layers if l.__class__.__name__ == "ZeroPadding2D")
    assert tuple(map(tuple, pad.padding)) == ((0, 2), (0, 2))
    unpadded = zoo.build("stacked", input_shape=(32, 24, 3), code_size=4, hidden=[4, 8], backbone="conv")
    assert not any(l.__class__.__name__.startswith(("ZeroPadding", "Cropping"))
                   for l in unpadded.encoder.layers + unpadded.decoder.layers)


def test_windows_use_one_dimensional_convolutions():
    model = zoo.build("stacked", input_shape=(50, 3), code_size=4, hidden=[4, 8], backbone="conv")
    kinds = {l.__class__.__name__ for l in model.encoder.layers + model.decoder.layers}
    assert {"Conv1D", "Conv1DTranspose", "ZeroPadding1D", "Cropping1D"} <= kinds
    assert not {"Conv2D", "Conv2DTranspose"} & kinds
