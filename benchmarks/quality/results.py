"""The benchmark's files: the results JSON (one record per run), the predicted label sets, and reading them back.

results_path("cpu")       # benchmarks/results/quality-cpu.json
predictions_path("cpu")   # benchmarks/results/quality-cpu-predictions.json.gz (gold and predicted sets per run)
"""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, write_atomic
from hpt_core.metrics import EvalReport


def run_key(dataset: str, method: str, backbone: str, seed: int) -> str:
    return f"{dataset}|{method}|{backbone}|{seed}"


def run_record(report: EvalReport, **extra: Any) -> dict[str, Any]:
    """One run's record in the results file: its test scores from ``report`` and ``extra`` (timings, settings)."""
    data = report.to_dict()
    return {
        **extra,
        "micro_f1": data["micro_f1"],
        "macro_f1": data["macro_f1"],
        "per_depth": data["per_depth"],
        "per_bucket": data["per_bucket"],
        "path_consistency": data["path_consistency"],
        "n_test": data["n_documents"],
    }


def results_path(preset: str, directory: Path = RESULTS) -> Path:
    return directory / f"quality-{preset}.json"


def predictions_path(preset: str, directory: Path = RESULTS) -> Path:
    return directory / f"quality-{preset}-predictions.json.gz"


def load_results(path: Path) -> dict[str, Any]:
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    return {"runs": []}


def load_predictions(path: Path) -> dict[str, Any]:
    if path.is_file():
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return json.load(f)
    return {"gold": {}, "runs": {}}


def save(path: Path, results: dict[str, Any], pred_path: Path, predictions: dict[str, Any]) -> None:
    """Rewrite both files atomically (predictions first: a run in the results file always has its predicted sets)."""
    write_atomic(pred_path, gzip.compress(json.dumps(predictions, separators=(",", ":")).encode(), mtime=0))
    write_atomic(path, (json.dumps(results, indent=1) + "\n").encode())


def group_runs(runs: list[dict[str, Any]]) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """Runs keyed by (dataset, method, backbone), each list sorted by seed."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[(run["dataset"], run["method"], run["backbone"])].append(run)
    return {k: sorted(v, key=lambda r: r["seed"]) for k, v in groups.items()}
