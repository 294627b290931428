"""The public names: every sub-package says what it exports, and the names
users import from earlier releases still resolve."""

import importlib
import pathlib
import types

import pytest

import keras_d2nn

PACKAGE = pathlib.Path(keras_d2nn.__file__).parent
SUB_PACKAGES = sorted(
    ".".join(("keras_d2nn",) + p.parent.relative_to(PACKAGE).parts)
    for p in PACKAGE.rglob("__init__.py")
    if p.parent != PACKAGE
)

# `keras_d2nn.__all__` of 0.1.0, before the sub-packages: kept.
TOP_LEVEL_0_1_0 = [
    "Controller",
    "D2NNModel",
    "Estimator",
    "GumbelSoftmax",
    "ExecutionTrace",
    "Graph",
    "Plan",
    "QLearning",
    "Reinforce",
    "RoutingTensorBoard",
    "UncountableLayerError",
    "__version__",
    "architectures",
    "execute",
    "gallery",
    "layer_flops",
    "plot_graph",
    "routing_report",
    "schedules",
    "static_network",
]
# Dotted paths the README and docs use.
DOCUMENTED = [
    "keras_d2nn.architectures.high_low",
    "keras_d2nn.data.load",
    "keras_d2nn.data.load_arrays",
    "keras_d2nn.export.export_saved_model",
    "keras_d2nn.export.export_litert",
    "keras_d2nn.export.export_onnx",
    "keras_d2nn.export.load_exported",
    "keras_d2nn.export.verify.verify",
    "keras_d2nn.experiments.baselines.measure",
    "keras_d2nn.experiments.tuning.D2NNHyperModel",
    "keras_d2nn.gallery.route_gallery",
    "keras_d2nn.routing_report.routing_report",
    "keras_d2nn.schedules.WarmUp",
    "keras_d2nn.static_network",
    "keras_d2nn.testing.TestCase",
    "keras_d2nn.testing.run_export_test",
]


def resolve(dotted):
    """The object at `dotted`, importing modules on the way."""
    parts = dotted.split(".")
    value = importlib.import_module(parts[0])
    for index, part in enumerate(parts[1:], 2):
        if not hasattr(value, part):
            importlib.import_module(".".join(parts[:index]))
        value = getattr(value, part)
    return value


@pytest.mark.parametrize("name", SUB_PACKAGES)
def test_every_sub_package_has_an_explicit_all(name):
    package = importlib.import_module(name)
    assert "__all__" in vars(package), f"{name} has no __all__"
    assert len(set(package.__all__)) == len(package.__all__)
    for export in package.__all__:
        assert resolve(f"{name}.{export}") is not None


# `architectures` exports each builder under its module's name
# (`architectures.chain` is the function), as it did before the sub-packages.
HIDING_BY_DESIGN = ("keras_d2nn.architectures",)


@pytest.mark.parametrize(
    "name", [n for n in SUB_PACKAGES if n not in HIDING_BY_DESIGN]
)
def test_no_export_hides_a_module_of_the_same_name(name):
    # `from package.verify import verify` in an `__init__` would make
    # `package.verify` the function and break `import package.verify`.
    package = importlib.import_module(name)
    folder = pathlib.Path(package.__file__).parent
    for module in folder.glob("*.py"):
        value = vars(package).get(module.stem)
        assert value is None or isinstance(value, types.ModuleType), (
            f"{name}.{module.stem} is a {type(value).__name__}, not the "
            "module of that name"
        )


def test_top_level_names_of_0_1_0_are_kept():
    assert set(TOP_LEVEL_0_1_0) <= set(keras_d2nn.__all__)
    for name in keras_d2nn.__all__:
        assert getattr(keras_d2nn, name) is not None


@pytest.mark.parametrize("dotted", DOCUMENTED)
def test_documented_paths_resolve(dotted):
    assert resolve(dotted) is not None
