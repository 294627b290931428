"""BlockAverage computes AveragePooling2D's results, saves and loads."""

import keras
import numpy as np
import pytest

from keras_d2nn.graph import layer_flops
from keras_d2nn.layers import BlockAverage


@pytest.mark.parametrize(
    "shape, factor",
    [((3, 112, 112, 1), 4), ((2, 30, 23, 3), 4), ((1, 28, 28, 2), 2)],
)
def test_block_average_equals_average_pooling(shape, factor):
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    expected = keras.layers.AveragePooling2D(factor)(x)
    np.testing.assert_allclose(
        BlockAverage(factor)(x), expected, rtol=1e-5, atol=1e-6
    )


def test_block_average_counts_the_flops_of_average_pooling():
    image = keras.Input((112, 112, 1))
    assert layer_flops(BlockAverage(4), image) == layer_flops(
        keras.layers.AveragePooling2D(4), image
    )


def test_block_average_round_trips_through_a_keras_file(tmp_path):
    inputs = keras.Input((16, 16, 1))
    model = keras.Model(inputs, BlockAverage(4, name="lowres")(inputs))
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    layer = loaded.get_layer("lowres")
    assert isinstance(layer, BlockAverage) and layer.factor == 4
    assert BlockAverage.from_config(layer.get_config()).factor == 4
    x = np.random.default_rng(1).random((2, 16, 16, 1), dtype=np.float32)
    np.testing.assert_allclose(loaded(x), model(x))


@pytest.mark.parametrize("factor", [0, 2.0, True, "4"])
def test_block_average_refuses_a_bad_factor(factor):
    with pytest.raises(ValueError, match="`factor` should be an int >= 1"):
        BlockAverage(factor)
