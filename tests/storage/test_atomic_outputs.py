"""Outputs are written whole or not at all: a failure or a SIGKILL in the
middle of a write never destroys the previous output nor leaves a
complete-looking mix."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from keras_d2nn import storage
from keras_d2nn.storage import run_folder


def dead_pid():
    """The id of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_failed_write_leaves_the_previous_file_and_no_partial(tmp_path):
    path = tmp_path / "report.json"
    path.write_text("previous")
    with pytest.raises(OSError, match="No space left"):
        with storage.atomic_output(path) as temporary:
            temporary.write_text("half of the new")
            raise OSError(28, "No space left on device")
    assert path.read_text() == "previous"
    assert os.listdir(tmp_path) == ["report.json"]


def test_a_whole_write_replaces_the_file_and_keeps_the_suffix(tmp_path):
    path = tmp_path / "model.keras"
    path.write_text("previous")
    with storage.atomic_output(path) as temporary:
        assert temporary.suffix == ".keras"  # Keras checks it
        assert temporary.parent == tmp_path  # same file system: atomic
        temporary.write_text("new")
    assert path.read_text() == "new"
    assert os.listdir(tmp_path) == ["model.keras"]


def test_a_directory_output_replaces_the_previous_directory(tmp_path):
    path = tmp_path / "exported"
    path.mkdir()
    (path / "old_file").write_text("old")
    with storage.atomic_output(path) as temporary:
        temporary.mkdir()
        (temporary / "saved_model.pb").write_text("new")
    assert sorted(os.listdir(path)) == ["saved_model.pb"]
    assert os.listdir(tmp_path) == ["exported"]


def test_a_failed_run_leaves_the_previous_run_folder_whole(tmp_path):
    output = tmp_path / "default"
    output.mkdir()
    (output / "report.json").write_text("previous report")
    (output / "model.keras").write_text("previous model")
    with pytest.raises(RuntimeError):
        with storage.staged_run_folder(output) as folder:
            (folder / "report.json").write_text("new report")
            raise RuntimeError("the disk filled while saving the model")
    assert (output / "report.json").read_text() == "previous report"
    assert (output / "model.keras").read_text() == "previous model"
    assert os.listdir(tmp_path) == ["default"]


def test_a_whole_run_replaces_every_output_of_the_previous_one(tmp_path):
    output = tmp_path / "default"
    output.mkdir()
    (output / "stale.png").write_text("from the previous run")
    with storage.staged_run_folder(output) as folder:
        assert not output.joinpath("report.json").exists()  # not yet
        (folder / "report.json").write_text("new")
    assert sorted(os.listdir(output)) == ["report.json"]


WRITER = textwrap.dedent(
    """
    import pathlib, sys, time
    from keras_d2nn import storage
    with storage.staged_run_folder(sys.argv[1]) as folder:
        (folder / "report.json").write_text("new report")
        print("written", flush=True)
        time.sleep(60)  # killed here, before the model is written
        (folder / "model.keras").write_text("new model")
    """
)


def test_a_sigkilled_run_leaves_the_previous_run_and_its_debris_is_removed(
    tmp_path,
):
    output = tmp_path / "default"
    output.mkdir()
    (output / "report.json").write_text("previous report")
    (output / "model.keras").write_text("previous model")
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(output)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout.readline().strip() == "written"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert (output / "report.json").read_text() == "previous report"
    assert (output / "model.keras").read_text() == "previous model"
    assert len(os.listdir(tmp_path)) == 2  # the killed run's half folder
    storage.recover_run_folder(output)
    assert os.listdir(tmp_path) == ["default"]


def test_a_kill_between_the_two_renames_is_undone_at_the_next_run(tmp_path):
    output = tmp_path / "default"
    # What a commit killed between its renames leaves: the previous run
    # moved aside, the new one not yet in place.
    aside = (
        tmp_path / f".default{storage.atomic_files.PREVIOUS_MARK}"
        f"{dead_pid()}-0a1b2c3d"
    )
    aside.mkdir()
    (aside / "report.json").write_text("previous report")
    with storage.staged_run_folder(output):
        assert (output / "report.json").read_text() == "previous report"
    assert os.listdir(tmp_path) == ["default"]


def test_a_file_where_the_run_folder_goes_is_refused_before_work(tmp_path):
    output = tmp_path / "default"
    output.write_text("not a folder")
    with pytest.raises(run_folder.OutputNotWritable, match="is a file"):
        storage.check_writable(output)


def test_an_unwritable_parent_is_refused_before_work(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(run_folder.OutputNotWritable, match="cannot write"):
        storage.check_writable(blocker / "runs" / "default")


def test_too_little_disk_space_is_refused_before_work(tmp_path):
    with pytest.raises(run_folder.OutputNotWritable, match="MB needed"):
        storage.check_writable(tmp_path / "default", needed_bytes=10**18)
    assert os.listdir(tmp_path) == []  # the probe cleaned up


def test_names_with_dots_keep_their_runs_apart(tmp_path):
    # runs/lr0 and runs/lr0.01: the debris of one is never the other's.
    for name in ("lr0", "lr0.01"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_text(name)
    aside = (
        tmp_path / f".lr0.01{storage.atomic_files.PREVIOUS_MARK}"
        f"{dead_pid()}-0a1b2c3d.01"
    )
    aside.mkdir()
    storage.recover_run_folder(tmp_path / "lr0")
    assert aside.exists()  # not lr0's
    storage.recover_run_folder(tmp_path / "lr0.01")
    assert not aside.exists()  # lr0.01 exists: the aside copy is debris
    assert (tmp_path / "lr0.01" / "report.json").read_text() == "lr0.01"
    with storage.staged_run_folder(tmp_path / "lr0.01") as folder:
        (folder / "report.json").write_text("new")
    assert sorted(os.listdir(tmp_path)) == ["lr0", "lr0.01"]


def test_a_folder_that_is_not_an_earlier_run_is_never_replaced(tmp_path):
    others = tmp_path / "runs"
    (others / "a").mkdir(parents=True)
    with pytest.raises(run_folder.OutputNotWritable, match="no report.json"):
        storage.check_writable(others, previous_run_marker="report.json")
    (others / "report.json").write_text("{}")
    storage.check_writable(others, previous_run_marker="report.json")
    storage.check_writable(tmp_path / "new", previous_run_marker="report.json")


@pytest.mark.parametrize("name", [".", "..", ""])
def test_the_current_folder_or_a_parent_is_refused(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(run_folder.OutputNotWritable, match="current folder"):
        storage.check_writable(name or os.getcwd())


def test_a_symbolic_link_is_refused_before_work(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(run_folder.OutputNotWritable, match="symbolic link"):
        storage.check_writable(tmp_path / "link")


def test_a_file_never_replaces_a_folder(tmp_path):
    folder = tmp_path / "profile.json"
    folder.mkdir()
    (folder / "keep").write_text("a user's file")
    with pytest.raises(IsADirectoryError):
        storage.write_text_atomically(folder, "{}")
    assert (folder / "keep").read_text() == "a user's file"
    with pytest.raises(run_folder.OutputNotWritable, match="is a folder"):
        storage.check_file_writable(folder, "--output")
    storage.check_file_writable(folder, "--output", folder_ok=True)
