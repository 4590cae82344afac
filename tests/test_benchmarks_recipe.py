"""The recipe fields of the quality presets, results files shared by two benchmark processes, and the CPU
recipe search's choice (dev only), table and merged comparison (benchmarks/quality/recipe.py)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from benchmarks.quality import recipe
from benchmarks.quality.presets import PRESETS, preset_variant
from benchmarks.quality.results import load_predictions, load_results, predictions_path, results_path, run_key, save
from benchmarks.quality.tables import recipe_text


def test_preset_recipe_fields_reach_the_training_and_model_configs():
    base = PRESETS["cpu"]
    train, model = base.train_config("wos-1k", "hpt", 0), base.model_config("hpt", "minilm-l6-mlm")
    assert (train.lr_new, train.lr_embeddings, train.schedule, train.warmup_ratio) == (None, None, "constant", 0.0)
    assert model.attention_dropout is None
    variant = preset_variant(
        base, ["lr_new=0.003", "schedule=linear", "warmup_ratio=0.1", "attention_dropout=0", "lr_embeddings=0"]
    )
    train, model = variant.train_config("wos-1k", "finetune", 1), variant.model_config("finetune", "minilm-l6-mlm")
    assert (train.lr_new, train.lr_embeddings, train.schedule, train.warmup_ratio) == (0.003, 0, "linear", 0.1)
    assert (train.lr, train.seed, train.epochs) == (base.lr, 1, base.epochs["wos-1k"])
    assert model.attention_dropout == 0
    assert variant.name == "cpu+attention_dropout=0+lr_embeddings=0+lr_new=0.003+schedule=linear+warmup_ratio=0.1"


def _run(dataset: str, method: str, seed: int, dev: float, test: float, backbone: str = "minilm-l6-mlm") -> dict:
    return {
        "dataset": dataset,
        "method": method,
        "backbone": backbone,
        "seed": seed,
        "dev_macro_f1": dev,
        "dev_micro_f1": dev + 0.1,
        "macro_f1": test,
        "micro_f1": test + 0.1,
        "train_seconds": 10.0,
        "per_depth": {"0": {"micro_f1": test, "macro_f1": test, "n_labels": 2}},
        "dev_curve": [{"step": 5, "epoch": 1, "dev_macro_f1": dev / 2, "dev_micro_f1": dev}],
    }


def test_two_processes_sharing_a_results_file_keep_each_others_runs(tmp_path: Path):
    path, pred_path = results_path("shared", tmp_path), predictions_path("shared", tmp_path)
    first, second = load_results(path), load_results(path)  # both processes read the file before either writes
    first_p, second_p = load_predictions(pred_path), load_predictions(pred_path)
    first["runs"].append(_run("wos-1k", "hpt", 0, 0.2, 0.3))
    first_p["runs"][run_key("wos-1k", "hpt", "minilm-l6-mlm", 0)] = [[0, 1]]
    merged, _ = save(path, first, pred_path, first_p)
    second["runs"].append(_run("20ng-10pct", "hpt", 0, 0.5, 0.6))
    second_p["runs"][run_key("20ng-10pct", "hpt", "minilm-l6-mlm", 0)] = [[2]]
    save(path, second, pred_path, second_p)
    second["runs"].append(_run("20ng-10pct", "finetune", 0, 0.1, 0.1))
    save(path, second, pred_path, second_p)  # the same process saving again adds only its new run
    on_disk = load_results(path)
    assert sorted((r["dataset"], r["method"]) for r in on_disk["runs"]) == [
        ("20ng-10pct", "finetune"),
        ("20ng-10pct", "hpt"),
        ("wos-1k", "hpt"),
    ]
    with gzip.open(pred_path, "rt", encoding="utf-8") as f:
        assert len(json.load(f)["runs"]) == 2  # the fine-tune run saved no predicted sets
    predictions = load_predictions(pred_path)["runs"]
    assert predictions[run_key("wos-1k", "hpt", "minilm-l6-mlm", 0)] == [[0, 1]]
    assert predictions[run_key("20ng-10pct", "hpt", "minilm-l6-mlm", 0)] == [[2]]
    assert len(merged["runs"]) == 1


def _write(directory: Path, preset_name: str, runs: list[dict]) -> None:
    predictions = {"gold": {"wos-1k": [[0]], "20ng-10pct": [[1]]}, "runs": {}}
    for r in runs:
        predictions["runs"][run_key(r["dataset"], r["method"], r["backbone"], r["seed"])] = [[0]]
    results = {"runs": runs, "preset": {"name": preset_name}, "splits": {}}
    save(results_path(preset_name, directory), results, predictions_path(preset_name, directory), predictions)


def _search_files(tmp_path: Path, new_dev: float, new_test: float) -> None:
    base = [_run(d, m, 0, 0.4, 0.4) for d in ("wos-1k", "20ng-10pct") for m in ("hpt", "finetune")]
    base += [_run(d, "emb-lr", 0, 0.45, 0.45, backbone="minilm-l6") for d in ("wos-1k", "20ng-10pct")]
    base += [_run("wos-1k", "hpt-code", 0, 0.1, 0.1)]  # HPT's official-code variant, one rate
    _write(tmp_path, "cpu", base)
    name = recipe.recipe_preset("new 1e-3").name
    new = [_run(d, "hpt", s, new_dev, new_test) for d in ("wos-1k", "20ng-10pct") for s in (0, 1)]
    new += [_run(d, "finetune", 0, 0.3, 0.9) for d in ("wos-1k", "20ng-10pct")]  # better on test, worse on dev
    new += [_run("wos-1k", "hpt-code", 0, 0.2, 0.2)]  # HPT's official-code variant under HPT's candidate
    _write(tmp_path, name, new)


def test_the_recipe_is_chosen_on_dev_and_never_on_test(tmp_path: Path):
    _search_files(tmp_path, new_dev=0.5, new_test=0.1)
    rows = recipe.search_rows(tmp_path)
    chosen = recipe.choose(rows)
    assert chosen == {"hpt": "new 1e-3", "finetune": "one rate"}  # hard/soft: one candidate only, no choice yet
    table = recipe.search_table(rows, chosen)
    assert "| HPT | new 1e-3 **(chosen)** | 50.00 / 60.00 | 10.00 / 20.00 | 10 |" in table
    assert "| Vanilla fine-tune | one rate **(chosen)** |" in table
    assert "| HardPrompt | new 1e-3 | – / – |" in table


def test_the_merged_comparison_has_the_baselines_and_each_methods_chosen_runs(tmp_path: Path):
    _search_files(tmp_path, new_dev=0.5, new_test=0.1)
    results, predictions = recipe.merged_results({"hpt": "new 1e-3", "finetune": "one rate"}, tmp_path)
    kinds = sorted((r["method"], r["seed"], r.get("recipe")) for r in results["runs"] if r["dataset"] == "wos-1k")
    assert kinds == [
        ("emb-lr", 0, None),
        ("finetune", 0, "one rate"),
        ("hpt", 0, "new 1e-3"),
        ("hpt", 1, "new 1e-3"),
        ("hpt-code", 0, "new 1e-3"),  # it follows HPT's chosen recipe, not the base preset's one rate
    ]
    assert all(
        run_key(r["dataset"], r["method"], r["backbone"], r["seed"]) in predictions["runs"] for r in results["runs"]
    )
    assert results["preset"]["lr_new"] == 0.001 and results["preset"]["recipes"]["hpt"] == "new 1e-3"
    assert results["preset"]["recipes"]["hpt-code"] == "new 1e-3"


def test_recipe_text_describes_old_and_new_presets():
    assert recipe_text(PRESETS["cpu"].to_dict()) == "learning rate 0.0001 (Adam, constant)"
    new = preset_variant(PRESETS["cpu"], ["lr_new=0.003", "schedule=linear", "warmup_ratio=0.1"]).to_dict()
    assert recipe_text(new) == (
        "learning rates 0.0001 for the backbone, 0.003 for the new parameters, 0.0001 for the word embeddings "
        "(Adam, linear, 10 % warm-up)"
    )


def test_ablations_follow_hpts_chosen_recipe_and_dev_names_the_default_variant(tmp_path: Path):
    _search_files(tmp_path, new_dev=0.5, new_test=0.1)
    name = recipe.recipe_preset("new 1e-3").name
    extra = [_run("wos-1k", "bce", 0, 0.05, 0.05)]  # an ablation under HPT's candidate
    extra += [_run("20ng-10pct", "hpt-code", 0, 0.6, 0.2)]  # the code variant, now on both datasets
    results = load_results(results_path(name, tmp_path))
    _write(tmp_path, name, results["runs"] + extra)
    results, _ = recipe.merged_results({"hpt": "new 1e-3", "finetune": "one rate"}, tmp_path)
    assert ("bce", "new 1e-3") in {(r["method"], r.get("recipe")) for r in results["runs"]}
    assert (
        recipe._followers_text({"hpt": "new 1e-3"}) == "HPT (code-faithful) and the ablations train with HPT's recipe"
    )
    # seed 0 on both datasets: HPT 0.5 and 0.5, the code variant 0.2 (WOS-1k) and 0.6 (20NG-10 %)
    scores = recipe.variant_scores(results)
    assert scores == {"hpt": 0.5, "hpt-code": 0.4, "runs": 2}
    assert "50.00 for paper-faithful HPT and 40.00 for HPT (code-faithful), so the library keeps" in (
        recipe.variant_text(results)
    )
    without_20ng = {**results, "runs": [r for r in results["runs"] if r["dataset"] == "wos-1k"]}
    assert recipe.variant_scores(without_20ng) is None and recipe.variant_text(without_20ng) == ""


def test_the_search_runs_every_seed_of_the_followers_with_the_leads_recipe(tmp_path: Path):
    _search_files(tmp_path, new_dev=0.5, new_test=0.1)
    calls = []

    def fake_run(preset, directory, only, log):  # records which runs the search asks for; trains nothing
        calls.append((preset.name, only("wos-1k", "bce", "minilm-l6-mlm", 2), only("wos-1k", "hpt", "minilm-l6", 0)))

    recipe.run_search(fake_run, tmp_path, log=lambda _: None)
    lead = recipe.recipe_preset("new 1e-3").name
    assert (lead, True, False) in calls  # the ablation, every seed, under HPT's chosen recipe; never another backbone


def test_recipe_text_groups_the_methods_that_share_a_recipe():
    from benchmarks.quality.methods import ABLATION_METHODS

    one = "new 3e-3, linear, warm-up 10 %"
    recipes = {"hpt": one, "finetune": "new 1e-3", "soft": "new 1e-3", "hpt-code": one}
    text = recipe_text(PRESETS["cpu"].to_dict() | {"recipes": recipes | {m: one for m in ABLATION_METHODS}})
    assert text.endswith(
        "recipe per method: HPT, HPT (code-faithful) and the ablations: new 3e-3, linear, warm-up 10 %; "
        "Vanilla fine-tune and SoftPrompt: new 1e-3"
    )
    partial = recipe_text(PRESETS["cpu"].to_dict() | {"recipes": {"hpt": one, "bce": one}})
    assert partial.endswith("recipe per method: HPT and r.p. BCE loss: new 3e-3, linear, warm-up 10 %")
