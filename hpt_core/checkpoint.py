"""Checkpoint directories: what a saved ``HPTModel`` is made of, written and read back without pickle.

Layout::

    config.json          {"format": "hpt-studio/1", "hpt_config": {...}, "backbone_config": {...}}
    model.safetensors    every weight: backbone, label words, template, [PRED], graph, biases, random edges
                         (stored as ``hpt_core.weights`` says; with ``float16-delta`` the backbone weights are fp16
                         differences from the backbone file the model was trained from, named with its sha256 in
                         config.json)
    hierarchy.json       label names and parents in label-id order
    label_names.json     display names the label words started from, path → {name, description} (when given;
                         ``hpt_core.label_names``)
    tokenizer files      written by the tokenizer's save_pretrained
    train_config.json    the run's TrainConfig (when given)
    metrics.json         evaluation reports (when given), fractions 0–1; "sentence_baseline" holds the frozen-
                         embedding baseline fitted on the same splits (``add_sentence_baseline``), when there is one
    README.md            model card

Writes are atomic (``hpt_core.atomic``): an interrupted save never leaves a half-written checkpoint, and an existing
one is only replaced when asked. Loading is split so that this module never needs the model class:
``read_checkpoint`` checks the directory and rebuilds everything but the weights, ``HPTModel.from_pretrained`` builds
the model from those parts and has ``SavedCheckpoint.load_weights`` fill it in.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import nn

from hpt_core.atomic import atomic_directory
from hpt_core.errors import CheckpointError, ConfigError, HierarchyError
from hpt_core.hierarchy import LabelHierarchy
from hpt_core.model_card import render_model_card, with_baseline_section
from hpt_core.weights import (
    add_delta_base,
    storage_base,
    stored_copy,
)

if TYPE_CHECKING:
    from hpt_core.model import HPTModel

__all__ = [
    "save_checkpoint",
    "read_checkpoint",
    "SavedCheckpoint",
    "read_metrics",
    "add_sentence_baseline",
    "CHECKPOINT_FORMAT",
    "REQUIRED_FILES",
]

CHECKPOINT_FORMAT = "hpt-studio/1"
REQUIRED_FILES = ("config.json", "model.safetensors", "hierarchy.json")

_RESERVED = {
    "config.json",
    "hierarchy.json",
    "label_names.json",
    "model.safetensors",
    "metrics.json",
    "train_config.json",
    "README.md",
}

ConfigT = TypeVar("ConfigT")


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

    ``weights`` is the storage precision (``hpt_core.weights``): ``float32``, ``float16``, ``mixed`` or
    ``float16-delta`` (loading then needs the same backbone file, checked by its sha256).
    ``HPTModel.from_pretrained`` always rebuilds an fp32 model; ``model`` itself is left untouched.
    """
    base = storage_base(weights, model.config.backbone)

    target = Path(directory)
    with atomic_directory(target, overwrite) as staging:
        backbone_config = model.backbone.config.to_dict()
        backbone_config.pop("_name_or_path", None)  # where it was loaded from on the training machine
        config = {
            "format": CHECKPOINT_FORMAT,
            "hpt_config": model.config.to_dict(),
            "backbone_config": backbone_config,
            "num_labels": model.num_labels,
            "num_levels": model.hierarchy.num_levels,
            "weights_dtype": weights,
        }
        stored, delta_keys = stored_copy(model, weights, base)
        if base is not None:
            config["delta_base"] = {"backbone": model.config.backbone, "sha256": base.sha256, "keys": delta_keys}
        _write_json(staging / "config.json", config)
        _write_json(staging / "hierarchy.json", model.hierarchy.to_dict())
        if getattr(model, "label_names", None):
            _write_json(staging / "label_names.json", model.label_names)
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
            card
            or render_model_card(
                model, metrics=metrics, train_config=train_config, description=description, weights=weights
            ),
            encoding="utf-8",
        )
    return target


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path.name} in {path.parent} is unreadable or not valid JSON ({e}).") from e


def read_metrics(directory: str | Path) -> dict[str, Any] | None:
    """The checkpoint's ``metrics.json``, or ``None`` when it has none."""
    path = Path(directory) / "metrics.json"
    return _read_json(path) if path.is_file() else None


def _replace_text(path: Path, text: str) -> None:
    """Write ``path`` through a temporary sibling renamed into place (a reader never sees half a file)."""
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(text, encoding="utf-8")
    os.replace(staging, path)


def add_sentence_baseline(directory: str | Path, baseline: Mapping[str, Any]) -> dict[str, Any]:
    """Record a frozen-embedding baseline fitted on the checkpoint's splits (``SentenceBaselineResult.to_dict()``)
    in a saved checkpoint: it becomes ``metrics.json``'s ``"sentence_baseline"`` entry, and the model card's
    comparison section is added (or replaced). Returns the updated metrics.

    ``save_checkpoint`` renders the same section when its ``metrics`` already hold that entry.
    """
    root = Path(directory)
    missing = [name for name in REQUIRED_FILES if not (root / name).is_file()]
    if missing:
        raise CheckpointError(f"{root} is not a complete HPT checkpoint (missing {', '.join(missing)}).")
    metrics = read_metrics(root) or {}
    if not isinstance(metrics, dict):
        raise CheckpointError(f"{root}/metrics.json holds a {type(metrics).__name__}, expected a JSON object.")
    metrics["sentence_baseline"] = dict(baseline)
    _replace_text(root / "metrics.json", json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    card = root / "README.md"
    if card.is_file():
        _replace_text(card, with_baseline_section(card.read_text(encoding="utf-8"), metrics))
    return metrics


@dataclass
class SavedCheckpoint(Generic[ConfigT]):
    """A checkpoint directory, checked and rebuilt except for its weights (``read_checkpoint``)."""

    root: Path
    files: dict[str, Any]  # config.json
    config: ConfigT  # config.json's "hpt_config", parsed
    hierarchy: LabelHierarchy
    tokenizer: Any
    backbone: nn.Module  # the architecture config.json describes, with random weights
    label_names: dict[str, Any] | None = None  # label_names.json (path → {name, description}), None without one

    def load_weights(self, model: nn.Module) -> None:
        """Fill ``model`` (built from these parts) with the stored weights, in fp32; raises ``CheckpointError``
        when ``model.safetensors`` is corrupt or does not fit the model."""
        root = self.root
        try:
            missing_keys, unexpected = load_model(model, str(root / "model.safetensors"), strict=False)
        except (SafetensorError, OSError, RuntimeError) as e:
            raise CheckpointError(f"{root}/model.safetensors is corrupt or does not match config.json ({e}).") from e
        if missing_keys or unexpected:
            raise CheckpointError(
                f"{root}/model.safetensors does not match config.json: missing {sorted(missing_keys)[:5]}, unexpected "
                f"{sorted(unexpected)[:5]}."
            )
        if self.files.get("weights_dtype") == "float16-delta":
            add_delta_base(model, root, self.files.get("delta_base"))


def read_checkpoint(
    directory: str | Path, parse_config: Callable[[dict[str, Any]], ConfigT]
) -> SavedCheckpoint[ConfigT]:
    """Check a checkpoint directory and rebuild its parts: the model config (read by ``parse_config``, e.g.
    ``HPTConfig.from_dict``), the hierarchy, the tokenizer and the backbone architecture; raises ``CheckpointError``
    saying what is wrong. ``HPTModel.from_pretrained`` builds the model from them."""
    # transformers takes seconds to import: only loading a checkpoint needs it, not saving or checking a target
    import transformers
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

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
        hpt_config = parse_config(config["hpt_config"])
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
    names_file = root / "label_names.json"
    label_names = _read_json(names_file) if names_file.is_file() else None
    return SavedCheckpoint(root, config, hpt_config, hierarchy, tokenizer, backbone, label_names)
