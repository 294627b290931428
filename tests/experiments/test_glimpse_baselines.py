"""The attention D2NN's baselines: the oracle and saliency rules find the
item where they should, the centre is the centre, and the rule points run
on the D2NN's own modules at the cost of one glimpse."""

import numpy as np
import pytest

from keras_d2nn import architectures
from keras_d2nn.experiments import glimpse_baselines


@pytest.fixture(scope="module")
def canvas_model():
    return architectures.attention((112, 112, 1))


def test_the_oracle_region_holds_the_item_at_every_position(canvas_model):
    boxes = glimpse_baselines.region_boxes(canvas_model)
    positions = np.array([(r, c) for r in range(85) for c in range(85)])
    regions = glimpse_baselines.oracle_regions(boxes, positions)
    assert glimpse_baselines.holds_item(boxes, positions, regions).all()
    # Nearest the centre: an item in the canvas's middle gets the middle.
    assert glimpse_baselines.oracle_regions(boxes, [[42, 42]])[0] == 12


def test_saliency_finds_the_only_item_and_misses_behind_more_ink(
    canvas_model,
):
    boxes = glimpse_baselines.region_boxes(canvas_model)
    rng = np.random.default_rng(0)
    positions = rng.integers(0, 85, (50, 2))
    images = np.zeros((50, 112, 112, 1), "float32")
    for image, (row, col) in zip(images, positions):
        image[row : row + 28, col : col + 28] = 0.5
    regions = glimpse_baselines.saliency_regions(boxes, images)
    assert glimpse_baselines.holds_item(boxes, positions, regions).all()
    # A brighter blob elsewhere wins: the rule reads ink, not items.
    decoy = images[:1].copy()
    decoy[0, :40, :40] = 0
    decoy[0, 70:110, 70:110] = 1.0
    decoy[0, 2:30, 2:30] = 0.5
    region = glimpse_baselines.saliency_regions(boxes, decoy)
    assert not glimpse_baselines.holds_item(boxes, [[2, 2]], region)[0]


def test_the_centre_region_is_the_middle_of_the_grid(canvas_model):
    boxes = glimpse_baselines.region_boxes(canvas_model)
    assert glimpse_baselines.centre_region(boxes, 112) == 12
    assert tuple(boxes[12]) == (42, 42, 48)


def test_rule_points_run_one_glimpse_on_the_models_modules(canvas_model):
    rng = np.random.default_rng(0)
    x = rng.random((16, 112, 112, 1), "float32")
    y = rng.integers(0, 10, 16)
    positions = rng.integers(0, 85, (16, 2))
    points = glimpse_baselines.rule_points(canvas_model, x, y, positions)
    names = [p.name for p in points]
    assert names == [
        "centre glimpse",
        "random glimpse",
        "saliency glimpse",
        "oracle glimpse",
        "any region (ceiling)",
    ]
    plan = canvas_model.plan
    one_glimpse = plan.full_flops - plan.flops["look"]
    for point in points:
        assert point.mean_flops == pytest.approx(one_glimpse)
    assert points[3].details["holds_item"] == 1.0
    # Without positions: no oracle, no ceiling.
    assert len(glimpse_baselines.rule_points(canvas_model, x, y)) == 3
