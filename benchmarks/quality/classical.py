"""The classical and sentence-embedding baselines: TF-IDF + logistic regression (flat or hiclass's local classifier
per parent node), frozen sentence embeddings + logistic regression (the library's ``hpt_core.sentence_baseline``, the
app's duel baseline), and SetFit; ``C`` is always chosen on dev. Every flat logistic regression over leaf labels is
the library's ``fit_leaf_classifier``."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from hiclass import LocalClassifierPerParentNode
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from benchmarks.quality.presets import Preset
from benchmarks.quality.results import run_record
from hpt_core.backbones import resolve_backbone
from hpt_core.finetune import Splits
from hpt_core.metrics import evaluate_sets
from hpt_core.sentence_baseline import fit_leaf_classifier, fit_sentence_baseline, leaf_targets


def run_classical(
    splits: Splits, method: str, backbone: str, preset: Preset, log: Callable[[str], None]
) -> tuple[dict[str, Any], list[list[int]]]:
    """TF-IDF + logistic regression (flat over leaves, or hiclass's local classifier per parent node) or frozen
    sentence embeddings + logistic regression. ``C`` is chosen on dev macro-F1 from ``preset.lr_grid``."""
    if method == "emb-lr":
        return _run_sentence_baseline(splits, backbone, preset, log)
    started = time.perf_counter()
    texts = {part: [d.text for d in getattr(splits, part).documents] for part in ("train", "dev", "test")}
    vectorizer = TfidfVectorizer(
        sublinear_tf=True, min_df=2 if len(texts["train"]) > 50 else 1, ngram_range=(1, 2), max_features=100_000
    )
    features = {"train": vectorizer.fit_transform(texts["train"])}
    features |= {part: vectorizer.transform(texts[part]) for part in ("dev", "test")}
    hierarchy = splits.train.hierarchy
    leaves = leaf_targets(splits.train)
    flat = _flat_lr(features, splits)

    def fit_predict(c: float, part: str) -> list[list[int]]:
        if method == "hiclass":
            paths = [hierarchy.path(i) for i in leaves]
            depth = max(len(p) for p in paths)
            padded = np.array([p + [""] * (depth - len(p)) for p in paths])
            model = LocalClassifierPerParentNode(local_classifier=LogisticRegression(C=c, max_iter=2000), n_jobs=1)
            model.fit(features["train"], padded)
            out = []
            for row in model.predict(features[part]):
                names = [str(x) for x in row if str(x)]
                out.append(hierarchy.closure([hierarchy.index(names)]) if names else [])
            return out
        return flat(c, part)

    return _select_c(fit_predict, splits, preset, log, started)


def _run_sentence_baseline(
    splits: Splits, backbone: str, preset: Preset, log: Callable[[str], None]
) -> tuple[dict[str, Any], list[list[int]]]:
    """Frozen sentence embeddings + logistic regression: ``hpt_core.sentence_baseline.fit_sentence_baseline``."""
    result = fit_sentence_baseline(splits, backbone, preset.max_length, preset.lr_grid)
    for c, macro in result.c_scores.items():
        log(f"  C={c:g}: dev macro-F1 {100 * macro:.2f} %")
    if result.dev is None or result.test is None:
        raise SystemExit("emb-lr needs dev and test documents to choose C and report test metrics.")
    record = run_record(
        result.test,
        train_seconds=round(result.seconds, 1),
        steps=0,
        best_c=result.c,
        dev_macro_f1=result.dev.macro_f1,
        dev_micro_f1=result.dev.micro_f1,
    )
    return record, result.test_predicted


def _flat_lr(features: dict[str, Any], splits: Splits) -> Callable[[float, str], list[list[int]]]:
    """``fit_predict(C, part)``: logistic regression over leaf labels on ``features`` (train/dev/test rows), the
    predicted leaf with its ancestors (``hpt_core.sentence_baseline.fit_leaf_classifier``)."""

    def fit_predict(c: float, part: str) -> list[list[int]]:
        return fit_leaf_classifier(features["train"], splits.train, c)(features[part])

    return fit_predict


def _select_c(
    fit_predict: Callable[[float, str], list[list[int]]],
    splits: Splits,
    preset: Preset,
    log: Callable[[str], None],
    started: float,
    **extra: Any,
) -> tuple[dict[str, Any], list[list[int]]]:
    """Choose ``C`` from ``preset.lr_grid`` on dev macro-F1, then predict test with it; the run's record."""
    hierarchy, counts = splits.train.hierarchy, splits.train.label_counts()
    best_c, best_dev = preset.lr_grid[0], None
    for c in preset.lr_grid:
        dev_report = evaluate_sets([d.labels for d in splits.dev.documents], fit_predict(c, "dev"), hierarchy, counts)
        log(f"  C={c:g}: dev macro-F1 {100 * dev_report.macro_f1:.2f} %")
        if best_dev is None or dev_report.macro_f1 > best_dev.macro_f1:
            best_c, best_dev = c, dev_report
    predicted = fit_predict(best_c, "test")
    report = evaluate_sets([d.labels for d in splits.test.documents], predicted, hierarchy, counts)
    record = run_record(
        report,
        train_seconds=round(time.perf_counter() - started, 1),
        steps=0,
        best_c=best_c,
        dev_macro_f1=best_dev.macro_f1,
        dev_micro_f1=best_dev.micro_f1,
        **extra,
    )
    return record, predicted


def run_setfit(
    splits: Splits, backbone: str, seed: int, preset: Preset, log: Callable[[str], None]
) -> tuple[dict[str, Any], list[list[int]]]:
    """SetFit (contrastive fine-tuning of the sentence-embedding model, then logistic regression) over leaf labels;
    needs ``pip install -r requirements-bench.txt``."""
    try:  # an optional dependency, imported only when its baseline runs
        from setfit import SetFitModel, Trainer, TrainingArguments
    except ImportError as e:
        raise SystemExit(f"SetFit is not installed ({e}); run: pip install -r requirements-bench.txt") from e
    started = time.perf_counter()
    model = SetFitModel.from_pretrained(resolve_backbone(backbone))
    # SetFit's ``max_length`` only reaches its classifier head; the contrastive phase and ``predict`` truncate at the
    # body's own limit (256 for all-MiniLM-L6-v2). Every other method reads the first ``max_length`` tokens.
    model.model_body.max_seq_length = preset.max_length
    scratch = tempfile.mkdtemp(prefix="setfit-")  # SetFit's trainer writes checkpoints; never into the repository
    args = TrainingArguments(
        output_dir=scratch,
        save_strategy="no",
        batch_size=preset.batch_size,
        num_iterations=preset.setfit_iterations,
        num_epochs=1,
        seed=seed,
        max_length=preset.max_length,
        show_progress_bar=False,
    )
    try:
        # only SetFit's contrastive phase: its own head (logistic regression, scikit-learn's default C = 1) is replaced
        # by one with C chosen on dev macro-F1 from the same grid as ``emb-lr``, so the two differ only by this phase
        texts = [d.text for d in splits.train.documents]
        Trainer(model=model, args=args).train_embeddings(texts, leaf_targets(splits.train))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    body = model.model_body
    features = {
        part: body.encode([d.text for d in getattr(splits, part).documents], batch_size=64, normalize_embeddings=True)
        for part in ("train", "dev", "test")
    }
    return _select_c(
        _flat_lr(features, splits), splits, preset, log, started, setfit_iterations=preset.setfit_iterations
    )
