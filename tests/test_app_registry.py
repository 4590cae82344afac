"""The model registry: built-in and fine-tuned models by name, pruning to the newest N, leftovers cleaned."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from app.config import AppConfig
from app.registry import ModelRegistry
from hpt_core.errors import CheckpointError, ConfigError
from hpt_core.predict import Predictor

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


# ------------------------------------------------------------------------------------- opening other models
@pytest.fixture
def tiny_checkpoint(make_model, tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere" / "my-model"
    make_model().save_pretrained(folder)
    return folder


def _in_hub_cache(checkpoint: Path, cache: Path, repo_id: str) -> Path:
    """``checkpoint`` laid out as the Hub cache keeps a downloaded model (what ``snapshot_download`` finds
    offline)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit, encoding="utf-8")
    shutil.copytree(checkpoint, repo / "snapshots" / commit)
    return repo / "snapshots" / commit


def test_a_checkpoint_folder_opens_and_predicts(tmp_path: Path, tiny_checkpoint: Path) -> None:
    registry = ModelRegistry(AppConfig(models={}, user_dir=tmp_path / "models"))
    name = registry.open(str(tiny_checkpoint))
    assert name == "my-model" and registry.names() == ["my-model"]
    assert registry.open(f"  {tiny_checkpoint}  ") == "my-model"  # opening it again changes nothing
    assert registry.directory(name) == tiny_checkpoint
    texts = ["machine learning for gene expression", "bridges and concrete"]
    direct = Predictor.from_pretrained(tiny_checkpoint, precision="fp32").scores(texts)
    registry.config.precision = "fp32"
    assert np.array_equal(registry.predictor(name).scores(texts), direct)  # the opened model is that checkpoint


def test_opening_refuses_what_the_settings_forbid(tmp_path: Path, tiny_checkpoint: Path) -> None:
    public = ModelRegistry(AppConfig(models={}, user_dir=tmp_path / "models", open_folders=False, hub_allow=()))
    with pytest.raises(ConfigError, match="does not open folders"):
        public.open(str(tiny_checkpoint))
    with pytest.raises(ConfigError, match="Hub ids it may open are none"):
        public.open("someone/model")
    some = ModelRegistry(AppConfig(models={}, user_dir=tmp_path / "models", hub_allow=("me/*",)))
    with pytest.raises(ConfigError, match=r"me/\*.*HPT_STUDIO_HUB_ALLOW"):
        some.open("someone/model")
    with pytest.raises(ConfigError, match="Give a checkpoint folder"):
        some.open("   ")
    assert public.names() == [] and some.names() == []


def test_a_not_checkpoint_folder_is_a_clear_error(tmp_path: Path) -> None:
    registry = ModelRegistry(AppConfig(models={}, user_dir=tmp_path / "models"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a complete HPT checkpoint: missing config.json"):
        registry.open(str(tmp_path / "empty"))
    with pytest.raises(CheckpointError, match="does not exist"):
        registry.open(str(tmp_path / "nowhere"))
    assert registry.names() == []


def test_a_hub_model_opens_from_the_hub_cache_offline(monkeypatch, tmp_path: Path, tiny_checkpoint: Path) -> None:
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    snapshot = _in_hub_cache(tiny_checkpoint, tmp_path / "hub", "me/tiny-hpt")
    registry = ModelRegistry(AppConfig(models={}, user_dir=tmp_path / "models", hub_allow=("me/*",)))
    assert registry.open("me/tiny-hpt") == "me/tiny-hpt"
    assert registry.directory("me/tiny-hpt") == snapshot
    assert registry.hierarchy("me/tiny-hpt").num_labels > 0
    # an id that is not in the cache, offline: what to do instead
    with pytest.raises(CheckpointError, match="offline.*hf download me/other"):
        registry.open("me/other")
    # a Hub model that is not an HPT Studio checkpoint
    (snapshot / "hierarchy.json").unlink()
    shutil.copytree(snapshot, tmp_path / "plain")
    _in_hub_cache(tmp_path / "plain", tmp_path / "hub", "me/plain-bert")
    with pytest.raises(CheckpointError, match="not an HPT Studio checkpoint: it has no hierarchy.json"):
        registry.open("me/plain-bert")
