"""The report's Markdown: the generated block of one preset (tables, significance, figure links) and the table
of the shipped demo checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import CHECKPOINTS
from benchmarks.quality.methods import (
    ABLATION_METHODS,
    BACKBONE_NAMES,
    METHOD_NAMES,
    TASK_MLM,
    VARIANTS,
    dataset_name,
)
from benchmarks.quality.results import group_runs
from benchmarks.quality.stats import BOOTSTRAP_SAMPLES, mean_std

# The paper's Table 1 (test micro / macro F1, %), bert-base on the full datasets: reference only.
PAPER_TABLE_1 = [
    ("BERT (vanilla fine-tune)", "85.63 / 79.07", "85.65 / 67.02", "78.24 / 66.08"),
    ("BERT+HiMatch", "86.70 / 81.06", "86.33 / 68.66", "–"),
    ("HGCLR", "87.11 / 81.20", "86.49 / 68.31", "78.86 / 67.96"),
    ("BERT+HardPrompt", "86.39 / 80.43", "86.78 / 68.78", "79.45 / 67.99"),
    ("BERT+SoftPrompt", "86.57 / 80.75", "86.53 / 68.34", "78.95 / 68.21"),
    ("HPT", "87.16 / 81.93", "87.26 / 69.53", "80.42 / 70.42"),
]


def fmt(values: list[float]) -> str:
    """``mean ± std`` in percent (``mean`` alone for a single deterministic run)."""
    mean, std = mean_std(values)
    return f"{100 * mean:.2f} ± {100 * std:.2f}" if len(values) > 1 else f"{100 * mean:.2f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _method_rows(
    groups: dict, dataset: str, methods: list[tuple[str, str]], hierarchical: bool = False
) -> list[list[str]]:
    """Method, backbone, micro-F1, macro-F1, (``hierarchical``: hF1, "–" unless every run has it), seeds, seconds."""
    rows = []
    for method, backbone in methods:
        runs = groups.get((dataset, method, backbone))
        if not runs:
            continue
        hf1 = [r.get("hierarchical_f1") for r in runs]
        rows.append(
            [
                METHOD_NAMES.get(method, method),
                BACKBONE_NAMES.get(backbone, backbone) if backbone != "-" else "–",
                fmt([r["micro_f1"] for r in runs]),
                fmt([r["macro_f1"] for r in runs]),
                *([fmt(hf1) if None not in hf1 else "–"] if hierarchical else []),
                str(len(runs)),
                f"{np.mean([r['train_seconds'] for r in runs]):.0f}",
            ]
        )
    return rows


def _score_header(hierarchical: bool) -> list[str]:
    """The score and run columns of a method table (after its first two)."""
    return ["Micro-F1", "Macro-F1", *(["hF1"] if hierarchical else []), "Seeds", "Train s"]


def row_order(preset: dict[str, Any], dataset: str, groups: dict) -> list[tuple[str, str]]:
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


def recipe_text(preset: dict[str, Any]) -> str:
    """The training recipe of a preset in words (older results files have only ``lr``: one rate, constant)."""
    lr, new, emb = preset["lr"], preset.get("lr_new"), preset.get("lr_embeddings")
    if new is None and emb is None:
        text = f"learning rate {lr:g} (Adam"
    else:
        text = f"learning rates {lr:g} for the backbone, {lr if new is None else new:g} for the new parameters"
        text += f", {lr if emb is None else emb:g} for the word embeddings (Adam"
    schedule, warmup = preset.get("schedule", "constant"), preset.get("warmup_ratio", 0.0)
    text += f", {schedule}" + (f", {100 * warmup:g} % warm-up)" if warmup else ")")
    if preset.get("attention_dropout") is not None:
        text += f", attention dropout {preset['attention_dropout']:g}"
    if preset.get("precision", "fp32") not in ("auto", "fp32"):  # fp32 unless a variant says otherwise
        text += f", {preset['precision']} autocast"
    recipes = preset.get("recipes")
    if recipes:
        groups: dict[str, list[str]] = {}
        for method, recipe in recipes.items():
            groups.setdefault(recipe, []).append(method)
        text += "; recipe per method: " + "; ".join(f"{method_list(ms)}: {r}" for r, ms in groups.items())
    return text


def method_list(methods: list[str]) -> str:
    """'HPT, HPT (code-faithful) and the ablations': the methods' names, every ablation named once as a group."""
    names = [METHOD_NAMES.get(m, m) for m in methods if m not in ABLATION_METHODS]
    if set(ABLATION_METHODS) <= set(methods):
        names.append("the ablations")
    else:
        names += [METHOD_NAMES.get(m, m) for m in methods if m in ABLATION_METHODS]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def render(results: dict[str, Any], sig: list[dict[str, Any]], figures: dict[str, str]) -> str:
    """The generated markdown block (tables and figure links) for one preset."""
    preset = results["preset"]
    groups = group_runs(results["runs"])
    hierarchical = any("hierarchical_f1" in r for r in results["runs"])  # added by the report from the predictions
    out = []
    out.append(
        f"Preset `{preset['name']}`: backbones {', '.join(f'`{b}`' for b in preset['backbones'])}, max length "
        f"{preset['max_length']}, batch {preset['batch_size']}, {recipe_text(preset)}, "
        f"epochs {', '.join(f'{k} {v}' for k, v in preset['epochs'].items())} (best dev macro-F1 state kept), "
        f"seeds {', '.join(map(str, preset['seeds']))}. Scores are test F1 in %, mean ± sample std over seeds; "
        "classical baselines are deterministic (one run, `C` chosen on dev macro-F1). "
        f"SetFit: {preset.get('setfit_iterations', 1)} contrastive pair(s) per training text and side, one epoch at "
        "the same batch and length, then the same dev-chosen logistic regression as the embeddings baseline. "
        + (
            "hF1 is the hierarchical F1: each test document's gold and predicted labels plus all their ancestors, "
            "hP = Σ|P∩G| / Σ|P| and hR = Σ|P∩G| / Σ|G| over documents (as in hiclass), so a wrong leaf in the right "
            "branch keeps credit for its parents; computed by the report from the stored predicted sets. "
            if hierarchical
            else ""
        )
        + (
            f"{len(results['runs'])} runs from "
            + ", ".join(f"`benchmarks/results/{f}`" for f in preset["sources"])
            + "."
            if preset.get("sources")
            else f"{len(results['runs'])} runs in `benchmarks/results/quality-{preset['name']}.json`."
        )
    )
    env = results.get("environment", {})
    if env:
        where = env.get("gpu") or f"{env.get('cpu_threads')} CPU threads"
        out.append(f"Measured with torch {env.get('torch')} on {where}.")
    out.append("")
    for dataset, info in results.get("splits", {}).items():
        rows = _method_rows(groups, dataset, row_order(preset, dataset, groups), hierarchical)
        if not rows:
            continue
        out.append(f"### {dataset_name(dataset, preset)}\n")
        out.append(
            f"{info['note']}. Train/dev/test documents: {info['train']}/{info['dev']}/{info['test']}; "
            f"{info['labels']} labels on {info['levels']} levels.\n"
        )
        out.append(_table(["Method", "Backbone", *_score_header(hierarchical)], rows))
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
        rows = _method_rows(groups, dataset, methods, hierarchical)
        for row, (method, backbone) in zip(rows, methods, strict=True):
            runs = groups[(dataset, method, backbone)]
            row += [fmt([r["per_depth"][d]["macro_f1"] for r in runs]) for d in sorted(runs[0]["per_depth"], key=int)]
        header = ["Variant", "Backbone", *_score_header(hierarchical)]
        depths = max(len(r) for r in rows) - len(header)
        out.append(f"### Ablations on {dataset_name(dataset, preset)} (test)\n")
        header += [f"Depth {d} macro-F1" for d in range(depths)]
        out.append(_table(header, [r + [""] * (len(header) - len(r)) for r in rows]))
        out.append("")
    depth_rows = []
    for dataset in results.get("splits", {}):
        for method, backbone in row_order(preset, dataset, groups):
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
        for method, backbone in row_order(preset, dataset, groups):
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
        "(docs/data.md), and the numbers above come from other data, backbones, lengths and step "
        "budgets, so the two tables are not comparable: this one only shows what the method reaches at full scale.\n"
    )
    out.append(paper_table())
    out.append("")
    for title, name in figures.items():
        out.append(f"![{title}](figures/{name})")
    return "\n".join(out).rstrip() + "\n"


def paper_table() -> str:
    rows = [list(r) for r in PAPER_TABLE_1]
    return _table(["Model (paper, bert-base, full data)", "WOS", "RCV1-V2", "NYT"], rows)


def _storage(directory: Path, dtype: str) -> str:
    weights = directory / "model.safetensors"
    return f"{dtype}, {weights.stat().st_size / 2**20:.1f} MiB" if weights.is_file() else dtype


DEMO_BASELINE_NAMES = {
    "tfidf-lr": "TF-IDF + LR (same split, `C` on dev)",
    "emb-lr": "frozen MiniLM-L6 embeddings + LR (same split, `C` on dev)",
}


def _demo_baseline_rows(path: Path) -> list[list[str]]:
    """Rows of the classical baselines fitted on the demo checkpoints' split (``demo_checkpoints --baselines``)."""
    if not path.is_file():
        return []
    rows = []
    for method, record in json.loads(path.read_text(encoding="utf-8")).items():
        depth = record.get("per_depth") or {}
        per_depth = " · ".join(f"{100 * depth[d]['micro_f1']:.2f} / {100 * depth[d]['macro_f1']:.2f}" for d in depth)
        seconds = record.get("train_seconds")
        rows.append(
            [
                DEMO_BASELINE_NAMES.get(method, method),
                f"{100 * record['micro_f1']:.2f} / {100 * record['macro_f1']:.2f}",
                per_depth or "–",
                "–",
                f"– ({seconds / 60:.0f} min to fit)" if seconds else "–",
                "–",
                "–",
            ]
        )
    return rows


def demo_checkpoints_table(directory: Path = CHECKPOINTS, baselines: Path | None = None) -> str:
    """The shipped demo checkpoints' test metrics, read from their ``metrics.json``, and the classical baselines on
    the same split (``baselines``: ``benchmarks/results/demo-baselines.json`` beside the checkpoints' repository)."""
    baselines = (
        baselines if baselines is not None else directory.parent / "benchmarks" / "results" / "demo-baselines.json"
    )
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
    rows += _demo_baseline_rows(baselines) if rows else []
    return _table(header, rows) if rows else "No demo checkpoints yet."
