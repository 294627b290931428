"""Writes docs/api.md, the API reference, from the package's docstrings.

    python docs/build_api_reference.py          # rewrite docs/api.md
    python docs/build_api_reference.py --check  # exit 1 if it is stale

The public API is what each package exports in `__all__`: `keras_d2nn`
itself and every sub-package. Each exported function, class and module
gets its signature and docstring; each class, its own public methods and
properties (not those it inherits from Keras). An object exported by
several packages is written once, where it is first met, and linked from
the others. A test rebuilds the page and compares
(tests/integration/test_api_reference.py), so it cannot fall behind the
code.
"""

import argparse
import importlib
import inspect
import pathlib
import re
import sys

import keras

import keras_d2nn

PAGE = pathlib.Path(__file__).parent / "api.md"
PACKAGE = pathlib.Path(keras_d2nn.__file__).parent
HEADER = """# API reference

Generated from the docstrings by `python docs/build_api_reference.py`
(do not edit by hand; a test checks that it matches the code). The
guides start at [own_model.md](own_model.md) and
[concepts.md](concepts.md).
"""


def packages():
    """`keras_d2nn` and its sub-packages, by dotted name, sorted."""
    names = {"keras_d2nn"} | {
        ".".join(("keras_d2nn",) + p.parent.relative_to(PACKAGE).parts)
        for p in PACKAGE.rglob("__init__.py")
        if p.parent != PACKAGE
    }
    return sorted(names)


def anchor(name):
    """GitHub's anchor of a heading `name`."""
    return re.sub(r"[^\w\- ]", "", name.lower()).replace(" ", "-")


def without_addresses(text):
    """`text` without memory addresses (objects print them: `<function f
    at 0x7f...>`), which differ from run to run."""
    return re.sub(r" at 0x[0-9a-f]+", "", text)


def signature(obj):
    """`(arguments)` of a callable, without memory addresses."""
    try:
        return without_addresses(str(inspect.signature(obj)))
    except (TypeError, ValueError):
        return "(...)"


SECTION = re.compile(
    r"^(Args|Arguments|Attributes|Returns|Raises|Yields|Example|Examples|"
    r"Input shape|Output shape|References|Keys):(.*)$"
)
ENTRY = re.compile(r"^    (\*{0,2}[\w.]+)(\s\([^)]*\))?:\s(.*)$")


def sections_as_markdown(text):
    """Google-style docstring sections (`Args:`, `Returns:`...) as bold
    headings and their entries as list items, so that Markdown does not
    run them into one paragraph; fenced code is left as written."""
    lines, fenced, in_section = [], False, False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            lines.append(line)
            continue
        if fenced:
            lines.append(line)
            continue
        heading = SECTION.match(line)
        entry = ENTRY.match(line) if in_section else None
        if heading:
            rest = heading.group(2).strip()
            # A heading with its text on the line is a paragraph
            # (`Input shape: (batch, ...)`); one alone opens a list.
            in_section = not rest
            lines += ["", f"**{heading.group(1)}:** {rest}".rstrip()]
            lines += [] if rest else [""]
        elif entry:
            name, kind, rest = entry.groups()
            lines.append(f"- `{name}`{kind or ''}: {rest}")
        elif in_section and line.startswith("    "):
            # A continuation of the entry above, kept inside its item.
            lines.append("  " + line.strip())
        else:
            if not line.strip():
                in_section = False
            lines.append(line)
    return "\n".join(lines)


def docstring(obj):
    text = inspect.getdoc(obj) or "(no docstring)"
    # Headings inside docstrings would break the page's outline.
    text = re.sub(r"^#", r"\\#", text, flags=re.MULTILINE)
    text = sections_as_markdown(text)
    # Examples show as Python but are not run as one page: each runs
    # with its own setup (tests/integration/test_docstring_examples.py).
    return text.replace("```python", "```py")


# Keras's own hooks (`call`, `build`, `get_config`, `train_step`...):
# documented by Keras, overridden here to work, not called by users.
KERAS_HOOKS = frozenset(dir(keras.Model)) | frozenset(dir(keras.layers.Layer))


def members(cls):
    """The public methods and properties `cls` defines itself, Keras's
    hooks left out."""
    for name, value in vars(cls).items():
        if name.startswith("_") or name in KERAS_HOOKS:
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if inspect.isfunction(value) or isinstance(value, property):
            yield name, value


def render_object(dotted, obj):
    kind = (
        "module"
        if inspect.ismodule(obj)
        else "class"
        if inspect.isclass(obj)
        else "function"
        if callable(obj)
        else "value"
    )
    lines = [f"### `{dotted}`", ""]
    if kind == "module":
        lines += ["*module*", "", docstring(obj), ""]
        return lines
    if kind == "value":
        return lines + [f"*value*: `{without_addresses(repr(obj))}`", ""]
    lines += [f"*{kind}* `{dotted.rsplit('.', 1)[-1]}{signature(obj)}`", ""]
    lines += [docstring(obj), ""]
    if kind == "class":
        for name, member in members(obj):
            if isinstance(member, property):
                lines += [f"#### `{name}` *(property)*", ""]
                lines += [docstring(member), ""]
            else:
                lines += [f"#### `{name}{signature(member)}`", ""]
                lines += [docstring(member), ""]
    return lines


def render():
    """The whole page, as a string."""
    lines = [HEADER]
    written = {}
    for package_name in packages():
        package = importlib.import_module(package_name)
        lines += [f"## `{package_name}`", ""]
        summary = (inspect.getdoc(package) or "").split("\n\n", 1)[0]
        if summary:
            lines += [summary, ""]
        for name in sorted(package.__all__, key=str.lower):
            dotted = f"{package_name}.{name}"
            if not hasattr(package, name):  # a submodule, not imported yet
                importlib.import_module(dotted)
            obj = getattr(package, name)
            key = id(obj)
            if key in written and not isinstance(obj, (str, int, float)):
                first = written[key]
                lines += [
                    f"- `{dotted}`: see [`{first}`](#{anchor(first)}).",
                    "",
                ]
                continue
            written[key] = dotted
            lines += render_object(dotted, obj)
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if docs/api.md differs from what the code gives",
    )
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if PAGE.read_text() != text:
            print(f"{PAGE} is stale: run python {__file__}")
            return 1
        print(f"{PAGE} is up to date")
        return 0
    PAGE.write_text(text)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
