"""Tests of hpt_core.atomic: a directory appears whole or not at all; an existing one is replaced only when asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpt_core.atomic import atomic_directory, check_target
from hpt_core.errors import CheckpointError


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_directory_appears_only_when_the_block_ends(tmp_path: Path):
    target = tmp_path / "out" / "model"  # parents are created
    with atomic_directory(target) as staging:
        (staging / "a.txt").write_text("a")
        (staging / "sub").mkdir()
        (staging / "sub" / "b.txt").write_text("b")
        assert not target.exists()
        assert staging.parent == target.parent and staging.name.startswith(".model.")
    assert _tree(target) == {"a.txt": "a", "sub/b.txt": "b"}
    assert [p.name for p in target.parent.iterdir()] == ["model"]  # no staging or backup left


def test_an_error_leaves_the_old_directory_and_no_leftovers(tmp_path: Path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError, match="interrupted"), atomic_directory(target, overwrite=True) as staging:
        (staging / "new.txt").write_text("new")
        raise RuntimeError("interrupted")
    assert _tree(target) == {"old.txt": "old"}
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_overwrite_replaces_the_whole_directory(tmp_path: Path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_directory(target, overwrite=True) as staging:
        (staging / "new.txt").write_text("new")
    assert _tree(target) == {"new.txt": "new"}  # nothing of the old directory is merged in
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


@pytest.mark.parametrize("kind", ["non-empty directory", "file"])
def test_an_existing_target_is_refused_without_overwrite(tmp_path: Path, kind: str):
    target = tmp_path / "model"
    if kind == "file":
        target.write_text("x")
    else:
        target.mkdir()
        (target / "keep.txt").write_text("x")
    with pytest.raises(CheckpointError, match="already exists and is not empty.*--overwrite"):
        check_target(target)
    with pytest.raises(CheckpointError), atomic_directory(target):
        pytest.fail("the block must not run")
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_an_empty_directory_or_a_new_path_is_fine(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    check_target(tmp_path / "empty")
    check_target(str(tmp_path / "new"))
    with atomic_directory(tmp_path / "empty") as staging:
        (staging / "a.txt").write_text("a")
    assert _tree(tmp_path / "empty") == {"a.txt": "a"}
