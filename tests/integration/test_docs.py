"""The README's Python examples run as written."""

import pathlib
import re

README = pathlib.Path(__file__).parents[2] / "README.md"


def python_blocks(text):
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_readme_python_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(README.read_text())
    assert blocks, "the README should carry runnable examples"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})
    assert "run rate" in capsys.readouterr().out


def test_readme_test_command_is_the_ci_command():
    ci = (README.parent / ".ci" / "run").read_text()
    readme = README.read_text()
    command = 'pip install -e ".[test]" && pytest'
    assert command in readme
    assert ci.strip().splitlines()[-1] == command
