"""Atomic writes: a failed write keeps the old file, stale temporary files are removed."""

from __future__ import annotations

import json
import os

import pytest

from edgecv.core.fsutil import atomic_path, remove_stale_temps, write_json


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "config.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]
    assert oct(os.stat(target).st_mode & 0o777) != oct(0o600)  # same permissions as a plain open()


def test_stale_temp_files_are_removed(tmp_path):
    (tmp_path / ".last.pt.abc.tmp").write_text("x")
    (tmp_path / "last.pt").write_text("keep")
    remove_stale_temps(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
