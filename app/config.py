"""``AppConfig``: where the app finds its models, data, limits and training defaults. ``app.py`` builds one."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from hpt_core.model import HPTConfig
from hpt_core.training import TrainConfig

PACKAGE = Path(__file__).resolve().parent
# Installed (``pip install .``), the assets travel inside the package; in a checkout they sit beside ``app/``.
INSTALLED = (PACKAGE / "assets").is_dir()
ROOT = PACKAGE.parent  # the checkout's root (site-packages when installed)
ASSETS = PACKAGE / "assets" if INSTALLED else ROOT / "assets"
CHECKPOINTS_ENV = "HPT_STUDIO_CHECKPOINTS"  # the built-in models' folder (the same variable as hpt_core.backbones)
HOME_ENV = "HPT_STUDIO_HOME"  # where fine-tuned models are kept


def checkpoints_dir() -> Path:
    """The built-in models' folder: ``$HPT_STUDIO_CHECKPOINTS``, else the checkout's ``checkpoints/``, else
    ``./checkpoints`` (an installed package ships no weights)."""
    if os.environ.get(CHECKPOINTS_ENV):
        return Path(os.environ[CHECKPOINTS_ENV]).expanduser()
    return ROOT / "checkpoints" if not INSTALLED else Path.cwd() / "checkpoints"


def user_models_dir() -> Path:
    """Fine-tuned models: ``$HPT_STUDIO_HOME``, else ``user_models/`` in a checkout, else ``~/.hpt-studio/models``
    (never inside site-packages)."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    return ROOT / "user_models" if not INSTALLED else Path.home() / ".hpt-studio" / "models"


def default_hub_allow() -> tuple[str, ...]:
    """``$HPT_STUDIO_HUB_ALLOW`` split on commas; unset: every id locally, none on a Space."""
    value = os.environ.get(HUB_ALLOW_ENV)
    if value is not None:
        return tuple(p.strip() for p in value.split(",") if p.strip())
    return () if os.environ.get("SPACE_ID") else ("*",)


HUB_ALLOW_ENV = "HPT_STUDIO_HUB_ALLOW"

__all__ = ["AppConfig", "ROOT", "ASSETS", "DEFAULT_BACKBONES", "checkpoints_dir", "user_models_dir"]

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
            "20ng-hpt": checkpoints_dir() / "20ng-hpt",
            "20ng-finetune": checkpoints_dir() / "20ng-finetune",
        }
    )  # built-in models, in picker order; the first is the default
    eval_files: dict[str, Path] = field(
        default_factory=lambda: {
            "20ng-hpt": ASSETS / "eval" / "20ng-test-slice.jsonl",
            "20ng-finetune": ASSETS / "eval" / "20ng-test-slice.jsonl",
        }
    )  # evaluation documents of the built-in models (fine-tuned ones keep their test split beside the weights)
    examples: dict[str, Path] = field(
        default_factory=lambda: {
            "20ng": ASSETS / "examples" / "20ng.json",
            "wos": ASSETS / "examples" / "wos.json",
        }
    )
    demo_dataset: Path = ASSETS / "wos-1k" / "wos_total_1k.json"
    demo_hierarchy: Path | None = ASSETS / "wos-1k" / "wos.taxnomy"
    user_dir: Path = field(default_factory=user_models_dir)
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
    # A job evaluates at least 8 times (app.timing.run_config) and stops after `patience` evaluations in a row without a
    # dev macro-F1 gain, keeping the best dev state.
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=5, batch_size=16, lr=1e-4, seed=0, patience=3)
    )
    # Attention dropout off: an fp32 CPU training step 1.13x faster at no dev-F1 cost in the recipe runs
    # (docs/benchmarks.md); with bf16 on CPUs that have bf16 instructions (TrainConfig.precision "auto") 1.53x.
    model: HPTConfig = field(
        default_factory=lambda: HPTConfig(backbone="minilm-l6-mlm", max_length=128, attention_dropout=0.0)
    )
    # The frozen-embedding baseline every job fits after training, on the same splits (the duel); None: no baseline.
    baseline_backbone: str | None = "minilm-l6"
    max_loaded_models: int = 4  # predictors kept in memory at once
    precision: str = "auto"  # Predictor precision: bf16 on CPUs with bf16 instructions (2× faster, −0.03 F1), else fp32
    eval_limit: int = 500  # documents the Evaluate tab scores at most
    # Opening other checkpoints ("Open a model"): a folder on the server, and Hub ids matching these shell patterns
    # ("*" any, "me/*" one owner's, none: off). On a Space (SPACE_ID set) folders are refused and the Hub list comes
    # from $HPT_STUDIO_HUB_ALLOW (comma-separated; unset: none), since visitors would otherwise choose what it loads.
    open_folders: bool = field(default_factory=lambda: not os.environ.get("SPACE_ID"))
    hub_allow: tuple[str, ...] = field(default_factory=lambda: default_hub_allow())

    def __post_init__(self) -> None:
        self.models = {name: Path(p) for name, p in self.models.items()}
        self.eval_files = {name: Path(p) for name, p in self.eval_files.items()}
        self.user_dir = Path(self.user_dir)
