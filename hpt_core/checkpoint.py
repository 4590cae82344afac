"""Checkpoint directories: save and load a whole ``HPTModel`` without pickle.

Layout::

    config.json          {"format": "hpt-studio/1", "hpt_config": {...}, "backbone_config": {...}}
    model.safetensors    every weight: backbone, label words, template, [PRED], graph, biases, random edges
    hierarchy.json       label names and parents in label-id order
    tokenizer files      written by the tokenizer's save_pretrained
    train_config.json    the run's TrainConfig (when given)
    metrics.json         evaluation reports (when given), fractions 0–1
    README.md            model card

Writes are atomic: everything goes to a temporary sibling directory that is renamed into place at the end, so an
interrupted save never leaves a half-written checkpoint, and an existing one is only replaced when asked.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from hpt_core.errors import CheckpointError, ConfigError, HierarchyError

if TYPE_CHECKING:
    from hpt_core.model import HPTModel

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "atomic_directory",
    "read_metrics",
    "CHECKPOINT_FORMAT",
    "REQUIRED_FILES",
    "WEIGHT_PRECISIONS",
]

CHECKPOINT_FORMAT = "hpt-studio/1"
REQUIRED_FILES = ("config.json", "model.safetensors", "hierarchy.json")
WEIGHT_PRECISIONS = ("float32", "float16", "mixed")  # storage precision of model.safetensors


_RESERVED = {"config.json", "hierarchy.json", "model.safetensors", "metrics.json", "train_config.json", "README.md"}


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def save_checkpoint(
    model: HPTModel,
    directory: str | Path,
    metrics: dict[str, Any] | None = None,
    train_config: dict[str, Any] | None = None,
    card: str | None = None,
    overwrite: bool = False,
    weights: str = "float32",
    description: str | None = None,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Save ``model`` to ``directory`` atomically; refuse to replace a non-empty directory unless ``overwrite``.

    ``extra_files`` (plain file name → text) are written into the same directory, inside the same atomic save.

    ``weights`` is the storage precision: ``float32``; ``float16`` (every floating-point tensor, half the size); or
    ``mixed`` (only the word embeddings, tied to the MLM decoder, in fp16: they are half of a small backbone and
    rounding them barely moves the scores, while rounding the encoder's matrices does). ``load_checkpoint`` always
    rebuilds an fp32 model; ``model`` itself is left untouched.
    """
    import copy

    from safetensors.torch import save_model

    from hpt_core.model_card import render_model_card

    if weights not in WEIGHT_PRECISIONS:
        raise ConfigError(f"weights must be one of {', '.join(WEIGHT_PRECISIONS)}, got {weights!r}.")

    target = Path(directory)
    with atomic_directory(target, overwrite) as staging:
        config = {
            "format": CHECKPOINT_FORMAT,
            "hpt_config": model.config.to_dict(),
            "backbone_config": model.backbone.config.to_dict(),
            "num_labels": model.num_labels,
            "num_levels": model.hierarchy.num_levels,
            "weights_dtype": weights,
        }
        _write_json(staging / "config.json", config)
        _write_json(staging / "hierarchy.json", model.hierarchy.to_dict())
        stored = model
        if weights == "float16":
            stored = copy.deepcopy(model).half()
        elif weights == "mixed":
            stored = copy.deepcopy(model)
            stored.word_embeddings.weight.data = stored.word_embeddings.weight.data.half()  # the decoder is tied
        save_model(stored, str(staging / "model.safetensors"), metadata={"format": CHECKPOINT_FORMAT})
        del stored
        model.tokenizer.save_pretrained(str(staging))
        if metrics is not None:
            _write_json(staging / "metrics.json", metrics)
        if train_config is not None:
            _write_json(staging / "train_config.json", train_config)
        for file_name, text in (extra_files or {}).items():
            if Path(file_name).name != file_name or file_name.startswith(".") or file_name in _RESERVED:
                raise ConfigError(f"extra file name {file_name!r} must be a plain, non-reserved file name.")
            (staging / file_name).write_text(text, encoding="utf-8")
        (staging / "README.md").write_text(
            card or render_model_card(model, metrics=metrics, train_config=train_config, description=description),
            encoding="utf-8",
        )
    return target


def _current_umask() -> int:
    """The process umask, read without changing it where the OS allows (setting it is process-wide and racy)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def _default_permissions(directory: Path) -> None:
    """Give the staged directory and its files the usual umask-based modes (``mkdtemp`` makes them private)."""
    umask = _current_umask()
    os.chmod(directory, 0o777 & ~umask)
    for path in directory.rglob("*"):
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


@contextmanager
def atomic_directory(target: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a staging directory beside ``target``; on success it replaces ``target`` in one rename.

    Refuses a non-empty ``target`` unless ``overwrite``; on any error the staging directory is removed and an
    existing ``target`` is left untouched.
    """
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not overwrite:
        raise CheckpointError(
            f"{target} already exists and is not empty; choose another directory or pass overwrite=True "
            "(--overwrite) to replace it."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield staging
        _default_permissions(staging)
        if target.exists():
            backup = target.with_name(f".{target.name}.old")
            if backup.exists():
                shutil.rmtree(backup)
            os.replace(target, backup)
            os.replace(staging, target)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path.name} in {path.parent} is unreadable or not valid JSON ({e}).") from e


def read_metrics(directory: str | Path) -> dict[str, Any] | None:
    """The checkpoint's ``metrics.json``, or ``None`` when it has none."""
    path = Path(directory) / "metrics.json"
    return _read_json(path) if path.is_file() else None


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu") -> HPTModel:
    """Rebuild a model from a checkpoint directory; raises ``CheckpointError`` saying what is wrong."""
    import transformers
    from safetensors import SafetensorError
    from safetensors.torch import load_model
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

    from hpt_core.hierarchy import LabelHierarchy
    from hpt_core.model import HPTConfig, HPTModel

    root = Path(directory)
    if not root.is_dir():
        raise CheckpointError(f"Model directory {root} does not exist; give a directory written by 'train'.")
    missing = [name for name in REQUIRED_FILES if not (root / name).is_file()]
    if missing:
        raise CheckpointError(
            f"{root} is not a complete HPT checkpoint: missing {', '.join(missing)}; retrain or copy the whole "
            "directory."
        )
    config = _read_json(root / "config.json")
    if not isinstance(config, dict) or config.get("format") != CHECKPOINT_FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise CheckpointError(
            f"{root}/config.json has format {found!r}, expected {CHECKPOINT_FORMAT!r}: not a checkpoint of this "
            "version of HPT Studio."
        )
    try:
        hpt_config = HPTConfig.from_dict(config["hpt_config"])
        hierarchy = LabelHierarchy.from_dict(_read_json(root / "hierarchy.json"))
        backbone_config = dict(config["backbone_config"])
        model_type = backbone_config.pop("model_type")
    except (KeyError, TypeError, ConfigError, HierarchyError) as e:
        raise CheckpointError(f"{root}: config.json or hierarchy.json is incompatible ({e}).") from e
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(root))
        backbone = AutoModelForMaskedLM.from_config(AutoConfig.for_model(model_type, **backbone_config))
    except (OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{root}: cannot rebuild the backbone or tokenizer ({e}).") from e
    finally:
        transformers.logging.set_verbosity(verbosity)
    model = HPTModel(hpt_config, hierarchy, backbone, tokenizer)
    try:
        missing_keys, unexpected = load_model(model, str(root / "model.safetensors"), strict=False)
    except (SafetensorError, OSError, RuntimeError) as e:
        raise CheckpointError(f"{root}/model.safetensors is corrupt or does not match config.json ({e}).") from e
    if missing_keys or unexpected:
        raise CheckpointError(
            f"{root}/model.safetensors does not match config.json: missing {sorted(missing_keys)[:5]}, unexpected "
            f"{sorted(unexpected)[:5]}."
        )
    return model.to(device).eval()
