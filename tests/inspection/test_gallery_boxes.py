"""The route gallery draws where an attention D2NN looked and where the
item is."""

import matplotlib.image
import numpy as np
import pytest

import keras_d2nn
from keras_d2nn.experiments import glimpse_baselines

ORANGE = np.array([1.0, 0x7F / 255, 0x0E / 255])  # "looked at"
CYAN = np.array([0x17 / 255, 0xBE / 255, 0xCF / 255])  # "item"


def _has_colour(png, colour):
    pixels = matplotlib.image.imread(png)[..., :3]
    return bool((np.abs(pixels - colour).max(axis=-1) < 0.05).any())


@pytest.fixture(scope="module")
def canvas_model():
    # 56x56 canvases: four 48x48 regions.
    return keras_d2nn.architectures.attention(input_shape=(56, 56, 1))


def test_gallery_draws_the_region_looked_at_and_the_item(
    canvas_model, tmp_path
):
    rng = np.random.default_rng(0)
    x = rng.random((8, 56, 56, 1), dtype=np.float32) * 0.5
    y = np.arange(8) % 10
    positions = rng.integers(0, 56 - 28, (8, 2))
    routes = canvas_model.route(x, labels=y)
    boxes = glimpse_baselines.looked_and_item_boxes(
        canvas_model, routes["decisions"]["look"], positions
    )
    # The box of each image is its chosen region's.
    chosen = routes["decisions"]["look"]
    regions = glimpse_baselines.region_boxes(canvas_model)
    np.testing.assert_array_equal(
        boxes["looked at"][:, :2], regions[chosen, :2]
    )
    np.testing.assert_array_equal(boxes["item"][:, :2], positions)
    plain, boxed = tmp_path / "plain.png", tmp_path / "boxed.png"
    keras_d2nn.inspection.route_gallery(
        canvas_model, x, y, plain, routes=routes
    )
    keras_d2nn.inspection.route_gallery(
        canvas_model, x, y, boxed, routes=routes, boxes=boxes
    )
    assert not _has_colour(plain, ORANGE) and not _has_colour(plain, CYAN)
    assert _has_colour(boxed, ORANGE) and _has_colour(boxed, CYAN)


def test_gallery_refuses_boxes_of_the_wrong_shape(canvas_model, tmp_path):
    x = np.zeros((4, 56, 56, 1), "float32")
    with pytest.raises(ValueError, match=r"boxes\['item'\].*\(4, 4\)"):
        keras_d2nn.inspection.route_gallery(
            canvas_model,
            x,
            np.zeros(4),
            tmp_path / "routes.png",
            boxes={"item": np.zeros((3, 4))},
        )
    with pytest.raises(ValueError, match="should be a dict"):
        keras_d2nn.inspection.route_gallery(
            canvas_model,
            x,
            np.zeros(4),
            tmp_path / "routes.png",
            boxes=np.zeros((4, 4)),
        )
