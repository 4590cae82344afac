"""The quality report, regenerated from the benchmark's JSON (never by hand).

    python -m benchmarks.quality --preset cpu --report

Rewrites the generated block ``quality-<preset>`` (between ``<!-- quality-<preset>:begin -->`` and
``<!-- quality-<preset>:end -->``) and the ``demo-checkpoints`` block in ``docs/benchmarks.md`` (the prose around them
is kept), the PNG figures in ``docs/figures/`` and ``quality-<preset>-significance.json`` beside the results.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.common import CHECKPOINTS, DOCS, FIGURES, generated_note, replace_block, write_atomic, write_json
from benchmarks.quality.figures import make_figures
from benchmarks.quality.results import load_predictions
from benchmarks.quality.stats import significance
from benchmarks.quality.tables import demo_checkpoints_table, render


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
    name = results["preset"]["name"]
    sig = significance(results, predictions)
    written_figures = make_figures(results, figures)
    note = generated_note(f"python -m benchmarks.quality --preset {name} --report")
    text = docs.read_text(encoding="utf-8") if docs.is_file() else "# Benchmarks\n"
    blocks = [(f"quality-{name}", render(results, sig, written_figures), f"Quality: preset `{name}`")]
    if checkpoints is not None:
        blocks.append(("demo-checkpoints", demo_checkpoints_table(checkpoints), "Demo checkpoints"))
    for block_name, body, heading in blocks:
        text = replace_block(text, block_name, f"{note}\n\n{body.rstrip()}\n\n", heading)
    write_atomic(docs, text)
    summary = write_json(Path(results_file).with_name(f"quality-{name}-significance.json"), sig, indent=1)
    return [docs, summary] + [figures / f for f in written_figures.values()]
