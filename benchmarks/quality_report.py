"""The quality report: tables, significance and figures regenerated from the benchmark's JSON (never by hand).

    python -m benchmarks.quality --preset cpu --report

Rewrites the block between ``<!-- quality-<preset>:begin -->`` and ``<!-- quality-<preset>:end -->`` in
``docs/benchmarks.md`` (the prose around it is kept) and the PNG figures in ``docs/figures/``.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.quality import ABLATION_METHODS, CLASSICAL, ROOT, TASK_MLM, load_predictions, run_key

DOCS = ROOT / "docs" / "benchmarks.md"
FIGURES = ROOT / "docs" / "figures"
BOOTSTRAP_SAMPLES = 2000

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
SENTENCE_BASELINES = ("emb-lr", "setfit")  # what a user of a sentence-embedding backbone reaches for first
VARIANTS = ("hpt-code", "hard", "soft", *ABLATION_METHODS)  # compared with HPT on the same backbone
DATASET_NAMES = {"20ng-10pct": "20 Newsgroups, 10 % train", "wos-1k": "WOS-1k"}


def dataset_name(dataset: str, preset: dict[str, Any]) -> str:
    """Display name; the 20NG key keeps its name in every preset, the training fraction comes from the preset."""
    if dataset == "20ng-10pct":
        return f"20 Newsgroups, {100 * preset.get('news_fraction', 0.1):g} % train"
    return DATASET_NAMES.get(dataset, dataset)


# The paper's Table 1 (test micro / macro F1, %), bert-base on the full datasets: reference only.
PAPER_TABLE_1 = [
    ("BERT (vanilla fine-tune)", "85.63 / 79.07", "85.65 / 67.02", "78.24 / 66.08"),
    ("BERT+HiMatch", "86.70 / 81.06", "86.33 / 68.66", "–"),
    ("HGCLR", "87.11 / 81.20", "86.49 / 68.31", "78.86 / 67.96"),
    ("BERT+HardPrompt", "86.39 / 80.43", "86.78 / 68.78", "79.45 / 67.99"),
    ("BERT+SoftPrompt", "86.57 / 80.75", "86.53 / 68.34", "78.95 / 68.21"),
    ("HPT", "87.16 / 81.93", "87.26 / 69.53", "80.42 / 70.42"),
]


# ---------------------------------------------------------------------------------------------------- aggregation
def group_runs(runs: list[dict[str, Any]]) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """Runs keyed by (dataset, method, backbone), each list sorted by seed."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[(run["dataset"], run["method"], run["backbone"])].append(run)
    return {k: sorted(v, key=lambda r: r["seed"]) for k, v in groups.items()}


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def fmt(values: list[float]) -> str:
    """``mean ± std`` in percent (``mean`` alone for a single deterministic run)."""
    mean, std = mean_std(values)
    return f"{100 * mean:.2f} ± {100 * std:.2f}" if len(values) > 1 else f"{100 * mean:.2f}"


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
    from scipy import stats

    if len(diffs) < 2 or float(np.std(diffs)) == 0.0:
        return None
    return float(stats.ttest_1samp(diffs, 0.0).pvalue)


# --------------------------------------------------------------------------------------------------------- tables
def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _method_rows(groups: dict, dataset: str, methods: list[tuple[str, str]]) -> list[list[str]]:
    rows = []
    for method, backbone in methods:
        runs = groups.get((dataset, method, backbone))
        if not runs:
            continue
        rows.append(
            [
                METHOD_NAMES.get(method, method),
                BACKBONE_NAMES.get(backbone, backbone) if backbone != "-" else "–",
                fmt([r["micro_f1"] for r in runs]),
                fmt([r["macro_f1"] for r in runs]),
                str(len(runs)),
                f"{np.mean([r['train_seconds'] for r in runs]):.0f}",
            ]
        )
    return rows


def _order(preset: dict[str, Any], dataset: str, groups: dict) -> list[tuple[str, str]]:
    """(method, backbone) rows of the main table: prompt methods on the primary backbone, then the rest."""
    primary = preset["backbones"][0]
    rows = [(m, primary) for m in ("hpt", "hpt-code", "finetune", "hard", "soft")]
    rows += [(m, b) for b in preset["backbones"][1:] + [TASK_MLM] for m in ("hpt", "finetune")]
    rows += [("emb-lr", preset["embedding_backbone"]), ("setfit", preset["embedding_backbone"])]
    rows += [("tfidf-lr", "-"), ("hiclass", "-")]
    return [r for r in rows if (dataset, *r) in groups]


def _pct_signed(x: float) -> str:
    return f"{100 * x:+.2f}"


def _significance_table(rows: list[dict[str, Any]], preset: dict[str, Any], column: str, name: Any) -> str:
    """Markdown table of significance rows; ``name(row)`` fills the second column."""
    lines = []
    for row in rows:
        for metric in ("micro", "macro"):
            boot = row[f"{metric}_bootstrap"]
            t_p = row[f"{metric}_t_p"]
            lines.append(
                [
                    dataset_name(row["dataset"], preset),
                    name(row),
                    f"{metric}-F1",
                    ", ".join(_pct_signed(d) for d in row[f"{metric}_per_seed"]),
                    _pct_signed(boot["diff"]),
                    f"[{_pct_signed(boot['ci95'][0])}, {_pct_signed(boot['ci95'][1])}]",
                    f"{boot['p_randomisation']:.4f}",
                    "–" if t_p is None else f"{t_p:.3f}",
                ]
            )
    header = ["Dataset", column, "Metric", "Per seed", "Mean", "95 % bootstrap CI", "p (randomisation)", "p (t)"]
    return _table(header, lines)


def render(results: dict[str, Any], sig: list[dict[str, Any]], figures: dict[str, str]) -> str:
    """The generated markdown block (tables and figure links) for one preset."""
    preset = results["preset"]
    groups = group_runs(results["runs"])
    out = []
    out.append(
        f"Preset `{preset['name']}`: backbones {', '.join(f'`{b}`' for b in preset['backbones'])}, max length "
        f"{preset['max_length']}, batch {preset['batch_size']}, learning rate {preset['lr']:g} (Adam, constant), "
        f"epochs {', '.join(f'{k} {v}' for k, v in preset['epochs'].items())} (best dev macro-F1 state kept), "
        f"seeds {', '.join(map(str, preset['seeds']))}. Scores are test F1 in %, mean ± sample std over seeds; "
        "classical baselines are deterministic (one run, `C` chosen on dev macro-F1). "
        f"SetFit: {preset.get('setfit_iterations', 1)} contrastive pair(s) per training text and side, one epoch at "
        "the same batch and length, then the same dev-chosen logistic regression as the embeddings baseline. "
        f"{len(results['runs'])} runs in `benchmarks/results/quality-{preset['name']}.json`."
    )
    env = results.get("environment", {})
    if env:
        where = env.get("gpu") or f"{env.get('cpu_threads')} CPU threads"
        out.append(f"Measured with torch {env.get('torch')} on {where}.")
    out.append("")
    for dataset, info in results.get("splits", {}).items():
        rows = _method_rows(groups, dataset, _order(preset, dataset, groups))
        if not rows:
            continue
        out.append(f"### {dataset_name(dataset, preset)}\n")
        out.append(
            f"{info['note']}. Train/dev/test documents: {info['train']}/{info['dev']}/{info['test']}; "
            f"{info['labels']} labels on {info['levels']} levels.\n"
        )
        out.append(_table(["Method", "Backbone", "Micro-F1", "Macro-F1", "Seeds", "Train s"], rows))
        out.append("")
    ft_rows = [row for row in sig if row["baseline"] == "finetune"]
    if ft_rows:
        out.append("### HPT − vanilla fine-tune (paired)\n")
        out.append(
            "Same backbone, same split, same seeds. Per-seed differences in F1 points; the interval is a "
            f"{BOOTSTRAP_SAMPLES}-sample paired bootstrap over test documents of the seed-averaged difference "
            "(for macro-F1 on small test sets with rare labels the bootstrap is biased low — resamples drop the few "
            "documents of a rare label — so its interval can miss the observed value); p (randomisation) is a paired "
            "approximate randomisation test over documents (swap the two systems' predictions per document), which "
            "has no such bias; p (t) is a paired t-test over seeds.\n"
        )
        out.append(
            _significance_table(
                ft_rows, preset, "Backbone", lambda row: BACKBONE_NAMES.get(row["backbone"], row["backbone"])
            )
        )
        out.append("")
    variant_rows = [row for row in sig if row["baseline"] in VARIANTS]
    other_rows = [row for row in sig if row["baseline"] != "finetune" and row["baseline"] not in VARIANTS]
    if other_rows:
        out.append(f"### HPT on `{preset['backbones'][0]}` − HPT on other backbones and sentence-embedding baselines\n")
        out.append(
            f"HPT on the primary backbone (`{preset['backbones'][0]}`) against HPT on the other backbones (the effect "
            "of the backbone alone) and against the sentence-embedding baselines on the raw model, same split. Seeded "
            "runs are paired seed by seed, the deterministic embeddings baseline with every HPT seed. Same tests as "
            "above; a negative difference means the other system is better.\n"
        )

        def against(row: dict[str, Any]) -> str:
            backbone = BACKBONE_NAMES.get(row["baseline_backbone"], row["baseline_backbone"])
            return f"{METHOD_NAMES.get(row['baseline'], row['baseline'])} ({backbone})"

        out.append(_significance_table(other_rows, preset, "Against", against))
        out.append("")
    if variant_rows:
        out.append(f"### HPT − the paper's prompt variants and ablations (paired, `{preset['backbones'][0]}`)\n")
        out.append(
            "Paper-faithful HPT against the official code's variant, HardPrompt, SoftPrompt and each ablation, all "
            "on the same backbone and split, paired seed by seed (only seeds both have). Same tests as above; a "
            "positive difference means the full method is better.\n"
        )
        out.append(_significance_table(variant_rows, preset, "Against", lambda row: METHOD_NAMES.get(row["baseline"])))
        out.append("")
    primary = preset["backbones"][0]
    for dataset in preset["ablation_datasets"]:
        methods = [(m, primary) for m in ("hpt", *ABLATION_METHODS) if (dataset, m, primary) in groups]
        if len(methods) < 2:
            continue
        rows = _method_rows(groups, dataset, methods)
        for row, (method, backbone) in zip(rows, methods, strict=True):
            runs = groups[(dataset, method, backbone)]
            row += [fmt([r["per_depth"][d]["macro_f1"] for r in runs]) for d in sorted(runs[0]["per_depth"], key=int)]
        depths = max(len(r) for r in rows) - 6
        out.append(f"### Ablations on {dataset_name(dataset, preset)} (test)\n")
        header = ["Variant", "Backbone", "Micro-F1", "Macro-F1", "Seeds", "Train s"]
        header += [f"Depth {d} macro-F1" for d in range(depths)]
        out.append(_table(header, [r + [""] * (len(header) - len(r)) for r in rows]))
        out.append("")
    depth_rows = []
    for dataset in results.get("splits", {}):
        for method, backbone in _order(preset, dataset, groups):
            runs = groups[(dataset, method, backbone)]
            depths = sorted(runs[0]["per_depth"], key=int)
            cells = [
                fmt([r["per_depth"][d]["micro_f1"] for r in runs])
                + " / "
                + fmt([r["per_depth"][d]["macro_f1"] for r in runs])
                for d in depths
            ]
            label = METHOD_NAMES.get(method, method) + (
                "" if backbone in ("-", primary) else f" ({BACKBONE_NAMES.get(backbone, backbone)})"
            )
            depth_rows.append([dataset_name(dataset, preset), label] + cells + [""] * (2 - len(cells)))
    if depth_rows:
        out.append("### Per depth (micro / macro F1)\n")
        out.append(_table(["Dataset", "Method", "Depth 0", "Depth 1"], [r[:4] for r in depth_rows]))
        out.append("")
    for dataset in results.get("splits", {}):
        bucket_rows = []
        ranges = ""
        for method, backbone in _order(preset, dataset, groups):
            runs = groups[(dataset, method, backbone)]
            if not runs[0]["per_bucket"]:
                continue
            n = len(runs[0]["per_bucket"])
            cells = [fmt([r["per_bucket"][k]["macro_f1"] for r in runs]) for k in range(n)]
            label = METHOD_NAMES.get(method, method) + (
                "" if backbone in ("-", primary) else f" ({BACKBONE_NAMES.get(backbone, backbone)})"
            )
            bucket_rows.append([label] + cells)
            ranges = [f"{b['min_count']}–{b['max_count']}" for b in runs[0]["per_bucket"]]
        if bucket_rows:
            out.append(f"### {dataset_name(dataset, preset)}: macro-F1 by label frequency\n")
            out.append(
                "Labels ranked by training-document count (most frequent first) and cut into 5 near-equal "
                "buckets (the paper's Fig. 3b); the header gives each bucket's training counts.\n"
            )
            width = len(ranges)
            out.append(
                _table(
                    ["Method"] + [f"Bucket {k + 1} ({ranges[k]})" for k in range(width)],
                    [r + [""] * (width + 1 - len(r)) for r in bucket_rows],
                )
            )
            out.append("")
    if results.get("task_adapt"):
        out.append("### Re-warming on the task's own training texts\n")
        rows = [
            [
                dataset_name(d, preset),
                s.get("from", ""),
                str(s["steps"]),
                f"{s['seconds']:.0f}",
                f"{100 * s['masked_top1_before']:.2f}",
                f"{100 * s['masked_top1_after']:.2f}",
            ]
            for d, s in results["task_adapt"].items()
        ]
        out.append(_table(["Dataset", "From", "MLM steps", "Seconds", "Masked top-1 before", "after"], rows))
        out.append("")
    if "+" in preset["name"]:  # an investigation variant: its tables only
        return "\n".join(out).rstrip() + "\n" + "".join(f"\n![{t}](figures/{n})" for t, n in figures.items()) + "\n"
    out.append("### For reference: the paper's Table 1 (not reproducible here)\n")
    out.append(
        "Test micro / macro F1 (%) reported by Wang et al. (2022) with bert-base-uncased on the *full* WOS (46,985 "
        "abstracts), RCV1-V2 and NYT. The full WOS text is not available on this machine "
        "(`shared/data/wos/SOURCE.md`), and the numbers above come from other data, backbones, lengths and step "
        "budgets, so the two tables are not comparable: this one only shows what the method reaches at full scale.\n"
    )
    out.append(paper_table())
    out.append("")
    for title, name in figures.items():
        out.append(f"![{title}](figures/{name})")
    return "\n".join(out).rstrip() + "\n"


# -------------------------------------------------------------------------------------------------------- figures
def make_figures(results: dict[str, Any], directory: Path) -> dict[str, str]:
    """Write the PNG figures; returns {title: file name}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    preset = results["preset"]
    groups = group_runs(results["runs"])
    datasets = [d for d in results.get("splits", {}) if any(k[0] == d for k in groups)]
    if not datasets or not results["runs"] or "+" in preset["name"]:  # no figures for investigation variants
        return {}
    directory.mkdir(parents=True, exist_ok=True)
    name = preset["name"]
    written: dict[str, str] = {}

    def label_of(method: str, backbone: str) -> str:
        text = METHOD_NAMES.get(method, method)
        if backbone not in ("-", preset["backbones"][0]):
            text += f"\n({BACKBONE_NAMES.get(backbone, backbone)})"
        return text

    # 1. every method, micro and macro, with error bars
    fig, axes = plt.subplots(1, len(datasets), figsize=(7 * len(datasets), 6), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        rows = _order(preset, dataset, groups)
        y = np.arange(len(rows))
        for k, metric in enumerate(("micro_f1", "macro_f1")):
            stats = [mean_std([r[metric] for r in groups[(dataset, *row)]]) for row in rows]
            ax.barh(
                y + (k - 0.5) * 0.4,
                [100 * m for m, _ in stats],
                0.4,
                xerr=[100 * s for _, s in stats],
                label=metric.replace("_f1", "-F1"),
                capsize=2,
            )
        ax.set_yticks(y, [label_of(*row) for row in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("test F1 (%)")
        ax.set_title(dataset_name(dataset, preset))
        ax.legend(loc="lower right")
    fig.tight_layout()
    file = f"quality-{name}-methods.png"
    fig.savefig(directory / file, dpi=110, bbox_inches="tight")
    plt.close(fig)
    written["Test F1 of every method (mean ± std over seeds)"] = file

    # 2. per depth and 3. by frequency bucket, for the methods of the main table; one colour per method everywhere
    rows_seen = list(dict.fromkeys(row for dataset in datasets for row in _order(preset, dataset, groups)))
    palette = plt.get_cmap("tab20").colors
    colors = {row: palette[k % len(palette)] for k, row in enumerate(rows_seen)}
    for key, title, file_part in (
        ("per_depth", "Macro-F1 per depth", "depth"),
        ("per_bucket", "Macro-F1 by label-frequency bucket (most frequent labels first)", "buckets"),
    ):
        fig, axes = plt.subplots(1, len(datasets), figsize=(7 * len(datasets), 4.5), squeeze=False)
        handles: dict[str, Any] = {}
        for ax, dataset in zip(axes[0], datasets, strict=True):
            for row in _order(preset, dataset, groups):
                runs = groups[(dataset, *row)]
                if key == "per_depth":
                    xs = sorted(runs[0][key], key=int)
                    values = [[r[key][x]["macro_f1"] for r in runs] for x in xs]
                else:
                    xs = [str(b["bucket"] + 1) for b in runs[0][key]]
                    values = [[r[key][k]["macro_f1"] for r in runs] for k in range(len(xs))]
                if not xs:
                    continue
                stats = [mean_std(v) for v in values]
                label = label_of(*row).replace("\n", " ")
                handles[label] = ax.errorbar(
                    range(len(xs)),
                    [100 * m for m, _ in stats],
                    yerr=[100 * s for _, s in stats],
                    marker="o",
                    capsize=2,
                    color=colors[row],
                    label=label,
                )
                ax.set_xticks(range(len(xs)), [f"depth {x}" if key == "per_depth" else f"bucket {x}" for x in xs])
            ax.set_ylabel("test macro-F1 (%)")
            ax.set_title(dataset_name(dataset, preset))
        fig.legend(list(handles.values()), list(handles), fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        fig.tight_layout()
        file = f"quality-{name}-{file_part}.png"
        fig.savefig(directory / file, dpi=110, bbox_inches="tight")
        plt.close(fig)
        written[title] = file

    # 4. backbones x {finetune, hpt}
    backbones = [b for b in preset["backbones"] + [TASK_MLM] if any(k[2] == b for k in groups)]
    if len(backbones) > 1:
        fig, axes = plt.subplots(1, len(datasets), figsize=(7 * len(datasets), 4.5), squeeze=False)
        for ax, dataset in zip(axes[0], datasets, strict=True):
            x = np.arange(len(backbones))
            for k, method in enumerate(("finetune", "hpt")):
                stats = [
                    mean_std([r["macro_f1"] for r in groups.get((dataset, method, b), [])] or [math.nan])
                    for b in backbones
                ]
                ax.bar(
                    x + (k - 0.5) * 0.4,
                    [100 * m for m, _ in stats],
                    0.4,
                    yerr=[100 * s for _, s in stats],
                    label=METHOD_NAMES[method],
                    capsize=3,
                )
            ax.set_xticks(
                x,
                [BACKBONE_NAMES.get(b, b).replace(" (", "\n(").replace(" on ", "\non ") for b in backbones],
                fontsize=8,
            )
            ax.set_ylabel("test macro-F1 (%)")
            ax.set_title(dataset_name(dataset, preset))
            ax.legend()
        fig.tight_layout()
        file = f"quality-{name}-backbones.png"
        fig.savefig(directory / file, dpi=110, bbox_inches="tight")
        plt.close(fig)
        written["HPT and fine-tune on each backbone (macro-F1)"] = file
    return written


# ---------------------------------------------------------------------------------------------------------- write
def paper_table() -> str:
    rows = [list(r) for r in PAPER_TABLE_1]
    return _table(["Model (paper, bert-base, full data)", "WOS", "RCV1-V2", "NYT"], rows)


def _storage(directory: Path, dtype: str) -> str:
    weights = directory / "model.safetensors"
    return f"{dtype}, {weights.stat().st_size / 2**20:.1f} MiB" if weights.is_file() else dtype


def demo_checkpoints_table(directory: Path = ROOT / "checkpoints") -> str:
    """The shipped demo checkpoints' test metrics, read from their ``metrics.json``."""
    rows = []
    checked = 0
    for metrics_file in sorted(directory.glob("*/metrics.json")):
        metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
        test, training, weights = metrics.get("test"), metrics.get("training", {}), metrics.get("weights", {})
        if not test:
            continue
        checked = weights.get("checked_documents", checked)
        depth = test["per_depth"]
        per_depth = " · ".join(f"{100 * depth[d]['micro_f1']:.2f} / {100 * depth[d]['macro_f1']:.2f}" for d in depth)
        rows.append(
            [
                f"`{metrics_file.parent.name}`",
                f"{100 * test['micro_f1']:.2f} / {100 * test['macro_f1']:.2f}",
                per_depth,
                f"{100 * test['path_consistency']:.1f} %",
                f"{training.get('steps', '–')} ({training.get('seconds', 0) / 60:.0f} min on {training.get('device')})",
                _storage(metrics_file.parent, weights.get("dtype", "–")),
                ", ".join(
                    f"{k}: {v['max_abs_score_diff_vs_fp32']:.1e} ({v['changed_predictions_vs_fp32']} changed)"
                    for k, v in weights.get("trials", {}).items()
                    if k != "float32"
                ),
            ]
        )
    header = [
        "Checkpoint",
        "Test micro / macro F1",
        "Per depth (0 · 1)",
        "Path consistency",
        "Steps",
        "Storage",
        f"Max score change of smaller storage on {checked} test messages",
    ]
    return _table(header, rows) if rows else "No demo checkpoints yet."


def _replace_block(text: str, name: str, block: str, command: str, heading: str) -> str:
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    generated = f"{begin}\n<!-- generated by `{command}`; do not edit -->\n\n{block.rstrip()}\n\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        return head + generated + rest.split(end, 1)[1]
    return text.rstrip() + f"\n\n## {heading}\n\n{generated}\n"


def write_report(
    results_file: Path,
    predictions_file: Path,
    docs: Path = DOCS,
    figures: Path = FIGURES,
    checkpoints: Path | None = ROOT / "checkpoints",
) -> list[Path]:
    """Regenerate the preset's block in ``docs`` and its figures from the JSON; returns the files written."""
    results = json.loads(Path(results_file).read_text(encoding="utf-8"))
    predictions = load_predictions(Path(predictions_file))
    name = results["preset"]["name"]
    sig = significance(results, predictions)
    written_figures = make_figures(results, figures)
    block = render(results, sig, written_figures)
    text = docs.read_text(encoding="utf-8") if docs.is_file() else "# Benchmarks\n"
    command = f"python -m benchmarks.quality --preset {name} --report"
    text = _replace_block(text, f"quality-{name}", block, command, f"Quality: preset `{name}`")
    if checkpoints is not None:
        text = _replace_block(
            text, "demo-checkpoints", demo_checkpoints_table(checkpoints), command, "Demo checkpoints"
        )
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text(text, encoding="utf-8")
    summary = Path(results_file).with_name(f"quality-{name}-significance.json")
    summary.write_text(json.dumps(sig, indent=1) + "\n", encoding="utf-8")
    return [docs, summary] + [figures / f for f in written_figures.values()]
