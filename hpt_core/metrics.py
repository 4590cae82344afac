"""Evaluation of hierarchical multi-label predictions (HPT paper / HiAGM protocol).

Per label ``c`` over the evaluated documents: ``TP_c`` = documents with ``c`` in both gold and prediction,
``P_c = TP_c / #pred_c`` and ``R_c = TP_c / #gold_c`` (0 when the denominator is 0), ``F1_c = 2PR / (P + R)``
(0 when ``P + R = 0``). Macro-F1 is the mean of ``F1_c`` over *all* labels of the hierarchy, so labels that never
occur in the split count as 0. Micro-F1 uses the counts pooled over labels. Gold sets are closed under ancestors
(every label on a gold path is gold); predicted sets are scored as given.

The arithmetic is scikit-learn's ``precision_recall_fscore_support`` on multi-hot matrices with ``zero_division=0``,
which matches the definition above (a label with neither gold nor prediction gets F1 0).

Hierarchical precision, recall and F1 (Kiritchenko et al.; the micro average of the ``hiclass`` library) score
ancestor-augmented sets: with ``G_i`` and ``P_i`` the gold and predicted labels of document ``i`` plus all their
ancestors (no virtual root), ``hP = sum_i |P_i & G_i| / sum_i |P_i|``, ``hR = sum_i |P_i & G_i| / sum_i |G_i|`` and
``hF = 2 hP hR / (hP + hR)``, each 0 when its denominator is 0. Predicting only the parent of the gold leaf, or a wrong
sibling leaf, still earns credit for the shared ancestors.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_fscore_support

from hpt_core.errors import ConfigError
from hpt_core.hierarchy import LabelHierarchy

__all__ = [
    "EvalReport",
    "evaluate_sets",
    "frequency_buckets",
    "hierarchical_scores",
    "multi_hot",
    "top_level_confusion",
    "NO_LABEL",
]

NO_LABEL = "(none)"  # the confusion column of documents with no predicted top-level label


@dataclass
class EvalReport:
    """Scores of one evaluation; every score is a fraction in [0, 1]."""

    micro_f1: float
    macro_f1: float
    hierarchical_precision: float  # over ancestor-augmented sets (see the module docstring)
    hierarchical_recall: float
    hierarchical_f1: float
    per_depth: dict[int, dict[str, float]]  # depth -> {"micro_f1", "macro_f1", "n_labels"}
    per_bucket: list[dict[str, float]]  # {"bucket", "n_labels", "min_count", "max_count", "macro_f1"}; [] if no counts
    per_label: list[dict[str, Any]]  # {"label", "depth", "precision", "recall", "f1", "support"}, in label-id order
    path_consistency: float
    n_documents: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: plain Python numbers, depth keys as strings, fractions (never percentages)."""
        data = asdict(self)
        data["per_depth"] = {str(d): dict(v) for d, v in sorted(self.per_depth.items())}
        return _plain(data)

    def summary(self) -> str:
        """One-line human summary with percentages."""
        text = (
            f"micro-F1 {_pct(self.micro_f1)}, macro-F1 {_pct(self.macro_f1)}, hierarchical F1 "
            f"{_pct(self.hierarchical_f1)} ({self.n_documents:,} "
            f"document{'s' if self.n_documents != 1 else ''})"
        )
        for depth, scores in sorted(self.per_depth.items()):
            text += f"; depth {depth}: micro-F1 {_pct(scores['micro_f1'])}, macro-F1 {_pct(scores['macro_f1'])}"
        text += f"; path consistency {_pct(self.path_consistency)}"
        text += f"; hierarchical P {_pct(self.hierarchical_precision)}, R {_pct(self.hierarchical_recall)}"
        return text


def _pct(value: float) -> str:
    return f"{100.0 * value:.2f} %"


def _plain(value: Any) -> Any:
    """Recursively turn numpy scalars and tuples into plain JSON types."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def _to_matrix(label_sets: Sequence[Iterable[int]], num_labels: int, what: str) -> np.ndarray:
    """Multi-hot matrix of ``label_sets``, with a ConfigError naming ``what[i]`` for a bad label id."""
    if num_labels < 1:
        raise ConfigError(f"num_labels must be at least 1, got {num_labels}.")
    matrix = np.zeros((len(label_sets), num_labels), dtype=np.uint8)
    for row, labels in enumerate(label_sets):
        if isinstance(labels, (str, bytes)):
            raise ConfigError(f"{what}[{row}] is the string {labels!r}; expected a collection of integer label ids.")
        try:
            items = list(labels)
        except TypeError as e:
            raise ConfigError(f"{what}[{row}] is {labels!r}; expected a collection of integer label ids.") from e
        for item in items:
            try:
                label = operator.index(item)
            except TypeError as e:
                raise ConfigError(
                    f"{what}[{row}] contains {item!r}, which is not an integer label id; map label names to ids with "
                    "LabelHierarchy.index first."
                ) from e
            if not 0 <= label < num_labels:
                raise ConfigError(
                    f"{what}[{row}] contains label id {label}, out of range: ids go from 0 to {num_labels - 1} "
                    f"({num_labels} labels); is the prediction from a model trained on another hierarchy?"
                )
            matrix[row, label] = 1
    return matrix


def multi_hot(label_sets: Sequence[Iterable[int]], num_labels: int) -> np.ndarray:
    """``(N, C)`` uint8 matrix with a 1 where document ``n`` has label ``c``."""
    return _to_matrix(label_sets, num_labels, "label_sets")


def _check_counts(train_counts: Sequence[int], num_labels: int | None = None) -> np.ndarray:
    counts = np.asarray(train_counts)
    if counts.ndim != 1:
        raise ConfigError(f"train_counts must be a flat list of per-label counts, got shape {counts.shape}.")
    if num_labels is not None and len(counts) != num_labels:
        raise ConfigError(
            f"train_counts has {len(counts)} entries but the hierarchy has {num_labels} labels; give one training "
            "count per label id."
        )
    if len(counts) == 0:
        raise ConfigError("train_counts is empty; give one training count per label id.")
    if counts.dtype.kind not in "iuf" or (counts.dtype.kind == "f" and not np.all(np.isfinite(counts))):
        raise ConfigError(f"train_counts must be non-negative integers, got values of type {counts.dtype}.")
    if np.any(counts < 0) or np.any(counts != np.round(counts)):
        bad = int(np.flatnonzero((counts < 0) | (counts != np.round(counts)))[0])
        raise ConfigError(f"train_counts[{bad}] is {counts[bad].item()!r}; counts must be non-negative integers.")
    return counts.astype(np.int64)


def frequency_buckets(train_counts: Sequence[int], n_buckets: int = 5) -> list[list[int]]:
    """Label ids ranked by training count (descending, ties by id), cut into ``n_buckets`` near-equal groups.

    Bucket sizes differ by at most one (the first buckets take the remainder). With fewer labels than buckets, only
    ``len(train_counts)`` single-label buckets are returned, so no bucket is empty.
    """
    if isinstance(n_buckets, bool) or not isinstance(n_buckets, (int, np.integer)) or n_buckets < 1:
        raise ConfigError(f"n_buckets must be a positive integer, got {n_buckets!r}.")
    counts = _check_counts(train_counts)
    order = sorted(range(len(counts)), key=lambda i: (-int(counts[i]), i))
    n = min(int(n_buckets), len(order))
    base, extra = divmod(len(order), n)
    buckets: list[list[int]] = []
    start = 0
    for k in range(n):
        size = base + (1 if k < extra else 0)
        buckets.append(order[start : start + size])
        start += size
    return buckets


def _scores(gold: np.ndarray, pred: np.ndarray, labels: list[int]) -> tuple[float, float]:
    """(micro-F1, macro-F1) restricted to ``labels``; macro averages over all of them."""
    if not labels:
        return 0.0, 0.0
    _, _, micro, _ = precision_recall_fscore_support(gold, pred, labels=labels, average="micro", zero_division=0)
    _, _, f1, _ = precision_recall_fscore_support(gold, pred, labels=labels, average=None, zero_division=0)
    return float(micro), float(np.mean(f1))


def _depths(parents: Sequence[int]) -> list[int]:
    """Depth of every label (0 for top-level) from its parent id (``-1`` for none); a ConfigError naming the label
    for a parent out of range or a cycle."""
    n = len(parents)
    for label, parent in enumerate(parents):
        if parent != -1 and not 0 <= parent < n:
            raise ConfigError(
                f"parents[{label}] is {parent}, out of range: give -1 for a top-level label or a label id from 0 to "
                f"{n - 1}."
            )
    depths = []
    for label in range(n):
        depth, node = 0, label
        while parents[node] != -1:
            node, depth = parents[node], depth + 1
            if depth > n:
                raise ConfigError(f"parents has a cycle through label id {label}; every label must lead to a top one.")
        depths.append(depth)
    return depths


def _close_under_ancestors(matrix: np.ndarray, parents: Sequence[int], depths: Sequence[int]) -> None:
    """Add every ancestor of each label set in ``matrix`` (rows are documents), in place."""
    for label in sorted(range(len(parents)), key=lambda i: -depths[i]):
        if parents[label] >= 0:
            matrix[:, parents[label]] |= matrix[:, label]


def _hierarchical_from_matrices(gold: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    """(hP, hR, hF) of ancestor-closed multi-hot matrices, 0 wherever a denominator is 0."""
    both = int(np.logical_and(gold, pred).sum())
    n_pred, n_gold = int(pred.sum()), int(gold.sum())
    hp = both / n_pred if n_pred else 0.0
    hr = both / n_gold if n_gold else 0.0
    hf = 2 * hp * hr / (hp + hr) if hp + hr > 0 else 0.0
    return hp, hr, hf


def hierarchical_scores(
    gold: Sequence[Iterable[int]], pred: Sequence[Iterable[int]], parents: Sequence[int]
) -> tuple[float, float, float]:
    """Micro-averaged hierarchical ``(precision, recall, F1)`` of predicted label-id sets against gold ones.

    ``parents[c]`` is the parent id of label ``c`` (``-1`` for a top-level label, as ``LabelHierarchy.parents``).
    Both sides are augmented with every ancestor of their labels before counting (the virtual root is not a label);
    a score whose denominator is 0 (no predicted or no gold labels at all) is 0, and so is F1 when ``P + R = 0``.
    """
    if len(gold) != len(pred):
        raise ConfigError(
            f"gold has {len(gold)} documents but pred has {len(pred)}; give one predicted label set per gold document."
        )
    if len(parents) == 0:
        raise ConfigError("parents is empty; give one parent id (-1 for a top-level label) per label id.")
    try:
        parents = [operator.index(p) for p in parents]
    except TypeError as e:
        raise ConfigError(f"parents must hold integer label ids (-1 for a top-level label): {e}.") from e
    depths = _depths(parents)
    gold_m = _to_matrix(gold, len(parents), "gold")
    pred_m = _to_matrix(pred, len(parents), "pred")
    _close_under_ancestors(gold_m, parents, depths)
    _close_under_ancestors(pred_m, parents, depths)
    return _hierarchical_from_matrices(gold_m, pred_m)


def _path_consistency(pred: np.ndarray, parents: list[int]) -> float:
    """Fraction of predicted non-top labels (over documents) whose parent is predicted too."""
    child_ids = np.array([i for i, p in enumerate(parents) if p >= 0], dtype=np.int64)
    if child_ids.size == 0:
        return 1.0
    parent_ids = np.array([parents[i] for i in child_ids], dtype=np.int64)
    predicted = pred[:, child_ids].astype(bool)
    total = int(predicted.sum())
    if total == 0:
        return 1.0
    with_parent = int((predicted & pred[:, parent_ids].astype(bool)).sum())
    return with_parent / total


def evaluate_sets(
    gold: Sequence[Iterable[int]],
    pred: Sequence[Iterable[int]],
    hierarchy: LabelHierarchy,
    train_counts: Sequence[int] | None = None,
) -> EvalReport:
    """Score predicted label-id sets against gold sets (gold is closed under ancestors, predictions are not).

    ``train_counts`` (one training-document count per label id) adds the frequency-bucket breakdown.
    """
    if len(gold) != len(pred):
        raise ConfigError(
            f"gold has {len(gold)} documents but pred has {len(pred)}; give one predicted label set per gold document."
        )
    if len(gold) == 0:
        raise ConfigError("Nothing to evaluate: the evaluation set has 0 documents.")
    num_labels = hierarchy.num_labels
    counts = _check_counts(train_counts, num_labels) if train_counts is not None else None
    gold_m = _to_matrix(gold, num_labels, "gold")
    pred_m = _to_matrix(pred, num_labels, "pred")
    # Close gold under ancestors: every label on a gold path is gold.
    parents = hierarchy.parents
    depth_of = hierarchy.depth_of
    _close_under_ancestors(gold_m, parents, depth_of)
    closed_pred = pred_m.copy()  # the hierarchical scores augment predictions too; the flat ones score them as given
    _close_under_ancestors(closed_pred, parents, depth_of)
    hp, hr, hf = _hierarchical_from_matrices(gold_m, closed_pred)

    all_labels = list(range(num_labels))
    precision, recall, f1, support = precision_recall_fscore_support(
        gold_m, pred_m, labels=all_labels, average=None, zero_division=0
    )
    micro, macro = _scores(gold_m, pred_m, all_labels)

    per_depth: dict[int, dict[str, float]] = {}
    for depth in range(hierarchy.num_levels):
        ids = hierarchy.labels_at_depth(depth)
        d_micro, d_macro = _scores(gold_m, pred_m, ids)
        per_depth[depth] = {"micro_f1": d_micro, "macro_f1": d_macro, "n_labels": len(ids)}

    per_bucket: list[dict[str, float]] = []
    if counts is not None:
        for k, ids in enumerate(frequency_buckets(counts.tolist())):
            per_bucket.append(
                {
                    "bucket": k,
                    "n_labels": len(ids),
                    "min_count": int(counts[ids].min()),
                    "max_count": int(counts[ids].max()),
                    "macro_f1": float(np.mean(f1[ids])),
                }
            )

    per_label = [
        {
            "label": hierarchy.path_string(i),
            "depth": depth_of[i],
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i in all_labels
    ]
    return EvalReport(
        micro_f1=micro,
        macro_f1=macro,
        hierarchical_precision=hp,
        hierarchical_recall=hr,
        hierarchical_f1=hf,
        per_depth=per_depth,
        per_bucket=per_bucket,
        per_label=per_label,
        path_consistency=_path_consistency(pred_m, parents),
        n_documents=len(gold),
    )


def top_level_confusion(
    gold: Sequence[Iterable[int]], pred: Sequence[Iterable[int]], hierarchy: LabelHierarchy
) -> tuple[list[str], list[list[int]]]:
    """Top-level confusion counts: rows are gold top-level labels, columns predicted ones plus ``NO_LABEL``.

    A document counts once for each (gold top-level label, predicted top-level label) pair it has, and once in the
    ``NO_LABEL`` column of each of its gold top-level labels when no top-level label is predicted. Gold labels below
    the top count through their top-level ancestor.
    """
    tops = hierarchy.labels_at_depth(0)
    column = {label: k for k, label in enumerate(tops)}

    def top_of(label: int) -> int:
        ancestors = hierarchy.ancestors(label)
        return ancestors[0] if ancestors else label

    matrix = [[0] * (len(tops) + 1) for _ in tops]
    for g, p in zip(gold, pred):
        gold_tops = {top_of(i) for i in g}
        pred_tops = {i for i in p if i in column}
        for row in gold_tops:
            for col in pred_tops or [None]:
                matrix[column[row]][len(tops) if col is None else column[col]] += 1
    return [hierarchy.name(i) for i in tops] + [NO_LABEL], matrix
