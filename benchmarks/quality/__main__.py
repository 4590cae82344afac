"""Quality evidence: HPT against the paper's baselines and classical baselines, on the same seeded splits.

    python -m benchmarks.quality --preset cpu            # run what is missing, then rewrite the report
    python -m benchmarks.quality --preset cpu --report   # only rewrite docs/benchmarks.md and its figures
    python -m benchmarks.quality --preset full           # a GPU: bert-base-uncased, full 20 Newsgroups
    python -m benchmarks.quality --recipe-search         # the CPU training-recipe search (benchmarks/quality/recipe.py)

Every finished run is appended to ``benchmarks/results/quality-<preset>.json`` at once (an atomic rewrite), so an
interrupted benchmark resumes where it stopped: runs already in the file are skipped. Runs are ordered by how much
they matter (classical baselines, then HPT and fine-tune on both backbones seed by seed, then the other prompt
methods, then the ablations), so a partial file still answers the main question. Predicted label sets of every
run's test documents go to ``quality-<preset>-predictions.json.gz`` for the paired bootstrap in the report.

Splits are fixed (data seed 0) and identical for every method; the run seed changes initialisation and batch order.
The WOS split is the one whose training abstracts (and no test abstract) the shipped ``minilm-l6-mlm`` backbone
was re-warmed on; the 20 Newsgroups test split was never seen by it either.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from benchmarks.common import ROOT
from benchmarks.quality.methods import DATASETS
from benchmarks.quality.presets import PRESETS, preset_variant
from benchmarks.quality.recipe import candidate_names, run_search, write_recipe_report
from benchmarks.quality.report import write_report
from benchmarks.quality.results import predictions_path, results_path
from benchmarks.quality.run import run_benchmark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--report", action="store_true", help="only regenerate docs/benchmarks.md and its figures")
    parser.add_argument(
        "--recipe-search", action="store_true", help="run the CPU training-recipe search, then its report"
    )
    parser.add_argument("--recipe-report", action="store_true", help="only regenerate the recipe block of the report")
    parser.add_argument("--max-runs", type=int, default=None, help="stop after this many new runs")
    parser.add_argument("--dataset", action="append", choices=DATASETS, help="only these datasets")
    parser.add_argument("--method", action="append", help="only these methods")
    parser.add_argument("--seed", action="append", type=int, help="only these seeds")
    parser.add_argument(
        "--only-backbone", action="append", metavar="NAME", help="only the runs on these of the preset's backbones"
    )
    parser.add_argument("--backbone", help="replace the preset's backbones with this one (name or directory)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a variant of the preset for an investigation, e.g. --set lr=3e-4 --set epochs.wos-1k=12; its runs go "
        "to their own results file (quality-<preset>+<changes>.json)",
    )
    args = parser.parse_args(argv)
    preset = PRESETS[args.preset]
    if args.backbone:
        preset = replace(preset, name=f"{preset.name}-custom", backbones=(args.backbone,))
    if args.set:
        preset = preset_variant(preset, args.set)

    def only(dataset: str, method: str, backbone: str, seed: int) -> bool:
        return (
            (not args.dataset or dataset in args.dataset)
            and (not args.method or method in args.method)
            and (not args.seed or seed in args.seed)
            and (not args.only_backbone or backbone in args.only_backbone)
        )

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if args.recipe_search or args.recipe_report:
        if args.recipe_search:
            run_search(run_benchmark, log=log)
        written = write_recipe_report()
        log("wrote " + ", ".join(str(p.relative_to(ROOT)) for p in written))
        return 0
    if not args.report:
        run_benchmark(preset, max_runs=args.max_runs, only=only, log=log)
    if preset.name in candidate_names():  # a recipe candidate's runs are reported in the recipe block
        written = write_recipe_report()
    else:
        written = write_report(results_path(preset.name), predictions_path(preset.name))
    log("wrote " + ", ".join(str(p.relative_to(ROOT)) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
