"""The CPU training-recipe search: each prompt method's candidate recipes on dev (seed 0), the recipe chosen per
method by dev macro-F1, and the new-recipe comparison (the chosen recipes' runs with the baselines of the ``cpu``
preset, on the same splits) that the report shows next to the one-rate rows of the ``cpu`` preset.

    python -m benchmarks.quality --recipe-search     # the seed-0 search, then every seed of each chosen recipe
    python -m benchmarks.quality --recipe-report     # only rewrite the recipe block of docs/benchmarks.md

Each candidate is a ``--set`` variant of the ``cpu`` preset, so its runs live in their own results file
(``quality-cpu+<changes>.json``) and any single run can be redone with ``--set``. Test scores are reported for every
candidate but never read by the choice.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import DOCS, FIGURES, RESULTS, generated_note, replace_block, write_atomic
from benchmarks.quality.methods import ABLATION_METHODS, METHOD_NAMES, dataset_name
from benchmarks.quality.presets import PRESETS, Preset, preset_variant
from benchmarks.quality.results import load_predictions, load_results, predictions_path, results_path, run_key

BASE = "cpu"  # the preset whose splits, budget (epochs, batch, length) and baselines every candidate shares
SEARCH_SEED = 0
SEARCH_METHODS = ("hpt", "finetune", "hard", "soft")  # each gets every candidate: the same tuning budget
# no search of their own: HPT's official-code variant and the ablations (HPT with one part changed) train with
# HPT's chosen recipe, so each paired difference is about the part, not the recipe
FOLLOWERS = {"hpt-code": "hpt"} | {m: "hpt" for m in ABLATION_METHODS}
BASELINES = ("emb-lr", "setfit", "tfidf-lr", "hiclass")  # taken from the base preset's results unchanged
# candidate -> --set changes of the base preset; "one rate" is the base preset itself (lr 1e-4 for every parameter)
RECIPES: dict[str, tuple[str, ...]] = {
    "one rate": (),
    "new 1e-3": ("lr_new=0.001",),
    "new 3e-3, linear, warm-up 10 %": ("lr_new=0.003", "schedule=linear", "warmup_ratio=0.1"),
}
BLOCK = "quality-cpu-recipe"


def recipe_preset(recipe: str) -> Preset:
    """The preset of one candidate recipe (a ``--set`` variant of ``BASE``)."""
    changes = RECIPES[recipe]
    return preset_variant(PRESETS[BASE], list(changes)) if changes else PRESETS[BASE]


def candidate_names() -> set[str]:
    """The preset names of the candidates other than the base preset (their results files)."""
    return {recipe_preset(r).name for r, changes in RECIPES.items() if changes}


def _runs(recipe: str, directory: Path) -> list[dict[str, Any]]:
    return load_results(results_path(recipe_preset(recipe).name, directory))["runs"]


def _find(runs: list[dict[str, Any]], dataset: str, method: str, backbone: str, seed: int) -> dict[str, Any] | None:
    return next(
        (r for r in runs if (r["dataset"], r["method"], r["backbone"], r["seed"]) == (dataset, method, backbone, seed)),
        None,
    )


def search_rows(directory: Path = RESULTS) -> list[dict[str, Any]]:
    """One row per (method, recipe, dataset) with the seed-0 run's dev and test scores (None where not run)."""
    primary = PRESETS[BASE].backbones[0]
    rows = []
    for method in SEARCH_METHODS:
        for recipe in RECIPES:
            runs = _runs(recipe, directory)
            for dataset in PRESETS[BASE].datasets:
                run = _find(runs, dataset, method, primary, SEARCH_SEED)
                rows.append({"method": method, "recipe": recipe, "dataset": dataset, "run": run})
    return rows


def choose(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Each method's recipe: the highest dev macro-F1 averaged over the datasets, among the candidates that have a
    seed-0 run on every dataset (a method with fewer than two such candidates gets no choice yet)."""
    chosen = {}
    for method in SEARCH_METHODS:
        means = {}
        for recipe in RECIPES:
            cells = [r["run"] for r in rows if r["method"] == method and r["recipe"] == recipe]
            if cells and all(c is not None and c.get("dev_macro_f1") is not None for c in cells):
                means[recipe] = float(np.mean([c["dev_macro_f1"] for c in cells]))
        if len(means) >= 2:
            chosen[method] = max(means, key=lambda r: means[r])
    return chosen


def recipe_plan(chosen: dict[str, str]) -> dict[str, str]:
    """Method -> recipe for every method that trains with a chosen recipe: the searched ones, then their followers."""
    return chosen | {method: chosen[lead] for method, lead in FOLLOWERS.items() if lead in chosen}


def merged_results(chosen: dict[str, str], directory: Path = RESULTS) -> tuple[dict[str, Any], dict[str, Any]]:
    """The new-recipe comparison as one results file would hold it: each method's runs under its chosen recipe, and
    the base preset's baselines (same splits, data seed and test documents), with their predicted sets."""
    base = load_results(results_path(BASE, directory))
    base_predictions = load_predictions(predictions_path(BASE, directory))
    primary = PRESETS[BASE].backbones[0]
    runs = [r for r in base["runs"] if r["method"] in BASELINES]
    predictions = {"gold": base_predictions["gold"], "runs": {}}
    for r in runs:
        key = run_key(r["dataset"], r["method"], r["backbone"], r["seed"])
        predictions["runs"][key] = base_predictions["runs"][key]
    plan = recipe_plan(chosen)
    for method, recipe in plan.items():
        source = recipe_preset(recipe).name
        these = [r for r in _runs(recipe, directory) if r["method"] == method and r["backbone"] == primary]
        stored = load_predictions(predictions_path(source, directory))["runs"]
        for r in these:
            key = run_key(r["dataset"], r["method"], r["backbone"], r["seed"])
            if key in stored:
                runs.append(r | {"recipe": recipe})
                predictions["runs"][key] = stored[key]
    preset = recipe_preset(chosen.get("hpt", "one rate")).to_dict()
    seeds = sorted({r["seed"] for r in runs if r["method"] in plan})
    named = [results_path(BASE).name] + [results_path(recipe_preset(r).name).name for r in sorted(set(chosen.values()))]
    sources = list(dict.fromkeys(named))  # the base preset's file once, also when it holds a chosen recipe's runs
    preset |= {"name": "cpu-recipe", "backbones": [primary], "recipes": plan, "seeds": seeds, "sources": sources}
    results = {"runs": runs, "preset": preset, "splits": base.get("splits", {}), "environment": base.get("environment")}
    return results, predictions


def _pct(run: dict[str, Any] | None, key: str) -> str:
    return "–" if run is None or run.get(key) is None else f"{100 * run[key]:.2f}"


def search_table(rows: list[dict[str, Any]], chosen: dict[str, str]) -> str:
    """Markdown: dev (the choice) and test (information only) macro / micro F1 of every candidate, seed 0."""
    datasets = PRESETS[BASE].datasets
    preset = PRESETS[BASE].to_dict()
    header = ["Method", "Recipe"]
    for d in datasets:
        header += [f"{dataset_name(d, preset)}: dev macro / micro", "test macro / micro", "train s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for method in SEARCH_METHODS:
        for recipe in RECIPES:
            cells = [
                METHOD_NAMES.get(method, method),
                recipe + (" **(chosen)**" if chosen.get(method) == recipe else ""),
            ]
            for d in datasets:
                run = next(r["run"] for r in rows if (r["method"], r["recipe"], r["dataset"]) == (method, recipe, d))
                cells += [
                    f"{_pct(run, 'dev_macro_f1')} / {_pct(run, 'dev_micro_f1')}",
                    f"{_pct(run, 'macro_f1')} / {_pct(run, 'micro_f1')}",
                    "–" if run is None else f"{run['train_seconds']:.0f}",
                ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def curves_figure(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Per-evaluation dev macro-F1 of HPT and fine-tune under each candidate with a recorded curve (seed 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = PRESETS[BASE].datasets
    curves = [
        r for r in rows if r["run"] is not None and r["run"].get("dev_curve") and r["method"] in ("hpt", "finetune")
    ]
    if not curves:
        return None
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 3.8), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for row in (r for r in curves if r["dataset"] == dataset):
            curve = row["run"]["dev_curve"]
            style = "-" if row["method"] == "hpt" else "--"
            ax.plot(
                [c["epoch"] for c in curve],
                [100 * c["dev_macro_f1"] for c in curve],
                style,
                marker="o",
                label=f"{METHOD_NAMES[row['method']]}, {row['recipe']}",
            )
        ax.set_title(dataset_name(dataset, PRESETS[BASE].to_dict()))
        ax.set_xlabel("epoch")
        ax.set_ylabel("dev macro-F1 (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _followers_text(chosen: dict[str, str]) -> str:
    """'X and the ablations train with HPT's recipe' for the followers whose lead has a chosen recipe."""
    from benchmarks.quality.tables import method_list

    parts = []
    for lead in dict.fromkeys(FOLLOWERS.values()):
        if lead in chosen:
            followers = [m for m, m_lead in FOLLOWERS.items() if m_lead == lead]
            verb = "trains" if len(followers) == 1 else "train"
            parts.append(f"{method_list(followers)} {verb} with {METHOD_NAMES[lead]}'s recipe")
    return "; ".join(parts)


def variant_scores(results: dict[str, Any]) -> dict[str, float] | None:
    """Mean dev macro-F1 of paper-faithful HPT and of ``hpt-code`` over every dataset and the seeds both have, or
    None while either lacks a run: the dev evidence for the library's default variant."""
    primary = PRESETS[BASE].backbones[0]
    by_method: dict[str, dict[tuple[str, int], float]] = {"hpt": {}, "hpt-code": {}}
    for r in results["runs"]:
        if r["method"] in by_method and r["backbone"] == primary and r.get("dev_macro_f1") is not None:
            by_method[r["method"]][(r["dataset"], r["seed"])] = r["dev_macro_f1"]
    shared = sorted(set(by_method["hpt"]) & set(by_method["hpt-code"]))
    if {d for d, _ in shared} != set(PRESETS[BASE].datasets):
        return None
    return {m: float(np.mean([by_method[m][k] for k in shared])) for m in by_method} | {"runs": len(shared)}


def variant_text(results: dict[str, Any]) -> str:
    """One sentence: which HPT variant dev prefers under the chosen recipe (the library's default is the paper's)."""
    scores = variant_scores(results)
    if scores is None:
        return ""
    hpt, code = 100 * scores["hpt"], 100 * scores["hpt-code"]
    verdict = (
        "so the library keeps the paper's variant as its default"
        if hpt >= code
        else "so dev prefers the official code's variant (`--code-faithful`); the library's default is still the "
        "paper's"
    )
    return (
        f"Default variant, on dev: mean dev macro-F1 over both datasets ({scores['runs']} runs each) is {hpt:.2f} for "
        f"paper-faithful HPT and {code:.2f} for HPT (code-faithful), {verdict}."
    )


def render_recipe(directory: Path = RESULTS, figures: Path = FIGURES) -> tuple[str, list[Path]]:
    """The recipe block's Markdown (search table, dev curves, the new-recipe comparison) and the files it drew."""
    from benchmarks.quality.report import dataset_parents, with_hierarchical_f1
    from benchmarks.quality.stats import significance
    from benchmarks.quality.tables import render

    rows = search_rows(directory)
    chosen = choose(rows)
    written: list[Path] = []
    out = [
        "Every candidate trains with the `cpu` preset's budget (same splits, epochs, batch, length, backbone "
        "`minilm-l6-mlm`), seed 0; the backbone keeps learning rate 1e-4. A recipe is chosen per method by its dev "
        "macro-F1 averaged over both datasets; test scores are shown for information and never used. `new` is "
        "`TrainConfig.lr_new`, the learning rate of the parameters a method adds to the backbone (HPT: label words, "
        "template words, `[PRED]`, graph, biases; fine-tune: its classifier). Commands: "
        "`python -m benchmarks.quality --recipe-search`, or one candidate with "
        "`python -m benchmarks.quality --set lr_new=0.001 --method hpt`. Train seconds of the candidates were measured "
        "with two runs in parallel (one thread each) beside other work, so they are 2-4 times the time of a run "
        "alone.\n",
        search_table(rows, chosen),
        "",
    ]
    figure = curves_figure(rows, figures / "quality-recipe-dev-curves.png")
    if figure is not None:
        written.append(figure)
        out.append(f"![Dev macro-F1 per epoch](figures/{figure.name})\n")
    if chosen:
        results, predictions = merged_results(chosen, directory)
        results = with_hierarchical_f1(results, predictions, dataset_parents(results, predictions))
        picked = ", ".join(f"{METHOD_NAMES[m]}: {r}" for m, r in chosen.items())
        followers, variant = _followers_text(chosen), variant_text(results)
        out.append(
            f"### New-recipe comparison\n\nChosen on dev: {picked}"
            + (f" ({followers})" if followers else "")
            + ". Baselines as in the `cpu` preset."
            + (f" {variant}" if variant else "")
            + "\n"
        )
        body = render(results, significance(results, predictions), {})
        out.append(body.replace("### ", "#### "))
    return "\n".join(out), written


def write_recipe_report(directory: Path = RESULTS, docs: Path = DOCS, figures: Path = FIGURES) -> list[Path]:
    """Rewrite the recipe block of ``docs`` (after the ``cpu`` preset's block); returns the files written."""
    body, written = render_recipe(directory, figures)
    note = generated_note("python -m benchmarks.quality --recipe-report")
    text = docs.read_text(encoding="utf-8") if docs.is_file() else "# Benchmarks\n"
    text = replace_block(text, BLOCK, f"{note}\n\n{body.rstrip()}\n\n", "Quality: the CPU training recipe")
    write_atomic(docs, text)
    return [docs, *written]


def run_search(
    run: Callable[..., Any], directory: Path = RESULTS, log: Callable[[str], None] = print, seeds_after: bool = True
) -> dict[str, str]:
    """The seed-0 runs of every candidate for every search method, then (``seeds_after``) every seed of each
    method's chosen recipe and of its followers; ``run`` is ``run_benchmark``. Resumable: runs already in a file are
    skipped."""
    primary = PRESETS[BASE].backbones[0]
    for recipe in RECIPES:
        if not RECIPES[recipe]:
            continue  # the base preset's own runs are the "one rate" row

        def seed0(dataset: str, method: str, backbone: str, seed: int) -> bool:
            return method in SEARCH_METHODS and backbone == primary and seed == SEARCH_SEED

        run(recipe_preset(recipe), directory=directory, only=seed0, log=log)
    chosen = choose(search_rows(directory))
    log(f"chosen on dev: {chosen}")
    if seeds_after:
        for method, recipe in recipe_plan(chosen).items():  # the searched methods, then HPT's followers

            def every_seed(dataset: str, m: str, backbone: str, seed: int, method: str = method) -> bool:
                return m == method and backbone == primary

            run(recipe_preset(recipe), directory=directory, only=every_seed, log=log)
    return chosen
