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

Stated results. A comment after a top-level expression (ending its last
line, or on the comment-only line right after it, and running on over
the comment-only lines aligned with it) states the expression's value
when its text up to the first ": " outside brackets and quotes is a
Python literal; prose may follow the ": ". The test evaluates the
expression and compares:

    model.plan.controllers  # ("gate",): one controller
    keras_d2nn.layer_flops(keras.layers.Dense(4), x)  # 68.0: 2*8*4 + 4

- ints, strings, bools and None compare exactly (an int stated, a float
  got, differ); a float matches within half a unit of its last written
  digit (`0.35` is 0.345 to 0.355);
- tensors and arrays compare as (nested) lists, shapes as tuples; a list
  stated is not a tuple got;
- `...` stands for any value, in a list or tuple for any number of
  items (`["image", ..., "logits"]`), and in a string for any text
  (`"WARNING: ..."`);
- `# e.g. VALUE` marks an illustrative value (an untrained model's
  decisions, a timing): the expression runs, the value is not compared;
- any other comment is prose (`# the argmax`, `# 2 batches`), not
  compared. A comment opening with a bracket or a quote that does not
  parse, or a value stated after a statement that is not an expression
  (`x = f()  # 3`), fails `test_stated_results_are_read`.
"""

import ast
import importlib
import inspect
import io
import os
import pkgutil
import re
import tokenize
import types
import typing

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
    "keras_d2nn.testing.HIGH": "a constant: probe_model's action 1",
    "keras_d2nn.testing.STOP": "a constant: probe_model's action 0",
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


ILLUSTRATIVE = "e.g."
# A stated value opening with one of these must parse.
OPENING = tuple("([{\"'")


class Statement(typing.NamedTuple):
    node: ast.stmt  # a top-level statement of the block
    comment: str | None  # the comment after it, continuation lines joined
    line: int  # the comment's first line in the block


def statements(block):
    """The block's top-level statements, each with the comment that may
    state its result: the comment ending its last line, or else the
    comment-only line right after it at its indentation; either runs on
    over the next comment-only lines whose `#` is at the same column."""
    comments = {}  # line -> (column, text after the "#")
    for token in tokenize.generate_tokens(io.StringIO(block).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = (token.start[1], token.string[1:])
    lines = block.splitlines()

    def comment_only(number):
        return number <= len(lines) and lines[number - 1].lstrip()[:1] == "#"

    for node in ast.parse(block).body:
        end = node.end_lineno
        if end in comments and not comment_only(end):
            column = comments[end][0]
        elif comment_only(end + 1) and comments[end + 1][0] == node.col_offset:
            end += 1
            column = node.col_offset
        else:
            yield Statement(node, None, end)
            continue
        first, parts = end, [comments[end][1].strip()]
        while comment_only(end + 1) and comments[end + 1][0] == column:
            end += 1
            parts.append(comments[end][1].strip())
        yield Statement(node, " ".join(parts), first)


def value_text(comment):
    """The comment up to its first ": " outside brackets and quotes (the
    prose after it explains the value)."""
    depth, quote = 0, None
    for index, char in enumerate(comment):
        if quote:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == ":" and depth == 0 and comment[index + 1 :][:1] in " ":
            return comment[:index].strip()
    return comment.strip()


class Close:
    """A stated float: matches a number within half a unit of its last
    written digit (`0.35` matches 0.3466, `1122.0` matches 1122.04)."""

    def __init__(self, value, text):
        mantissa, _, exponent = text.lower().lstrip("+-").partition("e")
        decimals = len(mantissa.partition(".")[2]) - int(exponent or 0)
        self.value, self.text = value, text
        self.tolerance = 0.5 * 10.0**-decimals

    def __repr__(self):
        return self.text


def parse_value(text):
    """A stated value: Python literals, each float a `Close`, `...` the
    `Ellipsis`. Raises SyntaxError or ValueError."""

    def convert(node):
        if isinstance(node, ast.Constant):
            if isinstance(node.value, float):
                return Close(node.value, ast.get_source_segment(text, node))
            return node.value
        if isinstance(node, (ast.Tuple, ast.List)):
            items = [convert(item) for item in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.Dict) and None not in node.keys:
            return {
                convert(key): convert(item)
                for key, item in zip(node.keys, node.values)
            }
        if (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, (ast.USub, ast.UAdd))
            and isinstance(node.operand, ast.Constant)
            and type(node.operand.value) in (int, float)
        ):
            value = node.operand.value
            value = -value if isinstance(node.op, ast.USub) else value
            if isinstance(value, float):
                return Close(value, ast.get_source_segment(text, node))
            return value
        raise ValueError(f"{ast.unparse(node)} is not a literal")

    return convert(ast.parse(text, mode="eval").body)


def read(comment):
    """What the comment after an expression states: `("value", value)`,
    `("illustrative", None)` or `("prose", None)`. Raises ValueError when
    it opens with a bracket or a quote but does not parse."""
    text = value_text(comment)
    if text.startswith(ILLUSTRATIVE):
        return "illustrative", None
    try:
        return "value", parse_value(text)
    except (SyntaxError, ValueError) as error:
        if text.startswith(OPENING):
            raise ValueError(
                f"`{text}` opens like a stated value but is not one "
                f"({error}): write the value as a Python literal, then "
                "': ' and any prose"
            ) from None
        return "prose", None


def plain(value):
    """`value` as the Python values a comment can state: tensors and
    arrays as (nested) lists or scalars, shapes as tuples."""
    if isinstance(value, tf.TensorShape) and value.rank is not None:
        return tuple(value.as_list())
    if isinstance(value, keras.Variable):
        value = keras.ops.convert_to_numpy(value)
    if isinstance(value, (tf.Tensor, tf.Variable, np.ndarray, np.generic)):
        return np.asarray(value).tolist()
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        items = [plain(item) for item in value]
        return items if isinstance(value, list) else tuple(items)
    return value


def short(value, limit=200):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + " ..."


def mismatch(stated, got):
    """Why `got` (a `plain` value) is not the `stated` one, or None."""
    if stated is Ellipsis:
        return None
    if isinstance(stated, Close):
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            return f"a number is stated, got {short(got)}"
        if abs(got - stated.value) <= stated.tolerance * (1 + 1e-9):
            return None
        return f"{short(got)} is not {stated.text} ± {stated.tolerance:g}"
    if isinstance(stated, bool) or stated is None:
        return None if got is stated else f"{short(got)} is not {stated!r}"
    if isinstance(stated, int):
        if isinstance(got, bool) or not isinstance(got, int):
            return f"an int is stated, got {short(got)}"
        return None if got == stated else f"{short(got)} is not {stated!r}"
    if isinstance(stated, str):
        pattern = ".*".join(map(re.escape, stated.split("...")))
        if isinstance(got, str) and re.fullmatch(pattern, got, flags=re.S):
            return None
        return f"{short(got)} is not {stated!r}"
    if isinstance(stated, (list, tuple)):
        if type(got) is not type(stated):
            kind = type(stated).__name__
            return f"a {kind} is stated, got {type(got).__name__} {short(got)}"
        return _items_mismatch(list(stated), list(got))
    if isinstance(stated, dict):
        if not isinstance(got, dict) or set(got) != set(stated):
            return f"{short(got)} has not the stated keys {list(stated)}"
        for key, item in stated.items():
            if reason := mismatch(item, got[key]):
                return f"[{key!r}]: {reason}"
        return None
    return None if got == stated else f"{short(got)} is not {stated!r}"


def _items_mismatch(stated, got, start=0):
    """`mismatch` of sequences, where a stated `...` stands for any number
    of items."""
    if not stated:
        return f"{len(got)} more items than stated" if got else None
    if stated[0] is Ellipsis:
        for skip in range(len(got) + 1):
            if not _items_mismatch(stated[1:], got[skip:], start + skip):
                return None
        return f"the items after [{start}] are not the stated ones"
    if not got:
        return f"fewer items than stated ({start})"
    if reason := mismatch(stated[0], got[0]):
        return f"[{start}]: {reason}"
    return _items_mismatch(stated[1:], got[1:], start + 1)


def census(blocks):
    """`[(index of block, Statement, kind, value)]` of the comments after
    expressions, and the problems, `[(index, Statement, why)]`: comments
    opening like values that do not parse, and values stated after
    statements that are not expressions."""
    read_ones, problems = [], []
    for index, block in enumerate(blocks):
        for statement in statements(block):
            if statement.comment is None:
                continue
            try:
                kind, value = read(statement.comment)
            except ValueError as error:
                problems.append((index, statement, str(error)))
                continue
            if isinstance(statement.node, ast.Expr):
                read_ones.append((index, statement, kind, value))
            elif kind != "prose":
                problems.append(
                    (
                        index,
                        statement,
                        "a value stated after a statement that is not an "
                        "expression: state it after an expression, or "
                        "begin the comment with a word",
                    )
                )
    return read_ones, problems


def where(name, index, blocks, statement):
    """Which example, which line: `name, example 0, line 3 (path:97)`."""
    text = blocks[index].splitlines()[statement.line - 1]
    return (
        f"{name}, example {index}, line {statement.line} "
        f"({source_line(name, text)})"
    )


ROOT = os.path.dirname(os.path.dirname(keras_d2nn.__file__))


def source_line(name, text):
    """`path:line` of the docstring line `text` in `name`'s source."""
    obj = PUBLIC[name]
    try:
        path = inspect.getsourcefile(obj)
        start = 0
        if not isinstance(obj, types.ModuleType):
            start = inspect.getsourcelines(obj)[1] - 1
        with open(path) as file:
            lines = file.read().splitlines()
    except (OSError, TypeError):
        return "?"
    for number in range(start, len(lines)):
        if lines[number].strip() == text.strip():
            return f"{os.path.relpath(path, ROOT)}:{number + 1}"
    return os.path.relpath(path, ROOT)


def test_stated_results_are_read():
    problems = [
        f"{where(name, index, blocks, statement)}: # {statement.comment}"
        f"\n  {why}"
        for name, blocks in sorted(WITH_EXAMPLES.items())
        for index, statement, why in census(blocks)[1]
    ]
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
    read_ones, _ = census(WITH_EXAMPLES["keras_d2nn.Controller.compute_flops"])
    [(_, statement, kind, value)] = read_ones
    assert kind == "value" and value.value == 1122.0


@pytest.mark.parametrize(
    "comment, got, reason",
    [
        ("1122.0", 1122.04, None),
        ("0.35: -log(0.5) / 2", 0.3466, None),
        ("0.35", 0.3449, "0.3449 is not 0.35 ± 0.005"),
        ("1e-3", 0.0012, None),
        ("-0.2", -0.2000001, None),
        ("3", 3.0, "an int is stated, got 3.0"),
        ("True", 1, "1 is not True"),
        ("(4, 10)", [4, 10], "a tuple is stated, got list [4, 10]"),
        ('["image", ..., "logits"]', ["image", "low", "logits"], None),
        ('["image", ...]', ["low"], "[0]: 'low' is not 'image'"),
        ('{"stop": ..., "high": 0.2}', {"stop": 1, "high": 0.19}, None),
        ('{"stop": ...}', {"stop": 1, "high": 0}, "has not the stated"),
        ('["WARNING: no trial ...; ..."]', ["WARNING: no trial x; y"], None),
        ("None: none within", None, None),
        ("e.g. 0.31", None, "illustrative"),
        ("the argmax", None, "prose"),
        ("0 (stop) or 1 (high)", None, "prose"),
    ],
)
def test_stated_results_compare(comment, got, reason):
    kind, value = read(comment)
    if kind != "value":
        assert kind == reason
        return
    found = mismatch(value, plain(got))
    assert (found is None) if reason is None else (reason in found), found


@pytest.mark.parametrize("name", list(_params()))
def test_example_runs(name, tmp_path, monkeypatch, request):
    blocks = WITH_EXAMPLES[name]
    if NEEDS_DATA in markers(blocks):
        request.getfixturevalue("fashion_mnist")
    monkeypatch.chdir(tmp_path)
    stated = {
        (index, statement.node.lineno): (statement, value)
        for index, statement, kind, value in census(blocks)[0]
        if kind == "value"
    }
    scope = namespace()
    failures = []
    for index, block in enumerate(blocks):
        filename = f"<example {index} of {name}>"
        lines = block.splitlines()
        for node in ast.parse(block).body:
            if (index, node.lineno) not in stated:
                module = ast.Module([node], type_ignores=[])
                exec(compile(module, filename, "exec"), scope)
                continue
            statement, value = stated[index, node.lineno]
            got = eval(
                compile(ast.Expression(node.value), filename, "eval"), scope
            )
            if reason := mismatch(value, plain(got)):
                code = "\n".join(
                    "    " + line
                    for line in lines[node.lineno - 1 : node.end_lineno]
                )
                failures.append(
                    f"{where(name, index, blocks, statement)}:\n{code}\n"
                    f"  stated: {value_text(statement.comment)}\n"
                    f"  got:    {reason}"
                )
    if failures:
        message = "\n".join(["stated results differ:", *failures])
        pytest.fail(message, pytrace=False)
