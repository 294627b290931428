"""Every public object's docstring carries a fenced ```python `Example:`,
and every such example runs.

The public surface: every name in `keras_d2nn.__all__` and in each
sub-package's `__all__`, and the public methods of the public classes.
A module named in an `__all__` stands for its own `__all__` when it has
one (`experiments.tuning`), for the function of its name when it holds
one (`inspection.routing_report`), else for itself (its docstring
carries the example). A method counts when its name has no leading
underscore, is defined in a `keras_d2nn` class, and is not one a
non-`keras_d2nn` base defines (`call`, `get_config`, `fit`, `setUp`,
...: those are Keras's, keras-tuner's or unittest's API); an override of
a `keras_d2nn` base's method is that base's method (`Reinforce`'s
`controller_loss` is `Estimator.controller_loss`). Properties are
attributes, not methods.

Each object's examples are the ```python blocks after its `Example:`
line. They run in order, in one fresh copy of this namespace, in a
temporary working directory:

- `keras`, `np`, `tf`, `keras_d2nn`;
- `images`, `labels`: 64 deterministic training examples, float32
  28x28x1 images in [0, 1) and int32 labels in 0..9; `test_images`,
  `test_labels`: 64 more;
- `loss`: `keras.losses.SparseCategoricalCrossentropy(from_logits=True)`,
  the README's;
- `model`: an untrained `keras_d2nn.architectures.high_low()` compiled
  with `"adam"`, `loss` and `metrics=["accuracy"]`.

Markers, among a block's first lines: `# slow` (exports to LiteRT or
ONNX, tuning searches, preparing TFDS data) makes the object's examples
run only in the slow test (`pytest -m slow`); `# needs Fashion-MNIST`
runs them where the IDX files are installed (the `fashion_mnist`
fixture: skipped without them, except on CI).
"""

import importlib
import inspect
import pkgutil
import re
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_d2nn

SLOW = "# slow"
NEEDS_DATA = "# needs Fashion-MNIST"

# Public objects with no runnable example, each with the reason.
ALLOWED_WITHOUT_EXAMPLE = {
    # Constants: values to read, nothing to run.
    "keras_d2nn.__version__": "the version string",
    "keras_d2nn.architectures.ARCHITECTURES": "a constant: builders by name",
    "keras_d2nn.data.CLASS_NAMES": "a constant",
    "keras_d2nn.data.DATASETS": "a constant",
    "keras_d2nn.data.SPLITS": "a constant",
    "keras_d2nn.estimators.NAMED": "a constant: estimators by name",
    "keras_d2nn.export.QUANTIZATIONS": "a constant",
    "keras_d2nn.profiling.RUNTIMES": "a constant",
    "keras_d2nn.experiments.tuning.OBJECTIVE": "a constant (keras-tuner's)",
    "keras_d2nn.testing.LOSS": "a constant (a Keras loss object)",
    # Exceptions: raised by the library, not called.
    "keras_d2nn.UncountableLayerError": "an exception class",
    "keras_d2nn.testing.EXPORT_FORMATS": "a constant",
    "keras_d2nn.testing.DEFAULT_FORMATS": "a constant",
}


def _ours(obj):
    return (getattr(obj, "__module__", None) or "").startswith("keras_d2nn")


def _sub_packages():
    return ["keras_d2nn"] + sorted(
        f"keras_d2nn.{info.name}"
        for info in pkgutil.iter_modules(keras_d2nn.__path__)
        if info.ispkg
    )


def _methods(cls, class_names):
    """`(qualified name, function)` of the public methods of `cls`."""
    foreign = set()
    for base in cls.__mro__[1:]:
        if not _ours(base):
            foreign.update(vars(base))
    for name in sorted({n for k in cls.__mro__ if _ours(k) for n in vars(k)}):
        if name.startswith("_") or name in foreign:
            continue
        # The most basic keras_d2nn class defining the name owns it.
        origin = [k for k in cls.__mro__ if _ours(k) and name in vars(k)][-1]
        attr = inspect.getattr_static(origin, name)
        if isinstance(attr, (staticmethod, classmethod)):
            attr = attr.__func__
        if not inspect.isfunction(attr):
            continue  # a property or a class attribute
        owner = class_names.get(origin, class_names[cls])
        yield f"{owner}.{name}", getattr(origin, name)


def public_objects():
    """`{qualified name: object}` of the public surface, each object once,
    under the first name it is found by."""
    named = {}  # id or qualified name -> (qualified name, object)
    packages = _sub_packages()

    def add(qualified, value):
        if isinstance(value, types.ModuleType):
            if value.__name__ in packages:
                return  # walked as a sub-package
            if hasattr(value, "__all__"):
                return walk(value.__name__, value)
            own = getattr(value, value.__name__.rpartition(".")[2], None)
            if inspect.isfunction(own):
                return add(f"{qualified}.{own.__name__}", own)
        key = qualified if isinstance(value, (str, tuple)) else id(value)
        named.setdefault(key, (qualified, value))

    def walk(prefix, module):
        for name in module.__all__:
            value = getattr(module, name, None)
            if value is None:
                value = importlib.import_module(f"{prefix}.{name}")
            add(f"{prefix}.{name}", value)

    for package in packages:
        walk(package, importlib.import_module(package))
    objects = dict(named.values())
    class_names = {
        value: name
        for name, value in objects.items()
        if inspect.isclass(value) and _ours(value)
    }
    for cls in list(class_names):
        for qualified, method in _methods(cls, class_names):
            objects.setdefault(qualified, method)
    return objects


def docstring(obj):
    if isinstance(obj, types.ModuleType):
        return inspect.cleandoc(obj.__doc__ or "")
    return inspect.getdoc(obj) or ""


def example_blocks(obj):
    """The ```python blocks after the docstring's `Example:` line."""
    parts = re.split(
        r"^Examples?:[ \t]*$", docstring(obj), maxsplit=1, flags=re.M
    )
    if len(parts) < 2:
        return []
    return re.findall(r"^```python\n(.*?)^```", parts[1], flags=re.S | re.M)


PUBLIC = public_objects()
WITH_EXAMPLES = {
    name: blocks
    for name, obj in PUBLIC.items()
    if name not in ALLOWED_WITHOUT_EXAMPLE and (blocks := example_blocks(obj))
}


def test_the_surface_is_found():
    assert "keras_d2nn.Graph.q_node" in PUBLIC
    assert "keras_d2nn.experiments.tuning.D2NNHyperModel" in PUBLIC
    assert "keras_d2nn.Controller.call" not in PUBLIC  # Keras's API
    assert len(PUBLIC) > 100


def test_every_public_object_has_a_fenced_example():
    missing = sorted(
        name
        for name in PUBLIC
        if name not in ALLOWED_WITHOUT_EXAMPLE and name not in WITH_EXAMPLES
    )
    assert not missing, (
        f"{len(missing)} public objects have no fenced ```python block "
        "after an `Example:` line in their docstring (or, if none can "
        f"run, an entry in ALLOWED_WITHOUT_EXAMPLE): {missing}"
    )


def test_the_allow_list_names_public_objects():
    assert sorted(set(ALLOWED_WITHOUT_EXAMPLE) - set(PUBLIC)) == []


def namespace():
    """A fresh copy of the names every example may use."""
    rng = np.random.default_rng(0)

    def batch(n=64):
        images = rng.random((n, 28, 28, 1), dtype=np.float32)
        return images, rng.integers(0, 10, n).astype("int32")

    (images, labels), (test_images, test_labels) = batch(), batch()
    keras.utils.set_random_seed(0)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model = keras_d2nn.architectures.high_low()
    model.compile("adam", loss, metrics=["accuracy"])
    return {
        "__name__": "docstring_example",
        "keras": keras,
        "np": np,
        "tf": tf,
        "keras_d2nn": keras_d2nn,
        "images": images,
        "labels": labels,
        "test_images": test_images,
        "test_labels": test_labels,
        "loss": loss,
        "model": model,
    }


def markers(blocks):
    """The comment lines that open the blocks."""
    found = set()
    for block in blocks:
        for line in block.splitlines():
            if not line.startswith("#"):
                break
            found.add(line.strip())
    return found


def _params():
    for name, blocks in sorted(WITH_EXAMPLES.items()):
        slow = SLOW in markers(blocks)
        yield pytest.param(
            name, marks=[pytest.mark.slow] if slow else [], id=name
        )


@pytest.mark.parametrize("name", list(_params()))
def test_example_runs(name, tmp_path, monkeypatch, request):
    blocks = WITH_EXAMPLES[name]
    if NEEDS_DATA in markers(blocks):
        request.getfixturevalue("fashion_mnist")
    monkeypatch.chdir(tmp_path)
    scope = namespace()
    for index, block in enumerate(blocks):
        code = compile(block, f"<example {index} of {name}>", "exec")
        exec(code, scope)
