"""A run's folder of outputs, committed whole: written under a hidden
name beside the destination, then renamed onto it.

A train job writes `report.json`, `model.keras` and plots that belong
together. Written in place, a kill or a full disk left a new report
beside the previous run's model, or a truncated model. Staged, the
destination holds either the previous run or the new one, whole.
"""

import contextlib
import os
import pathlib
import shutil
from collections.abc import Iterator

from keras_d2nn.storage import atomic_files


class OutputNotWritable(ValueError):
    """The output folder cannot take the run's outputs (said before any
    work is done).

    Example:

    ```python
    from keras_d2nn.storage import OutputNotWritable, check_writable

    try:
        check_writable("runs/default", needed_bytes=10**18)
    except OutputNotWritable as error:
        print(error)  # not enough disk space for the outputs in ...
    ```
    """


def check_writable(
    output_dir: str | os.PathLike[str],
    needed_bytes: int = 0,
    previous_run_marker: str | None = None,
) -> None:
    """Raises `OutputNotWritable` unless a folder can be written at
    `output_dir` with `needed_bytes` free beside it: a file or a symbolic
    link in the way, the current folder or one of its parents, a
    read-only parent, a full disk, said in one line before training.

    `staged_run_folder` replaces `output_dir` whole: with
    `previous_run_marker`, an existing non-empty folder is accepted only
    if it holds that file (an earlier run's), so that a home folder or a
    folder of other runs is never replaced.

    Example:

    ```python
    from keras_d2nn.storage import check_writable

    check_writable("runs/default", needed_bytes=50_000_000)  # or raises
    ```
    """
    output_dir = pathlib.Path(output_dir)
    where = f"output folder {output_dir}"
    if output_dir.is_symlink():
        raise OutputNotWritable(
            f"{where} is a symbolic link; give the folder it points to "
            f"({output_dir.resolve()})."
        )
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputNotWritable(
            f"{where} is a file; expected a folder (or nothing) there."
        )
    cwd = pathlib.Path.cwd()
    if output_dir.name in ("", ".", "..") or (
        output_dir.exists() and cwd.is_relative_to(output_dir.resolve())
    ):
        raise OutputNotWritable(
            f"{where} is the current folder or one of its parents, which "
            "the run's outputs would replace; give a folder of its own, "
            "e.g. runs/mine."
        )
    if (
        previous_run_marker is not None
        and output_dir.is_dir()
        and any(output_dir.iterdir())
        and not (output_dir / previous_run_marker).exists()
    ):
        raise OutputNotWritable(
            f"{where} holds files but no {previous_run_marker}, so it is "
            "not an earlier run's folder, which a run replaces whole; give "
            "a new or empty folder."
        )
    parent = output_dir.parent
    _probe(output_dir, "the output folder")
    free = shutil.disk_usage(parent).free
    if free < needed_bytes:
        raise OutputNotWritable(
            f"not enough disk space for the outputs in {output_dir}: "
            f"{free / 1e6:,.0f} MB free, {needed_bytes / 1e6:,.0f} MB needed."
        )


def _probe(path: pathlib.Path, what: str) -> None:
    """Creates (and removes) a folder beside `path`: the one way to know
    that it can be written, whoever runs."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = atomic_files.partial_name(path)
        probe.mkdir()
        probe.rmdir()
    except OSError as error:
        raise OutputNotWritable(
            f"cannot write {what} {path}: {error.strerror or error}."
        ) from None


def check_file_writable(
    path: str | os.PathLike[str], flag: str, folder_ok: bool = False
) -> None:
    """Raises `OutputNotWritable` unless a file (or, with `folder_ok`, a
    folder such as a SavedModel) can be written at `path`, named by
    `flag` in the message: said before the work whose result it would
    hold.

    Example:

    ```python
    from keras_d2nn.storage import check_file_writable

    check_file_writable("reports/verify.json", "--report")  # or raises
    ```
    """
    path = pathlib.Path(path)
    if path.name in ("", ".", ".."):
        raise OutputNotWritable(
            f"{flag}: {str(path)!r} names a folder by its place; expected "
            "the path of a new file."
        )
    if path.is_dir() and not folder_ok:
        raise OutputNotWritable(
            f"{flag}: {path} is a folder; expected the path of a file."
        )
    _probe(path, f"{flag}")


def _alive(pid: int) -> bool:
    """Whether process `pid` runs. This process's own id counts as dead:
    in a container every run may be process 1, and what a killed
    earlier run left under it is no live run's."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _siblings(output_dir: pathlib.Path, mark: str):
    """`(path, pid)` of the hidden outputs beside `output_dir` named with
    `mark`."""
    prefix = f".{output_dir.name}{mark}"
    if not output_dir.parent.is_dir():
        return
    for path in output_dir.parent.iterdir():
        if path.name.startswith(prefix):
            pid = path.name[len(prefix) :].split("-", 1)[0]
            if pid.isdigit():
                yield path, int(pid)


def recover_run_folder(output_dir: str | os.PathLike[str]) -> None:
    """Undoes what a killed run left beside `output_dir`: the previous
    run's folder, moved aside when the kill came between the two renames
    of a commit, is moved back; folders that dead runs were writing are
    removed.

    Example:

    ```python
    from keras_d2nn.storage import recover_run_folder

    recover_run_folder("runs/default")  # before writing runs/default
    ```
    """
    output_dir = pathlib.Path(output_dir)
    for path, pid in _siblings(output_dir, atomic_files.PREVIOUS_MARK):
        if not _alive(pid):
            if output_dir.exists():
                atomic_files.remove(path)
            else:
                os.replace(path, output_dir)
    for path, pid in _siblings(output_dir, atomic_files.PARTIAL_MARK):
        if not _alive(pid):
            atomic_files.remove(path)


@contextlib.contextmanager
def staged_run_folder(
    output_dir: str | os.PathLike[str],
) -> Iterator[pathlib.Path]:
    """Yields an empty hidden folder beside `output_dir` to write a run's
    outputs to; when the block ends without an error, it replaces
    `output_dir` whole (the previous run's outputs are removed only once
    the new ones are in place). On an error nothing is left of it, and
    the previous run is untouched.

    Example:

    ```python
    from keras_d2nn.storage import staged_run_folder

    with staged_run_folder("runs/default") as folder:
        (folder / "report.json").write_text("{}")
    ```
    """
    output_dir = pathlib.Path(output_dir)
    recover_run_folder(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = atomic_files.partial_name(output_dir)
    staging.mkdir()
    try:
        yield staging
        atomic_files.fsync_tree(staging)
        atomic_files.move_into_place(staging, output_dir)
    finally:
        atomic_files.remove(staging)
