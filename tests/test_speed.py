"""benchmarks/speed/: its quick run end to end (every key, through the real app and models), and the pieces its
comparisons rely on: fixed padding changes no score, the synthetic trees have the size and depth asked for, the
generated blocks replace only their own markers. No timing is asserted here (speed goals live in speed.json)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.common import write_block
from benchmarks.speed.data import synthetic_hierarchy
from benchmarks.speed.report import figures, goals_met, scaling_tables, summary_table
from benchmarks.speed.steps import pad_to

ROOT = Path(__file__).resolve().parents[1]
MODEL_KEYS = [
    "train_step_ratio_vs_backbone_mlm",
    "head_gather_speedup",
    "inference_ratio_vs_encoder",
    "docs_per_second_batched",
    "docs_per_second_one_by_one",
    "dynamic_padding_speedup",
    "peak_rss_mb_train",
    "peak_rss_mb_predict",
]
APP_KEYS = ["predict_p50_ms_idle", "predict_p95_ms_idle", "predict_p95_ms_during_training", "app_cold_start_seconds"]
FILE_KEYS = ["file_predict_seconds", "file_texts_per_second", "file_predict_peak_rss_mb"]


def test_padding_to_max_length_changes_no_score(make_model, wos_docs, wos_hierarchy):
    from hpt_core.model import HPTConfig

    model = make_model(HPTConfig(max_length=256), wos_hierarchy).eval()
    batch = model.encode([" ".join(text.split()[: 10 * (k + 1)]) for k, (text, _) in enumerate(wos_docs[:6])])
    padded = pad_to(batch, 256)
    assert padded.input_ids.shape[1] == 256 > batch.input_ids.shape[1]
    with torch.no_grad():
        torch.testing.assert_close(model(padded).scores, model(batch).scores, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("labels", "depth"), [(500, 4), (5000, 8)])
def test_synthetic_trees_have_the_size_and_depth_asked_for(labels: int, depth: int):
    tree = synthetic_hierarchy(labels, depth)
    sizes = tree.level_sizes()
    assert tree.num_labels == labels and tree.num_levels == depth
    assert sizes == sorted(sizes) and sizes[-1] > labels / 2  # geometric growth, like real taxonomies
    assert synthetic_hierarchy(labels, depth).names == tree.names  # seeded


def test_generated_blocks_replace_only_their_markers(tmp_path: Path):
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n<!-- speed-summary:begin -->\nold\n<!-- speed-summary:end -->\noutro\n", encoding="utf-8")
    assert write_block(doc, "speed-summary", "| new |")
    assert doc.read_text() == "intro\n<!-- speed-summary:begin -->\n| new |\n<!-- speed-summary:end -->\noutro\n"
    assert not write_block(doc, "speed-scaling", "x")  # no markers: file untouched
    assert doc.read_text().startswith("intro\n")
    doc.write_text("<!-- speed-scaling:begin -->\n<!-- speed-scaling:end -->\n", encoding="utf-8")  # a fresh block
    assert write_block(doc, "speed-scaling", "table\n")
    assert doc.read_text() == "<!-- speed-scaling:begin -->\ntable\n<!-- speed-scaling:end -->\n"
    assert not write_block(tmp_path / "missing.md", "speed-summary", "x")
    table = summary_table({"head_gather_speedup": 2.0, "goals_met": goals_met({"head_gather_speedup": 2.0})})
    assert "| 2.0× | >= 1.5 ✓ |" in table


def test_figures_are_drawn_from_the_committed_results(tmp_path: Path):
    result = json.loads((ROOT / "benchmarks" / "results" / "speed.json").read_text(encoding="utf-8"))
    paths = figures(result, tmp_path)
    assert [p.name for p in paths] == ["speed-length.png", "speed-labels.png", "speed-batch.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") and p.stat().st_size > 10_000 for p in paths)
    assert "| 5000 | 8 | 19 |" in scaling_tables(result)  # the depth-8 synthetic tree's row


@pytest.mark.slow  # minutes: the whole quick benchmark, through the launched app
def test_quick_run_writes_every_key(tmp_path: Path):
    out = tmp_path / "speed.json"
    env = os.environ | {"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.speed", "--quick", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    for key in MODEL_KEYS + APP_KEYS + FILE_KEYS:
        assert isinstance(result[key], (int, float)) and result[key] > 0, key
    assert result["file_lines"] == 200  # the CLI classified every row of the quick file
    assert result["peak_rss_mb_train"] > result["peak_rss_mb_import"] > 100  # measured per process, not inherited
    assert result["predict_p95_ms_idle"] >= result["predict_p50_ms_idle"]
    assert set(result["goals_met"]) >= {"train_step_ratio_vs_backbone_mlm", "head_gather_speedup"}
    labels = {row["labels"]: row for row in result["scaling"]["labels"]}
    assert labels[5000]["depth"] == 8 and labels[27]["template_tokens"] < labels[5000]["template_tokens"]
    assert [row["max_length"] for row in result["scaling"]["length"]] == [64, 128]
