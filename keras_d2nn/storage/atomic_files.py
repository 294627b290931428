"""One output written whole or not at all: temporary name, fsync, rename.

`os.replace` within one directory is atomic on POSIX file systems, so a
reader (or a rerun after a kill) sees either the previous file or the
new one, never a truncated mix.
"""

import contextlib
import errno
import os
import pathlib
import shutil
import uuid
from collections.abc import Iterator

# Hidden names beside an output: one being written, and a previous
# output moved aside while the new one takes its place.
PARTIAL_MARK = ".partial-"
PREVIOUS_MARK = ".previous-"


def partial_name(path: pathlib.Path, mark: str = PARTIAL_MARK) -> pathlib.Path:
    """A hidden, unique name beside `path`: its whole name (so that
    `runs/lr0.01` and `runs/lr0` never share one), `mark`, this process's
    id, and the same suffix again (Keras and LiteRT check it)."""
    if path.name in ("", ".", ".."):
        raise ValueError(
            f"{str(path)!r} names a folder by its place (the current one or "
            "a parent), not by a name: give the path of a new file or folder."
        )
    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    return path.with_name(f".{path.name}{mark}{token}{path.suffix}")


def fsync_tree(path: pathlib.Path) -> None:
    """Flushes a file, or every file of a directory, and the directories
    themselves, to disk."""
    paths = [path] if path.is_file() else [path, *path.rglob("*")]
    for item in paths:
        flags = os.O_RDONLY | (os.O_DIRECTORY if item.is_dir() else 0)
        descriptor = os.open(item, flags)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def remove(path: pathlib.Path) -> None:
    """Removes a file or a directory tree, if there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def move_into_place(source: pathlib.Path, target: pathlib.Path) -> None:
    """`os.replace`, also onto an existing directory: the old one is
    moved aside first and removed only once the new one is in place. A
    file never replaces a directory (IsADirectoryError): that would
    delete a folder the caller did not write."""
    if target.is_dir() and not source.is_dir():
        raise IsADirectoryError(
            errno.EISDIR, "a folder is where the file should go", str(target)
        )
    if target.is_dir() and not target.is_symlink():
        aside = partial_name(target, PREVIOUS_MARK)
        os.replace(target, aside)
        try:
            os.replace(source, target)
        except BaseException:
            os.replace(aside, target)  # the previous output stays
            raise
        remove(aside)
    else:
        os.replace(source, target)
    _fsync_directory(target.parent)


def _fsync_directory(directory: pathlib.Path) -> None:
    """Makes the rename itself durable."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[pathlib.Path]:
    """Yields a temporary path beside `path` to write a file or directory
    to; when the block ends without an error, the output is flushed to
    disk and moved onto `path` in one step. On any error (a full disk, a
    kill signal turned into an exception) it is removed and whatever
    `path` held before is left untouched.

    Example:

    ```python
    from keras_d2nn.storage import atomic_output

    with atomic_output("runs/report.json") as temporary:
        temporary.write_text("{}")
    ```
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = partial_name(path)
    try:
        yield temporary
        fsync_tree(temporary)
        move_into_place(temporary, path)
    finally:
        remove(temporary)


def write_text_atomically(path: str | os.PathLike[str], text: str) -> None:
    """`pathlib.Path(path).write_text(text)`, written whole or not at all.

    Example:

    ```python
    from keras_d2nn.storage import write_text_atomically

    write_text_atomically("runs/report.json", "{}")
    ```
    """
    with atomic_output(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
