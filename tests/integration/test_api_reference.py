"""docs/api.md is what docs/build_api_reference.py makes of the code now:
a docstring or a public name changed without rebuilding it fails here."""

import importlib.util
import pathlib

BUILDER = pathlib.Path(__file__).parents[2] / "docs" / "build_api_reference.py"


def builder():
    spec = importlib.util.spec_from_file_location(
        "build_api_reference", BUILDER
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_api_reference_matches_the_docstrings():
    module = builder()
    assert module.PAGE.read_text() == module.render(), (
        "docs/api.md is stale: run python docs/build_api_reference.py"
    )


def test_every_public_name_has_its_entry():
    module = builder()
    text = module.PAGE.read_text()
    import keras_d2nn

    for name in keras_d2nn.__all__:
        assert f"`keras_d2nn.{name}`" in text, name
    assert "(no docstring)" not in text
