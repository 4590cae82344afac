"""The shipped demo checkpoints (``checkpoints/20ng-hpt``, ``checkpoints/20ng-finetune``): they load in fp32, classify
the shipped example texts, and reproduce their recorded metrics on 200 messages spread over the 20NG test split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import benchmarks.demo_checkpoints as demo
from benchmarks.common import NEWS_20NG
from benchmarks.demo_checkpoints import evaluation_slice
from hpt_core.data import load_20newsgroups
from hpt_core.inference import decode
from hpt_core.metrics import evaluate_sets
from hpt_core.predict import Predictor

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("20ng-hpt", "20ng-finetune")
SLICE = 200


@pytest.fixture(scope="module")
def news_test_slice(shared_dir: Path):
    news = load_20newsgroups(shared_dir / "data" / NEWS_20NG, strip=True)
    return evaluation_slice([d for d in news.documents if d.split == "test"])


@pytest.fixture(scope="module", params=NAMES)
def shipped(request) -> tuple[str, Path, Predictor]:
    directory = ROOT / "checkpoints" / request.param
    assert (directory / "model.safetensors").is_file(), (
        f"{directory} is missing; run python -m benchmarks.demo_checkpoints"
    )
    return request.param, directory, Predictor.from_pretrained(directory, device="cpu")


def test_checkpoint_is_small_documented_and_loads_in_fp32(shipped):
    name, directory, predictor = shipped
    metrics = json.loads((directory / "metrics.json").read_text(encoding="utf-8"))
    size_mib = (directory / "model.safetensors").stat().st_size / 2**20
    assert size_mib < 50, f"{name}: {size_mib:.1f} MiB; demo checkpoints stay under ~50 MB (Spaces, git pushes)"
    assert all(p.dtype == torch.float32 for p in predictor.model.parameters())
    card = (directory / "README.md").read_text(encoding="utf-8")
    assert f"python -m benchmarks.demo_checkpoints --only {name}" in card and "## Evaluation" in card
    assert metrics["test"]["n_documents"] == 7532  # the whole standard test split
    weights = metrics["weights"]
    assert weights["max_abs_score_diff_vs_fp32"] <= weights["tolerance"] <= 1e-3
    assert json.loads((directory / "config.json").read_text())["weights_dtype"] == weights["dtype"]
    assert predictor.hierarchy.num_labels == 27


@pytest.mark.slow  # scores 500 real test messages with each shipped model
def test_checkpoint_reproduces_its_metrics_on_the_test_slice(shipped, news_test_slice):
    _, directory, predictor = shipped
    recorded = json.loads((directory / "metrics.json").read_text(encoding="utf-8"))["test_slice_200"]
    scores = predictor.scores([d.text for d in news_test_slice])
    predicted = decode(scores)
    report = evaluate_sets([d.labels for d in news_test_slice], predicted, predictor.hierarchy)
    assert report.n_documents == recorded["n_documents"] == SLICE
    assert report.micro_f1 == pytest.approx(recorded["micro_f1"], abs=0.005)
    assert report.macro_f1 == pytest.approx(recorded["macro_f1"], abs=0.005)


def test_checkpoint_classifies_the_example_texts(shipped):
    name, _, predictor = shipped
    examples = json.loads((ROOT / "assets" / "examples" / "20ng.json").read_text(encoding="utf-8"))
    predictions = predictor.predict([e["text"] for e in examples])
    assert len(predictions) == len(examples) == 21
    top = [p.labels[0].path[0] if p.labels else None for p in predictions]
    correct = sum(t == e["label"][0] for t, e in zip(top, examples, strict=True))
    # Real, unpicked test messages: most, not all, get the right top-level group.
    assert correct >= len(examples) // 2, (name, top)


@pytest.mark.parametrize(("tolerance", "chosen"), [(1.0, "float16"), (0.0, "float32")])
def test_the_smallest_storage_within_tolerance_is_shipped(
    save_tiny_backbone, shared_dir, news_test_slice, tmp_path: Path, monkeypatch, tolerance: float, chosen: str
):
    """``_ship`` tries the storages smallest first and keeps the first whose scores stay within the tolerance; the
    metrics it writes are those of the weights it ships."""
    from hpt_core.model import HPTConfig, HPTModel

    monkeypatch.setattr(demo, "FP16_TOLERANCE", tolerance)
    docs = news_test_slice[:12]
    hierarchy = load_20newsgroups(shared_dir / "data" / NEWS_20NG).hierarchy
    model = HPTModel.from_backbone(HPTConfig(backbone=str(save_tiny_backbone()), max_length=64), hierarchy)
    with torch.no_grad():  # as if trained: no weight equals the backbone file's any more
        for p in model.parameters():
            p.add_(0.002 * torch.randn_like(p))
    logged: list[str] = []
    metrics = demo._ship("20ng-hpt", model.eval(), docs, [1] * 27, None, {}, {}, tmp_path, logged.append)
    weights = metrics["weights"]
    tried = list(weights["trials"])
    assert tried == list(demo.WEIGHTS[: demo.WEIGHTS.index(chosen) + 1]) and weights["dtype"] == chosen
    assert weights["trials"][chosen]["max_abs_score_diff_vs_fp32"] <= tolerance
    if chosen == "float32":  # every smaller storage moved some score
        assert all(weights["trials"][w]["max_abs_score_diff_vs_fp32"] > 0 for w in tried[:-1])
    saved = tmp_path / "20ng-hpt"
    assert json.loads((saved / "config.json").read_text())["weights_dtype"] == chosen
    assert metrics["test"]["n_documents"] == len(docs) and json.loads((saved / "metrics.json").read_text()) == metrics
    assert chosen in (saved / "train_config.json").read_text()  # the recorded command names the storage
