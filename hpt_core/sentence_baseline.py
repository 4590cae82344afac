"""The honest duel's other side: frozen sentence embeddings + logistic regression on the same splits as HPT.

    result = fit_sentence_baseline(splits)              # embed every split once, fit LR, C chosen on dev macro-F1
    baseline = result.to_dict()                         # JSON-ready: name, backbone, c, seconds, dev, test, ...
    duel_verdict(hpt_metrics, baseline)                 # one sentence: which model to use for this data
    duel_table(hpt_metrics, baseline)                   # rows per split and depth with both models' F1 scores

An embedding is the mean-pooled, L2-normalised last-layer states of the backbone's encoder (the pooling
all-MiniLM-L6-v2 was trained for); the encoder is never trained. The classifier is one logistic regression over the
training documents' deepest labels, and a prediction is that label with its ancestors, so it is always one consistent
path. The quality benchmark's ``emb-lr`` baseline runs this code (``benchmarks/quality/classical.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from hpt_core.backbones import RAW_BACKBONE, load_backbone
from hpt_core.device import autocast, resolve_precision
from hpt_core.errors import ConfigError
from hpt_core.metrics import EvalReport, evaluate_sets, top_level_confusion

if TYPE_CHECKING:  # the model card imports the duel functions; finetune -> model -> checkpoint -> card would cycle
    from hpt_core.data import Dataset
    from hpt_core.finetune import Splits

__all__ = [
    "BASELINE_NAME",
    "C_GRID",
    "ON_PAR_POINTS",
    "SentenceBaselineResult",
    "embed_texts",
    "fit_sentence_baseline",
    "fit_leaf_classifier",
    "leaf_targets",
    "duel_verdict",
    "duel_table",
]

BASELINE_NAME = "Frozen sentence embeddings + logistic regression"
C_GRID = (1.0, 10.0, 100.0, 1000.0)  # inverse regularisation strengths tried, chosen on dev macro-F1
ON_PAR_POINTS = 1.0  # macro-F1 margins up to this many points count as a draw
Progress = Callable[[int, int], None]  # (done, total)


def _encoder(backbone: str) -> tuple[Any, Any]:
    """``(tokenizer, encoder)``: the backbone's transformer body without its masked-LM head, in eval mode."""
    tokenizer, model = load_backbone(backbone)
    return tokenizer, model.base_model.eval()


def _embed(
    texts: Sequence[str],
    tokenizer: Any,
    encoder: Any,
    max_length: int,
    batch_size: int = 64,
    advance: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
    precision: str = "fp32",
) -> np.ndarray | None:
    """``(N, H)`` embeddings of ``texts`` in length-sorted batches (the encoder autocast to ``precision``: fp32 or
    bf16); ``advance(n)`` after each batch of ``n``; ``None`` when ``cancel`` is set before the last batch."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            if cancel is not None and cancel.is_set():
                return None
            idx = order[start : start + batch_size]
            enc = tokenizer(
                [texts[i] for i in idx], truncation=True, max_length=max_length, padding=True, return_tensors="pt"
            )
            with autocast(encoder.device, precision):
                states = encoder(**enc).last_hidden_state.float()  # (B, T, H)
            mask = enc["attention_mask"].unsqueeze(-1).float()  # (B, T, 1)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, H)
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
            if advance is not None:
                advance(len(idx))
    return out


def _check_sizes(max_length: int, batch_size: int) -> None:
    for name, value in (("max_length", max_length), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}.")


def embed_texts(
    texts: Sequence[str],
    backbone: str = RAW_BACKBONE,
    max_length: int = 128,
    batch_size: int = 64,
    callback: Progress | None = None,
) -> np.ndarray:
    """Sentence embeddings ``(N, H)`` of ``texts``: the mean over the first ``max_length`` wordpieces of the frozen
    encoder's last-layer states, L2-normalised (so a dot product is a cosine). ``callback(done, total)`` reports
    the texts embedded so far after each batch.

    >>> embed_texts(["quantum optics", "jazz"]).shape  # all-MiniLM-L6-v2
    (2, 384)
    """
    _check_sizes(max_length, batch_size)
    tokenizer, encoder = _encoder(backbone)
    done, total = 0, len(texts)

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if callback is not None:
            callback(done, total)

    return _embed(texts, tokenizer, encoder, max_length, batch_size, advance)  # type: ignore[return-value]


def leaf_targets(dataset: Dataset) -> list[int]:
    """The deepest label of each document (ties: the lowest id), the class a flat classifier learns."""
    depth_of = dataset.hierarchy.depth_of
    return [max(d.labels, key=lambda i: (depth_of[i], -i)) for d in dataset.documents]


def fit_leaf_classifier(features: Any, train: Dataset, c: float) -> Callable[[Any], list[list[int]]]:
    """Fit a logistic regression (inverse regularisation ``c``) on ``features`` (one row per document of ``train``,
    dense or sparse) to the documents' deepest labels; returns ``predict(rows) -> label sets``: for each row the
    predicted label with its ancestors. Training data with a single deepest label predicts that one everywhere."""
    hierarchy = train.hierarchy
    leaves = leaf_targets(train)
    if len(set(leaves)) == 1:  # scikit-learn refuses a single class; the constant classifier is what it would learn
        only = hierarchy.closure(leaves[:1])
        return lambda rows: [list(only) for _ in range(rows.shape[0])]
    model = LogisticRegression(C=c, max_iter=2000)
    model.fit(features, leaves)

    def predict(rows: Any) -> list[list[int]]:
        if rows.shape[0] == 0:
            return []
        return [hierarchy.closure([int(label)]) for label in model.predict(rows)]

    return predict


@dataclass
class SentenceBaselineResult:
    """What ``fit_sentence_baseline`` returns: the chosen ``C``, dev/test reports (``None`` for an empty or skipped
    split) and the run. ``chosen_on`` is ``"train"`` when there was no dev set (then ``C`` fits the training
    documents, which favours weak regularisation, and ``note`` says so)."""

    backbone: str
    c: float | None  # None only when cancelled before a C was chosen
    dev: EvalReport | None
    test: EvalReport | None
    seconds: float
    n_train: int
    max_length: int = 128
    chosen_on: str = "dev"
    c_scores: dict[float, float] = field(default_factory=dict)  # C -> macro-F1 on the ``chosen_on`` split
    test_predicted: list[list[int]] = field(default_factory=list, repr=False)  # label ids per test document
    test_confusion: dict[str, Any] | None = field(default=None, repr=False)  # top_level_confusion {"labels", "matrix"}
    cancelled: bool = False
    note: str | None = None
    precision: str = "fp32"  # what the encoder ran in (fp32 or bf16)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (fractions 0-1); ``dev``/``test`` have the shape of HPT's ``metrics.json`` entries."""
        test = None
        if self.test is not None:
            test = self.test.to_dict()
            if self.test_confusion is not None:
                test["top_level_confusion"] = self.test_confusion
        return {
            "name": BASELINE_NAME,
            "backbone": self.backbone,
            "max_length": self.max_length,
            "precision": self.precision,
            "c": self.c,
            "chosen_on": self.chosen_on,
            "c_scores": {f"{c:g}": score for c, score in self.c_scores.items()},
            "seconds": round(self.seconds, 1),
            "n_train": self.n_train,
            "cancelled": self.cancelled,
            "note": self.note,
            "dev": self.dev.to_dict() if self.dev is not None else None,
            "test": test,
        }


def fit_sentence_baseline(
    splits: Splits,
    backbone: str = RAW_BACKBONE,
    max_length: int = 128,
    c_grid: Sequence[float] = C_GRID,
    callback: Progress | None = None,
    cancel: threading.Event | None = None,
    precision: str = "fp32",
) -> SentenceBaselineResult:
    """Embed train/dev/test with the frozen ``backbone``, fit a logistic regression per ``C`` in ``c_grid``, keep the
    one with the best dev macro-F1 (the first on ties) and score dev and test with it.

    Without dev documents ``C`` is chosen on the training documents (``chosen_on="train"``, with a ``note``); an
    empty test split gives ``test=None``. ``callback(done, total)`` counts documents embedded plus ``C`` values
    fitted. ``cancel.set()`` from another thread stops after the current batch or fit and returns a result with
    ``cancelled=True`` and no reports. ``precision="auto"`` embeds in bf16 on CPUs with bf16 instructions (2× faster,
    cosines to the fp32 embeddings above 0.9999 on WOS abstracts); the default fp32 gives the same features everywhere.
    """
    started = time.perf_counter()
    _check_sizes(max_length, 64)
    grid = [float(c) for c in c_grid]
    if not grid or any(not np.isfinite(c) or c <= 0 for c in grid):
        raise ConfigError(f"c_grid must hold positive numbers, got {list(c_grid)!r}.")
    if len(splits.train) == 0:
        raise ConfigError("The sentence-embedding baseline needs training documents; the train split is empty.")
    parts = {"train": splits.train, "dev": splits.dev, "test": splits.test}
    chosen_on = "dev" if len(splits.dev) else "train"
    done, total = 0, sum(len(d) for d in parts.values()) + len(grid)

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if callback is not None:
            callback(done, total)

    def stopped() -> SentenceBaselineResult:
        seconds = time.perf_counter() - started
        return SentenceBaselineResult(
            backbone=backbone,
            c=None,
            dev=None,
            test=None,
            seconds=seconds,
            n_train=len(splits.train),
            max_length=max_length,
            chosen_on=chosen_on,
            cancelled=True,
            note="Cancelled before the baseline finished.",
            precision=precision,
        )

    tokenizer, encoder = _encoder(backbone)
    precision = resolve_precision(encoder.device, precision)
    features: dict[str, np.ndarray] = {}
    for part, dataset in parts.items():
        texts = [d.text for d in dataset.documents]
        embedded = _embed(texts, tokenizer, encoder, max_length, 64, advance, cancel, precision)
        if embedded is None:
            return stopped()
        features[part] = embedded
    hierarchy, counts = splits.train.hierarchy, splits.train.label_counts()
    gold = [d.labels for d in parts[chosen_on].documents]
    scores: dict[float, float] = {}
    best: tuple[float, EvalReport, Callable[[Any], list[list[int]]]] | None = None
    for c in grid:
        if cancel is not None and cancel.is_set():
            return stopped()
        predict = fit_leaf_classifier(features["train"], splits.train, c)
        report = evaluate_sets(gold, predict(features[chosen_on]), hierarchy, counts)
        scores[c] = report.macro_f1
        if best is None or report.macro_f1 > best[1].macro_f1:
            best = (c, report, predict)
        advance(1)
    assert best is not None  # the grid is not empty
    c, chosen, predict = best
    test, predicted, confusion = None, [], None
    if len(splits.test):
        test_gold = [d.labels for d in splits.test.documents]
        predicted = predict(features["test"])
        test = evaluate_sets(test_gold, predicted, hierarchy, counts)
        labels, matrix = top_level_confusion(test_gold, predicted, hierarchy)
        confusion = {"labels": labels, "matrix": matrix}
    note = None
    if chosen_on == "train":
        note = "No dev documents: C was chosen on the training documents, which favours weak regularisation."
    return SentenceBaselineResult(
        backbone=backbone,
        c=c,
        dev=chosen if chosen_on == "dev" else None,
        test=test,
        seconds=time.perf_counter() - started,
        n_train=len(splits.train),
        max_length=max_length,
        chosen_on=chosen_on,
        c_scores=scores,
        test_predicted=predicted,
        test_confusion=confusion,
        note=note,
        precision=precision,
    )


# ------------------------------------------------------------------------------------------------------- the duel
def _entry(metrics: Mapping[str, Any] | None, split: str) -> Mapping[str, Any] | None:
    """The ``split`` report of a metrics dict (HPT's ``metrics.json`` or ``SentenceBaselineResult.to_dict()``)."""
    entry = (metrics or {}).get(split)
    return entry if isinstance(entry, Mapping) and "macro_f1" in entry else None


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def duel_verdict(hpt: Mapping[str, Any], baseline: Mapping[str, Any]) -> str:
    """One plain sentence telling which model to use for this data, from HPT's metrics and the baseline's
    ``to_dict()``: test macro-F1 when both have a test report, else dev; a margin of at most ``ON_PAR_POINTS``
    points is a draw, which goes to the baseline (cheaper and faster to serve)."""
    common = [(s, _entry(hpt, s), _entry(baseline, s)) for s in ("test", "dev")]
    found = next(((s, h, b) for s, h, b in common if h is not None and b is not None), None)
    if found is None:
        return (
            "There is no verdict: HPT and the baseline were not scored on a common dev or test split; give the job "
            "a dev or test split."
        )
    split, h, b = found
    margin = round(100 * (float(h["macro_f1"]) - float(b["macro_f1"])), 1)  # points, as shown
    where = (
        f"{split} macro-F1" if split == "test" else "dev macro-F1 (there is no test split, and both were tuned on dev)"
    )
    micro = f"micro-F1 {_pct(float(h['micro_f1']))} vs {_pct(float(b['micro_f1']))}"
    hpt_macro, base_macro = _pct(float(h["macro_f1"])), _pct(float(b["macro_f1"]))
    if abs(margin) <= ON_PAR_POINTS:
        return (
            f"HPT and the frozen-embedding baseline are on par on this data ({where} {hpt_macro} vs {base_macro}, "
            f"{abs(margin):.1f} points apart; {micro}), so use the baseline: it is cheaper and faster to serve."
        )
    if margin > 0:
        return (
            f"Use the HPT model for this data: its {where} is {hpt_macro}, {margin:.1f} points above the "
            f"frozen-embedding baseline's {base_macro} ({micro})."
        )
    return (
        f"Use the frozen-embedding baseline for this data: its {where} is {base_macro}, {-margin:.1f} points above "
        f"the HPT model's {hpt_macro} ({micro}), and it is cheaper and faster to serve."
    )


def _scores(entry: Mapping[str, Any] | None, depth: str | None) -> tuple[float | None, float | None]:
    if entry is None:
        return None, None
    scores = entry if depth is None else (entry.get("per_depth") or {}).get(depth)
    if not isinstance(scores, Mapping):
        return None, None
    return float(scores["micro_f1"]), float(scores["macro_f1"])


def duel_table(hpt: Mapping[str, Any], baseline: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Both models side by side: for each split either model was scored on (dev, then test), one ``overall`` row and
    one row per depth, each ``{"split", "level", "depth", "n_documents", "hpt_micro_f1", "hpt_macro_f1",
    "baseline_micro_f1", "baseline_macro_f1", "macro_f1_margin"}`` (fractions 0-1; ``depth`` is ``None`` on the
    overall row; a score is ``None`` where that model has no report; the margin is HPT minus baseline)."""
    rows: list[dict[str, Any]] = []
    for split in ("dev", "test"):
        h, b = _entry(hpt, split), _entry(baseline, split)
        if h is None and b is None:
            continue
        depths = {str(d) for entry in (h, b) if entry for d in (entry.get("per_depth") or {})}
        n_documents = (h or b or {}).get("n_documents")
        for depth in [None, *sorted(depths, key=int)]:
            (hpt_micro, hpt_macro), (base_micro, base_macro) = _scores(h, depth), _scores(b, depth)
            rows.append(
                {
                    "split": split,
                    "level": "overall" if depth is None else f"depth {depth}",
                    "depth": None if depth is None else int(depth),
                    "n_documents": n_documents,
                    "hpt_micro_f1": hpt_micro,
                    "hpt_macro_f1": hpt_macro,
                    "baseline_micro_f1": base_micro,
                    "baseline_macro_f1": base_macro,
                    "macro_f1_margin": None if hpt_macro is None or base_macro is None else hpt_macro - base_macro,
                }
            )
    return rows
