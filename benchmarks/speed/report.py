"""The speed report: goals met, the scaling figures and the generated tables of ``docs/benchmarks.md`` and the
README, all drawn from ``speed.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.common import DOCS, FIGURES, README, write_block
from benchmarks.speed.settings import BATCH, LENGTH, PREDICT_BATCH

GOALS = {
    "train_step_ratio_vs_backbone_mlm": ("<=", 1.15),
    "head_gather_speedup": (">=", 1.5),
    "inference_ratio_vs_encoder": ("<=", 1.10),
    "app_cold_start_seconds": ("<=", 30.0),
    "first_predict_after_page_seconds": ("<=", 1.0),
    "demo_finetune_seconds_cpu": ("<=", 300.0),
}

# matplotlib is imported inside ``figures`` (light start-up: the tables need no plotting library).


def goals_met(result: dict[str, Any]) -> dict[str, Any]:
    met = {}
    for key, (op, goal) in GOALS.items():
        value = result.get(key)
        if value is not None:
            met[key] = {"value": value, "goal": f"{op} {goal}", "met": value <= goal if op == "<=" else value >= goal}
    return met


def _save(fig: Any, ax: Any, title: str, path: Path, legend: bool = True) -> Path:
    ax.set_title(title, fontsize=10)
    if legend:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    fig.clf()
    return path


def figures(result: dict[str, Any], directory: Path = FIGURES) -> list[Path]:
    """Scaling plots from ``result["scaling"]``: step vs length, cost vs labels, throughput vs batch size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    scale = result.get("scaling") or {}
    paths = []
    directory.mkdir(parents=True, exist_ok=True)
    if scale.get("length"):
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        rows = scale["length"]
        x = [r["max_length"] for r in rows]
        ax.plot(x, [1000 * r["hpt"] for r in rows], "o-", label="HPT step")
        ax.plot(x, [1000 * r["backbone_mlm"] for r in rows], "s--", label="backbone masked-LM step (floor)")
        for r in rows:
            ax.annotate(f"×{r['ratio']:.2f}", (r["max_length"], 1000 * r["hpt"]), textcoords="offset points",
                        xytext=(-8, 8), fontsize=8)  # fmt: skip
        ax.set(xscale="log", yscale="log", xlabel="sequence length (tokens)", ylabel="ms per training step")
        ax.set_xticks(x, [str(v) for v in x], minor=False)
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.margins(y=0.15)
        paths.append(_save(fig, ax, f"Training step vs length (batch {BATCH})", directory / "speed-length.png"))
    if scale.get("labels"):
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        rows = sorted(scale["labels"], key=lambda r: r["labels"])
        x = [r["labels"] for r in rows]
        ax.plot(x, [1000 * r["step_seconds"] for r in rows], "o-", label="training step")
        ax.plot(x, [1000 * r["scores_batch32_seconds"] for r in rows], "^-", label=f"scoring {PREDICT_BATCH} docs")
        ax.plot(x, [1000 * r["graph_seconds"] for r in rows], "s--", label="graph pass (fwd + bwd)")
        ax.set(xscale="log", yscale="log", xlabel="labels in the tree (27 20NG, 141 WOS, 166 NYT, then synthetic)")
        ax.set(ylabel="ms", ylim=(1, 10_000))
        title = f"Cost vs number of labels (batch {BATCH}, length {LENGTH})"
        paths.append(_save(fig, ax, title, directory / "speed-labels.png"))
    if scale.get("batch"):
        fig, ax = plt.subplots(figsize=(5.5, 3.4))
        rows = scale["batch"]
        ax.plot([r["batch_size"] for r in rows], [r["docs_per_second"] for r in rows], "o-")
        ax.set(xscale="log", xlabel="prediction batch size", ylabel="documents per second")
        ax.set_xticks([r["batch_size"] for r in rows], [str(r["batch_size"]) for r in rows])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        title = "Prediction throughput (20ng-hpt, real test messages)"
        paths.append(_save(fig, ax, title, directory / "speed-batch.png", legend=False))
    plt.close("all")
    return paths


def _fmt(value: Any, unit: str = "") -> str:
    return "–" if value is None else f"{value}{unit}"


def _lookup(result: dict[str, Any], dotted: str) -> Any:
    value: Any = result
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def summary_table(result: dict[str, Any]) -> str:
    """The markdown table of every top-level measurement and its goal."""
    met = result.get("goals_met", {})
    rows = [
        ("HPT training step ÷ backbone masked-LM step", "train_step_ratio_vs_backbone_mlm", "×"),
        ("MLM head at every position ÷ ours (speed-up)", "head_gather_speedup", "×"),
        ("HPT prediction of 32 ÷ plain encoder forward", "inference_ratio_vs_encoder", "×"),
        ("Prediction, batched (32)", "docs_per_second_batched", " docs/s"),
        ("Prediction, one by one", "docs_per_second_one_by_one", " docs/s"),
        ("Dynamic padding speed-up (length 512)", "dynamic_padding_speedup", "×"),
        (
            "Prediction speed-up vs fp32: bf16 / int8",
            ("precision_speedup_vs_fp32.bf16", "precision_speedup_vs_fp32.int8"),
            "×",
        ),
        ("Peak memory, training (batch 16, length 128)", "peak_rss_mb_train", " MB"),
        ("Peak memory, prediction", "peak_rss_mb_predict", " MB"),
        ("`/predict` p50 / p95, idle", ("predict_p50_ms_idle", "predict_p95_ms_idle"), " ms"),
        ("`/predict` p95 during a fine-tune job", "predict_p95_ms_during_training", " ms"),
        ("`python app.py` to first `/predict`", "app_cold_start_seconds", " s"),
        ("First `/predict` once the page answers", "first_predict_after_page_seconds", " s"),
        ("Demo fine-tune (WOS-1k, default settings, CPU)", "demo_finetune_seconds_cpu", " s"),
        ("`predict --file`: 2,000 20NG messages to CSV, start-up included", "file_predict_seconds", " s"),
        ("`predict --file`: peak memory", "file_predict_peak_rss_mb", " MB"),
    ]
    lines = ["| Measurement | Value | Goal |", "|---|---|---|"]
    for title, key, unit in rows:
        if isinstance(key, tuple):
            value = " / ".join(_fmt(_lookup(result, k)) for k in key) + unit
            goal = ""
        else:
            value = _fmt(result.get(key), unit)
            goal = met.get(key, {}).get("goal", "")
            if goal:
                goal += " ✓" if met[key]["met"] else " ✗"
        lines.append(f"| {title} | {value} | {goal} |")
    return "\n".join(lines)


def scaling_tables(result: dict[str, Any]) -> str:
    scale = result.get("scaling") or {}
    parts = []
    if scale.get("length"):
        parts.append("| Length | HPT step (ms) | Backbone MLM step (ms) | Ratio |\n|---|---|---|---|")
        parts[-1] += "".join(
            f"\n| {r['max_length']} | {1000 * r['hpt']:.0f} | {1000 * r['backbone_mlm']:.0f} | {r['ratio']:.2f} |"
            for r in scale["length"]
        )
    if scale.get("labels"):
        parts.append(
            "| Tree | Labels | Depth | Template tokens | Step (ms) | Graph fwd+bwd (ms) | Graph share | "
            "Scores of 32 (ms) | Predict 32 (ms) | Labels predicted per doc |\n" + "|---" * 10 + "|"
        )
        parts[-1] += "".join(
            f"\n| {r['tree']} | {r['labels']} | {r['depth']} | {r['template_tokens']} | {1000 * r['step_seconds']:.0f}"
            f" | {1000 * r['graph_seconds']:.1f} | {100 * r['graph_share']:.1f} % | "
            f"{1000 * r['scores_batch32_seconds']:.0f} | {1000 * r['predict_batch32_seconds']:.0f} | "
            f"{r['predicted_labels_per_doc']} |"
            for r in scale["labels"]
        )
    if scale.get("batch"):
        parts.append("| Batch size | " + " | ".join(str(r["batch_size"]) for r in scale["batch"]) + " |")
        parts[-1] += "\n|---|" + "---|" * len(scale["batch"])
        parts[-1] += "\n| docs/s | " + " | ".join(str(r["docs_per_second"]) for r in scale["batch"]) + " |"
    return "\n\n".join(parts)


def report(result: dict[str, Any], docs: bool = True) -> None:
    """Redraw the figures and, with ``docs``, rewrite the generated blocks of ``docs/benchmarks.md`` and the README."""
    figures(result)
    if docs:
        note = f"_Generated by `python -m benchmarks.speed` ({result.get('mode', 'full')} run, {result['date']}"
        if result.get("app_date"):  # the app and file rows re-measured later by --only-app
            note += f"; the `/predict`, app, fine-tune and `predict --file` rows by `--only-app`, {result['app_date']}"
        note += ")._"
        write_block(DOCS, "speed-summary", note + "\n\n" + summary_table(result))
        write_block(DOCS, "speed-scaling", scaling_tables(result))
        write_block(README, "speed-summary", summary_table(result))
