"""Checkpoint directories: save and load a whole ``HPTModel`` without pickle.

Layout::

    config.json          {"format": "hpt-studio/1", "hpt_config": {...}, "backbone_config": {...}}
    model.safetensors    every weight: backbone, label words, template, [PRED], graph, biases, random edges
                         (with ``float16-delta`` storage the backbone weights are fp16 differences from the backbone
                         file the model was trained from, named with its sha256 in config.json)
    hierarchy.json       label names and parents in label-id order
    tokenizer files      written by the tokenizer's save_pretrained
    train_config.json    the run's TrainConfig (when given)
    metrics.json         evaluation reports (when given), fractions 0–1
    README.md            model card

Writes are atomic: everything goes to a temporary sibling directory that is renamed into place at the end, so an
interrupted save never leaves a half-written checkpoint, and an existing one is only replaced when asked.
"""

from __future__ import annotations

import hashlib
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
    "delta_base_file",
    "check_target",
    "check_weights",
]

CHECKPOINT_FORMAT = "hpt-studio/1"
REQUIRED_FILES = ("config.json", "model.safetensors", "hierarchy.json")
# storage precision of model.safetensors, smallest first
WEIGHT_PRECISIONS = ("float16", "float16-delta", "mixed", "float32")
_BACKBONE_PREFIX = "backbone."  # HPTModel's backbone parameters are named "backbone.<name in the backbone's file>"


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
    rounding them barely moves the scores, while rounding the encoder's matrices does); or ``float16-delta`` (every
    backbone weight as the fp16 difference from the backbone file it was trained from, the rest in fp32: about the
    size of ``float16``, but fine-tuning moves a weight by a few per cent, so rounding the difference errs some 20×
    less than rounding the weight; loading needs that same backbone file, checked by its sha256).
    ``load_checkpoint`` always rebuilds an fp32 model; ``model`` itself is left untouched.
    """
    import copy

    from safetensors.torch import save_model

    from hpt_core.model_card import render_model_card

    base = None
    if weights == "float16-delta":
        base = _read_delta_base(model.config.backbone)  # raises what check_weights would, resolving once
    else:
        check_weights(weights, model.config.backbone)

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
        stored = model
        if weights == "float16":
            stored = copy.deepcopy(model).half()
        elif weights == "mixed":
            stored = copy.deepcopy(model)
            stored.word_embeddings.weight.data = stored.word_embeddings.weight.data.half()  # the decoder is tied
        elif base is not None:
            stored = copy.deepcopy(model)
            keys = _to_deltas(stored, base.tensors)
            config["delta_base"] = {"backbone": model.config.backbone, "sha256": base.sha256, "keys": keys}
        _write_json(staging / "config.json", config)
        _write_json(staging / "hierarchy.json", model.hierarchy.to_dict())
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


class _DeltaBase:
    """The backbone weights file that ``float16-delta`` weights are differences from: its sha256 and tensors."""

    def __init__(self, path: Path) -> None:
        from safetensors.torch import load

        data = path.read_bytes()  # read once for both the hash and the tensors
        self.path = path
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.tensors: dict[str, torch.Tensor] = load(data)


def delta_base_file(backbone: str) -> Path:
    """The local ``model.safetensors`` of ``backbone`` (alias or directory) that ``float16-delta`` weights are
    stored relative to; raises ``ConfigError`` saying what to use instead when there is none (a hub name)."""
    from hpt_core.backbones import resolve_backbone
    from hpt_core.errors import BackboneError

    try:
        where = Path(resolve_backbone(backbone))
    except BackboneError as e:
        raise ConfigError(f"float16-delta storage needs the backbone's weights file: {e}") from e
    path = where / "model.safetensors"
    if not path.is_file():
        raise ConfigError(
            f"float16-delta storage stores weights as differences from the backbone's local model.safetensors, and "
            f"backbone {backbone!r} has none here (a hub name or a directory without safetensors weights); use "
            "--weights float16 or float32, or pass the backbone's local directory."
        )
    return path


def _read_delta_base(backbone: str) -> _DeltaBase:
    return _DeltaBase(delta_base_file(backbone))


def _delta_targets(model: HPTModel, base: dict[str, torch.Tensor]) -> dict[str, tuple[str, torch.nn.Parameter]]:
    """Model parameter name → (key in the backbone file, parameter) for every backbone weight the file holds with the
    same shape. A tied parameter (word embeddings = MLM decoder) appears once, under a name the file has."""
    targets: dict[str, tuple[str, torch.nn.Parameter]] = {}
    seen: set[int] = set()
    for name, param in model.named_parameters(remove_duplicate=False):
        key = name[len(_BACKBONE_PREFIX) :]
        if id(param) in seen or not name.startswith(_BACKBONE_PREFIX) or key not in base:
            continue
        if base[key].shape == param.shape and param.is_floating_point():
            targets[name] = (key, param)
            seen.add(id(param))
    return targets


def _to_deltas(model: HPTModel, base: dict[str, torch.Tensor]) -> list[str]:
    """Replace, in place, each backbone weight of ``model`` (a copy) by its fp16 difference from ``base``; returns
    the names replaced."""
    targets = _delta_targets(model, base)
    for key, param in targets.values():
        param.data = (param.data.float() - base[key].to(device=param.device, dtype=torch.float32)).half()
    return sorted(targets)


def _add_delta_base(model: HPTModel, root: Path, info: Any) -> None:
    """Undo ``_to_deltas`` on a model just loaded from ``root``: add the backbone file's weights back (in fp32)."""
    if not isinstance(info, dict) or not isinstance(info.get("keys"), list) or "backbone" not in info:
        raise CheckpointError(f"{root}/config.json has float16-delta weights but no valid 'delta_base' entry.")
    backbone = str(info["backbone"])
    try:
        base = _read_delta_base(backbone)
    except (ConfigError, OSError) as e:
        raise CheckpointError(
            f"{root} stores its backbone weights as differences from backbone {backbone!r}, whose weights file "
            f"cannot be read here ({e}). Put that backbone back (for 'minilm-l6-mlm': checkpoints/minilm-l6-mlm/ "
            "from this repository), or re-save the checkpoint with float32 weights where it loads."
        ) from e
    if base.sha256 != info.get("sha256"):
        raise CheckpointError(
            f"{root} stores its backbone weights as differences from {base.path} with sha256 {info.get('sha256')}, "
            f"but that file now has sha256 {base.sha256}: the backbone changed since this model was saved. Restore "
            "the original backbone file (git checkout, or a copy of it), or retrain the model."
        )
    parameters = dict(model.named_parameters(remove_duplicate=False))
    for name in info["keys"]:
        key = str(name)[len(_BACKBONE_PREFIX) :]
        param = parameters.get(str(name))
        if param is None or key not in base.tensors or base.tensors[key].shape != param.shape:
            raise CheckpointError(f"{root}: delta weight {name!r} does not match the model or backbone {backbone!r}.")
        param.data.add_(base.tensors[key].to(device=param.device, dtype=param.dtype))


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


def check_target(target: str | Path, overwrite: bool = False) -> None:
    """Raise ``CheckpointError`` when saving to ``target`` would replace a file or non-empty directory and
    ``overwrite`` is not set (call it before long work, so nothing is lost at save time)."""
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not overwrite:
        raise CheckpointError(
            f"{target} already exists and is not empty; choose another directory or pass overwrite=True "
            "(--overwrite) to replace it."
        )


def check_weights(weights: str, backbone: str) -> None:
    """Raise ``ConfigError`` when ``weights`` storage cannot be used for a model trained from ``backbone``
    (unknown precision, or ``float16-delta`` without a local backbone weights file); call it before training."""
    if weights not in WEIGHT_PRECISIONS:
        raise ConfigError(f"weights must be one of {', '.join(WEIGHT_PRECISIONS)}, got {weights!r}.")
    if weights == "float16-delta":
        delta_base_file(backbone)


@contextmanager
def atomic_directory(target: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a staging directory beside ``target``; on success it replaces ``target`` in one rename.

    Refuses a non-empty ``target`` unless ``overwrite``; on any error the staging directory is removed and an
    existing ``target`` is left untouched.
    """
    check_target(target, overwrite)
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
    if config.get("weights_dtype") == "float16-delta":
        _add_delta_base(model, root, config.get("delta_base"))
    return model.to(device).eval()
