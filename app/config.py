"""``AppConfig``: where the app finds its models, data, limits and training defaults. ``app.py`` builds one."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from hpt_core.model import HPTConfig
from hpt_core.training import TrainConfig

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["AppConfig", "ROOT", "DEFAULT_BACKBONES"]

# Backbones the fine-tune panel offers (an allow-list: typed names are never passed to from_pretrained).
DEFAULT_BACKBONES = {
    "minilm-l6-mlm (shipped, re-warmed MiniLM, recommended on CPU)": "minilm-l6-mlm",
    "minilm-l6 (raw all-MiniLM-L6-v2, no MLM warm-up)": "minilm-l6",
    "bert-base-uncased (downloads 440 MB from the Hub; GPU recommended)": "bert-base-uncased",
}


@dataclass
class AppConfig:
    """Settings of one app instance. Every path may be relative to the repository root."""

    models: dict[str, Path] = field(
        default_factory=lambda: {
            "20ng-hpt": ROOT / "checkpoints" / "20ng-hpt",
            "20ng-finetune": ROOT / "checkpoints" / "20ng-finetune",
        }
    )  # built-in models, in picker order; the first is the default
    eval_files: dict[str, Path] = field(
        default_factory=lambda: {
            "20ng-hpt": ROOT / "assets" / "eval" / "20ng-test-slice.jsonl",
            "20ng-finetune": ROOT / "assets" / "eval" / "20ng-test-slice.jsonl",
        }
    )  # evaluation documents of the built-in models (fine-tuned ones keep their test split beside the weights)
    examples: dict[str, Path] = field(
        default_factory=lambda: {
            "20ng": ROOT / "assets" / "examples" / "20ng.json",
            "wos": ROOT / "assets" / "examples" / "wos.json",
        }
    )
    demo_dataset: Path = ROOT / "assets" / "wos-1k" / "wos_total_1k.json"
    demo_hierarchy: Path | None = ROOT / "assets" / "wos-1k" / "wos.taxnomy"
    user_dir: Path = field(default_factory=lambda: Path(os.environ.get("HPT_STUDIO_HOME", ROOT / "user_models")))
    backbones: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_BACKBONES))
    keep_models: int = 5  # fine-tuned models kept on disk; older ones are deleted
    max_upload_mb: int = 20
    max_documents: int = 20_000
    max_labels: int = 2_000
    max_depth: int = 8  # levels of the label tree
    max_text_chars: int = 20_000  # pasted text beyond this is cut (with a visible note)
    max_epochs: int = 30
    max_batch_size: int = 64
    max_lr: float = 1e-2
    max_length_limit: int = 512  # tokens; the longest max_length the fine-tune panel accepts
    # The fine-tune panel's defaults (its controls start here; ``JobRequest`` holds configs built from them).
    # A job evaluates at least 8 times (app.jobs.run_config) and stops after `patience` evaluations in a row without a
    # dev macro-F1 gain, keeping the best dev state.
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=5, batch_size=16, lr=1e-4, seed=0, patience=3)
    )
    model: HPTConfig = field(default_factory=lambda: HPTConfig(backbone="minilm-l6-mlm", max_length=128))
    # The frozen-embedding baseline every job fits after training, on the same splits (the duel); None: no baseline.
    baseline_backbone: str | None = "minilm-l6"
    max_loaded_models: int = 4  # predictors kept in memory at once
    precision: str = "auto"  # Predictor precision: bf16 on CPUs with bf16 instructions (2× faster, −0.03 F1), else fp32
    eval_limit: int = 500  # documents the Evaluate tab scores at most

    def __post_init__(self) -> None:
        self.models = {name: Path(p) for name, p in self.models.items()}
        self.eval_files = {name: Path(p) for name, p in self.eval_files.items()}
        self.user_dir = Path(self.user_dir)
