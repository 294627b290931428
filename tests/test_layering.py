"""Imports point down the layers: a module of the package imports only from
its own layer and the layers before it (docs/architecture.md).

Lazy imports inside functions count too: an upward import that runs late
is still an upward dependency.
"""

import ast
import pathlib

import keras_d2nn

# The layer order, lowest first: the one place it is written. Each entry
# names the top-level sub-packages and modules of `keras_d2nn` in a layer.
# The data path reads off it: graph -> execution -> models -> export.
LAYERS = (
    ("api_export", "storage", "tf_logging", "version"),
    ("graph",),
    ("execution",),
    ("layers",),
    ("estimators",),
    ("inspection",),
    ("models",),
    ("callbacks",),
    ("recipes",),
    ("architectures",),
    ("export",),
    ("profiling",),
    ("data",),
    ("experiments",),
    ("testing",),
    ("cli", "__main__"),
    # Release 0.1's module names, each standing for a module of any layer
    # above (`release_0_1.alias` imports it by name).
    ("release_0_1", "exported", "tuning", "baselines", "sampling", "verify"),
)
# `import keras_d2nn` (the package's public face, `__init__.py`) sits above
# every layer: no module of the package may import it.
TOP = len(LAYERS)
PACKAGE = pathlib.Path(keras_d2nn.__file__).parent


def rank(component):
    """The layer index of a top-level component of `keras_d2nn`."""
    for index, layer in enumerate(LAYERS):
        if component in layer:
            return index
    raise KeyError(f"keras_d2nn.{component} is in no layer of LAYERS")


def component_of(path):
    """`keras_d2nn/graph/plan.py` -> `graph`; `keras_d2nn/cli.py` -> `cli`."""
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else path.stem


def imported_modules(source, module):
    """`(dotted name, line)` of every `keras_d2nn` module `source` imports.

    `from keras_d2nn import x` gives `keras_d2nn.x`; relative imports are
    resolved against `module` (the importing module's dotted name).
    """
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: -node.level]
                base = ".".join(anchor + ([base] if base else []))
            names = (
                [f"{base}.{alias.name}" for alias in node.names]
                if base == "keras_d2nn"
                else [base]
            )
        else:
            continue
        for name in names:
            if name == "keras_d2nn" or name.startswith("keras_d2nn."):
                yield name, node.lineno


def upward_imports(path, source):
    """Imports in `source` (the file at `path`) of a higher layer."""
    own = rank(component_of(path))
    module = ".".join(
        ("keras_d2nn",) + path.relative_to(PACKAGE).with_suffix("").parts
    )
    found = []
    for name, line in imported_modules(source, module):
        parts = name.split(".")
        target = TOP if len(parts) == 1 else rank(parts[1])
        if target > own:
            found.append(
                f"{path.relative_to(PACKAGE.parent)}:{line} imports "
                f"{name} (layer {target}) from layer {own}"
            )
    return found


def package_files():
    return sorted(
        p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py"
    )


def test_every_sub_package_and_module_has_one_layer():
    components = {
        p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()
    }
    components |= {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    listed = [name for layer in LAYERS for name in layer]
    assert len(listed) == len(set(listed))
    assert sorted(listed) == sorted(components)


def test_imports_point_down_the_layers():
    found = [
        line
        for path in package_files()
        for line in upward_imports(path, path.read_text())
    ]
    assert found == []


def test_the_check_sees_upward_and_lazy_imports():
    path = PACKAGE / "graph" / "plan.py"
    source = (
        "from keras_d2nn.models import D2NNModel\n"
        "from keras_d2nn.graph import flops\n"
        "from . import validation\n"
        "def f():\n"
        "    from keras_d2nn import export\n"
        "    import keras_d2nn\n"
    )
    found = upward_imports(path, source)
    assert [f.split(" imports ")[1].split(" ")[0] for f in found] == [
        "keras_d2nn.models",
        "keras_d2nn.export",
        "keras_d2nn",
    ]
