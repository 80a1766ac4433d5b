"""`vmlab labs copy`: a fresh set of lab notebooks for a student, never overwriting their work."""

import pathlib

import nbformat
import pytest

from vmlab import _resources
from vmlab.errors import ConfigError
from vmlab.labs import copy_labs, lab_names

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_every_shipped_lab_is_copied_as_a_valid_notebook(tmp_path):
    report = copy_labs(tmp_path / "labs")
    assert report.copied == tuple(sorted(p.name for p in (ROOT / "labs").glob("*.ipynb"))) == tuple(lab_names())
    assert report.skipped == ()
    for name in report.copied:
        nbformat.validate(nbformat.read(tmp_path / "labs" / name, as_version=4))
        assert (tmp_path / "labs" / name).read_bytes() == (ROOT / "labs" / name).read_bytes()


def test_a_second_copy_keeps_the_students_work_and_says_what_it_skipped(tmp_path):
    copy_labs(tmp_path)
    mine = tmp_path / "01-meet-the-hypervisor.ipynb"
    mine.write_text("my answers")
    (tmp_path / "03-three-ways-to-virtualize-a-cpu.ipynb").unlink()  # a lab the student deleted comes back
    report = copy_labs(tmp_path)
    assert mine.read_text() == "my answers"
    assert report.copied == ("03-three-ways-to-virtualize-a-cpu.ipynb",)
    assert "01-meet-the-hypervisor.ipynb" in report.skipped
    text = report.text()
    assert f"skipped {mine} (exists; not overwritten)" in text
    assert text.splitlines()[-1] == f"1 lab(s) copied, {len(lab_names()) - 1} skipped, into {tmp_path}"


def test_a_file_in_the_way_is_refused_with_the_fix(tmp_path):
    target = tmp_path / "labs"
    target.write_text("not a folder")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        copy_labs(target)
    assert target.read_text() == "not a folder"


def test_a_failed_write_leaves_no_half_notebook(tmp_path, monkeypatch):
    import vmlab.labs as labs

    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[:10])
            raise OSError(28, "No space left on device")

    real_open = open
    monkeypatch.setattr(labs, "open", lambda p, mode: Full(real_open(p, mode)), raising=False)
    with pytest.raises(ConfigError, match="No space left on device"):
        copy_labs(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_datasets_come_from_VMLAB_DATASETS_when_set(tmp_path, monkeypatch):
    monkeypatch.setenv("VMLAB_DATASETS", str(tmp_path))
    assert _resources.data_root() == tmp_path
    monkeypatch.delenv("VMLAB_DATASETS")
    # An editable install (make test) reads the repository's own folders.
    assert _resources.data_root() == ROOT / "datasets" and _resources.labs_root() == ROOT / "labs"
