"""Tests of hpt_core.finetune: one job from real data files to a saved, reloadable checkpoint."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from hpt_core.data import load_dataset
from hpt_core.errors import CheckpointError, ConfigError
from hpt_core.finetune import finetune, prepare_splits, to_jsonl
from hpt_core.metrics import NO_LABEL, top_level_confusion
from hpt_core.model import HPTConfig, HPTModel
from hpt_core.training import TrainConfig


@pytest.fixture
def wos_file(wos_docs, tmp_path: Path) -> Path:
    path = tmp_path / "wos.jsonl"
    path.write_text("".join(json.dumps({"text": t, "labels": [p]}) + "\n" for t, p in wos_docs), encoding="utf-8")
    return path


def test_prepare_splits_is_seeded_and_covers_every_document(wos_file: Path, wos_docs) -> None:
    a = prepare_splits(wos_file, split_seed=1, source_name="my-upload.jsonl")
    b = prepare_splits(wos_file, split_seed=1)
    assert [d.text for d in a.train.documents] == [d.text for d in b.train.documents]
    assert len(a.train) + len(a.dev) + len(a.test) == len(wos_docs) and len(a.dev) == len(a.test) == 3
    assert "my-upload.jsonl" in a.summary() and str(wos_file) not in a.summary()


def test_prepare_splits_with_a_hierarchy_file(wos_file: Path, shared_dir: Path) -> None:
    splits = prepare_splits(wos_file, hierarchy_file=shared_dir / "data" / "wos" / "wos.taxnomy")
    assert splits.train.hierarchy.num_labels == 141


def test_to_jsonl_round_trips_through_load_dataset(wos_file: Path, tmp_path: Path) -> None:
    splits = prepare_splits(wos_file)
    path = tmp_path / "test.jsonl"
    path.write_text(to_jsonl(splits.test), encoding="utf-8")
    again = load_dataset(path, hierarchy=splits.test.hierarchy)
    assert [(d.text, sorted(d.labels)) for d in again.documents] == [
        (d.text, sorted(d.labels)) for d in splits.test.documents
    ]


def test_top_level_confusion_counts_pairs_and_misses(wos_hierarchy) -> None:
    h = wos_hierarchy
    cs, med = h.index("CS"), h.index("Medical")
    ml = h.index(["CS", "Machine learning"])
    labels, matrix = top_level_confusion([[cs, ml], [cs, ml], [med]], [[cs], [], [cs, med]], h)
    assert labels[-1] == NO_LABEL and len(matrix) == len(labels) - 1 == 7
    row_cs, row_med = labels.index("CS"), labels.index("Medical")
    assert matrix[row_cs][row_cs] == 1 and matrix[row_cs][-1] == 1
    assert matrix[row_med][row_cs] == 1 and matrix[row_med][row_med] == 1
    assert sum(map(sum, matrix)) == 4


def test_finetune_trains_evaluates_and_saves(wos_file: Path, save_tiny_backbone, tmp_path: Path) -> None:
    splits = prepare_splits(wos_file)
    config = HPTConfig(backbone=str(save_tiny_backbone()), max_length=64)
    events = []
    result = finetune(
        splits,
        config,
        TrainConfig(epochs=2, batch_size=8, lr=1e-3, seed=0),
        tmp_path / "model",
        provenance={"data": "wos.jsonl"},
        callback=events.append,
        save_test_split=True,
    )
    assert result.directory == tmp_path / "model" and not result.run.cancelled
    assert result.run.steps == 2 * 4 and sum(e.phase == "eval" for e in events) == 2
    test = result.metrics["test"]
    assert test["n_documents"] == 3 and "top_level_confusion" in test
    assert sum(map(sum, test["top_level_confusion"]["matrix"])) >= 3
    assert sum(result.metrics["training"]["label_counts"].values()) >= len(splits.train)
    saved = json.loads((tmp_path / "model" / "train_config.json").read_text())
    assert saved["data"] == "wos.jsonl" and saved["variant"] == "hpt" and saved["epochs"] == 2
    assert len(load_dataset(tmp_path / "model" / "test.jsonl", hierarchy=splits.train.hierarchy)) == 3
    assert HPTModel.from_pretrained(tmp_path / "model").num_labels == splits.train.hierarchy.num_labels
    with pytest.raises(CheckpointError, match="already exists"):
        finetune(splits, config, TrainConfig(epochs=1, max_steps=1), tmp_path / "model")


@pytest.mark.parametrize(
    ("weights", "backbone_label", "error", "match"),
    [
        ("float16-delta", "my-adapted-backbone", ConfigError, "temporary directory"),
        ("int8", None, ConfigError, "weights must be one of"),
        ("float32", None, CheckpointError, "already exists"),
    ],
    ids=["delta-of-a-temporary-backbone", "unknown-precision", "non-empty-output"],
)
def test_a_save_that_would_fail_is_refused_before_training(
    wos_file: Path, save_tiny_backbone, tmp_path: Path, weights, backbone_label, error, match
) -> None:
    out = tmp_path / "model"
    if error is CheckpointError:
        out.mkdir()
        (out / "my-notes.txt").write_text("keep me")
    events: list = []
    config = HPTConfig(backbone=str(save_tiny_backbone()), max_length=64)
    with pytest.raises(error, match=match):
        finetune(
            prepare_splits(wos_file),
            config,
            TrainConfig(epochs=1),
            out,
            callback=events.append,
            weights=weights,
            backbone_label=backbone_label,
        )
    assert events == []  # not a single training step was spent
    assert not out.exists() or [p.name for p in out.iterdir()] == ["my-notes.txt"]


def test_finetune_saves_float16_delta_weights_that_reload(wos_file: Path, save_tiny_backbone, tmp_path: Path) -> None:
    splits = prepare_splits(wos_file)
    config = HPTConfig(backbone=str(save_tiny_backbone()), max_length=64)
    result = finetune(
        splits, config, TrainConfig(epochs=1, batch_size=8, seed=0), tmp_path / "m", weights="float16-delta"
    )
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["weights_dtype"] == "float16-delta" and saved["delta_base"]["backbone"] == config.backbone
    assert HPTModel.from_pretrained(result.directory).num_labels == splits.train.hierarchy.num_labels


def test_cancelled_finetune_saves_nothing(wos_file: Path, save_tiny_backbone, tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    splits = prepare_splits(wos_file)
    config = HPTConfig(backbone=str(save_tiny_backbone()), max_length=64)
    result = finetune(splits, config, TrainConfig(epochs=1), tmp_path / "model", cancel=cancel)
    assert result.run.cancelled and result.directory is None and not (tmp_path / "model").exists()
    assert "test" not in result.metrics


def test_extra_files_must_be_plain_names(make_model, tmp_path: Path) -> None:
    model = make_model()
    with pytest.raises(ConfigError, match="plain, non-reserved"):
        model.save_pretrained(tmp_path / "m", extra_files={"../escape.txt": "x"})
    with pytest.raises(ConfigError, match="plain, non-reserved"):
        model.save_pretrained(tmp_path / "m", extra_files={"config.json": "{}"})
    assert not (tmp_path / "m").exists()
    model.save_pretrained(tmp_path / "m", extra_files={"notes.txt": "hello"})
    assert (tmp_path / "m" / "notes.txt").read_text() == "hello"


def test_adapt_backbone_runs_every_step_and_saves_a_backbone(save_tiny_backbone, wos_docs, tmp_path: Path) -> None:
    from hpt_core.backbones import load_backbone
    from hpt_core.finetune import adapt_backbone, adaptation_config

    texts = [t for t, _ in wos_docs]
    result = adapt_backbone(str(save_tiny_backbone()), texts, tmp_path / "adapted", steps=12, batch_size=8)
    assert result.steps == 12 and not result.cancelled  # no early stop unless asked for
    assert 0.0 <= result.masked_top1_after <= 1.0 and result.heldout_texts >= 1
    tokenizer, backbone = load_backbone(str(tmp_path / "adapted"))
    assert backbone.config.vocab_size == len(tokenizer)
    cancel = threading.Event()
    cancel.set()
    stopped = adapt_backbone(str(save_tiny_backbone()), texts, tmp_path / "never", steps=12, cancel=cancel)
    assert stopped.cancelled and not (tmp_path / "never").exists()
    # bounded by its steps alone: patience = steps, so no early stop unless asked; any TrainConfig field by name
    assert adaptation_config(12, batch_size=8, patience=6) == TrainConfig(
        max_steps=12, epochs=10_000, batch_size=8, lr=1e-4, seed=0, patience=6, schedule="constant", warmup_ratio=0.0
    )
    with pytest.raises(ConfigError, match="max_steps must be at least 1, got 0"):  # checked once, by TrainConfig
        adapt_backbone(str(save_tiny_backbone()), texts, tmp_path / "x", steps=0)
