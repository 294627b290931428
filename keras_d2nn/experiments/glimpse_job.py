"""The attention D2NN's part of the main job (`train --arch=attention`):
its recipe, and its baselines in the report."""

from keras_d2nn.architectures.attention import full_resolution_network
from keras_d2nn.data import pipelines
from keras_d2nn.experiments import glimpse_baselines
from keras_d2nn.recipes import fit_static_first

# Epochs of the modules on the controller's routes, the recipe's third
# phase (benchmarks/attention_canvas.py measured 2).
ROUTE_EPOCHS = 2


def fit(model, train, config, callbacks, log, compile_kwargs):
    """Trains `model` by the static-first recipe: its modules as the
    full-resolution network for `config.epochs`, then the controller on
    the frozen modules for `config.gate_epochs`, then the modules on the
    routes the frozen controller takes for `ROUTE_EPOCHS`; returns the
    `History`.

    Example: `fit(model, train, config, [], print, _compile_kwargs(config))`.
    """
    return fit_static_first(
        model,
        full_resolution_network(model),
        train,
        epochs=config.epochs,
        gate_epochs=config.gate_epochs,
        route_epochs=ROUTE_EPOCHS,
        cost_weight=config.cost_weight,
        callbacks=callbacks,
        log=log,
        verbose=config.verbose,
        **compile_kwargs,
    )


def positions_or_none(config):
    """The test items' positions on the canvas (None for a dataset without
    them, such as 28x28 Fashion-MNIST).

    Example: `positions_or_none(config)[:2]  # e.g. [[73, 15], [9, 57]]`.
    """
    if "config" not in pipelines.check_dataset(config.dataset):
        return None
    return pipelines.load_positions(
        config.dataset,
        "test",
        data_dir=config.tfds_dir,
        manual_dir=config.data_dir,
    )


def gallery_boxes(model, config, routes):
    """The gallery's rectangles of the test images: the region each one's
    route looked at and, on a canvas, where its item is.

    Example: `gallery_boxes(model, config, routes)["looked at"][:2]`.
    """
    return glimpse_baselines.looked_and_item_boxes(
        model, routes["decisions"]["look"], positions_or_none(config)
    )


def baselines(model, accuracy, config, x_test, y_test, fit_network, log):
    """`(points, versus)`: the glimpse baselines of `glimpse_baselines` and
    the D2NN's accuracy against each (`versus["<name>"]` in points).

    The full-resolution network is the D2NN's modules (no training); the
    region rules run on them; the two static networks are trained by
    `fit_network(network)` (only with `config.baselines`).

    Example: `points, versus = baselines(model, 0.8, config, x, y, fit, print)`.
    """
    positions = positions_or_none(config)
    log("baseline: the full-resolution network (the D2NN's own modules)")
    points = [
        glimpse_baselines.network_point(
            "full-resolution network",
            full_resolution_network(model),
            x_test,
            y_test,
        )
    ]
    log("baseline: centre, random, saliency and oracle glimpses")
    points += glimpse_baselines.rule_points(
        model, x_test, y_test, positions, config.seed
    )
    if config.baselines:
        log("baseline: static network at half resolution, context alone")
        points += glimpse_baselines.trained_network_points(
            x_test.shape[1:],
            int(model.plan.specs["head"].shape[-1]),
            fit_network,
            x_test,
            y_test,
            config.seed,
        )
    versus = {
        point.name: {
            "accuracy": point.test_accuracy,
            "mean_flops": point.mean_flops,
            "difference_points": 100 * (accuracy - point.test_accuracy),
        }
        for point in points
    }
    return points, versus
