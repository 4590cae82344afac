"""Where a checkpoint comes from: a local directory, or a Hugging Face Hub model id downloaded (safetensors and JSON
only, never code or pickles) into the Hub cache. ``HPTModel.from_pretrained`` and ``Predictor.from_pretrained`` take
either."""

from __future__ import annotations

import os
import re
from fnmatch import fnmatch
from pathlib import Path

from hpt_core.checkpoint import REQUIRED_FILES
from hpt_core.errors import CheckpointError

__all__ = ["HUB_FILES", "is_hub_id", "resolve_checkpoint", "hub_allowed"]

# What a checkpoint needs (REQUIRED_FILES, label names, metrics, the model card, the tokenizer files): no *.bin,
# *.pt, *.pkl or *.py is ever downloaded, so loading can neither unpickle nor run remote code.
HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.md", "tokenizer.model", "spiece.model"]
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")


def is_hub_id(source: str) -> bool:
    """``owner/name`` with the Hub's characters (and not an existing local path)."""
    return bool(_HUB_ID.fullmatch(source)) and not Path(source).expanduser().exists()


def hub_allowed(repo_id: str, patterns: tuple[str, ...] | list[str]) -> bool:
    """Whether ``repo_id`` matches one of the allow-list's shell patterns (``"*"`` allows every id, ``"me/*"`` one
    owner's); an empty list allows none."""
    return any(fnmatch(repo_id, pattern) for pattern in patterns)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"}


def resolve_checkpoint(source: str | Path, revision: str | None = None) -> Path:
    """A local checkpoint directory for ``source``: the directory itself, or the Hub snapshot of a model id (from the
    cache when it is there); raises ``CheckpointError`` saying what is wrong and what to do."""
    text = str(source).strip()
    path = Path(text).expanduser()
    if path.exists() or not is_hub_id(text):
        return path  # read_checkpoint explains a missing or incomplete directory
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        folder = Path(snapshot_download(text, revision=revision, allow_patterns=HUB_FILES, local_files_only=_offline()))
    except RepositoryNotFoundError as e:
        raise CheckpointError(
            f"{text!r} is neither a folder here nor a Hub model this machine may read (not found, private or "
            "gated); check the path or the id, or log in with `hf auth login` for a private model."
        ) from e
    except (LocalEntryNotFoundError, OSError) as e:
        why = "this machine is offline (HF_HUB_OFFLINE is set)" if _offline() else "the Hub cannot be reached"
        raise CheckpointError(
            f"{text!r} is not a folder here, and as a Hub id it cannot be downloaded: {why}, and it is not in the "
            f"local Hub cache. Check the path, or download the model where you have internet (`hf download {text}`) "
            "and open its folder instead."
        ) from e
    except HFValidationError as e:
        raise CheckpointError(f"{text!r} is not a valid Hub model id ({e}).") from e
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(
            f"Hub model {text!r} is not an HPT Studio checkpoint: it has no {', '.join(missing)} (a checkpoint is "
            "what `hpt-studio train` writes; push that whole folder)."
        )
    return folder
