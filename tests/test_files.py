"""Atomic folder writes: a folder is replaced whole or not at all; staged files arrive together or not at all."""

from __future__ import annotations

import pytest

from savg_hub.utils.files import atomic_dir, staged_into


def test_atomic_dir_replaces_on_success_and_keeps_the_old_folder_on_failure(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as work:
        (work / "a.txt").write_text("1")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as work:
            (work / "b.txt").write_text("2")
            raise RuntimeError("interrupted")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]  # untouched
    with atomic_dir(target) as work:
        (work / "c.txt").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c.txt"]  # replaced as a whole
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging left behind


def test_staged_into_merges_on_success_and_adds_nothing_on_failure(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("k")
    with staged_into(target) as work:
        (work / "config.json").write_text("{}")
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "keep.txt"]
    with pytest.raises(ValueError):
        with staged_into(target) as work:
            (work / "weights.bin").write_text("partial")
            raise ValueError("conversion failed")
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
