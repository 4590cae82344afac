"""HPT Studio's model library: hierarchy-aware prompt tuning (Wang et al., EMNLP 2022) without any UI.

Entry points: ``HPTConfig``/``HPTModel`` (every variant of the paper as flags), ``train`` (one loop), ``Predictor``,
``nearest_words``/``label_word_map`` (explanations), ``load_dataset``/``validate`` (data), ``evaluate_sets``
(metrics), ``load_label_names``/``readable_name`` (label names), ``fit_sentence_baseline``/``duel_verdict``/
``duel_table`` (the frozen-embedding baseline beside HPT). Importing this package does not import torch-heavy
submodules until they are used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "HPTError": "hpt_core.errors",
    "HierarchyError": "hpt_core.errors",
    "DatasetError": "hpt_core.errors",
    "ConfigError": "hpt_core.errors",
    "CheckpointError": "hpt_core.errors",
    "BackboneError": "hpt_core.errors",
    "LabelHierarchy": "hpt_core.hierarchy",
    "Dataset": "hpt_core.data",
    "Document": "hpt_core.data",
    "load_dataset": "hpt_core.data",
    "validate": "hpt_core.data",
    "split_dataset": "hpt_core.data",
    "low_resource": "hpt_core.data",
    "HPTConfig": "hpt_core.model",
    "HPTModel": "hpt_core.model",
    "TrainConfig": "hpt_core.training",
    "TrainProgress": "hpt_core.training",
    "TrainResult": "hpt_core.training",
    "train": "hpt_core.training",
    "evaluate_model": "hpt_core.inference",
    "score_documents": "hpt_core.inference",
    "decode": "hpt_core.inference",
    "EvalReport": "hpt_core.metrics",
    "evaluate_sets": "hpt_core.metrics",
    "hierarchical_scores": "hpt_core.metrics",
    "Predictor": "hpt_core.predict",
    "Prediction": "hpt_core.predict",
    "nearest_words": "hpt_core.explain",
    "label_word_map": "hpt_core.explain",
    "SentenceBaselineResult": "hpt_core.sentence_baseline",
    "embed_texts": "hpt_core.sentence_baseline",
    "fit_sentence_baseline": "hpt_core.sentence_baseline",
    "duel_verdict": "hpt_core.sentence_baseline",
    "duel_table": "hpt_core.sentence_baseline",
    "load_label_names": "hpt_core.label_names",
    "readable_name": "hpt_core.label_names",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hpt_core' has no attribute {name!r}")
