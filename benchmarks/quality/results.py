"""The benchmark's files: the results JSON (one record per run), the predicted label sets, and reading them back.

results_path("cpu")       # benchmarks/results/quality-cpu.json
predictions_path("cpu")   # benchmarks/results/quality-cpu-predictions.json.gz (gold and predicted sets per run)
"""

from __future__ import annotations

import contextlib
import fcntl
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


@contextlib.contextmanager
def _locked(path: Path) -> Any:
    """An exclusive lock beside ``path``, held while a process merges its runs into the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def save(
    path: Path, results: dict[str, Any], pred_path: Path, predictions: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Merge ``results`` and ``predictions`` into both files and rewrite them atomically (predictions first: a run in
    the results file always has its predicted sets); returns the merged pair.

    Under a lock, the files are read again and only runs missing there are added, so two benchmark processes working
    on different runs of one preset (``--dataset`` or ``--method`` filters) never drop each other's runs.
    """
    with _locked(path):
        on_disk, disk_predictions = load_results(path), load_predictions(pred_path)
        known = {run_key(r["dataset"], r["method"], r["backbone"], r["seed"]) for r in on_disk["runs"]}
        merged = {**on_disk, **{k: v for k, v in results.items() if k != "runs"}}
        merged["runs"] = on_disk["runs"] + [
            r for r in results["runs"] if run_key(r["dataset"], r["method"], r["backbone"], r["seed"]) not in known
        ]
        for name in ("splits", "task_adapt"):
            if isinstance(on_disk.get(name), dict) and isinstance(results.get(name), dict):
                merged[name] = {**on_disk[name], **results[name]}
        merged_predictions = {
            "gold": {**disk_predictions["gold"], **predictions["gold"]},
            "runs": {**predictions["runs"], **disk_predictions["runs"]},
        }
        write_atomic(pred_path, gzip.compress(json.dumps(merged_predictions, separators=(",", ":")).encode(), mtime=0))
        write_atomic(path, (json.dumps(merged, indent=1) + "\n").encode())
    return merged, merged_predictions


def group_runs(runs: list[dict[str, Any]]) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """Runs keyed by (dataset, method, backbone), each list sorted by seed."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[(run["dataset"], run["method"], run["backbone"])].append(run)
    return {k: sorted(v, key=lambda r: r["seed"]) for k, v in groups.items()}
