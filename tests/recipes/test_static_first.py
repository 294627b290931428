"""`fit_static_first` and its reward table: the controller learns where to
look on a task where only one region holds the item; the table holds each
forced route's reward in the data's order; clear refusals."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_d2nn import architectures
from keras_d2nn.architectures.attention import full_resolution_network
from keras_d2nn.recipes import fit_static_first
from keras_d2nn.recipes.reward_table import action_rewards
from keras_d2nn.recipes.reward_table import fit_controller_on_table
from keras_d2nn.testing import LOSS
from keras_d2nn.testing import routing_data
from keras_d2nn.testing import small_high_low

CANVAS = 56
# Four 32x32 regions; an item drawn in a corner lies inside one alone.
REGIONS = ((0, 0), (0, 24), (24, 0), (24, 24))
ITEM = 16


def item(label):
    """A 16x16 pattern per class: horizontal stripes, vertical stripes,
    or a checkerboard."""
    rows, cols = np.mgrid[:ITEM, :ITEM]
    return [rows % 4 < 2, cols % 4 < 2, (rows // 4 + cols // 4) % 2 == 0][
        label
    ].astype("float32")


def corner_canvases(n, seed):
    """`(images, labels, regions)`: each item in a random corner, inside
    that corner's region only, over faint noise."""
    rng = np.random.default_rng(seed)
    images = 0.1 * rng.random((n, CANVAS, CANVAS, 1), "float32")
    labels = rng.integers(0, 3, n)
    regions = rng.integers(0, 4, n)
    for image, label, region in zip(images, labels, regions):
        top, left = REGIONS[region]
        # Inside [top, top + 32) but not in the neighbouring region.
        row = top + (2 if top == 0 else 14) + rng.integers(0, 3)
        col = left + (2 if left == 0 else 14) + rng.integers(0, 3)
        image[row : row + ITEM, col : col + ITEM, 0] = item(label)
    return images, labels, regions


def small_attention():
    return architectures.attention(
        (CANVAS, CANVAS, 1), num_classes=3, regions=REGIONS, glimpse_size=32
    )


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    model = small_attention()
    x, y, _ = corner_canvases(1024, 0)
    history = fit_static_first(
        model,
        full_resolution_network(model),
        x,
        y,
        loss=LOSS,
        epochs=4,
        gate_epochs=20,
        metrics=["accuracy"],
        batch_size=64,
        verbose=0,
    )
    return model, history


def test_the_controller_learns_to_look_where_the_item_is(trained):
    model, history = trained
    x, y, regions = corner_canvases(256, 1)
    routes = model.route(x, labels=y)
    # Chance is a quarter; a controller ignoring the item would also make
    # the glimpse useless.
    assert np.mean(routes.decisions["look"] == regions) > 0.9
    assert routes.accuracy > 0.9
    assert len(history.history["loss"]) == 4
    assert len(history.history["controller_loss"]) == 20
    assert (
        history.history["controller_loss"][-1]
        < history.history["controller_loss"][0]
    )
    # Left compiled, ready to evaluate.
    assert model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"] > 0.9


def test_the_table_phase_moves_the_controller_alone():
    keras.utils.set_random_seed(0)
    model = small_attention()
    x, y, _ = corner_canvases(128, 2)
    model(x[:1])
    look = model.plan.nodes["look"].layer
    before = [v.numpy() for v in model.weights]
    fit_controller_on_table(model, x, y, loss=LOSS, gate_epochs=2, verbose=0)
    moved = {
        v.path
        for v, value in zip(model.weights, before)
        if not np.array_equal(v.numpy(), value)
    }
    controller_paths = {v.path for v in look.weights}
    assert moved and moved <= controller_paths


def forced_losses(model, x, y, action):
    logits = model.trace(
        x, decisions={"gate": tf.fill([len(x)], action)}
    ).outputs["logits"]
    return keras.losses.sparse_categorical_crossentropy(
        y, logits, from_logits=True
    ).numpy()


def test_rewards_are_minus_each_forced_routes_loss_and_cost():
    model = small_high_low()
    x, y = routing_data(64)
    features, rewards = action_rewards(model, x, y, loss=LOSS, cost_weight=0.5)
    assert rewards.shape == (64, 2)
    assert features.shape == (64,) + tuple(
        model.plan.specs[model.plan.nodes["gate"].inputs[0]].shape[1:]
    )
    for action in (0, 1):
        routes = model.route(x, decisions={"gate": np.full(64, action)})
        np.testing.assert_allclose(
            rewards[:, action],
            -forced_losses(model, x, y, action)
            - 0.5 * routes.executed_flops / model.full_flops,
            rtol=1e-5,
            atol=1e-5,
        )


def test_a_reshuffling_dataset_is_read_once_so_rows_stay_aligned():
    model = small_high_low()
    x, y = routing_data(64)
    features, rewards = action_rewards(model, x, y, loss=LOSS)
    shuffled = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(64, seed=0, reshuffle_each_iteration=True)
        .batch(16)
    )
    again = action_rewards(model, shuffled, loss=LOSS)
    # The same rows in another order: each example's features with its own
    # rewards, which passes reading the data in different orders break.
    rows = np.concatenate([features.reshape(64, -1), rewards], axis=1)
    rows_again = np.concatenate([again[0].reshape(64, -1), again[1]], axis=1)
    np.testing.assert_allclose(
        rows[np.lexsort(rows.T)],
        rows_again[np.lexsort(rows_again.T)],
        atol=1e-5,
    )


def test_a_graph_of_several_controllers_is_refused():
    model = architectures.chain()
    x = np.zeros((4, 28, 28, 1), "float32")
    with pytest.raises(ValueError, match="one controller; this graph has 3"):
        action_rewards(model, x, np.zeros(4, int), loss=LOSS)


def test_labels_are_required():
    model = small_high_low()
    x, _ = routing_data(8)
    with pytest.raises(ValueError, match="needs labels"):
        action_rewards(model, x, loss=LOSS)


def test_a_network_sharing_no_weights_is_refused():
    model = small_attention()
    other = full_resolution_network(small_attention())
    x, y, _ = corner_canvases(8, 0)
    with pytest.raises(ValueError, match="shares no weights with the D2NN"):
        fit_static_first(model, other, x, y, loss=LOSS, verbose=0)
    with pytest.raises(TypeError, match="should be a keras.Model"):
        fit_static_first(model, "network", x, y, loss=LOSS, verbose=0)
    with pytest.raises(ValueError, match="`gate_epochs` should be an int >= 0"):
        fit_static_first(
            model,
            full_resolution_network(model),
            x,
            y,
            loss=LOSS,
            gate_epochs=-1,
        )
