"""``Predictor``: texts → per-label scores and predicted label paths. Loads once, batches, ``torch.inference_mode``.

Consistency rules (how a set of thresholded scores becomes paths):

- ``paper`` (default; what the paper's metrics use): every label with ``s_i > threshold`` is predicted, each level
  thresholded independently at its own ``[PRED]``. A child may be predicted without its parent. ``paths`` lists, for
  each predicted label none of whose children is predicted, its full path from the top; ``consistent`` tells whether
  every predicted label's parent was predicted too.
- ``top-down``: start from the top-level labels with ``s > threshold`` and descend only into children of predicted
  labels, so every path is consistent by construction (a child above the threshold under an unpredicted parent is
  dropped). With ``at_least_one=True`` the best top-level label is kept when none passes the threshold.
- ``drop-orphans``: the paper's set minus labels whose ancestors are not all predicted.
- ``add-ancestors``: the paper's set plus every ancestor of a predicted label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hpt_core.coalesce import ScoreCoalescer
from hpt_core.data import Dataset
from hpt_core.device import native_bf16, resolve_device
from hpt_core.errors import ConfigError
from hpt_core.hierarchy import LabelHierarchy
from hpt_core.inference import decode, score_documents
from hpt_core.metrics import EvalReport, evaluate_sets
from hpt_core.model import HPTModel

__all__ = ["Predictor", "Prediction", "LabelScore", "Mistake", "RULES", "PRECISIONS", "apply_rule", "best_path"]

RULES = ("paper", "top-down", "drop-orphans", "add-ancestors")
PRECISIONS = ("fp32", "int8", "bf16", "auto")  # inference options of ``Predictor`` (see ``from_pretrained``)


@dataclass
class LabelScore:
    """One label's score for one text."""

    label: str  # name
    path: list[str]  # names from the top
    depth: int
    score: float  # raw score s_i (predicted when > threshold)
    probability: float  # sigmoid(s_i)
    predicted: bool


@dataclass
class Prediction:
    """The prediction for one text."""

    text: str
    paths: list[list[str]]  # predicted paths, names from the top
    labels: list[LabelScore]  # predicted labels, by depth then score
    scores: list[LabelScore] = field(default_factory=list)  # every label, best first (when asked for)
    consistent: bool = True  # every predicted label's parent is predicted
    truncated: bool = False  # the text was longer than the model's max length
    below_threshold: bool = False  # nothing passed the threshold: ``paths`` is the best path, shown as a guess

    def to_dict(self) -> dict:
        def row(s: LabelScore) -> dict:
            return {"label": s.label, "path": s.path, "depth": s.depth, "score": round(s.score, 6)}

        out = {"paths": self.paths, "labels": [row(s) for s in self.labels], "consistent": self.consistent}
        if self.truncated:
            out["truncated"] = True
        if self.below_threshold:
            out["below_threshold"] = True
        return out


@dataclass
class Mistake:
    """A test document whose predicted label set differs from its gold set (closed under ancestors)."""

    text: str
    gold: list[int]  # gold label ids, ancestors included
    predicted: list[int]  # predicted label ids
    scores: list[float]  # (C,) raw scores
    gold_paths: list[list[str]]
    predicted_paths: list[list[str]]


def apply_rule(
    scores: np.ndarray,
    hierarchy: LabelHierarchy,
    rule: str = "paper",
    threshold: float = 0.0,
    at_least_one: bool = False,
) -> list[int]:
    """Predicted label ids for one ``(C,)`` score vector under a consistency ``rule`` (module docstring)."""
    if rule not in RULES:
        raise ConfigError(f"Unknown consistency rule {rule!r}; choose one of {', '.join(RULES)}.")
    above = set(decode(scores[None, :], threshold)[0])
    if rule == "top-down":
        chosen: list[int] = []
        frontier = [i for i in hierarchy.children(None) if i in above]
        if not frontier and at_least_one:
            tops = hierarchy.children(None)
            frontier = [max(tops, key=lambda i: scores[i])]
        while frontier:
            chosen += frontier
            frontier = [c for p in frontier for c in hierarchy.children(p) if c in above]
        return sorted(chosen)
    if rule == "drop-orphans":
        return sorted(i for i in above if all(a in above for a in hierarchy.ancestors(i)))
    if rule == "add-ancestors":
        return hierarchy.closure(above)
    return sorted(above)


def best_path(scores: np.ndarray, hierarchy: LabelHierarchy) -> list[int]:
    """The label ids of the best path for one ``(C,)`` score vector, top-down: the best top-level label, then its
    best child, down to a leaf."""
    path: list[int] = []
    options = hierarchy.children(None)
    while options:
        path.append(max(options, key=lambda i: scores[i]))
        options = hierarchy.children(path[-1])
    return path


def _label_scores(h: LabelHierarchy, row: np.ndarray, labels: list[int], chosen: set[int]) -> list[LabelScore]:
    """``LabelScore``s of ``labels`` only (building all C of them per text made a 5,000-label tree predict 30× slower
    than its encoder forward)."""
    probs = 1.0 / (1.0 + np.exp(-row[labels].astype(np.float64)))
    return [
        LabelScore(h.name(i), h.path(i), h.depth(i), float(row[i]), float(p), i in chosen)
        for i, p in zip(labels, probs)
    ]


def _end_paths(h: LabelHierarchy, labels: list[int]) -> list[list[str]]:
    """Paths of the labels in ``labels`` none of whose children are in it."""
    chosen = set(labels)
    return [h.path(i) for i in labels if not any(c in chosen for c in h.children(i))]


class Predictor:
    """Batched prediction with a model loaded once.

    Example:
        >>> predictor = Predictor.from_pretrained("checkpoints/wos-hpt")  # doctest: +SKIP
        >>> predictor.predict(["Deep networks for image segmentation"])[0].paths  # doctest: +SKIP
        [['CS', 'Computer vision']]
    """

    def __init__(self, model: HPTModel, batch_size: int = 32, precision: str = "fp32", coalesce: bool = False) -> None:
        if precision not in PRECISIONS:
            raise ConfigError(f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
        self.model = model.eval()
        self.batch_size = batch_size
        if precision == "auto":  # bf16 loses < 0.05 F1 on the demo checkpoints (docs/benchmarks.md)
            precision = "bf16" if native_bf16(model.device) else "fp32"
        self.precision = precision
        if precision == "int8":
            if model.device.type != "cpu":
                raise ConfigError("int8 dynamic quantisation runs on the CPU only; load the model with device='cpu'.")
            # int8 weights for every nn.Linear (encoder, MLM-head transform), activations quantised on the fly
            self.model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        # a server's concurrent requests share one forward pass (hpt_core.coalesce); a script's calls run as given
        self.coalescer = ScoreCoalescer(self._score) if coalesce else None

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        device: str = "auto",
        batch_size: int = 32,
        precision: str = "fp32",
        coalesce: bool = False,
    ) -> Predictor:
        """Load a checkpoint; ``precision`` is ``fp32`` (default: scores identical on every machine), ``int8``
        (dynamic quantisation, CPU), ``bf16`` (autocast; fast only on CPUs with bf16 instructions) or ``auto`` (bf16
        where the CPU has them, else fp32; what the app uses). See docs/benchmarks.md for their F1 cost and speed.
        ``coalesce=True`` (what the app uses) batches calls made at the same time from several threads."""
        device = "cpu" if precision == "int8" and device == "auto" else device
        model = HPTModel.from_pretrained(directory, device=resolve_device(device))
        return cls(model, batch_size, precision, coalesce)

    @property
    def hierarchy(self) -> LabelHierarchy:
        return self.model.hierarchy

    def scores(self, texts: list[str], lengths: list[int] | None = None) -> np.ndarray:
        """Raw label scores ``(N, C)``; ``lengths`` (optional) receives each text's wordpieces before truncation."""
        if self.coalescer is not None:
            return self.coalescer(list(texts), lengths)
        return self._score(list(texts), lengths)

    def _score(self, texts: list[str], lengths: list[int] | None = None) -> np.ndarray:
        if self.precision == "bf16":
            with torch.autocast(device_type=self.model.device.type, dtype=torch.bfloat16):
                return score_documents(self.model, texts, self.batch_size, lengths)
        return score_documents(self.model, texts, self.batch_size, lengths)

    def predict(
        self,
        texts: str | list[str],
        threshold: float = 0.0,
        rule: str = "paper",
        at_least_one: bool = False,
        all_scores: bool = False,
        best: bool = False,
    ) -> list[Prediction]:
        """One ``Prediction`` per text (a single string is accepted too). With ``best``, a text whose labels all stay
        below the threshold gets its best path (``best_path``) instead of nothing, flagged ``below_threshold``."""
        if isinstance(texts, str):
            texts = [texts]
        for k, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ConfigError(f"Text {k + 1} is empty; give some text to classify.")
        if not math.isfinite(threshold):
            raise ConfigError(f"threshold must be a finite number, got {threshold}.")
        lengths: list[int] = []
        matrix = self.scores(texts, lengths)
        budget = self.model.template.text_budget(self.model.config.max_length)
        h = self.hierarchy
        out = []
        for text, row, n_tokens in zip(texts, matrix, lengths):
            chosen = apply_rule(row, h, rule, threshold, at_least_one)
            below = best and not chosen
            if below:
                chosen = sorted(best_path(row, h))
            chosen_set = set(chosen)
            ends = [i for i in chosen if not any(c in chosen_set for c in h.children(i))]
            ends.sort(key=lambda i: -row[i])
            every = _label_scores(h, row, list(np.argsort(-row, kind="stable")), chosen_set) if all_scores else []
            out.append(
                Prediction(
                    text=text,
                    paths=[h.path(i) for i in ends],
                    labels=sorted(_label_scores(h, row, chosen, chosen_set), key=lambda s: (s.depth, -s.score)),
                    scores=every,
                    consistent=h.is_consistent(chosen),
                    truncated=n_tokens > budget,
                    below_threshold=below,
                )
            )
        return out

    def evaluate(
        self, dataset: Dataset, threshold: float = 0.0, rule: str = "paper", train_counts: list[int] | None = None
    ) -> tuple[EvalReport, list[Mistake]]:
        """Score ``dataset`` (labels on this model's hierarchy): the report and every document predicted wrong."""
        docs = dataset.documents
        if not docs:
            raise ConfigError(f"{dataset.source}: the evaluation set has no documents.")
        h = self.hierarchy
        matrix = self.scores([d.text for d in docs])  # (N, C)
        predicted = [apply_rule(row, h, rule, threshold) for row in matrix]
        report = evaluate_sets([d.labels for d in docs], predicted, h, train_counts)
        mistakes = []
        for doc, row, pred in zip(docs, matrix, predicted):
            gold = h.closure(doc.labels)
            if set(gold) != set(pred):
                mistakes.append(Mistake(doc.text, gold, pred, row.tolist(), _end_paths(h, gold), _end_paths(h, pred)))
        return report, mistakes

    @torch.inference_mode()
    def warm_up(self) -> None:
        """Run one tiny batch so the first user request does not pay for lazy initialisation."""
        self.scores(["warm up"])
