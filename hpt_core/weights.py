"""How ``model.safetensors`` stores a model's weights, and turning them back into fp32.

Storage precisions (``WEIGHT_PRECISIONS``, smallest first):

* ``float16``: every floating-point tensor in fp16, half the size.
* ``float16-delta``: every backbone weight as the fp16 difference from the backbone file the model was trained from,
  the rest in fp32. About the size of ``float16``, but fine-tuning moves a weight by a few per cent, so rounding the
  difference errs some 20× less than rounding the weight. Loading needs that same backbone file, found by the
  backbone's name and checked by its sha256 (``DeltaBase``).
* ``mixed``: only the word embeddings (tied to the MLM decoder) in fp16: they are half of a small backbone and
  rounding them barely moves the scores, while rounding the encoder's matrices does.
* ``float32``: as trained.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load
from torch import nn

from hpt_core.backbones import resolve_backbone
from hpt_core.errors import BackboneError, CheckpointError, ConfigError

if TYPE_CHECKING:
    from hpt_core.model import HPTModel

__all__ = [
    "WEIGHT_PRECISIONS",
    "DeltaBase",
    "add_delta_base",
    "check_weights",
    "delta_base_file",
    "storage_base",
    "stored_copy",
]

# storage precision of model.safetensors, smallest first
WEIGHT_PRECISIONS = ("float16", "float16-delta", "mixed", "float32")
_BACKBONE_PREFIX = "backbone."  # HPTModel's backbone parameters are named "backbone.<name in the backbone's file>"


class DeltaBase:
    """The backbone weights file that ``float16-delta`` weights are differences from: its sha256 and tensors."""

    def __init__(self, path: Path) -> None:
        data = path.read_bytes()  # read once for both the hash and the tensors
        self.path = path
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.tensors: dict[str, torch.Tensor] = load(data)


def delta_base_file(backbone: str) -> Path:
    """The local ``model.safetensors`` of ``backbone`` (alias or directory) that ``float16-delta`` weights are
    stored relative to; raises ``ConfigError`` saying what to use instead when there is none (a hub name)."""
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


def _read_delta_base(backbone: str) -> DeltaBase:
    return DeltaBase(delta_base_file(backbone))


def check_weights(weights: str, backbone: str) -> None:
    """Raise ``ConfigError`` when ``weights`` storage cannot be used for a model trained from ``backbone``
    (unknown precision, or ``float16-delta`` without a local backbone weights file); call it before training."""
    if weights not in WEIGHT_PRECISIONS:
        raise ConfigError(f"weights must be one of {', '.join(WEIGHT_PRECISIONS)}, got {weights!r}.")
    if weights == "float16-delta":
        delta_base_file(backbone)


def storage_base(weights: str, backbone: str) -> DeltaBase | None:
    """Check ``weights`` as ``check_weights`` does; for ``float16-delta``, the backbone file read (once) here."""
    if weights == "float16-delta":
        return _read_delta_base(backbone)  # raises what check_weights would, resolving once
    check_weights(weights, backbone)
    return None


def _delta_targets(model: nn.Module, base: dict[str, torch.Tensor]) -> dict[str, tuple[str, nn.Parameter]]:
    """Model parameter name → (key in the backbone file, parameter) for every backbone weight the file holds with the
    same shape. A tied parameter (word embeddings = MLM decoder) appears once, under a name the file has."""
    targets: dict[str, tuple[str, nn.Parameter]] = {}
    seen: set[int] = set()
    for name, param in model.named_parameters(remove_duplicate=False):
        key = name[len(_BACKBONE_PREFIX) :]
        if id(param) in seen or not name.startswith(_BACKBONE_PREFIX) or key not in base:
            continue
        if base[key].shape == param.shape and param.is_floating_point():
            targets[name] = (key, param)
            seen.add(id(param))
    return targets


def _to_deltas(model: nn.Module, base: dict[str, torch.Tensor]) -> list[str]:
    """Replace, in place, each backbone weight of ``model`` (a copy) by its fp16 difference from ``base``; returns
    the names replaced."""
    targets = _delta_targets(model, base)
    for key, param in targets.values():
        param.data = (param.data.float() - base[key].to(device=param.device, dtype=torch.float32)).half()
    return sorted(targets)


def stored_copy(model: HPTModel, weights: str, base: DeltaBase | None = None) -> tuple[nn.Module, list[str]]:
    """The module whose weights go into ``model.safetensors`` for ``weights`` storage (``base``: the file from
    ``storage_base``, for ``float16-delta``), and the names of the parameters stored as differences from ``base``.

    That is ``model`` itself for ``float32``, else a converted copy: ``model`` is left untouched.
    """
    if weights == "float16":
        return copy.deepcopy(model).half(), []
    if weights == "mixed":
        stored = copy.deepcopy(model)
        stored.word_embeddings.weight.data = stored.word_embeddings.weight.data.half()  # the decoder is tied
        return stored, []
    if base is not None:
        stored = copy.deepcopy(model)
        return stored, _to_deltas(stored, base.tensors)
    return model, []


def add_delta_base(model: nn.Module, root: Path, info: Any) -> None:
    """Undo ``stored_copy``'s differences on a model just loaded from ``root``: add the backbone file's weights back
    (in fp32). ``info`` is config.json's ``delta_base`` entry; raises ``CheckpointError`` saying what is wrong."""
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
