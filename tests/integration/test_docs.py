"""The README's and the docs pages' Python examples run as written, and
their links lead somewhere.

A block tagged ```python runs in a temporary directory; a page's blocks
run in their order on the page, in one namespace, as a reader pastes them
into one session (a guide builds on its earlier steps). Examples that
need long training, real data or a network are written as ```sh or
untagged ``` blocks, which do not run.
"""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))


def python_blocks(text):
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def run_blocks(page):
    namespace = {}
    for block in python_blocks(page.read_text()):
        exec(compile(block, str(page), "exec"), namespace)


def test_readme_python_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert python_blocks(README.read_text()), (
        "the README should carry runnable examples"
    )
    run_blocks(README)
    assert "run rate" in capsys.readouterr().out


PAGES_WITH_EXAMPLES = [page for page in DOCS if python_blocks(page.read_text())]


def test_docs_carry_runnable_examples():
    assert PAGES_WITH_EXAMPLES, "docs/ should carry runnable examples"


@pytest.mark.parametrize(
    "page", PAGES_WITH_EXAMPLES, ids=lambda page: page.name
)
def test_docs_python_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_blocks(page)


def test_readme_test_command_is_the_ci_command():
    ci = (README.parent / ".ci" / "run").read_text()
    readme = README.read_text()
    command = 'pip install -e ".[test]" && pytest'
    assert command in readme
    assert ci.strip().splitlines()[-1] == command


def test_readme_is_short():
    # The README is what a user reads to the end; the rest is in docs/.
    assert len(README.read_bytes()) < 10_000


def anchor(heading):
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def without_code(text):
    return re.sub(r"```.*?```", "", text, flags=re.DOTALL)


def anchors(page):
    return {
        anchor(heading)
        for heading in re.findall(
            r"^#+ (.*)$", without_code(page.read_text()), flags=re.MULTILINE
        )
    }


@pytest.mark.parametrize("page", [README] + DOCS, ids=lambda page: page.name)
def test_relative_links_resolve(page):
    text = without_code(page.read_text())
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # a URL
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(target)
        elif (
            fragment
            and linked.suffix == ".md"
            and fragment not in anchors(linked)
        ):
            broken.append(target)
    assert not broken, f"{page.name}: links to nothing: {broken}"


def test_code_cites_only_pages_in_the_repository():
    # Docstrings and comments send readers to pages by path from the
    # repository root (or a bare name in docs/): each must exist.
    sources = [
        *ROOT.glob("keras_d2nn/**/*.py"),
        ROOT / "setup.py",
        *ROOT.glob("benchmarks/*.py"),
        *ROOT.glob("examples/*.py"),
    ]
    missing = []
    for source in sources:
        for page in re.findall(r"[\w./-]+\.md\b", source.read_text()):
            if not ((ROOT / page).exists() or (ROOT / "docs" / page).exists()):
                missing.append(f"{source.relative_to(ROOT)}: {page}")
    assert sources and missing == []
