"""The one atomic writer (tuneae/files.py): modes, and nothing lost on a failed write."""
import os

import pytest
import torch

from tuneae.files import atomic_torch_save, atomic_write, atomic_write_csv


def test_written_files_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.txt", "x")
        atomic_write_csv(tmp_path / "b.csv", [{"k": 1}])
        atomic_torch_save({"t": torch.zeros(1)}, tmp_path / "c.pt")
    finally:
        os.umask(old)
    for name in ("a.txt", "b.csv", "c.pt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "summary.json"
    atomic_write(target, "old")

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        atomic_torch_save(Unpicklable(), target)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]
