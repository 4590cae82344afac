"""The quality benchmark end to end on a tiny preset (real data slices, a tiny backbone, one seed), its JSON schema,
the report regenerated from the JSON, and the paired bootstrap."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from benchmarks.common import DATA_ENV, NEWS_20NG, ROOT, WOS_TAXONOMY, data_dir, data_file
from benchmarks.quality.methods import NEURAL, TASK_MLM
from benchmarks.quality.presets import PRESETS, Preset, jobs, preset_variant
from benchmarks.quality.report import dataset_parents, with_hierarchical_f1, write_report
from benchmarks.quality.results import run_key
from benchmarks.quality.run import run_benchmark
from benchmarks.quality.splits import load_splits
from benchmarks.quality.stats import paired_bootstrap
from benchmarks.quality.tables import recipe_text, render

RUN_FIELDS = {
    "dataset": str,
    "method": str,
    "backbone": str,
    "seed": int,
    "micro_f1": float,
    "macro_f1": float,
    "per_depth": dict,
    "per_bucket": list,
    "train_seconds": float,
    "steps": int,
    "n_test": int,
}


@pytest.fixture(scope="module")
def tiny_backbone_dir(save_tiny_backbone) -> Path:
    """A 2-layer, 32-hidden BertForMaskedLM with the fixture tokenizer, saved as a Hugging Face directory."""
    return save_tiny_backbone()


@pytest.fixture(scope="module")
def tiny_preset(tiny_backbone_dir: Path) -> Preset:
    name = str(tiny_backbone_dir)
    return replace(
        PRESETS["cpu"],
        name="tiny",
        backbones=(name,),
        embedding_backbone=name,
        task_adapt_from=name,
        task_adapt_steps=2,
        seeds=(0,),
        sentence_baselines=(),  # SetFit is an optional benchmark dependency (requirements-bench.txt)
        other_methods=("hard", "soft", "hpt-code"),
        ablations=("no-constraint", "bce"),
        max_length=48,
        batch_size=8,
        epochs={"20ng-10pct": 1, "wos-1k": 1},
        limit=24,
        news_dev=60,
        news_test=60,
        lr_grid=(1.0,),
    )


@pytest.fixture(scope="module")
def tiny_run(shared_dir, tiny_preset, tmp_path_factory) -> tuple[Path, dict]:
    directory = tmp_path_factory.mktemp("quality")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(DATA_ENV, str(shared_dir / "data"))  # wherever the fixtures found the shared data
        results = run_benchmark(tiny_preset, directory, log=lambda _: None, work=directory / "work")
    return directory, results


def test_jobs_put_the_main_comparison_before_the_rest():
    order = list(jobs(PRESETS["cpu"]))
    methods = [m for _, m, _, _ in order]
    assert set(methods[:6]) == {"tfidf-lr", "hiclass", "emb-lr"}
    first_seed = order[6:14]  # 2 datasets x 2 backbones x (hpt, finetune), seed 0
    assert {(d, m, b) for d, m, b, s in first_seed} == {
        (d, m, b) for d in ("20ng-10pct", "wos-1k") for b in ("minilm-l6-mlm", "minilm-l6") for m in ("hpt", "finetune")
    }
    assert all(s == 0 for *_, s in first_seed)
    assert len(set(order)) == len(order)
    # every neural method has 3 seeds on both datasets; ablations on WOS only
    for method in ("hpt", "finetune", "hard", "soft", "hpt-code"):
        assert {(d, s) for d, m, b, s in order if m == method and b == "minilm-l6-mlm"} == {
            (d, s) for d in ("20ng-10pct", "wos-1k") for s in (0, 1, 2)
        }
    assert {d for d, m, _, _ in order if m == "no-mlm"} == {"wos-1k"}


@pytest.mark.slow  # trains every method of the tiny preset once (module fixture)
def test_tiny_preset_writes_every_run_with_the_schema(tiny_run, tiny_preset):
    directory, results = tiny_run
    stored = json.loads((directory / "quality-tiny.json").read_text())
    assert stored == json.loads(json.dumps(results))
    expected = {run_key(*job) for job in jobs(tiny_preset)}
    assert {run_key(r["dataset"], r["method"], r["backbone"], r["seed"]) for r in stored["runs"]} == expected
    for run in stored["runs"]:
        for name, kind in RUN_FIELDS.items():
            assert isinstance(run[name], kind if kind is not float else (int, float)), (name, run)
        assert 0.0 <= run["micro_f1"] <= 1.0 and 0.0 <= run["macro_f1"] <= 1.0
        assert set(run["per_depth"]) == {"0", "1"}
        assert len(run["per_bucket"]) == 5
        if run["method"] in NEURAL:
            assert run["steps"] == 3  # 24 documents, batch 8, 1 epoch
    assert stored["splits"]["wos-1k"]["labels"] == 141 and stored["splits"]["20ng-10pct"]["labels"] == 27
    assert stored["splits"]["20ng-10pct"]["test"] == 24
    assert stored["task_adapt"]["wos-1k"]["steps"] == 2
    with gzip.open(directory / "quality-tiny-predictions.json.gz", "rt") as f:
        predictions = json.load(f)
    assert set(predictions["runs"]) == expected
    assert all(len(p) == 24 for p in predictions["runs"].values())


@pytest.mark.slow  # trains every method of the tiny preset once (module fixture)
def test_a_second_call_resumes_without_rerunning(tiny_run, tiny_preset):
    directory, results = tiny_run
    before = (directory / "quality-tiny.json").read_text()
    again = run_benchmark(tiny_preset, directory, log=lambda _: None, work=directory / "work")
    assert len(again["runs"]) == len(results["runs"])
    assert (directory / "quality-tiny.json").read_text() == before


@pytest.mark.slow  # trains every method of the tiny preset once (module fixture)
def test_changed_training_settings_refuse_to_mix_with_old_runs(tiny_run, tiny_preset):
    directory, _ = tiny_run
    with pytest.raises(SystemExit, match="other settings"):
        run_benchmark(replace(tiny_preset, lr=1e-3), directory, log=lambda _: None)


@pytest.mark.slow  # trains every method of the tiny preset once (module fixture)
def test_report_and_figures_are_regenerated_from_the_json(tiny_run, tiny_preset, tmp_path):
    directory, _ = tiny_run
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nHand-written analysis stays.\n")
    files = write_report(
        directory / "quality-tiny.json", directory / "quality-tiny-predictions.json.gz", docs, tmp_path / "fig"
    )
    text = docs.read_text()
    assert "Hand-written analysis stays." in text
    assert "<!-- quality-tiny:begin -->" in text and "HPT − vanilla fine-tune" in text
    assert "r.m. hierarchy constraint" in text and "Bucket 5" in text and "87.16 / 81.93" in text
    pngs = [f for f in files if f.suffix == ".png"]
    assert len(pngs) == 4
    assert all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in pngs)
    # edit a number in the JSON: the regenerated table shows it and the old block is replaced, not duplicated
    results = json.loads((directory / "quality-tiny.json").read_text())
    edited = tmp_path / "quality-tiny.json"
    for run in results["runs"]:
        if run["method"] == "tfidf-lr" and run["dataset"] == "wos-1k":
            run["micro_f1"] = 0.98765
    edited.write_text(json.dumps(results))
    write_report(edited, directory / "quality-tiny-predictions.json.gz", docs, tmp_path / "fig")
    text = docs.read_text()
    assert "98.77" in text and text.count("<!-- quality-tiny:begin -->") == 1
    significance = json.loads((tmp_path / "quality-tiny-significance.json").read_text())
    assert {row["dataset"] for row in significance} == {"20ng-10pct", "wos-1k"}
    # HPT on the primary backbone is also tested against HPT on the task-adapted backbone, the deterministic
    # sentence-embedding baseline (paired with every HPT seed), and the prompt variants and ablations on its backbone
    primary = tiny_preset.backbones[0]
    assert {(row["baseline"], row["baseline_backbone"]) for row in significance if row["baseline"] != "finetune"} == {
        ("hpt", TASK_MLM),
        ("emb-lr", tiny_preset.embedding_backbone),
        *((m, primary) for m in ("hpt-code", "hard", "soft", "no-constraint", "bce")),
    }
    assert {row["dataset"] for row in significance if row["baseline"] == "bce"} == {"wos-1k"}  # ablations: WOS only
    assert "sentence-embedding baselines" in text and "the paper's prompt variants and ablations" in text
    ablations = text.split("### Ablations on WOS-1k (test)", 1)[1].split("###", 1)[0]
    assert "Depth 1 macro-F1" in ablations and "r.p. BCE loss" in ablations
    by_key = {(r["dataset"], r["method"], r["backbone"]): r for r in results["runs"]}
    for row in significance:
        hpt = by_key[(row["dataset"], "hpt", row["backbone"])]
        other = by_key[(row["dataset"], row["baseline"], row["baseline_backbone"])]
        assert row["micro_per_seed"] == pytest.approx([hpt["micro_f1"] - other["micro_f1"]])


def test_paired_bootstrap_of_identical_runs_is_zero():
    gold = [[0, 2], [1, 3], [0, 2], [1]]
    preds = [[[0, 2], [1], [0], []]]
    out = paired_bootstrap(gold, preds, preds, num_labels=4, samples=200)
    for metric in ("micro", "macro"):
        assert out[metric]["diff"] == 0.0 and out[metric]["ci95"] == [0.0, 0.0] and out[metric]["p"] == 1.0


def test_paired_bootstrap_difference_matches_the_metrics(wos_hierarchy):
    from hpt_core.metrics import evaluate_sets

    rng = np.random.default_rng(0)
    leaves = [i for i in range(wos_hierarchy.num_labels) if wos_hierarchy.is_leaf(i)]
    gold = [wos_hierarchy.closure([int(rng.choice(leaves))]) for _ in range(300)]
    good = [g if rng.random() < 0.8 else wos_hierarchy.closure([int(rng.choice(leaves))]) for g in gold]
    bad = [g if rng.random() < 0.4 else wos_hierarchy.closure([int(rng.choice(leaves))]) for g in gold]
    out = paired_bootstrap(gold, [good], [bad], wos_hierarchy.num_labels, samples=500)
    a, b = evaluate_sets(gold, good, wos_hierarchy), evaluate_sets(gold, bad, wos_hierarchy)
    assert out["micro"]["diff"] == pytest.approx(a.micro_f1 - b.micro_f1, abs=1e-6)
    assert out["macro"]["diff"] == pytest.approx(a.macro_f1 - b.macro_f1, abs=1e-6)
    assert 0 < out["micro"]["ci95"][0] < out["micro"]["diff"] < out["micro"]["ci95"][1]
    assert out["micro"]["p"] < 0.01


def test_report_adds_hierarchical_f1_from_the_stored_predictions(monkeypatch, shared_dir, wos_hierarchy):
    monkeypatch.setenv(DATA_ENV, str(shared_dir / "data"))
    primary = PRESETS["cpu"].backbones[0]
    depth = {"0": {"micro_f1": 0.5, "macro_f1": 0.5}, "1": {"micro_f1": 0.5, "macro_f1": 0.5}}

    def run(dataset: str, method: str, backbone: str, seed: int) -> dict:
        keys = {"dataset": dataset, "method": method, "backbone": backbone, "seed": seed}
        return keys | {"micro_f1": 0.5, "macro_f1": 0.5, "train_seconds": 1.0, "per_depth": depth, "per_bucket": []}

    info = {"note": "n", "train": 1, "dev": 1, "test": 4, "levels": 2}
    results = {
        "preset": json.loads(json.dumps(PRESETS["cpu"].to_dict())),  # as read back from a results file
        "splits": {"wos-1k": info | {"labels": 141}, "20ng-10pct": info | {"labels": 5}},  # 20NG: not its tree
        "runs": [
            run("wos-1k", "hpt", primary, 0),
            run("wos-1k", "hpt", primary, 1),
            run("20ng-10pct", "hpt", primary, 0),
        ],
    }
    leaves = [i for i in range(wos_hierarchy.num_labels) if wos_hierarchy.is_leaf(i)][:4]
    gold = [wos_hierarchy.closure([leaf]) for leaf in leaves]
    tops = [[wos_hierarchy.ancestors(leaf)[0]] for leaf in leaves]
    predictions = {
        "gold": {"wos-1k": gold, "20ng-10pct": [[0], [1], [2], [3]]},
        "runs": {
            run_key("wos-1k", "hpt", primary, 0): gold,  # exact: hF1 1
            run_key("wos-1k", "hpt", primary, 1): tops,  # the domain only: hP 1, hR 1/2, hF1 2/3
            run_key("20ng-10pct", "hpt", primary, 0): [[0], [1], [2], [3]],
        },
    }
    parents = dataset_parents(results, predictions)
    assert set(parents) == {"wos-1k"} and parents["wos-1k"] == wos_hierarchy.parents
    leaf_only = predictions | {"gold": {"wos-1k": [[leaf] for leaf in leaves]}}  # gold not closed: not its ids
    assert dataset_parents(results, leaf_only) == {}
    augmented = with_hierarchical_f1(results, predictions, parents)
    assert [r.get("hierarchical_f1") for r in augmented["runs"]] == pytest.approx([1.0, 2 / 3, None])
    assert "hierarchical_f1" not in results["runs"][0]  # the results themselves are left alone
    text = render(augmented, [], {})
    assert "| Method | Backbone | Micro-F1 | Macro-F1 | hF1 | Seeds | Train s |" in text
    assert "| 83.33 ± 23.57 | 2 |" in text  # mean and sample std of 1 and 2/3
    assert "| 50.00 | 50.00 | – | 1 |" in text  # 20NG: no tree, no hF1
    assert "hF1" not in render(results, [], {})  # without hierarchical F1 the tables are as before


def test_preset_variants_for_investigations_get_their_own_name():
    variant = preset_variant(PRESETS["cpu"], ["lr=3e-4", "epochs.wos-1k=12", "seeds=0,1", "news_test=None"])
    assert variant.name == "cpu+epochs.wos-1k=12+lr=3e-4+news_test=None+seeds=0,1"
    assert (variant.lr, variant.epochs["wos-1k"], variant.epochs["20ng-10pct"]) == (3e-4, 12, 3)
    assert (variant.seeds, variant.news_test) == ((0, 1), None)
    assert PRESETS["cpu"].lr == 1e-4  # the preset itself is unchanged
    # the benchmark trains in fp32 on every CPU (auto would be bf16 on some); a variant can ask for bf16
    assert PRESETS["cpu"].train_config("wos-1k", "hpt", 0).precision == "fp32"
    bf16 = preset_variant(PRESETS["cpu"], ["precision=bf16"])
    assert bf16.train_config("wos-1k", "hpt", 0).precision == "bf16" and "bf16 autocast" in recipe_text(bf16.to_dict())
    with pytest.raises(SystemExit, match="FIELD one of"):
        preset_variant(PRESETS["cpu"], ["learning_rate=1"])


def test_randomisation_test_separates_a_real_difference_from_none(wos_hierarchy):
    rng = np.random.default_rng(1)
    leaves = [i for i in range(wos_hierarchy.num_labels) if wos_hierarchy.is_leaf(i)]
    gold = [wos_hierarchy.closure([int(rng.choice(leaves))]) for _ in range(200)]
    noisy = [g if rng.random() < 0.5 else [] for g in gold]
    other = [g if rng.random() < 0.5 else [] for g in gold]  # the same quality, other documents right
    real = paired_bootstrap(gold, [gold], [noisy], wos_hierarchy.num_labels, samples=300)
    none = paired_bootstrap(gold, [other], [noisy], wos_hierarchy.num_labels, samples=300)
    assert real["macro"]["p_randomisation"] < 0.01 and real["micro"]["p_randomisation"] < 0.01
    assert none["micro"]["p_randomisation"] > 0.05


def test_the_data_directory_is_hpt_studio_data_or_the_shared_folder(monkeypatch, tmp_path, tiny_preset):
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert data_dir() == tmp_path
    (tmp_path / "wos").mkdir()
    (tmp_path / "wos" / "wos.taxnomy").write_text("Root\tA\n", encoding="utf-8")
    assert data_file(WOS_TAXONOMY) == tmp_path / "wos" / "wos.taxnomy"
    with pytest.raises(FileNotFoundError, match=DATA_ENV) as missing:
        load_splits(tiny_preset)  # the benchmarks read their data through data_file
    assert str(tmp_path / NEWS_20NG) in str(missing.value)
    assert all(name in str(missing.value) for name in (NEWS_20NG, "wos/subset_1k/wos_total_1k.json", WOS_TAXONOMY))
    monkeypatch.delenv(DATA_ENV)
    assert data_dir() == ROOT.parent / "shared" / "data"


def test_the_demo_table_shows_the_classical_baselines_of_the_same_split(tmp_path):
    from benchmarks.quality.tables import demo_checkpoints_table

    shipped = json.loads((ROOT / "checkpoints" / "20ng-hpt" / "metrics.json").read_text(encoding="utf-8"))
    (tmp_path / "checkpoints" / "20ng-hpt").mkdir(parents=True)
    (tmp_path / "checkpoints" / "20ng-hpt" / "metrics.json").write_text(json.dumps(shipped), encoding="utf-8")
    depth = {"0": {"micro_f1": 0.8, "macro_f1": 0.7}, "1": {"micro_f1": 0.6, "macro_f1": 0.5}}
    baselines = {"tfidf-lr": {"micro_f1": 0.7483, "macro_f1": 0.7003, "per_depth": depth, "train_seconds": 120.0}}
    results = tmp_path / "benchmarks" / "results" / "demo-baselines.json"
    results.parent.mkdir(parents=True)
    results.write_text(json.dumps(baselines), encoding="utf-8")
    table = demo_checkpoints_table(tmp_path / "checkpoints")
    assert "| `20ng-hpt` |" in table
    assert "| TF-IDF + LR (same split, `C` on dev) | 74.83 / 70.03 | 80.00 / 70.00 · 60.00 / 50.00 |" in table
    results.unlink()
    assert "TF-IDF" not in demo_checkpoints_table(tmp_path / "checkpoints")
