"""Significance of HPT against each baseline: a paired bootstrap and a paired approximate randomisation test over
test documents, and a paired t-test over seeds."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from benchmarks.quality.methods import CLASSICAL, SENTENCE_BASELINES, VARIANTS
from benchmarks.quality.results import group_runs, run_key

BOOTSTRAP_SAMPLES = 2000


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def _matrix(sets: list[list[int]], num_labels: int) -> np.ndarray:
    out = np.zeros((len(sets), num_labels), dtype=np.float32)
    for row, labels in enumerate(sets):
        out[row, labels] = 1.0
    return out


def _f1_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Micro and macro F1 ``(B,)`` from per-label counts ``(B, C)`` (F1 = 0 where a label has no gold and no pred)."""
    micro_den = 2 * tp.sum(1) + fp.sum(1) + fn.sum(1)
    micro = np.divide(2 * tp.sum(1), micro_den, out=np.zeros_like(micro_den), where=micro_den > 0)
    den = 2 * tp + fp + fn
    macro = np.divide(2 * tp, den, out=np.zeros_like(den), where=den > 0).mean(1)
    return micro, macro


def paired_bootstrap(
    gold: list[list[int]],
    preds_a: list[list[list[int]]],
    preds_b: list[list[list[int]]],
    num_labels: int,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Bootstrap over test documents of the seed-averaged difference F1(a) − F1(b), micro and macro.

    ``preds_a[s]`` and ``preds_b[s]`` are the predicted label sets of seed ``s``; every resample uses the same
    documents for all runs, so the difference is paired. Returns the observed differences, 95 % intervals and
    two-sided bootstrap p-values (fractions, not percent).
    """
    g = _matrix(gold, num_labels)
    n = len(gold)
    rng = np.random.default_rng(seed)
    weights = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(samples)]).astype(np.float32)
    weights = np.vstack([np.ones((1, n), dtype=np.float32), weights])  # row 0: the observed test set

    def f1(sets: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        p = _matrix(sets, num_labels)
        return _f1_from_counts(weights @ (g * p), weights @ ((1 - g) * p), weights @ (g * (1 - p)))

    diff_micro = np.zeros(samples + 1)
    diff_macro = np.zeros(samples + 1)
    for a, b in zip(preds_a, preds_b, strict=True):
        (mi_a, ma_a), (mi_b, ma_b) = f1(a), f1(b)
        diff_micro += (mi_a - mi_b) / len(preds_a)
        diff_macro += (ma_a - ma_b) / len(preds_a)
    # Paired approximate randomisation: swap a's and b's predictions of each document with probability 1/2 (the same
    # swaps for every seed). Unlike the bootstrap, it never drops a document, so macro-F1 over rare labels is unbiased.
    swaps = (rng.random((samples, n)) < 0.5).astype(np.float32)
    null_micro = np.zeros(samples)
    null_macro = np.zeros(samples)
    for a, b in zip(preds_a, preds_b, strict=True):
        pa, pb = _matrix(a, num_labels), _matrix(b, num_labels)
        counts_a = [g * pa, (1 - g) * pa, g * (1 - pa)]  # per-document tp, fp, fn (n, C)
        counts_b = [g * pb, (1 - g) * pb, g * (1 - pb)]
        mixed_a = [(1 - swaps) @ ca + swaps @ cb for ca, cb in zip(counts_a, counts_b, strict=True)]
        mixed_b = [swaps @ ca + (1 - swaps) @ cb for ca, cb in zip(counts_a, counts_b, strict=True)]
        (mi_a, ma_a), (mi_b, ma_b) = _f1_from_counts(*mixed_a), _f1_from_counts(*mixed_b)
        null_micro += (mi_a - mi_b) / len(preds_a)
        null_macro += (ma_a - ma_b) / len(preds_a)
    out: dict[str, Any] = {}
    for name, diff, null in (("micro", diff_micro, null_micro), ("macro", diff_macro, null_macro)):
        boot = diff[1:]
        p = 2 * min(float((boot <= 0).mean()), float((boot >= 0).mean()))
        out[name] = {
            "diff": float(diff[0]),
            "ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
            "p": min(1.0, p),
            "p_randomisation": float((np.sum(np.abs(null) >= abs(diff[0]) - 1e-12) + 1) / (samples + 1)),
        }
    return out


def _comparisons(preset: dict[str, Any], groups: dict) -> list[tuple[str, str, str, str]]:
    """(dataset, HPT's backbone, baseline method, baseline backbone) pairs that the report tests."""
    out = []
    for dataset, method, backbone in sorted(groups):
        if method != "hpt":
            continue
        out.append((dataset, backbone, "finetune", backbone))  # same backbone: the paper's comparison
        if backbone == preset["backbones"][0]:
            # the shipped HPT against HPT on the other backbones (the effect of re-warming) and against what a user
            # of a sentence-embedding backbone would use
            out += [
                (dataset, backbone, "hpt", b)
                for d, m, b in sorted(groups)
                if (d, m) == (dataset, "hpt") and b != backbone
            ]
            out += [(dataset, backbone, m, preset.get("embedding_backbone", "minilm-l6")) for m in SENTENCE_BASELINES]
            # the paper's prompt variants and ablations, on the same backbone (its Tables 1 and 3)
            out += [(dataset, backbone, m, backbone) for m in VARIANTS]
    return out


def significance(results: dict[str, Any], predictions: dict[str, Any]) -> list[dict[str, Any]]:
    """HPT − a baseline, paired over seeds and test documents: vanilla fine-tune on HPT's backbone; against HPT on
    the primary backbone, HPT on the other backbones, the sentence-embedding baselines, and the paper's prompt variants
    and ablations. A deterministic baseline (one run) is paired with every HPT seed."""
    groups = group_runs(results["runs"])
    rows = []
    for dataset, backbone, baseline, baseline_backbone in _comparisons(results["preset"], groups):
        if (dataset, baseline, baseline_backbone) not in groups:
            continue
        hpt_runs = groups[(dataset, "hpt", backbone)]
        others = {r["seed"]: r for r in groups[(dataset, baseline, baseline_backbone)]}
        if len(others) == 1 and baseline in CLASSICAL:
            pairs = [(r, next(iter(others.values()))) for r in hpt_runs]
        else:
            pairs = [(r, others[r["seed"]]) for r in hpt_runs if r["seed"] in others]
        keys = [
            (run_key(dataset, "hpt", backbone, a["seed"]), run_key(dataset, baseline, baseline_backbone, b["seed"]))
            for a, b in pairs
        ]
        if not pairs or not all(k in predictions["runs"] for pair in keys for k in pair):
            continue
        num_labels = results["splits"][dataset]["labels"]
        boot = paired_bootstrap(
            predictions["gold"][dataset],
            [predictions["runs"][a] for a, _ in keys],
            [predictions["runs"][b] for _, b in keys],
            num_labels,
        )
        row: dict[str, Any] = {
            "dataset": dataset,
            "backbone": backbone,
            "baseline": baseline,
            "baseline_backbone": baseline_backbone,
            "seeds": [a["seed"] for a, _ in pairs],
        }
        for metric in ("micro", "macro"):
            diffs = [a[f"{metric}_f1"] - b[f"{metric}_f1"] for a, b in pairs]
            row[f"{metric}_per_seed"] = diffs
            row[f"{metric}_t_p"] = _paired_t_p(diffs)
            row[f"{metric}_bootstrap"] = boot[metric]
        rows.append(row)
    return rows


def _paired_t_p(diffs: list[float]) -> float | None:
    """Two-sided p-value of a paired t-test over seeds (None with fewer than 2 seeds or no variance)."""
    if len(diffs) < 2 or float(np.std(diffs)) == 0.0:
        return None
    return float(stats.ttest_1samp(diffs, 0.0).pvalue)
