"""The methods and datasets of the quality benchmark: each method's model settings and every display name.

Both the runs (``presets``, ``neural``, ``run``) and the report (``stats``, ``tables``, ``figures``) read these tables.
"""

from __future__ import annotations

from typing import Any

# method -> (variant, ablations, code_faithful); the ablation methods are named as in ``hpt_core.model.ABLATIONS``.
NEURAL: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "hpt": ("hpt", (), False),
    "hpt-code": ("hpt", (), True),
    "finetune": ("finetune", (), False),
    "hard": ("hard", (), False),
    "soft": ("soft", (), False),
    "no-constraint": ("hpt", ("no-constraint",), False),
    "no-injection": ("hpt", ("no-injection",), False),
    "bce": ("hpt", ("bce",), False),
    "no-mlm": ("hpt", ("no-mlm",), False),
    "random-connection": ("hpt", ("random-connection",), False),
    "depth-increasing": ("hpt", ("depth-increasing",), False),
}
ABLATION_METHODS = ("no-constraint", "no-injection", "bce", "no-mlm", "random-connection", "depth-increasing")
CLASSICAL = ("tfidf-lr", "hiclass", "emb-lr")
DATASETS = ("20ng-10pct", "wos-1k")
TASK_MLM = "task-mlm"  # backbone label: ``task_adapt_from`` re-warmed on the dataset's own training texts
SENTENCE_BASELINES = ("emb-lr", "setfit")  # what a user of a sentence-embedding backbone reaches for first
VARIANTS = ("hpt-code", "hard", "soft", *ABLATION_METHODS)  # compared with HPT on the same backbone

METHOD_NAMES = {
    "hpt": "HPT",
    "hpt-code": "HPT (code-faithful)",
    "finetune": "Vanilla fine-tune",
    "hard": "HardPrompt",
    "soft": "SoftPrompt",
    "tfidf-lr": "TF-IDF + LR (flat)",
    "hiclass": "TF-IDF + LR (hiclass, per parent node)",
    "emb-lr": "Frozen sentence embeddings + LR",
    "setfit": "SetFit",
    "no-constraint": "r.m. hierarchy constraint",
    "no-injection": "r.m. hierarchy injection",
    "bce": "r.p. BCE loss",
    "no-mlm": "r.m. MLM loss",
    "random-connection": "with random connection",
    "depth-increasing": "with depth-increasing connection",
}
BACKBONE_NAMES = {
    "minilm-l6": "raw MiniLM-L6",
    "minilm-l6-mlm": "re-warmed MiniLM-L6 (shipped)",
    TASK_MLM: "MiniLM-L6 re-warmed on the task's train texts",
}
DATASET_NAMES = {"20ng-10pct": "20 Newsgroups, 10 % train", "wos-1k": "WOS-1k"}


def dataset_name(dataset: str, preset: dict[str, Any]) -> str:
    """Display name; the 20NG key keeps its name in every preset, the training fraction comes from the preset."""
    if dataset == "20ng-10pct":
        return f"20 Newsgroups, {100 * preset.get('news_fraction', 0.1):g} % train"
    return DATASET_NAMES.get(dataset, dataset)
