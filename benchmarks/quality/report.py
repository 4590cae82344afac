"""The quality report, regenerated from the benchmark's JSON (never by hand).

    python -m benchmarks.quality --preset cpu --report

Rewrites the generated block ``quality-<preset>`` (between ``<!-- quality-<preset>:begin -->`` and
``<!-- quality-<preset>:end -->``) and the ``demo-checkpoints`` block in ``docs/benchmarks.md`` (the prose around them
is kept), the PNG figures in ``docs/figures/`` and ``quality-<preset>-significance.json`` beside the results.

The hierarchical F1 of every run is computed here, from its predicted sets in the predictions file and the dataset's
label tree (its taxonomy in the data directory), so runs recorded before the metric existed get it too; a dataset
whose taxonomy is missing, or does not fit the stored gold sets, gets no hF1 column.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from benchmarks.common import (
    CHECKPOINTS,
    DOCS,
    FIGURES,
    NEWS_20NG_TAXONOMY,
    WOS_TAXONOMY,
    data_file,
    generated_note,
    replace_block,
    write_atomic,
    write_json,
)
from benchmarks.quality.figures import make_figures
from benchmarks.quality.results import load_predictions, run_key
from benchmarks.quality.stats import significance
from benchmarks.quality.tables import demo_checkpoints_table, render
from hpt_core.errors import HPTError
from hpt_core.hierarchy import LabelHierarchy
from hpt_core.metrics import hierarchical_scores

# The label tree of each benchmark dataset: the taxonomy files ``load_splits`` builds its hierarchies from.
TAXONOMIES = {"20ng-10pct": NEWS_20NG_TAXONOMY, "wos-1k": WOS_TAXONOMY}


def dataset_parents(results: dict[str, Any], predictions: dict[str, Any]) -> dict[str, list[int]]:
    """Parent ids (``LabelHierarchy.parents``) of each dataset's tree, from its taxonomy in the data directory.

    A dataset is left out when its taxonomy is missing, or when the tree does not fit the results (another label
    count, or stored gold sets that are not closed under its ancestors: its label ids are not the benchmark's).
    """
    out: dict[str, list[int]] = {}
    for dataset, info in results.get("splits", {}).items():
        if dataset not in TAXONOMIES:
            continue
        try:
            hierarchy = LabelHierarchy.from_taxonomy(data_file(TAXONOMIES[dataset]))
        except (FileNotFoundError, HPTError):
            continue
        gold = predictions.get("gold", {}).get(dataset)
        if hierarchy.num_labels != info.get("labels") or gold is None:
            continue
        if all(set(hierarchy.closure(labels)) == set(labels) for labels in gold):
            out[dataset] = hierarchy.parents
    return out


def with_hierarchical_f1(
    results: dict[str, Any], predictions: dict[str, Any], parents: dict[str, list[int]]
) -> dict[str, Any]:
    """A copy of ``results`` whose runs carry ``hierarchical_f1`` (a fraction) computed from their predicted sets;
    runs of a dataset without ``parents``, or without stored predictions, are copied unchanged."""
    out = copy.deepcopy(results)
    for run in out["runs"]:
        key = run_key(run["dataset"], run["method"], run["backbone"], run["seed"])
        if run["dataset"] in parents and key in predictions.get("runs", {}):
            gold = predictions["gold"][run["dataset"]]
            run["hierarchical_f1"] = hierarchical_scores(gold, predictions["runs"][key], parents[run["dataset"]])[2]
    return out


def write_report(
    results_file: Path,
    predictions_file: Path,
    docs: Path = DOCS,
    figures: Path = FIGURES,
    checkpoints: Path | None = CHECKPOINTS,
) -> list[Path]:
    """Regenerate the preset's block in ``docs`` and its figures from the JSON; returns the files written."""
    results = json.loads(Path(results_file).read_text(encoding="utf-8"))
    predictions = load_predictions(Path(predictions_file))
    results = with_hierarchical_f1(results, predictions, dataset_parents(results, predictions))
    name = results["preset"]["name"]
    sig = significance(results, predictions)
    written_figures = make_figures(results, figures)
    note = generated_note(f"python -m benchmarks.quality --preset {name} --report")
    text = docs.read_text(encoding="utf-8") if docs.is_file() else "# Benchmarks\n"
    blocks = [(f"quality-{name}", note, render(results, sig, written_figures), f"Quality: preset `{name}`")]
    if checkpoints is not None:  # the checkpoints' own table: the same command regenerates it from any preset
        demo_note = generated_note("python -m benchmarks.quality --preset cpu --report")
        blocks.append(("demo-checkpoints", demo_note, demo_checkpoints_table(checkpoints), "Demo checkpoints"))
    for block_name, block_note, body, heading in blocks:
        text = replace_block(text, block_name, f"{block_note}\n\n{body.rstrip()}\n\n", heading)
    write_atomic(docs, text)
    summary = write_json(Path(results_file).with_name(f"quality-{name}-significance.json"), sig, indent=1)
    return [docs, summary] + [figures / f for f in written_figures.values()]
