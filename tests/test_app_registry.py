"""The model registry: built-in and fine-tuned models by name, pruning to the newest N, leftovers cleaned."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from app.config import AppConfig
from app.registry import ModelRegistry
from hpt_core.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def _fake_model(folder: Path, name: str, mtime: float) -> None:
    target = folder / name
    target.mkdir(parents=True)
    for file in ("config.json", "hierarchy.json", "metrics.json"):
        shutil.copy(REPO / "checkpoints" / "20ng-hpt" / file, target / file)
    os.utime(target, (mtime, mtime))


def test_user_models_newest_first_and_pruned(tmp_path: Path) -> None:
    registry = ModelRegistry(AppConfig(models={}, user_dir=tmp_path, keep_models=2))
    for k, name in enumerate(["oldest", "middle", "newest"]):
        _fake_model(tmp_path, name, 1_000_000 + k)
    (tmp_path / "not-a-model").mkdir()
    assert registry.names() == ["newest", "middle", "oldest"]
    assert registry.prune() == ["oldest"]
    assert registry.names() == ["newest", "middle"] and not (tmp_path / "oldest").exists()
    assert registry.hierarchy("newest").num_labels == 27


def test_leftover_staging_folders_are_removed(tmp_path: Path) -> None:
    (tmp_path / ".model.abc123").mkdir()
    (tmp_path / ".downloads").mkdir()
    _fake_model(tmp_path, "kept", 1_000_000)
    registry = ModelRegistry(AppConfig(models={}, user_dir=tmp_path))
    assert sorted(registry.clean_leftovers()) == [".downloads", ".model.abc123"]
    assert registry.names() == ["kept"]


@pytest.mark.parametrize("name", ["../etc", ".hidden", "a/b", "missing", ""])
def test_unknown_or_unsafe_names_are_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / ".hidden").mkdir()
    registry = ModelRegistry(AppConfig(models={}, user_dir=tmp_path))
    with pytest.raises(ConfigError, match="Unknown model"):
        registry.directory(name)
