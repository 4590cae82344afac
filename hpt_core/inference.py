"""Inference: a model's label scores for texts, the one decoding rule ``s > threshold``, and evaluation.

    scores = score_documents(model, texts)      # (N, C) raw scores, eval mode, length-sorted batches
    predicted = decode(scores)                  # the paper's rule: every label with s_i > 0
    report = evaluate_model(model, dev_set)     # EvalReport of those raw predicted sets

Training (dev evaluation), fine-tuning (dev/test metrics), ``Predictor`` and the benchmarks all score and decode here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hpt_core.device import autocast
from hpt_core.metrics import EvalReport, evaluate_sets, top_level_confusion

if TYPE_CHECKING:
    from hpt_core.data import Dataset
    from hpt_core.model import HPTModel

__all__ = ["score_documents", "decode", "evaluate_model", "metrics_entry"]


@torch.inference_mode()
def score_documents(
    model: HPTModel,
    texts: list[str],
    batch_size: int = 32,
    lengths: list[int] | None = None,
    precision: str = "auto",
) -> np.ndarray:
    """Label scores ``(N, C)`` for ``texts`` in eval mode (predict ``s > 0``); batches sorted by length.

    ``lengths``, when given, is filled with each text's wordpiece count before truncation (one tokenisation serves
    both). ``precision`` is ``device.autocast``'s: ``auto`` is fp32 on the CPU and mixed precision on GPUs."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), model.num_labels), dtype=np.float32)
    counts = np.zeros(len(texts), dtype=np.int64)
    device = model.device
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = model.encode([texts[i] for i in idx])
        counts[idx] = batch.text_lengths.numpy()
        with autocast(device, precision):
            out[idx] = model(batch.to(device)).scores.float().cpu().numpy()
    model.train(was_training)
    if lengths is not None:
        lengths[:] = counts.tolist()
    return out


def decode(scores: np.ndarray, threshold: float = 0.0) -> list[list[int]]:
    """The predicted label ids of each row of ``scores`` ``(N, C)``: every label with ``s_i > threshold``
    (the paper's rule at 0; each level is thresholded on its own, so a set need not be a consistent path)."""
    return [np.flatnonzero(row > threshold).tolist() for row in np.asarray(scores)]


def evaluate_model(
    model: HPTModel,
    dataset: Dataset,
    batch_size: int = 32,
    train_counts: list[int] | None = None,
    precision: str = "auto",
) -> EvalReport:
    """Scores ``dataset`` (in ``precision``, see ``score_documents``) and returns an ``EvalReport`` of the raw
    predicted sets ``{i: s_i > 0}``."""
    scores = score_documents(model, [d.text for d in dataset.documents], batch_size, precision=precision)
    gold = [d.labels for d in dataset.documents]
    return evaluate_sets(gold, decode(scores), model.hierarchy, train_counts=train_counts)


def metrics_entry(
    model: HPTModel,
    dataset: Dataset,
    batch_size: int = 32,
    train_counts: list[int] | None = None,
    confusion: bool = False,
) -> dict[str, Any]:
    """``evaluate_model`` as the JSON-ready dict stored in ``metrics.json``; with ``confusion``, plus
    ``top_level_confusion`` ``{"labels", "matrix"}`` (gold top-level label → predicted top-level labels)."""
    scores = score_documents(model, [d.text for d in dataset.documents], batch_size)  # (N, C)
    gold = [d.labels for d in dataset.documents]
    predicted = decode(scores)
    entry = evaluate_sets(gold, predicted, model.hierarchy, train_counts=train_counts).to_dict()
    if confusion:
        labels, matrix = top_level_confusion(gold, predicted, model.hierarchy)
        entry["top_level_confusion"] = {"labels": labels, "matrix": matrix}
    return entry
