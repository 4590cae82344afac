"""The report's PNG figures: every method's test F1, per depth, by label-frequency bucket, and per backbone."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.quality.methods import BACKBONE_NAMES, METHOD_NAMES, TASK_MLM, dataset_name
from benchmarks.quality.results import group_runs
from benchmarks.quality.stats import mean_std
from benchmarks.quality.tables import row_order

# matplotlib is imported inside ``make_figures`` (light start-up, and its backend must be chosen before pyplot loads).


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
        rows = row_order(preset, dataset, groups)
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
    rows_seen = list(dict.fromkeys(row for dataset in datasets for row in row_order(preset, dataset, groups)))
    palette = plt.get_cmap("tab20").colors
    colors = {row: palette[k % len(palette)] for k, row in enumerate(rows_seen)}
    for key, title, file_part in (
        ("per_depth", "Macro-F1 per depth", "depth"),
        ("per_bucket", "Macro-F1 by label-frequency bucket (most frequent labels first)", "buckets"),
    ):
        fig, axes = plt.subplots(1, len(datasets), figsize=(7 * len(datasets), 4.5), squeeze=False)
        handles: dict[str, Any] = {}
        for ax, dataset in zip(axes[0], datasets, strict=True):
            for row in row_order(preset, dataset, groups):
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
