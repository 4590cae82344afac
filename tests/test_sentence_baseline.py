"""Tests of hpt_core.sentence_baseline (the frozen-embedding baseline of the honest duel) on real WOS abstracts with
the raw all-MiniLM-L6-v2 encoder, the duel's verdict and table on hand-made metrics, and the model card's
comparison section (rendered with the checkpoint and added to a saved one)."""

from __future__ import annotations

import json
import threading
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

import hpt_core.device as device_module
from hpt_core.backbones import RAW_BACKBONE
from hpt_core.checkpoint import add_sentence_baseline, read_metrics
from hpt_core.data import Dataset
from hpt_core.finetune import Splits, prepare_splits
from hpt_core.metrics import EvalReport, evaluate_sets
from hpt_core.model_card import BASELINE_HEADING, render_model_card, with_baseline_section
from hpt_core.sentence_baseline import (
    BASELINE_NAME,
    C_GRID,
    SentenceBaselineResult,
    _embed,
    _encoder,
    duel_table,
    duel_verdict,
    embed_texts,
    fit_leaf_classifier,
    fit_sentence_baseline,
)

ROOT = Path(__file__).resolve().parents[1]
WOS = ROOT / "assets" / "wos-1k"
MAX_LENGTH = 64  # the abstracts' first 64 wordpieces keep the real encoder quick on CPU


@pytest.fixture(scope="module")
def wos_splits(tmp_path_factory) -> Splits:
    """The first 80 WOS-1k abstracts on the 141-label WOS tree: 40 train / 20 dev / 20 test (seeded)."""
    path = tmp_path_factory.mktemp("wos") / "wos80.json"
    lines = (WOS / "wos_total_1k.json").read_text(encoding="utf-8").splitlines()[:80]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return prepare_splits(path, hierarchy_file=WOS / "wos.taxnomy", dev_fraction=0.25, test_fraction=0.25)


@pytest.fixture(scope="module")
def fitted(wos_splits: Splits) -> tuple[SentenceBaselineResult, list[tuple[int, int]]]:
    progress: list[tuple[int, int]] = []
    result = fit_sentence_baseline(wos_splits, RAW_BACKBONE, MAX_LENGTH, callback=lambda d, t: progress.append((d, t)))
    return result, progress


def _small(splits: Splits, n: int) -> Dataset:
    return splits.train.subset(splits.train.documents[:n])


def test_c_is_the_grid_value_with_the_best_dev_macro_f1(wos_splits, fitted):
    result, _ = fitted
    assert result.chosen_on == "dev" and result.note is None and not result.cancelled
    assert list(result.c_scores) == list(C_GRID) and result.c in C_GRID
    assert len(set(result.c_scores.values())) > 1  # the grid matters on this split, so the choice is a real one
    best = max(result.c_scores.values())
    assert result.c == next(c for c in C_GRID if result.c_scores[c] == best)  # the first of the best
    assert result.dev is not None and result.dev.macro_f1 == best
    # the same numbers from the public pieces: embed_texts, one logistic regression per C, evaluate_sets
    features = {
        p: embed_texts([d.text for d in getattr(wos_splits, p).documents], max_length=MAX_LENGTH)
        for p in ("train", "dev")
    }
    counts = wos_splits.train.label_counts()
    gold = [d.labels for d in wos_splits.dev.documents]
    for c in C_GRID:
        predicted = fit_leaf_classifier(features["train"], wos_splits.train, c)(features["dev"])
        report = evaluate_sets(gold, predicted, wos_splits.train.hierarchy, counts)
        assert report.macro_f1 == pytest.approx(result.c_scores[c], abs=1e-9)


def test_reports_have_the_shape_of_hpt_metrics(wos_splits, fitted):
    result, progress = fitted
    assert result.n_train == len(wos_splits.train) == 40 and result.backbone == RAW_BACKBONE
    data = json.loads(json.dumps(result.to_dict()))  # JSON-safe
    assert data["name"] == BASELINE_NAME and data["c"] == result.c and data["seconds"] > 0
    assert set(data["c_scores"]) == {"1", "10", "100", "1000"}
    report_keys = {f.name for f in fields(EvalReport)}
    for split, n in (("dev", 20), ("test", 20)):
        entry = data[split]
        assert report_keys <= set(entry) and entry["n_documents"] == n
        assert set(entry["per_depth"]) == {"0", "1"} and len(entry["per_label"]) == 141
        for value in (entry["micro_f1"], entry["macro_f1"], *(d["macro_f1"] for d in entry["per_depth"].values())):
            assert 0.0 <= value <= 1.0
    assert data["test"]["micro_f1"] > 0.0  # the frozen encoder gets some domains right on 20 abstracts
    assert data["test"]["top_level_confusion"]["labels"][-1] == "(none)"
    # each test prediction is one root-to-leaf path (a predicted leaf with its ancestors)
    h = wos_splits.train.hierarchy
    assert len(result.test_predicted) == 20
    assert all(len(p) == 2 and h.is_consistent(p) for p in result.test_predicted)
    # progress counts every embedded document, then every C fitted, up to the total
    assert progress[-1] == (80 + len(C_GRID), 80 + len(C_GRID))
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)


def test_embeddings_are_unit_vectors_independent_of_the_batch(wos_splits):
    texts = [d.text for d in wos_splits.dev.documents[:5]]
    seen: list[tuple[int, int]] = []
    together = embed_texts(texts, max_length=MAX_LENGTH, batch_size=2, callback=lambda d, t: seen.append((d, t)))
    assert together.shape == (5, 384) and together.dtype == np.float32
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert seen == [(2, 5), (4, 5), (5, 5)]
    alone = embed_texts(texts[3:4], max_length=MAX_LENGTH)
    assert np.allclose(alone[0], together[3], atol=1e-5)  # padding in a batch does not leak into the mean
    assert embed_texts([], max_length=MAX_LENGTH).shape == (0, 384)


def test_bf16_embeddings_are_the_fp32_ones_to_a_few_1e_3(wos_splits, monkeypatch):
    texts = [d.text for d in wos_splits.dev.documents[:8]]
    tokenizer, encoder = _encoder(RAW_BACKBONE)
    exact = _embed(texts, tokenizer, encoder, MAX_LENGTH)
    fast = _embed(texts, tokenizer, encoder, MAX_LENGTH, precision="bf16")
    assert exact is not None and fast is not None and fast.dtype == np.float32
    assert not np.array_equal(fast, exact)  # the encoder did run in bf16 ...
    assert np.min(np.sum(fast * exact, axis=1)) > 0.999  # ... and each embedding keeps its direction
    # "auto" is bf16 only on CPUs with bf16 instructions, and the result says what ran
    train, dev = _small(wos_splits, 20), wos_splits.dev.subset(wos_splits.dev.documents[:5])
    small = Splits(train, dev, dev.subset([]), "test")
    for native, expected in ((False, "fp32"), (True, "bf16")):
        monkeypatch.setattr(device_module, "native_bf16", lambda device, native=native: native)
        result = fit_sentence_baseline(small, max_length=MAX_LENGTH, c_grid=(1.0,), precision="auto")
        assert result.precision == expected and result.to_dict()["precision"] == expected


def test_without_dev_documents_c_is_chosen_on_train_and_without_test_nothing_is_scored(wos_splits):
    train, test = _small(wos_splits, 20), wos_splits.test.subset(wos_splits.test.documents[:10])
    empty = train.subset([])
    no_dev = fit_sentence_baseline(Splits(train, empty, test, "test"), max_length=MAX_LENGTH, c_grid=(1.0, 100.0))
    assert no_dev.chosen_on == "train" and no_dev.dev is None and "training documents" in (no_dev.note or "")
    assert no_dev.c in (1.0, 100.0) and no_dev.test is not None and no_dev.test.n_documents == 10
    assert no_dev.to_dict()["dev"] is None and no_dev.to_dict()["chosen_on"] == "train"
    dev = wos_splits.dev.subset(wos_splits.dev.documents[:10])
    no_test = fit_sentence_baseline(Splits(train, dev, empty, "test"), max_length=MAX_LENGTH, c_grid=(1.0,))
    assert no_test.test is None and no_test.test_predicted == [] and no_test.to_dict()["test"] is None
    assert no_test.dev is not None and no_test.dev.n_documents == 10 and no_test.c == 1.0


def test_a_set_cancel_event_stops_the_baseline(wos_splits):
    cancel = threading.Event()
    cancel.set()
    result = fit_sentence_baseline(wos_splits, max_length=MAX_LENGTH, cancel=cancel)
    assert result.cancelled and result.c is None and result.dev is None and result.test is None
    assert result.to_dict()["cancelled"] is True


def test_a_bad_grid_or_no_training_documents_is_refused(wos_splits):
    from hpt_core.errors import ConfigError

    with pytest.raises(ConfigError, match="c_grid"):
        fit_sentence_baseline(wos_splits, c_grid=(1.0, -1.0))
    empty = wos_splits.train.subset([])
    with pytest.raises(ConfigError, match="train split is empty"):
        fit_sentence_baseline(Splits(empty, wos_splits.dev, wos_splits.test, "test"))


def test_a_single_training_label_predicts_that_path_everywhere(wos_splits):
    h = wos_splits.train.hierarchy
    first = wos_splits.train.documents[0]
    train = wos_splits.train.subset([d for d in wos_splits.train.documents if d.labels == first.labels])
    predict = fit_leaf_classifier(np.zeros((len(train), 3)), train, 1.0)
    assert predict(np.zeros((4, 3))) == [h.closure(first.labels)] * 4


# ------------------------------------------------------------------------------------------------------ the duel
def _metrics(macro: float, micro: float, test: bool = True, dev_macro: float | None = None) -> dict:
    def entry(ma: float, mi: float) -> dict:
        depth = {"0": {"micro_f1": mi + 0.1, "macro_f1": ma + 0.1}, "1": {"micro_f1": mi - 0.1, "macro_f1": ma - 0.1}}
        return {"micro_f1": mi, "macro_f1": ma, "per_depth": depth, "n_documents": 50}

    out = {"dev": entry(dev_macro if dev_macro is not None else macro, micro), "training": {"steps": 3}}
    if test:
        out["test"] = entry(macro, micro)
    return out


def test_the_verdict_names_the_better_model_with_the_margin():
    hpt, baseline = _metrics(0.623, 0.71), _metrics(0.539, 0.662)
    verdict = duel_verdict(hpt, baseline)
    assert verdict.startswith("Use the HPT model") and "8.4 points" in verdict and "test macro-F1" in verdict
    assert "62.3 %" in verdict and "53.9 %" in verdict and "71.0 %" in verdict
    reverse = duel_verdict(baseline, hpt)
    assert reverse.startswith("Use the frozen-embedding baseline") and "8.4 points" in reverse
    assert "cheaper" in reverse


def test_within_one_point_the_two_are_on_par_and_the_baseline_is_cheaper():
    for hpt_macro in (0.546, 0.549, 0.529):  # +0.7, +1.0 and -1.0 points
        verdict = duel_verdict(_metrics(hpt_macro, 0.7), _metrics(0.539, 0.7))
        assert "on par" in verdict and "use the baseline" in verdict and "cheaper" in verdict, verdict
    assert duel_verdict(_metrics(0.550, 0.7), _metrics(0.539, 0.7)).startswith("Use the HPT model")  # 1.1 points


def test_the_verdict_uses_test_when_both_have_it_else_dev():
    # HPT wins on test but loses on dev: with both test reports, test decides
    assert duel_verdict(_metrics(0.6, 0.7, dev_macro=0.3), _metrics(0.5, 0.6)).startswith("Use the HPT model")
    only_dev = duel_verdict(_metrics(0.6, 0.7, test=False, dev_macro=0.3), _metrics(0.5, 0.6))
    assert only_dev.startswith("Use the frozen-embedding baseline") and "dev macro-F1" in only_dev
    assert "no verdict" in duel_verdict({"training": {}}, _metrics(0.5, 0.6))
    assert "no verdict" in duel_verdict(_metrics(0.5, 0.6), {"dev": None, "test": None, "cancelled": True})


def test_the_duel_table_has_a_row_per_split_and_depth_for_both_models():
    rows = duel_table(_metrics(0.6, 0.7), _metrics(0.5, 0.65, test=False))
    assert [(r["split"], r["level"], r["depth"]) for r in rows] == [
        ("dev", "overall", None),
        ("dev", "depth 0", 0),
        ("dev", "depth 1", 1),
        ("test", "overall", None),
        ("test", "depth 0", 0),
        ("test", "depth 1", 1),
    ]
    dev0 = rows[1]
    assert dev0["hpt_macro_f1"] == pytest.approx(0.7) and dev0["baseline_macro_f1"] == pytest.approx(0.6)
    assert dev0["hpt_micro_f1"] == pytest.approx(0.8) and dev0["baseline_micro_f1"] == pytest.approx(0.75)
    assert dev0["macro_f1_margin"] == pytest.approx(0.1) and dev0["n_documents"] == 50
    assert rows[3]["hpt_macro_f1"] == 0.6 and rows[3]["baseline_macro_f1"] is None  # no baseline test report
    assert rows[3]["macro_f1_margin"] is None
    assert duel_table({}, {"dev": None, "test": None}) == []


# ------------------------------------------------------------------------------------------------- the model card
def test_the_card_shows_the_comparison_only_with_a_baseline(make_model, fitted):
    model = make_model()
    hpt = _metrics(0.623, 0.71)
    plain = render_model_card(model, metrics=hpt)
    assert BASELINE_HEADING not in plain and "frozen" not in plain
    baseline = fitted[0].to_dict()
    card = render_model_card(model, metrics=hpt | {"sentence_baseline": baseline})
    section = card.split(BASELINE_HEADING, 1)[1].split("## How to load", 1)[0]
    assert f"`C` = {baseline['c']:g} chosen on dev macro-F1" in section and "`minilm-l6`" in section
    test_row = next(line for line in section.splitlines() if line.startswith("| test |"))
    assert test_row.startswith("| test | 71.00 % | 62.30 % |")
    assert f"{100 * baseline['test']['macro_f1']:.2f} %" in test_row
    assert f"**Verdict:** {duel_verdict(hpt, baseline)}" in section
    assert card.replace(card[card.index(BASELINE_HEADING) : card.index("## How to load")], "") == plain
    # the evaluation table lists the HPT splits only
    evaluation = card.split("## Evaluation", 1)[1].split("##", 1)[0]
    assert "sentence_baseline" not in evaluation and "| test | 50 |" in evaluation


def test_a_baseline_added_to_a_saved_checkpoint_updates_metrics_and_card(make_model, tmp_path):
    model = make_model()
    hpt = _metrics(0.623, 0.71)
    path = model.save_pretrained(tmp_path / "ckpt", metrics=hpt)
    first = {"name": BASELINE_NAME, "backbone": "minilm-l6", "max_length": 128, "c": 10.0, "chosen_on": "dev"}
    first |= {"seconds": 4.2}
    first |= {"dev": _metrics(0.5, 0.6)["dev"], "test": _metrics(0.5, 0.6)["test"]}
    add_sentence_baseline(path, first)
    assert read_metrics(path) == hpt | {"sentence_baseline": first}
    card = (path / "README.md").read_text(encoding="utf-8")
    assert card == render_model_card(model, metrics=hpt | {"sentence_baseline": first})
    assert card.index(BASELINE_HEADING) < card.index("## How to load")
    second = first | {"c": 1000.0, "test": _metrics(0.7, 0.8)["test"]}
    add_sentence_baseline(path, second)
    card = (path / "README.md").read_text(encoding="utf-8")
    assert card.count(BASELINE_HEADING) == 1 and "`C` = 1000" in card and "`C` = 10 " not in card
    assert "Use the frozen-embedding baseline" in card
    assert read_metrics(path)["sentence_baseline"]["c"] == 1000.0
    # a hand-written card without the usual headings gets the section at its end
    assert with_baseline_section("# My card\n", hpt | {"sentence_baseline": first}).startswith(
        f"# My card\n\n{BASELINE_HEADING}\n"
    )
