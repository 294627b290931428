"""Release 0.1's module names, moved by the role layout (0.2).

`keras_d2nn.exported`, `.tuning`, `.baselines`, `.sampling` and
`.verify` were documented in release 0.1 (its README and
saved_models/README.md) and moved into sub-packages. Each old name is a
small module calling `alias`, which puts the new module in its place in
`sys.modules`: `import keras_d2nn.tuning` and `from keras_d2nn.exported
import load_exported` go on working, and are the new modules' very
objects (one `D2NNHyperModel` class, not a copy), with a
DeprecationWarning naming the new place.
"""

import importlib
import os
import sys
import warnings

_PACKAGE = os.path.dirname(os.path.abspath(__file__))

# Old name -> the module it is now.
MOVED = {
    "keras_d2nn.exported": "keras_d2nn.export.runtime",
    "keras_d2nn.tuning": "keras_d2nn.experiments.tuning",
    "keras_d2nn.baselines": "keras_d2nn.experiments.baselines",
    "keras_d2nn.sampling": "keras_d2nn.execution.sampling",
    "keras_d2nn.verify": "keras_d2nn.export.verify",
}


def alias(old, new):
    """Makes module name `old` stand for module `new` (importing it), and
    warns that `old` is deprecated.

    Example: `alias("keras_d2nn.tuning", "keras_d2nn.experiments.tuning")`.
    """
    warnings.warn(
        f"`{old}` is release 0.1's name of `{new}`; import `{new}` "
        "instead (the old name will be removed in a later release).",
        DeprecationWarning,
        stacklevel=_importer_level(),
    )
    module = importlib.import_module(new)
    sys.modules[old] = module
    package, _, name = old.rpartition(".")
    setattr(sys.modules[package], name, module)


def _importer_level():
    """The `stacklevel` of the user's import statement, seen from
    `alias`'s caller: above this package's frames and importlib's.
    `warnings.warn` itself skips importlib's frames when it counts (how
    many there are depends on the import form), so only ours count."""
    frame = sys._getframe(2)  # the old module's body
    level = 2
    while frame is not None:
        name = frame.f_code.co_filename
        internal = "importlib" in name and "_bootstrap" in name
        if not internal:
            if not os.path.abspath(name).startswith(_PACKAGE):
                return level
            level += 1
        frame = frame.f_back
    return level
